/* Unbounded recursion: must end in a stack overflow, never in corrupted data. */
#include <stdint.h>

#include "atomsim_rt.h"

__attribute__((noinline)) static uint32_t down(volatile uint32_t depth) {
    volatile uint32_t pad[16];
    pad[0] = depth;
    return down(depth + 1) + pad[0];
}

int main(void) {
    atomsim_report_u32("never", down(0));
    return 0;
}
