/* Standalone ReLU / ReLU6 (TFLite ReluQuantized arithmetic), portable reference.
 * Contract: atomsim_nn.h. */
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_relu_s8_get_buffer_size(const atomsim_dims *dims)
{
    (void)dims;
    return 0;
}

atomsim_status atomsim_relu_s8(const atomsim_context *ctx, const atomsim_relu_params *params,
                               const atomsim_dims *dims, const int8_t *input, int8_t *output)
{
    (void)ctx;
    if (params == 0 || input == 0 || output == 0 || !atomsim_dims_ok(dims) ||
        !atomsim_offsets_ok(params->input_offset, params->output_offset, params->act_min,
                            params->act_max) ||
        !atomsim_quant_ok(params->multiplier, params->shift)) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t count = atomsim_dims_count(dims);
    for (int32_t i = 0; i < count; i++) {
        output[i] = atomsim_requantize(input[i] + params->input_offset, params->multiplier,
                                       params->shift, params->output_offset, params->act_min,
                                       params->act_max);
    }
    return ATOMSIM_OK;
}
