"""``atomnet export``'s padding: by default the .tflite is the graph ``atomnet search`` costs.

Every k×k convolution (k > 1, stride 1 and 2) becomes an int8 PAD of k//2 on each side and a
VALID convolution, so AtomSim's importer turns the file into exactly the Pad and convolution
atoms of the stage-config graph (``atomsim.nn.lowering.build_graph``) that the search sums; the
remaining differences are the SE gate's (TFLite folds its hard-sigmoid into the conv).
``--pad-in-conv`` keeps the TFLite-converter style (SAME inside stride-1 convolutions). Both
compute the host int8 reference (``atomnet.quantize.run_int8``) bit for bit in TensorFlow Lite
Micro, and padding with the zero point is what the reference's in-kernel padding computes.

A seeded, untrained network calibrated on seeded random images: no dataset, a few seconds.
The whole-network deployment on the emulated board is tests/test_atomnet_deploy.py.
"""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e .[atomnet])")

import tflite  # noqa: E402

from atomnet.config import StageConfig  # noqa: E402
from atomnet.data import ImageSet  # noqa: E402
from atomnet.export_tflite import to_tflite  # noqa: E402
from atomnet.model import AtomNet  # noqa: E402
from atomnet.quantize import post_training_quantize, run_int8  # noqa: E402
from atomsim.nn.frontends import tflite_import  # noqa: E402
from atomsim.nn.frontends.stage_config import parse  # noqa: E402
from atomsim.nn.lowering import build_graph  # noqa: E402
from atomsim.nn.ops import reference as ref  # noqa: E402
from atomsim.nn.ops.quant import ConvParams  # noqa: E402

pytestmark = pytest.mark.training

# Stride-1 and stride-2 convs on even maps, k 3 and 5, SE (folded gate), residuals.
SPEC = {"input_resolution": 32, "num_classes": 10, "depth": [1, 1, 1, 2, 1],
        "out_channel": [8, 16, 24, 24, 32],
        "block_type_stage": ["conv", "mobile_one", "mbconv", "mbconvnext", "mbconvnext"],
        "act_stages": ["relu6", "relu", "hswish", "relu6", "relu6"],
        "se_stages": [False, False, True, False, True], "stride_stages": [2, 1, 2, 1, 2],
        "kernel_size": [3, 3, 5, 3, 3], "expand_ratio": [1, 1, 3, 3, 4]}
# Atoms of the costed graph that the .tflite cannot have: the SE gate's hard-sigmoid is folded
# into its conv, its squeeze and the head's pooling are AVERAGE_POOL_2D (imported as a windowed
# avgpool) and a gate on a 1x1 map is a plain MUL.
SE_AND_POOL = {"hard_sigmoid", "global_avgpool", "avgpool", "mul", "mul_bcast"}


@pytest.fixture(scope="module")
def qmodel():
    torch.manual_seed(0)
    model = AtomNet(StageConfig.from_dict(SPEC))
    rng = np.random.default_rng(0)
    images = ImageSet(rng.integers(0, 256, (48, 1, 32, 32), dtype=np.uint8),
                      np.zeros(48, dtype=np.int64), tuple(str(i) for i in range(10)))
    return post_training_quantize(model, images, count=48), images


def _ops(buf: bytes) -> list[tuple[str, object]]:
    """(operator name, options table or None) of every operator of the file, in order."""
    model = tflite.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.Subgraphs(0)
    out = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        name = names[model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()]
        opts = None
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            cls = tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions
            opts = cls()
            table = op.BuiltinOptions()
            opts.Init(table.Bytes, table.Pos)
        out.append((name, opts, op, graph))
    return out


def _atoms(graph, drop=frozenset()) -> collections.Counter:
    return collections.Counter(str(a) for a in graph.atoms() if a.type not in drop)


def test_default_export_is_the_costed_graph(qmodel):
    q, _ = qmodel
    costed = build_graph(parse(SPEC, "costed"))
    deployed = tflite_import.from_bytes(to_tflite(q), "atomnet.tflite")
    assert _atoms(deployed, SE_AND_POOL) == _atoms(costed, SE_AND_POOL)
    pads = [a for a in deployed.atoms() if a.type == "pad"]
    convs = [a for a in deployed.atoms() if a.type in ("conv", "dw") and a.k1 > 1]
    assert len(pads) == len(convs) == sum(1 for op in q.ops if op.kernel > 1) > 0
    assert {a.stride for a in convs} == {1, 2}  # stride-1 convolutions have their Pad too
    assert all(a.padding == (0, 0, 0, 0) for a in convs)


def test_every_padded_conv_is_pad_then_valid(qmodel):
    q, _ = qmodel
    ops = _ops(to_tflite(q))
    padded = 0
    for i, (name, opts, op, graph) in enumerate(ops):
        if name not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            continue
        w = graph.Tensors(op.Inputs(1)).ShapeAsNumpy()
        k = int(w[1])
        assert opts.Padding() == tflite.Padding.VALID
        if k == 1:
            continue
        assert ops[i - 1][0] == "PAD"
        pad_op, pad_graph = ops[i - 1][2], ops[i - 1][3]
        assert pad_op.Outputs(0) == op.Inputs(0)
        src, dst = pad_graph.Tensors(pad_op.Inputs(0)), pad_graph.Tensors(pad_op.Outputs(0))
        # PAD keeps the quantization, so TFLite fills with the input's zero point
        assert src.Quantization().ZeroPoint(0) == dst.Quantization().ZeroPoint(0)
        assert src.Quantization().Scale(0) == dst.Quantization().Scale(0)
        h = int(src.ShapeAsNumpy()[1])
        assert int(dst.ShapeAsNumpy()[1]) == h + 2 * (k // 2)
        padded += 1
    assert padded == sum(1 for op in q.ops if op.kernel > 1)


def test_pad_in_conv_keeps_the_tflite_converter_style(qmodel):
    q, _ = qmodel
    ops = _ops(to_tflite(q, pad_in_conv=True))
    same = [o for n, o, _, _ in ops if o is not None and o.Padding() == tflite.Padding.SAME]
    assert same and all(o.StrideW() == 1 for o in same)  # stride-1 k>1 convs pad themselves
    n_pads = sum(1 for n, *_ in ops if n == "PAD")
    stride2 = sum(1 for op in q.ops if op.kernel > 1 and op.stride == 2)
    assert n_pads == stride2  # PAD only where SAME differs from PyTorch (stride 2, even maps)
    graph = tflite_import.from_bytes(to_tflite(q, pad_in_conv=True), "atomnet.tflite")
    assert len(graph.atoms()) == len(tflite_import.from_bytes(to_tflite(q), "a").atoms()) - len(
        same)


@pytest.mark.parametrize("pad_in_conv", [False, True], ids=["pad-op", "pad-in-conv"])
def test_both_styles_equal_the_host_int8_reference_in_tflite_micro(qmodel, pad_in_conv):
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed")
    from tflite_models import run_tflm

    q, images = qmodel
    # The padded maps' zero points are not 0: padding with 0 instead would change the sums.
    assert any(q.tensors[op.inputs[0]].zero_point != 0 for op in q.ops if op.kernel > 1)
    x = images.int8_inputs(range(8))
    want = run_int8(q, x)
    buf = to_tflite(q, pad_in_conv=pad_in_conv)
    for i in range(len(x)):
        got = run_tflm(buf, x[i:i + 1])[0].reshape(-1)
        assert np.array_equal(got, want[i]), f"image {i}: TFLM {got}, host {want[i]}"


@pytest.mark.parametrize("stride", [1, 2])
def test_padding_with_the_zero_point_is_the_references_in_kernel_padding(stride):
    """The host reference pads inside the kernel (padded taps add 0 after the input offset);
    an explicit pad with the zero point and no padding in the kernel computes the same."""
    rng = np.random.default_rng(stride)
    zp = -117
    x = rng.integers(-128, 128, (1, 10, 10, 6), dtype=np.int8)
    filt = rng.integers(-127, 128, (5, 3, 3, 6), dtype=np.int8)
    bias = rng.integers(-500, 500, 5).astype(np.int32)
    mult = np.full(5, 1 << 30, dtype=np.int32)
    shift = np.full(5, -6, dtype=np.int32)
    out_hw = ((10 + 2 - 3) // stride + 1,) * 2

    def params(p):
        return ConvParams(stride, stride, p, p, 1, 1, -zp, 3, -128, 127)

    inside = ref.conv_s8(x, filt, bias, mult, shift, params(1), out_hw)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=zp)
    explicit = ref.conv_s8(padded, filt, bias, mult, shift, params(0), out_hw)
    assert np.array_equal(inside, explicit)
    wrong = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=0)
    assert not np.array_equal(inside, ref.conv_s8(wrong, filt, bias, mult, shift, params(0),
                                                  out_hw))


def test_cli_export_flag(qmodel, tmp_path, capsys):
    from atomsim.cli import main

    q, _ = qmodel
    qpath = tmp_path / "m.q"
    q.save(qpath)
    for flag, pic in (([], False), (["--pad-in-conv"], True)):
        out = tmp_path / f"m{len(flag)}.tflite"
        assert main(["atomnet", "export", str(qpath), "--out", str(out), *flag, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["pad_in_conv"] is pic and data["bytes"] == out.stat().st_size
        assert out.read_bytes() == to_tflite(q, pad_in_conv=pic)
