/*
 * atomsim_call.h - one kernel call as data, and the calls themselves: the fields a profiling
 * job (firmware/harness/harness_jobs.h) and a network layer (firmware/network/atomsim_network.h)
 * both carry, and one call macro per argument pattern of ATOMSIM_KERNELS (atomsim_nn.h), taking
 * a pointer to either. Not part of the kernels' contract; the two dispatchers include it.
 */
#ifndef ATOMSIM_CALL_H
#define ATOMSIM_CALL_H

#include <stdint.h>

#include "atomsim_nn.h"

/* The kernel-call fields, in this order, inside the job and the layer struct. */
#define ATOMSIM_CALL_FIELDS                                                                     \
    atomsim_dims in_dims, in2_dims, filter_dims, out_dims;                                     \
    int32_t params[16]; /* the op's parameter struct, int32 fields in declaration order */     \
    const int8_t *input;                                                                       \
    const int8_t *input2;                                                                      \
    const int8_t *filter; /* or the hard-sigmoid LUT */                                        \
    const int32_t *bias;                                                                       \
    const int32_t *multiplier;                                                                 \
    const int32_t *shift;                                                                      \
    int8_t *output;                                                                            \
    void *scratch;                                                                             \
    int32_t scratch_size;

/* The locals every call below uses, from the job or layer ``a``. */
#define ATOMSIM_CALL_LOCALS(a)                                                                 \
    const atomsim_context ctx = {(a)->scratch, (a)->scratch_size};                             \
    const atomsim_per_channel_quant_params q = {(a)->multiplier, (a)->shift};                  \
    const void *p = (a)->params

/* One call per argument pattern of ATOMSIM_KERNELS: the fields of ``a`` each kernel takes. */
#define ATOMSIM_CALL_PAD(name, a)                                                              \
    atomsim_##name##_s8(&ctx, p, &(a)->in_dims, (a)->input, &(a)->out_dims, (a)->output)
#define ATOMSIM_CALL_CONV(name, a)                                                             \
    atomsim_##name##_s8(&ctx, p, &q, &(a)->in_dims, (a)->input, &(a)->filter_dims,            \
                        (a)->filter, (a)->bias, &(a)->out_dims, (a)->output)
#define ATOMSIM_CALL_BINARY(name, a)                                                           \
    atomsim_##name##_s8(&ctx, p, &(a)->in_dims, (a)->input, (a)->input2, (a)->output)
#define ATOMSIM_CALL_BROADCAST(name, a)                                                        \
    atomsim_##name##_s8(&ctx, p, &(a)->in_dims, (a)->input, &(a)->in2_dims, (a)->input2,      \
                        (a)->output)
#define ATOMSIM_CALL_POOL(name, a)                                                             \
    atomsim_##name##_s8(&ctx, p, &(a)->in_dims, (a)->input, &(a)->filter_dims,                \
                        &(a)->out_dims, (a)->output)
#define ATOMSIM_CALL_RANGE(name, a)                                                            \
    atomsim_##name##_s8(&ctx, (a)->params[0], (a)->params[1], &(a)->in_dims, (a)->input,      \
                        (a)->output)
#define ATOMSIM_CALL_UNARY(name, a)                                                            \
    atomsim_##name##_s8(&ctx, p, &(a)->in_dims, (a)->input, (a)->output)
#define ATOMSIM_CALL_TABLE(name, a)                                                            \
    atomsim_##name##_s8(&ctx, (a)->filter, &(a)->in_dims, (a)->input, (a)->output)

#endif
