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

#include "atomsim_rt.h"
#include "harness_jobs.h"
#include "serial_link.h"

/* Not zeroed by the startup code: the host writes them before reset. A block (several atoms
 * run back to back, as a deployed network runs them) is a list of jobs between one pair of
 * markers; a single atom is a list of one. */
volatile atomsim_job_t atomsim_jobs[MAX_JOBS] __attribute__((used, section(".noinit")));
volatile uint32_t atomsim_njobs __attribute__((used, section(".noinit")));

int main(void) {
    /* Copies on the stack would add the descriptors to the kernels' stack figure; cast away
     * volatile instead: the host wrote them before reset and only the status changes. */
    const atomsim_job_t *jobs = (const atomsim_job_t *)atomsim_jobs;
    uint32_t n = atomsim_njobs;
    /* No job list in memory (a board after power-on or reset): take jobs over the console
     * instead (serial_link.c, docs/serial-protocol.md). The serial path lives after the kernels
     * and keeps its state in the arena, so this path's code and data sit where they always did. */
    if (n == 0 || n > MAX_JOBS)
        atomsim_serial_entry("job count out of range");
    for (uint32_t i = 0; i < n; i++) {
        if (jobs[i].magic != ATOMSIM_HARNESS_MAGIC)
            atomsim_serial_entry("no job descriptor (bad magic)");
        if (jobs[i].size != sizeof(atomsim_job_t))
            atomsim_fail("job descriptor size differs between host and firmware");
    }
    atomsim_status status = ATOMSIM_OK;
    atomsim_marker_begin();
    for (uint32_t i = 0; i < n && status == ATOMSIM_OK; i++)
        status = atomsim_harness_dispatch(&jobs[i]);
    atomsim_marker_end();
    if (status != ATOMSIM_OK)
        atomsim_fail("kernel returned ATOMSIM_ARG_ERROR");
    return 0;
}
