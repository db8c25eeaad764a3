/* Hard-swish, TFLite's int8 reference algorithm, Cortex-M DSP version. Bit-identical to
 * reference/atomsim_hard_swish_s8.c. Contract: atomsim_nn.h.
 * The output depends on the int8 input alone: from DSP_LUT_MIN_COUNT elements on, the exact
 * algorithm fills a 256-byte table on the stack once and dsp_lut_s8 looks every element up,
 * four per word; smaller tensors are computed element by element. */
#include "atomsim_dsp.h"
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
    const atomsim_hard_swish_params p = *params;
    const int32_t count = atomsim_dims_count(dims);
    if (count < DSP_LUT_MIN_COUNT) {
        for (int32_t i = 0; i < count; i++) {
            output[i] = atomsim_hard_swish_one(input[i], &p);
        }
        return ATOMSIM_OK;
    }
    int8_t table[256] __attribute__((aligned(4)));
    for (int32_t x = -128; x < 128; x++) {
        table[x + 128] = atomsim_hard_swish_one(x, &p);
    }
    dsp_lut_s8(table, input, output, count);
    return ATOMSIM_OK;
}
