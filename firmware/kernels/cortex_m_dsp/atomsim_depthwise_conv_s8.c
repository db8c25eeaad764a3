/* Depthwise convolution (depth multiplier 1), Cortex-M DSP. Contract: atomsim_nn.h.
 *
 * The scratch buffer holds, per channel, bias + input_offset * (sum of the channel's taps).
 * For an output pixel whose window lies inside the input, the accumulator then needs only
 * sum(x * w): 4 channels per pass, per tap one LDR of 4 inputs, one LDR of 4 weights,
 * 4 SXTB16 and 4 SMLAxy (SMLABB / SMLATT) = 10 instructions for 4 MACs. Border pixels (window
 * partly in the padding) take the exact per-channel path of the reference kernel. */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_depthwise_conv_s8_get_buffer_size(const atomsim_dims *input_dims,
                                                  const atomsim_dims *filter_dims,
                                                  const atomsim_dims *output_dims)
{
    (void)filter_dims;
    (void)output_dims;
    return 4 * input_dims->c;
}

/* Window fully inside: fold[] already holds bias + offset * sum(w). */
static void interior_pixel(const int8_t *in, const int8_t *filter, const int32_t *fold,
                           int32_t c, int32_t in_w, int32_t k_h, int32_t k_w,
                           const atomsim_conv_params *p,
                           const atomsim_per_channel_quant_params *q, int8_t *out)
{
    const int32_t row_step = (in_w - k_w) * c;
    int32_t ch = 0;
    for (; ch + 4 <= c; ch += 4) {
        int32_t a0 = fold[ch], a1 = fold[ch + 1], a2 = fold[ch + 2], a3 = fold[ch + 3];
        const int8_t *x = in + ch;
        const int8_t *w = filter + ch;
        for (int32_t ky = 0; ky < k_h; ky++, x += row_step) {
            for (int32_t kx = 0; kx < k_w; kx++, x += c, w += c) {
                const uint32_t xr = dsp_read_u32(x), wr = dsp_read_u32(w);
                const uint32_t x02 = dsp_sxtb16(xr), x13 = dsp_sxtb16_ror8(xr);
                const uint32_t w02 = dsp_sxtb16(wr), w13 = dsp_sxtb16_ror8(wr);
                a0 = dsp_smlabb(x02, w02, a0);
                a2 = dsp_smlatt(x02, w02, a2);
                a1 = dsp_smlabb(x13, w13, a1);
                a3 = dsp_smlatt(x13, w13, a3);
            }
        }
        out[ch] = (int8_t)dsp_requantize(a0, q->multiplier[ch], q->shift[ch], p->output_offset,
                                         p->act_min, p->act_max);
        out[ch + 1] = (int8_t)dsp_requantize(a1, q->multiplier[ch + 1], q->shift[ch + 1],
                                             p->output_offset, p->act_min, p->act_max);
        out[ch + 2] = (int8_t)dsp_requantize(a2, q->multiplier[ch + 2], q->shift[ch + 2],
                                             p->output_offset, p->act_min, p->act_max);
        out[ch + 3] = (int8_t)dsp_requantize(a3, q->multiplier[ch + 3], q->shift[ch + 3],
                                             p->output_offset, p->act_min, p->act_max);
    }
    for (; ch < c; ch++) {
        int32_t acc = fold[ch];
        for (int32_t ky = 0; ky < k_h; ky++) {
            for (int32_t kx = 0; kx < k_w; kx++) {
                acc += in[(ky * in_w + kx) * c + ch] * filter[(ky * k_w + kx) * c + ch];
            }
        }
        out[ch] = (int8_t)dsp_requantize(acc, q->multiplier[ch], q->shift[ch], p->output_offset,
                                         p->act_min, p->act_max);
    }
}

/* Window partly in the padding: only in-bounds taps, offset added per value. */
static void border_pixel(const int8_t *input, const int8_t *filter, const int32_t *bias,
                         int32_t c, int32_t in_h, int32_t in_w, int32_t k_h, int32_t k_w,
                         int32_t y0, int32_t x0, const atomsim_conv_params *p,
                         const atomsim_per_channel_quant_params *q, int8_t *out)
{
    const int32_t ky0 = atomsim_max_i32(0, -y0), ky1 = atomsim_min_i32(k_h, in_h - y0);
    const int32_t kx0 = atomsim_max_i32(0, -x0), kx1 = atomsim_min_i32(k_w, in_w - x0);
    for (int32_t ch = 0; ch < c; ch++) {
        int32_t acc = bias ? bias[ch] : 0;
        for (int32_t ky = ky0; ky < ky1; ky++) {
            for (int32_t kx = kx0; kx < kx1; kx++) {
                const int32_t x = input[((y0 + ky) * in_w + x0 + kx) * c + ch];
                acc += (x + p->input_offset) * filter[(ky * k_w + kx) * c + ch];
            }
        }
        out[ch] = (int8_t)dsp_requantize(acc, q->multiplier[ch], q->shift[ch], p->output_offset,
                                         p->act_min, p->act_max);
    }
}

atomsim_status atomsim_depthwise_conv_s8(const atomsim_context *ctx,
                                         const atomsim_conv_params *params,
                                         const atomsim_per_channel_quant_params *quant,
                                         const atomsim_dims *input_dims, const int8_t *input,
                                         const atomsim_dims *filter_dims, const int8_t *filter,
                                         const int32_t *bias, const atomsim_dims *output_dims,
                                         int8_t *output)
{
    if (!atomsim_dims_ok(filter_dims) ||
        !atomsim_conv_args_ok(params, quant, input_dims, filter_dims->h, filter_dims->w,
                              output_dims, input, filter, output) ||
        filter_dims->n != 1 || filter_dims->c != input_dims->c ||
        output_dims->c != input_dims->c ||
        !atomsim_scratch_ok(ctx, atomsim_depthwise_conv_s8_get_buffer_size(
                                     input_dims, filter_dims, output_dims))) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t in_h = input_dims->h, in_w = input_dims->w, c = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_h = output_dims->h, out_w = output_dims->w;
    int32_t *fold = (int32_t *)ctx->buf;

    for (int32_t ch = 0; ch < c; ch++) {
        int32_t sum = 0;
        for (int32_t t = 0; t < k_h * k_w; t++) {
            sum += filter[t * c + ch];
        }
        fold[ch] = (bias ? bias[ch] : 0) + params->input_offset * sum;
    }
    for (int32_t oy = 0; oy < out_h; oy++) {
        const int32_t y0 = oy * params->stride_h - params->pad_h;
        const int rows_inside = y0 >= 0 && y0 + k_h <= in_h;
        for (int32_t ox = 0; ox < out_w; ox++) {
            const int32_t x0 = ox * params->stride_w - params->pad_w;
            int8_t *out = output + (oy * out_w + ox) * c;
            if (rows_inside && x0 >= 0 && x0 + k_w <= in_w) {
                interior_pixel(input + (y0 * in_w + x0) * c, filter, fold, c, in_w, k_h, k_w,
                               params, quant, out);
            } else {
                border_pixel(input, filter, bias, c, in_h, in_w, k_h, k_w, y0, x0, params,
                             quant, out);
            }
        }
    }
    return ATOMSIM_OK;
}
