/* Elementwise or per-channel broadcast multiply (TFLite int8 Mul arithmetic), portable
 * reference. Contract: atomsim_nn.h. */
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_mul_s8_get_buffer_size(const atomsim_dims *input1_dims,
                                       const atomsim_dims *input2_dims)
{
    (void)input1_dims;
    (void)input2_dims;
    return 0;
}

atomsim_status atomsim_mul_s8(const atomsim_context *ctx, const atomsim_mul_params *params,
                              const atomsim_dims *input1_dims, const int8_t *input1,
                              const atomsim_dims *input2_dims, const int8_t *input2,
                              int8_t *output)
{
    (void)ctx;
    const int kind = atomsim_mul_args(params, input1_dims, input1, input2_dims, input2, output);
    if (!kind) {
        return ATOMSIM_ARG_ERROR;
    }
    const int same = kind == ATOMSIM_MUL_ELEMENTWISE;
    const int32_t count = atomsim_dims_count(input1_dims);
    const int32_t c = input1_dims->c;
    for (int32_t i = 0; i < count; i++) {
        const int32_t a = input1[i] + params->input1_offset;
        const int32_t b = input2[same ? i : i % c] + params->input2_offset;
        output[i] = atomsim_requantize(a * b, params->output_multiplier, params->output_shift,
                                       params->output_offset, params->act_min, params->act_max);
    }
    return ATOMSIM_OK;
}
