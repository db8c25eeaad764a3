/*
 * Startup for AtomSim firmware: vector table, reset handler (.data copy, .bss zero, FPU
 * enable, L1 caches on the Cortex-M7 boards), then main() and atomsim_exit(main's result).
 *
 * Two tables: the 16-entry `vector_table` at the start of flash (what the core reads at
 * reset) and the full `atomsim_vectors` (system exceptions and every IRQ of the largest
 * board, weak handlers by their CMSIS names) in .rodata, where VTOR points once the reset
 * handler runs. Keeping the IRQ entries out of .isr_vector leaves every code address where it
 * was (the profiling harness's cycle counts depend on code placement on the M7).
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
extern const uint32_t atomsim_vectors[];

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
    SCB_VTOR = (uint32_t)atomsim_vectors;
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

/* Peripheral interrupts used by AtomSim firmware (USARTs: the same IRQ numbers on STM32F4, F7
 * and H7 — RM0402, RM0385, RM0433 vector tables); every other IRQ goes to Default_Handler. */
void USART1_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void USART2_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void USART3_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void UART4_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void UART5_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void USART6_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void UART7_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));
void UART8_IRQHandler(void) __attribute__((weak, alias("Default_Handler")));

#define ATOMSIM_N_IRQ 150 /* STM32H743, the largest of the boards */
#define IRQ(n) [16 + (n)]

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init" /* Default_Handler first, then the named ones */
/* VTOR needs the table aligned to its size rounded up to a power of two: 166 words -> 1 KiB. */
__attribute__((aligned(1024), used)) const uint32_t atomsim_vectors[16 + ATOMSIM_N_IRQ] = {
    [0 ... 16 + ATOMSIM_N_IRQ - 1] = (uint32_t)Default_Handler,
    [0] = (uint32_t)_estack,
    [1] = (uint32_t)Reset_Handler,
    [2] = (uint32_t)NMI_Handler,
    [3] = (uint32_t)HardFault_Handler,
    [4] = (uint32_t)MemManage_Handler,
    [5] = (uint32_t)BusFault_Handler,
    [6] = (uint32_t)UsageFault_Handler,
    [7] = 0, [8] = 0, [9] = 0, [10] = 0,
    [11] = (uint32_t)SVC_Handler,
    [12] = 0, [13] = 0,
    [14] = (uint32_t)PendSV_Handler,
    [15] = (uint32_t)SysTick_Handler,
    IRQ(37) = (uint32_t)USART1_IRQHandler,
    IRQ(38) = (uint32_t)USART2_IRQHandler,
    IRQ(39) = (uint32_t)USART3_IRQHandler,
    IRQ(52) = (uint32_t)UART4_IRQHandler,
    IRQ(53) = (uint32_t)UART5_IRQHandler,
    IRQ(71) = (uint32_t)USART6_IRQHandler,
    IRQ(82) = (uint32_t)UART7_IRQHandler,
    IRQ(83) = (uint32_t)UART8_IRQHandler,
};
#pragma GCC diagnostic pop
