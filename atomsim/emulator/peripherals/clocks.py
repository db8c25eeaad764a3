"""RCC, PWR and FLASH-interface models behaving as ST's HAL clock set-up expects.

Ready flags follow their enable bits in both directions, SWS follows SW, FLASH_ACR reads back
what was written, F7 over-drive and H7 supply/VOS ready flags are set. Bit positions: CMSIS-F4,
CMSIS-F7, CMSIS-H7 and the HAL sources, as restated in shared/reference/STM32-FACTS.md §4.
"""

from __future__ import annotations

from atomsim.emulator.peripherals.base import Peripheral, follow, regs


class RccF4(Peripheral):
    """STM32F4/F7 RCC (Renode type Miscellaneous.STM32F4_RCC)."""

    registers = regs(
        (0x00, "CR", 0x00000083), (0x04, "PLLCFGR", 0x24003010), (0x08, "CFGR"), (0x0C, "CIR"),
        (0x10, "AHB1RSTR"), (0x14, "AHB2RSTR"), (0x18, "AHB3RSTR"), (0x20, "APB1RSTR"),
        (0x24, "APB2RSTR"), (0x30, "AHB1ENR"), (0x34, "AHB2ENR"), (0x38, "AHB3ENR"),
        (0x40, "APB1ENR"), (0x44, "APB2ENR"), (0x50, "AHB1LPENR"), (0x54, "AHB2LPENR"),
        (0x58, "AHB3LPENR"), (0x60, "APB1LPENR"), (0x64, "APB2LPENR"), (0x70, "BDCR"),
        (0x74, "CSR", 0x0E000000), (0x80, "SSCGR"), (0x84, "PLLI2SCFGR", 0x24003000),
        (0x88, "PLLSAICFGR", 0x24003000), (0x8C, "DCKCFGR1"), (0x90, "DCKCFGR2"),
        (0x94, "DCKCFGR3"))
    # (enable bit, ready bit) in RCC_CR: HSI, HSE, PLL, PLLI2S, PLLSAI
    CR_FOLLOW = ((0, 1), (16, 17), (24, 25), (26, 27), (28, 29))

    def write_reg(self, offset, value):
        if offset == 0x00:
            value = follow(value, self.CR_FOLLOW)
            self.values[0x00] = value
        elif offset == 0x08:  # SWS[3:2] follows SW[1:0]
            self.values[0x08] = (value & ~0xC) | ((value & 0x3) << 2)
        elif offset == 0x70:  # BDCR: LSERDY (1) follows LSEON (0)
            self.values[0x70] = follow(value, ((0, 1),))
        elif offset == 0x74:  # CSR: LSIRDY (1) follows LSION (0)
            self.values[0x74] = follow(value, ((0, 1),))
        else:
            super().write_reg(offset, value)


class RccH7(Peripheral):
    """STM32H7 RCC (Renode type Miscellaneous.STM32H7_RCC)."""

    registers = regs(
        (0x00, "CR", 0x00004025), (0x04, "HSICFGR"), (0x08, "CRRCR"), (0x0C, "CSICFGR"),
        (0x10, "CFGR"), (0x18, "D1CFGR"), (0x1C, "D2CFGR"), (0x20, "D3CFGR"),
        (0x28, "PLLCKSELR", 0x02020200), (0x2C, "PLLCFGR", 0x01FF0000),
        (0x30, "PLL1DIVR", 0x01010280), (0x34, "PLL1FRACR"), (0x38, "PLL2DIVR", 0x01010280),
        (0x3C, "PLL2FRACR"), (0x40, "PLL3DIVR", 0x01010280), (0x44, "PLL3FRACR"),
        (0x4C, "D1CCIPR"), (0x50, "D2CCIP1R"), (0x54, "D2CCIP2R"), (0x58, "D3CCIPR"),
        (0x60, "CIER"), (0x64, "CIFR"), (0x68, "CICR"), (0x70, "BDCR"), (0x74, "CSR"),
        (0x7C, "AHB3RSTR"), (0x80, "AHB1RSTR"), (0x84, "AHB2RSTR"), (0x88, "AHB4RSTR"),
        (0x8C, "APB3RSTR"), (0x90, "APB1LRSTR"), (0x94, "APB1HRSTR"), (0x98, "APB2RSTR"),
        (0x9C, "APB4RSTR"), (0xA0, "GCR"), (0xA8, "D3AMR"), (0xD0, "RSR"),
        (0xD4, "AHB3ENR"), (0xD8, "AHB1ENR"), (0xDC, "AHB2ENR"), (0xE0, "AHB4ENR"),
        (0xE4, "APB3ENR"), (0xE8, "APB1LENR"), (0xEC, "APB1HENR"), (0xF0, "APB2ENR"),
        (0xF4, "APB4ENR"), (0xFC, "AHB3LPENR"), (0x100, "AHB1LPENR"), (0x104, "AHB2LPENR"),
        (0x108, "AHB4LPENR"), (0x10C, "APB3LPENR"), (0x110, "APB1LLPENR"),
        (0x114, "APB1HLPENR"), (0x118, "APB2LPENR"), (0x11C, "APB4LPENR"))
    # HSI 0->2, CSI 7->8, HSI48 12->13, HSE 16->17, PLL1 24->25, PLL2 26->27, PLL3 28->29
    CR_FOLLOW = ((0, 2), (7, 8), (12, 13), (16, 17), (24, 25), (26, 27), (28, 29))
    D1CKRDY, D2CKRDY = 1 << 14, 1 << 15

    def write_reg(self, offset, value):
        if offset == 0x00:
            self.values[0x00] = follow(value, self.CR_FOLLOW) | self.D1CKRDY | self.D2CKRDY
        elif offset == 0x10:  # SWS[5:3] follows SW[2:0]
            self.values[0x10] = (value & ~0x38) | ((value & 0x7) << 3)
        elif offset == 0x70:
            self.values[0x70] = follow(value, ((0, 1),))
        elif offset == 0x74:
            self.values[0x74] = follow(value, ((0, 1),))
        else:
            super().write_reg(offset, value)


class PwrF4(Peripheral):
    """STM32F4 PWR (Renode type Miscellaneous.STM32_PWR): VOSRDY (CSR bit 14) reads 1."""

    registers = regs((0x00, "CR", 0x0000C000), (0x04, "CSR", 1 << 14, 0x00000100))


class PwrF7(Peripheral):
    """STM32F7 PWR: ODRDY follows ODEN, ODSWRDY follows ODSWEN, VOSRDY reads 1."""

    registers = regs((0x00, "CR1", 0x0000C000), (0x04, "CSR1", 1 << 14, 0), (0x08, "CR2"),
                     (0x0C, "CSR2", 0, 0))

    def read_reg(self, offset):
        if offset == 0x04:
            cr1 = self.values[0x00]
            csr = 1 << 14
            csr |= (1 << 16) if cr1 & (1 << 16) else 0
            csr |= (1 << 17) if cr1 & (1 << 17) else 0
            return csr
        return super().read_reg(offset)


class PwrH7(Peripheral):
    """STM32H7 PWR: CSR1.ACTVOSRDY set, D3CR.VOSRDY set, ACTVOS mirrors D3CR.VOS."""

    registers = regs((0x00, "CR1", 0xF000C000), (0x04, "CSR1", 0, 0), (0x08, "CR2"),
                     (0x0C, "CR3", 0x00000006), (0x10, "CPUCR"), (0x18, "D3CR", 0x00004000),
                     (0x20, "WKUPCR"), (0x24, "WKUPFR"), (0x28, "WKUPEPR"))

    def read_reg(self, offset):
        if offset == 0x04:
            vos = (self.values[0x18] >> 14) & 3
            return (1 << 13) | (vos << 14)
        if offset == 0x18:
            return self.values[0x18] | (1 << 13)
        return super().read_reg(offset)


class FlashIfF4(Peripheral):
    """STM32F4/F7 flash interface registers: ACR is a plain read/write register."""

    registers = regs((0x00, "ACR"), (0x04, "KEYR"), (0x08, "OPTKEYR"), (0x0C, "SR"),
                     (0x10, "CR", 0x80000000), (0x14, "OPTCR", 0x0FFFAAED), (0x18, "OPTCR1"))


class FlashIfH7(Peripheral):
    """STM32H7 flash interface registers: ACR (reset 0x37) reads back what was written."""

    registers = regs((0x00, "ACR", 0x37), (0x04, "KEYR1"), (0x08, "OPTKEYR"), (0x0C, "CR1"),
                     (0x10, "SR1"), (0x14, "CCR1"), (0x18, "OPTCR"), (0x1C, "OPTSR_CUR"),
                     (0x20, "OPTSR_PRG"), (0x104, "KEYR2"), (0x10C, "CR2"), (0x110, "SR2"),
                     (0x114, "CCR2"))
