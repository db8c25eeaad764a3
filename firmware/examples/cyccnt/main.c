/*
 * Reads DWT CYCCNT around a fixed workload bracketed by profiling markers, then once more as
 * its last act, so a test can hold the firmware's own cycle count against the emulator's: the
 * timed part against the marker snapshots, the final read against the run's total cycles.
 */
#include <stdint.h>

#include "atomsim_rt.h"

#define ITERATIONS 20000u

static volatile uint32_t sink;

int main(void) {
    atomsim_cycles_start();
    atomsim_marker_begin();
    uint32_t t0 = atomsim_cycles();
    uint32_t x = 1u;
    for (uint32_t i = 0; i < ITERATIONS; i++)
        x = x * 1664525u + 1013904223u; /* a linear congruential step per iteration */
    sink = x;
    uint32_t t1 = atomsim_cycles();
    atomsim_marker_end();
    atomsim_report_u32("work_cycles", t1 - t0);
    atomsim_report_u32("cyccnt_end", atomsim_cycles());
    return 0;
}
