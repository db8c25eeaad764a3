"""The embedded emulator: one Cortex-M board on Unicorn, built from the board's .repl file.

Memories become host buffers mapped at every address the platform registers them at;
peripherals and tags are routed through MMIO pages to their models; every other address is
unmapped, so an access there stops the run with a named error (never silent RAM). Counting
runs in native code (``counter.py``); Python is called only per distinct block, per MMIO
access and per exception (BKPT, semihosting, faults, interrupt entry and return).

Interrupts (``exceptions.py`` for entry/return, ``peripherals/scs.py`` for NVIC/SCB state) are
checked only where something can change them, never per instruction or block: the core runs
in slices up to the next scheduled event (SysTick's next wrap, via the counter's cycle
budget); an MMIO write that pends, enables or reschedules something ends the slice at the
next block boundary; a code hook sits after each CPSIE/MSR-to-a-mask instruction (found by
encoding at load) and acts only while an enabled exception waits for a mask to drop; exception
return arrives as QEMU's EXCP_EXCEPTION_EXIT. WFI/WFE end ``emu_start``; the machine then
skips emulated time to the next wake-up event in one step, or ends the run with
SleepingNoWakeup when nothing can wake the core. Faults stop the run at fault entry (like a
debugger's vector catch) with the CFSR/HFSR bits the core would latch.
"""

from __future__ import annotations

import ctypes
import re
import struct
from collections.abc import Callable

import unicorn
from unicorn import arm_const as A

from atomsim.boards import Board
from atomsim.core.errors import (
    AtomSimError,
    DoesNotFit,
    FirmwareError,
    FirmwareFailure,
    HardFault,
    MissingVectorTable,
    SleepingNoWakeup,
    StackOverflow,
    Timeout,
    UnmodelledAccess,
)
from atomsim.core.settings import RunSettings
from atomsim.emulator.counter import (
    STOP_BUDGET,
    STOP_CYCLES,
    STOP_DESCRIBE,
    STOP_HALT,
    STOP_NOMEM,
    BlockCounter,
    BlockRecord,
    TrafficCounter,
)
from atomsim.emulator.exceptions import EntryFault, ExceptionUnit
from atomsim.emulator.peripherals import MODELS, Tag, UnmodelledRegister, model_key
from atomsim.emulator.peripherals.scs import (
    BUSFAULT,
    CCR,
    CCR_DIV_0_TRP,
    CCR_UNALIGN_TRP,
    IRQ0,
    MEMMANAGE,
    SVCALL,
    SYSTICK,
    USAGEFAULT,
    SystemControlSpace,
)
from atomsim.emulator.sitecheck import SiteChecks
from atomsim.emulator.timing import (
    FOLLOW_BYTES,
    block_timing,
    decode,
    model_for,
    writes_pc,
)
from atomsim.target import elf as elfmod
from atomsim.target.backend import Marker, RunResult
from atomsim.target.firmware import STACK_GUARD_BYTES

PAGE = 0x400  # Unicorn's ARM page: every mapping is aligned to it
STACK_PAINT = 0xA5A5A5A5
DEFAULT_MAX_INSTRUCTIONS = RunSettings.max_instructions  # declared once, in core.settings
EMULATOR_VERSION = f"atomsim-unicorn-{unicorn.__version__}-1"

CFSR_IBUSERR, CFSR_PRECISERR, CFSR_BFARVALID = 1 << 8, 1 << 9, 1 << 15
CFSR_UNDEFINSTR, CFSR_INVSTATE, CFSR_NOCP = 1 << 16, 1 << 17, 1 << 19
CFSR_INVPC, CFSR_DIVBYZERO, CFSR_UNALIGNED, CFSR_STKERR = 1 << 18, 1 << 25, 1 << 24, 1 << 12
HFSR_FORCED = 1 << 30

# Unicorn's ARM exception numbers (QEMU's EXCP_*) seen through UC_HOOK_INTR.
EXCP_UDEF, EXCP_SWI, EXCP_BKPT, EXCP_INVSTATE, EXCP_NOCP = 1, 2, 7, 18, 17
EXCP_PREFETCH_ABORT, EXCP_EXCEPTION_EXIT = 3, 8
STOP_ALIGN = 6  # native: an alignment check at block entry failed (blockcount.c)
FLAG_ALIGN = 2
# Instructions that can unmask a pending exception (CPSIE i/f; MSR PRIMASK, BASEPRI,
# BASEPRI_MAX, FAULTMASK) and SDIV/UDIV, found by their Thumb encodings (see _scan_sites).
# Little-endian halfwords; lookaheads so overlapping candidates are all seen.
_CPSIE_RE = re.compile(rb"(?=[\x61-\x63]\xb6)")  # CPSIE f / i / if
_MSR_MASK_RE = re.compile(rb"(?=[\x80-\x8f]\xf3[\x10-\x13]\x88)", re.S)  # MSR SYSm 0x10-0x13
_DIV_RE = re.compile(rb"(?=[\x90-\x9f\xb0-\xbf]\xfb[\xf0-\xff][\xf0-\xff])", re.S)
WFI_T1, WFE_T1, WFI_T2, WFE_T2 = 0xBF30, 0xBF20, 0x8003, 0x8002
SEMIHOSTING_BKPT = 0xAB
MARKER_BEGIN, MARKER_END = 0x01, 0x02

_CPU_MODEL = {"cortex-m4": A.UC_CPU_ARM_CORTEX_M4, "cortex-m7": A.UC_CPU_ARM_CORTEX_M7}


class _Stop(Exception):
    """Internal: a hook decided the run must end with this error."""


class _Retranslate(Exception):
    """Internal: a block needs code hooks on some of its instructions before it first runs."""

    def __init__(self, addr: int, size: int, sites: list[tuple[int, int, str]]):
        super().__init__(f"block 0x{addr:08X}+{size} needs hooks")
        self.addr, self.size, self.sites = addr, size, sites


class Machine:
    """One emulated board. Create, ``load`` an ELF, ``run``; or step with ``run(stop=...)``."""

    def __init__(self, board: Board, traffic: bool = False):
        self.board = board
        self.platform = board.platform()
        self.timing = model_for(board.core)
        self.uc = unicorn.Uc(unicorn.UC_ARCH_ARM, unicorn.UC_MODE_THUMB | unicorn.UC_MODE_MCLASS)
        if board.core not in _CPU_MODEL:
            raise AtomSimError(f"no CPU model for core {board.core!r}")
        self.uc.ctl_set_cpu_model(_CPU_MODEL[board.core])
        self.memories: dict[str, tuple[int, ctypes.Array]] = {}
        self.peripherals: dict[str, object] = {}
        self._mmio_ranges: list[tuple[int, int, object]] = []
        self._uart: dict[str, bytearray] = {}
        self.uart_listeners: list[Callable[[str, int], None]] = []
        self._semihost = bytearray()
        self._pending: AtomSimError | None = None
        self._exit: tuple[int, str] | None = None
        self._bkpt_stop: int | None = None
        self.markers: list[Marker] = []
        self.firmware: elfmod.Firmware | None = None
        self.finished: RunResult | None = None
        self.initial_sp = 0
        self.idle_skip = True  # see _idle_poll; exact, so on by default
        self._timings: dict[tuple[int, int], tuple[int, int, int, int]] = {}
        self._pure: dict[tuple[int, int], bool] = {}
        self._last_poll: tuple | None = None
        self._guard: tuple[int, int] | None = None
        self._paint: tuple[int, int] | None = None
        self._unmapped: tuple[str, int, int, int | None] | None = None
        self._sleeping: str | None = None  # "WFI"/"WFE" while the core sleeps
        self._poked = False  # an MMIO write or an unmask asked to re-evaluate exceptions
        self._masked_pending = False  # an enabled exception waits for a mask to drop
        self._unmask_sites: list[int] = []
        self._div_sites: list[int] = []
        self._div_hooks: list[int] = []
        self._unmask_hooks: list[int] = []
        self._sites = SiteChecks(self.uc)  # native checks of single LDM/LDRD… sites
        self._unalign_hook: int | None = None  # the memory hook while CCR.UNALIGN_TRP is set
        self._hooked_image: str | None = None  # sha256 of the image the code hooks are for
        self._map_memories()
        self._map_peripherals()
        self.exc = ExceptionUnit(self.uc, self.scs, board.fpu)
        self.counter = BlockCounter(self.uc, self._describe)
        # Optional per-memory data traffic (native; costs Unicorn's slow memory path).
        self.traffic = TrafficCounter(self.uc, [
            (m.name, list(m.addresses), (m.size + PAGE - 1) // PAGE * PAGE)
            for m in self.platform.memories]) if traffic else None
        self.uc.hook_add(unicorn.UC_HOOK_MEM_UNMAPPED, self._on_unmapped)
        self.uc.hook_add(unicorn.UC_HOOK_INTR, self._on_interrupt)

    # -- construction -----------------------------------------------------------------------
    def _map_memories(self) -> None:
        for mem in self.platform.memories:
            size = (mem.size + PAGE - 1) // PAGE * PAGE
            buf = (ctypes.c_ubyte * size)()
            self.memories[mem.name] = (mem.addresses[0], buf)
            for addr in mem.addresses:
                self.uc.mem_map_ptr(addr, size, unicorn.UC_PROT_ALL, ctypes.addressof(buf))

    def _map_peripherals(self) -> None:
        for decl in self.platform.peripherals:
            key = model_key(decl)
            if key not in MODELS:
                raise AtomSimError(
                    f"{self.platform.path}: peripheral {decl.name!r} has type {key!r}, which the "
                    f"embedded emulator does not model; modelled: {', '.join(sorted(MODELS))}")
            model = MODELS[key](decl, self)
            self.peripherals[decl.name] = model
            self._mmio_ranges.append((model.base, model.base + model.span, model))
        for tag in self.platform.tags:
            t = Tag(tag.name, tag.start, tag.end, tag.value)
            self._mmio_ranges.append((t.base, t.base + t.span, t))
        self._mmio_ranges.sort(key=lambda r: r[0])
        pages = sorted({p for start, end, _ in self._mmio_ranges
                        for p in range(start // PAGE * PAGE, end, PAGE)})
        # Merge consecutive pages into one MMIO mapping each.
        runs: list[list[int]] = []
        for p in pages:
            if runs and runs[-1][1] == p:
                runs[-1][1] = p + PAGE
            else:
                runs.append([p, p + PAGE])
        for start, end in runs:
            self.uc.mmio_map(start, end - start, self._mmio_read, start, self._mmio_write, start)

    def _route(self, address: int):
        for start, end, model in self._mmio_ranges:
            if start <= address < end:
                return model
            if start > address:
                break
        return None

    # -- MMIO -------------------------------------------------------------------------------
    def _mmio_read(self, uc, offset, size, base):
        address = base + offset
        model = self._route(address)
        try:
            if model is None:
                raise UnmodelledRegister(address)
            value = model.read(address - model.base, size)
            if self.idle_skip and self.counter.active and model.idle_read(address - model.base):
                self._idle_poll(address, value)
            return value
        except UnmodelledRegister:
            self._fail(UnmodelledAccess(address, f"read ({_where(model, address)})", size,
                                        self.pc))
            return 0

    def _mmio_write(self, uc, offset, size, value, base):
        address = base + offset
        model = self._route(address)
        try:
            if model is None:
                raise UnmodelledRegister(address)
            model.write(address - model.base, size, value)
        except UnmodelledRegister:
            self._fail(UnmodelledAccess(address, f"write ({_where(model, address)})", size,
                                        self.pc, value))

    # -- idle polling loops ------------------------------------------------------------------
    def _idle_poll(self, address: int, value: int) -> None:
        """Skip ahead through a polling loop that cannot end until input arrives.

        Called for reads the peripheral says are stable (e.g. USART status with an empty RX
        queue). When the same register has read the same value twice in a row from a block
        that is a side-effect-free loop back to itself, every further iteration until the
        budget is identical: they are accounted in bulk (instructions, cycles, counts exactly
        as if executed) instead of one Python call each.
        """
        block = self.counter.current_block()
        st = self.counter.state
        key = (address, value, block, st.blocks_executed)
        last, self._last_poll = self._last_poll, key
        # Looping means: the only block executed since the previous read was this one again.
        if last is None or last[:3] != key[:3] or last[3] + 1 != key[3]:
            return
        if block is None or not self._pure_loop(*block):
            return
        n_insn, _, cost_taken, _ = self._timings[block]
        room = [(st.budget - st.instructions) // max(n_insn, 1)]
        if st.cycle_budget != 2**64 - 1:
            room.append((st.cycle_budget - st.cycles) // max(cost_taken, 1))
        k = min(room) - 2  # leave the last iterations to run for real: budgets end as usual
        if k > 0:
            self.counter.repeat_current(k)
            self._last_poll = None

    def _pure_loop(self, addr: int, size: int) -> bool:
        """A block that branches back to itself, stores nothing, carries no register from one
        iteration to the next and has no other side effect (cached per block)."""
        key = (addr, size)
        if key not in self._pure:
            self._pure[key] = _is_pure_loop(decode(bytes(self.uc.mem_read(addr, size)), addr),
                                            addr)
        return self._pure[key]

    def _fail(self, err: AtomSimError) -> None:
        if self._pending is None:
            self._pending = err
        self.uc.emu_stop()

    # -- hooks ------------------------------------------------------------------------------
    def _describe(self, addr: int, size: int) -> tuple[int, int, int, int]:
        code = bytes(self.uc.mem_read(addr, size))
        insns = decode(code, addr)
        if not self._fpu_enabled():
            for insn in insns:
                if insn.mnemonic.startswith("v"):  # every FPv4/FPv5 instruction is a V…
                    self._fault("coprocessor (FPU) instruction with CP10/CP11 disabled in "
                                f"CPACR: {insn.mnemonic} {insn.op_str} at 0x{insn.address:08X}",
                                insn.address, CFSR_NOCP)
                    break
        decoded = sum(i.size for i in insns)
        ahead = None
        if insns and decoded == size and not writes_pc(insns[-1]):
            # Cut by the emulator (page boundary, instruction limit), not by the code: cost
            # it in the straight-line run it falls into (see timing.in_context).
            end = addr + size
            room = next((hi + 1 - end for lo, hi, _ in self.uc.mem_regions() if lo <= end <= hi),
                        0)
            ahead = bytes(self.uc.mem_read(end, min(room, FOLLOW_BYTES))) if room > 0 else b""
        t = block_timing(self.timing, addr, code, insns, ahead)
        extra = 1 if decoded < size else 0  # an undecodable tail instruction (it will fault)
        key = (addr, code)
        if key not in _ALIGN_CACHE:
            _ALIGN_CACHE[key] = _alignment_checks(insns)
        align_flags, sites = _ALIGN_CACHE[key]
        new_sites = [site for site in sites if site[0] not in self._sites]
        if new_sites:  # per-execution checks must be compiled into the block: retranslate it
            raise _Retranslate(addr, size, new_sites)
        timing = (t.n_insn + extra, t.cost_fall + extra, t.cost_taken + extra,
                  t.flags | align_flags)
        self._timings[(addr, size)] = timing
        return timing

    def _fpu_enabled(self) -> bool:
        """CPACR grants CP10 and CP11 (the FPU is off at reset until software enables it)."""
        return self.board.fpu and (self.scs.values[0xD88] >> 20) & 0xF == 0xF

    def _on_unmapped(self, uc, access, address, size, value, user):
        kind = {unicorn.UC_MEM_READ_UNMAPPED: "read", unicorn.UC_MEM_WRITE_UNMAPPED: "write",
                unicorn.UC_MEM_FETCH_UNMAPPED: "fetch"}.get(access, "access")
        self._unmapped = (kind, address, size, value if kind == "write" else None)
        return False

    def _on_interrupt(self, uc, intno, user):
        pc = self.pc
        if intno == EXCP_BKPT:
            imm = self.read_u16(pc) & 0xFF
            if imm == SEMIHOSTING_BKPT:
                self._semihosting(pc)
                return
            if imm in (MARKER_BEGIN, MARKER_END) and self._is_atomsim_firmware():
                st = self.counter.state
                self.markers.append(Marker("begin" if imm == MARKER_BEGIN else "end", pc,
                                           st.instructions, st.cycles,
                                           uc.reg_read(A.UC_ARM_REG_SP),
                                           self.traffic.snapshot() if self.traffic else None))
                uc.reg_write(A.UC_ARM_REG_PC, (pc + 2) | 1)
                return
            self._bkpt_stop = imm
            uc.emu_stop()
            return
        if intno == EXCP_EXCEPTION_EXIT:
            self._exception_return(pc | 1)
            return
        if intno == EXCP_SWI:
            self._svc(pc)
            return
        if intno == EXCP_PREFETCH_ABORT:
            self._fetch_fault(pc)
            return
        if intno == EXCP_UDEF:
            self._fault("undefined instruction", pc, CFSR_UNDEFINSTR)
        elif intno == EXCP_INVSTATE:
            self._fault("invalid state (not Thumb)", pc, CFSR_INVSTATE)
        elif intno == EXCP_NOCP:
            self._fault("coprocessor access with the FPU disabled (CPACR)", pc, CFSR_NOCP)
        else:
            self._fault(f"exception {intno}", pc, 0)

    def _fault(self, reason: str, pc: int, cfsr: int, bfar: int | None = None) -> None:
        """A synchronous fault: the run stops at fault entry (as a debugger's vector catch
        would), with the status registers the core latches. HFSR.FORCED is set when the fault
        escalates to HardFault: its handler is disabled in SHCSR or cannot preempt."""
        self._fail(self._fault_error(reason, pc, cfsr, bfar))

    def _fault_error(self, reason: str, pc: int, cfsr: int, bfar: int | None = None,
                     forced: bool | None = None) -> HardFault:
        # CFSR is UFSR:BFSR:MMFSR; the configurable fault the bits belong to.
        kind = USAGEFAULT if cfsr & 0xFFFF0000 else BUSFAULT if cfsr & 0xFF00 else \
            MEMMANAGE if cfsr else 0
        if forced is None:
            forced = not kind or not self.scs.is_enabled(kind) or not self.exc.can_take(kind)
        self.scs.record_fault(cfsr, HFSR_FORCED if forced else 0, bfar, None)
        if not forced:
            name = {USAGEFAULT: "UsageFault", BUSFAULT: "BusFault", MEMMANAGE: "MemManage"}
            reason += f" (taken as {name[kind]}, not escalated)"
        return HardFault(reason, pc, self.scs.values[0xD28], self.scs.values[0xD2C], bfar)

    def _fetch_fault(self, pc: int) -> None:
        """QEMU's prefetch abort: the fetch address holds no executable memory."""
        where = self._describe_address(pc)
        self._fault(f"instruction fetch from 0x{pc:08X} ({where}): IBUSERR", pc, CFSR_IBUSERR)

    def _describe_address(self, address: int) -> str:
        model = self._route(address)
        if model is not None:
            return f"a peripheral address, {model.name}"
        if 0xE0000000 <= address:
            return "the system region, not executable"
        for mem in self.platform.memories:
            for base in mem.addresses:
                if base <= address < base + mem.size:
                    return f"{mem.name}"
        return "no memory there"

    # -- exceptions --------------------------------------------------------------------------
    def _svc(self, return_address: int) -> None:
        """SVC: synchronous; taken now if its priority allows, else it escalates to HardFault."""
        if not self.exc.can_take(SVCALL):
            self._fail(self._fault_error("SVC executed where SVCall cannot preempt "
                                         "(priority or masking)", return_address - 2, 0,
                                         forced=True))
            return
        self._close_block(return_address)
        self._enter(SVCALL, return_address)

    def _enter(self, exc: int, return_address: int) -> bool:
        try:
            cycles = self.exc.enter(exc, return_address)
        except EntryFault as fault:
            self._entry_fault(fault, return_address)
            return False
        self.counter.state.cycles += cycles
        return True

    def _exception_return(self, exc_return: int) -> None:
        try:
            cycles = self.exc.leave(exc_return, self._tail_chain_candidate)
        except EntryFault as fault:
            self._entry_fault(fault, exc_return)
            return
        self.counter.state.cycles += cycles
        self._masked_pending = self.scs.has_enabled_pending()

    def _tail_chain_candidate(self, priority: int) -> int | None:
        self.scs.systick_update()
        return self.scs.next_exception(priority)

    def _entry_fault(self, fault: EntryFault, pc: int) -> None:
        if fault.kind == "stack":
            if self._guard and self._guard[0] <= fault.address < self._guard[1] + 64:
                self._fail(StackOverflow(max(fault.address, self._guard[0]), self._guard[1], pc))
            else:
                self._fault(f"{fault.detail}: STKERR", pc, CFSR_STKERR)
        elif fault.kind == "vector":
            self._fault(f"{fault.detail}: INVSTATE on the handler's first fetch", pc,
                        CFSR_INVSTATE)
        else:
            self._fault(f"{fault.detail}: INVPC", pc, CFSR_INVPC)

    def _close_block(self, next_pc: int) -> None:
        """Account the block in flight as left towards ``next_pc`` (fall-through if that is
        where it ends), before the PC is redirected to a handler."""
        st = self.counter.state
        if not self.counter.active or st.prev < 0:
            return
        rec = ctypes.cast(st.table, ctypes.POINTER(BlockRecord))[st.prev]
        next_pc &= ~1
        if rec.addr < next_pc < rec.addr + rec.size:
            # Left in the middle (an exception taken right after an unmask instruction): the
            # block was counted whole on entry; take back the instructions not executed and
            # charge the executed prefix's cost.
            insns = decode(bytes(self.uc.mem_read(rec.addr, rec.size)), rec.addr)
            done = [i for i in insns if i.address < next_pc]
            st.instructions -= max(rec.d.n_insn - len(done), 0)
            st.cycles += self.timing.block(done).cost_fall if done else 0
        elif next_pc != rec.addr + rec.size:
            rec.taken += 1
            st.cycles += rec.d.cost_taken
        else:
            st.cycles += rec.d.cost_fall
        st.prev = -1

    def _deliver(self) -> bool:
        """Take the pending exception that can preempt now, if any (at a block boundary)."""
        self.scs.systick_update()
        exc = self.scs.next_exception(self.exc.execution_priority())
        if exc is None:
            self._masked_pending = self.scs.has_enabled_pending()
            return False
        self._sleeping = None
        pc = self.uc.reg_read(A.UC_ARM_REG_PC)
        self._close_block(pc)
        self._enter(exc, pc | 1)
        self._masked_pending = self.scs.has_enabled_pending()
        return True

    def _on_unmask(self, uc, address, size, user) -> None:
        """Code hook on the instruction after each CPSIE/MSR-to-a-mask site (it runs only when
        such an instruction has just executed): if an exception was waiting for the mask to
        drop, take it now."""
        if not self._masked_pending:
            return
        exc = self.scs.next_exception(self.exc.execution_priority())
        if exc is None:
            return
        # Taken before the next instruction, as the core does once the mask drops (a PC
        # written in a hook makes Unicorn leave the block and go on at the handler).
        self._close_block(address)
        self._enter(exc, address | 1)
        self._masked_pending = self.scs.has_enabled_pending()

    def _on_div(self, uc, address, size, user) -> None:
        """Code hook on SDIV/UDIV while CCR.DIV_0_TRP is set: a zero divisor is a UsageFault."""
        hw2 = self.read_u16(address + 2)
        if uc.reg_read(A.UC_ARM_REG_R0 + (hw2 & 0xF)) == 0:
            self._fault(f"division by zero with CCR.DIV_0_TRP set at 0x{address:08X}: "
                        "DIVBYZERO", address, CFSR_DIVBYZERO)

    def _on_access(self, uc, access, address, size, value, user) -> None:
        """CCR.UNALIGN_TRP: a halfword or word access off its natural alignment faults."""
        if size > 1 and address % size:
            pc = self.pc
            self._fault(f"unaligned {size}-byte access at 0x{address:08X} with CCR.UNALIGN_TRP "
                        "set: UNALIGNED", pc, CFSR_UNALIGNED)

    def _retranslate(self, request: _Retranslate) -> None:
        """Native hooks on an LDM/STM/LDRD/STRD whose base register is computed inside its
        block (or that is conditional), then the block is translated again with them."""
        for site, reg, what in request.sites:
            _, _, cc = what.partition(":")
            self._sites.add(site, reg, _CAPSTONE_TO_ARM_COND.get(int(cc), 14) if cc else 14)
        self.uc.ctl_remove_cache(request.addr, request.addr + request.size)

    def _site_fault(self) -> bool:
        hit = self._sites.take_fault()
        if hit is None:
            return False
        site, base = hit
        insn = decode(bytes(self.uc.mem_read(site, 4)), site)
        what = insn[0].mnemonic if insn else "access"
        self._fault(f"unaligned {what} at 0x{site:08X} (base 0x{base:08X}): UNALIGNED", site,
                    CFSR_UNALIGNED)
        return True

    def _alignment_fault(self, block: int) -> None:
        """The block counter stopped before ``block``: one of its word-aligned accesses has a
        base register that is not word-aligned. Name the first such instruction."""
        st = self.counter.state
        size = next((n for a, n in self._timings if a == block), 64)
        insns = decode(bytes(self.uc.mem_read(block, size)), block)
        for insn, reg, what in _word_aligned_accesses(insns):
            if insn.cc not in (15, 0):  # conditional: checked by its own hook instead
                continue
            value = self.uc.reg_read(reg)
            if value & 3:
                self._fault(f"unaligned {what} at 0x{insn.address:08X} (base 0x{value:08X}): "
                            "UNALIGNED", insn.address, CFSR_UNALIGNED)
                return
        st.stop_reason = 0
        self._fault(f"unaligned access in the block at 0x{block:08X}: UNALIGNED", block,
                    CFSR_UNALIGNED)

    def _scan_sites(self) -> None:
        """Addresses of unmask instructions and divisions in the loaded image, by encoding.
        A data word that happens to match costs at most a hook that never fires (hooks fire
        only where an instruction starts, and the bytes there are that instruction)."""
        self._unmask_sites, self._div_sites = [], []
        for seg in self.firmware.segments:
            for pattern, skip, out in ((_CPSIE_RE, 2, self._unmask_sites),
                                       (_MSR_MASK_RE, 4, self._unmask_sites),
                                       (_DIV_RE, 0, self._div_sites)):
                out.extend(seg.paddr + m.start() + skip for m in pattern.finditer(seg.data)
                           if m.start() % 2 == 0)
        # The hook sits on the instruction after the unmask one (CPSIE is 2 bytes, MSR 4).
        self._unmask_hooks = [self.uc.hook_add(unicorn.UC_HOOK_CODE, self._on_unmask,
                                               begin=site, end=site)
                              for site in self._unmask_sites]

    def _sync_traps(self) -> None:
        """Hooks on the divisions exist exactly while CCR.DIV_0_TRP is set; the memory hook
        that checks every access's alignment exactly while CCR.UNALIGN_TRP is set."""
        unalign = bool(self.scs.values[CCR] & CCR_UNALIGN_TRP)
        if unalign != (self._unalign_hook is not None):
            if unalign:  # opt-in by the firmware: a Python call per data access while set
                self._unalign_hook = self.uc.hook_add(
                    unicorn.UC_HOOK_MEM_READ | unicorn.UC_HOOK_MEM_WRITE, self._on_access)
            else:
                self.uc.hook_del(self._unalign_hook)
                self._unalign_hook = None
            self.uc.ctl_flush_tb()
        want = bool(self.scs.values[CCR] & CCR_DIV_0_TRP)
        if want == bool(self._div_hooks) or not self._div_sites:
            return
        if want:
            self._div_hooks = [self.uc.hook_add(unicorn.UC_HOOK_CODE, self._on_div,
                                                begin=a, end=a) for a in self._div_sites]
        else:
            for h in self._div_hooks:
                self.uc.hook_del(h)
            self._div_hooks = []
        self.uc.ctl_flush_tb()  # hooks are compiled into translated blocks

    def _after_wfi(self) -> str | None:
        """Unicorn returns from emu_start right after a WFI/WFE: which one, if it was that."""
        pc = self.pc
        try:
            if self.read_u16(pc - 2) in (WFI_T1, WFE_T1):
                return "WFI" if self.read_u16(pc - 2) == WFI_T1 else "WFE"
            if self.read_u16(pc - 4) == 0xF3AF and self.read_u16(pc - 2) in (WFI_T2, WFE_T2):
                return "WFI" if self.read_u16(pc - 2) == WFI_T2 else "WFE"
        except unicorn.UcError:
            return None
        return None

    def _sleep(self, limit: int | None) -> bool:
        """The core sleeps: skip emulated time to the next wake-up event in one step.

        Returns False when the run must pause at ``limit`` (still asleep). Wakes when a pending
        exception could preempt if PRIMASK were clear (WFI's rule, B1.5.19); WFE also wakes on
        its event register (set by exception entry and return).
        """
        st = self.counter.state
        if self._sleeping == "WFE" and self.exc.event:
            self.exc.event = False
            self._sleeping = None
            return True
        wake_priority = self.exc.execution_priority(ignore_primask=True)
        if self.scs.next_exception(wake_priority) is not None:
            self._sleeping = None
            return True
        group = self.scs.group
        tick = self.scs.systick_next_event()
        if tick is not None and group(self.scs.priority(SYSTICK)) >= wake_priority:
            tick = None  # it will pend but cannot wake this sleep
        if tick is None:
            waiting = self._input_wake_sources(wake_priority)
            if limit is None or not waiting:
                why = ("only input on " + ", ".join(waiting) + " could wake it, and this run "
                       "delivers none") if waiting else self._no_wake_reason()
                self._fail(SleepingNoWakeup(why, self.pc))
                return True
            st.cycles = max(st.cycles, limit)
            return False
        if limit is not None and limit < tick:
            st.cycles = max(st.cycles, limit)
            return False
        st.cycles = max(st.cycles, tick)
        self.scs.systick_update()
        return True

    def _spin_until_event(self, limit: int | None) -> bool:
        """A branch to itself in thread mode while SysTick can still interrupt it is an idle
        loop (``for (;;) {}`` with the work in handlers), not the end: account the iterations
        up to the next tick in bulk (instructions and cycles exactly as spinning would count
        them) and go on. Elsewhere (no tick coming, or a handler spinning, e.g. an unhandled
        IRQ in Default_Handler) it stays the end of the run."""
        st = self.counter.state
        if self.exc.ipsr() != 0:
            return False
        tick = self.scs.systick_next_event()
        if tick is None or self.scs.group(self.scs.priority(SYSTICK)) >= \
                self.exc.execution_priority():
            return False
        desc = next((d for (a, _), d in self._timings.items() if a == st.halt_addr), None)
        if desc is None or desc[2] <= 0:
            return False
        n_insn, cost = desc[0], desc[2]
        target = tick if limit is None else min(tick, limit)
        k = max(1, -(-(target - st.cycles) // cost))
        if st.instructions + k * n_insn >= st.budget:
            k = max(0, -(-(st.budget - st.instructions) // n_insn))
            st.instructions += k * n_insn
            st.cycles += k * cost
            st.stop_reason = STOP_BUDGET
            return False
        st.instructions += k * n_insn
        st.cycles += k * cost
        st.stop_reason = 0
        return True

    def _input_wake_sources(self, wake_priority: int) -> list[str]:
        out = []
        for name, model in self.peripherals.items():
            irq = getattr(model, "irq", None)
            if irq is None or not hasattr(model, "receive") or irq not in self.scs.enabled:
                continue
            cr1 = model.values.get(model.CR1, 0)
            if cr1 & (1 << 5) and self.scs.group(self.scs.priority(IRQ0 + irq)) < wake_priority:
                out.append(name)
        return out

    def _no_wake_reason(self) -> str:
        enabled = sorted(self.scs.enabled)
        systick = "SysTick is off" if not self.scs.values[0x010] & 1 else \
            "SysTick runs without TICKINT" if not self.scs.values[0x010] & 2 else \
            "SysTick cannot preempt the sleeping context"
        irqs = f"enabled IRQs {enabled} have no pending source" if enabled else \
            "no interrupt is enabled in the NVIC"
        return f"{irqs}; {systick}"

    def _semihosting(self, pc: int) -> None:
        op = self.uc.reg_read(A.UC_ARM_REG_R0)
        arg = self.uc.reg_read(A.UC_ARM_REG_R1)
        ret = 0
        if op == 0x18:  # SYS_EXIT: r1 is the reason
            self._exit = (0 if arg == 0x20026 else 1, f"semihosting SYS_EXIT reason 0x{arg:X}")
        elif op == 0x20:  # SYS_EXIT_EXTENDED: r1 -> {reason, code}
            reason, code = struct.unpack("<II", bytes(self.uc.mem_read(arg, 8)))
            code = code - (1 << 32) if code & 0x80000000 else code
            if reason != 0x20026 and code == 0:
                code = 1
            self._exit = (code, "semihosting SYS_EXIT_EXTENDED")
        elif op == 0x03:  # SYS_WRITEC
            self._semihost += bytes(self.uc.mem_read(arg, 1))
        elif op == 0x04:  # SYS_WRITE0
            self._semihost += self.read_cstring(arg)
        elif op == 0x05:  # SYS_WRITE {handle, buffer, length}
            _, buf, n = struct.unpack("<III", bytes(self.uc.mem_read(arg, 12)))
            self._semihost += bytes(self.uc.mem_read(buf, n))
        else:
            ret = 0xFFFFFFFF
        if self._exit is not None:
            self.uc.emu_stop()
            return
        self.uc.reg_write(A.UC_ARM_REG_R0, ret)
        self.uc.reg_write(A.UC_ARM_REG_PC, (pc + 2) | 1)

    # -- loading ----------------------------------------------------------------------------
    @property
    def scs(self) -> SystemControlSpace:
        """The system control space model (NVIC, SCB, SysTick)."""
        scs = self.__dict__.get("_scs")
        if scs is not None:
            return scs
        for model in self.peripherals.values():
            if isinstance(model, SystemControlSpace):
                self._scs = model
                return model
        raise AtomSimError(f"{self.platform.path} declares no IRQControllers.NVIC")

    def scs_trcena(self) -> bool:
        """DEMCR.TRCENA (the DWT reads it)."""
        return self.scs.trcena()

    def irq_line(self, irq: int, level: bool) -> None:
        """PeripheralHost: a peripheral's interrupt request line changed."""
        self.scs.set_line(irq, level)
        if level:
            self.interrupts_changed()

    def interrupts_changed(self) -> None:
        """PeripheralHost: re-evaluate exceptions at the next block boundary (not mid-block:
        stopping Unicorn inside an MMIO access would re-execute the access on restart)."""
        self._poked = True
        if self.counter.active:
            self.counter.state.cycle_budget = 0

    def load(self, path) -> elfmod.Firmware:
        """Load an ELF's segments at their load addresses, paint the stack, reset the core."""
        fw = elfmod.load(path)
        self._timings.clear()
        self._pure.clear()
        for seg in fw.segments:
            self._check_fits(seg, fw)
            self.uc.mem_write(seg.paddr, seg.data)
        self.firmware = fw
        self.reset()
        return fw

    def _check_fits(self, seg: elfmod.Segment, fw: elfmod.Firmware) -> None:
        """Where the segment is loaded, and where it lives at run time (.data/.bss), must both
        lie inside one memory of the board."""
        self._check_range(seg.paddr, max(len(seg.data), 1), fw)
        if seg.vaddr != seg.paddr or seg.memsz > len(seg.data):
            self._check_range(seg.vaddr, max(seg.memsz, 1), fw)

    def _check_range(self, start: int, size: int, fw: elfmod.Firmware) -> None:
        """The range must lie in one run of address-contiguous memories: the F746's DTCM, SRAM1
        and SRAM2 (0x20000000-0x2004FFFF) are one 320 KB block to software, as ST's default
        linker script has it, and the H743's two flash banks are one 2 MB flash."""
        end = start + size
        for lo, hi, names in self._memory_runs():
            if lo <= start < hi:
                if end > hi:
                    raise DoesNotFit(f"{'+'.join(names)} at 0x{lo:08X}", end - lo, hi - lo,
                                     what=f"{fw.path.name}")
                return
        raise DoesNotFit(f"memory at 0x{start:08X}", size, 0,
                         what=f"{fw.path.name} (no memory of {self.board.id} is there)")

    def _memory_runs(self) -> list[tuple[int, int, list[str]]]:
        """Every mapping of every memory, merged where one ends exactly where the next begins."""
        spans = sorted((base, base + mem.size, mem.name) for mem in self.platform.memories
                       for base in mem.addresses)
        runs: list[tuple[int, int, list[str]]] = []
        for lo, hi, name in spans:
            if runs and runs[-1][1] == lo:
                runs[-1] = (runs[-1][0], hi, [*runs[-1][2], name])
            else:
                runs.append((lo, hi, [name]))
        return runs

    def vector_table(self) -> int:
        """Address of the vector table: a vector-table symbol, else the image's lowest flash
        address (where the boot alias makes the core look)."""
        return self._find_vector_table()[0]

    def _find_vector_table(self) -> tuple[int, bool]:
        fw = self.firmware
        for name in ("vector_table", "g_pfnVectors", "__isr_vector", "__Vectors",
                     "_vector_table"):
            addr = fw.symbol(name)
            if addr is not None:
                return addr, True
        flash = [s.paddr for s in fw.segments
                 if self.board.flash.address <= s.paddr < self.board.flash.end]
        return (min(flash) if flash else min(s.paddr for s in fw.segments)), False

    def _memory_of(self, address: int, end_inclusive: bool = False) -> str | None:
        for mem in self.platform.memories:
            for base in mem.addresses:
                if base <= address < base + mem.size or (end_inclusive and
                                                          address == base + mem.size):
                    return mem.name
        return None

    def _check_vector_table(self, vtor: int, named: bool, sp: int, entry: int) -> None:
        """A usable table holds an initial SP in (or at the top of) a memory and a reset
        vector inside one; anything else is named, never run."""
        if named:  # the firmware says where its table is: a bad entry faults when it runs
            return
        where = f"0x{vtor:08X} (no vector-table symbol in the ELF; the image's lowest flash " \
            "address)"
        if self._memory_of(entry & ~1) is None:
            raise MissingVectorTable(
                f"{self.firmware.path.name}: no vector table found: the reset vector at "
                f"{where} is 0x{entry:08X}, which points at no memory of {self.board.id}")
        if self._memory_of(sp, end_inclusive=True) is None:
            raise MissingVectorTable(
                f"{self.firmware.path.name}: no vector table found: the initial SP at "
                f"{where} is 0x{sp:08X}, which points at no memory of {self.board.id}")

    def reset(self) -> None:
        """Core reset: SP and PC from the vector table; peripherals and counters reset."""
        if self.firmware is None:
            raise AtomSimError("no firmware loaded")
        for model in self.peripherals.values():
            model.reset()
        for buf in self._uart.values():
            buf.clear()
        self._semihost.clear()
        self.markers.clear()
        self._pending = self._exit = self._bkpt_stop = self._unmapped = None
        self._last_poll = None
        self.finished = None
        self.counter.close()
        self.counter = BlockCounter(self.uc, self._describe)
        if self.traffic is not None:
            self.traffic.clear()
        vtor, named = self._find_vector_table()
        try:
            sp, entry = struct.unpack("<II", bytes(self.uc.mem_read(vtor, 8)))
        except unicorn.UcError:
            raise MissingVectorTable(f"{self.firmware.path.name}: no vector table found at "
                                     f"0x{vtor:08X} (no memory there)") from None
        self._check_vector_table(vtor, named, sp, entry)
        self.scs.values[0xD08] = vtor
        self._setup_stack(sp)
        self.initial_sp = sp
        # Core reset state: thread mode, main stack, nothing masked.
        self.uc.reg_write(A.UC_ARM_REG_XPSR, 0x01000000)
        self.uc.reg_write(A.UC_ARM_REG_CONTROL, 0)
        for reg in (A.UC_ARM_REG_PRIMASK, A.UC_ARM_REG_FAULTMASK, A.UC_ARM_REG_BASEPRI):
            self.uc.reg_write(reg, 0)
        self.uc.reg_write(A.UC_ARM_REG_SP, sp)
        self.uc.reg_write(A.UC_ARM_REG_MSP, sp)
        self.uc.reg_write(A.UC_ARM_REG_LR, 0xFFFFFFFF)
        self._sleeping, self._poked, self._masked_pending = None, False, False
        self.exc.event = False
        if self._hooked_image != self.firmware.sha256:
            # Code hooks belong to an image: replaced (and translations dropped, since hooks
            # are compiled into them) only when another image is loaded, not on every reset.
            for h in self._unmask_hooks + self._div_hooks + \
                    ([self._unalign_hook] if self._unalign_hook is not None else []):
                self.uc.hook_del(h)
            self._sites.clear()
            self._unmask_hooks, self._div_hooks = [], []
            self._unalign_hook = None
            self._scan_sites()
            self.uc.ctl_flush_tb()
            self._hooked_image = self.firmware.sha256
        self.uc.reg_write(A.UC_ARM_REG_PC, entry | 1)
        self._pc = entry | 1
        if not entry & 1:  # the core would take INVSTATE on its first fetch
            self._pending = self._fault_error(
                f"reset vector 0x{entry:08X} has no Thumb bit (bit 0): INVSTATE on the first "
                "instruction fetch", entry & ~1, CFSR_INVSTATE, forced=True)

    def _setup_stack(self, sp: int) -> None:
        fw = self.firmware
        if self._guard is not None:  # re-map the previous guard before choosing a new one
            self._remap(*self._guard)
            self._guard = None
        guard_lo, guard_hi = fw.symbol("__stack_guard_start"), fw.symbol("__stack_guard_end")
        if guard_lo is not None and guard_hi is not None and guard_hi - guard_lo == \
                STACK_GUARD_BYTES and guard_lo % PAGE == 0:
            self.uc.mem_unmap(guard_lo, guard_hi - guard_lo)
            self._guard = (guard_lo, guard_hi)
            bottom = guard_hi
        else:  # foreign firmware: paint from the end of its static data in the SP's memory
            bottom = sp
            for mem in self.platform.memories:
                for base in mem.addresses:
                    if base < sp <= base + mem.size:
                        bottom = base
                        for seg in fw.segments:
                            for a in (seg.paddr, seg.vaddr):
                                if base <= a < sp:
                                    bottom = max(bottom, a + seg.memsz)
                        for name in ("_end", "end", "__bss_end__", "_ebss"):
                            a = fw.symbol(name)
                            if a is not None and base <= a < sp:
                                bottom = max(bottom, a)
        bottom = (bottom + 3) & ~3
        if sp > bottom:
            self.uc.mem_write(bottom, struct.pack("<I", STACK_PAINT) * ((sp - bottom) // 4))
        self._paint = (bottom, sp)

    def _remap(self, lo: int, hi: int) -> None:
        for mem in self.platform.memories:
            for base in mem.addresses:
                if base <= lo < base + mem.size:
                    _, buf = self.memories[mem.name]
                    self.uc.mem_map_ptr(lo, hi - lo, unicorn.UC_PROT_ALL,
                                        ctypes.addressof(buf) + (lo - base))
                    return

    # -- running ----------------------------------------------------------------------------
    @property
    def pc(self) -> int:
        """Current program counter (without the Thumb bit)."""
        return self.uc.reg_read(A.UC_ARM_REG_PC) & ~1

    def cycles(self) -> int:
        """Modelled cycles so far (blocks completed); 0 with the counter detached."""
        return self.counter.state.cycles if self.counter.active else 0

    def run(self, max_instructions: int = DEFAULT_MAX_INSTRUCTIONS,
            max_cycles: int | None = None) -> RunResult:
        """Run until the firmware ends, faults, or the instruction budget runs out.

        With ``max_cycles`` the run pauses after that many modelled cycles of emulated time
        (status 'running'); calling ``run`` again continues exactly where it paused. Once the
        firmware has ended, further calls return the same final result.
        """
        if self.firmware is None:
            raise AtomSimError("no firmware loaded")
        if self.finished is not None:
            return self.finished
        st = self.counter.state
        st.budget = min(st.instructions + max(max_instructions, 0), 2**64 - 1)
        limit = st.cycles + max(max_cycles, 0) if max_cycles is not None else None
        uc_error = None
        while self._pending is None:
            self._poked = False
            self._sync_traps()
            self._deliver()
            if self._pending is not None:
                break
            if self._sleeping:
                if not self._sleep(limit):
                    return self._result(None, max_instructions, paused=True)
                continue
            if limit is not None and st.cycles >= limit:
                return self._result(None, max_instructions, paused=True)
            if not self.uc.reg_read(A.UC_ARM_REG_XPSR) & 0x01000000:  # EPSR.T clear
                self._fault(f"execution with EPSR.T clear at 0x{self.pc:08X} (an ARM-state "
                            "address): INVSTATE", self.pc, CFSR_INVSTATE)
                break
            tick = self.scs.systick_next_event()
            stops = [x for x in (limit, tick) if x is not None]
            st.cycle_budget = min(stops) if stops else 2**64 - 1
            st.stop_reason = 0
            try:
                self.uc.emu_start(self.uc.reg_read(A.UC_ARM_REG_PC) | 1, 0xFFFFFFFF)
            except unicorn.UcError as exc:
                uc_error = exc
                break
            if self._site_fault() or self._pending is not None or self._exit is not None or \
                    self._bkpt_stop is not None:
                break
            if st.stop_reason == STOP_CYCLES or self._poked:
                continue  # an event, a pause, or a poke: the top of the loop sorts it out
            if st.stop_reason == STOP_DESCRIBE and \
                    isinstance(self.counter.describe_error, _Retranslate):
                self._retranslate(self.counter.describe_error)
                self.counter.describe_error = None
                continue
            if st.stop_reason == STOP_ALIGN:
                self._alignment_fault(st.halt_addr)
                break
            if st.stop_reason == STOP_HALT and self._spin_until_event(limit):
                continue
            if st.stop_reason != 0:
                break
            # Returned with no reason: after a WFI/WFE, or a resumed marker/semihosting call.
            self._sleeping = self._after_wfi()
            if self._sleeping:
                self._close_block(self.pc)
        self.counter.finish()
        self.finished = self._result(uc_error, max_instructions)
        return self.finished

    def _result(self, uc_error, budget: int, paused: bool = False) -> RunResult:
        st = self.counter.state
        pc = self.pc
        err: AtomSimError | None = self._pending
        exit_code, end = None, ""
        if paused:
            end = "paused"
        elif err is None and uc_error is not None:
            err = self._classify(uc_error, pc)
        if err is None and not paused:
            if self._exit is not None:
                exit_code, end = self._exit
                if exit_code != 0:
                    err = FirmwareFailure(exit_code, self._fail_text(), pc)
            elif st.stop_reason == STOP_HALT:
                end = f"branch to self at 0x{st.halt_addr:08X}"
            elif self._bkpt_stop is not None:
                end = f"BKPT 0x{self._bkpt_stop:02X} at 0x{pc:08X}"
            elif st.stop_reason == STOP_BUDGET:
                err = Timeout(budget, pc)
            elif st.stop_reason == STOP_DESCRIBE:
                err = AtomSimError(f"timing model failed on the block at 0x{pc:08X}: "
                                   f"{self.counter.describe_error!r}")
            elif st.stop_reason == STOP_NOMEM:
                err = AtomSimError("out of memory for the block table")
        fw = self.firmware
        return RunResult(
            board=self.board.id,
            status="running" if paused else "ok" if err is None else err.status,
            uart=self.uart_text(self.board.console), instructions=st.instructions,
            cycles=st.cycles, clock_hz=self.board.clock_hz, flash_bytes=fw.sizes.flash,
            static_ram_bytes=fw.sizes.static_ram, stack_bytes=self.stack_high_water(),
            heap_bytes=self._heap_peak(), exit_code=exit_code, end_reason=end or (
                err.status if err else ""), error=err, markers=list(self.markers),
            semihosting_output=self._semihost.decode(errors="replace"),
            firmware_sha256=fw.sha256, timing_model=self.timing.version,
            backend=EMULATOR_VERSION,
            traffic=self.traffic.snapshot() if self.traffic else None)

    def _fail_text(self) -> str:
        for line in reversed(self.uart_text(self.board.console).splitlines()):
            if line.startswith("@atomsim fail="):
                return line.split("=", 1)[1]
        return "no failure message on the console"

    def _classify(self, exc: unicorn.UcError, pc: int) -> AtomSimError:
        if exc.errno in (unicorn.UC_ERR_READ_UNMAPPED, unicorn.UC_ERR_WRITE_UNMAPPED,
                         unicorn.UC_ERR_FETCH_UNMAPPED) and self._unmapped is not None:
            kind, address, size, value = self._unmapped
            if self._guard and self._guard[0] <= address < self._guard[1]:
                return StackOverflow(address, self._guard[1], pc)
            if address >= 0xE0000000 or 0x40000000 <= address < 0x60000000:
                return UnmodelledAccess(address, kind, size, pc, value)
            # Where memory would be, the bus answers with an error: a precise bus fault.
            if kind == "fetch":
                self.scs.record_fault(CFSR_IBUSERR, HFSR_FORCED, None, None)
                return HardFault(f"instruction fetch from 0x{address:08X} (no memory there)",
                                 address, self.scs.values[0xD28], self.scs.values[0xD2C])
            self.scs.record_fault(CFSR_PRECISERR | CFSR_BFARVALID, HFSR_FORCED, address, None)
            return HardFault(f"bus error on {kind} at 0x{address:08X} (no memory there)", pc,
                             self.scs.values[0xD28], self.scs.values[0xD2C], bfar=address)
        if exc.errno == unicorn.UC_ERR_INSN_INVALID and \
                not self.uc.reg_read(A.UC_ARM_REG_XPSR) & 0x01000000:
            self.scs.record_fault(CFSR_INVSTATE, HFSR_FORCED, None, None)
            return HardFault(f"branch to 0x{pc:08X} without the Thumb bit (an ARM-state "
                             "address): INVSTATE", pc, self.scs.values[0xD28],
                             self.scs.values[0xD2C])
        if exc.errno == unicorn.UC_ERR_INSN_INVALID:
            self.scs.record_fault(CFSR_UNDEFINSTR, HFSR_FORCED, None, None)
            return HardFault("undefined instruction", pc, self.scs.values[0xD28],
                             self.scs.values[0xD2C])
        self.scs.record_fault(0, HFSR_FORCED, None, None)
        return HardFault(f"emulator stopped: {exc}", pc, self.scs.values[0xD28],
                         self.scs.values[0xD2C])

    # -- measurements -----------------------------------------------------------------------
    def stack_high_water(self) -> int:
        """Bytes of stack ever used: from the initial SP down to the lowest changed word."""
        if self._paint is None:
            return 0
        bottom, top = self._paint
        if top <= bottom:
            return 0
        data = bytes(self.uc.mem_read(bottom, top - bottom))
        paint = struct.pack("<I", STACK_PAINT)
        for off in range(0, len(data), 4):
            if data[off:off + 4] != paint:
                return top - (bottom + off)
        return 0

    def _heap_peak(self) -> int:
        addr = self.firmware.symbol("atomsim_heap_peak")
        return self.read_u32(addr) if addr is not None else 0

    def _is_atomsim_firmware(self) -> bool:
        return self.firmware is not None and self.firmware.symbol("atomsim_exit") is not None

    # -- UART and memory access for tools ---------------------------------------------------
    def uart_output(self, name: str, byte: int) -> None:
        """Called by USART models for every transmitted byte."""
        self._uart.setdefault(name, bytearray()).append(byte)
        for listener in self.uart_listeners:
            listener(name, byte)

    def uart_text(self, name: str) -> str:
        """Everything a USART has transmitted since reset."""
        return self._uart.get(name, bytearray()).decode(errors="replace")

    def uarts(self) -> list[str]:
        """Names of the board's UARTs (peripherals that can receive)."""
        return [n for n, p in self.peripherals.items() if hasattr(p, "receive")]

    def uart_write(self, name: str, data: bytes) -> None:
        """Send bytes to a USART's RX line."""
        model = self.peripherals.get(name)
        if model is None or not hasattr(model, "receive"):
            raise AtomSimError(f"no UART named {name!r} on {self.board.id}")
        model.receive(data)

    def write_memory(self, address: int, data: bytes) -> None:
        """Write target memory (a bad address is an UnmodelledAccess, not a Unicorn error)."""
        try:
            self.uc.mem_write(address, bytes(data))
        except unicorn.UcError:
            raise UnmodelledAccess(address, "write", len(data), self.pc) from None

    def read_memory(self, address: int, size: int) -> bytes:
        """Read target memory."""
        try:
            return bytes(self.uc.mem_read(address, size))
        except unicorn.UcError:
            raise UnmodelledAccess(address, "read", size, self.pc) from None

    def read_u32(self, address: int) -> int:
        """Bus read of a word: memory or a peripheral register."""
        model = self._route(address)
        if model is not None:
            try:
                return model.read(address - model.base, 4)
            except UnmodelledRegister:
                raise UnmodelledAccess(address, "read", 4, self.pc) from None
        try:
            return struct.unpack("<I", bytes(self.uc.mem_read(address, 4)))[0]
        except unicorn.UcError:
            raise UnmodelledAccess(address, "read", 4, self.pc) from None

    def write_u32(self, address: int, value: int) -> None:
        """Bus write of a word: memory or a peripheral register."""
        model = self._route(address)
        if model is not None:
            try:
                model.write(address - model.base, 4, value & 0xFFFFFFFF)
                return
            except UnmodelledRegister:
                raise UnmodelledAccess(address, "write", 4, self.pc, value) from None
        try:
            self.uc.mem_write(address, struct.pack("<I", value & 0xFFFFFFFF))
        except unicorn.UcError:
            raise UnmodelledAccess(address, "write", 4, self.pc, value) from None

    def read_u16(self, address: int) -> int:
        """Read a halfword of memory."""
        return struct.unpack("<H", bytes(self.uc.mem_read(address, 2)))[0]

    def read_cstring(self, address: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string from memory."""
        out = bytearray()
        while len(out) < limit:
            b = self.uc.mem_read(address + len(out), 1)[0]
            if b == 0:
                break
            out.append(b)
        return bytes(out)

    def close(self) -> None:
        """Release the native counters and checks."""
        self.counter.close()
        self._sites.clear()
        if self.traffic is not None:
            self.traffic.close()


_SIDE_EFFECTS = ("st", "push", "vst", "vpush", "bkpt", "svc", "bl", "blx", "cps", "msr", "wf",
                 "sev", "dmb", "dsb", "isb", "clrex")


def _is_pure_loop(insns, start: int) -> bool:
    """See Machine._pure_loop."""
    from capstone import CS_GRP_JUMP
    from capstone import arm as csarm

    if not insns:
        return False
    last = insns[-1]
    if not (last.group(CS_GRP_JUMP) and last.operands
            and last.operands[-1].type == csarm.ARM_OP_IMM and last.operands[-1].imm == start):
        return False
    written: set[int] = set()
    live_in: set[int] = set()
    for insn in insns:
        if insn.mnemonic.startswith(_SIDE_EFFECTS) or insn.writeback:
            return False
        reads, writes = insn.regs_access()
        live_in |= set(reads) - written
        written |= set(writes)
    live_in.discard(csarm.ARM_REG_PC)
    written.discard(csarm.ARM_REG_PC)
    return not live_in & written


# Alignment faults Unicorn does not raise (ARMv7-M A3.2.1): LDM/STM (and PUSH/POP), LDRD/STRD,
# LDREX/STREX and the VFP multiple/single loads and stores always need word-aligned addresses.
# What we chose, and why: no hook per memory access for all code. At block-description time
# the decoded block names each such access's base register; when that register is unchanged
# from block entry to the access (or moved by multiples of 4: writeback, add/sub #4k), its
# alignment at block entry decides, and the native block counter checks it before the block
# runs (up to three registers a block, FLAG_ALIGN). Bases computed inside the block get a code
# hook on that one instruction. SP-based (SP is word-aligned by construction) and PC-relative
# accesses need no check.
_WORD_ALIGNED = ("ldm", "stm", "ldrd", "strd", "ldrex", "strex", "vldm", "vstm", "vldr",
                 "vstr")


def _word_aligned_accesses(insns):
    """(insn, unicorn base register, mnemonic) of every access that needs word alignment."""
    from capstone import arm as csarm

    for insn in insns:
        mnem = insn.mnemonic.split(".")[0]
        if not mnem.startswith(_WORD_ALIGNED) or mnem.startswith(("ldrexb", "ldrexh", "strexb",
                                                                  "strexh")):
            continue
        if mnem.startswith(("ldm", "stm", "vldm", "vstm")):
            base = insn.operands[0].reg if insn.operands else None
        else:
            mem = [op for op in insn.operands if op.type == csarm.ARM_OP_MEM]
            base = mem[0].mem.base if mem else None
        if base is None or base in (csarm.ARM_REG_SP, csarm.ARM_REG_PC):
            continue
        reg = _UC_REG.get(base)
        if reg is not None:
            yield insn, reg, mnem


def _alignment_checks(insns) -> tuple[int, list[tuple[int, int, str]]]:
    """Block flags naming the base registers to check at block entry, and the sites that need
    a check of their own (see the comment above)."""
    from capstone import arm as csarm

    changed: set[int] = set()  # unicorn registers written by something other than a 4k move
    entry: list[int] = []
    sites: list[tuple[int, int, str]] = []
    accesses = {insn.address: (reg, mnem) for insn, reg, mnem in _word_aligned_accesses(insns)}
    if not accesses:
        return 0, sites
    last = max(accesses)
    for insn in insns:
        if insn.address > last:
            break
        if insn.address in accesses:
            reg, mnem = accesses[insn.address]
            conditional = insn.cc not in (csarm.ARM_CC_AL, csarm.ARM_CC_INVALID)
            if reg in changed or (reg not in entry and len(entry) == 3) or \
                    reg == A.UC_ARM_REG_LR or conditional:  # (an IT block may skip it)
                sites.append((insn.address, reg, f"{mnem}:{insn.cc}" if conditional else mnem))
            elif reg not in entry:
                entry.append(reg)
        _, writes = insn.regs_access()
        mnem = insn.mnemonic.split(".")[0]
        for w in writes:
            reg = _UC_REG.get(w)
            if reg is None:
                continue
            if insn.address in accesses and reg == accesses[insn.address][0] and \
                    insn.writeback and not _loads_register(insn, w):
                continue  # writeback moves the base by a multiple of 4
            if mnem in ("add", "adds", "sub", "subs", "addw", "subw") and \
                    len(insn.operands) >= 2 and insn.operands[-1].type == csarm.ARM_OP_IMM and \
                    insn.operands[-1].imm % 4 == 0 and \
                    all(op.type != csarm.ARM_OP_REG or op.reg == w
                        for op in insn.operands[:-1]):
                continue  # rX = rX +- 4k keeps the alignment
            changed.add(reg)
    flags = 0
    for k, reg in enumerate(entry):
        flags |= (reg - A.UC_ARM_REG_R0 + 1) << (8 + 5 * k)
    return (flags | FLAG_ALIGN if entry else 0), sites


def _loads_register(insn, reg: int) -> bool:
    """The register is in an LDM's list or an LDRD's destinations (not just its base)."""
    from capstone import arm as csarm

    ops = insn.operands[1:] if insn.mnemonic.startswith(("ldm", "pop")) else insn.operands
    return any(op.type == csarm.ARM_OP_REG and op.reg == reg for op in ops)


def _uc_registers() -> dict[int, int]:
    from capstone import arm as csarm

    table = {getattr(csarm, f"ARM_REG_R{i}"): getattr(A, f"UC_ARM_REG_R{i}") for i in range(13)}
    table[csarm.ARM_REG_LR] = A.UC_ARM_REG_LR
    return table


_UC_REG = _uc_registers()
# Capstone's condition codes (EQ = 1 … LE = 14, AL = 15) to the architecture's (EQ = 0 …).
_CAPSTONE_TO_ARM_COND = {cc: cc - 1 for cc in range(1, 15)}
# Alignment analysis by block address and bytes: the same code reloaded (the profiler loads
# its harness once per case) is not analysed again.
_ALIGN_CACHE: dict[tuple[int, bytes], tuple[int, list]] = {}


def _where(model, address: int) -> str:
    if model is None:
        return "no peripheral or tag covers it"
    return f"{model.name}.{model.reg_name(address - model.base)}"


def run_elf(board: Board, path, max_instructions: int = DEFAULT_MAX_INSTRUCTIONS) -> RunResult:
    """Load and run one ELF on a fresh machine; errors come back in the result."""
    machine = Machine(board)
    try:
        machine.load(path)
        return machine.run(max_instructions)
    finally:
        machine.close()


__all__ = ["EMULATOR_VERSION", "FirmwareError", "Machine", "Marker", "RunResult", "run_elf"]
