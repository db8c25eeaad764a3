/*
 * atomsim_network.h - a whole network as constant data: the layer table the network firmware
 * walks (network.c) and the generated model file fills (atomsim/profiling/network.py).
 *
 * Every layer is one kernel call of atomsim_nn.h, with the fields (atomsim_call.h) the
 * profiling harness's job descriptor also carries (firmware/harness/harness_jobs.h): dims,
 * the op's parameter struct as int32 fields in declaration order, and pointers to constants
 * in flash (weights, bias, per-channel multipliers and shifts, the hard-sigmoid table) and to
 * activations in the arena. The arena
 * is planned on the host (atomsim/nn/planner.py) over the board's SRAM banks: in the first bank
 * it is one array in .noinit (atomsim_arena), in the others (e.g. SRAM1-3 of the STM32H743,
 * where nothing is linked) the generated table points from the bank's base address. The host
 * places the input before reset, reads the output back after the run and checks the guard
 * after the planned part of every bank. The generated model file
 * initialises the table by field name, so its layout is the compiler's, never mirrored.
 */
#ifndef ATOMSIM_NETWORK_H
#define ATOMSIM_NETWORK_H

#include <stdint.h>

#include "atomsim_call.h"
#include "atomsim_nn.h"

/* ATOMSIM_OP_<NAME> = 1, 2, ... in the order of ATOMSIM_KERNELS, then the network-only ops. */
enum atomsim_op {
    ATOMSIM_OP_NONE = 0,
#define ATOMSIM_OP_ID(NAME, name, ARGS) ATOMSIM_OP_##NAME,
    ATOMSIM_KERNELS(ATOMSIM_OP_ID)
#undef ATOMSIM_OP_ID
    ATOMSIM_OP_SOFTMAX,  /* TFLite int8 softmax (network_ops.c): params = multiplier,
                            left shift, diff_min; depth = in_dims.c */
    ATOMSIM_OP_LOGISTIC, /* TFLite int8 logistic (network_ops.c): params = input zero point,
                            range radius, multiplier, shift (Q4.27); elementwise over in_dims */
};

typedef struct {
    uint32_t op; /* enum atomsim_op */
    ATOMSIM_CALL_FIELDS
} atomsim_layer_t;

extern const atomsim_layer_t atomsim_layers[];
extern const uint32_t atomsim_nlayers;

/* TFLite's int8 softmax over the last axis (reference_ops::Softmax, gemmlowp fixed point). */
atomsim_status atomsim_net_softmax_s8(const int32_t *params, const atomsim_dims *dims,
                                      const int8_t *input, int8_t *output);

/* TFLite's int8 logistic, elementwise (reference_integer_ops::Logistic, gemmlowp fixed point). */
atomsim_status atomsim_net_logistic_s8(const int32_t *params, const atomsim_dims *dims,
                                       const int8_t *input, int8_t *output);

#endif /* ATOMSIM_NETWORK_H */
