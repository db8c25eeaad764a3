/*
 * atomsim_nn_support.h - internal helpers shared by every implementation of atomsim_nn.h:
 * TFLite fixed-point arithmetic (double-rounding MultiplyByQuantizedMultiplier, the gemmlowp
 * primitives in 32 and 16 bits) and argument checks. Not part of the public contract.
 * atomsim/ops/quant.py mirrors each arithmetic function (same names without the prefix).
 */
#ifndef ATOMSIM_NN_SUPPORT_H
#define ATOMSIM_NN_SUPPORT_H

#include <stdint.h>

#include "atomsim_nn.h"

#define ATOMSIM_INT8_MIN (-128)
#define ATOMSIM_INT8_MAX 127

static inline int32_t atomsim_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t atomsim_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }

static inline int32_t atomsim_clamp_i32(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* gemmlowp SaturatingRoundingDoublingHighMul, int32: high word of 2*a*b, rounded half up
 * (equivalent to gemmlowp's sign-dependent nudge followed by truncation). */
static inline int32_t atomsim_srdhm(int32_t a, int32_t b)
{
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b + ((int64_t)1 << 30);
    return (int32_t)(ab >> 31);
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero, exponent [0, 31]. */
static inline int32_t atomsim_rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier, double-rounding variant. x * 2^left wraps like the
 * int32 product in TFLite. */
static inline int32_t atomsim_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int32_t shifted = (int32_t)((uint32_t)x << left);
    return atomsim_rdbpot(atomsim_srdhm(shifted, multiplier), right);
}

/* Accumulator -> int8 output: requantize, add the output offset, clamp. */
static inline int8_t atomsim_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                        int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int32_t out = atomsim_mbqm(acc, multiplier, shift) + output_offset;
    return (int8_t)atomsim_clamp_i32(out, act_min, act_max);
}

/* ---- int16 gemmlowp primitives (hard-swish) ---- */

static inline int16_t atomsim_sat_i16(int32_t x)
{
    return (int16_t)atomsim_clamp_i32(x, INT16_MIN, INT16_MAX);
}

/* SaturatingRoundingDoublingHighMul, int16: (a*b + nudge) / 2^15 truncated toward zero. */
static inline int16_t atomsim_srdhm16(int16_t a, int16_t b)
{
    if (a == INT16_MIN && b == INT16_MIN) {
        return INT16_MAX;
    }
    const int32_t ab = (int32_t)a * (int32_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return (int16_t)((ab + nudge) / (1 << 15));
}

/* TFLite SaturatingDoublingHighMul, int16: a*b / 2^15 truncated toward zero (no rounding). */
static inline int16_t atomsim_sdhm16(int16_t a, int16_t b)
{
    if (a == INT16_MIN && b == INT16_MIN) {
        return INT16_MAX;
    }
    return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

static inline int16_t atomsim_rdbpot16(int16_t x, int32_t exponent)
{
    return (int16_t)atomsim_rdbpot(x, exponent);
}

/* gemmlowp SaturatingLeftShift on int16 (saturates instead of wrapping). */
static inline int16_t atomsim_sat_left_shift16(int16_t x, int32_t exponent)
{
    return atomsim_sat_i16((int32_t)x * (1 << exponent));
}

/* ---- argument checks ---- */

static inline int atomsim_dims_ok(const atomsim_dims *d)
{
    return d != 0 && d->n >= 1 && d->h >= 1 && d->w >= 1 && d->c >= 1;
}

static inline int32_t atomsim_dims_count(const atomsim_dims *d)
{
    return d->n * d->h * d->w * d->c;
}

static inline int atomsim_offsets_ok(int32_t input_offset, int32_t output_offset,
                                     int32_t act_min, int32_t act_max)
{
    return input_offset >= -127 && input_offset <= 128 && output_offset >= -128 &&
           output_offset <= 127 && act_min >= -128 && act_min <= act_max && act_max <= 127;
}

static inline int atomsim_quant_ok(int32_t multiplier, int32_t shift)
{
    return multiplier >= 0 && shift >= -31 && shift <= 30;
}

static inline int atomsim_per_channel_ok(const atomsim_per_channel_quant_params *q, int32_t n)
{
    if (q == 0 || q->multiplier == 0 || q->shift == 0) {
        return 0;
    }
    for (int32_t i = 0; i < n; i++) {
        if (!atomsim_quant_ok(q->multiplier[i], q->shift[i])) {
            return 0;
        }
    }
    return 1;
}

/* One spatial axis of a window op: top pad in [0, k - 1] and the implied bottom pad
 * (out - 1) * stride + k - pad - in in (-stride, k - 1]. */
static inline int atomsim_axis_ok(int32_t in, int32_t k, int32_t stride, int32_t pad,
                                  int32_t out)
{
    if (k < 1 || stride < 1 || pad < 0 || pad > k - 1 || out < 1) {
        return 0;
    }
    const int32_t pad_end = (out - 1) * stride + k - pad - in;
    return pad_end > -stride && pad_end <= k - 1;
}

static inline int atomsim_scratch_ok(const atomsim_context *ctx, int32_t needed)
{
    if (needed == 0) {
        return 1;
    }
    return ctx != 0 && ctx->buf != 0 && ctx->size >= needed &&
           ((uintptr_t)ctx->buf & 3u) == 0;
}

/* Shape and parameter checks shared by the three convolutions. */
static inline int atomsim_conv_args_ok(const atomsim_conv_params *p,
                                       const atomsim_per_channel_quant_params *q,
                                       const atomsim_dims *in, int32_t kh, int32_t kw,
                                       const atomsim_dims *out, const void *input,
                                       const void *filter, const void *output)
{
    if (p == 0 || input == 0 || filter == 0 || output == 0 || !atomsim_dims_ok(in) ||
        !atomsim_dims_ok(out) || in->n != 1 || out->n != 1) {
        return 0;
    }
    if (p->dilation_h != 1 || p->dilation_w != 1 ||
        !atomsim_offsets_ok(p->input_offset, p->output_offset, p->act_min, p->act_max)) {
        return 0;
    }
    return atomsim_axis_ok(in->h, kh, p->stride_h, p->pad_h, out->h) &&
           atomsim_axis_ok(in->w, kw, p->stride_w, p->pad_w, out->w) &&
           atomsim_per_channel_ok(q, out->c);
}

/* Shape and parameter checks shared by the two pooling kernels. */
static inline int atomsim_pool_args_ok(const atomsim_pool_params *p, const atomsim_dims *in,
                                       const atomsim_dims *filter, const atomsim_dims *out,
                                       const void *input, const void *output)
{
    if (p == 0 || input == 0 || output == 0 || filter == 0 || !atomsim_dims_ok(in) ||
        !atomsim_dims_ok(out) || in->n != 1 || out->n != 1 || in->c != out->c) {
        return 0;
    }
    if (!atomsim_offsets_ok(0, 0, p->act_min, p->act_max)) {
        return 0;
    }
    return atomsim_axis_ok(in->h, filter->h, p->stride_h, p->pad_h, out->h) &&
           atomsim_axis_ok(in->w, filter->w, p->stride_w, p->pad_w, out->w);
}

/* Parameter ranges of atomsim_add_params (shared by every add kernel). */
static inline int atomsim_add_params_ok(const atomsim_add_params *p)
{
    return p->left_shift >= 0 && p->left_shift <= 20 &&
           atomsim_offsets_ok(p->input1_offset, p->output_offset, p->act_min, p->act_max) &&
           atomsim_offsets_ok(p->input2_offset, 0, -128, 127) &&
           p->input1_multiplier >= 0 && p->input1_shift >= -31 && p->input1_shift <= 0 &&
           p->input2_multiplier >= 0 && p->input2_shift >= -31 && p->input2_shift <= 0 &&
           p->output_multiplier >= 0 && p->output_shift >= -31 && p->output_shift <= 0;
}

/* Argument checks of atomsim_mul_s8: 0 when invalid, ATOMSIM_MUL_ELEMENTWISE when input2 has
 * input1's dims, ATOMSIM_MUL_PER_CHANNEL when it is [1, 1, 1, C] (broadcast, as SE needs). */
enum { ATOMSIM_MUL_ELEMENTWISE = 1, ATOMSIM_MUL_PER_CHANNEL = 2 };
static inline int atomsim_mul_args(const atomsim_mul_params *p, const atomsim_dims *d1,
                                   const void *in1, const atomsim_dims *d2, const void *in2,
                                   const void *out)
{
    if (p == 0 || in1 == 0 || in2 == 0 || out == 0 || !atomsim_dims_ok(d1) ||
        !atomsim_dims_ok(d2) ||
        !atomsim_offsets_ok(p->input1_offset, p->output_offset, p->act_min, p->act_max) ||
        !atomsim_offsets_ok(p->input2_offset, 0, -128, 127) ||
        !atomsim_quant_ok(p->output_multiplier, p->output_shift)) {
        return 0;
    }
    if (d2->n == d1->n && d2->h == d1->h && d2->w == d1->w && d2->c == d1->c) {
        return ATOMSIM_MUL_ELEMENTWISE;
    }
    if (d2->n == 1 && d2->h == 1 && d2->w == 1 && d2->c == d1->c) {
        return ATOMSIM_MUL_PER_CHANNEL;
    }
    return 0;
}

/* Parameter ranges of atomsim_hard_swish_params (TFLite's int16 primitives keep their meaning
 * only for exponents within +-15). */
static inline int atomsim_hard_swish_params_ok(const atomsim_hard_swish_params *p)
{
    return atomsim_offsets_ok(0, p->output_zero_point, -128, 127) &&
           p->input_zero_point >= -128 && p->input_zero_point <= 127 &&
           p->reluish_multiplier_fixedpoint_int16 >= 0 &&
           p->reluish_multiplier_fixedpoint_int16 <= INT16_MAX &&
           p->output_multiplier_fixedpoint_int16 >= 0 &&
           p->output_multiplier_fixedpoint_int16 <= INT16_MAX &&
           p->reluish_multiplier_exponent >= -15 && p->reluish_multiplier_exponent <= 15 &&
           p->output_multiplier_exponent >= -15 && p->output_multiplier_exponent <= 0;
}

/* Hard-swish of one int8 value, TFLite's int8 reference algorithm (int16 fixed point): the
 * definition every hard-swish kernel computes. */
static inline int8_t atomsim_hard_swish_one(int32_t in, const atomsim_hard_swish_params *p)
{
    const int16_t relu_mult = (int16_t)p->reluish_multiplier_fixedpoint_int16;
    const int16_t out_mult = (int16_t)p->output_multiplier_fixedpoint_int16;
    const int32_t relu_exp = p->reluish_multiplier_exponent;
    const int16_t x = (int16_t)(in - p->input_zero_point); /* [-255, 255] */
    const int16_t x_hires = (int16_t)(x * (1 << 7));      /* input scale / 128 */
    /* x on the output scale, before the output shift */
    const int16_t x_preshift = atomsim_srdhm16(x_hires, out_mult);
    /* "relu-ish" value: x rescaled so that 3.0 maps to 32768, saturating */
    int16_t reluish = x_hires;
    if (relu_exp > 0) {
        reluish = atomsim_sat_left_shift16(reluish, relu_exp - 1);
    }
    reluish = atomsim_srdhm16(reluish, relu_mult);
    if (relu_exp > 0) {
        reluish = atomsim_sat_left_shift16(reluish, 1);
    }
    if (relu_exp < 0) {
        reluish = atomsim_rdbpot16(reluish, -relu_exp);
    }
    /* [-1, 1] -> [0, 1] in Q0.15 */
    reluish = (int16_t)(((int32_t)reluish + (1 << 15)) >> 1);
    const int16_t y_preshift = atomsim_sdhm16(reluish, x_preshift);
    int32_t y = atomsim_rdbpot16(y_preshift, -p->output_multiplier_exponent);
    y += p->output_zero_point;
    return (int8_t)atomsim_clamp_i32(y, ATOMSIM_INT8_MIN, ATOMSIM_INT8_MAX);
}

#endif /* ATOMSIM_NN_SUPPORT_H */
