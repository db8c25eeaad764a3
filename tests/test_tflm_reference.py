"""The registry's numpy references == TensorFlow Lite Micro's reference kernels, bit for bit.

For each operator that TFLite has, a single-operator int8 .tflite model is built here
(tests/tflite_models.py), with real float scales and zero points; it runs
in tflite_micro's interpreter, whose Prepare() derives the fixed-point parameters itself. Our
numpy reference gets its parameters from the same scales through atomsim.nn.ops.quant (the way
TFLite's Prepare() does it) and must produce the same int8 tensor. Padding SAME/VALID is turned
into explicit pads the way TFLite computes them. The expectation is the registry's
(``atomsim.nn.registry.expected_output`` of a ``KernelCall``), the same path the kernel tests
and the profiler use. Skipped when tflite_micro is not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

tflite_micro = pytest.importorskip(
    "tflite_micro", reason="tflite-micro is not installed (pip install tflite-micro)")
flatbuffers = pytest.importorskip("flatbuffers", reason="flatbuffers (tflite-micro dep) missing")

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl  # noqa: E402
from tflite_models import TfliteModel, assert_same, run_tflm  # noqa: E402

from atomsim.nn import registry  # noqa: E402
from atomsim.nn.ops import quant  # noqa: E402
from atomsim.nn.ops.cases import KernelCall  # noqa: E402

pytestmark = pytest.mark.unit

SEEDS = (0, 1)
ACT = {"none": tfl.ActivationFunctionType.NONE, "relu": tfl.ActivationFunctionType.RELU,
       "relu6": tfl.ActivationFunctionType.RELU6}
# Operators compared here, and why some are not.
COMPARED = ("conv", "depthwise_conv", "fully_connected", "add", "mul", "hard_swish",
            "avgpool", "maxpool", "pad", "relu")
NOT_COMPARED = {
    "pointwise_conv": "a 1x1 convolution: TFLite's CONV_2D with a 1x1 filter (conv1x1 case)",
    "global_avgpool": "TFLite expresses it as MEAN over H, W, whose int8 requantization differs",
    "hard_sigmoid": "no TFLite builtin; the kernel is a table lookup built on the host",
}


def test_compared_operators_are_registry_operators():
    """The names above are the registry's (a rename cannot leave this file behind)."""
    names = {op.name for op in registry.OPERATORS}
    assert set(COMPARED) <= names and set(NOT_COMPARED) <= names
    assert not set(COMPARED) & set(NOT_COMPARED)


def expected(op: str, x: np.ndarray, out_dims, params=None, **fields) -> np.ndarray:
    """The registry's expectation for one call of ``op``."""
    call = KernelCall(op, tuple(x.shape), tuple(out_dims), params, input=x, **fields)
    return registry.expected_output(call)


# ---------------------------------------------------------------- helpers -----------------

def f32(x) -> float:
    """A scale as the model stores it (float32), widened back to Python's float64."""
    return float(np.float32(x))


def tflite_padding(size: int, k: int, stride: int, same: bool) -> tuple[int, int, int]:
    """(out, pad_before, pad_after) as TFLite computes them for SAME / VALID."""
    if not same:
        out = (size - k) // stride + 1
        return out, 0, 0
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def int8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


# ---------------------------------------------------------------- convolutions ------------

CONV_CASES = {
    "conv3x3_same_s1_relu6": dict(h=7, w=6, c=3, co=5, k=3, s=1, same=True, act="relu6"),
    "conv3x3_valid_s2": dict(h=9, w=8, c=4, co=6, k=3, s=2, same=False, act="none"),
    "conv1x1_pointwise": dict(h=5, w=5, c=16, co=8, k=1, s=1, same=False, act="relu"),
    "conv5x5_same_s2": dict(h=8, w=7, c=2, co=3, k=5, s=2, same=True, act="none"),
    "dw3x3_same_s1": dict(h=6, w=7, c=8, k=3, s=1, same=True, act="relu6", dw=True),
    "dw3x3_valid_s2": dict(h=9, w=9, c=5, k=3, s=2, same=False, act="none", dw=True),
    "dw5x5_same_s2": dict(h=8, w=6, c=4, k=5, s=2, same=True, act="relu", dw=True),
}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", CONV_CASES)
def test_conv_and_depthwise_match_tflm(name: str, seed: int):
    s = CONV_CASES[name]
    rng = np.random.default_rng(seed)
    dw = s.get("dw", False)
    h, w, c, k, st = s["h"], s["w"], s["c"], s["k"], s["s"]
    co = c if dw else s["co"]
    in_scale, out_scale = f32(rng.uniform(0.01, 0.05)), f32(rng.uniform(0.02, 0.2))
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-100, 100))
    w_scales = np.array([f32(v) for v in rng.uniform(0.002, 0.02, co)])
    x = int8(rng, (1, h, w, c))
    filt = rng.integers(-127, 128, size=(1, k, k, c) if dw else (co, k, k, c)).astype(np.int8)
    bias = rng.integers(-5000, 5000, size=co).astype(np.int32)
    out_h, pt, _ = tflite_padding(h, k, st, s["same"])
    out_w, pl, _ = tflite_padding(w, k, st, s["same"])

    m = TfliteModel()
    t_in = m.tensor((1, h, w, c), tfl.TensorType.INT8, in_scale, in_zp)
    t_w = m.tensor(filt.shape, tfl.TensorType.INT8, w_scales, np.zeros(co), filt,
                   axis=3 if dw else 0)
    t_b = m.tensor((co,), tfl.TensorType.INT32, in_scale * w_scales, np.zeros(co), bias)
    t_out = m.tensor((1, out_h, out_w, co), tfl.TensorType.INT8, out_scale, out_zp)
    opts = tfl.DepthwiseConv2DOptionsT() if dw else tfl.Conv2DOptionsT()
    opts.padding = tfl.Padding.SAME if s["same"] else tfl.Padding.VALID
    opts.strideH = opts.strideW = st
    opts.fusedActivationFunction = ACT[s["act"]]
    if dw:
        opts.depthMultiplier = 1
        model = m.single_op(tfl.BuiltinOperator.DEPTHWISE_CONV_2D, [t_in, t_w, t_b], [t_out],
                        tfl.BuiltinOptions.DepthwiseConv2DOptions, opts)
    else:
        model = m.single_op(tfl.BuiltinOperator.CONV_2D, [t_in, t_w, t_b], [t_out],
                        tfl.BuiltinOptions.Conv2DOptions, opts)
    (got,) = run_tflm(model, x)

    # TFLite Prepare: effective scale in double from the float32 scales, per channel
    mult, shift = quant.per_channel_multipliers(in_scale * w_scales / out_scale)
    lo, hi = quant.activation_range(s["act"], out_scale, out_zp)
    params = quant.ConvParams(st, st, pt, pl, 1, 1, -in_zp, out_zp, lo, hi)
    want = expected("depthwise_conv" if dw else "conv", x, (1, out_h, out_w, co), params,
                    filter_dims=filt.shape, filter=filt, bias=bias, multiplier=mult,
                    shift=shift)
    assert_same(got, want, name)


FC_CASES = {"c40_co10": dict(c=40, co=10, act="none"), "c7_co3_relu": dict(c=7, co=3, act="relu"),
            "batch3": dict(n=3, c=12, co=5, act="relu6")}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", FC_CASES)
def test_fully_connected_matches_tflm(name: str, seed: int):
    s = FC_CASES[name]
    rng = np.random.default_rng(seed)
    n, c, co = s.get("n", 1), s["c"], s["co"]
    in_scale, w_scale, out_scale = (f32(rng.uniform(a, b)) for a, b in
                                    ((0.01, 0.05), (0.002, 0.02), (0.02, 0.2)))
    in_zp, out_zp = int(rng.integers(-128, 128)), int(rng.integers(-100, 100))
    x = int8(rng, (n, c))
    weights = rng.integers(-127, 128, size=(co, c)).astype(np.int8)
    bias = rng.integers(-5000, 5000, size=co).astype(np.int32)

    m = TfliteModel()
    t_in = m.tensor((n, c), tfl.TensorType.INT8, in_scale, in_zp)
    t_w = m.tensor((co, c), tfl.TensorType.INT8, w_scale, 0, weights)
    t_b = m.tensor((co,), tfl.TensorType.INT32, in_scale * w_scale, 0, bias)
    t_out = m.tensor((n, co), tfl.TensorType.INT8, out_scale, out_zp)
    opts = tfl.FullyConnectedOptionsT()
    opts.fusedActivationFunction = ACT[s["act"]]
    (got,) = run_tflm(m.single_op(tfl.BuiltinOperator.FULLY_CONNECTED, [t_in, t_w, t_b], [t_out],
                           tfl.BuiltinOptions.FullyConnectedOptions, opts), x)

    mult, shift = quant.per_channel_multipliers([in_scale * w_scale / out_scale])
    lo, hi = quant.activation_range(s["act"], out_scale, out_zp)
    params = quant.FcParams(-in_zp, out_zp, lo, hi, 0)
    want = expected("fully_connected", x.reshape(n, 1, 1, c), (n, 1, 1, co), params,
                    filter_dims=(co, 1, 1, c), filter=weights, bias=bias, multiplier=mult,
                    shift=shift)
    assert_same(got, want, name)


# ---------------------------------------------------------------- elementwise -------------

ELTWISE_CASES = {"h4w5c6": dict(h=4, w=5, c=6, act="none"),
                 "relu_ratio8": dict(h=3, w=3, c=8, act="relu", ratio=8.0),
                 "broadcast_c7": dict(h=3, w=4, c=7, act="relu6", broadcast=True)}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ELTWISE_CASES)
@pytest.mark.parametrize("op", ["add", "mul"])
def test_add_and_mul_match_tflm(op: str, name: str, seed: int):
    s = ELTWISE_CASES[name]
    if op == "add" and s.get("broadcast"):
        pytest.skip("our add kernel is elementwise only (no broadcast)")
    rng = np.random.default_rng(seed)
    dims = (1, s["h"], s["w"], s["c"])
    dims2 = (1, 1, 1, s["c"]) if s.get("broadcast") else dims
    s1 = f32(rng.uniform(0.01, 0.1))
    s2 = f32(s1 * s.get("ratio", 1.0) * rng.uniform(0.5, 2.0))
    so = f32(rng.uniform(0.01, 0.1) if op == "add" else s1 * s2 * 74 * 74 / 60)
    zp1, zp2, zpo = (int(v) for v in rng.integers(-128, 128, 3))
    x1, x2 = int8(rng, dims), int8(rng, dims2)

    m = TfliteModel()
    t1 = m.tensor(dims, tfl.TensorType.INT8, s1, zp1)
    t2 = m.tensor(dims2, tfl.TensorType.INT8, s2, zp2)
    t_out = m.tensor(dims, tfl.TensorType.INT8, so, zpo)
    opts = tfl.AddOptionsT() if op == "add" else tfl.MulOptionsT()
    opts.fusedActivationFunction = ACT[s["act"]]
    builtin = tfl.BuiltinOperator.ADD if op == "add" else tfl.BuiltinOperator.MUL
    kind = tfl.BuiltinOptions.AddOptions if op == "add" else tfl.BuiltinOptions.MulOptions
    (got,) = run_tflm(m.single_op(builtin, [t1, t2], [t_out], kind, opts), x1, x2)

    lo, hi = quant.activation_range(s["act"], so, zpo)
    if op == "add":
        params = quant.add_quant_params(s1, zp1, s2, zp2, so, zpo, lo, hi)
    else:
        params = quant.mul_quant_params(s1, zp1, s2, zp2, so, zpo, lo, hi)
    want = expected(op, x1, dims, params, in2_dims=dims2, input2=x2)
    assert_same(got, want, f"{op} {name}")


# TFLM's RELU requantizes input -> output like TFLite's ReluQuantized; its RELU6 only clamps
# the input (it assumes the output shares the input's scale and zero point), so RELU6 is
# compared with equal quantization, where both definitions agree.
RELU_CASES = {"relu_same_scale": ("relu", 1.0), "relu_rescale": ("relu", 3.0),
              "relu_rescale_down": ("relu", 0.4), "relu6_same_quant": ("relu6", 1.0)}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", RELU_CASES)
def test_relu_matches_tflm(name: str, seed: int):
    kind, ratio = RELU_CASES[name]
    rng = np.random.default_rng(seed)
    in_scale = f32(rng.uniform(0.01, 0.1))
    out_scale = f32(in_scale / ratio)
    in_zp, out_zp = (int(v) for v in rng.integers(-128, 128, 2))
    if kind == "relu6":
        out_zp = in_zp
    x = np.arange(-128, 128).astype(np.int8).reshape(1, 16, 16, 1)  # every input value

    m = TfliteModel()
    t_in = m.tensor(x.shape, tfl.TensorType.INT8, in_scale, in_zp)
    t_out = m.tensor(x.shape, tfl.TensorType.INT8, out_scale, out_zp)
    builtin = tfl.BuiltinOperator.RELU if kind == "relu" else tfl.BuiltinOperator.RELU6
    (got,) = run_tflm(m.single_op(builtin, [t_in], [t_out]), x)
    want = expected("relu", x, x.shape,
                    quant.relu_quant_params(in_scale, in_zp, out_scale, out_zp, kind))
    assert_same(got, want, f"relu {name}")


HSWISH_CASES = {"typical": (0.04, 0.03), "wide": (0.2, 0.1), "narrow": (0.003, 0.002)}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", HSWISH_CASES)
def test_hard_swish_matches_tflm(name: str, seed: int):
    rng = np.random.default_rng(seed)
    in_scale, out_scale = (f32(v) for v in HSWISH_CASES[name])
    in_zp, out_zp = (int(v) for v in rng.integers(-128, 128, 2))
    x = np.arange(-128, 128).astype(np.int8).reshape(1, 16, 16, 1)  # every input value

    m = TfliteModel()
    t_in = m.tensor(x.shape, tfl.TensorType.INT8, in_scale, in_zp)
    t_out = m.tensor(x.shape, tfl.TensorType.INT8, out_scale, out_zp)
    (got,) = run_tflm(m.single_op(tfl.BuiltinOperator.HARD_SWISH, [t_in], [t_out]), x)
    want = expected("hard_swish", x, x.shape,
                    quant.hard_swish_quant_params(in_scale, in_zp, out_scale, out_zp))
    assert_same(got, want, f"hard_swish {name}")


# ---------------------------------------------------------------- pooling and pad ---------

POOL_CASES = {"k2_s2_valid": dict(h=6, w=6, c=5, k=2, s=2, same=False, act="none"),
              "k3_s1_same": dict(h=5, w=4, c=6, k=3, s=1, same=True, act="none"),
              "k3_s2_same_relu": dict(h=7, w=6, c=3, k=3, s=2, same=True, act="relu")}


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", POOL_CASES)
@pytest.mark.parametrize("op", ["avgpool", "maxpool"])
def test_pooling_matches_tflm(op: str, name: str, seed: int):
    s = POOL_CASES[name]
    rng = np.random.default_rng(seed)
    h, w, c, k, st = s["h"], s["w"], s["c"], s["k"], s["s"]
    scale, zp = f32(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128))
    x = int8(rng, (1, h, w, c))
    out_h, pt, _ = tflite_padding(h, k, st, s["same"])
    out_w, pl, _ = tflite_padding(w, k, st, s["same"])

    m = TfliteModel()
    t_in = m.tensor(x.shape, tfl.TensorType.INT8, scale, zp)
    t_out = m.tensor((1, out_h, out_w, c), tfl.TensorType.INT8, scale, zp)
    opts = tfl.Pool2DOptionsT()
    opts.padding = tfl.Padding.SAME if s["same"] else tfl.Padding.VALID
    opts.strideH = opts.strideW = st
    opts.filterHeight = opts.filterWidth = k
    opts.fusedActivationFunction = ACT[s["act"]]
    builtin = (tfl.BuiltinOperator.AVERAGE_POOL_2D if op == "avgpool"
               else tfl.BuiltinOperator.MAX_POOL_2D)
    (got,) = run_tflm(m.single_op(builtin, [t_in], [t_out], tfl.BuiltinOptions.Pool2DOptions, opts), x)

    lo, hi = quant.activation_range(s["act"], scale, zp)
    params = quant.PoolParams(st, st, pt, pl, lo, hi)
    want = expected(op, x, (1, out_h, out_w, c), params, filter_dims=(1, k, k, 1))
    assert_same(got, want, f"{op} {name}")


@pytest.mark.parametrize("pads", [(1, 1, 1, 1), (0, 2, 3, 0)])
def test_pad_matches_tflm(pads: tuple[int, int, int, int]):
    rng = np.random.default_rng(0)
    top, bottom, left, right = pads
    x = int8(rng, (1, 3, 4, 5))
    scale, zp = f32(0.05), int(rng.integers(-128, 128))
    out_shape = (1, 3 + top + bottom, 4 + left + right, 5)
    paddings = np.array([[0, 0], [top, bottom], [left, right], [0, 0]], dtype=np.int32)

    m = TfliteModel()
    t_in = m.tensor(x.shape, tfl.TensorType.INT8, scale, zp)
    t_pad = m.tensor((4, 2), tfl.TensorType.INT32, data=paddings)
    t_out = m.tensor(out_shape, tfl.TensorType.INT8, scale, zp)
    (got,) = run_tflm(m.single_op(tfl.BuiltinOperator.PAD, [t_in, t_pad], [t_out],
                           tfl.BuiltinOptions.PadOptions, tfl.PadOptionsT()), x)
    want = expected("pad", x, out_shape, quant.PadParams(top, bottom, left, right, zp))
    assert_same(got, want, f"pad {pads}")
