"""atomnet.config and atomnet.model: stage-config validation, the block definitions of
METHOD.md (widths, residuals, SE), and the per-layer summary's MAC / parameter conventions."""

from __future__ import annotations

import json
import re

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e .[atomnet])")

from stage_configs import BASE, varied  # noqa: E402

from atomnet.config import (  # noqa: E402
    StageConfig,
    StageConfigError,
    load_stage_config,
    make_divisible,
)
from atomnet.model import AtomNet, summarize, total_macs, total_params  # noqa: E402

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("value,want", [
    (16 * 6, 96), (24 * 3, 72), (20, 24), (12, 16), (4, 8), (1, 8), (36, 40), (44, 48),
    (28 / 4, 8), (100, 104), (90, 88),
])
def test_make_divisible_rounds_half_up_to_multiples_of_8(value, want):
    assert make_divisible(value) == want
    assert make_divisible(value) >= 0.9 * value and make_divisible(value) % 8 == 0


def test_blocks_resolve_per_stage_and_per_block_values():
    c = StageConfig.from_dict(varied(kernel_size=[3, 3, 3, 5, 5, 3]))
    blocks = c.blocks()
    assert [b.kernel_size for b in blocks] == [3, 3, 3, 5, 5, 3]
    assert [b.stride for b in blocks] == [2, 1, 2, 1, 2, 1]
    assert [(b.c_in, b.c_out) for b in blocks] == [(3, 16), (16, 16), (16, 24), (24, 24),
                                                  (24, 32), (32, 32)]
    assert [b.residual for b in blocks] == [False, False, False, True, False, True]
    assert blocks[2].mid_channels == 48 and blocks[4].mid_channels == 72
    assert StageConfig.from_dict(c.to_dict()) == c


def test_mobile_one_has_no_residual_and_mbconv_e1_skips_the_expansion():
    c = StageConfig.from_dict(varied(block_type_stage=["conv", "mobile_one", "mbconv", "mbconv"],
                                   out_channel=[16, 16, 16, 32], stride_stages=[2, 1, 1, 2],
                                   expand_ratio=[1, 1, 1, 3]))
    model = AtomNet(c)
    rows = summarize(model)
    assert not any(r.type == "add" and r.name.startswith("blocks.1.") for r in rows)
    assert [r.type for r in rows if r.name.startswith("blocks.2.")][:1] == ["dw"]
    assert any(r.type == "add" and r.name.startswith("blocks.2.") for r in rows)


BAD = {
    "unknown key": (varied(widths=[1]), "unknown key"),
    "missing key": ({k: v for k, v in BASE.items() if k != "depth"}, "missing"),
    "short list": (varied(act_stages=["relu"] * 3), "act_stages has 3 entries"),
    "bad block": (varied(block_type_stage=["conv", "sep", "mbconv", "mbconvnext"]), "sep"),
    "bad act": (varied(act_stages=["relu", "gelu", "relu", "relu"]), "gelu"),
    "bad stride": (varied(stride_stages=[2, 3, 2, 2]), "stride"),
    "float depth": (varied(depth=[1, 1.5, 2, 2]), "depth[1] must be an integer"),
    "string se": (varied(se_stages=[False, "yes", True, True]), "true or false"),
    "bool width": (varied(out_channel=[16, True, 24, 32]), "out_channel[1]"),
    "kernel length": (varied(kernel_size=[3, 3, 3]), "per stage"),
    "even kernel": (varied(kernel_size=[3, 4, 3, 3]), "kernel_size must be one of"),
    "negative expand": (varied(expand_ratio=[1, 1, -3, 3]), "expand_ratio"),
    "se on conv": (varied(se_stages=[True, False, True, True]), "not for a conv stage"),
    "sep expansion": (varied(expand_ratio=[1, 3, 3, 3]), "mobile_one"),
    "tiny resolution": (varied(input_resolution=4), "input_resolution"),
    "not an object": ([1, 2], "JSON object"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_configs_are_named_errors(name):
    bad, words = BAD[name]
    with pytest.raises(StageConfigError, match=re.escape(words)):
        StageConfig.from_dict(bad)


def test_load_stage_config_names_the_file(tmp_path):
    f = tmp_path / "c.json"
    f.write_text("{not json")
    with pytest.raises(StageConfigError, match="c.json"):
        load_stage_config(f)
    f.write_text(json.dumps(BASE))
    assert load_stage_config(f).num_blocks == 6


def test_summary_reproduces_method_worked_examples():
    # METHOD.md: DW 3x3 on 32 x 64 x 64 -> 1,179,680 MACs, 416 B; PW 32 -> 32 -> 4,194,336 MACs.
    c = StageConfig.from_dict({
        "input_resolution": 128, "depth": [1, 1], "out_channel": [32, 32],
        "block_type_stage": ["conv", "mobile_one"], "act_stages": ["relu", "relu"],
        "se_stages": [False, False], "stride_stages": [2, 1], "kernel_size": [3, 3],
        "expand_ratio": [1, 1]})
    rows = summarize(AtomNet(c))
    dw, pw = rows[1], rows[2]
    assert (dw.type, dw.in_shape, dw.out_shape, dw.macs) == ("dw", (32, 64, 64), (32, 64, 64),
                                                             1_179_680)
    assert dw.params * 1 + 3 * 32 == 416  # int8 weights + int32 bias = params + 3 B per bias
    assert (pw.type, pw.macs, pw.params + 3 * 32) == ("pw", 4_194_336, 1_152)


def test_summary_params_equal_the_folded_model():
    model = AtomNet(StageConfig.from_dict(BASE))
    rows = summarize(model)
    bn = sum(m.weight.numel() * 2 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    convs_with_bn = sum(m.weight.shape[0] for m in model.modules()
                        if isinstance(m, torch.nn.Conv2d) and m.bias is None)
    raw = sum(p.numel() for p in model.parameters())
    assert total_params(rows) == raw - bn + convs_with_bn  # BN (gamma, beta) -> one bias
    assert total_macs(rows) == sum(r.macs for r in rows) > 0
    assert {r.type for r in rows} >= {"conv", "dw", "pw", "hard_swish", "global_avgpool",
                                      "hard_sigmoid", "mul_bcast", "add", "fc"}
