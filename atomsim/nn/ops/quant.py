"""TFLite int8 fixed-point arithmetic, integer-exact and vectorised.

Mirrors firmware/kernels/include/atomsim_nn_support.h function by function. Every function
takes Python ints or numpy integer arrays (broadcasting), computes in int64 and returns int64
arrays; nothing here rounds through floating point except the parameter builders, which do
exactly what TFLite's Prepare() code does with the same float types.

Requantization follows TFLite's ``MultiplyByQuantizedMultiplier`` in its default
double-rounding form (``TFLITE_SINGLE_ROUNDING`` unset, as TFLite Micro and CMSIS-NN build by
default): SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from atomsim.core.errors import ConfigError

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x) -> np.ndarray:
    """Two's-complement wrap to int32 (what an int32 product does on the MCU)."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite ``QuantizeMultiplier``: real = multiplier * 2^(shift - 31), multiplier in Q31.

    Returns ``(multiplier, shift)`` with multiplier in [2^30, 2^31 - 1] (0 for a zero or
    vanishing real, which TFLite flushes to (0, 0) below 2^-31).
    """
    if not math.isfinite(real) or real < 0:
        raise ConfigError(f"quantize_multiplier: need a finite real >= 0, got {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def srdhm(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values: (a*b + 2^30) >> 31."""
    a, b = _i64(a), _i64(b)
    out = (a * b + (1 << 30)) >> 31
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, out)


def rdbpot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, rounded half away from zero."""
    x, exponent = _i64(x), _i64(exponent)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite ``MultiplyByQuantizedMultiplier`` (double rounding), vectorised.

    ``x * 2^max(shift, 0)`` wraps to int32 as TFLite's int32 product does.
    """
    x, shift = _i64(x), _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot(srdhm(wrap_int32(x << left), multiplier), right)


mbqm = multiply_by_quantized_multiplier


def requantize(acc, multiplier, shift, output_offset: int, act_min: int, act_max: int):
    """int32 accumulator -> int8: requantize, add the output offset, clamp."""
    out = multiply_by_quantized_multiplier(acc, multiplier, shift) + output_offset
    return np.clip(out, act_min, act_max).astype(np.int8)


# ---- int16 gemmlowp primitives (hard-swish) ----

def _trunc_div_pow2(x: np.ndarray, bits: int) -> np.ndarray:
    """x / 2^bits truncated toward zero (C integer division)."""
    return np.where(x >= 0, x >> bits, -((-x) >> bits))


def srdhm16(a, b) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul on int16 values (gemmlowp)."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    out = _trunc_div_pow2(ab + nudge, 15)
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, out)


def sdhm16(a, b) -> np.ndarray:
    """TFLite SaturatingDoublingHighMul on int16 values: a*b / 2^15 truncated, no rounding."""
    a, b = _i64(a), _i64(b)
    out = _trunc_div_pow2(a * b, 15)
    return np.where((a == INT16_MIN) & (b == INT16_MIN), INT16_MAX, out)


def sat_left_shift16(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingLeftShift on int16 values."""
    return np.clip(_i64(x) << exponent, INT16_MIN, INT16_MAX)


# ---- parameter builders (what TFLite's Prepare() computes) ----

def activation_range(kind: str, scale: float, zero_point: int) -> tuple[int, int]:
    """TFLite ``CalculateActivationRangeQuantized`` for int8: (act_min, act_max).

    kind is "none", "relu" or "relu6".
    """
    def q(v: float) -> int:
        return zero_point + _round_half_away(float(np.float32(v) / np.float32(scale)))

    if kind == "none":
        return INT8_MIN, INT8_MAX
    if kind == "relu":
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if kind == "relu6":
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    raise ConfigError(f"unknown activation {kind!r}: expected 'none', 'relu' or 'relu6'")


def conv_output_size(size: int, kernel: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length of a window op along one axis with explicit padding."""
    return (size + pad_before + pad_after - kernel) // stride + 1


def implied_pad_after(size: int, kernel: int, stride: int, pad_before: int, out: int) -> int:
    """The bottom/right padding the kernels infer from the output size (may be negative)."""
    return (out - 1) * stride + kernel - pad_before - size


def per_channel_multipliers(reals) -> tuple[np.ndarray, np.ndarray]:
    """Quantize a vector of real multipliers: (multiplier int32[C], shift int32[C])."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, dtype=np.float64)]
    mult = np.array([m for m, _ in pairs], dtype=np.int32)
    shift = np.array([s for _, s in pairs], dtype=np.int32)
    return mult, shift


def add_quant_params(scale1: float, zp1: int, scale2: float, zp2: int, out_scale: float,
                     out_zp: int, act_min: int = INT8_MIN, act_max: int = INT8_MAX,
                     left_shift: int = 20) -> AddParams:
    """TFLite int8 Add Prepare(): common scale 2*max(s1, s2), 2^20 headroom."""
    twice_max = 2.0 * max(scale1, scale2)
    m1, s1 = quantize_multiplier(scale1 / twice_max)
    m2, s2 = quantize_multiplier(scale2 / twice_max)
    mo, so = quantize_multiplier(twice_max / ((1 << left_shift) * out_scale))
    return AddParams(left_shift, -zp1, m1, s1, -zp2, m2, s2, out_zp, mo, so, act_min, act_max)


def mul_quant_params(scale1: float, zp1: int, scale2: float, zp2: int, out_scale: float,
                     out_zp: int, act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> MulParams:
    """TFLite int8 Mul Prepare(): one multiplier s1*s2/s_out."""
    m, s = quantize_multiplier(scale1 * scale2 / out_scale)
    return MulParams(-zp1, -zp2, out_zp, m, s, act_min, act_max)


def relu_quant_params(in_scale: float, in_zp: int, out_scale: float, out_zp: int,
                      kind: str = "relu") -> ReluParams:
    """TFLite int8 Relu/Relu6 Prepare(): requantize in -> out, clamp to the activation."""
    m, s = quantize_multiplier(in_scale / out_scale)
    lo, hi = activation_range(kind, out_scale, out_zp)
    return ReluParams(-in_zp, out_zp, m, s, lo, hi)


def _downscale_to_int16(multiplier: int) -> int:
    """TFLite DownScaleInt32ToInt16Multiplier (round to nearest, saturate)."""
    if multiplier >= INT32_MAX - (1 << 15):
        return INT16_MAX
    return (multiplier + (1 << 15)) >> 16


def hard_swish_quant_params(in_scale: float, in_zp: int, out_scale: float,
                            out_zp: int) -> HardSwishParams:
    """TFLite HardSwish Prepare() (float32 arithmetic as in the C++ code)."""
    f32 = np.float32
    hires_input_scale = f32(1.0 / 128.0) * f32(in_scale)
    reluish_scale = f32(3.0) / f32(32768.0)
    out_mult, out_exp = quantize_multiplier(float(hires_input_scale / f32(out_scale)))
    rel_mult, rel_exp = quantize_multiplier(float(hires_input_scale / reluish_scale))
    if out_exp > 0:
        raise ConfigError(
            f"hard-swish: output scale {out_scale} is too small for input scale {in_scale} "
            "(TFLite requires (in_scale / 128) / out_scale <= 1)")
    return HardSwishParams(in_zp, out_zp, _downscale_to_int16(rel_mult), rel_exp,
                           _downscale_to_int16(out_mult), out_exp)


def hard_sigmoid_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    """256-entry int8 table for hard-sigmoid relu6(x + 3) / 6; entry i is for q = i - 128.

    Built in float64 and rounded half away from zero, then clamped to int8. The kernels take
    this table as an input, so their output is exact by construction.
    """
    q = np.arange(-128, 128, dtype=np.float64)
    x = (q - in_zp) * in_scale
    y = np.clip(x + 3.0, 0.0, 6.0) / 6.0
    v = y / out_scale
    r = np.sign(v) * np.floor(np.abs(v) + 0.5) + out_zp
    return np.clip(r, INT8_MIN, INT8_MAX).astype(np.int8)


# ---- parameter records; field order == the C struct's field order in atomsim_nn.h ----
# (tests/test_contract.py holds each to the struct in the firmware's DWARF, field by field)

@dataclass(frozen=True)
class ConvParams:
    """atomsim_conv_params (normal, depthwise and pointwise convolution)."""

    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0  # top
    pad_w: int = 0  # left
    dilation_h: int = 1
    dilation_w: int = 1
    input_offset: int = 0  # -input zero point
    output_offset: int = 0  # output zero point
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX


@dataclass(frozen=True)
class PoolParams:
    """atomsim_pool_params (average and max pooling)."""

    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX


@dataclass(frozen=True)
class GlobalPoolParams:
    """The act_min, act_max arguments of atomsim_global_avgpool_s8 (passed as two int32s)."""

    act_min: int = INT8_MIN
    act_max: int = INT8_MAX


@dataclass(frozen=True)
class FcParams:
    """atomsim_fc_params; per_channel=0 means multiplier[0]/shift[0] for every output."""

    input_offset: int = 0
    output_offset: int = 0
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX
    per_channel: int = 1


@dataclass(frozen=True)
class PadParams:
    """atomsim_pad_params."""

    pad_top: int = 0
    pad_bottom: int = 0
    pad_left: int = 0
    pad_right: int = 0
    pad_value: int = 0


@dataclass(frozen=True)
class AddParams:
    """atomsim_add_params (TFLite int8 Add)."""

    left_shift: int
    input1_offset: int
    input1_multiplier: int
    input1_shift: int
    input2_offset: int
    input2_multiplier: int
    input2_shift: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX


@dataclass(frozen=True)
class MulParams:
    """atomsim_mul_params (TFLite int8 Mul)."""

    input1_offset: int
    input2_offset: int
    output_offset: int
    output_multiplier: int
    output_shift: int
    act_min: int = INT8_MIN
    act_max: int = INT8_MAX


@dataclass(frozen=True)
class ReluParams:
    """atomsim_relu_params (TFLite ReluQuantized)."""

    input_offset: int
    output_offset: int
    multiplier: int
    shift: int
    act_min: int
    act_max: int


@dataclass(frozen=True)
class HardSwishParams:
    """atomsim_hard_swish_params (TFLite HardSwishParams; zero points, not offsets)."""

    input_zero_point: int
    output_zero_point: int
    reluish_multiplier_fixedpoint_int16: int
    reluish_multiplier_exponent: int
    output_multiplier_fixedpoint_int16: int
    output_multiplier_exponent: int
