/* Average pooling, Cortex-M DSP version. Bit-identical to reference/atomsim_avgpool_s8.c.
 * Contract: atomsim_nn.h.
 *
 * Window sums in int16 lanes, 8 channels per pass: per tap 2 LDR + 4 SXTAB16 (SXTB16 and
 * SXTB16 ROR 8 split a word into channels (0, 2) and (1, 3)). A window of d <= 256 elements
 * cannot overflow a lane (|sum| <= 128 * 256 = 2^15, and -2^15 fits).
 *
 * The rounded division without a divide per channel: the reference's
 *   avg = sum > 0 ? (sum + h) / d : (sum - h) / d   (C division, h = d / 2)
 * equals floor((sum + K) / d) with K = h for sum >= 0 and K = d - 1 - h for sum < 0 (for
 * sum < 0, -floor((h - sum) / d) = floor((sum - h + d - 1) / d)). Adding 128 * d makes the
 * dividend n = sum + K + 128 * d lie in [0, 256 * d), and then
 *   floor(n / d) = hi32(n * M),  M = floor((2^32 - 1) / d) + 1,  2 <= d <= 256:
 * M * d = 2^32 + e with 0 <= e < d, so n * M / 2^32 = n / d + n * e / (d * 2^32), and the
 * excess is < 1 / d whenever n * e < 2^32 (here n * e < 2^16 * 2^8): it never reaches the
 * next multiple of 1 / d. The quotient is avg + 128, an unsigned byte; XOR 0x80 makes it the
 * int8 avg. Windows of one element or more than 256 take the reference's arithmetic.
 */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_avgpool_s8_get_buffer_size(const atomsim_dims *output_dims)
{
    (void)output_dims;
    return 0;
}

/* Per-window constants of the division (see the top of the file). */
typedef struct {
    int32_t base; /* h + 128 * d */
    int32_t adj;  /* (d - 1 - h) - h: 0 for odd d, -1 for even d */
    uint32_t m;   /* floor((2^32 - 1) / d) + 1 */
} avg_div;

/* avg + 128 of one window sum. */
static inline uint32_t avg_u8(int32_t sum, const avg_div *dv)
{
    const int32_t n = sum + dv->base + ((sum >> 31) & dv->adj);
    return dsp_umulh((uint32_t)n, dv->m);
}

/* The reference's rounding, for windows the fast division does not cover. */
static inline int32_t avg_ref(int32_t sum, int32_t d)
{
    return sum > 0 ? (sum + d / 2) / d : (sum - d / 2) / d;
}

/* Four channel sums as int16 lanes (channels 0, 2 in a02; 1, 3 in a13) -> one output word. */
static inline uint32_t avg_word(uint32_t a02, uint32_t a13, const avg_div *dv)
{
    const uint32_t q0 = avg_u8(dsp_lane_lo(a02), dv), q1 = avg_u8(dsp_lane_lo(a13), dv);
    const uint32_t q2 = avg_u8(dsp_lane_hi(a02), dv), q3 = avg_u8(dsp_lane_hi(a13), dv);
    return dsp_pack4((int32_t)q0, (int32_t)q1, (int32_t)q2, (int32_t)q3) ^ 0x80808080u;
}

atomsim_status atomsim_avgpool_s8(const atomsim_context *ctx, const atomsim_pool_params *params,
                                  const atomsim_dims *input_dims, const int8_t *input,
                                  const atomsim_dims *filter_dims,
                                  const atomsim_dims *output_dims, int8_t *output)
{
    (void)ctx;
    if (!atomsim_pool_args_ok(params, input_dims, filter_dims, output_dims, input, output)) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t in_h = input_dims->h, in_w = input_dims->w, c = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    const int32_t fh = filter_dims->h, fw = filter_dims->w;
    const int32_t sh = params->stride_h, sw = params->stride_w;
    const int32_t ph = params->pad_h, pw = params->pad_w;
    const int32_t act_min = params->act_min, act_max = params->act_max;
    const int32_t row = in_w * c;
    const uint32_t min4 = dsp_splat8(act_min), max4 = dsp_splat8(act_max);
    const int clamp = act_min > ATOMSIM_INT8_MIN || act_max < ATOMSIM_INT8_MAX;
    avg_div dv = {0, 0, 0};
    int32_t dv_of = 0; /* the window size dv was made for */
    int8_t *out = output;
    for (int32_t oy = 0; oy < out_h; oy++) {
        const int32_t y0 = oy * sh - ph;
        const int32_t ky0 = atomsim_max_i32(0, -y0);
        const int32_t rows = atomsim_min_i32(fh, in_h - y0) - ky0;
        for (int32_t ox = 0; ox < out_w; ox++, out += c) {
            const int32_t x0 = ox * sw - pw;
            const int32_t kx0 = atomsim_max_i32(0, -x0);
            const int32_t cols = atomsim_min_i32(fw, in_w - x0) - kx0;
            const int32_t span = cols * c, d = rows * cols;
            /* the window's in-bounds part: rows x cols elements from first */
            const int8_t *first = input + (y0 + ky0) * row + (x0 + kx0) * c;
            const int8_t *last_row = first + rows * row;
            int32_t ch = 0;
            if (d >= 2 && d <= 256) {
                if (d != dv_of) {
                    const int32_t h = d / 2;
                    dv.base = h + 128 * d;
                    dv.adj = d - 1 - 2 * h;
                    dv.m = 0xFFFFFFFFu / (uint32_t)d + 1u;
                    dv_of = d;
                }
                for (; ch + 8 <= c; ch += 8) {
                    uint32_t a02 = 0, a13 = 0, b02 = 0, b13 = 0;
                    for (const int8_t *r = first + ch; r != last_row + ch; r += row) {
                        for (const int8_t *q = r; q != r + span; q += c) {
                            const uint32_t x = dsp_read_u32(q), y = dsp_read_u32(q + 4);
                            a02 = dsp_sxtab16(a02, x);
                            a13 = dsp_sxtab16_ror8(a13, x);
                            b02 = dsp_sxtab16(b02, y);
                            b13 = dsp_sxtab16_ror8(b13, y);
                        }
                    }
                    uint32_t w0 = avg_word(a02, a13, &dv), w1 = avg_word(b02, b13, &dv);
                    if (clamp) {
                        w0 = dsp_clamp_s8x4(w0, min4, max4);
                        w1 = dsp_clamp_s8x4(w1, min4, max4);
                    }
                    dsp_write_u32(out + ch, w0);
                    dsp_write_u32(out + ch + 4, w1);
                }
                for (; ch + 4 <= c; ch += 4) {
                    uint32_t a02 = 0, a13 = 0;
                    for (const int8_t *r = first + ch; r != last_row + ch; r += row) {
                        for (const int8_t *q = r; q != r + span; q += c) {
                            const uint32_t x = dsp_read_u32(q);
                            a02 = dsp_sxtab16(a02, x);
                            a13 = dsp_sxtab16_ror8(a13, x);
                        }
                    }
                    const uint32_t w = avg_word(a02, a13, &dv);
                    dsp_write_u32(out + ch, clamp ? dsp_clamp_s8x4(w, min4, max4) : w);
                }
            }
            for (; ch < c; ch++) { /* c % 4 channels, and windows of 1 or > 256 elements */
                int32_t sum = 0;
                for (const int8_t *r = first + ch; r != last_row + ch; r += row) {
                    for (const int8_t *q = r; q != r + span; q += c) {
                        sum += *q;
                    }
                }
                out[ch] = (int8_t)atomsim_clamp_i32(avg_ref(sum, d), act_min, act_max);
            }
        }
    }
    return ATOMSIM_OK;
}
