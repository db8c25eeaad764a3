/* Writes SPI1->CR1 (0x40013000): a real peripheral the platform does not model. */
#include <stdint.h>

#include "atomsim_rt.h"

int main(void) {
    atomsim_puts("touching SPI1\n");
    *(volatile uint32_t *)0x40013000u = 0x44u;
    return 0;
}
