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

/* The reference kernel's per-element arithmetic, unchanged. */
static inline int8_t hard_swish_one(int32_t in, const atomsim_hard_swish_params *p)
{
    const int16_t relu_mult = (int16_t)p->reluish_multiplier_fixedpoint_int16;
    const int16_t out_mult = (int16_t)p->output_multiplier_fixedpoint_int16;
    const int32_t relu_exp = p->reluish_multiplier_exponent;
    const int16_t x = (int16_t)(in - p->input_zero_point); /* [-255, 255] */
    const int16_t x_hires = (int16_t)(x * (1 << 7));      /* input scale / 128 */
    const int16_t x_preshift = atomsim_srdhm16(x_hires, out_mult);
    int16_t reluish = x_hires;
    if (relu_exp > 0) {
        reluish = atomsim_sat_left_shift16(reluish, relu_exp - 1);
    }
    reluish = atomsim_srdhm16(reluish, relu_mult);
    if (relu_exp > 0) {
        reluish = atomsim_sat_left_shift16(reluish, 1);
    }
    if (relu_exp < 0) {
        reluish = atomsim_rdbpot16(reluish, -relu_exp);
    }
    reluish = (int16_t)(((int32_t)reluish + (1 << 15)) >> 1);
    const int16_t y_preshift = atomsim_sdhm16(reluish, x_preshift);
    int32_t y = atomsim_rdbpot16(y_preshift, -p->output_multiplier_exponent);
    y += p->output_zero_point;
    return (int8_t)atomsim_clamp_i32(y, ATOMSIM_INT8_MIN, ATOMSIM_INT8_MAX);
}

atomsim_status atomsim_hard_swish_s8(const atomsim_context *ctx,
                                     const atomsim_hard_swish_params *params,
                                     const atomsim_dims *dims, const int8_t *input,
                                     int8_t *output)
{
    (void)ctx;
    if (params == 0 || input == 0 || output == 0 || !atomsim_dims_ok(dims) ||
        !atomsim_offsets_ok(0, params->output_zero_point, -128, 127) ||
        params->input_zero_point < -128 || params->input_zero_point > 127 ||
        params->reluish_multiplier_fixedpoint_int16 < 0 ||
        params->reluish_multiplier_fixedpoint_int16 > INT16_MAX ||
        params->output_multiplier_fixedpoint_int16 < 0 ||
        params->output_multiplier_fixedpoint_int16 > INT16_MAX ||
        params->reluish_multiplier_exponent < -15 || params->reluish_multiplier_exponent > 15 ||
        params->output_multiplier_exponent < -15 || params->output_multiplier_exponent > 0) {
        return ATOMSIM_ARG_ERROR;
    }
    const atomsim_hard_swish_params p = *params;
    const int32_t count = atomsim_dims_count(dims);
    if (count < DSP_LUT_MIN_COUNT) {
        for (int32_t i = 0; i < count; i++) {
            output[i] = hard_swish_one(input[i], &p);
        }
        return ATOMSIM_OK;
    }
    int8_t table[256] __attribute__((aligned(4)));
    for (int32_t x = -128; x < 128; x++) {
        table[x + 128] = hard_swish_one(x, &p);
    }
    dsp_lut_s8(table, input, output, count);
    return ATOMSIM_OK;
}
