/*
 * The harness's job descriptor, op ids and dispatcher: the one definition, shared by the memory
 * path (harness.c) and the serial path (serial_link.c). The host reads the layout, the op ids
 * and the job limit from the firmware's DWARF (atomsim/target/contract.py) and packs fields by
 * name; nothing here is mirrored in Python.
 */
#ifndef ATOMSIM_HARNESS_JOBS_H
#define ATOMSIM_HARNESS_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "atomsim_nn.h"

enum atomsim_harness {
    ATOMSIM_HARNESS_MAGIC = 0x41544F4D, /* "ATOM" */
};

/* ATOMSIM_OP_<NAME> = 1, 2, ... in the order of ATOMSIM_KERNELS (atomsim_nn.h). */
enum atomsim_op {
    ATOMSIM_OP_NONE = 0,
#define ATOMSIM_OP_ID(NAME, name, ARGS) ATOMSIM_OP_##NAME,
    ATOMSIM_KERNELS(ATOMSIM_OP_ID)
#undef ATOMSIM_OP_ID
};

typedef struct {
    uint32_t magic;
    uint32_t size; /* sizeof(atomsim_job_t) as the host computed it */
    uint32_t op;   /* enum atomsim_op */
    int32_t status;
    atomsim_dims in_dims, in2_dims, filter_dims, out_dims;
    int32_t params[16]; /* the op's parameter struct, int32 fields in declaration order */
    const int8_t *input;
    const int8_t *input2;
    const int8_t *filter; /* or the hard-sigmoid LUT */
    const int32_t *bias;
    const int32_t *multiplier;
    const int32_t *shift;
    int8_t *output;
    void *scratch;
    int32_t scratch_size;
} atomsim_job_t;

#define MAX_JOBS 16

/* Defined in harness.c (not zeroed by the startup code: the host writes them before reset). */
extern volatile atomsim_job_t atomsim_jobs[MAX_JOBS];
extern volatile uint32_t atomsim_njobs;

/* One call per argument pattern of ATOMSIM_KERNELS: the job fields each kernel takes. */
#define ATOMSIM_CALL_PAD(name)                                                                 \
    atomsim_##name##_s8(&ctx, p, &j->in_dims, j->input, &j->out_dims, j->output)
#define ATOMSIM_CALL_CONV(name)                                                                \
    atomsim_##name##_s8(&ctx, p, &q, &j->in_dims, j->input, &j->filter_dims, j->filter,       \
                        j->bias, &j->out_dims, j->output)
#define ATOMSIM_CALL_BINARY(name)                                                              \
    atomsim_##name##_s8(&ctx, p, &j->in_dims, j->input, j->input2, j->output)
#define ATOMSIM_CALL_BROADCAST(name)                                                           \
    atomsim_##name##_s8(&ctx, p, &j->in_dims, j->input, &j->in2_dims, j->input2, j->output)
#define ATOMSIM_CALL_POOL(name)                                                                \
    atomsim_##name##_s8(&ctx, p, &j->in_dims, j->input, &j->filter_dims, &j->out_dims,       \
                        j->output)
#define ATOMSIM_CALL_RANGE(name)                                                               \
    atomsim_##name##_s8(&ctx, j->params[0], j->params[1], &j->in_dims, j->input, j->output)
#define ATOMSIM_CALL_UNARY(name) atomsim_##name##_s8(&ctx, p, &j->in_dims, j->input, j->output)
#define ATOMSIM_CALL_TABLE(name)                                                               \
    atomsim_##name##_s8(&ctx, j->filter, &j->in_dims, j->input, j->output)

static inline atomsim_status atomsim_harness_dispatch(const atomsim_job_t *j) {
    const atomsim_context ctx = {j->scratch, j->scratch_size};
    const atomsim_per_channel_quant_params q = {j->multiplier, j->shift};
    const void *p = j->params;
    switch (j->op) {
#define ATOMSIM_OP_CASE(NAME, name, ARGS)                                                      \
    case ATOMSIM_OP_##NAME:                                                                    \
        return ATOMSIM_CALL_##ARGS(name);
        ATOMSIM_KERNELS(ATOMSIM_OP_CASE)
#undef ATOMSIM_OP_CASE
    default:
        return ATOMSIM_ARG_ERROR;
    }
}

#endif
