/*
 * Writes to SPI1 (0x40013000 on the STM32F412, F746 and H743), a peripheral the platform files
 * do not declare: the run must stop with an unmodelled-access error naming that address.
 */
#include <stdint.h>

#include "atomsim_rt.h"

#define SPI1_CR1 (*(volatile uint32_t *)0x40013000u)

int main(void) {
    atomsim_puts("configuring SPI1\n");
    SPI1_CR1 = (1u << 2) | (1u << 6); /* MSTR | SPE */
    atomsim_puts("SPI1 configured\n"); /* never reached */
    return 0;
}
