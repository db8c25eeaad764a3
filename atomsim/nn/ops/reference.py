"""Integer-exact numpy references of the int8 atom kernels (firmware/kernels, atomsim_nn.h).

Each function takes the same parameters as its C kernel (a parameter record from
``atomsim.nn.ops.quant`` in place of the C struct, numpy arrays in place of pointers and dims) and
returns what the C kernel writes, bit for bit. Activations are int8 arrays shaped
``(1, H, W, C)`` (NHWC). Arithmetic runs in int64, vectorised over pixels and channels.

Window ops (convolutions, pooling) take the output height and width, like the C kernels take
output dims: the bottom/right padding is implied by them (see ``quant.implied_pad_after``).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from atomsim.core.errors import ConfigError
from atomsim.nn.ops.quant import (
    INT8_MAX,
    INT8_MIN,
    AddParams,
    ConvParams,
    FcParams,
    HardSwishParams,
    MulParams,
    PadParams,
    PoolParams,
    ReluParams,
    implied_pad_after,
    multiply_by_quantized_multiplier,
    rdbpot,
    requantize,
    sat_left_shift16,
    sdhm16,
    srdhm16,
)


def _check_nhwc(name: str, x: np.ndarray) -> None:
    if x.ndim != 4 or x.shape[0] != 1 or x.dtype != np.int8:
        raise ConfigError(f"{name}: expected an int8 array shaped (1, H, W, C), got "
                          f"{x.dtype} {x.shape}")


def _check_axis(what: str, size: int, k: int, stride: int, pad: int, out: int) -> int:
    """Validate one window axis as the C kernels do; return the implied trailing padding."""
    if k < 1 or stride < 1 or not 0 <= pad <= k - 1 or out < 1:
        raise ConfigError(f"{what}: need kernel >= 1, stride >= 1, 0 <= pad <= kernel - 1, "
                          f"out >= 1 (kernel={k}, stride={stride}, pad={pad}, out={out})")
    pad_end = implied_pad_after(size, k, stride, pad, out)
    if not -stride < pad_end <= k - 1:
        raise ConfigError(f"{what}: output size {out} implies trailing padding {pad_end}, "
                          f"outside ({-stride}, {k - 1}]")
    return pad_end


def _windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, pt: int, pl: int,
             out_h: int, out_w: int, fill: int) -> np.ndarray:
    """(out_h, out_w, kh, kw, C) view of x (H, W, C) padded with ``fill``."""
    h, w, c = x.shape
    pb = _check_axis("height", h, kh, sh, pt, out_h)
    pr = _check_axis("width", w, kw, sw, pl, out_w)
    padded = np.full((h + pt + max(pb, 0), w + pl + max(pr, 0), c), fill, dtype=x.dtype)
    padded[pt:pt + h, pl:pl + w] = x
    win = sliding_window_view(padded, (kh, kw), axis=(0, 1))  # (Hp-kh+1, Wp-kw+1, C, kh, kw)
    win = win[::sh, ::sw][:out_h, :out_w]
    return win.transpose(0, 1, 3, 4, 2)  # (out_h, out_w, kh, kw, C)


def pad_s8(x: np.ndarray, params: PadParams) -> np.ndarray:
    """Constant spatial padding with ``params.pad_value``."""
    _check_nhwc("pad", x)
    p = params
    if min(p.pad_top, p.pad_bottom, p.pad_left, p.pad_right) < 0:
        raise ConfigError(f"pad: padding must be >= 0, got {p}")
    return np.pad(x, ((0, 0), (p.pad_top, p.pad_bottom), (p.pad_left, p.pad_right), (0, 0)),
                  constant_values=np.int8(p.pad_value))


def _finish(acc: np.ndarray, bias, multiplier, shift, params) -> np.ndarray:
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    out = requantize(acc, np.asarray(multiplier, dtype=np.int64),
                     np.asarray(shift, dtype=np.int64), params.output_offset,
                     params.act_min, params.act_max)
    return out[None]


def conv_s8(x: np.ndarray, filt: np.ndarray, bias, multiplier, shift, params: ConvParams,
            out_hw: tuple[int, int]) -> np.ndarray:
    """Normal convolution. filt (C_OUT, KH, KW, C_IN) int8; bias int32 (C_OUT,) or None."""
    _check_nhwc("conv", x)
    _, kh, kw, c_in = filt.shape
    if c_in != x.shape[3]:
        raise ConfigError(f"conv: filter has {c_in} input channels, input has {x.shape[3]}")
    xo = x[0].astype(np.int64) + params.input_offset  # padding contributes 0
    win = _windows(xo, kh, kw, params.stride_h, params.stride_w, params.pad_h, params.pad_w,
                   *out_hw, fill=0)
    acc = np.tensordot(win, filt.astype(np.int64), axes=([2, 3, 4], [1, 2, 3]))  # (Ho, Wo, Co)
    return _finish(acc, bias, multiplier, shift, params)


def depthwise_conv_s8(x: np.ndarray, filt: np.ndarray, bias, multiplier, shift,
                      params: ConvParams, out_hw: tuple[int, int]) -> np.ndarray:
    """Depthwise convolution, depth multiplier 1. filt (1, KH, KW, C) int8."""
    _check_nhwc("depthwise_conv", x)
    _, kh, kw, c = filt.shape
    if c != x.shape[3]:
        raise ConfigError(f"depthwise_conv: filter has {c} channels, input has {x.shape[3]}")
    xo = x[0].astype(np.int64) + params.input_offset
    win = _windows(xo, kh, kw, params.stride_h, params.stride_w, params.pad_h, params.pad_w,
                   *out_hw, fill=0)
    acc = np.einsum("hwijc,ijc->hwc", win, filt[0].astype(np.int64))  # (Ho, Wo, C)
    return _finish(acc, bias, multiplier, shift, params)


def pointwise_conv_s8(x: np.ndarray, filt: np.ndarray, bias, multiplier, shift,
                      params: ConvParams, out_hw: tuple[int, int]) -> np.ndarray:
    """1x1 convolution with stride, no padding. filt (C_OUT, 1, 1, C_IN) int8."""
    _check_nhwc("pointwise_conv", x)
    if params.pad_h or params.pad_w:
        raise ConfigError("pointwise_conv: padding must be 0 (use a Pad atom)")
    return conv_s8(x, filt, bias, multiplier, shift, params, out_hw)


def fully_connected_s8(x: np.ndarray, weights: np.ndarray, bias, multiplier, shift,
                       params: FcParams) -> np.ndarray:
    """Fully connected. x (N, ...) int8 read as N rows; weights (C_OUT, ACCUM) int8.

    Returns (N, 1, 1, C_OUT). With ``params.per_channel == 0`` only multiplier[0]/shift[0]
    are used.
    """
    rows = x.reshape(x.shape[0], -1).astype(np.int64) + params.input_offset
    w = weights.reshape(weights.shape[0], -1).astype(np.int64)
    if w.shape[1] != rows.shape[1]:
        raise ConfigError(f"fully_connected: weights take {w.shape[1]} inputs, "
                          f"input rows have {rows.shape[1]}")
    acc = rows @ w.T  # (N, C_OUT)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    mult = np.asarray(multiplier, dtype=np.int64)
    sh = np.asarray(shift, dtype=np.int64)
    if not params.per_channel:
        mult, sh = mult.reshape(-1)[0], sh.reshape(-1)[0]
    out = requantize(acc, mult, sh, params.output_offset, params.act_min, params.act_max)
    return out.reshape(x.shape[0], 1, 1, -1)


def add_s8(x1: np.ndarray, x2: np.ndarray, params: AddParams) -> np.ndarray:
    """Elementwise add, TFLite int8 Add arithmetic."""
    if x1.shape != x2.shape:
        raise ConfigError(f"add: shapes differ: {x1.shape} vs {x2.shape}")
    p = params
    a = (x1.astype(np.int64) + p.input1_offset) << p.left_shift
    b = (x2.astype(np.int64) + p.input2_offset) << p.left_shift
    total = (multiply_by_quantized_multiplier(a, p.input1_multiplier, p.input1_shift)
             + multiply_by_quantized_multiplier(b, p.input2_multiplier, p.input2_shift))
    return requantize(total, p.output_multiplier, p.output_shift, p.output_offset,
                      p.act_min, p.act_max)


def mul_s8(x1: np.ndarray, x2: np.ndarray, params: MulParams) -> np.ndarray:
    """Multiply; x2 has x1's shape or (1, 1, 1, C) (broadcast per channel)."""
    _check_nhwc("mul", x1)
    if x2.shape != x1.shape and x2.shape != (1, 1, 1, x1.shape[3]):
        raise ConfigError(f"mul: second input must be {x1.shape} or (1, 1, 1, {x1.shape[3]}), "
                          f"got {x2.shape}")
    p = params
    prod = (x1.astype(np.int64) + p.input1_offset) * (x2.astype(np.int64) + p.input2_offset)
    return requantize(prod, p.output_multiplier, p.output_shift, p.output_offset,
                      p.act_min, p.act_max)


def avgpool_s8(x: np.ndarray, kernel_hw: tuple[int, int], params: PoolParams,
               out_hw: tuple[int, int]) -> np.ndarray:
    """Average pooling over in-bounds elements, rounded half away from zero."""
    _check_nhwc("avgpool", x)
    kh, kw = kernel_hw
    args = (kh, kw, params.stride_h, params.stride_w, params.pad_h, params.pad_w, *out_hw)
    total = _windows(x[0].astype(np.int64), *args, fill=0).sum(axis=(2, 3))  # (Ho, Wo, C)
    ones = np.ones(x.shape[1:3] + (1,), dtype=np.int64)
    count = _windows(ones, *args, fill=0).sum(axis=(2, 3))  # (Ho, Wo, 1)
    half = count // 2
    avg = np.where(total > 0, (total + half) // count, -((half - total) // count))
    return np.clip(avg, params.act_min, params.act_max).astype(np.int8)[None]


def maxpool_s8(x: np.ndarray, kernel_hw: tuple[int, int], params: PoolParams,
               out_hw: tuple[int, int]) -> np.ndarray:
    """Max pooling over in-bounds elements."""
    _check_nhwc("maxpool", x)
    kh, kw = kernel_hw
    win = _windows(x[0].astype(np.int64), kh, kw, params.stride_h, params.stride_w,
                   params.pad_h, params.pad_w, *out_hw, fill=INT8_MIN)
    best = win.max(axis=(2, 3))
    return np.clip(best, params.act_min, params.act_max).astype(np.int8)[None]


def global_avgpool_s8(x: np.ndarray, act_min: int = INT8_MIN,
                      act_max: int = INT8_MAX) -> np.ndarray:
    """Average pooling with the full H x W window: (1, H, W, C) -> (1, 1, 1, C)."""
    _check_nhwc("global_avgpool", x)
    h, w = x.shape[1:3]
    return avgpool_s8(x, (h, w), PoolParams(act_min=act_min, act_max=act_max), (1, 1))


def relu_s8(x: np.ndarray, params: ReluParams) -> np.ndarray:
    """Standalone ReLU / ReLU6, TFLite ReluQuantized arithmetic."""
    acc = x.astype(np.int64) + params.input_offset
    return requantize(acc, params.multiplier, params.shift, params.output_offset,
                      params.act_min, params.act_max)


def hard_swish_s8(x: np.ndarray, params: HardSwishParams) -> np.ndarray:
    """Hard-swish, TFLite's int8 reference algorithm (int16 fixed point)."""
    p = params
    x_hires = (x.astype(np.int64) - p.input_zero_point) << 7
    x_preshift = srdhm16(x_hires, p.output_multiplier_fixedpoint_int16)
    reluish = x_hires
    if p.reluish_multiplier_exponent > 0:
        reluish = sat_left_shift16(reluish, p.reluish_multiplier_exponent - 1)
    reluish = srdhm16(reluish, p.reluish_multiplier_fixedpoint_int16)
    if p.reluish_multiplier_exponent > 0:
        reluish = sat_left_shift16(reluish, 1)
    if p.reluish_multiplier_exponent < 0:
        reluish = rdbpot(reluish, -p.reluish_multiplier_exponent)
    reluish = (reluish + (1 << 15)) >> 1  # [-1, 1] -> [0, 1] in Q0.15
    y = rdbpot(sdhm16(reluish, x_preshift), -p.output_multiplier_exponent)
    return np.clip(y + p.output_zero_point, INT8_MIN, INT8_MAX).astype(np.int8)


def hard_sigmoid_s8(x: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Table lookup: out = lut[x + 128] (lut from ``quant.hard_sigmoid_lut``)."""
    lut = np.asarray(lut, dtype=np.int8)
    if lut.shape != (256,):
        raise ConfigError(f"hard_sigmoid: the table must have 256 entries, got {lut.shape}")
    return lut[x.astype(np.int64) + 128]
