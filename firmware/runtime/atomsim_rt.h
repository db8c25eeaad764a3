/*
 * AtomSim firmware runtime: console UART, cycle counter, result reports and the exit
 * convention that the emulator (and a real board's serial host) recognise.
 *
 * Exit convention: atomsim_exit(code) executes the Arm semihosting call SYS_EXIT_EXTENDED
 * (BKPT 0xAB, r0 = 0x20); code 0 means success. Firmware that AtomSim did not build may end
 * with SYS_EXIT, any other BKPT, or a branch to itself.
 *
 * Report convention: one line per value, "@atomsim <key>=<value>", so a serial host can parse
 * the same lines from a physical board.
 */
#ifndef ATOMSIM_RT_H
#define ATOMSIM_RT_H

#include <stdint.h>

void atomsim_uart_init(void);
/* Out-of-line copies of the console and cycle helpers go after all other code (the linker
 * script's .text_late): a firmware that starts calling them (the harness's serial link) keeps
 * every other function at the address it had, and the M7 model's cycles with it. Callers in the
 * runtime itself still get them inlined. */
#define ATOMSIM_LATE_TEXT __attribute__((section(".text_late")))

void atomsim_putc(char c);
void atomsim_puts(const char *s);          /* no newline added */
void atomsim_put_u32(uint32_t v);          /* decimal */
void atomsim_put_i32(int32_t v);
void atomsim_put_hex(uint32_t v);          /* 0x%08X */
int atomsim_getc(void);                    /* blocking read from the console RX */
int atomsim_readline(char *buf, int max);  /* a non-empty line ending at CR or LF */

void atomsim_cycles_start(void);  /* enable and zero DWT->CYCCNT */
uint32_t atomsim_cycles(void);    /* DWT->CYCCNT */

void atomsim_report_u32(const char *key, uint32_t value);
void atomsim_report_str(const char *key, const char *value);

/* Profiling markers: the emulator snapshots its counters at each (BKPT 0x01 / 0x02). */
static inline void atomsim_marker_begin(void) { __asm volatile("bkpt 0x01" ::: "memory"); }
static inline void atomsim_marker_end(void) { __asm volatile("bkpt 0x02" ::: "memory"); }

__attribute__((noreturn)) void atomsim_exit(int code);
__attribute__((noreturn)) void atomsim_fail(const char *why);

#endif
