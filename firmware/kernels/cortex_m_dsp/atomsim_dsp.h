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
 * rounded product is 0 and both roundings give 0). Returns the MBQM value, not clamped. */
static inline int32_t dsp_mbqm(int32_t acc, int32_t multiplier, int32_t shift)
{
    if (shift >= 0) {
        const int32_t x = (int32_t)((uint32_t)acc << shift);
        return (int32_t)(((int64_t)x * multiplier + ((int64_t)1 << 30)) >> 31);
    }
    const int32_t e = -shift;
    const int64_t round =
        ((int64_t)1 << (30 + e)) + (acc < 0 ? -((int64_t)1 << 30) : ((int64_t)1 << 30));
    const int64_t v = (int64_t)acc * multiplier + round;
    return (int32_t)(v >> 32) >> (e - 1);
}

/* Accumulator -> clamped int8 output (the general path, any multiplier and shift). */
static inline int32_t dsp_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                     int32_t output_offset, int32_t act_min, int32_t act_max)
{
    int32_t out = dsp_mbqm(acc, multiplier, shift) + output_offset;
    out = out < act_min ? act_min : out;
    return out > act_max ? act_max : out;
}

/* ---- fast requantization ----
 * With e = -shift in [2, 23] the output offset folds into the rounding constant too:
 *   MBQM(x) + off == hi(x * m + R) >> (e - 1),  hi() = the high word of the 64-bit sum,
 *   R = ((1 + 2 * off) << (e - 2) + s) * 2^32 + 2^30 + s * 2^31,  s = (x < 0 ? -1 : 0)
 * (R is the constant above plus off * 2^(31 + e), split into its words). Per output: ASR,
 * two ADDs, SMLAL, ASR (then SSAT to int8). e <= 23 keeps off * 2^(e - 1) plus the product's
 * high word (|.| <= 2^30) inside int32; shifts outside [-23, -2] (never seen in practice:
 * real multipliers in [2^-24, 2^-2)) take dsp_mbqm. */
#define DSP_FAST_SHIFT_MIN (-23)
#define DSP_FAST_SHIFT_MAX (-2)

/* Per-channel constants of the fast path: multiplier, high word of R for x >= 0, e - 1. */
typedef struct {
    int32_t m;
    int32_t hi;
    int32_t rs;
} dsp_chq;

/* Per-call requantization setup. */
typedef struct {
    const int32_t *mult;
    const int32_t *shift;
    int32_t output_offset;
    int32_t round_k; /* 1 + 2 * output_offset */
    uint32_t min4;   /* act_min in every byte */
    uint32_t max4;   /* act_max in every byte */
    int fast;        /* every shift in [DSP_FAST_SHIFT_MIN, DSP_FAST_SHIFT_MAX] */
} dsp_rq;

static inline uint32_t dsp_splat8(int32_t v) { return ((uint32_t)v & 0xFFu) * 0x01010101u; }

static inline dsp_rq dsp_rq_setup(const int32_t *mult, const int32_t *shift, int32_t n,
                                  int32_t output_offset, int32_t act_min, int32_t act_max)
{
    dsp_rq rq = {mult, shift, output_offset, 1 + 2 * output_offset, dsp_splat8(act_min),
                 dsp_splat8(act_max), 1};
    for (int32_t i = 0; i < n; i++) {
        if (shift[i] < DSP_FAST_SHIFT_MIN || shift[i] > DSP_FAST_SHIFT_MAX) {
            rq.fast = 0;
        }
    }
    return rq;
}

static inline dsp_chq dsp_chq_of(const dsp_rq *rq, int32_t ch)
{
    const int32_t rs = ~rq->shift[ch]; /* -shift - 1 = e - 1 */
    const dsp_chq q = {rq->mult[ch], (int32_t)((uint32_t)rq->round_k << (rs - 1)), rs};
    return q;
}

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* High word of {hi:lo} + a * b (SMLAL). */
static inline int32_t dsp_smlal_hi(uint32_t lo, int32_t hi, int32_t a, int32_t b)
{
    __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(a), "r"(b));
    return hi;
}

static inline int32_t dsp_ssat8(int32_t x) { return __ssat(x, 8); }

/* Bits 8..15 of a replaced by the low byte of b (BFI). */
static inline uint32_t dsp_bfi8(uint32_t a, uint32_t b)
{
    __asm__("bfi %0, %1, #8, #8" : "+r"(a) : "r"(b));
    return a;
}

/* Every signed byte of v clamped to [lo, hi] (bytewise), with SSUB8 + SEL. */
static inline uint32_t dsp_clamp_s8x4(uint32_t v, uint32_t lo, uint32_t hi)
{
    uint32_t t;
    __asm__("ssub8 %1, %0, %2\n\t"
            "sel %0, %0, %2\n\t"
            "ssub8 %1, %3, %0\n\t"
            "sel %0, %0, %3"
            : "+r"(v), "=&r"(t)
            : "r"(lo), "r"(hi)
            : "cc");
    return v;
}
#else
static inline int32_t dsp_smlal_hi(uint32_t lo, int32_t hi, int32_t a, int32_t b)
{
    const uint64_t sum = (((uint64_t)(uint32_t)hi << 32) | lo) + (uint64_t)((int64_t)a * b);
    return (int32_t)(uint32_t)(sum >> 32);
}

static inline int32_t dsp_ssat8(int32_t x) { return x < -128 ? -128 : (x > 127 ? 127 : x); }

static inline uint32_t dsp_bfi8(uint32_t a, uint32_t b)
{
    return (a & ~0xFF00u) | ((b & 0xFFu) << 8);
}

static inline uint32_t dsp_clamp_s8x4(uint32_t v, uint32_t lo, uint32_t hi)
{
    uint32_t out = 0;
    for (int i = 0; i < 32; i += 8) {
        int32_t x = (int8_t)(v >> i);
        const int32_t l = (int8_t)(lo >> i), h = (int8_t)(hi >> i);
        x = x < l ? l : (x > h ? h : x);
        out |= ((uint32_t)x & 0xFFu) << i;
    }
    return out;
}
#endif

/* Fast path, one accumulator -> MBQM + offset saturated to int8 (not yet act-clamped). */
static inline int32_t dsp_rq_fast(int32_t acc, dsp_chq q)
{
    const int32_t sgn = acc >> 31;
    const uint32_t lo = 0x40000000u + ((uint32_t)sgn << 31);
    return dsp_ssat8(dsp_smlal_hi(lo, q.hi + sgn, acc, q.m) >> q.rs);
}

/* General path, same result as dsp_rq_fast for any multiplier and shift. */
static inline int32_t dsp_rq_slow(int32_t acc, const dsp_rq *rq, int32_t ch)
{
    int32_t v = dsp_mbqm(acc, rq->mult[ch], rq->shift[ch]);
    v = v < -256 ? -256 : (v > 256 ? 256 : v); /* monotone: the int8 clamp still decides */
    return dsp_ssat8(v + rq->output_offset);
}

/* Two int8 values (already saturated) act-clamped and stored at out[0], out[1]. */
static inline void dsp_store2(int8_t *out, int32_t v0, int32_t v1, const dsp_rq *rq)
{
    const uint16_t pair =
        (uint16_t)dsp_clamp_s8x4(dsp_bfi8((uint32_t)v0, (uint32_t)v1), rq->min4, rq->max4);
    memcpy(out, &pair, sizeof pair);
}

/* One int8 value (already saturated) act-clamped and stored. */
static inline void dsp_store1(int8_t *out, int32_t v, const dsp_rq *rq)
{
    *out = (int8_t)dsp_clamp_s8x4((uint32_t)v, rq->min4, rq->max4);
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

#define DSP_INLINE static inline __attribute__((always_inline))

/* 2 channels x 2 columns, 4 k: weights w0[0..3], w1[0..3]; column words x[0..3] (col0 pair A,
 * col0 pair B, col1 pair A, col1 pair B). 2 LDR + 4 SXTB16, 2 LDRD, 8 SMLAD: 16 for 16 MACs. */
DSP_INLINE void dsp_mac_2x2(const int8_t *w0, const int8_t *w1, const uint32_t *x, int32_t *a00,
                            int32_t *a10, int32_t *a01, int32_t *a11)
{
    const uint32_t r0 = dsp_read_u32(w0), r1 = dsp_read_u32(w1);
    const uint32_t w0a = dsp_sxtb16(r0), w0b = dsp_sxtb16_ror8(r0);
    const uint32_t w1a = dsp_sxtb16(r1), w1b = dsp_sxtb16_ror8(r1);
    const uint32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
    *a00 = dsp_smlad(x0, w0a, *a00);
    *a10 = dsp_smlad(x0, w1a, *a10);
    *a00 = dsp_smlad(x1, w0b, *a00);
    *a10 = dsp_smlad(x1, w1b, *a10);
    *a01 = dsp_smlad(x2, w0a, *a01);
    *a11 = dsp_smlad(x2, w1a, *a11);
    *a01 = dsp_smlad(x3, w0b, *a01);
    *a11 = dsp_smlad(x3, w1b, *a11);
}

/* The 2 x 2 SMLAD loop (label 1; two 4-k steps per pass) shared, as text, by the asm of
 * dsp_mac_2x2_k8 and dsp_mat_mult_2col_k8; both name their operands alike. */
#define DSP_MAC_2X2_K8_LOOP \
    "1:\n\t" \
    "ldr %[t0], [%[w0]], #4\n\t" \
    "ldr %[t1], [%[w1]], #4\n\t" \
    "ldrd %[xa], %[xb], [%[x]], #8\n\t" \
    "sxtb16 %[u0], %[t0]\n\t" \
    "sxtb16 %[u1], %[t1]\n\t" \
    "smlad %[c00], %[xa], %[u0], %[c00]\n\t" \
    "sxtb16 %[t0], %[t0], ror #8\n\t" \
    "smlad %[c10], %[xa], %[u1], %[c10]\n\t" \
    "sxtb16 %[t1], %[t1], ror #8\n\t" \
    "smlad %[c00], %[xb], %[t0], %[c00]\n\t" \
    "smlad %[c10], %[xb], %[t1], %[c10]\n\t" \
    "ldrd %[xa], %[xb], [%[x]], #8\n\t" \
    "smlad %[c01], %[xa], %[u0], %[c01]\n\t" \
    "smlad %[c11], %[xb], %[t1], %[c11]\n\t" \
    "smlad %[c01], %[xb], %[t0], %[c01]\n\t" \
    "ldr %[t0], [%[w0]], #4\n\t" \
    "ldr %[t1], [%[w1]], #4\n\t" \
    "smlad %[c11], %[xa], %[u1], %[c11]\n\t" \
    "sxtb16 %[u0], %[t0]\n\t" \
    "ldrd %[xa], %[xb], [%[x]], #8\n\t" \
    "sxtb16 %[u1], %[t1]\n\t" \
    "smlad %[c00], %[xa], %[u0], %[c00]\n\t" \
    "sxtb16 %[t0], %[t0], ror #8\n\t" \
    "smlad %[c10], %[xa], %[u1], %[c10]\n\t" \
    "sxtb16 %[t1], %[t1], ror #8\n\t" \
    "smlad %[c00], %[xb], %[t0], %[c00]\n\t" \
    "smlad %[c10], %[xb], %[t1], %[c10]\n\t" \
    "ldrd %[xa], %[xb], [%[x]], #8\n\t" \
    "smlad %[c01], %[xa], %[u0], %[c01]\n\t" \
    "smlad %[c11], %[xa], %[u1], %[c11]\n\t" \
    "smlad %[c01], %[xb], %[t0], %[c01]\n\t" \
    "cmp %[w0], %[end]\n\t" \
    "smlad %[c11], %[xb], %[t1], %[c11]\n\t" \
    "bne 1b\n\t"

/* The 2 x 2 kernel over k8 = k & ~7 values (k8 > 0), advancing w0, w1 and x. On the MCU one
 * asm block: GCC's own allocation of the 14 values it keeps live spills inside the loop. */
DSP_INLINE void dsp_mac_2x2_k8(const int8_t **pw0, const int8_t **pw1, const uint32_t **px,
                               int32_t k8, int32_t *a00, int32_t *a10, int32_t *a01,
                               int32_t *a11)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    const int8_t *w0 = *pw0, *w1 = *pw1;
    const uint32_t *x = *px;
    const int8_t *end = w0 + k8;
    int32_t c00 = *a00, c10 = *a10, c01 = *a01, c11 = *a11;
    uint32_t t0, t1, u0, u1, xa, xb;
    /* Early-clobber read-write operands: `end` may equal w1 at entry (k8 == k), and GCC would
     * otherwise be free to pass both in one register. */
    /* Two 4-k steps per pass (the dsp_mac_2x2 sequence twice), ordered so that on the M7
     * every SMLAD can dual-issue beside a load or SXTB16 and no SMLAD waits for a load, while
     * the M4 still sees its loads back to back (pipelined). */
    __asm__ volatile(DSP_MAC_2X2_K8_LOOP
                     : [w0] "+&r"(w0), [w1] "+&r"(w1), [x] "+&r"(x), [c00] "+&r"(c00),
                       [c10] "+&r"(c10), [c01] "+&r"(c01), [c11] "+&r"(c11), [t0] "=&r"(t0),
                       [t1] "=&r"(t1), [u0] "=&r"(u0), [u1] "=&r"(u1), [xa] "=&r"(xa),
                       [xb] "=&r"(xb)
                     : [end] "r"(end)
                     : "cc", "memory");
    *pw0 = w0;
    *pw1 = w1;
    *px = x;
    *a00 = c00;
    *a10 = c10;
    *a01 = c01;
    *a11 = c11;
#else
    const int8_t *end = *pw0 + k8;
    for (; *pw0 < end; *pw0 += 4, *pw1 += 4, *px += 4) {
        dsp_mac_2x2(*pw0, *pw1, *px, a00, a10, a01, a11);
    }
#endif
}

/* The general-requantization path of dsp_mat_mult_q15_2col (any shift; the fast paths are
 * dsp_mat_mult_2col_k8 and dsp_mat_mult_2col_fast). */
DSP_INLINE void dsp_mat_mult_2col_body(const int8_t *filter, int32_t k, int32_t c_out,
                                       const int32_t *bias, const dsp_rq *rq,
                                       const uint32_t *pair, int8_t *out0, int8_t *out1)
{
    const int32_t k4 = k & ~3, tail = k - k4;
    const int16_t *tail0 = (const int16_t *)(pair + k4), *tail1 = tail0 + tail;
    int32_t oc = 0;
    for (; oc + 2 <= c_out; oc += 2) {
        const int8_t *w0 = filter + oc * k;
        const int8_t *w1 = w0 + k;
        const int32_t b0 = bias ? bias[oc] : 0, b1 = bias ? bias[oc + 1] : 0;
        int32_t a00 = b0, a10 = b1, a01 = b0, a11 = b1;
        const uint32_t *x = pair;
        if (k & ~7) {
            dsp_mac_2x2_k8(&w0, &w1, &x, k & ~7, &a00, &a10, &a01, &a11);
        }
        if (k & 4) {
            dsp_mac_2x2(w0, w1, x, &a00, &a10, &a01, &a11);
            w0 += 4;
            w1 += 4;
        }
        for (int32_t i = 0; i < tail; i++) {
            a00 += tail0[i] * w0[i];
            a10 += tail0[i] * w1[i];
            a01 += tail1[i] * w0[i];
            a11 += tail1[i] * w1[i];
        }
        const int32_t v00 = dsp_rq_slow(a00, rq, oc), v10 = dsp_rq_slow(a10, rq, oc + 1);
        const int32_t v01 = dsp_rq_slow(a01, rq, oc), v11 = dsp_rq_slow(a11, rq, oc + 1);
        dsp_store2(out0 + oc, v00, v10, rq);
        dsp_store2(out1 + oc, v01, v11, rq);
    }
    if (oc < c_out) { /* odd channel count: the last channel alone */
        const int8_t *w0 = filter + oc * k;
        int32_t a00 = bias ? bias[oc] : 0, a01 = a00;
        const uint32_t *x = pair;
        for (int32_t i = 0; i < k4; i += 4, x += 4) {
            const uint32_t r0 = dsp_read_u32(w0 + i);
            const uint32_t w0a = dsp_sxtb16(r0), w0b = dsp_sxtb16_ror8(r0);
            a00 = dsp_smlad(x[0], w0a, a00);
            a00 = dsp_smlad(x[1], w0b, a00);
            a01 = dsp_smlad(x[2], w0a, a01);
            a01 = dsp_smlad(x[3], w0b, a01);
        }
        for (int32_t i = 0; i < tail; i++) {
            a00 += tail0[i] * w0[k4 + i];
            a01 += tail1[i] * w0[k4 + i];
        }
        dsp_store1(out0 + oc, dsp_rq_slow(a00, rq, oc), rq);
        dsp_store1(out1 + oc, dsp_rq_slow(a01, rq, oc), rq);
    }
}

/* Two channels' outputs for two pixels (already saturated) act-clamped in one word and stored:
 * v00, v10 at out0[0..1], v01, v11 at out0[step..step + 1]. */
DSP_INLINE void dsp_store2x2(int8_t *out0, int32_t step, int32_t v00, int32_t v10, int32_t v01,
                             int32_t v11, uint32_t min4, uint32_t max4)
{
    const uint32_t lo = dsp_bfi8((uint32_t)v00, (uint32_t)v10);
    const uint32_t hi = dsp_bfi8((uint32_t)v01, (uint32_t)v11);
    const uint32_t w = dsp_clamp_s8x4((lo & 0xFFFFu) | (hi << 16), min4, max4);
    const uint16_t p0 = (uint16_t)w, p1 = (uint16_t)(w >> 16);
    memcpy(out0, &p0, sizeof p0);
    memcpy(out0 + step, &p1, sizeof p1);
}

/* The fast-requantization 2-column product (every shift in the fast range): constants walked
 * by pointer, the rounding word derived from the shift in three instructions per channel, the
 * four outputs of a 2 x 2 block clamped in one word. */
DSP_INLINE void dsp_mat_mult_2col_fast(const int8_t *filter, int32_t k, int32_t c_out,
                                       const int32_t *bias, const dsp_rq *rq,
                                       const uint32_t *pair, int8_t *out0, int8_t *out1)
{
    const int32_t k8 = k & ~7, k4 = k & ~3, tail = k - k4, step = (int32_t)(out1 - out0);
    const int16_t *tail0 = (const int16_t *)(pair + k4), *tail1 = tail0 + tail;
    const int32_t *mult = rq->mult, *shift = rq->shift, *mend = mult + (c_out & ~1);
    const uint32_t rk = (uint32_t)rq->round_k, min4 = rq->min4, max4 = rq->max4;
    const int8_t *w = filter;
    int8_t *out = out0;
    for (; mult < mend; mult += 2, shift += 2, out += 2, w += 2 * k) {
        int32_t a00 = 0, a10 = 0;
        if (bias) {
            a00 = bias[0];
            a10 = bias[1];
            bias += 2;
        }
        int32_t a01 = a00, a11 = a10;
        const int8_t *w0 = w, *w1 = w + k;
        const uint32_t *x = pair;
        if (k8) {
            dsp_mac_2x2_k8(&w0, &w1, &x, k8, &a00, &a10, &a01, &a11);
        }
        if (k & 4) {
            dsp_mac_2x2(w0, w1, x, &a00, &a10, &a01, &a11);
            w0 += 4;
            w1 += 4;
        }
        for (int32_t i = 0; i < tail; i++) {
            a00 += tail0[i] * w0[i];
            a10 += tail0[i] * w1[i];
            a01 += tail1[i] * w0[i];
            a11 += tail1[i] * w1[i];
        }
        /* rs = e - 1 = ~shift; hi = round_k << (e - 2) = (round_k << rs) >> 1 (|round_k| <=
         * 255 and rs <= 22 keep round_k << rs inside int32) */
        const int32_t rs0 = ~shift[0], rs1 = ~shift[1];
        const dsp_chq q0 = {mult[0], (int32_t)(rk << rs0) >> 1, rs0};
        const dsp_chq q1 = {mult[1], (int32_t)(rk << rs1) >> 1, rs1};
        dsp_store2x2(out, step, dsp_rq_fast(a00, q0), dsp_rq_fast(a10, q1),
                     dsp_rq_fast(a01, q0), dsp_rq_fast(a11, q1), min4, max4);
    }
    const int32_t oc = (int32_t)(mult - rq->mult);
    if (oc < c_out) { /* odd channel count: the last channel alone */
        const int8_t *w0 = filter + oc * k;
        int32_t a00 = bias ? bias[0] : 0, a01 = a00;
        const uint32_t *x = pair;
        for (int32_t i = 0; i < k4; i += 4, x += 4) {
            const uint32_t r0 = dsp_read_u32(w0 + i);
            const uint32_t w0a = dsp_sxtb16(r0), w0b = dsp_sxtb16_ror8(r0);
            a00 = dsp_smlad(x[0], w0a, a00);
            a00 = dsp_smlad(x[1], w0b, a00);
            a01 = dsp_smlad(x[2], w0a, a01);
            a01 = dsp_smlad(x[3], w0b, a01);
        }
        for (int32_t i = 0; i < tail; i++) {
            a00 += tail0[i] * w0[k4 + i];
            a01 += tail1[i] * w0[k4 + i];
        }
        const dsp_chq q0 = dsp_chq_of(rq, oc);
        dsp_store1(out0 + oc, dsp_rq_fast(a00, q0), rq);
        dsp_store1(out1 + oc, dsp_rq_fast(a01, q0), rq);
    }
}

/* dsp_mat_mult_2col_fast for k % 8 == 0 (k >= 8), a bias and c_out >= 2: on the MCU the whole
 * loop over channel pairs is one asm block (the MAC loop of dsp_mac_2x2_k8, then the four
 * dsp_rq_fast, the bytewise clamp and both stores), so that no per-block value is spilled and
 * reloaded around the MAC loop. The loop's 14 registers leave none for the walking pointers
 * and constants: those live in a stack record, read and written as memory operands. */
DSP_INLINE void dsp_mat_mult_2col_k8(const int8_t *filter, int32_t k, int32_t c_out,
                                     const int32_t *bias, const dsp_rq *rq,
                                     const uint32_t *pair, int8_t *out0, int8_t *out1)
{
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    const int32_t pairs = c_out & ~1;
    /* memory operands, each pair of words read by one LDRD (or written by one STRD) */
    struct {
        const int32_t *mult, *shift;
    } qp = {rq->mult, rq->shift};
    const int8_t *wp = filter;
    const int32_t *bp = bias;
    int8_t *op = out0;
    const struct {
        int32_t k;
        const uint32_t *x;
    } kx = {k, pair};
    const struct {
        uint32_t min4, max4;
    } mm = {rq->min4, rq->max4};
    const struct {
        int32_t step;
        int8_t *end;
    } se = {(int32_t)(out1 - out0), out0 + pairs};
    const int32_t rk = rq->round_k;
    uint32_t w0, w1, x, c00, c10, c01, c11, t0, t1, u0, u1, xa, xb, end;
    __asm__ volatile(
        "2:\n\t"
        "ldr %[w0], %[mw]\n\t"
        "ldrd %[t0], %[x], %[kx]\n\t"
        "add %[w1], %[w0], %[t0]\n\t"
        "mov %[end], %[w1]\n\t"
        "ldr %[t1], %[mb]\n\t"
        "ldrd %[c00], %[c10], [%[t1]], #8\n\t"
        "str %[t1], %[mb]\n\t"
        "mov %[c01], %[c00]\n\t"
        "mov %[c11], %[c10]\n\t"
        DSP_MAC_2X2_K8_LOOP
        /* w1 now starts the next channel pair's rows */
        "str %[w1], %[mw]\n\t"
        /* constants: u0, u1 = multipliers; xa, xb = rs = ~shift; w0, w1 = hi (dsp_chq) */
        "ldrd %[t0], %[t1], %[qp]\n\t"
        "ldrd %[u0], %[u1], [%[t0]], #8\n\t"
        "ldrd %[xa], %[xb], [%[t1]], #8\n\t"
        "strd %[t0], %[t1], %[qp]\n\t"
        "ldr %[end], %[rk]\n\t"
        "mvn %[xa], %[xa]\n\t"
        "mvn %[xb], %[xb]\n\t"
        "lsl %[w0], %[end], %[xa]\n\t"
        "lsl %[w1], %[end], %[xb]\n\t"
        "asr %[w0], %[w0], #1\n\t"
        "asr %[w1], %[w1], #1\n\t"
        /* dsp_rq_fast on each accumulator */
        "and %[t0], %[c00], #0x80000000\n\t"
        "add %[t1], %[w0], %[c00], asr #31\n\t"
        "add %[t0], %[t0], #0x40000000\n\t"
        "smlal %[t0], %[t1], %[c00], %[u0]\n\t"
        "and %[x], %[c01], #0x80000000\n\t"
        "add %[end], %[w0], %[c01], asr #31\n\t"
        "add %[x], %[x], #0x40000000\n\t"
        "smlal %[x], %[end], %[c01], %[u0]\n\t"
        "asr %[c00], %[t1], %[xa]\n\t"
        "asr %[c01], %[end], %[xa]\n\t"
        "and %[t0], %[c10], #0x80000000\n\t"
        "add %[t1], %[w1], %[c10], asr #31\n\t"
        "add %[t0], %[t0], #0x40000000\n\t"
        "smlal %[t0], %[t1], %[c10], %[u1]\n\t"
        "and %[x], %[c11], #0x80000000\n\t"
        "add %[end], %[w1], %[c11], asr #31\n\t"
        "add %[x], %[x], #0x40000000\n\t"
        "smlal %[x], %[end], %[c11], %[u1]\n\t"
        "asr %[c10], %[t1], %[xb]\n\t"
        "asr %[c11], %[end], %[xb]\n\t"
        "ssat %[c00], #8, %[c00]\n\t"
        "ssat %[c10], #8, %[c10]\n\t"
        "ssat %[c01], #8, %[c01]\n\t"
        "ssat %[c11], #8, %[c11]\n\t"
        /* pack (pixel 0 low half, pixel 1 high half), clamp (dsp_clamp_s8x4), store */
        "bfi %[c00], %[c10], #8, #8\n\t"
        "bfi %[c01], %[c11], #8, #8\n\t"
        "ldrd %[t0], %[t1], %[mm]\n\t"
        "pkhbt %[c00], %[c00], %[c01], lsl #16\n\t"
        "ssub8 %[x], %[c00], %[t0]\n\t"
        "sel %[c00], %[c00], %[t0]\n\t"
        "ssub8 %[x], %[t1], %[c00]\n\t"
        "sel %[c00], %[c00], %[t1]\n\t"
        "ldr %[t0], %[mo]\n\t"
        "ldrd %[t1], %[x], %[se]\n\t"
        "lsr %[c01], %[c00], #16\n\t"
        "strh %[c01], [%[t0], %[t1]]\n\t"
        "strh %[c00], [%[t0]], #2\n\t"
        "str %[t0], %[mo]\n\t"
        "cmp %[t0], %[x]\n\t"
        "bne 2b"
        : [w0] "=&r"(w0), [w1] "=&r"(w1), [x] "=&r"(x), [c00] "=&r"(c00), [c10] "=&r"(c10),
          [c01] "=&r"(c01), [c11] "=&r"(c11), [t0] "=&r"(t0), [t1] "=&r"(t1), [u0] "=&r"(u0),
          [u1] "=&r"(u1), [xa] "=&r"(xa), [xb] "=&r"(xb), [end] "=&r"(end), [mw] "+m"(wp),
          [mb] "+m"(bp), [qp] "+m"(qp), [mo] "+m"(op)
        : [kx] "m"(kx), [mm] "m"(mm), [se] "m"(se), [rk] "m"(rk)
        : "cc", "memory");
    if (pairs < c_out) { /* odd channel count: the last channel alone, by the C path */
        dsp_rq last = *rq;
        last.mult += pairs;
        last.shift += pairs;
        dsp_mat_mult_2col_fast(filter + pairs * k, k, 1, bias + pairs, &last, pair,
                               out0 + pairs, out1 + pairs);
    }
#else
    dsp_mat_mult_2col_fast(filter, k, c_out, bias, rq, pair, out0, out1);
#endif
}

/* Matrix product, two columns (two output pixels) at a time:
 *   out0[oc] = requant(bias[oc] + sum_k col0[k] * w[oc][k]), out1 likewise from col1,
 * filter rows int8 [c_out][k], columns from dsp_q7_to_q15_pair (4-byte aligned). Inner loop
 * (dsp_mac_2x2, unrolled twice): 16 instructions for 16 MACs plus the loop branch; the
 * requantization is the fast path of the whole call when every shift allows it, and then
 * k % 8 == 0 with a bias takes dsp_mat_mult_2col_k8 (about 61 instructions of set-up,
 * requantization and stores per 2 x 2 block instead of about 120). */
static inline void dsp_mat_mult_q15_2col(const int8_t *filter, int32_t k, int32_t c_out,
                                         const int32_t *bias, const dsp_rq *rq,
                                         const int16_t *pair, int8_t *out0, int8_t *out1)
{
    const uint32_t *words = (const uint32_t *)(const void *)pair;
    if (rq->fast && bias && k >= 8 && (k & 7) == 0 && c_out >= 2) {
        dsp_mat_mult_2col_k8(filter, k, c_out, bias, rq, words, out0, out1);
    } else if (rq->fast) {
        dsp_mat_mult_2col_fast(filter, k, c_out, bias, rq, words, out0, out1);
    } else {
        dsp_mat_mult_2col_body(filter, k, c_out, bias, rq, words, out0, out1);
    }
}

DSP_INLINE void dsp_mat_mult_1col_body(const int8_t *filter, int32_t k, int32_t c_out,
                                       const int32_t *bias, const dsp_rq *rq,
                                       int32_t q_stride, const uint32_t *col, int8_t *out,
                                       const int fast)
{
    const int32_t k4 = k & ~3;
    const int16_t *tail = (const int16_t *)col;
    for (int32_t oc = 0; oc < c_out; oc += 2) {
        const int two = oc + 1 < c_out;
        const int8_t *w0 = filter + oc * k;
        const int8_t *w1 = two ? w0 + k : w0; /* the odd last channel runs twice, stored once */
        const int32_t qc0 = oc * q_stride, qc1 = (oc + two) * q_stride;
        int32_t a0 = bias ? bias[oc] : 0, a1 = bias ? bias[oc + two] : 0;
        const uint32_t *x = col;
        int32_t i = 0;
        for (; i < k4; i += 4, x += 2) {
            const uint32_t r0 = dsp_read_u32(w0 + i), r1 = dsp_read_u32(w1 + i);
            const uint32_t x0 = x[0], x1 = x[1];
            a0 = dsp_smlad(x0, dsp_sxtb16(r0), a0);
            a1 = dsp_smlad(x0, dsp_sxtb16(r1), a1);
            a0 = dsp_smlad(x1, dsp_sxtb16_ror8(r0), a0);
            a1 = dsp_smlad(x1, dsp_sxtb16_ror8(r1), a1);
        }
        for (; i < k; i++) {
            a0 += tail[i] * w0[i];
            a1 += tail[i] * w1[i];
        }
        int32_t v0, v1;
        if (fast) {
            v0 = dsp_rq_fast(a0, dsp_chq_of(rq, qc0));
            v1 = dsp_rq_fast(a1, dsp_chq_of(rq, qc1));
        } else {
            v0 = dsp_rq_slow(a0, rq, qc0);
            v1 = dsp_rq_slow(a1, rq, qc1);
        }
        if (two) {
            dsp_store2(out + oc, v0, v1, rq);
        } else {
            dsp_store1(out + oc, v0, rq);
        }
    }
}

/* Matrix product, one column (q15 reordered, dsp_q7_to_q15_reordered, 4-byte aligned):
 * 2 channels per pass, per 4 k: 2 LDR + 4 SXTB16 (weights), 2 LDR (column), 4 SMLAD for
 * 8 MACs. q_stride is 1 (per-channel quantization) or 0 (per-tensor). */
static inline void dsp_mat_mult_q15_1col(const int8_t *filter, int32_t k, int32_t c_out,
                                         const int32_t *bias, const dsp_rq *rq,
                                         int32_t q_stride, const int16_t *col, int8_t *out)
{
    const uint32_t *words = (const uint32_t *)(const void *)col;
    if (rq->fast) {
        dsp_mat_mult_1col_body(filter, k, c_out, bias, rq, q_stride, words, out, 1);
    } else {
        dsp_mat_mult_1col_body(filter, k, c_out, bias, rq, q_stride, words, out, 0);
    }
}

/* ---- elementwise, pooling and activation helpers ---- */

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* Bytewise signed max of a and b (SSUB8 sets GE where a >= b, SEL picks). */
static inline uint32_t dsp_max_s8x4(uint32_t a, uint32_t b)
{
    uint32_t t;
    __asm__("ssub8 %[t], %[a], %[b]\n\t"
            "sel %[a], %[a], %[b]"
            : [a] "+r"(a), [t] "=&r"(t)
            : [b] "r"(b)
            : "cc");
    return a;
}

/* acc + SXTB16(x): bytes 0 and 2 of x added to the two int16 lanes of acc (SXTAB16). */
static inline uint32_t dsp_sxtab16(uint32_t acc, uint32_t x)
{
    return (uint32_t)__sxtab16((int32_t)acc, (int32_t)x);
}

/* acc + SXTB16(x ROR 8): bytes 1 and 3 of x added to the two int16 lanes of acc. */
static inline uint32_t dsp_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(acc), "r"(x));
    return r;
}

/* Four int8 values (low byte of each argument) packed into one word, v0 lowest (3 BFI). */
static inline uint32_t dsp_pack4(int32_t v0, int32_t v1, int32_t v2, int32_t v3)
{
    uint32_t w = (uint32_t)v0;
    __asm__("bfi %0, %1, #8, #8\n\t"
            "bfi %0, %2, #16, #8\n\t"
            "bfi %0, %3, #24, #8"
            : "+r"(w)
            : "r"(v1), "r"(v2), "r"(v3));
    return w;
}
#else
static inline uint32_t dsp_max_s8x4(uint32_t a, uint32_t b)
{
    uint32_t out = 0;
    for (int i = 0; i < 32; i += 8) {
        const int32_t x = (int8_t)(a >> i), y = (int8_t)(b >> i);
        out |= ((uint32_t)(x >= y ? x : y) & 0xFFu) << i;
    }
    return out;
}

static inline uint32_t dsp_sxtab16(uint32_t acc, uint32_t x)
{
    return dsp_sadd16(acc, dsp_sxtb16(x));
}

static inline uint32_t dsp_sxtab16_ror8(uint32_t acc, uint32_t x)
{
    return dsp_sadd16(acc, dsp_sxtb16_ror8(x));
}

static inline uint32_t dsp_pack4(int32_t v0, int32_t v1, int32_t v2, int32_t v3)
{
    return ((uint32_t)v0 & 0xFFu) | (((uint32_t)v1 & 0xFFu) << 8) |
           (((uint32_t)v2 & 0xFFu) << 16) | ((uint32_t)v3 << 24);
}
#endif

/* v in both int16 lanes of a word. */
static inline uint32_t dsp_pair16(int32_t v)
{
    return ((uint32_t)v & 0xFFFFu) | ((uint32_t)v << 16);
}

/* High word of the unsigned product a * b (UMULL). */
static inline uint32_t dsp_umulh(uint32_t a, uint32_t b)
{
    return (uint32_t)(((uint64_t)a * b) >> 32);
}

/* The two int16 lanes of a word, sign-extended. */
static inline int32_t dsp_lane_lo(uint32_t x) { return (int16_t)(x & 0xFFFFu); }
static inline int32_t dsp_lane_hi(uint32_t x) { return (int32_t)x >> 16; }

/* ---- 256-entry lookup tables (int8 -> int8 functions) ----
 * A kernel whose output depends on one int8 input alone (ReLU, hard-swish, hard-sigmoid) can
 * evaluate its exact scalar function once per input value into a 256-byte table on the stack
 * and then look every element up. Building costs 256 evaluations, so the table pays off from
 * about 256 * f / (f - 4) elements (f = instructions per direct evaluation, 4 = per lookup);
 * smaller tensors are evaluated directly. */
#define DSP_LUT_MIN_COUNT 320

/* out[i] = table[in[i] + 128] for n elements, four per word (SXTB and LDRB per byte, the
 * results ORed into one word). out may equal in. */
static inline void dsp_lut_s8(const int8_t *table, const int8_t *in, int8_t *out, int32_t n)
{
    const uint8_t *t = (const uint8_t *)table + 128; /* indexed by the signed input */
    __asm__("" : "+r"(t)); /* one base register (GCC rebuilds a stack address per use) */
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t x = dsp_read_u32(in + i);
        const uint32_t w = (uint32_t)t[(int8_t)x] | ((uint32_t)t[(int8_t)(x >> 8)] << 8) |
                           ((uint32_t)t[(int8_t)(x >> 16)] << 16) |
                           ((uint32_t)t[(int32_t)x >> 24] << 24);
        dsp_write_u32(out + i, w);
    }
    for (; i < n; i++) {
        out[i] = (int8_t)t[in[i]];
    }
}

#endif /* ATOMSIM_DSP_H */
