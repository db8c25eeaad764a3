/* Global average pooling, Cortex-M DSP version. Bit-identical to
 * reference/atomsim_global_avgpool_s8.c. Contract: atomsim_nn.h.
 *
 * Channel sums in int16 lanes, 16, 8 or 4 channels per pass over the pixels: per pixel and 4
 * channels one LDR and two SXTAB16 (channels (0, 2) and (1, 3) of the word). A lane holds at
 * most 256 pixels (|sum| <= 128 * 256 = 2^15, and -2^15 fits), so when H * W > 256 the lanes
 * are added to int32 sums every 256 pixels. The c % 4 last channels are summed one by one.
 *
 * The rounded division is the one of cortex_m_dsp/atomsim_avgpool_s8.c: with d = H * W,
 * h = d / 2 and K = h (sum >= 0) or d - 1 - h (sum < 0), the reference's rounding equals
 * floor(n / d) - 128 for n = sum + K + 128 * d in [0, 256 * d), and
 *   floor(n / d) = hi32(n * M),  M = floor((2^32 - 1) / d) + 1,
 * because M * d = 2^32 + e with 0 <= e < d and the excess n * e / (d * 2^32) stays below 1 / d
 * while n * e < 2^32: n * e < 256 * d * d <= 2^32 for every d <= 4096 (the avgpool kernel only
 * needs d <= 256). The quotient is avg + 128 in a byte; XOR 0x80 gives the int8 avg.
 * d == 1 and d > 4096 use the reference's division (once per channel, not per element).
 */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_global_avgpool_s8_get_buffer_size(const atomsim_dims *input_dims)
{
    (void)input_dims;
    return 0;
}

#define GAP_LANE_PIXELS 256 /* pixels an int16 lane can sum without overflow */
#define GAP_FAST_MAX_D 4096 /* largest d for which the reciprocal division is exact */

/* Per-call constants of the division (see the top of the file). */
typedef struct {
    int32_t d;
    int32_t base; /* h + 128 * d */
    int32_t adj;  /* (d - 1 - h) - h: 0 for odd d, -1 for even d */
    uint32_t m;   /* floor((2^32 - 1) / d) + 1; 0: use the reference's division */
} gap_div;

/* avg + 128 of one channel sum (a byte; higher bits are dropped by the packing). */
static inline uint32_t gap_avg_u8(int32_t sum, const gap_div *dv)
{
    if (dv->m != 0) {
        const int32_t n = sum + dv->base + ((sum >> 31) & dv->adj);
        return dsp_umulh((uint32_t)n, dv->m);
    }
    const int32_t d = dv->d;
    return (uint32_t)((sum > 0 ? (sum + d / 2) / d : (sum - d / 2) / d) + 128);
}

/* Four channel sums -> four int8 averages in one word, channel s0 lowest. */
static inline uint32_t gap_word(int32_t s0, int32_t s1, int32_t s2, int32_t s3,
                                const gap_div *dv)
{
    const uint32_t w = dsp_pack4((int32_t)gap_avg_u8(s0, dv), (int32_t)gap_avg_u8(s1, dv),
                                 (int32_t)gap_avg_u8(s2, dv), (int32_t)gap_avg_u8(s3, dv));
    return w ^ 0x80808080u;
}

/* Lane sums of up to 16 channels: channels 4k, 4k + 2 in lo_k, 4k + 1, 4k + 3 in hi_k. */
typedef struct {
    uint32_t lo0, hi0, lo1, hi1, lo2, hi2, lo3, hi3;
} gap_lanes;

/* Lane sums of 4 * nw channels (nw = 1, 2 or 4) from q to end (exclusive), pixel stride c,
 * at most GAP_LANE_PIXELS pixels. Named fields, not an array: GCC keeps them in registers. */
DSP_INLINE gap_lanes gap_sum_lanes(const int8_t *q, const int8_t *end, int32_t c,
                                   const int32_t nw)
{
    gap_lanes a = {0, 0, 0, 0, 0, 0, 0, 0};
    for (; q != end; q += c) {
        const uint32_t x0 = dsp_read_u32(q);
        a.lo0 = dsp_sxtab16(a.lo0, x0);
        a.hi0 = dsp_sxtab16_ror8(a.hi0, x0);
        if (nw >= 2) {
            const uint32_t x1 = dsp_read_u32(q + 4);
            a.lo1 = dsp_sxtab16(a.lo1, x1);
            a.hi1 = dsp_sxtab16_ror8(a.hi1, x1);
        }
        if (nw >= 4) {
            const uint32_t x2 = dsp_read_u32(q + 8), x3 = dsp_read_u32(q + 12);
            a.lo2 = dsp_sxtab16(a.lo2, x2);
            a.hi2 = dsp_sxtab16_ror8(a.hi2, x2);
            a.lo3 = dsp_sxtab16(a.lo3, x3);
            a.hi3 = dsp_sxtab16_ror8(a.hi3, x3);
        }
    }
    return a;
}

/* sum[0..15] += the lanes, in channel order. */
static inline void gap_add_lanes(int32_t *sum, const gap_lanes *a)
{
    const uint32_t lo[4] = {a->lo0, a->lo1, a->lo2, a->lo3};
    const uint32_t hi[4] = {a->hi0, a->hi1, a->hi2, a->hi3};
    for (int32_t k = 0; k < 4; k++) {
        sum[4 * k] += dsp_lane_lo(lo[k]);
        sum[4 * k + 1] += dsp_lane_lo(hi[k]);
        sum[4 * k + 2] += dsp_lane_hi(lo[k]);
        sum[4 * k + 3] += dsp_lane_hi(hi[k]);
    }
}

/* 4 * nw channels starting at in (nw = 1, 2 or 4): sums, averages, clamp, store at out.
 * The int32 sums pass through memory: once per 256 pixels and channel, outside the loop. */
DSP_INLINE void gap_group(const int8_t *in, int32_t count, int32_t c, const int32_t nw,
                          const gap_div *dv, int clamp, uint32_t min4, uint32_t max4,
                          int8_t *out)
{
    int32_t sum[16] = {0};
    for (int32_t p = 0; p < count; p += GAP_LANE_PIXELS) {
        const int32_t n = atomsim_min_i32(GAP_LANE_PIXELS, count - p);
        const int8_t *q = in + p * c;
        const gap_lanes a = gap_sum_lanes(q, q + n * c, c, nw);
        gap_add_lanes(sum, &a);
    }
    for (int32_t k = 0; k < nw; k++) {
        const uint32_t w = gap_word(sum[4 * k], sum[4 * k + 1], sum[4 * k + 2],
                                    sum[4 * k + 3], dv);
        dsp_write_u32(out + 4 * k, clamp ? dsp_clamp_s8x4(w, min4, max4) : w);
    }
}

atomsim_status atomsim_global_avgpool_s8(const atomsim_context *ctx, int32_t act_min,
                                         int32_t act_max, const atomsim_dims *input_dims,
                                         const int8_t *input, int8_t *output)
{
    (void)ctx;
    if (input == 0 || output == 0 || !atomsim_dims_ok(input_dims) || input_dims->n != 1 ||
        input_dims->h * input_dims->w > (1 << 16) || !atomsim_offsets_ok(0, 0, act_min, act_max)) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t count = input_dims->h * input_dims->w, c = input_dims->c;
    gap_div dv = {count, count / 2 + 128 * count, count - 1 - 2 * (count / 2), 0u};
    if (count >= 2 && count <= GAP_FAST_MAX_D) {
        dv.m = 0xFFFFFFFFu / (uint32_t)count + 1u;
    }
    const uint32_t min4 = dsp_splat8(act_min), max4 = dsp_splat8(act_max);
    const int clamp = act_min > ATOMSIM_INT8_MIN || act_max < ATOMSIM_INT8_MAX;
    int32_t ch = 0;
    for (; ch + 16 <= c; ch += 16) {
        gap_group(input + ch, count, c, 4, &dv, clamp, min4, max4, output + ch);
    }
    if (ch + 8 <= c) {
        gap_group(input + ch, count, c, 2, &dv, clamp, min4, max4, output + ch);
        ch += 8;
    }
    if (ch + 4 <= c) {
        gap_group(input + ch, count, c, 1, &dv, clamp, min4, max4, output + ch);
        ch += 4;
    }
    for (; ch < c; ch++) { /* the c % 4 last channels */
        int32_t sum = 0;
        for (const int8_t *q = input + ch; q != input + count * c + ch; q += c) {
            sum += *q;
        }
        const int32_t avg = (int32_t)(gap_avg_u8(sum, &dv) & 0xFFu) - 128;
        output[ch] = (int8_t)atomsim_clamp_i32(avg, act_min, act_max);
    }
    return ATOMSIM_OK;
}
