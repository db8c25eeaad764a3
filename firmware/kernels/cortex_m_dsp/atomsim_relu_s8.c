/* Standalone ReLU / ReLU6 (TFLite ReluQuantized arithmetic), Cortex-M DSP version.
 * Bit-identical to reference/atomsim_relu_s8.c. Contract: atomsim_nn.h.
 * The output depends on the int8 input alone: from DSP_LUT_MIN_COUNT elements on, the exact
 * requantization fills a 256-byte table on the stack once and dsp_lut_s8 looks every element
 * up, four per word; smaller tensors are requantized element by element. */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_relu_s8_get_buffer_size(const atomsim_dims *dims)
{
    (void)dims;
    return 0;
}

static inline int8_t relu_one(int32_t x, const atomsim_relu_params *p)
{
    return atomsim_requantize(x + p->input_offset, p->multiplier, p->shift, p->output_offset,
                              p->act_min, p->act_max);
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
    const atomsim_relu_params p = *params;
    const int32_t count = atomsim_dims_count(dims);
    if (count < DSP_LUT_MIN_COUNT) {
        for (int32_t i = 0; i < count; i++) {
            output[i] = relu_one(input[i], &p);
        }
        return ATOMSIM_OK;
    }
    int8_t table[256] __attribute__((aligned(4)));
    for (int32_t x = -128; x < 128; x++) {
        table[x + 128] = relu_one(x, &p);
    }
    dsp_lut_s8(table, input, output, count);
    return ATOMSIM_OK;
}
