/*
 * atomsim_dsp.h - internal helpers of the Cortex-M DSP kernels (not part of the contract).
 *
 * SIMD primitives: ACLE intrinsics (<arm_acle.h>) when the target has the DSP extension
 * (Cortex-M4/M7: __ARM_FEATURE_DSP); otherwise exact portable C models of the same
 * instructions, so that the host test suite can run these kernels bit for bit against the
 * numpy reference before they ever run on the emulator.
 *
 * q15 "reordered" layout: a group of 4 int8 values x0 x1 x2 x3 is stored as the int16 pairs
 * (x0, x2) (x1, x3) - exactly what SXTB16 and SXTB16 ROR #8 produce - with the input offset
 * already added. Weights are unpacked the same way on the fly, so SMLAD of matching pairs
 * accumulates the right products without any PKHBT/PKHTB repacking.
 */
#ifndef ATOMSIM_DSP_H
#define ATOMSIM_DSP_H

#include <stdint.h>
#include <string.h>

#include "atomsim_nn_support.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>

static inline uint32_t dsp_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int32_t)x); }

static inline uint32_t dsp_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

static inline uint32_t dsp_sadd16(uint32_t a, uint32_t b)
{
    return (uint32_t)__sadd16((int32_t)a, (int32_t)b);
}

static inline int32_t dsp_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlad((int32_t)a, (int32_t)b, acc);
}

static inline int32_t dsp_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlabb((int32_t)a, (int32_t)b, acc);
}

static inline int32_t dsp_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return __smlatt((int32_t)a, (int32_t)b, acc);
}

#else /* portable models of the instructions (host builds) */

static inline int32_t dsp_lo16(uint32_t x) { return (int16_t)(x & 0xFFFFu); }
static inline int32_t dsp_hi16(uint32_t x) { return (int16_t)(x >> 16); }

static inline uint32_t dsp_pack16(int32_t lo, int32_t hi)
{
    return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}

static inline uint32_t dsp_sxtb16(uint32_t x)
{
    return dsp_pack16((int8_t)(x & 0xFFu), (int8_t)((x >> 16) & 0xFFu));
}

static inline uint32_t dsp_sxtb16_ror8(uint32_t x) { return dsp_sxtb16((x >> 8) | (x << 24)); }

static inline uint32_t dsp_sadd16(uint32_t a, uint32_t b)
{
    return dsp_pack16(dsp_lo16(a) + dsp_lo16(b), dsp_hi16(a) + dsp_hi16(b));
}

static inline int32_t dsp_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(dsp_lo16(a) * dsp_lo16(b)) +
                     (uint32_t)(dsp_hi16(a) * dsp_hi16(b)));
}

static inline int32_t dsp_smlabb(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(dsp_lo16(a) * dsp_lo16(b)));
}

static inline int32_t dsp_smlatt(uint32_t a, uint32_t b, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(dsp_hi16(a) * dsp_hi16(b)));
}

#endif

/* Unaligned 32-bit access (LDR/STR handle it on Cortex-M4/M7). */
static inline uint32_t dsp_read_u32(const void *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void dsp_write_u32(void *p, uint32_t v) { memcpy(p, &v, sizeof v); }

/* Requantization, bit-identical to atomsim_mbqm() (TFLite double rounding) for multiplier
 * >= 0, folded into one 64-bit multiply-accumulate and one shift:
 *   RDBPOT(SRDHM(x, m), e) == (x * m + 2^(30 + e) + (x < 0 ? -2^30 : 2^30)) >> (31 + e)
 * for e >= 1 (the sign test may use x instead of the rounded product: where they differ the
 * rounded product is 0 and both roundings give 0). */
static inline int32_t dsp_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                     int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int32_t out;
    if (shift >= 0) {
        const int32_t x = (int32_t)((uint32_t)acc << shift);
        out = (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
    } else {
        const int32_t e = -shift;
        const int64_t round =
            ((int64_t)1 << (30 + e)) + (acc < 0 ? -((int64_t)1 << 30) : ((int64_t)1 << 30));
        const int64_t v = (int64_t)acc * multiplier + round;
        out = (int32_t)(v >> 32) >> (e - 1);
    }
    out += output_offset;
    out = out < act_min ? act_min : out;
    return out > act_max ? act_max : out;
}

/* n int8 values + offset -> q15 reordered (see top of file). dst must be 4-byte aligned. */
static inline void dsp_q7_to_q15_reordered(const int8_t *src, int16_t *dst, int32_t n,
                                           int32_t offset)
{
    const uint32_t off2 = ((uint32_t)offset & 0xFFFFu) | ((uint32_t)offset << 16);
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t x = dsp_read_u32(src + i);
        dsp_write_u32(dst + i, dsp_sadd16(dsp_sxtb16(x), off2));
        dsp_write_u32(dst + i + 2, dsp_sadd16(dsp_sxtb16_ror8(x), off2));
    }
    for (; i < n; i++) {
        dst[i] = (int16_t)(src[i] + offset);
    }
}

/* Two columns for dsp_mat_mult_q15_2col: the 4-groups of both columns interleaved
 * (group g: col0 pair A, col0 pair B, col1 pair A, col1 pair B = 8 int16 at dst + 8g), then
 * the k % 4 tail values of column 0, then those of column 1. dst holds 2 * k int16. */
static inline void dsp_q7_to_q15_pair(const int8_t *src0, const int8_t *src1, int16_t *dst,
                                      int32_t k, int32_t offset)
{
    const uint32_t off2 = ((uint32_t)offset & 0xFFFFu) | ((uint32_t)offset << 16);
    const int32_t k4 = k & ~3;
    for (int32_t i = 0; i < k4; i += 4, dst += 8) {
        const uint32_t x0 = dsp_read_u32(src0 + i), x1 = dsp_read_u32(src1 + i);
        dsp_write_u32(dst, dsp_sadd16(dsp_sxtb16(x0), off2));
        dsp_write_u32(dst + 2, dsp_sadd16(dsp_sxtb16_ror8(x0), off2));
        dsp_write_u32(dst + 4, dsp_sadd16(dsp_sxtb16(x1), off2));
        dsp_write_u32(dst + 6, dsp_sadd16(dsp_sxtb16_ror8(x1), off2));
    }
    for (int32_t i = k4; i < k; i++) {
        dst[i - k4] = (int16_t)(src0[i] + offset);
        dst[k - k4 + i - k4] = (int16_t)(src1[i] + offset);
    }
}

static inline int8_t dsp_requant_q(int32_t acc, const int32_t *mult, const int32_t *shift,
                                   int32_t q, int32_t output_offset, int32_t act_min,
                                   int32_t act_max)
{
    return (int8_t)dsp_requantize(acc, mult[q], shift[q], output_offset, act_min, act_max);
}

/* Matrix product, two columns (two output pixels) at a time:
 *   out0[oc] = requant(bias[oc] + sum_k col0[k] * w[oc][k]), out1 likewise from col1,
 * filter rows int8 [c_out][k], columns from dsp_q7_to_q15_pair. Inner loop, 2 channels x
 * 2 columns per 4 k: 2 LDR + 4 SXTB16 (weights), 4 LDR (columns, one pointer), 8 SMLAD
 * = 18 instructions for 16 MACs plus the loop branch. */
static inline void dsp_mat_mult_q15_2col(const int8_t *filter, int32_t k, int32_t c_out,
                                         const int32_t *bias, const int32_t *mult,
                                         const int32_t *shift, const int16_t *pair,
                                         int8_t *out0, int8_t *out1, int32_t output_offset,
                                         int32_t act_min, int32_t act_max)
{
    const int32_t k4 = k & ~3, tail = k - k4;
    const int16_t *tail0 = pair + 2 * k4, *tail1 = tail0 + tail;
    int32_t oc = 0;
    for (; oc + 2 <= c_out; oc += 2) {
        const int8_t *w0 = filter + oc * k;
        const int8_t *w1 = w0 + k;
        const int32_t b0 = bias ? bias[oc] : 0, b1 = bias ? bias[oc + 1] : 0;
        int32_t a00 = b0, a10 = b1, a01 = b0, a11 = b1;
        const int16_t *x = pair;
        for (const int8_t *end = w0 + k4; w0 < end; w0 += 4, w1 += 4, x += 8) {
            const uint32_t r0 = dsp_read_u32(w0), r1 = dsp_read_u32(w1);
            const uint32_t w0a = dsp_sxtb16(r0), w0b = dsp_sxtb16_ror8(r0);
            const uint32_t w1a = dsp_sxtb16(r1), w1b = dsp_sxtb16_ror8(r1);
            uint32_t v = dsp_read_u32(x);
            a00 = dsp_smlad(v, w0a, a00);
            a10 = dsp_smlad(v, w1a, a10);
            v = dsp_read_u32(x + 2);
            a00 = dsp_smlad(v, w0b, a00);
            a10 = dsp_smlad(v, w1b, a10);
            v = dsp_read_u32(x + 4);
            a01 = dsp_smlad(v, w0a, a01);
            a11 = dsp_smlad(v, w1a, a11);
            v = dsp_read_u32(x + 6);
            a01 = dsp_smlad(v, w0b, a01);
            a11 = dsp_smlad(v, w1b, a11);
        }
        for (int32_t i = 0; i < tail; i++) {
            a00 += tail0[i] * w0[i];
            a10 += tail0[i] * w1[i];
            a01 += tail1[i] * w0[i];
            a11 += tail1[i] * w1[i];
        }
        out0[oc] = dsp_requant_q(a00, mult, shift, oc, output_offset, act_min, act_max);
        out0[oc + 1] = dsp_requant_q(a10, mult, shift, oc + 1, output_offset, act_min, act_max);
        out1[oc] = dsp_requant_q(a01, mult, shift, oc, output_offset, act_min, act_max);
        out1[oc + 1] = dsp_requant_q(a11, mult, shift, oc + 1, output_offset, act_min, act_max);
    }
    if (oc < c_out) { /* odd channel count: the last channel alone */
        const int8_t *w0 = filter + oc * k;
        int32_t a00 = bias ? bias[oc] : 0, a01 = a00;
        const int16_t *x = pair;
        for (int32_t i = 0; i < k4; i += 4, x += 8) {
            const uint32_t r0 = dsp_read_u32(w0 + i);
            const uint32_t w0a = dsp_sxtb16(r0), w0b = dsp_sxtb16_ror8(r0);
            a00 = dsp_smlad(dsp_read_u32(x), w0a, a00);
            a00 = dsp_smlad(dsp_read_u32(x + 2), w0b, a00);
            a01 = dsp_smlad(dsp_read_u32(x + 4), w0a, a01);
            a01 = dsp_smlad(dsp_read_u32(x + 6), w0b, a01);
        }
        for (int32_t i = 0; i < tail; i++) {
            a00 += tail0[i] * w0[k4 + i];
            a01 += tail1[i] * w0[k4 + i];
        }
        out0[oc] = dsp_requant_q(a00, mult, shift, oc, output_offset, act_min, act_max);
        out1[oc] = dsp_requant_q(a01, mult, shift, oc, output_offset, act_min, act_max);
    }
}

/* Matrix product, one column (q15 reordered, dsp_q7_to_q15_reordered): 2 channels per pass,
 * per 4 k: 2 LDR + 4 SXTB16 (weights), 2 LDR (column), 4 SMLAD for 8 MACs. q_stride is 1
 * (per-channel quantization) or 0 (per-tensor). */
static inline void dsp_mat_mult_q15_1col(const int8_t *filter, int32_t k, int32_t c_out,
                                         const int32_t *bias, const int32_t *mult,
                                         const int32_t *shift, int32_t q_stride,
                                         const int16_t *col, int8_t *out,
                                         int32_t output_offset, int32_t act_min,
                                         int32_t act_max)
{
    const int32_t k4 = k & ~3;
    int32_t oc = 0;
    for (; oc + 2 <= c_out; oc += 2) {
        const int8_t *w0 = filter + oc * k;
        const int8_t *w1 = w0 + k;
        int32_t a0 = bias ? bias[oc] : 0, a1 = bias ? bias[oc + 1] : 0;
        int32_t i = 0;
        for (; i < k4; i += 4) {
            const uint32_t r0 = dsp_read_u32(w0 + i), r1 = dsp_read_u32(w1 + i);
            uint32_t v = dsp_read_u32(col + i);
            a0 = dsp_smlad(v, dsp_sxtb16(r0), a0);
            a1 = dsp_smlad(v, dsp_sxtb16(r1), a1);
            v = dsp_read_u32(col + i + 2);
            a0 = dsp_smlad(v, dsp_sxtb16_ror8(r0), a0);
            a1 = dsp_smlad(v, dsp_sxtb16_ror8(r1), a1);
        }
        for (; i < k; i++) {
            a0 += col[i] * w0[i];
            a1 += col[i] * w1[i];
        }
        out[oc] = dsp_requant_q(a0, mult, shift, oc * q_stride, output_offset, act_min,
                                act_max);
        out[oc + 1] = dsp_requant_q(a1, mult, shift, (oc + 1) * q_stride, output_offset,
                                    act_min, act_max);
    }
    if (oc < c_out) {
        const int8_t *w0 = filter + oc * k;
        int32_t a0 = bias ? bias[oc] : 0;
        int32_t i = 0;
        for (; i < k4; i += 4) {
            const uint32_t r0 = dsp_read_u32(w0 + i);
            a0 = dsp_smlad(dsp_read_u32(col + i), dsp_sxtb16(r0), a0);
            a0 = dsp_smlad(dsp_read_u32(col + i + 2), dsp_sxtb16_ror8(r0), a0);
        }
        for (; i < k; i++) {
            a0 += col[i] * w0[i];
        }
        out[oc] = dsp_requant_q(a0, mult, shift, oc * q_stride, output_offset, act_min,
                                act_max);
    }
}

#endif /* ATOMSIM_DSP_H */
