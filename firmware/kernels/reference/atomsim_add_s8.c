/* Elementwise add (TFLite int8 Add arithmetic), portable reference. Contract: atomsim_nn.h. */
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_add_s8_get_buffer_size(const atomsim_dims *dims)
{
    (void)dims;
    return 0;
}

atomsim_status atomsim_add_s8(const atomsim_context *ctx, const atomsim_add_params *params,
                              const atomsim_dims *dims, const int8_t *input1,
                              const int8_t *input2, int8_t *output)
{
    (void)ctx;
    if (params == 0 || input1 == 0 || input2 == 0 || output == 0 || !atomsim_dims_ok(dims) ||
        !atomsim_add_params_ok(params)) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t count = atomsim_dims_count(dims);
    for (int32_t i = 0; i < count; i++) {
        const int32_t a = (input1[i] + params->input1_offset) * (1 << params->left_shift);
        const int32_t b = (input2[i] + params->input2_offset) * (1 << params->left_shift);
        const int32_t sum = atomsim_mbqm(a, params->input1_multiplier, params->input1_shift) +
                            atomsim_mbqm(b, params->input2_multiplier, params->input2_shift);
        output[i] = atomsim_requantize(sum, params->output_multiplier, params->output_shift,
                                       params->output_offset, params->act_min, params->act_max);
    }
    return ATOMSIM_OK;
}
