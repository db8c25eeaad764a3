/*
 * Profiling harness: one firmware per board and kernel variant runs ANY atom configuration
 * without recompiling. The host writes a job descriptor into `atomsim_jobs`, the weights and
 * bias into free flash (where a deployment keeps them) and the input into the arena (free RAM),
 * then runs; the harness calls the kernel between two profiling markers and exits with the
 * kernel's status. This file is the one definition of the descriptor: the host reads its
 * layout, the op ids and the job limit from this firmware's DWARF (atomsim/target/contract.py)
 * and packs fields by name. The harness still refuses a descriptor whose magic or size does
 * not match.
 */
#include <stddef.h>
#include <stdint.h>

#include "atomsim_nn.h"
#include "atomsim_rt.h"
#include "serial_link.h"

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

/* Not zeroed by the startup code: the host writes them before reset. A block (several atoms
 * run back to back, as a deployed network runs them) is a list of jobs between one pair of
 * markers; a single atom is a list of one. */
volatile atomsim_job_t atomsim_jobs[MAX_JOBS] __attribute__((used, section(".noinit")));
volatile uint32_t atomsim_njobs __attribute__((used, section(".noinit")));

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

static atomsim_status dispatch(const atomsim_job_t *j) {
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

static int32_t serial_job(const void *job) { return dispatch(job); }

int main(void) {
    /* Copies on the stack would add the descriptors to the kernels' stack figure; cast away
     * volatile instead: the host wrote them before reset and only the status changes. */
    const atomsim_job_t *jobs = (const atomsim_job_t *)atomsim_jobs;
    uint32_t n = atomsim_njobs;
    if (n == 0 || n > MAX_JOBS || jobs[0].magic != ATOMSIM_HARNESS_MAGIC) {
        /* No job list in memory (a board after power-on or reset): take jobs over the console
         * (serial_link.c, docs/serial-protocol.md). */
        static const atomsim_serial_harness link = {(void *)atomsim_jobs, sizeof(atomsim_job_t),
                                                    MAX_JOBS, serial_job};
        atomsim_njobs = 0;
        atomsim_serial_serve(&link);
    }
    if (n == 0 || n > MAX_JOBS)
        atomsim_fail("job count out of range");
    for (uint32_t i = 0; i < n; i++) {
        if (jobs[i].magic != ATOMSIM_HARNESS_MAGIC)
            atomsim_fail("no job descriptor (bad magic)");
        if (jobs[i].size != sizeof(atomsim_job_t))
            atomsim_fail("job descriptor size differs between host and firmware");
    }
    atomsim_status status = ATOMSIM_OK;
    atomsim_marker_begin();
    for (uint32_t i = 0; i < n && status == ATOMSIM_OK; i++)
        status = dispatch(&jobs[i]);
    atomsim_marker_end();
    if (status != ATOMSIM_OK)
        atomsim_fail("kernel returned ATOMSIM_ARG_ERROR");
    return 0;
}
