/* Touches an address where the chip has no memory: the run must end in a fault naming it. */
#include <stdint.h>

#include "atomsim_rt.h"

#ifndef FAULT_ADDRESS
#define FAULT_ADDRESS 0x60000000u /* FMC bank 1: nothing there unless external memory is fitted */
#endif

int main(void) {
    atomsim_puts("about to read ");
    atomsim_put_hex(FAULT_ADDRESS);
    atomsim_putc('\n');
    volatile uint32_t *p = (volatile uint32_t *)FAULT_ADDRESS;
    uint32_t v = *p;
    atomsim_put_hex(v); /* never reached */
    return 0;
}
