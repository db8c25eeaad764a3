/* Hard-swish, TFLite's int8 reference algorithm, portable reference. Contract: atomsim_nn.h. */
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_hard_swish_s8_get_buffer_size(const atomsim_dims *dims)
{
    (void)dims;
    return 0;
}

atomsim_status atomsim_hard_swish_s8(const atomsim_context *ctx,
                                     const atomsim_hard_swish_params *params,
                                     const atomsim_dims *dims, const int8_t *input,
                                     int8_t *output)
{
    (void)ctx;
    if (params == 0 || input == 0 || output == 0 || !atomsim_dims_ok(dims) ||
        !atomsim_hard_swish_params_ok(params)) {
        return ATOMSIM_ARG_ERROR;
    }
    const atomsim_hard_swish_params p = *params; /* a local copy: the loop may hoist it */
    const int32_t count = atomsim_dims_count(dims);
    for (int32_t i = 0; i < count; i++) {
        output[i] = atomsim_hard_swish_one(input[i], &p);
    }
    return ATOMSIM_OK;
}
