/* Pointwise (1x1) convolution, Cortex-M DSP. Contract: atomsim_nn.h.
 * Two input pixels at a time become interleaved q15 columns in the scratch buffer (offset
 * added once per value); dsp_mat_mult_q15_2col then computes 2 channels x 2 pixels per pass. */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_pointwise_conv_s8_get_buffer_size(const atomsim_dims *input_dims,
                                                  const atomsim_dims *filter_dims,
                                                  const atomsim_dims *output_dims)
{
    (void)filter_dims;
    (void)output_dims;
    /* two columns of C_IN int16, each rounded to an even count (4-byte aligned) */
    return 4 * ((input_dims->c + 1) & ~1);
}

atomsim_status atomsim_pointwise_conv_s8(const atomsim_context *ctx,
                                         const atomsim_conv_params *params,
                                         const atomsim_per_channel_quant_params *quant,
                                         const atomsim_dims *input_dims, const int8_t *input,
                                         const atomsim_dims *filter_dims, const int8_t *filter,
                                         const int32_t *bias, const atomsim_dims *output_dims,
                                         int8_t *output)
{
    if (!atomsim_dims_ok(filter_dims) || filter_dims->h != 1 || filter_dims->w != 1 ||
        !atomsim_conv_args_ok(params, quant, input_dims, 1, 1, output_dims, input, filter,
                              output) ||
        filter_dims->c != input_dims->c || filter_dims->n != output_dims->c ||
        !atomsim_scratch_ok(ctx, atomsim_pointwise_conv_s8_get_buffer_size(
                                     input_dims, filter_dims, output_dims))) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t in_w = input_dims->w, c_in = input_dims->c;
    const int32_t out_w = output_dims->w, c_out = output_dims->c;
    const int32_t n_px = output_dims->h * out_w;
    const int32_t step_y = params->stride_h * in_w * c_in, step_x = params->stride_w * c_in;
    int16_t *cols = (int16_t *)ctx->buf;
    const dsp_rq rq = dsp_rq_setup(quant->multiplier, quant->shift, c_out, params->output_offset,
                                   params->act_min, params->act_max);

    for (int32_t p = 0; p < n_px; p += 2) {
        const int8_t *in0 = input + (p / out_w) * step_y + (p % out_w) * step_x;
        if (p + 1 < n_px) {
            const int8_t *in1 = input + ((p + 1) / out_w) * step_y + ((p + 1) % out_w) * step_x;
            dsp_q7_to_q15_pair(in0, in1, cols, c_in, params->input_offset);
            dsp_mat_mult_q15_2col(filter, c_in, c_out, bias, &rq, cols, output + p * c_out,
                                  output + (p + 1) * c_out);
        } else {
            dsp_q7_to_q15_reordered(in0, cols, c_in, params->input_offset);
            dsp_mat_mult_q15_1col(filter, c_in, c_out, bias, &rq, 1, cols, output + p * c_out);
        }
    }
    return ATOMSIM_OK;
}
