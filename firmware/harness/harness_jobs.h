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

#include "atomsim_call.h"
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
    ATOMSIM_CALL_FIELDS
} atomsim_job_t;

#define MAX_JOBS 16

/* Defined in harness.c (not zeroed by the startup code: the host writes them before reset). */
extern volatile atomsim_job_t atomsim_jobs[MAX_JOBS];
extern volatile uint32_t atomsim_njobs;

static inline atomsim_status atomsim_harness_dispatch(const atomsim_job_t *j) {
    ATOMSIM_CALL_LOCALS(j);
    switch (j->op) {
#define ATOMSIM_OP_CASE(NAME, name, ARGS)                                                      \
    case ATOMSIM_OP_##NAME:                                                                    \
        return ATOMSIM_CALL_##ARGS(name, j);
        ATOMSIM_KERNELS(ATOMSIM_OP_CASE)
#undef ATOMSIM_OP_CASE
    default:
        return ATOMSIM_ARG_ERROR;
    }
}

#endif
