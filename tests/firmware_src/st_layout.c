/* A bare-metal program as STM32CubeIDE links it for the F746 (tests/test_st_layout.py): its own
 * vector table and startup, .data copied from flash, .bss zeroed, the stack at the top of the
 * one 320 KB RAM region. A 300 KB buffer in .bss spans DTCM, SRAM1 and SRAM2; the program
 * writes it through, reads it back and ends with semihosting SYS_EXIT (code 0 when every word
 * read back is what was written). */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;

#define WORDS (300u * 1024u / 4u)
static volatile uint32_t big[WORDS];      /* .bss: 0x2000xxxx .. past 0x2004C000 */
static uint32_t seed = 0x12345678u;       /* .data: checks the copy from flash */

static void semihosting_exit(uint32_t reason) {
    register uint32_t r0 __asm__("r0") = 0x18; /* SYS_EXIT */
    register uint32_t r1 __asm__("r1") = reason;
    __asm__ volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; dst++)
        *dst = 0;
    uint32_t x = seed, bad = 0;
    for (uint32_t i = 0; i < WORDS; i++) {
        x = x * 1664525u + 1013904223u;
        big[i] = x;
    }
    x = seed;
    for (uint32_t i = 0; i < WORDS; i++) {
        x = x * 1664525u + 1013904223u;
        bad |= big[i] ^ x;
    }
    semihosting_exit(bad == 0 ? 0x20026u /* ADP_Stopped_ApplicationExit */ : 0x20024u);
}

__attribute__((section(".isr_vector"), used)) const void *const g_pfnVectors[2] = {
    &_estack, (const void *)Reset_Handler};
