/*
 * Sleeps SLEEP_MS milliseconds of emulated time in a WFI loop woken by SysTick at TICK_HZ,
 * doing a little work on each wake-up (benchmarks/wfi_sleep.py). Prints the ticks counted and
 * the DWT cycles the sleep took.
 */
#include <stdint.h>

#include "atomsim_rt.h"

#ifndef SLEEP_MS
#define SLEEP_MS 100u
#endif
#ifndef TICK_HZ
#define TICK_HZ 1000u
#endif

#define REG(addr) (*(volatile uint32_t *)(addr))

static volatile uint32_t ticks;
static volatile uint32_t work;

void SysTick_Handler(void) {
    ticks++;
    for (uint32_t i = 0; i < 16; i++) /* a little work per wake-up */
        work += i ^ ticks;
}

int main(void) {
    REG(0xE000E014) = ATOMSIM_CLOCK_HZ / TICK_HZ - 1u; /* SYST_RVR: 24 bits, so >= 29 Hz at 480 MHz */
    REG(0xE000E018) = 0;
    REG(0xE000E010) = 0x7; /* core clock, TICKINT, ENABLE */
    const uint32_t target = (uint32_t)((uint64_t)SLEEP_MS * TICK_HZ / 1000u);
    atomsim_cycles_start();
    uint32_t wakeups = 0;
    while (ticks < target) {
        __asm volatile("wfi" ::: "memory");
        wakeups++;
    }
    REG(0xE000E010) = 0;
    atomsim_report_u32("ticks", ticks);
    atomsim_report_u32("wakeups", wakeups);
    return 0;
}
