"""Concrete kernel calls, and the named shape cases every kernel implementation is tested on.

``KernelCall`` is one invocation of one int8 kernel: the operator's name, NHWC dims, its
parameter record (``quant``) and the arrays. The profiler places it in target memory, the host
test hands it to the C kernels through ctypes, the registry computes its numpy expectation.

``<OP>_CASES`` are the named shape cases of each operator (data, as in CMSIS-NN's test plan);
``<op>_call(case, rng)`` turns one into a ``KernelCall`` with random data from ``rng``.
atomsim.nn.registry ties each operator's cases and generator to its record.

Shape fields (all optional, op-dependent): h, w, c (input), co (output channels), k / kh, kw
(window), s / sh, sw (stride), pt, pl (top / left pad), pb, pr (bottom / right pad, used to
derive the output size), n (FC batches). Quantization fields: zp_in, zp_out (fixed zero
points, else random), mult (scale of the real multipliers relative to a value that keeps
outputs inside int8; large values saturate), act ("none", "relu", "relu6").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atomsim.nn.ops import quant

Dims = tuple[int, int, int, int]
NO_DIMS: Dims = (0, 0, 0, 0)


@dataclass
class KernelCall:
    """One kernel invocation: operator name, dims (n, h, w, c), parameter record, arrays.

    Field names are the harness job descriptor's (firmware/harness/harness.c), which the
    profiler packs by name; ``filter`` also carries the hard-sigmoid table.
    """

    op: str
    in_dims: Dims
    out_dims: Dims
    params: object = None  # the operator's record from atomsim.nn.ops.quant, or None
    in2_dims: Dims = NO_DIMS
    filter_dims: Dims = NO_DIMS
    input: np.ndarray | None = None
    input2: np.ndarray | None = None
    filter: np.ndarray | None = None
    bias: np.ndarray | None = None
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None

    @property
    def out_hw(self) -> tuple[int, int]:
        """Output height and width (window kernels take them, as the C kernels take dims)."""
        return int(self.out_dims[1]), int(self.out_dims[2])

    @property
    def kernel_hw(self) -> tuple[int, int]:
        """Window height and width from filter_dims (convolutions and pooling)."""
        return int(self.filter_dims[1]), int(self.filter_dims[2])


@dataclass(frozen=True)
class ShapeCase:
    """One named shape case of one operator."""

    op: str
    name: str
    shape: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        """pytest id: op-name."""
        return f"{self.op}-{self.name}"


def _dims(shape) -> Dims:
    return tuple(int(d) for d in shape)


# ---------------------------------------------------------------- data generation ---------

def _int8(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


def _zp(rng: np.random.Generator, shape: dict, key: str) -> int:
    return int(shape[key]) if key in shape else int(rng.integers(-128, 128))


def _window(shape: dict) -> dict:
    """Normalise kernel / stride / padding fields and derive the output size."""
    kh = shape.get("kh", shape.get("k", 1))
    kw = shape.get("kw", shape.get("k", 1))
    sh = shape.get("sh", shape.get("s", 1))
    sw = shape.get("sw", shape.get("s", 1))
    pt, pl, pb, pr = (shape.get(k, 0) for k in ("pt", "pl", "pb", "pr"))
    out_h = quant.conv_output_size(shape["h"], kh, sh, pt, pb)
    out_w = quant.conv_output_size(shape["w"], kw, sw, pl, pr)
    return dict(kh=kh, kw=kw, sh=sh, sw=sw, pt=pt, pl=pl, out_hw=(out_h, out_w))


def _multipliers(rng: np.random.Generator, shape: dict, n: int, depth: int):
    """Per-channel (multiplier, shift) whose outputs mostly land in int8 (or saturate)."""
    mult = shape.get("mult", 1.0)
    if mult == "extremes":
        # from the smallest representable scale up to positive shifts
        reals = np.geomspace(2.0 ** -31, 6.0, n) * rng.uniform(0.9, 1.1, n)
    elif mult == "fast_edges":
        # shifts -23 ... -2: both ends of the DSP kernels' fast requantization range
        reals = np.geomspace(1.01 * 2.0 ** -24, 0.249, n)
    else:
        # |acc| is about sqrt(depth) * 74 * 74 for uniform int8 data and weights
        base = 60.0 / (np.sqrt(depth) * 74.0 * 74.0)
        reals = base * float(mult) * rng.uniform(0.5, 2.0, n)
    return quant.per_channel_multipliers(reals)


def _act(shape: dict, scale: float, zp: int) -> tuple[int, int]:
    return quant.activation_range(shape.get("act", "none"), scale, zp)


def conv_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Normal, depthwise or pointwise convolution (case.op says which)."""
    s = case.shape
    win = _window(s)
    c_in = s["c"]
    depthwise = case.op == "depthwise_conv"
    co = c_in if depthwise else s["co"]
    zp_in, zp_out = _zp(rng, s, "zp_in"), _zp(rng, s, "zp_out")
    out_scale = 0.05
    lo, hi = _act(s, out_scale, zp_out)
    x = _int8(rng, (1, s["h"], s["w"], c_in))
    if depthwise:
        filt = _int8(rng, (1, win["kh"], win["kw"], c_in))
        depth = win["kh"] * win["kw"]
    else:
        filt = _int8(rng, (co, win["kh"], win["kw"], c_in))
        depth = win["kh"] * win["kw"] * c_in
    filt[filt == -128] = -127  # TFLite int8 weights are symmetric: [-127, 127]
    bias = rng.integers(-20000, 20000, size=co, dtype=np.int64).astype(np.int32)
    mult, shift = _multipliers(rng, s, co, depth)
    params = quant.ConvParams(win["sh"], win["sw"], win["pt"], win["pl"], 1, 1, -zp_in,
                              zp_out, lo, hi)
    return KernelCall(case.op, _dims(x.shape), (1, *win["out_hw"], co), params,
                      filter_dims=_dims(filt.shape), input=x, filter=filt, bias=bias,
                      multiplier=mult, shift=shift)


def fully_connected_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Fully connected: N rows of H * W * C inputs; weights (C_OUT, ACCUM)."""
    s = case.shape
    n, h, w, c, co = s.get("n", 1), s.get("h", 1), s.get("w", 1), s["c"], s["co"]
    zp_in, zp_out = _zp(rng, s, "zp_in"), _zp(rng, s, "zp_out")
    x = _int8(rng, (n, h, w, c))
    weights = _int8(rng, (co, h * w * c))
    weights[weights == -128] = -127
    bias = rng.integers(-20000, 20000, size=co, dtype=np.int64).astype(np.int32)
    per_channel = s.get("per_channel", 1)
    mult, shift = _multipliers(rng, s, co if per_channel else 1, h * w * c)
    params = quant.FcParams(-zp_in, zp_out, -128, 127, per_channel)
    return KernelCall(case.op, _dims(x.shape), (n, 1, 1, co), params,
                      filter_dims=(co, 1, 1, h * w * c), input=x, filter=weights, bias=bias,
                      multiplier=mult, shift=shift)


def pad_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Constant spatial padding."""
    s = case.shape
    x = _int8(rng, (1, s["h"], s["w"], s["c"]))
    params = quant.PadParams(s.get("pt", 0), s.get("pb", 0), s.get("pl", 0), s.get("pr", 0),
                             _zp(rng, s, "zp_in"))
    out = (1, s["h"] + params.pad_top + params.pad_bottom,
           s["w"] + params.pad_left + params.pad_right, s["c"])
    return KernelCall(case.op, _dims(x.shape), out, params, input=x)


def _scales(rng: np.random.Generator, shape: dict) -> tuple[float, float, float]:
    ratio = float(shape.get("ratio", 1.0))
    s1 = float(rng.uniform(0.01, 0.1))
    return s1, s1 * ratio * float(rng.uniform(0.5, 2.0)), float(rng.uniform(0.01, 0.1))


def add_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Elementwise add of two same-shape tensors."""
    s = case.shape
    dims = (1, s["h"], s["w"], s["c"])
    x1, x2 = _int8(rng, dims), _int8(rng, dims)
    zp_in, zp2, zp_out = _zp(rng, s, "zp_in"), _zp(rng, s, "zp_in"), _zp(rng, s, "zp_out")
    s1, s2, so = _scales(rng, s)
    if "exact_ratio" in s:  # s2 / s1 exactly a power of two: exact multipliers, ties
        s2 = s1 * float(s["exact_ratio"])
    lo, hi = _act(s, so, zp_out)
    params = quant.add_quant_params(s1, zp_in, s2, zp2, so, zp_out, lo, hi)
    return KernelCall(case.op, dims, dims, params, in2_dims=dims, input=x1, input2=x2)


def mul_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Multiply, elementwise or broadcast per channel."""
    s = case.shape
    dims = (1, s["h"], s["w"], s["c"])
    x1 = _int8(rng, dims)
    x2 = _int8(rng, (1, 1, 1, s["c"]) if s.get("broadcast") else dims)
    zp_in, zp2, zp_out = _zp(rng, s, "zp_in"), _zp(rng, s, "zp_in"), _zp(rng, s, "zp_out")
    s1, s2 = float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.01, 0.1))
    # |product| is about 74 * 74 steps of s1 * s2; aim the output near 60 steps
    so = s1 * s2 * 74.0 * 74.0 / 60.0 / float(s.get("mult", 1.0))
    lo, hi = _act(s, so, zp_out)
    params = quant.mul_quant_params(s1, zp_in, s2, zp2, so, zp_out, lo, hi)
    return KernelCall(case.op, dims, dims, params, in2_dims=_dims(x2.shape), input=x1,
                      input2=x2)


def pool_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Average or max pooling (case.op says which)."""
    s = case.shape
    win = _window(s)
    x = _int8(rng, (1, s["h"], s["w"], s["c"]))
    lo, hi = _act(s, 0.05, _zp(rng, s, "zp_out"))
    params = quant.PoolParams(win["sh"], win["sw"], win["pt"], win["pl"], lo, hi)
    return KernelCall(case.op, _dims(x.shape), (1, *win["out_hw"], s["c"]), params,
                      filter_dims=(1, win["kh"], win["kw"], 1), input=x)


def global_avgpool_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Global average pooling; ``values`` narrows the data range (int16 lane limits)."""
    s = case.shape
    if "values" in s:  # data from a narrow range: sums near the int16 lanes' limits
        lo_v, hi_v = s["values"]
        x = rng.integers(lo_v, hi_v + 1, size=(1, s["h"], s["w"], s["c"])).astype(np.int8)
    else:
        x = _int8(rng, (1, s["h"], s["w"], s["c"]))
    lo, hi = _act(s, 0.05, _zp(rng, s, "zp_out"))
    return KernelCall(case.op, _dims(x.shape), (1, 1, 1, s["c"]),
                      quant.GlobalPoolParams(lo, hi), input=x)


def relu_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Standalone ReLU / ReLU6 (shape field ``act``), optionally rescaling."""
    s = case.shape
    x = _int8(rng, (1, s["h"], s["w"], s["c"]))
    in_scale = float(rng.uniform(0.01, 0.1))
    out_scale = in_scale / float(s.get("ratio", 1.0))
    params = quant.relu_quant_params(in_scale, _zp(rng, s, "zp_in"), out_scale,
                                     _zp(rng, s, "zp_out"), s["act"])
    return KernelCall(case.op, _dims(x.shape), _dims(x.shape), params, input=x)


def _activation_input(rng: np.random.Generator, s: dict) -> np.ndarray:
    if s.get("all_values"):
        return np.arange(-128, 128, dtype=np.int64).astype(np.int8).reshape(1, 16, 16, 1)
    return _int8(rng, (1, s["h"], s["w"], s["c"]))


def hard_swish_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Hard-swish with random (or given) scales."""
    s = case.shape
    x = _activation_input(rng, s)
    in_scale = float(s.get("in_scale", rng.uniform(0.02, 0.06)))
    out_scale = float(s.get("out_scale", in_scale * rng.uniform(0.6, 1.0)))
    params = quant.hard_swish_quant_params(in_scale, _zp(rng, s, "zp_in"), out_scale,
                                           _zp(rng, s, "zp_out"))
    return KernelCall(case.op, _dims(x.shape), _dims(x.shape), params, input=x)


def hard_sigmoid_call(case: ShapeCase, rng: np.random.Generator) -> KernelCall:
    """Hard-sigmoid through its 256-entry table (carried in ``filter``)."""
    s = case.shape
    x = _activation_input(rng, s)
    lut = quant.hard_sigmoid_lut(float(rng.uniform(0.02, 0.06)), _zp(rng, s, "zp_in"),
                                 1.0 / 256.0, _zp(rng, s, "zp_out"))
    return KernelCall(case.op, _dims(x.shape), _dims(x.shape), None, input=x, filter=lut)


# ---------------------------------------------------------------- named shape cases -------

CONV_CASES: dict[str, dict] = dict(
    stem_3x3_s2_c3=dict(h=9, w=9, c=3, co=8, k=3, s=2, pt=1, pl=1, pb=1, pr=1),
    c5_co7_same=dict(h=6, w=5, c=5, co=7, k=3, s=1, pt=1, pl=1, pb=1, pr=1),
    spatial_1x1=dict(h=1, w=1, c=6, co=5, k=1, s=1),
    k1x3_asym_pad=dict(h=5, w=7, c=4, co=6, kh=1, kw=3, s=1, pt=0, pl=2, pb=0, pr=0),
    k5x2_stride_2x1=dict(h=9, w=6, c=2, co=3, kh=5, kw=2, sh=2, sw=1, pt=2, pl=0, pb=2,
                         pr=1),
    valid_stride2_crop=dict(h=8, w=8, c=3, co=4, k=3, s=2, pb=-1, pr=-1),
    zp_in_min=dict(h=5, w=5, c=3, co=4, k=3, s=1, pt=1, pl=1, pb=1, pr=1, zp_in=-128),
    zp_in_max=dict(h=5, w=5, c=3, co=4, k=3, s=1, pt=1, pl=1, pb=1, pr=1, zp_in=127,
                   zp_out=-128),
    saturate_relu6=dict(h=4, w=4, c=8, co=9, k=3, s=1, pt=1, pl=1, pb=1, pr=1, mult=40.0,
                        act="relu6"),
    shift_extremes=dict(h=3, w=3, c=4, co=12, k=2, s=1, mult="extremes"),
)

DEPTHWISE_CONV_CASES: dict[str, dict] = dict(
    k3_s1_c8=dict(h=6, w=6, c=8, k=3, s=1, pt=1, pl=1, pb=1, pr=1),
    k3_s2_c7=dict(h=7, w=9, c=7, k=3, s=2, pt=1, pl=1, pb=1, pr=1),
    k3_nopad_c16=dict(h=8, w=10, c=16, k=3, s=1),
    k5_pad2_c5=dict(h=7, w=6, c=5, k=5, s=1, pt=2, pl=2, pb=2, pr=2),
    spatial_1x1_padded=dict(h=1, w=1, c=6, k=3, s=1, pt=1, pl=1, pb=1, pr=1),
    asym_pad_c3=dict(h=6, w=5, c=3, k=3, s=2, pt=0, pl=1, pb=1, pr=0),
    k3x1_c4=dict(h=5, w=4, c=4, kh=3, kw=1, s=1, pt=1, pb=1),
    zp_in_min=dict(h=5, w=5, c=9, k=3, s=1, pt=1, pl=1, pb=1, pr=1, zp_in=-128),
    zp_in_max_relu=dict(h=5, w=5, c=9, k=3, s=1, zp_in=127, act="relu"),
    saturate=dict(h=5, w=6, c=12, k=3, s=1, pt=1, pl=1, pb=1, pr=1, mult=50.0),
    shift_extremes=dict(h=4, w=4, c=12, k=3, s=1, mult="extremes"),
    k3_s2_pad_c20=dict(h=9, w=8, c=20, k=3, s=2, pt=1, pl=1, pb=1, pr=0),
    k3_asym_pad_c13=dict(h=6, w=7, c=13, k=3, s=1, pt=0, pl=2, pb=2, pr=0, act="relu6"),
    k3_fast_shift_edges=dict(h=5, w=6, c=24, k=3, s=1, pt=1, pl=0, pb=0, pr=1,
                             mult="fast_edges"),
)

POINTWISE_CONV_CASES: dict[str, dict] = dict(
    c16_co16=dict(h=4, w=4, c=16, co=16),
    c1_co1=dict(h=3, w=3, c=1, co=1),
    c3_co5_odd_pixels=dict(h=3, w=5, c=3, co=5),
    c5_co2=dict(h=2, w=3, c=5, co=2),
    c17_co7=dict(h=2, w=2, c=17, co=7),
    c32_co24_stride2=dict(h=6, w=7, c=32, co=24, s=2),
    spatial_1x1=dict(h=1, w=1, c=24, co=13),
    zp_in_min=dict(h=3, w=3, c=8, co=8, zp_in=-128, zp_out=127),
    zp_in_max=dict(h=3, w=3, c=8, co=8, zp_in=127, zp_out=-128),
    saturate_relu=dict(h=3, w=3, c=12, co=10, mult=30.0, act="relu"),
    shift_extremes=dict(h=2, w=3, c=8, co=12, mult="extremes"),
    c20_co22_fast_shift_edges=dict(h=3, w=3, c=20, co=22, mult="fast_edges"),
    # DSP: C_IN % 8 == 0 takes the one-asm-block channel-pair loop; odd channel and pixel
    # counts finish in C; clamped, zero points and shifts at the fast-path extremes
    c8_co3_odd_pixels=dict(h=3, w=3, c=8, co=3),
    c16_co2_relu6=dict(h=2, w=5, c=16, co=2, mult=30.0, act="relu6"),
    c24_co9_fast_shift_edges=dict(h=3, w=4, c=24, co=9, mult="fast_edges"),
    c32_co8_zp_extremes_relu=dict(h=2, w=3, c=32, co=8, zp_in=-128, zp_out=127,
                                  act="relu"),
    c48_co6_stride2=dict(h=5, w=5, c=48, co=6, s=2),
)

FULLY_CONNECTED_CASES: dict[str, dict] = dict(
    per_channel=dict(c=40, co=10),
    per_tensor=dict(c=33, co=7, per_channel=0),
    batch2_from_hw=dict(n=2, h=2, w=3, c=5, co=6),
    accum1=dict(c=1, co=3),
    zp_extremes=dict(c=12, co=5, zp_in=-128, zp_out=127),
    saturate=dict(c=20, co=4, mult=40.0),
)

PAD_CASES: dict[str, dict] = dict(
    all_sides=dict(h=4, w=5, c=3, pt=1, pb=1, pl=1, pr=1),
    asymmetric=dict(h=3, w=4, c=5, pt=0, pb=2, pl=3, pr=0),
    none=dict(h=2, w=2, c=4),
    zp_min=dict(h=2, w=3, c=1, pt=2, pb=0, pl=0, pr=1, zp_in=-128),
    # DSP: unaligned rows with 16-byte blocks (3 channels), aligned LDM/STM rows (32)
    c3_w32_right_bottom=dict(h=4, w=32, c=3, pt=0, pb=1, pl=0, pr=1),
    c32_all_sides_max=dict(h=3, w=4, c=32, pt=1, pb=1, pl=1, pr=1, zp_in=127),
    spatial_1x1_min=dict(h=1, w=1, c=5, pt=2, pb=1, pl=1, pr=3, zp_in=-128),
    rows_only_c5=dict(h=3, w=7, c=5, pt=2, pb=3),  # no left / right: one copy
    cols_only_c1=dict(h=5, w=9, c=1, pl=2, pr=1),  # runs of 1 to 3 bytes
    wide_asym_c7_max=dict(h=2, w=11, c=7, pl=5, pr=2, zp_in=127),
)

ADD_CASES: dict[str, dict] = dict(
    odd_size=dict(h=3, w=5, c=7),
    zp_extremes=dict(h=4, w=4, c=4, zp_in=-128, zp_out=127),
    relu=dict(h=2, w=3, c=9, act="relu"),
    scale_ratio_large=dict(h=3, w=3, c=5, ratio=40.0),
    # DSP fast path: 4 per pass + 1 left over; zero points at the extremes, clamped
    c13_odd_tail=dict(h=5, w=5, c=13),
    zp_in_max_relu6=dict(h=3, w=3, c=7, zp_in=127, zp_out=-128, act="relu6"),
    # input shift beyond -(left_shift + 1): the DSP kernel's general path
    scale_ratio_tiny=dict(h=3, w=3, c=5, ratio=1e-7),
    # exact power-of-two scale ratios: input 2's multiplier is 2^30 with shift -20 / -21,
    # so its rescale (x + off) * 2^20 / 2^21 (/ 2^22) hits RoundingDivideByPOT ties for
    # every odd x + off, through the fast path's sign-dependent constant
    exact_ratio_2p20_ties=dict(h=4, w=5, c=9, exact_ratio=2.0 ** -20),
    exact_ratio_2p21_ties=dict(h=3, w=5, c=7, exact_ratio=2.0 ** -21, act="relu"),
    exact_ratio_2p22_general=dict(h=3, w=3, c=5, exact_ratio=2.0 ** -22),
)

MUL_CASES: dict[str, dict] = dict(
    elementwise=dict(h=3, w=5, c=7),
    broadcast_c13=dict(h=4, w=3, c=13, broadcast=True),
    broadcast_1x1=dict(h=1, w=1, c=5, broadcast=True),
    zp_extremes=dict(h=3, w=3, c=4, zp_in=-128, zp_out=127),
    saturate=dict(h=2, w=4, c=6, mult=30.0),
    broadcast_c7_odd=dict(h=3, w=4, c=7, broadcast=True),
    broadcast_c16_relu=dict(h=2, w=3, c=16, broadcast=True, act="relu"),
    odd_zp_max_relu6=dict(h=3, w=3, c=5, zp_in=127, zp_out=-128, act="relu6"),
    # output shift below -23: the DSP kernel's general requantization
    tiny_scale=dict(h=2, w=3, c=5, mult=1e-6),
)

AVGPOOL_CASES: dict[str, dict] = dict(
    k2_s2=dict(h=6, w=6, c=5, k=2, s=2),
    k3_s1_pad1=dict(h=5, w=4, c=6, k=3, s=1, pt=1, pl=1, pb=1, pr=1),
    k3_s2_asym=dict(h=7, w=6, c=3, k=3, s=2, pt=0, pl=1, pb=1, pr=0),
    k3_s2_crop=dict(h=8, w=8, c=4, k=3, s=2, pb=-1, pr=-1),
    relu_clamp=dict(h=4, w=4, c=3, k=2, s=1, act="relu"),
    # DSP: 8 + 4 + 1 channels, border windows of 4 and 6 elements (even d), clamped
    k3_s1_pad1_c13_relu6=dict(h=5, w=6, c=13, k=3, s=1, pt=1, pl=1, pb=1, pr=1,
                              act="relu6"),
    k2_s2_c16=dict(h=4, w=6, c=16, k=2, s=2),
    k1_window=dict(h=3, w=3, c=8, k=1, s=1),  # one element per window: exact path
    k17x16_window=dict(h=17, w=16, c=4, kh=17, kw=16),  # 272 > 256: exact path
)

MAXPOOL_CASES: dict[str, dict] = dict(
    k2_s2=dict(h=6, w=6, c=5, k=2, s=2),
    k3_s1_pad1=dict(h=5, w=4, c=6, k=3, s=1, pt=1, pl=1, pb=1, pr=1),
    k3_s2_asym=dict(h=7, w=6, c=3, k=3, s=2, pt=0, pl=1, pb=1, pr=0),
    relu6_clamp=dict(h=4, w=4, c=3, k=2, s=1, act="relu6"),
    # DSP: 16 + 4 + 1 channels, clipped border windows, clamped and not
    k3_s2_pad1_c21=dict(h=7, w=6, c=21, k=3, s=2, pt=1, pl=1, pb=1, pr=0),
    k2_s2_c16_relu=dict(h=4, w=4, c=16, k=2, s=2, act="relu"),
)

GLOBAL_AVGPOOL_CASES: dict[str, dict] = dict(
    h7_w7_c13=dict(h=7, w=7, c=13),
    spatial_1x1=dict(h=1, w=1, c=5),
    h4_w6_c16=dict(h=4, w=6, c=16),
    clamp=dict(h=3, w=3, c=8, act="relu6"),
    # DSP: 16 + 8 + 4 + 1 channels; even and odd H * W; 1 x 1 (the reference's division)
    h5_w6_c29_relu=dict(h=5, w=6, c=29, act="relu"),
    spatial_1x1_c21=dict(h=1, w=1, c=21),
    c3_only_scalar=dict(h=4, w=5, c=3),
    # H * W > 256: int16 lanes flushed every 256 pixels (272 and 529 = 2 * 256 + 17)
    h17_w16_c20=dict(h=17, w=16, c=20),
    h23_w23_c7_relu6=dict(h=23, w=23, c=7, act="relu6"),
    # sums that would overflow an int16 lane without the flush: 272 * 127, 300 * -128
    h17_w16_c12_near_max=dict(h=17, w=16, c=12, values=(125, 127)),
    h20_w15_c8_near_min=dict(h=20, w=15, c=8, values=(-128, -126)),
    # exactly 256 pixels: one full lane, no flush
    h16_w16_c4_all_min=dict(h=16, w=16, c=4, values=(-128, -128)),
    # H * W > 4096: past the reciprocal's proven range, the reference's division
    h65_w64_c5=dict(h=65, w=64, c=5),
)

RELU_CASES: dict[str, dict] = dict(
    relu=dict(h=3, w=4, c=5, act="relu"),
    relu6=dict(h=3, w=4, c=5, act="relu6"),
    rescale_up=dict(h=2, w=2, c=9, act="relu", ratio=3.0),
    zp_extremes=dict(h=2, w=3, c=4, zp_in=127, zp_out=-128, act="relu6"),
    # >= 320 elements: the DSP kernel's 256-entry table path (count % 4 == 3, 0, 1)
    table_relu6_c7=dict(h=7, w=7, c=7, act="relu6"),
    table_zp_extremes=dict(h=8, w=8, c=5, zp_in=127, zp_out=-128, act="relu6"),
    table_rescale_up=dict(h=9, w=9, c=5, act="relu", ratio=3.0),
)

HARD_SWISH_CASES: dict[str, dict] = dict(
    typical=dict(h=3, w=4, c=5),
    wide_input=dict(h=4, w=4, c=4, in_scale=0.2, out_scale=0.1),
    narrow_input=dict(h=4, w=4, c=4, in_scale=0.003, out_scale=0.002),
    all_values=dict(h=16, w=16, c=1, all_values=True),
    zp_extremes=dict(h=3, w=3, c=3, zp_in=-128, zp_out=127),
    # >= 320 elements: the DSP kernel's 256-entry table path
    table_c7=dict(h=7, w=7, c=7),
    table_zp_extremes=dict(h=8, w=8, c=5, zp_in=-128, zp_out=127),
    table_wide_input=dict(h=9, w=9, c=5, in_scale=0.2, out_scale=0.1),
)

HARD_SIGMOID_CASES: dict[str, dict] = dict(
    typical=dict(h=3, w=4, c=5),
    all_values=dict(h=16, w=16, c=1, all_values=True),
    zp_extremes=dict(h=2, w=3, c=4, zp_in=127, zp_out=-128),
    odd_count=dict(h=3, w=5, c=7),
)
