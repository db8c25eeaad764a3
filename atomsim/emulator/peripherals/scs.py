"""System Control Space at 0xE000E000 (Renode type IRQControllers.NVIC): NVIC, SysTick, SCB
(CPUID, ICSR, VTOR, AIRCR, CCR, SHPR1-3, SHCSR, CPACR, fault status), MPU, FPU context
registers, DEMCR and, on the Cortex-M7, the cache identification and maintenance registers.

The exception *state* lives here, as the architecture keeps it in these registers: which
exceptions are pending (software pend bits, plus peripheral interrupt lines that are asserted),
which are active, the enables and the priorities. The machine's core side asks
``next_exception`` at the points where something can have changed, and calls ``acknowledge`` on
entry and ``complete`` on return. SysTick counts the modelled core cycles (the host's time
source) and says when it next fires (``systick_next_event``), so the machine can run the core
in slices up to that cycle instead of checking per instruction.

Priorities: 4 implemented bits (bits 7:4), as on every STM32F4/F7/H7 (``__NVIC_PRIO_BITS``);
preemption uses the group priority that AIRCR.PRIGROUP selects; ties go to the lower
exception number. Sources: ARMv7-M ARM B1.5 (exception model), B3.2 (SCS registers), B3.3
(SysTick), B3.4 (NVIC); M4TRM Table 4-1; CORE-CM7 (STM32-FACTS §3, §4).
"""

from __future__ import annotations

from atomsim.emulator.peripherals.base import Peripheral, Reg, regs

CPUID = {"cortex-m4": 0x410FC241, "cortex-m7": 0x411FC270}  # M7 value [U]: r1p0 assumed
ICSR, VTOR, AIRCR, CCR = 0xD04, 0xD08, 0xD0C, 0xD14
SHPR1, SHPR2, SHPR3, SHCSR = 0xD18, 0xD1C, 0xD20, 0xD24
CFSR, HFSR, MMFAR, BFAR = 0xD28, 0xD2C, 0xD34, 0xD38
CPACR, DEMCR, STIR, FPCCR = 0xD88, 0xDFC, 0xF00, 0xF34
SYST_CSR, SYST_RVR, SYST_CVR = 0x010, 0x014, 0x018
ISER, ICER, ISPR, ICPR, IABR, IPR = 0x100, 0x180, 0x200, 0x280, 0x300, 0x400

# Exception numbers (ARMv7-M B1.5.2).
NMI, HARDFAULT, MEMMANAGE, BUSFAULT, USAGEFAULT = 2, 3, 4, 5, 6
SVCALL, DEBUGMON, PENDSV, SYSTICK, IRQ0 = 11, 12, 14, 15, 16
N_IRQ = 240
PRIO_MASK = 0xF0  # 4 implemented priority bits
FIXED_PRIORITY = {1: -3, NMI: -2, HARDFAULT: -1}
NO_PRIORITY = 256  # execution priority of thread mode with nothing masked

# CCR bits the fault model honours; ICSR bits.
CCR_UNALIGN_TRP, CCR_DIV_0_TRP = 1 << 3, 1 << 4
ICSR_PENDSTCLR, ICSR_PENDSTSET, ICSR_PENDSVCLR = 1 << 25, 1 << 26, 1 << 27
ICSR_PENDSVSET, ICSR_NMIPENDSET = 1 << 28, 1 << 31
SHCSR_ENABLE = {MEMMANAGE: 1 << 16, BUSFAULT: 1 << 17, USAGEFAULT: 1 << 18}
SHCSR_ACTIVE = {MEMMANAGE: 1 << 0, BUSFAULT: 1 << 1, USAGEFAULT: 1 << 3, SVCALL: 1 << 7,
                DEBUGMON: 1 << 8, PENDSV: 1 << 10, SYSTICK: 1 << 11}
SYSTICK_ENABLE, SYSTICK_TICKINT, SYSTICK_CLKSOURCE = 1, 2, 4
SYSTICK_EXTERNAL_DIV = 8  # STM32: the SysTick external reference is HCLK/8


def _ccsidr(size: int, ways: int, line: int = 32) -> int:
    sets = size // (ways * line)
    return (0b1110 << 28) | ((sets - 1) << 13) | ((ways - 1) << 3) | ((line // 16).bit_length() - 1)


class SystemControlSpace(Peripheral):
    """The Cortex-M system control space, one block from 0xE000E000 to 0xE000EFFF."""

    size = 0x1000

    def __init__(self, decl, host):
        super().__init__(decl, host)
        self._clear_state()

    def all_registers(self):
        board = self.host.board
        table = [Reg(0x004, "ICTR", 0x7, 0), Reg(SYST_CSR, "SYST_CSR", 0x4, 0x7),
                 Reg(SYST_RVR, "SYST_RVR", 0, 0x00FFFFFF), Reg(SYST_CVR, "SYST_CVR"),
                 Reg(0x01C, "SYST_CALIB", 0x40000000 | (board.clock_hz // 100 // 8), 0)]
        for i in range(8):
            table += [Reg(ISER + 4 * i, f"NVIC_ISER{i}"), Reg(ICER + 4 * i, f"NVIC_ICER{i}"),
                      Reg(ISPR + 4 * i, f"NVIC_ISPR{i}"), Reg(ICPR + 4 * i, f"NVIC_ICPR{i}"),
                      Reg(IABR + 4 * i, f"NVIC_IABR{i}", 0, 0)]
        table += [Reg(IPR + 4 * i, f"NVIC_IPR{i}", 0, 0xF0F0F0F0) for i in range(60)]
        table += list(regs(
            (0xD00, "CPUID", CPUID.get(board.core, 0), 0), (ICSR, "ICSR"), (VTOR, "VTOR"),
            (AIRCR, "AIRCR", 0xFA050000), (0xD10, "SCR"), (CCR, "CCR", 0x200, 0x7031B),
            (SHPR1, "SHPR1", 0, 0x00F0F0F0), (SHPR2, "SHPR2", 0, 0xF0000000),
            (SHPR3, "SHPR3", 0, 0xF0F000F0), (SHCSR, "SHCSR", 0, 0x00070000),
            (CFSR, "CFSR"), (HFSR, "HFSR"), (0xD30, "DFSR"), (MMFAR, "MMFAR"), (BFAR, "BFAR"),
            (0xD3C, "AFSR"), (CPACR, "CPACR"), (0xD90, "MPU_TYPE", 0x1000 if board.core ==
                                                  "cortex-m7" else 0x800, 0),
            (0xD94, "MPU_CTRL"), (0xD98, "MPU_RNR"), (0xD9C, "MPU_RBAR"), (0xDA0, "MPU_RASR"),
            (0xDA4, "MPU_RBAR_A1"), (0xDA8, "MPU_RASR_A1"), (0xDAC, "MPU_RBAR_A2"),
            (0xDB0, "MPU_RASR_A2"), (0xDB4, "MPU_RBAR_A3"), (0xDB8, "MPU_RASR_A3"),
            (0xDF0, "DHCSR"), (0xDF4, "DCRSR"), (0xDF8, "DCRDR"), (DEMCR, "DEMCR"),
            (STIR, "STIR"), (FPCCR, "FPCCR", 0xC0000000), (0xF38, "FPCAR"),
            (0xF3C, "FPDSCR")))
        if board.icache_bytes or board.dcache_bytes:
            table += list(regs(
                (0xD78, "CLIDR", 0x09000003, 0), (0xD7C, "CTR", 0x8303C003, 0),
                (0xD80, "CCSIDR", 0, 0), (0xD84, "CSSELR", 0, 1),
                (0xF50, "ICIALLU"), (0xF58, "ICIMVAU"), (0xF5C, "DCIMVAC"), (0xF60, "DCISW"),
                (0xF64, "DCCMVAU"), (0xF68, "DCCMVAC"), (0xF6C, "DCCSW"), (0xF70, "DCCIMVAC"),
                (0xF74, "DCCISW"), (0xF78, "BPIALL")))
        return table

    def _clear_state(self) -> None:
        self.enabled: set[int] = set()  # IRQ numbers (0-based) enabled in ISER
        self.pend: set[int] = set()  # exception numbers pended by software or an event
        self.lines: set[int] = set()  # IRQ numbers whose peripheral request line is high
        self.active: list[int] = []  # active exceptions, oldest first
        self._systick_epoch = 0
        self._systick_last_wrap = 0  # wraps already seen by a COUNTFLAG read
        self._systick_fired = 0  # wraps already turned into a SysTick pend

    def reset(self) -> None:
        super().reset()
        self._clear_state()

    def trcena(self) -> bool:
        """DEMCR.TRCENA: the DWT counts only when it is set."""
        return bool(self.values[DEMCR] & (1 << 24))

    # -- priorities and pending state ------------------------------------------------------
    def priority(self, exc: int) -> int:
        """Configured priority of an exception (fixed negative ones for NMI/HardFault)."""
        if exc in FIXED_PRIORITY:
            return FIXED_PRIORITY[exc]
        if exc >= IRQ0:
            irq = exc - IRQ0
            return (self.values[IPR + (irq & ~3)] >> (8 * (irq & 3))) & 0xFF
        word = SHPR1 + ((exc - 4) & ~3)
        return (self.values[word] >> (8 * (exc & 3))) & 0xFF

    def group(self, priority: int) -> int:
        """The group (preemption) part of a priority under AIRCR.PRIGROUP."""
        if priority < 0:
            return priority
        prigroup = (self.values[AIRCR] >> 8) & 7
        return priority & ~((2 << prigroup) - 1) & 0xFF

    def is_pending(self, exc: int) -> bool:
        """Pended, or an IRQ whose level-sensitive line is high while it is not active."""
        if exc in self.pend:
            return True
        return exc >= IRQ0 and exc - IRQ0 in self.lines and exc not in self.active

    def is_enabled(self, exc: int) -> bool:
        if exc >= IRQ0:
            return exc - IRQ0 in self.enabled
        if exc in SHCSR_ENABLE:
            return bool(self.values[SHCSR] & SHCSR_ENABLE[exc])
        return True

    def pending(self) -> list[int]:
        """Every pending exception (enabled or not), lowest exception number first."""
        exc = set(self.pend) | {IRQ0 + i for i in self.lines}
        return sorted(e for e in exc if self.is_pending(e))

    def execution_priority(self, primask: int = 0, faultmask: int = 0, basepri: int = 0) -> int:
        """The running priority: active exceptions' group priorities and the mask registers
        (ARMv7-M B1.5.4); NO_PRIORITY in thread mode with nothing masked."""
        prio = NO_PRIORITY
        for exc in self.active:
            prio = min(prio, self.group(self.priority(exc)))
        if basepri & PRIO_MASK:
            prio = min(prio, self.group(basepri & PRIO_MASK))
        if primask & 1:
            prio = min(prio, 0)
        if faultmask & 1:
            prio = min(prio, -1)
        return prio

    def next_exception(self, execution_priority: int) -> int | None:
        """The pending, enabled exception that would preempt at ``execution_priority``."""
        best, key = None, None
        for exc in self.pending():
            if not self.is_enabled(exc):
                continue
            prio = self.priority(exc)
            if self.group(prio) >= execution_priority:
                continue
            k = (self.group(prio), prio, exc)
            if key is None or k < key:
                best, key = exc, k
        return best

    def has_enabled_pending(self) -> bool:
        """Some pending exception is enabled (it may still be masked by priority)."""
        return any(self.is_enabled(e) for e in self.pending())

    def pend_exception(self, exc: int) -> None:
        """Set an exception pending (SysTick, PendSV, an IRQ, or a synchronous one)."""
        self.pend.add(exc)

    def acknowledge(self, exc: int) -> None:
        """Exception entry: pending -> active."""
        self.pend.discard(exc)
        self.active.append(exc)

    def complete(self, exc: int) -> None:
        """Exception return: no longer active (a still-high line pends it again)."""
        if exc in self.active:
            self.active.remove(exc)

    def set_line(self, irq: int, level: bool) -> None:
        """A peripheral's request line for ``irq`` went high or low."""
        if level:
            self.lines.add(irq)
        else:
            self.lines.discard(irq)

    # -- SysTick ---------------------------------------------------------------------------
    def _systick_period(self) -> int:
        """Core cycles per SysTick period (0 while stopped)."""
        csr = self.values[SYST_CSR]
        if not csr & SYSTICK_ENABLE or self.values[SYST_RVR] == 0:
            return 0
        div = 1 if csr & SYSTICK_CLKSOURCE else SYSTICK_EXTERNAL_DIV
        return (self.values[SYST_RVR] + 1) * div

    def _systick_wraps(self) -> int:
        period = self._systick_period()
        return (self.host.cycles() - self._systick_epoch) // period if period else 0

    def systick_next_event(self) -> int | None:
        """The cycle at which SysTick next pends its exception; None if it cannot (stopped,
        TICKINT clear, or already pending: a further wrap changes nothing)."""
        period = self._systick_period()
        if not period or not self.values[SYST_CSR] & SYSTICK_TICKINT or SYSTICK in self.pend:
            return None
        return self._systick_epoch + (self._systick_fired + 1) * period

    def systick_update(self) -> bool:
        """Pend SysTick if it wrapped since the last call (TICKINT set); True if it did."""
        wraps = self._systick_wraps()
        if wraps > self._systick_fired:
            self._systick_fired = wraps
            if self.values[SYST_CSR] & SYSTICK_TICKINT:
                self.pend.add(SYSTICK)
                return True
        return False

    def _systick_restart(self) -> None:
        self._systick_epoch = self.host.cycles()
        self._systick_last_wrap = self._systick_fired = 0

    def _systick_value(self) -> int:
        period = self._systick_period()
        if not period:
            return self.values[SYST_CVR]
        div = period // (self.values[SYST_RVR] + 1)
        elapsed = (self.host.cycles() - self._systick_epoch) // div
        return self.values[SYST_RVR] - (elapsed % (self.values[SYST_RVR] + 1))

    def _systick_countflag(self) -> int:
        wraps = self._systick_wraps()
        flag = int(wraps > self._systick_last_wrap)
        self._systick_last_wrap = wraps  # COUNTFLAG clears on read
        return flag

    # -- registers -------------------------------------------------------------------------
    def read_reg(self, offset):
        if offset == 0xD80:  # CCSIDR for the cache CSSELR selects
            board = self.host.board
            if self.values[0xD84] & 1:  # instruction cache, 2-way
                return _ccsidr(board.icache_bytes, 2)
            return _ccsidr(board.dcache_bytes, 4)  # data cache, 4-way
        if offset == SYST_CVR:
            return self._systick_value()
        if offset == SYST_CSR:
            return self.values[SYST_CSR] | (self._systick_countflag() << 16)
        if ISER <= offset < ICPR + 0x20:  # ISER, ICER, ISPR, ICPR: 32 IRQs a word
            base = (offset & 0x1F) * 8
            if offset < ISPR:
                bits = {i - base for i in self.enabled if base <= i < base + 32}
            else:
                bits = {e - IRQ0 - base for e in self.pending()
                        if base <= e - IRQ0 < base + 32}
            return sum(1 << b for b in bits)
        if IABR <= offset < IABR + 0x20:
            base = (offset & 0x1F) * 8
            return sum(1 << (e - IRQ0 - base) for e in self.active
                       if base <= e - IRQ0 < base + 32)
        if offset == ICSR:
            return self._icsr()
        if offset == SHCSR:
            value = self.values[SHCSR]
            for exc, bit in SHCSR_ACTIVE.items():
                value |= bit if exc in self.active else 0
            return value
        if offset == AIRCR:
            return 0xFA050000 | (self.values[AIRCR] & 0x700)
        return super().read_reg(offset)

    def _icsr(self) -> int:
        value = self.active[-1] if self.active else 0  # VECTACTIVE
        if len(self.active) <= 1:
            value |= 1 << 11  # RETTOBASE
        pending = [e for e in self.pending() if self.is_enabled(e)]
        if pending:
            best = min(pending, key=lambda e: (self.group(self.priority(e)), self.priority(e), e))
            value |= (best & 0x1FF) << 12
        if any(e >= IRQ0 for e in pending):
            value |= 1 << 22  # ISRPENDING
        value |= ICSR_PENDSTSET if SYSTICK in self.pend else 0
        value |= ICSR_PENDSVSET if PENDSV in self.pend else 0
        value |= ICSR_NMIPENDSET if NMI in self.pend else 0
        return value

    def write_reg(self, offset, value):
        if offset in (CFSR, HFSR):  # write-one-to-clear
            self.values[offset] &= ~value
            return
        if offset == SYST_CVR:  # any write clears the counter and COUNTFLAG
            self._systick_restart()
            self.host.interrupts_changed()
            return
        if offset == SYST_CSR:
            was = self.values[SYST_CSR]
            if value & 1 and not was & 1:
                self._systick_restart()
            super().write_reg(offset, value)
            self.host.interrupts_changed()
            return
        if offset == SYST_RVR:
            super().write_reg(offset, value)
            self.host.interrupts_changed()
            return
        if ISER <= offset < ICPR + 0x20:
            base = (offset & 0x1F) * 8
            bits = {base + b for b in range(32) if value >> b & 1}
            if offset < ICER:
                self.enabled |= bits
            elif offset < ISPR:
                self.enabled -= bits
            elif offset < ICPR:
                self.pend |= {IRQ0 + i for i in bits}
            else:
                self.pend -= {IRQ0 + i for i in bits}
            self.host.interrupts_changed()
            return
        if IABR <= offset < IABR + 0x20:
            return  # read-only
        if offset == STIR:
            self.pend.add(IRQ0 + (value & 0x1FF))
            self.host.interrupts_changed()
            return
        if offset == ICSR:
            for setbit, clrbit, exc in ((ICSR_PENDSTSET, ICSR_PENDSTCLR, SYSTICK),
                                        (ICSR_PENDSVSET, ICSR_PENDSVCLR, PENDSV)):
                if value & setbit:
                    self.pend.add(exc)
                elif value & clrbit:
                    self.pend.discard(exc)
            if value & ICSR_NMIPENDSET:
                self.pend.add(NMI)
            self.host.interrupts_changed()
            return
        if offset == AIRCR:
            if value >> 16 == 0x05FA:  # VECTKEY; other writes are ignored
                self.values[AIRCR] = 0xFA050000 | (value & 0x700)
                self.host.interrupts_changed()
            return
        super().write_reg(offset, value)
        if IPR <= offset < IPR + 0xF0 or offset in (SHPR1, SHPR2, SHPR3, SHCSR, CCR):
            self.host.interrupts_changed()

    def record_fault(self, cfsr: int, hfsr: int, bfar: int | None, mmfar: int | None) -> None:
        """Latch fault status as the core would on fault entry."""
        self.values[CFSR] |= cfsr
        self.values[HFSR] |= hfsr
        if bfar is not None:
            self.values[BFAR] = bfar
        if mmfar is not None:
            self.values[MMFAR] = mmfar
