/* AtomSim firmware runtime (see atomsim_rt.h). Board facts arrive as -D flags from the build. */
#include "atomsim_rt.h"

#include <stddef.h>

#define REG(addr) (*(volatile uint32_t *)(addr))

#ifndef ATOMSIM_UART_BASE
#error "ATOMSIM_UART_BASE must come from the board data (atomsim build sets it)"
#endif

#if ATOMSIM_UART_F7_LAYOUT /* STM32F7 / H7 USART: ISR/TDR/RDR */
#define UART_CR1 REG(ATOMSIM_UART_BASE + 0x00)
#define UART_BRR REG(ATOMSIM_UART_BASE + 0x0C)
#define UART_ISR REG(ATOMSIM_UART_BASE + 0x1C)
#define UART_RDR REG(ATOMSIM_UART_BASE + 0x24)
#define UART_TDR REG(ATOMSIM_UART_BASE + 0x28)
#define CR1_UE (1u << 0)
#define CR1_RE (1u << 2)
#define CR1_TE (1u << 3)
#define ISR_TEACK (1u << 21)
#define ISR_REACK (1u << 22)
#else /* STM32F4 legacy USART: SR/DR */
#define UART_SR REG(ATOMSIM_UART_BASE + 0x00)
#define UART_DR REG(ATOMSIM_UART_BASE + 0x04)
#define UART_BRR REG(ATOMSIM_UART_BASE + 0x08)
#define UART_CR1 REG(ATOMSIM_UART_BASE + 0x0C)
#define CR1_UE (1u << 13)
#define CR1_TE (1u << 3)
#define CR1_RE (1u << 2)
#endif
#define ST_TXE (1u << 7)
#define ST_RXNE (1u << 5)

void atomsim_uart_init(void) {
    UART_BRR = 0x0683; /* 115200 Bd at 16 MHz kernel clock; a real board's clock tree may differ */
    UART_CR1 = CR1_UE | CR1_TE | CR1_RE;
#if ATOMSIM_UART_F7_LAYOUT
    while ((UART_ISR & (ISR_TEACK | ISR_REACK)) != (ISR_TEACK | ISR_REACK)) {
    }
#endif
}

ATOMSIM_LATE_TEXT void atomsim_putc(char c) {
#if ATOMSIM_UART_F7_LAYOUT
    while (!(UART_ISR & ST_TXE)) {
    }
    UART_TDR = (uint8_t)c;
#else
    while (!(UART_SR & ST_TXE)) {
    }
    UART_DR = (uint8_t)c;
#endif
}

ATOMSIM_LATE_TEXT int atomsim_getc(void) {
#if ATOMSIM_UART_F7_LAYOUT
    while (!(UART_ISR & ST_RXNE)) {
    }
    return (int)(UART_RDR & 0xFF);
#else
    while (!(UART_SR & ST_RXNE)) {
    }
    return (int)(UART_DR & 0xFF);
#endif
}

int atomsim_readline(char *buf, int max) {
    /* A line ends at CR or LF (Renode's Write Line To Uart sends CR); the empty line between
     * the two of a CRLF pair is skipped. */
    int n = 0;
    for (;;) {
        int c = atomsim_getc();
        if (c == '\n' || c == '\r') {
            if (n == 0)
                continue;
            break;
        }
        if (n < max - 1)
            buf[n++] = (char)c;
    }
    buf[n] = '\0';
    return n;
}

void atomsim_puts(const char *s) {
    while (*s)
        atomsim_putc(*s++);
}

void atomsim_put_u32(uint32_t v) {
    char buf[11];
    int i = 10;
    buf[i] = '\0';
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    atomsim_puts(&buf[i]);
}

void atomsim_put_i32(int32_t v) {
    if (v < 0) {
        atomsim_putc('-');
        atomsim_put_u32((uint32_t)(-(v + 1)) + 1u);
    } else {
        atomsim_put_u32((uint32_t)v);
    }
}

void atomsim_put_hex(uint32_t v) {
    static const char digits[] = "0123456789ABCDEF";
    atomsim_puts("0x");
    for (int shift = 28; shift >= 0; shift -= 4)
        atomsim_putc(digits[(v >> shift) & 0xF]);
}

#define DEMCR REG(0xE000EDFC)
#define DWT_CTRL REG(0xE0001000)
#define DWT_CYCCNT REG(0xE0001004)
#define DWT_LAR REG(0xE0001FB0)

ATOMSIM_LATE_TEXT void atomsim_cycles_start(void) {
    DEMCR |= 1u << 24; /* TRCENA */
    DWT_LAR = 0xC5ACCE55; /* unlock: required on the M7 */
    DWT_CYCCNT = 0;
    DWT_CTRL |= 1u; /* CYCCNTENA */
}

ATOMSIM_LATE_TEXT uint32_t atomsim_cycles(void) { return DWT_CYCCNT; }

void atomsim_report_u32(const char *key, uint32_t value) {
    atomsim_puts("@atomsim ");
    atomsim_puts(key);
    atomsim_putc('=');
    atomsim_put_u32(value);
    atomsim_putc('\n');
}

void atomsim_report_str(const char *key, const char *value) {
    atomsim_puts("@atomsim ");
    atomsim_puts(key);
    atomsim_putc('=');
    atomsim_puts(value);
    atomsim_putc('\n');
}

void atomsim_exit(int code) {
    /* SYS_EXIT_EXTENDED: r1 -> { ADP_Stopped_ApplicationExit, exit code } */
    static volatile uint32_t block[2];
    block[0] = 0x20026;
    block[1] = (uint32_t)code;
    register uint32_t r0 __asm("r0") = 0x20;
    register volatile uint32_t *r1 __asm("r1") = block;
    __asm volatile("bkpt 0xAB" : : "r"(r0), "r"(r1) : "memory");
    for (;;) {
    }
}

void atomsim_fail(const char *why) {
    atomsim_report_str("fail", why);
    atomsim_exit(1);
}

/* Heap for newlib's malloc, with its peak recorded for the emulator (symbol atomsim_heap_peak). */
extern char _end[];      /* end of .bss (linker) */
extern char __heap_limit[]; /* end of the RAM region (linker) */
static char *heap_break = _end;
volatile uint32_t atomsim_heap_peak;

void *_sbrk(ptrdiff_t incr) {
    char *prev = heap_break;
    if (heap_break + incr > __heap_limit || heap_break + incr < _end)
        return (void *)-1;
    heap_break += incr;
    if ((uint32_t)(heap_break - _end) > atomsim_heap_peak)
        atomsim_heap_peak = (uint32_t)(heap_break - _end);
    return prev;
}
