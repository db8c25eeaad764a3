/*
 * The clock set-up ST's HAL performs, register by register (HAL_RCC_OscConfig /
 * HAL_RCC_ClockConfig / HAL_PWREx_*): HSE and PLL on with ready polling in both directions,
 * SYSCLK switch with SWS polling, FLASH latency read-back, F7 over-drive, H7 supply and VOS
 * ready. Every wait has a bound; a bound that runs out reports which flag never came.
 * Bit positions: CMSIS-F4/F7/H7 and the HAL sources (shared/reference/STM32-FACTS.md §4).
 */
#include <stdint.h>

#include "atomsim_rt.h"

#define REG(addr) (*(volatile uint32_t *)(addr))
#define BIT(n) (1u << (n))

static void wait_bits(volatile uint32_t *reg, uint32_t mask, uint32_t want, const char *what) {
    for (uint32_t tries = 0; tries < 100000; tries++)
        if ((*reg & mask) == want)
            return;
    atomsim_fail(what);
}

#if defined(ATOMSIM_BOARD_STM32H743)
#define RCC 0x58024400u
#define PWR 0x58024800u
#define FLASH_ACR REG(0x52002000u)
#define SYSCFG_PWRCR REG(0x58000400u + 0x2C)

static void clock_setup(void) {
    /* HAL_PWREx_ConfigSupply(PWR_LDO_SUPPLY): LDOEN only, then wait ACTVOSRDY. */
    REG(PWR + 0x0C) = (REG(PWR + 0x0C) & ~0x7u) | BIT(1);
    wait_bits(&REG(PWR + 0x04), BIT(13), BIT(13), "PWR_CSR1.ACTVOSRDY");
    /* VOS1 then VOS0 (SYSCFG ODEN) as for 480 MHz; wait VOSRDY each time. */
    REG(PWR + 0x18) = (REG(PWR + 0x18) & ~(3u << 14)) | (3u << 14);
    wait_bits(&REG(PWR + 0x18), BIT(13), BIT(13), "PWR_D3CR.VOSRDY (VOS1)");
    SYSCFG_PWRCR |= BIT(0);
    wait_bits(&REG(PWR + 0x18), BIT(13), BIT(13), "PWR_D3CR.VOSRDY (VOS0)");
    /* HSE on, wait HSERDY. */
    REG(RCC + 0x00) |= BIT(16);
    wait_bits(&REG(RCC + 0x00), BIT(17), BIT(17), "RCC_CR.HSERDY");
    /* PLL1 off (wait ready clear), configure, on (wait ready set). */
    REG(RCC + 0x00) &= ~BIT(24);
    wait_bits(&REG(RCC + 0x00), BIT(25), 0, "RCC_CR.PLL1RDY clear");
    REG(RCC + 0x28) = (REG(RCC + 0x28) & ~0x3u) | 0x2u | (1u << 4); /* PLLSRC=HSE, DIVM1=1 */
    REG(RCC + 0x30) = (1u << 9) | (120u - 1); /* DIVP1=2, DIVN1=120 (8 MHz HSE -> 480 MHz) */
    REG(RCC + 0x00) |= BIT(24);
    wait_bits(&REG(RCC + 0x00), BIT(25), BIT(25), "RCC_CR.PLL1RDY");
    /* Flash latency 4 WS, WRHIGHFREQ 2, read back as HAL_RCC_ClockConfig does. */
    FLASH_ACR = (FLASH_ACR & ~0x3Fu) | 4u | (2u << 4);
    if ((FLASH_ACR & 0x3Fu) != (4u | (2u << 4)))
        atomsim_fail("FLASH_ACR latency read-back");
    /* HPRE /2 for the AXI clock, then SW = PLL1 and wait SWS. */
    REG(RCC + 0x18) = (REG(RCC + 0x18) & ~0xFu) | 0x8u;
    REG(RCC + 0x10) = (REG(RCC + 0x10) & ~0x7u) | 0x3u;
    wait_bits(&REG(RCC + 0x10), 0x38u, 0x18u, "RCC_CFGR.SWS == PLL1");
}
#else /* STM32F4 / STM32F7: the same RCC layout */
#define RCC 0x40023800u
#define PWR 0x40007000u
#define FLASH_ACR REG(0x40023C00u)
#if defined(ATOMSIM_BOARD_STM32F746)
#define PLLN 432u /* 8 MHz HSE / 8 * 432 / 2 = 216 MHz */
#define LATENCY 7u
#else
#define PLLN 200u /* 8 MHz / 8 * 200 / 2 = 100 MHz */
#define LATENCY 3u
#endif

static void clock_setup(void) {
    REG(RCC + 0x40) |= BIT(28); /* APB1ENR.PWREN */
    REG(PWR + 0x00) = (REG(PWR + 0x00) & ~(3u << 14)) | (3u << 14); /* VOS scale 1 */
    REG(RCC + 0x00) |= BIT(16);
    wait_bits(&REG(RCC + 0x00), BIT(17), BIT(17), "RCC_CR.HSERDY");
    REG(RCC + 0x00) &= ~BIT(24);
    wait_bits(&REG(RCC + 0x00), BIT(25), 0, "RCC_CR.PLLRDY clear");
    REG(RCC + 0x04) = BIT(22) | (PLLN << 6) | 8u; /* PLLSRC=HSE, PLLM=8, PLLP=/2 */
    REG(RCC + 0x00) |= BIT(24);
    wait_bits(&REG(RCC + 0x00), BIT(25), BIT(25), "RCC_CR.PLLRDY");
#if defined(ATOMSIM_BOARD_STM32F746)
    /* HAL_PWREx_EnableOverDrive: ODEN, wait ODRDY; ODSWEN, wait ODSWRDY. */
    REG(PWR + 0x00) |= BIT(16);
    wait_bits(&REG(PWR + 0x04), BIT(16), BIT(16), "PWR_CSR1.ODRDY");
    REG(PWR + 0x00) |= BIT(17);
    wait_bits(&REG(PWR + 0x04), BIT(17), BIT(17), "PWR_CSR1.ODSWRDY");
#else
    wait_bits(&REG(PWR + 0x04), BIT(14), BIT(14), "PWR_CSR.VOSRDY");
#endif
    FLASH_ACR = (FLASH_ACR & ~0xFu) | LATENCY;
    if ((FLASH_ACR & 0xFu) != LATENCY)
        atomsim_fail("FLASH_ACR latency read-back");
    REG(RCC + 0x08) = (REG(RCC + 0x08) & ~0x3u) | 0x2u; /* SW = PLL */
    wait_bits(&REG(RCC + 0x08), 0xCu, 0x8u, "RCC_CFGR.SWS == PLL");
}
#endif

int main(void) {
    clock_setup();
    atomsim_puts("clock set-up done: " ATOMSIM_BOARD_NAME "\n");
    return 0;
}
