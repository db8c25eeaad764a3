/*
 * Serial job link: the harness's jobs over the console USART (docs/serial-protocol.md).
 *
 * The same harness ELF runs its jobs two ways. On the emulator the host writes the job list
 * into memory before reset (the memory path); when no job list is there, main() hands the
 * console to atomsim_serial_serve(), which speaks a framed protocol (start bytes, length,
 * sequence number, type, payload, CRC-32): the host uploads descriptors and data into the
 * arena, asks for a run, and gets DWT CYCCNT cycles and the CRC-32 of each output back. A
 * NUCLEO board and AtomSim's pseudo-terminal board both run this path. No BKPT and no
 * semihosting on it: on silicon without a debugger they would fault.
 */
#ifndef ATOMSIM_SERIAL_LINK_H
#define ATOMSIM_SERIAL_LINK_H

#include <stdint.h>

/* Runs one job descriptor; returns the kernel's status (0 = ATOMSIM_OK). */
typedef int32_t (*atomsim_serial_job_fn)(const void *job);

typedef struct {
    void *jobs;          /* the descriptor array the dispatcher reads */
    uint32_t job_size;   /* bytes of one descriptor, as the firmware was built */
    uint32_t max_jobs;   /* length of the array */
    atomsim_serial_job_fn run_job;
} atomsim_serial_harness;

/* The memory path found no job list (``why`` says how): serve the harness's jobs over the
 * console forever. */
__attribute__((noreturn)) void atomsim_serial_entry(const char *why);

/* Serve the protocol on the console forever. */
__attribute__((noreturn)) void atomsim_serial_serve(const atomsim_serial_harness *h);

#endif
