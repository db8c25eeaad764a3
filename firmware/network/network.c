/*
 * Network firmware: runs every layer of the generated layer table (atomsim_network.h) in
 * order, each between a pair of profiling markers (per-layer cycles on the host), and exits
 * with 0, or fails naming nothing but the fact when a kernel refuses its arguments. The host
 * placed the input in the arena before reset and reads the output after the run.
 *
 * The build defines ATOMSIM_USES_<NAME> to 1 for the kernels the network calls and 0 for the
 * others (the atom kernels, SOFTMAX and LOGISTIC of network_ops.c), so only the kernels it uses
 * are linked (their code is the image's "code" Flash).
 */
#include <stddef.h>
#include <stdint.h>

#include "atomsim_network.h"
#include "atomsim_rt.h"

static atomsim_status run_layer(const atomsim_layer_t *l) {
    ATOMSIM_CALL_LOCALS(l);
    switch (l->op) {
#define ATOMSIM_OP_CASE(NAME, name, ARGS)                                                      \
    case ATOMSIM_OP_##NAME:                                                                    \
        return ATOMSIM_USES_##NAME ? ATOMSIM_CALL_##ARGS(name, l) : ATOMSIM_ARG_ERROR;
        ATOMSIM_KERNELS(ATOMSIM_OP_CASE)
#undef ATOMSIM_OP_CASE
    case ATOMSIM_OP_SOFTMAX:
        return ATOMSIM_USES_SOFTMAX
                   ? atomsim_net_softmax_s8(l->params, &l->in_dims, l->input, l->output)
                   : ATOMSIM_ARG_ERROR;
    case ATOMSIM_OP_LOGISTIC:
        return ATOMSIM_USES_LOGISTIC
                   ? atomsim_net_logistic_s8(l->params, &l->in_dims, l->input, l->output)
                   : ATOMSIM_ARG_ERROR;
    default:
        return ATOMSIM_ARG_ERROR;
    }
}

int main(void) {
    for (uint32_t i = 0; i < atomsim_nlayers; i++) {
        atomsim_marker_begin();
        atomsim_status status = run_layer(&atomsim_layers[i]);
        atomsim_marker_end();
        if (status != ATOMSIM_OK)
            atomsim_fail("a layer's kernel returned ATOMSIM_ARG_ERROR");
    }
    return 0;
}
