/*
 * A call chain of known depth: main -> level1 -> level2 -> leaf. Each level's frame size is
 * what gcc's -fstack-usage reports (the test reads the .su files); every word of every frame
 * is written, so the measured high-water mark must equal the sum exactly.
 */
#include <stdint.h>

#include "atomsim_rt.h"

#define FILL(buf, n, seed)                                                                         \
    for (int i = 0; i < (n); i++)                                                                  \
        (buf)[i] = (uint32_t)(seed) + (uint32_t)i

__attribute__((noinline)) static uint32_t leaf(uint32_t x) {
    volatile uint32_t buf[36];
    FILL(buf, 36, x);
    uint32_t s = 0;
    for (int i = 0; i < 36; i++)
        s += buf[i];
    return s;
}

__attribute__((noinline)) static uint32_t level2(uint32_t x) {
    volatile uint32_t buf[64];
    FILL(buf, 64, x);
    return leaf(buf[63]) + buf[0];
}

__attribute__((noinline)) static uint32_t level1(uint32_t x) {
    volatile uint32_t buf[100];
    FILL(buf, 100, x);
    return level2(buf[99]) + buf[1];
}

int main(void) {
    atomsim_report_u32("sum", level1(7));
    return 0;
}
