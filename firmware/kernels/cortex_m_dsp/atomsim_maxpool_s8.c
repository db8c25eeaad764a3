/* Max pooling, Cortex-M DSP version: four channels per word, the running maximum kept with
 * SSUB8 + SEL (bytewise signed max), 16 channels per pass over the window (per tap: 4 LDR,
 * 4 SSUB8 + SEL), the activation clamp (skipped when it is [-128, 127]) applied to whole
 * words; the c % 4 last channels scalar.
 * Bit-identical to reference/atomsim_maxpool_s8.c. Contract: atomsim_nn.h. */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

#define MIN4 0x80808080u /* -128 in every byte: the identity of the bytewise max */

int32_t atomsim_maxpool_s8_get_buffer_size(const atomsim_dims *output_dims)
{
    (void)output_dims;
    return 0;
}

atomsim_status atomsim_maxpool_s8(const atomsim_context *ctx, const atomsim_pool_params *params,
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
    const int32_t c4 = c & ~3, row = in_w * c;
    const uint32_t min4 = dsp_splat8(act_min), max4 = dsp_splat8(act_max);
    const int clamp = act_min > ATOMSIM_INT8_MIN || act_max < ATOMSIM_INT8_MAX;
    int8_t *out = output;
    for (int32_t oy = 0; oy < out_h; oy++) {
        const int32_t y0 = oy * sh - ph;
        const int32_t ky0 = atomsim_max_i32(0, -y0);
        const int32_t rows = atomsim_min_i32(fh, in_h - y0) - ky0;
        for (int32_t ox = 0; ox < out_w; ox++, out += c) {
            const int32_t x0 = ox * sw - pw;
            const int32_t kx0 = atomsim_max_i32(0, -x0);
            const int32_t span = (atomsim_min_i32(fw, in_w - x0) - kx0) * c;
            /* the window's in-bounds part: rows x (span / c) elements from first */
            const int8_t *first = input + (y0 + ky0) * row + (x0 + kx0) * c;
            const int8_t *last_row = first + rows * row;
            int32_t ch = 0;
            for (; ch + 16 <= c; ch += 16) { /* four words per tap: loop overhead / 4 */
                uint32_t b0 = MIN4, b1 = MIN4, b2 = MIN4, b3 = MIN4;
                for (const int8_t *r = first + ch; r != last_row + ch; r += row) {
                    for (const int8_t *q = r; q != r + span; q += c) {
                        b0 = dsp_max_s8x4(b0, dsp_read_u32(q));
                        b1 = dsp_max_s8x4(b1, dsp_read_u32(q + 4));
                        b2 = dsp_max_s8x4(b2, dsp_read_u32(q + 8));
                        b3 = dsp_max_s8x4(b3, dsp_read_u32(q + 12));
                    }
                }
                if (clamp) {
                    b0 = dsp_clamp_s8x4(b0, min4, max4);
                    b1 = dsp_clamp_s8x4(b1, min4, max4);
                    b2 = dsp_clamp_s8x4(b2, min4, max4);
                    b3 = dsp_clamp_s8x4(b3, min4, max4);
                }
                dsp_write_u32(out + ch, b0);
                dsp_write_u32(out + ch + 4, b1);
                dsp_write_u32(out + ch + 8, b2);
                dsp_write_u32(out + ch + 12, b3);
            }
            for (; ch < c4; ch += 4) {
                uint32_t best = MIN4;
                for (const int8_t *r = first + ch; r != last_row + ch; r += row) {
                    for (const int8_t *q = r; q != r + span; q += c) {
                        best = dsp_max_s8x4(best, dsp_read_u32(q));
                    }
                }
                dsp_write_u32(out + ch, clamp ? dsp_clamp_s8x4(best, min4, max4) : best);
            }
            for (; ch < c; ch++) {
                int32_t best = ATOMSIM_INT8_MIN;
                for (const int8_t *r = first + ch; r != last_row + ch; r += row) {
                    for (const int8_t *q = r; q != r + span; q += c) {
                        best = atomsim_max_i32(best, *q);
                    }
                }
                out[ch] = (int8_t)atomsim_clamp_i32(best, act_min, act_max);
            }
        }
    }
    return ATOMSIM_OK;
}
