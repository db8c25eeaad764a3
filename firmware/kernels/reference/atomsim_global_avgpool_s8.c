/* Global average pooling = average pooling with a full H x W window, portable reference.
 * Contract: atomsim_nn.h. */
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_global_avgpool_s8_get_buffer_size(const atomsim_dims *input_dims)
{
    (void)input_dims;
    return 0;
}

atomsim_status atomsim_global_avgpool_s8(const atomsim_context *ctx, int32_t act_min,
                                         int32_t act_max, const atomsim_dims *input_dims,
                                         const int8_t *input, int8_t *output)
{
    (void)ctx;
    if (input == 0 || output == 0 || !atomsim_dims_ok(input_dims) || input_dims->n != 1 ||
        input_dims->h * input_dims->w > (1 << 16) || !atomsim_offsets_ok(0, 0, act_min, act_max)) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t count = input_dims->h * input_dims->w, c = input_dims->c;
    for (int32_t ch = 0; ch < c; ch++) {
        int32_t sum = 0;
        for (int32_t i = 0; i < count; i++) {
            sum += input[i * c + ch];
        }
        const int32_t avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
        output[ch] = (int8_t)atomsim_clamp_i32(avg, act_min, act_max);
    }
    return ATOMSIM_OK;
}
