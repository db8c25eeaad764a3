"""System Control Space at 0xE000E000 (Renode type IRQControllers.NVIC): NVIC registers,
SysTick, SCB (CPUID, VTOR, CCR, CPACR, fault status), MPU, FPU context registers, DEMCR and,
on the Cortex-M7, the cache identification and maintenance registers.

Interrupts are not delivered (the emulator runs bare-metal code to completion; no IRQ model).
Fault status registers are set by the machine when it halts on a fault, so a test can read
CFSR/HFSR/BFAR afterwards. Sources: M4TRM Table 4-1, CORE-CM7 (STM32-FACTS §3, §4).
"""

from __future__ import annotations

from atomsim.emulator.peripherals.base import Peripheral, Reg, regs

CPUID = {"cortex-m4": 0x410FC241, "cortex-m7": 0x411FC270}  # M7 value [U]: r1p0 assumed
CFSR, HFSR, MMFAR, BFAR = 0xD28, 0xD2C, 0xD34, 0xD38
DEMCR = 0xDFC
SYST_CSR, SYST_RVR, SYST_CVR = 0x010, 0x014, 0x018


def _ccsidr(size: int, ways: int, line: int = 32) -> int:
    sets = size // (ways * line)
    return (0b1110 << 28) | ((sets - 1) << 13) | ((ways - 1) << 3) | ((line // 16).bit_length() - 1)


class SystemControlSpace(Peripheral):
    """The Cortex-M system control space, one block from 0xE000E000 to 0xE000EFFF."""

    size = 0x1000

    def all_registers(self):
        board = self.machine.board
        table = [Reg(0x004, "ICTR", 0x7, 0), Reg(SYST_CSR, "SYST_CSR", 0x4),
                 Reg(SYST_RVR, "SYST_RVR", 0, 0x00FFFFFF), Reg(SYST_CVR, "SYST_CVR"),
                 Reg(0x01C, "SYST_CALIB", 0x40000000 | (board.clock_hz // 100 // 8), 0)]
        for i in range(8):
            table += [Reg(0x100 + 4 * i, f"NVIC_ISER{i}"), Reg(0x180 + 4 * i, f"NVIC_ICER{i}"),
                      Reg(0x200 + 4 * i, f"NVIC_ISPR{i}"), Reg(0x280 + 4 * i, f"NVIC_ICPR{i}"),
                      Reg(0x300 + 4 * i, f"NVIC_IABR{i}", 0, 0)]
        table += [Reg(0x400 + 4 * i, f"NVIC_IPR{i}") for i in range(60)]
        table += list(regs(
            (0xD00, "CPUID", CPUID.get(board.core, 0), 0), (0xD04, "ICSR"), (0xD08, "VTOR"),
            (0xD0C, "AIRCR", 0xFA050000), (0xD10, "SCR"), (0xD14, "CCR", 0x200),
            (0xD18, "SHPR1"), (0xD1C, "SHPR2"), (0xD20, "SHPR3"), (0xD24, "SHCSR"),
            (CFSR, "CFSR"), (HFSR, "HFSR"), (0xD30, "DFSR"), (MMFAR, "MMFAR"), (BFAR, "BFAR"),
            (0xD3C, "AFSR"), (0xD88, "CPACR"), (0xD90, "MPU_TYPE", 0x1000 if board.core ==
                                                 "cortex-m7" else 0x800, 0),
            (0xD94, "MPU_CTRL"), (0xD98, "MPU_RNR"), (0xD9C, "MPU_RBAR"), (0xDA0, "MPU_RASR"),
            (0xDA4, "MPU_RBAR_A1"), (0xDA8, "MPU_RASR_A1"), (0xDAC, "MPU_RBAR_A2"),
            (0xDB0, "MPU_RASR_A2"), (0xDB4, "MPU_RBAR_A3"), (0xDB8, "MPU_RASR_A3"),
            (0xDF0, "DHCSR"), (0xDF4, "DCRSR"), (0xDF8, "DCRDR"), (DEMCR, "DEMCR"),
            (0xF00, "STIR"), (0xF34, "FPCCR", 0xC0000000), (0xF38, "FPCAR"),
            (0xF3C, "FPDSCR")))
        if board.icache_bytes or board.dcache_bytes:
            table += list(regs(
                (0xD78, "CLIDR", 0x09000003, 0), (0xD7C, "CTR", 0x8303C003, 0),
                (0xD80, "CCSIDR", 0, 0), (0xD84, "CSSELR", 0, 1),
                (0xF50, "ICIALLU"), (0xF58, "ICIMVAU"), (0xF5C, "DCIMVAC"), (0xF60, "DCISW"),
                (0xF64, "DCCMVAU"), (0xF68, "DCCMVAC"), (0xF6C, "DCCSW"), (0xF70, "DCCIMVAC"),
                (0xF74, "DCCISW"), (0xF78, "BPIALL")))
        return table

    def trcena(self) -> bool:
        """DEMCR.TRCENA: the DWT counts only when it is set."""
        return bool(self.values[DEMCR] & (1 << 24))

    def read_reg(self, offset):
        if offset == 0xD80:  # CCSIDR for the cache CSSELR selects
            board = self.machine.board
            if self.values[0xD84] & 1:  # instruction cache, 2-way
                return _ccsidr(board.icache_bytes, 2)
            return _ccsidr(board.dcache_bytes, 4)  # data cache, 4-way
        if offset == SYST_CVR:
            return self._systick_value()
        if offset == SYST_CSR:
            return self.values[SYST_CSR] | (self._systick_wrapped() << 16)
        return super().read_reg(offset)

    def write_reg(self, offset, value):
        if offset in (CFSR, HFSR):  # write-one-to-clear
            self.values[offset] &= ~value
            return
        if offset == SYST_CVR:  # any write clears the counter and COUNTFLAG
            self._systick_epoch = self.machine.cycles()
            self._systick_last_wrap = 0
            return
        if offset == SYST_CSR and value & 1 and not self.values[SYST_CSR] & 1:
            self._systick_epoch = self.machine.cycles()
            self._systick_last_wrap = 0
        super().write_reg(offset, value)

    _systick_epoch = 0
    _systick_last_wrap = 0

    def _systick_value(self) -> int:
        reload = self.values[SYST_RVR] + 1
        if not self.values[SYST_CSR] & 1 or reload <= 1:
            return self.values[SYST_CVR]
        elapsed = self.machine.cycles() - self._systick_epoch
        return (reload - 1) - (elapsed % reload)

    def _systick_wrapped(self) -> int:
        reload = self.values[SYST_RVR] + 1
        if not self.values[SYST_CSR] & 1 or reload <= 1:
            return 0
        wraps = (self.machine.cycles() - self._systick_epoch) // reload
        flag = int(wraps > self._systick_last_wrap)
        self._systick_last_wrap = wraps  # COUNTFLAG clears on read
        return flag

    def record_fault(self, cfsr: int, hfsr: int, bfar: int | None, mmfar: int | None) -> None:
        """Latch fault status as the core would on HardFault entry."""
        self.values[CFSR] |= cfsr
        self.values[HFSR] |= hfsr
        if bfar is not None:
            self.values[BFAR] = bfar
        if mmfar is not None:
            self.values[MMFAR] = mmfar
