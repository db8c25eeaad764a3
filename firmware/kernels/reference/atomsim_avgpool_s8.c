/* Average pooling (TFLite reference rounding), portable reference. Contract: atomsim_nn.h. */
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_avgpool_s8_get_buffer_size(const atomsim_dims *output_dims)
{
    (void)output_dims;
    return 0;
}

atomsim_status atomsim_avgpool_s8(const atomsim_context *ctx, const atomsim_pool_params *params,
                                  const atomsim_dims *input_dims, const int8_t *input,
                                  const atomsim_dims *filter_dims,
                                  const atomsim_dims *output_dims, int8_t *output)
{
    (void)ctx;
    if (!atomsim_pool_args_ok(params, input_dims, filter_dims, output_dims, input, output)) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t in_h = input_dims->h, in_w = input_dims->w, c = input_dims->c;
    for (int32_t oy = 0; oy < output_dims->h; oy++) {
        const int32_t y0 = oy * params->stride_h - params->pad_h;
        const int32_t ky0 = atomsim_max_i32(0, -y0);
        const int32_t ky1 = atomsim_min_i32(filter_dims->h, in_h - y0);
        for (int32_t ox = 0; ox < output_dims->w; ox++) {
            const int32_t x0 = ox * params->stride_w - params->pad_w;
            const int32_t kx0 = atomsim_max_i32(0, -x0);
            const int32_t kx1 = atomsim_min_i32(filter_dims->w, in_w - x0);
            const int32_t count = (ky1 - ky0) * (kx1 - kx0);
            for (int32_t ch = 0; ch < c; ch++) {
                int32_t sum = 0;
                for (int32_t ky = ky0; ky < ky1; ky++) {
                    for (int32_t kx = kx0; kx < kx1; kx++) {
                        sum += input[((y0 + ky) * in_w + x0 + kx) * c + ch];
                    }
                }
                /* round half away from zero, as TFLite's reference AveragePool */
                const int32_t avg =
                    sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                output[(oy * output_dims->w + ox) * c + ch] =
                    (int8_t)atomsim_clamp_i32(avg, params->act_min, params->act_max);
            }
        }
    }
    return ATOMSIM_OK;
}
