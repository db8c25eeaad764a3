"""Numpy int8 execution of a :class:`~atomsim.nn.graph.Graph`, bit-exact with TFLite semantics.

Each atom op becomes the kernel call the firmware makes (:func:`kernel_call`: parameters derived
from the tensors' scales and zero points the way TFLite's ``Prepare()`` derives them, with
:mod:`atomsim.nn.ops.quant`) and runs the integer-exact reference of that kernel
(:mod:`atomsim.nn.registry`, :mod:`atomsim.nn.ops.reference`). Ops with no atom kernel
(softmax, logistic, MEAN) are implemented here after TFLite's reference kernels (gemmlowp
fixed point), so that a whole imported model can be compared with TensorFlow Lite Micro bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from atomsim.core.errors import ConfigError
from atomsim.nn import registry
from atomsim.nn.graph import Graph, GraphError
from atomsim.nn.ops import quant as q
from atomsim.nn.ops.cases import KernelCall

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _scale_zp(graph: Graph, t: int) -> tuple[float, int]:
    quant = graph.tensors[t].quant
    if quant is None:
        raise GraphError(f"tensor {t} ({graph.tensors[t].name}) has no quantization; give the "
                         "graph weights first (lowering.with_random_weights)", tensor_id=t)
    return quant.per_tensor


# ---- gemmlowp fixed point (int32 raw values held in Python ints / int64 arrays) ----------------

def _sat_shift_left(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT for exponent > 0 on int32."""
    threshold = (1 << (31 - exponent)) - 1
    out = x << exponent
    out = np.where(x > threshold, INT32_MAX, out)
    return np.where(x < -threshold, INT32_MIN, out)


def _mul(a, b) -> np.ndarray:
    """FixedPoint multiplication: SaturatingRoundingDoublingHighMul of the raw values."""
    return q.srdhm(a, b)


def _exp_on_interval(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), Q0.31 in and out (gemmlowp)."""
    constant_term = 1895147668  # exp(-1/8)
    one_third = 715827883
    x = a + (1 << 28)
    x2 = _mul(x, x)
    x3 = _mul(x2, x)
    x4 = _mul(x2, x2)
    x4_over_4 = q.rdbpot(x4, 2)
    poly = q.rdbpot(_mul(x4_over_4 + x3, one_third) + x2, 1)
    return constant_term + _mul(constant_term, x + poly)


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
           (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: a is Q(integer_bits).(31-integer_bits), a <= 0;
    returns exp(a) in Q0.31."""
    a = np.asarray(a, dtype=np.int64)
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_on_interval(_sat_shift_left(a_mod, integer_bits) if integer_bits else a_mod)
    remainder = a_mod - a
    for exponent, multiplier in _BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where(remainder & bit, _mul(result, multiplier), result)
    if integer_bits > 5:  # inputs below -32 give 0
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a: int) -> int:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 (Q0.31 in, Q0.31 out), Newton-Raphson."""
    s = a + INT32_MAX
    half_denominator = (s + 1) // 2 if s >= 0 else -((1 - s) // 2)  # RoundingHalfSum
    x = 1515870810 + int(_mul(half_denominator, -1010580540))
    one_f2 = 1 << 29
    for _ in range(3):
        hdx = int(_mul(half_denominator, x))
        x = x + int(_sat_shift_left(np.int64(_mul(x, one_f2 - hdx)), 2))
    return int(_sat_shift_left(np.int64(x), 1))


def _reciprocal(x: int, integer_bits: int) -> tuple[int, int]:
    """TFLite GetReciprocal: (Q0.31 of 1/x scaled, num_bits_over_unit)."""
    headroom_plus_one = 32 - int(x).bit_length() if x > 0 else 0
    num_bits_over_unit = integer_bits - headroom_plus_one
    shifted_minus_one = ((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    if shifted_minus_one >= 1 << 31:
        shifted_minus_one -= 1 << 32
    return _one_over_one_plus_x(shifted_minus_one), num_bits_over_unit


def softmax_params(in_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """TFLite int8 softmax Prepare(): (input_multiplier, input_left_shift, diff_min)."""
    integer_bits = 5
    real = min(beta * in_scale * (1 << (31 - integer_bits)), float((1 << 31) - 1))
    multiplier, shift = q.quantize_multiplier(real)
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits))
                        / (1 << shift))
    return multiplier, shift, -radius


def softmax_s8(x: np.ndarray, in_scale: float, beta: float = 1.0) -> np.ndarray:
    """int8 softmax over the last axis, output scale 1/256 and zero point -128 (TFLite)."""
    multiplier, left_shift, diff_min = softmax_params(in_scale, beta)
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
    out = np.empty(rows.shape, dtype=np.int8)
    for r, row in enumerate(rows):
        diff = row - row.max()
        valid = diff >= diff_min
        scaled = q.srdhm(q.wrap_int32(diff << left_shift), multiplier)
        exps = exp_on_negative_values(np.where(valid, scaled, 0), 5)
        total = int(np.sum(np.where(valid, q.rdbpot(exps, 12), 0)))
        scale, bits_over_unit = _reciprocal(total, 12)
        exponent = bits_over_unit + 31 - 8
        y = q.rdbpot(_mul(scale, exps), exponent) - 128
        out[r] = np.where(valid, np.clip(y, -128, 127), -128)
    return out.reshape(x.shape)


# ---- the interpreter ----------------------------------------------------------------------

# Graph op kinds -> the kernel (operator of atomsim.nn.registry) that runs them.
KERNEL_OF = {"pad": "pad", "conv": "conv", "dw": "depthwise_conv", "pw": "pointwise_conv",
             "fc": "fully_connected", "add": "add", "mul": "mul", "mul_bcast": "mul",
             "avgpool": "avgpool", "maxpool": "maxpool", "global_avgpool": "global_avgpool",
             "relu": "relu", "relu6": "relu", "hard_swish": "hard_swish",
             "hard_sigmoid": "hard_sigmoid"}


def kernel_call(graph: Graph, index: int,
                inputs: Sequence[np.ndarray | None] = (None, None)) -> KernelCall:
    """The kernel call op ``index`` makes: operator, dims, the parameter record and the
    constant arrays (filter, bias, per-channel multiplier and shift, hard-sigmoid table),
    derived from the tensors' scales and zero points as TFLite's ``Prepare()`` does.

    The numpy interpreter and the network firmware both run these calls, so the two derive
    their parameters in one place. ``inputs`` are the activation arrays (None: shapes only).
    """
    op = graph.ops[index]
    kind = op.kind
    if kind not in KERNEL_OF:
        raise GraphError(f"op {index} ({kind}) has no atom kernel", op_index=index)
    acts = graph.activation_inputs(op)
    in_dims = graph.tensors[acts[0]].nhwc
    out_dims = graph.tensors[op.outputs[0]].nhwc
    x = inputs[0] if inputs else None
    x2 = inputs[1] if len(inputs) > 1 else None
    s_in, zp_in = _scale_zp(graph, acts[0])
    s_out, zp_out = _scale_zp(graph, op.outputs[0])
    lo, hi = q.activation_range(op.param("activation", "none"), s_out, zp_out)
    name = KERNEL_OF[kind]
    if kind in ("conv", "dw", "pw", "fc"):
        wt = graph.tensors[op.inputs[1]]
        if wt.data is None or wt.quant is None:
            raise GraphError(f"op {index} ({kind}): weights have no data; give the graph "
                             "weights first (lowering.with_random_weights)", op_index=index)
        bias = graph.tensors[op.inputs[2]].data if len(op.inputs) > 2 else None
        c_out = out_dims[3]
        w_scales = np.asarray(wt.quant.scale, dtype=np.float64)
        if len(w_scales) == 1:
            w_scales = np.repeat(w_scales, c_out)
        mult, shift = q.per_channel_multipliers(s_in * w_scales / s_out)
        if kind == "fc":
            filt = wt.data.reshape(c_out, 1, 1, -1)
            params = q.FcParams(-zp_in, zp_out, lo, hi, 1)
            in_dims = (1, 1, 1, int(np.prod(in_dims)))
            x = None if x is None else x.reshape(in_dims)
        else:
            filt = wt.data
            stride = op.param("stride", 1)
            pt, pl, _, _ = op.param("padding", (0, 0, 0, 0))
            params = q.ConvParams(stride, stride, pt, pl, 1, 1, -zp_in, zp_out, lo, hi)
        return KernelCall(name, in_dims, out_dims, params, filter_dims=filt.shape, input=x,
                          filter=filt, bias=bias, multiplier=mult, shift=shift)
    if kind == "pad":
        pt, pl, pb, pr = op.param("padding")
        return KernelCall(name, in_dims, out_dims, q.PadParams(pt, pb, pl, pr, zp_out),
                          input=x)
    if kind in ("add", "mul", "mul_bcast"):
        s2, zp2 = _scale_zp(graph, acts[1])
        in2_dims = graph.tensors[acts[1]].nhwc
        if kind == "add":
            params = q.add_quant_params(s_in, zp_in, s2, zp2, s_out, zp_out, lo, hi)
        else:
            params = q.mul_quant_params(s_in, zp_in, s2, zp2, s_out, zp_out, lo, hi)
        return KernelCall(name, in_dims, out_dims, params, in2_dims=in2_dims, input=x,
                          input2=x2)
    if kind in ("avgpool", "maxpool"):
        stride = op.param("stride", 1)
        pt, pl, _, _ = op.param("padding", (0, 0, 0, 0))
        kh, kw = op.param("kernel")
        return KernelCall(name, in_dims, out_dims, q.PoolParams(stride, stride, pt, pl, lo, hi),
                          filter_dims=(1, kh, kw, 1), input=x)
    if kind == "global_avgpool":
        return KernelCall(name, in_dims, out_dims, q.GlobalPoolParams(lo, hi), input=x)
    if kind in ("relu", "relu6"):
        return KernelCall(name, in_dims, out_dims,
                          q.relu_quant_params(s_in, zp_in, s_out, zp_out, kind), input=x)
    if kind == "hard_swish":
        return KernelCall(name, in_dims, out_dims,
                          q.hard_swish_quant_params(s_in, zp_in, s_out, zp_out), input=x)
    lut = q.hard_sigmoid_lut(s_in, zp_in, s_out, zp_out)  # hard_sigmoid
    return KernelCall(name, in_dims, out_dims, None, input=x, filter=lut)


def run_op(graph: Graph, index: int, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """Execute op ``index`` on its activation inputs; returns its int8 output (NHWC)."""
    op = graph.ops[index]
    kind = op.kind
    x = inputs[0]
    out_shape = graph.tensors[op.outputs[0]].shape
    if kind == "reshape":
        return x.reshape(out_shape)
    if kind in KERNEL_OF:
        call = kernel_call(graph, index, inputs)
        return registry.expected_output(call).reshape(out_shape)
    s_in, zp_in = _scale_zp(graph, op.inputs[0])
    s_out, zp_out = _scale_zp(graph, op.outputs[0])
    if kind == "mean":
        return mean_s8(x, s_in, zp_in, s_out, zp_out)
    if kind == "logistic":
        if (s_out, zp_out) != (1 / 256, -128):
            raise GraphError(f"op {index} (logistic): output must be scale 1/256, zero point "
                             f"-128 (TFLite int8), got {s_out}, {zp_out}", op_index=index)
        return logistic_s8(x, s_in, zp_in)
    if kind == "softmax":
        if (s_out, zp_out) != (1 / 256, -128):
            raise GraphError(f"op {index} (softmax): output must be scale 1/256, zero point "
                             f"-128 (TFLite int8), got {s_out}, {zp_out}", op_index=index)
        return softmax_s8(x, s_in, op.param("beta", 1.0))
    raise GraphError(f"op {index} ({kind}): the numpy interpreter has no kernel for it",
                     op_index=index)


def mean_s8(x: np.ndarray, s_in: float, zp_in: int, s_out: float, zp_out: int) -> np.ndarray:
    """TFLite MEAN over H and W of an int8 NHWC tensor, keeping (1, 1, 1, C).

    TFLite's integer QuantizedMeanOrSum: the multiplier of s_in / s_out takes the 1/count
    factor in (``fold`` bits of headroom, integer division), then the zero-point-corrected
    sum is requantized with it.
    """
    count = x.shape[1] * x.shape[2]
    multiplier, shift = q.quantize_multiplier(s_in / s_out)
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier, shift = (multiplier << fold) // count, shift - fold
    total = (x.astype(np.int64) - zp_in).sum(axis=(1, 2), keepdims=True)
    out = q.multiply_by_quantized_multiplier(total, multiplier, shift) + zp_out
    return np.clip(out, -128, 127).astype(np.int8)


def logistic_params(s_in: float) -> tuple[int, int, int]:
    """TFLite int8 logistic Prepare(): (input_multiplier, input_left_shift, input_range_radius)
    of the input rescale to Q4.27; |input - zero point| >= radius saturates."""
    integer_bits = 4
    real = s_in * (1 << (31 - integer_bits))
    frac, left_shift = math.frexp(real)
    multiplier = int(math.copysign(math.floor(abs(frac) * (1 << 31) + 0.5), frac))
    radius = math.floor(math.ldexp(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)),
                                   -left_shift))
    return multiplier, left_shift, radius


def logistic_s8(x: np.ndarray, s_in: float, zp_in: int) -> np.ndarray:
    """int8 logistic (output scale 1/256, zero point -128), TFLite's reference_integer_ops:
    the input in Q4.27, gemmlowp logistic, inputs beyond the radius saturate."""
    integer_bits = 4
    multiplier, left_shift, radius = logistic_params(s_in)
    v = x.astype(np.int64) - zp_in
    inside = np.clip(v, -radius + 1, radius - 1)
    a = q.multiply_by_quantized_multiplier(inside, multiplier, left_shift)  # Q4.27
    positive = np.abs(a)
    one_over = np.vectorize(_one_over_one_plus_x, otypes=[np.int64])
    result_pos = one_over(exp_on_negative_values(-positive, integer_bits))
    result = np.where(a > 0, result_pos, INT32_MAX - result_pos)
    result = np.where(a == 0, 1 << 30, result)
    y = np.clip(q.rdbpot(result, 31 - 8) - 128, -128, 127)
    y = np.where(v <= -radius, -128, np.where(v >= radius, 127, y))
    return y.astype(np.int8)


def run(graph: Graph, inputs: np.ndarray | Sequence[np.ndarray], *,
        keep: bool = False) -> list[np.ndarray] | dict[int, np.ndarray]:
    """Execute ``graph`` on int8 ``inputs`` (one per graph input, any shape with the right
    element count). Returns the outputs in order, or every activation by id with ``keep``."""
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    if len(inputs) != len(graph.inputs):
        raise ConfigError(f"{graph.name}: {len(graph.inputs)} inputs expected, got "
                          f"{len(inputs)}")
    values: dict[int, np.ndarray] = {}
    for tid, array in zip(graph.inputs, inputs, strict=True):
        t = graph.tensors[tid]
        array = np.asarray(array)
        if array.dtype != np.int8 or array.size != t.size:
            raise ConfigError(f"{graph.name}: input {t.name} needs {t.size} int8 values "
                              f"{t.shape}, got {array.dtype} {array.shape}")
        values[tid] = array.reshape(t.shape)
    last_use = {t: last for t, (_, last) in graph.lifetimes().items()}
    for i, op in enumerate(graph.ops):
        args = [values[t] for t in graph.activation_inputs(op)]
        values[op.outputs[0]] = run_op(graph, i, args)
        if not keep:
            for t in graph.activation_inputs(op):
                if last_use.get(t, i) <= i and t not in graph.outputs:
                    values.pop(t, None)
    if keep:
        return values
    return [values[t] for t in graph.outputs]
