/* Fully connected, Cortex-M DSP. Contract: atomsim_nn.h.
 * Each input row becomes one q15 reordered column; dsp_mat_mult_q15_1col runs 2 outputs
 * at a time (per 4 inputs: 2 LDR + 4 SXTB16 weights, 2 LDR column, 4 SMLAD for 8 MACs). */
#include "atomsim_dsp.h"
#include "atomsim_nn.h"
#include "atomsim_nn_support.h"

int32_t atomsim_fully_connected_s8_get_buffer_size(const atomsim_dims *input_dims,
                                                   const atomsim_dims *filter_dims,
                                                   const atomsim_dims *output_dims)
{
    (void)filter_dims;
    (void)output_dims;
    return (2 * input_dims->h * input_dims->w * input_dims->c + 3) & ~3;
}

atomsim_status atomsim_fully_connected_s8(const atomsim_context *ctx,
                                          const atomsim_fc_params *params,
                                          const atomsim_per_channel_quant_params *quant,
                                          const atomsim_dims *input_dims, const int8_t *input,
                                          const atomsim_dims *filter_dims, const int8_t *filter,
                                          const int32_t *bias, const atomsim_dims *output_dims,
                                          int8_t *output)
{
    if (params == 0 || input == 0 || filter == 0 || output == 0 ||
        !atomsim_dims_ok(input_dims) || !atomsim_dims_ok(filter_dims) ||
        !atomsim_dims_ok(output_dims)) {
        return ATOMSIM_ARG_ERROR;
    }
    const int32_t batches = input_dims->n;
    const int32_t accum = input_dims->h * input_dims->w * input_dims->c;
    const int32_t c_out = filter_dims->n;
    if (filter_dims->h != 1 || filter_dims->w != 1 || filter_dims->c != accum ||
        output_dims->n != batches || output_dims->h != 1 || output_dims->w != 1 ||
        output_dims->c != c_out ||
        !atomsim_offsets_ok(params->input_offset, params->output_offset, params->act_min,
                            params->act_max) ||
        !atomsim_per_channel_ok(quant, params->per_channel ? c_out : 1) ||
        !atomsim_scratch_ok(ctx, atomsim_fully_connected_s8_get_buffer_size(
                                     input_dims, filter_dims, output_dims))) {
        return ATOMSIM_ARG_ERROR;
    }
    int16_t *col = (int16_t *)ctx->buf;
    const int32_t q_stride = params->per_channel ? 1 : 0;
    const dsp_rq rq = dsp_rq_setup(quant->multiplier, quant->shift, q_stride ? c_out : 1,
                                   params->output_offset, params->act_min, params->act_max);
    for (int32_t b = 0; b < batches; b++) {
        dsp_q7_to_q15_reordered(input + b * accum, col, accum, params->input_offset);
        dsp_mat_mult_q15_1col(filter, accum, c_out, bias, &rq, q_stride, col,
                              output + b * c_out);
    }
    return ATOMSIM_OK;
}
