/* Hard-sigmoid through a host-built 256-entry table, Cortex-M DSP version: the lookup runs
 * four elements per word (dsp_lut_s8). Bit-identical to reference/atomsim_hard_sigmoid_s8.c.
 * Contract: atomsim_nn.h. */
#include "atomsim_dsp.h"
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
    dsp_lut_s8(lut, input, output, atomsim_dims_count(dims));
    return ATOMSIM_OK;
}
