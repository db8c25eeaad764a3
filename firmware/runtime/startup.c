/*
 * Startup for AtomSim firmware: vector table, reset handler (.data copy, .bss zero, FPU
 * enable, L1 caches on the Cortex-M7 boards), then main() and atomsim_exit(main's result).
 */
#include <stdint.h>

#include "atomsim_rt.h"

extern uint32_t _sidata[], _sdata[], _edata[], _sbss[], _ebss[], _estack[];
int main(void);

#define REG(addr) (*(volatile uint32_t *)(addr))
#define SCB_VTOR REG(0xE000ED08)
#define SCB_CCR REG(0xE000ED14)
#define SCB_CPACR REG(0xE000ED88)
#define SCB_CCSIDR REG(0xE000ED80)
#define SCB_CSSELR REG(0xE000ED84)

__attribute__((noreturn)) void Reset_Handler(void);
void Default_Handler(void);

extern const uint32_t vector_table[];

#if ATOMSIM_CORE_M7
static void enable_caches(void) {
    /* I-cache: invalidate all, then CCR.IC (bit 17). */
    __asm volatile("dsb\n isb" ::: "memory");
    REG(0xE000EF50) = 0; /* ICIALLU */
    __asm volatile("dsb\n isb" ::: "memory");
    SCB_CCR |= 1u << 17;
    /* D-cache: invalidate by set/way from CCSIDR, then CCR.DC (bit 16). */
    SCB_CSSELR = 0; /* level 1 data cache */
    __asm volatile("dsb" ::: "memory");
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = ((ccsidr >> 13) & 0x7FFF) + 1;
    uint32_t ways = ((ccsidr >> 3) & 0x3FF) + 1;
    for (uint32_t set = 0; set < sets; set++)
        for (uint32_t way = 0; way < ways; way++)
            REG(0xE000EF60) = (set << 5) | (way << 30); /* DCISW */
    __asm volatile("dsb" ::: "memory");
    SCB_CCR |= 1u << 16;
    __asm volatile("dsb\n isb" ::: "memory");
}
#endif

void Reset_Handler(void) {
    SCB_VTOR = (uint32_t)vector_table;
    for (uint32_t *src = _sidata, *dst = _sdata; dst < _edata;)
        *dst++ = *src++;
    for (uint32_t *dst = _sbss; dst < _ebss;)
        *dst++ = 0;
    SCB_CPACR |= 0xFu << 20; /* CP10, CP11: full access to the FPU */
    __asm volatile("dsb\n isb" ::: "memory");
#if ATOMSIM_CORE_M7
    enable_caches();
#endif
    atomsim_uart_init();
    atomsim_exit(main());
}

void Default_Handler(void) {
    for (;;) {
    }
}

void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void) __attribute__((weak, alias("Default_Handler")));

__attribute__((section(".isr_vector"), used)) const uint32_t vector_table[16] = {
    (uint32_t)_estack,
    (uint32_t)Reset_Handler,
    (uint32_t)NMI_Handler,
    (uint32_t)HardFault_Handler,
    (uint32_t)MemManage_Handler,
    (uint32_t)BusFault_Handler,
    (uint32_t)UsageFault_Handler,
    0, 0, 0, 0,
    (uint32_t)SVC_Handler,
    0, 0,
    (uint32_t)PendSV_Handler,
    (uint32_t)SysTick_Handler,
};
