"""The embedded emulator: one Cortex-M board on Unicorn, built from the board's .repl file.

Memories become host buffers mapped at every address the platform registers them at;
peripherals and tags are routed through MMIO pages to their models; every other address is
unmapped, so an access there stops the run with a named error (never silent RAM). Counting
runs in native code (``counter.py``); Python is called only per distinct block, per MMIO
access and per exception (BKPT, semihosting, faults).
"""

from __future__ import annotations

import ctypes
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
    StackOverflow,
    Timeout,
    UnmodelledAccess,
)
from atomsim.emulator.counter import (
    STOP_BUDGET,
    STOP_CYCLES,
    STOP_DESCRIBE,
    STOP_HALT,
    STOP_NOMEM,
    BlockCounter,
    TrafficCounter,
)
from atomsim.emulator.peripherals import MODELS, Tag, UnmodelledRegister, model_key
from atomsim.emulator.peripherals.scs import SystemControlSpace
from atomsim.emulator.timing import decode, model_for
from atomsim.target import elf as elfmod
from atomsim.target.backend import Marker, RunResult
from atomsim.target.firmware import STACK_GUARD_BYTES

PAGE = 0x400  # Unicorn's ARM page: every mapping is aligned to it
STACK_PAINT = 0xA5A5A5A5
DEFAULT_MAX_INSTRUCTIONS = 2_000_000_000
EMULATOR_VERSION = f"atomsim-unicorn-{unicorn.__version__}-1"

CFSR_IBUSERR, CFSR_PRECISERR, CFSR_BFARVALID = 1 << 8, 1 << 9, 1 << 15
CFSR_UNDEFINSTR, CFSR_INVSTATE, CFSR_NOCP = 1 << 16, 1 << 17, 1 << 19
HFSR_FORCED = 1 << 30

# Unicorn's ARM exception numbers (QEMU's EXCP_*) seen through UC_HOOK_INTR.
EXCP_UDEF, EXCP_SWI, EXCP_BKPT, EXCP_INVSTATE, EXCP_NOCP = 1, 2, 7, 18, 17
SEMIHOSTING_BKPT = 0xAB
MARKER_BEGIN, MARKER_END = 0x01, 0x02

_CPU_MODEL = {"cortex-m4": A.UC_CPU_ARM_CORTEX_M4, "cortex-m7": A.UC_CPU_ARM_CORTEX_M7}


class _Stop(Exception):
    """Internal: a hook decided the run must end with this error."""


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
        self._map_memories()
        self._map_peripherals()
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
        t = self.timing.block(insns)
        extra = 1 if decoded < size else 0  # an undecodable tail instruction (it will fault)
        timing = (t.n_insn + extra, t.cost_fall + extra, t.cost_taken + extra, t.flags)
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
        if intno == EXCP_UDEF:
            self._fault("undefined instruction", pc, CFSR_UNDEFINSTR)
        elif intno == EXCP_INVSTATE:
            self._fault("invalid state (not Thumb)", pc, CFSR_INVSTATE)
        elif intno == EXCP_NOCP:
            self._fault("coprocessor access with the FPU disabled (CPACR)", pc, CFSR_NOCP)
        elif intno == EXCP_SWI:
            self._fault("SVC with no exception model", pc, CFSR_UNDEFINSTR)
        else:
            self._fault(f"exception {intno}", pc, 0)

    def _fault(self, reason: str, pc: int, cfsr: int, bfar: int | None = None) -> None:
        self.scs.record_fault(cfsr, HFSR_FORCED, bfar, None)
        self._fail(HardFault(reason, pc, self.scs.values[0xD28], self.scs.values[0xD2C], bfar))

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
        for model in self.peripherals.values():
            if isinstance(model, SystemControlSpace):
                return model
        raise AtomSimError(f"{self.platform.path} declares no IRQControllers.NVIC")

    def scs_trcena(self) -> bool:
        """DEMCR.TRCENA (the DWT reads it)."""
        return self.scs.trcena()

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
        end = start + size
        for mem in self.platform.memories:
            for base in mem.addresses:
                if base <= start < base + mem.size:
                    if end > base + mem.size:
                        raise DoesNotFit(f"{mem.name} at 0x{base:08X}", end - base, mem.size,
                                         what=f"{fw.path.name}")
                    return
        raise DoesNotFit(f"memory at 0x{start:08X}", size, 0,
                         what=f"{fw.path.name} (no memory of {self.board.id} is there)")

    def vector_table(self) -> int:
        fw = self.firmware
        for name in ("vector_table", "g_pfnVectors", "__isr_vector", "__Vectors",
                     "_vector_table"):
            addr = fw.symbol(name)
            if addr is not None:
                return addr
        flash = [s.paddr for s in fw.segments
                 if self.board.flash.address <= s.paddr < self.board.flash.end]
        return min(flash) if flash else min(s.paddr for s in fw.segments)

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
        vtor = self.vector_table()
        sp, entry = struct.unpack("<II", bytes(self.uc.mem_read(vtor, 8)))
        self.scs.values[0xD08] = vtor
        self._setup_stack(sp)
        self.initial_sp = sp
        self.uc.reg_write(A.UC_ARM_REG_SP, sp)
        self.uc.reg_write(A.UC_ARM_REG_MSP, sp)
        self.uc.reg_write(A.UC_ARM_REG_LR, 0xFFFFFFFF)
        self.uc.reg_write(A.UC_ARM_REG_PC, entry | 1)
        self._pc = entry | 1

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
        st.budget = st.instructions + max_instructions
        st.cycle_budget = st.cycles + max_cycles if max_cycles is not None else 2**64 - 1
        st.stop_reason = 0
        while True:
            start = self.uc.reg_read(A.UC_ARM_REG_PC)
            try:
                self.uc.emu_start(start | 1, 0xFFFFFFFF)
                uc_error = None
            except unicorn.UcError as exc:
                uc_error = exc
            # A marker or semihosting call that resumed execution restarts the loop.
            if uc_error is None and self._pending is None and self._exit is None and \
                    self._bkpt_stop is None and st.stop_reason == 0:
                continue
            break
        if uc_error is None and self._pending is None and st.stop_reason == STOP_CYCLES:
            return self._result(None, max_instructions, paused=True)
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
        """Release the native counters."""
        self.counter.close()
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
