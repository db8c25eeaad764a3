"""DWT: CYCCNT driven by the timing model's running cycle count (Renode type Miscellaneous.DWT).

CYCCNT counts only while DWT_CTRL.CYCCNTENA is set (and DEMCR.TRCENA, which the SCS model
holds); writes set its value. The count advances at block granularity: a read returns the
modelled cycles of every block completed before the reading one. Source: CORE-CM7 / STM32-FACTS §4.
"""

from __future__ import annotations

from atomsim.emulator.peripherals.base import Peripheral, regs

CTRL, CYCCNT, LAR, LSR = 0x000, 0x004, 0xFB0, 0xFB4
NUMCOMP_4 = 4 << 28


class Dwt(Peripheral):
    """Data Watchpoint and Trace unit: the cycle counter and its lock."""

    size = 0x1000
    registers = regs((CTRL, "CTRL", NUMCOMP_4), (CYCCNT, "CYCCNT"), (0x008, "CPICNT"),
                     (0x00C, "EXCCNT"), (0x010, "SLEEPCNT"), (0x014, "LSUCNT"),
                     (0x018, "FOLDCNT"), (0x01C, "PCSR"), (LAR, "LAR"), (LSR, "LSR"))

    def __init__(self, decl, host):
        super().__init__(decl, host)
        self._offset = 0  # CYCCNT = cycles + offset while running
        self._frozen = 0

    def _running(self) -> bool:
        return bool(self.values[CTRL] & 1) and self.host.scs_trcena()

    def read_reg(self, offset):
        if offset == CYCCNT:
            if self._running():
                return (self.host.cycles() + self._offset) & 0xFFFFFFFF
            return self._frozen
        return super().read_reg(offset)

    def write_reg(self, offset, value):
        if offset == CYCCNT:
            self._frozen = value
            self._offset = value - self.host.cycles()
        elif offset == CTRL:
            was = self._running()
            self.values[CTRL] = (value & 0x0FFFFFFF) | NUMCOMP_4
            now = self._running()
            if was and not now:
                self._frozen = (self.host.cycles() + self._offset) & 0xFFFFFFFF
            elif now and not was:
                self._offset = self._frozen - self.host.cycles()
        else:
            super().write_reg(offset, value)
