/* Fully connected, per-tensor or per-channel, portable reference. Contract: atomsim_nn.h. */
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_fully_connected_s8_get_buffer_size(const atomsim_dims *input_dims,
                                                   const atomsim_dims *filter_dims,
                                                   const atomsim_dims *output_dims)
{
    (void)input_dims;
    (void)filter_dims;
    (void)output_dims;
    return 0;
}

atomsim_status atomsim_fully_connected_s8(const atomsim_context *ctx,
                                          const atomsim_fc_params *params,
                                          const atomsim_per_channel_quant_params *quant,
                                          const atomsim_dims *input_dims, const int8_t *input,
                                          const atomsim_dims *filter_dims, const int8_t *filter,
                                          const int32_t *bias, const atomsim_dims *output_dims,
                                          int8_t *output)
{
    (void)ctx;
    if (params == 0 || input == 0 || filter == 0 || output == 0 ||
        !atomsim_dims_ok(input_dims) || !atomsim_dims_ok(filter_dims) ||
        !atomsim_dims_ok(output_dims)) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t batches = input_dims->n;
    const int32_t accum = input_dims->h * input_dims->w * input_dims->c;
    const int32_t c_out = filter_dims->n;
    if (filter_dims->h != 1 || filter_dims->w != 1 || filter_dims->c != accum ||
        output_dims->n != batches || output_dims->h != 1 || output_dims->w != 1 ||
        output_dims->c != c_out ||
        !atomsim_offsets_ok(params->input_offset, params->output_offset, params->act_min,
                            params->act_max) ||
        !atomsim_per_channel_ok(quant, params->per_channel ? c_out : 1)) {
        return ATOMSIM_ARG_ERROR;
    }
    for (int32_t b = 0; b < batches; b++) {
        const int8_t *in_row = input + b * accum;
        for (int32_t oc = 0; oc < c_out; oc++) {
            const int8_t *w = filter + oc * accum;
            int32_t acc = 0;
            for (int32_t i = 0; i < accum; i++) {
                acc += (in_row[i] + params->input_offset) * w[i];
            }
            if (bias) {
                acc += bias[oc];
            }
            const int32_t q = params->per_channel ? oc : 0;
            output[b * c_out + oc] =
                atomsim_requantize(acc, quant->multiplier[q], quant->shift[q],
                                   params->output_offset, params->act_min, params->act_max);
        }
    }
    return ATOMSIM_OK;
}
