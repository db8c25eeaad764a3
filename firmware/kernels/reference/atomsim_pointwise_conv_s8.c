/* Pointwise (1x1) convolution, portable reference. Contract: atomsim_nn.h. */
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_pointwise_conv_s8_get_buffer_size(const atomsim_dims *input_dims,
                                                  const atomsim_dims *filter_dims,
                                                  const atomsim_dims *output_dims)
{
    (void)input_dims;
    (void)filter_dims;
    (void)output_dims;
    return 0;
}

atomsim_status atomsim_pointwise_conv_s8(const atomsim_context *ctx,
                                         const atomsim_conv_params *params,
                                         const atomsim_per_channel_quant_params *quant,
                                         const atomsim_dims *input_dims, const int8_t *input,
                                         const atomsim_dims *filter_dims, const int8_t *filter,
                                         const int32_t *bias, const atomsim_dims *output_dims,
                                         int8_t *output)
{
    (void)ctx;
    if (!atomsim_dims_ok(filter_dims) || filter_dims->h != 1 || filter_dims->w != 1 ||
        !atomsim_conv_args_ok(params, quant, input_dims, 1, 1, output_dims, input, filter,
                              output) ||
        filter_dims->c != input_dims->c || filter_dims->n != output_dims->c) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t in_w = input_dims->w, c_in = input_dims->c;
    const int32_t out_h = output_dims->h, out_w = output_dims->w, c_out = output_dims->c;

    for (int32_t oy = 0; oy < out_h; oy++) {
        for (int32_t ox = 0; ox < out_w; ox++) {
            const int8_t *in_px =
                input + ((oy * params->stride_h) * in_w + ox * params->stride_w) * c_in;
            int8_t *out_px = output + (oy * out_w + ox) * c_out;
            for (int32_t oc = 0; oc < c_out; oc++) {
                const int8_t *w = filter + oc * c_in;
                int32_t acc = 0;
                for (int32_t ic = 0; ic < c_in; ic++) {
                    acc += (in_px[ic] + params->input_offset) * w[ic];
                }
                if (bias) {
                    acc += bias[oc];
                }
                out_px[oc] =
                    atomsim_requantize(acc, quant->multiplier[oc], quant->shift[oc],
                                       params->output_offset, params->act_min, params->act_max);
            }
        }
    }
    return ATOMSIM_OK;
}
