"""Exception entry and return on the emulated core (ARMv7-M ARM B1.5.6-B1.5.8).

The NVIC/SCB *state* (pending, active, priorities) is the system control space model's
(``peripherals/scs.py``); this module does what the core does with it: push the frame on the
current stack, switch to handler mode on the main stack with EXC_RETURN in LR, fetch the
vector; and, on a branch to an EXC_RETURN value (Unicorn reports it as QEMU's
EXCP_EXCEPTION_EXIT), either tail-chain into the next pending exception or pop the frame back.

What is modelled: the basic frame (r0-r3, r12, lr, return address, xPSR) with 8-byte
alignment (xPSR bit 9), MSP/PSP selection by CONTROL.SPSEL and EXC_RETURN, the extended
frame (s0-s15, FPSCR, a reserved word) when the core has an FPU and CONTROL.FPCA is set, IT
state cleared on entry, tail-chaining. Approximations, said plainly: FP lazy stacking
(FPCCR.LSPEN) reserves the extended frame and the registers are written at once instead of at
the handler's first FP instruction (the same memory once the handler uses the FPU; no
cycles charged for it while LSPEN is set, 18 words' worth when it is clear); late arrival and
the exact interrupt latency inside a block are not modelled (exceptions are taken at the next
basic-block boundary, a few instructions later than on silicon).

Costs in cycles (M4TRM §3.4 "Exception handling": 12 cycles entry, 10 exit with zero-wait
memory, 6 for a tail-chain; the Cortex-M7 TRM gives the same figures for its entry and exit).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import unicorn
from unicorn import arm_const as A

from atomsim.emulator.peripherals.scs import CPACR, FPCCR, SystemControlSpace

ENTRY_CYCLES, EXIT_CYCLES, TAIL_CHAIN_CYCLES = 12, 10, 6
FP_EAGER_STACK_CYCLES = 18  # LSPEN clear: s0-s15, FPSCR and the reserved word, one a cycle
XPSR_ALIGN = 1 << 9
CONTROL_SPSEL, CONTROL_FPCA = 1 << 1, 1 << 2
BASIC_FRAME, FP_EXTRA = 32, 72
_REGS = (A.UC_ARM_REG_R0, A.UC_ARM_REG_R1, A.UC_ARM_REG_R2, A.UC_ARM_REG_R3,
         A.UC_ARM_REG_R12, A.UC_ARM_REG_LR)
_MASKS = (A.UC_ARM_REG_PRIMASK, A.UC_ARM_REG_FAULTMASK, A.UC_ARM_REG_BASEPRI)
_ENTRY_READ = (A.UC_ARM_REG_XPSR, A.UC_ARM_REG_CONTROL, A.UC_ARM_REG_SP, *_REGS)
_SREGS = tuple(getattr(A, f"UC_ARM_REG_S{i}") for i in range(16))


@dataclass
class EntryFault(Exception):
    """Exception entry or return could not complete the way the core needs."""

    kind: str  # "stack" (stacking hit no memory), "vector" (no Thumb bit), "excreturn"
    address: int
    detail: str


class ExceptionUnit:
    """The core side of the exception model for one Unicorn engine."""

    def __init__(self, uc: unicorn.Uc, scs: SystemControlSpace, fpu: bool):
        self.uc, self.scs, self.fpu = uc, scs, fpu
        self.event = False  # the WFE event register: set by entry and return

    # -- priorities ------------------------------------------------------------------------
    def ipsr(self) -> int:
        return self.uc.reg_read(A.UC_ARM_REG_XPSR) & 0x1FF

    def execution_priority(self, ignore_primask: bool = False) -> int:
        primask, faultmask, basepri = self.uc.reg_read_batch(_MASKS)
        return self.scs.execution_priority(0 if ignore_primask else primask, faultmask,
                                           basepri)

    def can_take(self, exc: int) -> bool:
        """Would ``exc`` preempt what runs now (its group priority is higher)?"""
        return self.scs.group(self.scs.priority(exc)) < self.execution_priority()

    # -- entry -----------------------------------------------------------------------------
    def enter(self, exc: int, return_address: int) -> int:
        """Stack the context, enter handler mode for ``exc``; returns the cycles it costs."""
        uc = self.uc
        xpsr, control, sp, *saved = uc.reg_read_batch(_ENTRY_READ)
        thread = xpsr & 0x1FF == 0
        psp = thread and bool(control & CONTROL_SPSEL)
        extended = self.fpu and bool(control & CONTROL_FPCA)
        size = BASIC_FRAME + (FP_EXTRA if extended else 0)
        frame_sp = sp - size
        stacked_xpsr = xpsr & ~XPSR_ALIGN
        if frame_sp & 4:  # CCR.STKALIGN (always set on the M4/M7): 8-byte aligned frames
            frame_sp -= 4
            stacked_xpsr |= XPSR_ALIGN
        words = [*saved, return_address & ~1, stacked_xpsr]
        if extended:
            words += uc.reg_read_batch(_SREGS)
            words += [uc.reg_read(A.UC_ARM_REG_FPSCR), 0]
        try:
            uc.mem_write(frame_sp, struct.pack(f"<{len(words)}I", *words))
        except unicorn.UcError:
            raise EntryFault("stack", frame_sp, f"stacking for exception {exc} at "
                             f"0x{frame_sp:08X} (no memory there)") from None
        exc_return = 0xFFFFFFE1 | (0 if extended else 0x10) | (8 if thread else 0) | \
            (4 if psp else 0)
        # SP first, then main stack and FPCA clear (CONTROL written while still in thread
        # mode, so SP switches banks), then handler mode.
        uc.reg_write_batch(((A.UC_ARM_REG_SP, frame_sp),
                            (A.UC_ARM_REG_CONTROL, control & ~(CONTROL_SPSEL | CONTROL_FPCA)),
                            (A.UC_ARM_REG_XPSR, (xpsr & 0xF80F0000) | 0x01000000 | exc),
                            (A.UC_ARM_REG_LR, exc_return)))
        self.scs.acknowledge(exc)
        self.event = True
        cycles = ENTRY_CYCLES
        if extended:
            self.scs.values[0xF38] = frame_sp + BASIC_FRAME  # FPCAR
            if not self.scs.values[FPCCR] & (1 << 30):  # LSPEN clear: stacked at once
                cycles += FP_EAGER_STACK_CYCLES
        self._jump_to_vector(exc)
        return cycles

    def _jump_to_vector(self, exc: int) -> None:
        table = self.scs.values[0xD08] & ~0x7F
        vector = struct.unpack("<I", bytes(self.uc.mem_read(table + 4 * exc, 4)))[0]
        if not vector & 1:
            raise EntryFault("vector", vector, f"vector {exc} at 0x{table + 4 * exc:08X} is "
                             f"0x{vector:08X}, without the Thumb bit")
        self.uc.reg_write(A.UC_ARM_REG_PC, vector)

    # -- return ----------------------------------------------------------------------------
    def leave(self, exc_return: int, next_exception) -> int:
        """Exception return through ``exc_return``; ``next_exception()`` names a pending
        exception that may tail-chain (or None). Returns the cycles it costs."""
        uc = self.uc
        if exc_return >> 5 != 0x7FFFFFF or exc_return & 0xF not in (1, 9, 0xD) or \
                (not exc_return & 0x10 and not self.fpu):
            raise EntryFault("excreturn", exc_return,
                             f"branch to 0x{exc_return:08X}, not a valid EXC_RETURN")
        self.scs.complete(self.ipsr())
        self.event = True
        to_thread, psp, extended = bool(exc_return & 8), bool(exc_return & 4), \
            not exc_return & 0x10
        if to_thread:
            uc.reg_write(A.UC_ARM_REG_XPSR, uc.reg_read(A.UC_ARM_REG_XPSR) & ~0x1FF)
        nxt = next_exception(self._return_priority(to_thread))
        if nxt is not None:  # tail-chain: the frame stays, the new handler returns through it
            uc.reg_write(A.UC_ARM_REG_XPSR, (uc.reg_read(A.UC_ARM_REG_XPSR) & ~0x1FF) | nxt)
            uc.reg_write(A.UC_ARM_REG_LR, exc_return)
            self.scs.acknowledge(nxt)
            self._jump_to_vector(nxt)
            return TAIL_CHAIN_CYCLES
        control = uc.reg_read(A.UC_ARM_REG_CONTROL)
        if to_thread and psp:
            uc.reg_write(A.UC_ARM_REG_CONTROL, control | CONTROL_SPSEL)
        sp = uc.reg_read(A.UC_ARM_REG_SP)
        size = BASIC_FRAME + (FP_EXTRA if extended else 0)
        try:
            words = struct.unpack(f"<{size // 4}I", bytes(uc.mem_read(sp, size)))
        except unicorn.UcError:
            raise EntryFault("stack", sp, f"unstacking at 0x{sp:08X} (no memory there)") \
                from None
        uc.reg_write_batch(tuple(zip(_REGS, words[:6], strict=True)))
        pc, xpsr = words[6], words[7]
        if extended:
            uc.reg_write_batch(tuple(zip(_SREGS, words[8:24], strict=True)))
            uc.reg_write(A.UC_ARM_REG_FPSCR, words[24])
            uc.reg_write(A.UC_ARM_REG_CONTROL, uc.reg_read(A.UC_ARM_REG_CONTROL) |
                         CONTROL_FPCA)
        sp += size + (4 if xpsr & XPSR_ALIGN else 0)
        uc.reg_write_batch(((A.UC_ARM_REG_SP, sp), (A.UC_ARM_REG_XPSR, xpsr & ~XPSR_ALIGN),
                            (A.UC_ARM_REG_PC, pc | (1 if xpsr & 0x01000000 else 0))))
        return EXIT_CYCLES

    def _return_priority(self, to_thread: bool) -> int:
        return self.execution_priority()

    def fpu_enabled(self) -> bool:
        return self.fpu and (self.scs.values[CPACR] >> 20) & 0xF == 0xF
