/* Constant spatial padding, portable reference. Contract: atomsim_nn.h. */
#include <string.h>

#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_pad_s8_get_buffer_size(const atomsim_dims *input_dims,
                                       const atomsim_dims *output_dims)
{
    (void)input_dims;
    (void)output_dims;
    return 0;
}

atomsim_status atomsim_pad_s8(const atomsim_context *ctx, const atomsim_pad_params *params,
                              const atomsim_dims *input_dims, const int8_t *input,
                              const atomsim_dims *output_dims, int8_t *output)
{
    (void)ctx;
    if (params == 0 || input == 0 || output == 0 || !atomsim_dims_ok(input_dims) ||
        !atomsim_dims_ok(output_dims) || input_dims->n != 1 || output_dims->n != 1 ||
        params->pad_top < 0 || params->pad_bottom < 0 || params->pad_left < 0 ||
        params->pad_right < 0 || params->pad_value < ATOMSIM_INT8_MIN ||
        params->pad_value > ATOMSIM_INT8_MAX ||
        output_dims->h != input_dims->h + params->pad_top + params->pad_bottom ||
        output_dims->w != input_dims->w + params->pad_left + params->pad_right ||
        output_dims->c != input_dims->c) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t c = input_dims->c;
    const int32_t in_row = input_dims->w * c;
    const int32_t out_row = output_dims->w * c;
    const int8_t value = (int8_t)params->pad_value;

    for (int32_t y = 0; y < output_dims->h; y++) {
        int8_t *dst = output + y * out_row;
        const int32_t iy = y - params->pad_top;
        if (iy < 0 || iy >= input_dims->h) {
            memset(dst, value, (size_t)out_row);
            continue;
        }
        memset(dst, value, (size_t)(params->pad_left * c));
        memcpy(dst + params->pad_left * c, input + iy * in_row, (size_t)in_row);
        memset(dst + params->pad_left * c + in_row, value, (size_t)(params->pad_right * c));
    }
    return ATOMSIM_OK;
}
