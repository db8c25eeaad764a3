/* Normal convolution (groups = 1), Cortex-M DSP. Contract: atomsim_nn.h.
 * im2col: two output pixels' receptive fields are gathered as int8 (padding = the input zero
 * point), converted to interleaved q15 columns, then multiplied by dsp_mat_mult_q15_2col. */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_conv_s8_get_buffer_size(const atomsim_dims *input_dims,
                                        const atomsim_dims *filter_dims,
                                        const atomsim_dims *output_dims)
{
    (void)input_dims;
    (void)output_dims;
    const int32_t k = filter_dims->h * filter_dims->w * filter_dims->c;
    /* int8 gather of 2 columns (4-byte rounded) + 2 q15 columns of even length */
    return ((2 * k + 3) & ~3) + 4 * ((k + 1) & ~1);
}

/* Receptive field of output pixel (oy, ox) as int8, padded positions = pad_value. */
static void gather(const int8_t *input, int32_t in_h, int32_t in_w, int32_t c_in, int32_t k_h,
                   int32_t k_w, int32_t y0, int32_t x0, int8_t pad_value, int8_t *dst)
{
    const int32_t row = k_w * c_in;
    for (int32_t ky = 0; ky < k_h; ky++, dst += row) {
        const int32_t y = y0 + ky;
        if (y < 0 || y >= in_h) {
            memset(dst, pad_value, (size_t)row);
            continue;
        }
        const int32_t kx0 = atomsim_max_i32(0, -x0);
        const int32_t kx1 = atomsim_min_i32(k_w, in_w - x0);
        memset(dst, pad_value, (size_t)(kx0 * c_in));
        memcpy(dst + kx0 * c_in, input + (y * in_w + x0 + kx0) * c_in,
               (size_t)((kx1 - kx0) * c_in));
        memset(dst + kx1 * c_in, pad_value, (size_t)((k_w - kx1) * c_in));
    }
}

atomsim_status atomsim_conv_s8(const atomsim_context *ctx, const atomsim_conv_params *params,
                               const atomsim_per_channel_quant_params *quant,
                               const atomsim_dims *input_dims, const int8_t *input,
                               const atomsim_dims *filter_dims, const int8_t *filter,
                               const int32_t *bias, const atomsim_dims *output_dims,
                               int8_t *output)
{
    if (!atomsim_dims_ok(filter_dims) ||
        !atomsim_conv_args_ok(params, quant, input_dims, filter_dims->h, filter_dims->w,
                              output_dims, input, filter, output) ||
        filter_dims->c != input_dims->c || filter_dims->n != output_dims->c ||
        !atomsim_scratch_ok(ctx, atomsim_conv_s8_get_buffer_size(input_dims, filter_dims,
                                                                 output_dims))) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t in_h = input_dims->h, in_w = input_dims->w, c_in = input_dims->c;
    const int32_t k_h = filter_dims->h, k_w = filter_dims->w;
    const int32_t out_w = output_dims->w, c_out = output_dims->c;
    const int32_t n_px = output_dims->h * out_w;
    const int32_t k = k_h * k_w * c_in;
    const int8_t pad_value = (int8_t)(-params->input_offset);
    int8_t *gathered = (int8_t *)ctx->buf;
    int16_t *cols = (int16_t *)((int8_t *)ctx->buf + ((2 * k + 3) & ~3));
    const dsp_rq rq = dsp_rq_setup(quant->multiplier, quant->shift, c_out, params->output_offset,
                                   params->act_min, params->act_max);

    for (int32_t p = 0; p < n_px; p += 2) {
        const int32_t count = p + 1 < n_px ? 2 : 1;
        for (int32_t j = 0; j < count; j++) {
            const int32_t oy = (p + j) / out_w, ox = (p + j) % out_w;
            gather(input, in_h, in_w, c_in, k_h, k_w, oy * params->stride_h - params->pad_h,
                   ox * params->stride_w - params->pad_w, pad_value, gathered + j * k);
        }
        if (count == 2) {
            dsp_q7_to_q15_pair(gathered, gathered + k, cols, k, params->input_offset);
            dsp_mat_mult_q15_2col(filter, k, c_out, bias, &rq, cols, output + p * c_out,
                                  output + (p + 1) * c_out);
        } else {
            dsp_q7_to_q15_reordered(gathered, cols, k, params->input_offset);
            dsp_mat_mult_q15_1col(filter, k, c_out, bias, &rq, 1, cols, output + p * c_out);
        }
    }
    return ATOMSIM_OK;
}
