"""The PyTorch model of a stage config and AtomSim's graph of the same config agree: same
layers in the same order, same shapes, same MACs (paper convention) and parameter counts.

Both read the config independently (atomnet.config / atomsim.nn.frontends.stage_config) and
build the blocks of METHOD.md each their own way; a difference in widths, residuals, SE
placement or activations shows up here.
"""

from __future__ import annotations

import copy

import pytest

pytest.importorskip("torch", reason="torch is not installed (pip install -e .[atomnet])")
stage_config = pytest.importorskip("atomsim.nn.frontends.stage_config",
                                   reason="atomsim has no stage-config front end")

from stage_configs import BASE, varied  # noqa: E402

from atomnet.config import StageConfig  # noqa: E402
from atomnet.model import AtomNet, summarize, total_macs, total_params  # noqa: E402
from atomsim.nn.lowering import build_graph  # noqa: E402

pytestmark = pytest.mark.unit


CONFIGS = {
    "all_blocks": BASE,
    "per_block_lists": varied(kernel_size=[3, 5, 3, 5, 5, 3], expand_ratio=[1, 1, 6, 4, 2.5, 6]),
    "odd_resolution": varied(input_resolution=47, act_stages=["hswish", "relu", "relu6", "hswish"]),
    "mbconv_e1_se": varied(block_type_stage=["conv", "mbconv", "mbconv", "mobile_one"],
                            expand_ratio=[1, 1, 6, 1], se_stages=[False, True, False, True]),
    "paper_hybrid_r64": {
        "input_resolution": 64, "depth": [1, 1, 2, 2, 4, 1],
        "out_channel": [16, 24, 48, 64, 96, 160],
        "block_type_stage": ["conv", "mobile_one", "mobile_one", "mbconvnext", "mbconvnext",
                             "mbconvnext"],
        "act_stages": ["relu6"] * 6, "se_stages": [False, False, False, False, True, True],
        "stride_stages": [2, 1, 2, 2, 2, 2], "kernel_size": [3] * 6,
        "expand_ratio": [1, 1, 1, 3, 6, 6]},
}


def _unpadded_inputs(graph):
    """(C, H, W) of each non-pad op's activation input, looking through a Pad before it."""
    pad_source = {}
    shapes = []
    for op in graph.ops:
        src = graph.activation_inputs(op)[0]
        if op.kind == "pad":
            pad_source[op.outputs[0]] = src
            continue
        src = pad_source.get(src, src)
        _, h, w, c = graph.tensors[src].shape
        shapes.append((c, h, w))
    return shapes


@pytest.mark.parametrize("name", CONFIGS)
def test_model_and_graph_have_the_same_layers(name):
    spec = CONFIGS[name]
    rows = summarize(AtomNet(StageConfig.from_dict(spec)))
    graph = build_graph(stage_config.parse(copy.deepcopy(spec), name=name))
    atoms = [a for a in graph.atoms() if a.type != "pad"]
    assert len(rows) == len(atoms), [r.type for r in rows]
    for row, atom, in_shape in zip(rows, atoms, _unpadded_inputs(graph), strict=True):
        where = f"{name}: {row.name}"
        assert row.type == atom.type, where
        assert row.in_shape == in_shape, where
        assert row.out_shape == (atom.c_out, atom.h_out, atom.w_out), where
        assert row.activation == atom.activation, where
        assert row.macs == atom.macs, where
        if atom.type in ("conv", "dw", "pw"):
            assert (row.kernel, row.stride, row.groups) == (atom.k1, atom.stride,
                                                            atom.groups), where
        if atom.flash_bytes:  # int8 weights + int32 bias = params + 3 bytes per bias
            assert row.params + 3 * atom.c_out == atom.flash_bytes, where
    assert total_macs(rows) == graph.macs()
    assert total_params(rows) == graph.param_count()
