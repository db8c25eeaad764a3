"""Per-operator profiling: any atom configuration on the harness firmware, no recompiling.

One harness ELF per (board, kernel variant), built once and cached by content hash. For each
atom (a :class:`~atomsim.nn.ops.cases.KernelCall` from atomsim.nn.registry) the host writes a
job descriptor into ``atomsim_jobs``, places weights, bias and quantization constants in free
flash (where a deployment keeps them) and activations and scratch in free RAM, resets the core
and runs; cycles and instructions come from the two profiling markers around the kernel call,
the kernel's stack from the painted stack, the output is read back. A block is several jobs run
back to back between one pair of markers (kernel additivity checks).

Activations and scratch go one after another into the free part of the board's first SRAM bank
(``_end`` to ``__heap_limit``). When they do not all fit there, they are spread over the board's
banks by the memory planner's rule — largest buffer first, each whole in the first bank with
room — so an atom that needs more than the largest bank runs where the real board could run it;
a buffer that fits no bank is a ``DoesNotFit`` naming it and the bank sizes.

The descriptor's layout, the op ids and the job limit come from the harness ELF's DWARF
(atomsim.target.contract): fields are packed by name, nothing is mirrored here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atomsim.boards import Board
from atomsim.core.errors import AtomSimError, ConfigError, DoesNotFit
from atomsim.core.paths import FIRMWARE_DIR
from atomsim.core.settings import ProfileSettings
from atomsim.emulator.machine import Machine
from atomsim.nn import registry
from atomsim.nn.atoms import Atom
from atomsim.nn.ops import buffers
from atomsim.nn.ops.cases import KernelCall
from atomsim.target.backend import Backend, RunResult
from atomsim.target.contract import read_contract
from atomsim.target.firmware import build

KERNELS_DIR = FIRMWARE_DIR / "kernels"
HARNESS_SRC = FIRMWARE_DIR / "harness" / "harness.c"
VARIANTS = buffers.VARIANTS  # folder names under firmware/kernels/ besides reference/include
DEFAULT_VARIANT = ProfileSettings.variant  # declared once, in core.settings
MAX_INSTRUCTIONS = ProfileSettings.max_instructions


def kernel_sources(variant: str) -> list[Path]:
    """The kernel files for a variant: the variant's folder first, reference/ for the rest.

    As in tflite-micro, an unknown variant folder is an error, never a silent fallback.
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown kernel variant {variant!r}; variants: {', '.join(VARIANTS)}")
    chosen = {p.name: p for p in (KERNELS_DIR / "reference").glob("*.c")}
    if variant != "reference":
        for p in (KERNELS_DIR / variant).glob("*.c"):
            chosen[p.name] = p
    return [chosen[name] for name in sorted(chosen)]


def harness_elf(board: Board, variant: str = DEFAULT_VARIANT) -> Path:
    """Build (or reuse) the harness firmware for a board and kernel variant."""
    include = [KERNELS_DIR / "include", KERNELS_DIR / "reference"]
    if variant != "reference":
        include.insert(1, KERNELS_DIR / variant)
    # The serial link goes last: the memory path's code keeps the addresses it has without it
    # (the M7 model's cycles depend on where code sits).
    return build(f"harness-{variant}", board,
                 [HARNESS_SRC, *kernel_sources(variant), HARNESS_SRC.parent / "serial_link.c"],
                 include_dirs=include)


@dataclass
class CaseResult:
    """What one harness run produced."""

    output: np.ndarray
    cycles: int
    instructions: int
    kernel_stack_bytes: int
    scratch_bytes: int
    activation_bytes: int  # inputs + output
    run: RunResult = field(repr=False)

    @property
    def sram_bytes(self) -> int:
        """Input(s) + output + scratch + the kernel's stack high-water mark."""
        return self.activation_bytes + self.scratch_bytes + self.kernel_stack_bytes


class Profiler:
    """Runs cases and atoms on one board with one kernel variant (one harness, one target).

    The target is any :class:`~atomsim.target.backend.Backend`; the embedded emulator by default.
    """

    def __init__(self, board: Board, variant: str = DEFAULT_VARIANT,
                 target: Backend | None = None):
        self.board, self.variant = board, variant
        self.elf = harness_elf(board, variant)
        self.target: Backend = target if target is not None else Machine(board)
        self.firmware = self.target.load(self.elf)
        fw = self.firmware
        self._jobs, self._njobs = fw.symbol("atomsim_jobs"), fw.symbol("atomsim_njobs")
        self._flash = ((fw.symbol("__flash_used_end") + 7) & ~7, board.flash.end)
        self._arena = ((fw.symbol("_end") + 7) & ~7, fw.symbol("__heap_limit"))
        if None in (self._jobs, self._njobs, *self._flash, *self._arena):
            raise AtomSimError(f"{self.elf} lacks the harness symbols")
        # (name, start, end) of every bank activations may use: the free RAM, then the banks
        # that hold nothing but data (nothing is linked there)
        self._banks = [("+".join(board.banks[0].memories) + " (free RAM)", *self._arena),
                       *(("+".join(r.memories), r.address, r.end) for r in board.banks[1:])]
        contract = read_contract(self.elf)
        jobs = contract.variable("atomsim_jobs")
        self._job, self.max_jobs = jobs.element, jobs.count
        self._njobs_type = contract.variable("atomsim_njobs")
        self._magic = contract.enumerator("ATOMSIM_HARNESS_MAGIC")
        self._op_ids = {op.name: contract.enumerator(op.c_id) for op in registry.OPERATORS}

    def run_case(self, case: KernelCall) -> CaseResult:
        """Place a kernel call, run it, read the output back; raises on firmware errors."""
        run, (begin, end), outs, scratch = self._run([case], chain=False)
        out_addr, out_size = outs[0]
        top = self.target.initial_sp
        kernel_stack = max(0, run.stack_bytes - (top - begin.sp))
        output = np.frombuffer(self.target.read_memory(out_addr, out_size),
                               dtype=np.int8)
        activations = case.input.nbytes + (case.input2.nbytes if case.input2 is not None
                                           else 0) + out_size
        return CaseResult(output.reshape(case.out_dims), end.cycles - begin.cycles,
                          end.instructions - begin.instructions, kernel_stack, scratch[0],
                          activations, run)

    def run_block(self, cases: list[KernelCall]) -> tuple[int, int]:
        """Run several kernels back to back in one firmware run, as a deployed network does.

        A case whose input has the previous case's output shape reads that output (the data
        flows as in the block); others read their own input. Returns (cycles, instructions)
        between the markers around the whole sequence.
        """
        _, (begin, end), _, _ = self._run(cases, chain=True)
        return end.cycles - begin.cycles, end.instructions - begin.instructions

    def _run(self, cases: list[KernelCall], chain: bool):
        if not 1 <= len(cases) <= self.max_jobs:
            raise ConfigError(f"a harness run takes 1 to {self.max_jobs} kernels, "
                              f"got {len(cases)}")
        flash = _Allocator("flash", *self._flash)
        mem = self.target
        # activation buffers in the order the harness has always placed them: (data or size)
        wanted: list[np.ndarray | int] = []
        slots = []  # per case: buffer index of input (None: previous output), input2, out, scr
        prev = None  # (buffer index, dims) of the previous case's output
        for case in cases:
            if chain and prev is not None and prev[1] == tuple(case.in_dims):
                inp = None
            else:
                inp = len(wanted)
                wanted.append(case.input)
            inp2 = None
            if case.input2 is not None:
                inp2 = len(wanted)
                wanted.append(case.input2)
            out = len(wanted)
            wanted.append(int(np.prod(case.out_dims)))
            scratch_size = registry.scratch_bytes(case, self.variant)
            scr = None
            if scratch_size:
                scr = len(wanted)
                wanted.append(scratch_size)
            slots.append((prev[0] if inp is None else inp, inp2, out, scr))
            prev = (out, tuple(case.out_dims))
        addrs = self._place([w if isinstance(w, int) else w.nbytes for w in wanted])
        for w, addr in zip(wanted, addrs, strict=True):
            if not isinstance(w, int):
                mem.write_memory(addr, np.ascontiguousarray(w).tobytes())
        jobs, outs, scratches = [], [], []
        for case, (i_in, i_in2, i_out, i_scr) in zip(cases, slots, strict=True):
            filt = flash.put(mem, case.filter)
            bias = flash.put(mem, case.bias)
            mult = flash.put(mem, case.multiplier)
            shift = flash.put(mem, case.shift)
            inp = addrs[i_in]
            inp2 = 0 if i_in2 is None else addrs[i_in2]
            out = addrs[i_out]
            out_size = wanted[i_out]
            scratch_size = 0 if i_scr is None else wanted[i_scr]
            scratch = 0 if i_scr is None else addrs[i_scr]
            flash.check()
            mem.write_memory(out, b"\x5a" * out_size)  # poison: an unwritten output cannot pass
            params = dataclasses.astuple(case.params) if case.params is not None else ()
            jobs.append(self._job.pack(
                magic=self._magic, size=self._job.size, op=self._op_ids[case.op], status=0,
                in_dims=case.in_dims, in2_dims=case.in2_dims, filter_dims=case.filter_dims,
                out_dims=case.out_dims, params=params, input=inp, input2=inp2, filter=filt,
                bias=bias, multiplier=mult, shift=shift, output=out, scratch=scratch,
                scratch_size=scratch_size))
            outs.append((out, out_size))
            scratches.append(scratch_size)
        mem.write_memory(self._jobs, b"".join(jobs))
        mem.write_memory(self._njobs, self._njobs_type.pack(len(jobs)))
        self.target.reset()
        run = self.target.run(MAX_INSTRUCTIONS)
        run.raise_for_status()
        marks = {m.kind: m for m in run.markers}
        if set(marks) != {"begin", "end"}:
            raise AtomSimError(f"harness run on {self.board.id} produced markers {list(marks)}")
        return run, (marks["begin"], marks["end"]), outs, scratches

    def _place(self, sizes: list[int]) -> list[int]:
        """Addresses of activation buffers of ``sizes`` bytes (8-byte aligned).

        One after another in the free RAM when they all fit there (the harness's placement
        since the start, so the cycles of such atoms never change); otherwise the planner's
        rule over the board's banks: largest first, each whole in the first bank with room.
        """
        _, start, end = self._banks[0]
        cursor, addrs = start, []
        for size in sizes:
            addrs.append(cursor)
            cursor = (cursor + size + 7) & ~7
        if cursor <= end:
            return addrs
        if len(self._banks) == 1:
            raise DoesNotFit("ram (activation arena)", cursor - start, end - start, what="atom")
        cursors = [b[1] for b in self._banks]
        addrs = [0] * len(sizes)
        for i in sorted(range(len(sizes)), key=lambda k: (-sizes[k], k)):
            for k, (_, _, bank_end) in enumerate(self._banks):
                if cursors[k] + sizes[i] <= bank_end:
                    addrs[i] = cursors[k]
                    cursors[k] = (cursors[k] + sizes[i] + 7) & ~7
                    break
            else:
                banks = ", ".join(f"{n} {e - s} B" for n, s, e in self._banks)
                largest = max(e - c for (_, _, e), c in zip(self._banks, cursors, strict=True))
                raise DoesNotFit(f"ram banks ({banks})", sizes[i], max(largest, 0),
                                 what=f"atom (a {sizes[i]}-byte activation buffer of "
                                      f"{sum(sizes)} B in all)")
        return addrs

    def profile(self, atom: Atom):
        """Measure one atom; returns an atomsim.db.Measurement."""
        from atomsim.db import Measurement

        r = self.run_case(registry.call_for_atom(atom))
        return Measurement(
            atom=atom, board=self.board.id, latency_ms=r.cycles / self.board.clock_hz * 1e3,
            kernel_variant=self.variant, source="emulator", cycles=r.cycles,
            instructions=r.instructions, sram_bytes=r.sram_bytes, flash_bytes=atom.flash_bytes,
            firmware_hash=self.firmware.sha256[:16], timing_model_version=r.run.timing_model,
            emulator_version=r.run.backend)

    def close(self) -> None:
        """Release the machine."""
        self.target.close()


@dataclass
class _Allocator:
    region: str
    start: int
    end: int
    cursor: int = 0

    def __post_init__(self):
        self.cursor = self.start

    def reserve(self, size: int) -> int:
        addr = self.cursor
        self.cursor = (self.cursor + size + 7) & ~7
        return addr

    def put(self, target: Backend, array: np.ndarray | None) -> int:
        if array is None:
            return 0
        data = np.ascontiguousarray(array).tobytes()
        addr = self.reserve(len(data))
        if self.cursor <= self.end:
            target.write_memory(addr, data)
        return addr

    def check(self) -> None:
        if self.cursor > self.end:
            raise DoesNotFit(self.region, self.cursor - self.start, self.end - self.start,
                             what="atom")
