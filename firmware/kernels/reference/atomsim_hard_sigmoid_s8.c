/* Hard-sigmoid through a host-built 256-entry table, portable reference.
 * Contract: atomsim_nn.h. */
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_hard_sigmoid_s8_get_buffer_size(const atomsim_dims *dims)
{
    (void)dims;
    return 0;
}

atomsim_status atomsim_hard_sigmoid_s8(const atomsim_context *ctx, const int8_t *lut,
                                       const atomsim_dims *dims, const int8_t *input,
                                       int8_t *output)
{
    (void)ctx;
    if (lut == 0 || input == 0 || output == 0 || !atomsim_dims_ok(dims)) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t count = atomsim_dims_count(dims);
    for (int32_t i = 0; i < count; i++) {
        output[i] = lut[input[i] + 128];
    }
    return ATOMSIM_OK;
}
