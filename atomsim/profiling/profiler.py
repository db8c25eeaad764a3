"""Per-operator profiling: any atom configuration on the harness firmware, no recompiling.

One harness ELF per (board, kernel variant), built once and cached by content hash. For each
atom the host writes a job descriptor (``atomsim_job``), places weights, bias and quantization
constants in free flash (where a deployment keeps them) and activations and scratch in free RAM,
resets the core and runs; cycles and instructions come from the two profiling markers around
the kernel call, the kernel's stack from the painted stack, the output is read back. A block is
several jobs run back to back between one pair of markers (kernel additivity checks).
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atomsim.boards import Board
from atomsim.core.errors import AtomSimError, ConfigError, DoesNotFit
from atomsim.core.paths import FIRMWARE_DIR
from atomsim.core.settings import ProfileSettings
from atomsim.emulator.machine import Machine
from atomsim.nn import ops
from atomsim.nn.atoms import Atom
from atomsim.nn.ops import buffers
from atomsim.nn.ops import quant as q
from atomsim.target.backend import Backend, RunResult
from atomsim.target.firmware import build

KERNELS_DIR = FIRMWARE_DIR / "kernels"
HARNESS_SRC = FIRMWARE_DIR / "harness" / "harness.c"
VARIANTS = buffers.VARIANTS  # folder names under firmware/kernels/ besides reference/include
DEFAULT_VARIANT = ProfileSettings.variant  # declared once, in core.settings
JOB_MAGIC = 0x41544F4D
# Mirror of atomsim_job_t (firmware/harness/harness.c): magic, size, op, status, 4 dims,
# params[16], input, input2, filter, bias, multiplier, shift, output, scratch, scratch_size.
_JOB = struct.Struct("<4I16i16i8Ii")
OPS = {"pad": 1, "conv": 2, "dw": 3, "pw": 4, "fc": 5, "add": 6, "mul": 7, "mul_bcast": 7,
       "avgpool": 8, "maxpool": 9, "global_avgpool": 10, "relu": 11, "relu6": 11,
       "hard_swish": 12, "hard_sigmoid": 13}
MAX_INSTRUCTIONS = ProfileSettings.max_instructions
MAX_JOBS = 16  # atomsim_jobs[] in harness.c


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
    return build(f"harness-{variant}", board, [HARNESS_SRC, *kernel_sources(variant)],
                 include_dirs=include)


@dataclass
class Case:
    """One kernel invocation: op, dims (n, h, w, c), int parameters and arrays."""

    op: str
    in_dims: tuple[int, int, int, int]
    out_dims: tuple[int, int, int, int]
    params: tuple[int, ...] = ()
    in2_dims: tuple[int, int, int, int] = (0, 0, 0, 0)
    filter_dims: tuple[int, int, int, int] = (0, 0, 0, 0)
    input: np.ndarray | None = None
    input2: np.ndarray | None = None
    filter: np.ndarray | None = None  # also the hard-sigmoid LUT
    bias: np.ndarray | None = None
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None
    param_record: object = None  # the ops.quant dataclass the params came from

    def scratch_bytes(self, variant: str) -> int:
        """The kernel's scratch need, from the Python mirror of its get_buffer_size()."""
        b, v = buffers, variant
        return {
            "pad": lambda: b.pad_s8_get_buffer_size(self.in_dims, self.out_dims, v),
            "conv": lambda: b.conv_s8_get_buffer_size(self.in_dims, self.filter_dims,
                                                      self.out_dims, v),
            "dw": lambda: b.depthwise_conv_s8_get_buffer_size(self.in_dims, self.filter_dims,
                                                              self.out_dims, v),
            "pw": lambda: b.pointwise_conv_s8_get_buffer_size(self.in_dims, self.filter_dims,
                                                              self.out_dims, v),
            "fc": lambda: b.fully_connected_s8_get_buffer_size(self.in_dims, self.filter_dims,
                                                               self.out_dims, v),
            "add": lambda: b.add_s8_get_buffer_size(self.in_dims, v),
            "mul": lambda: b.mul_s8_get_buffer_size(self.in_dims, self.in2_dims, v),
            "avgpool": lambda: b.avgpool_s8_get_buffer_size(self.out_dims, v),
            "maxpool": lambda: b.maxpool_s8_get_buffer_size(self.out_dims, v),
            "global_avgpool": lambda: b.global_avgpool_s8_get_buffer_size(self.in_dims, v),
            "relu": lambda: b.relu_s8_get_buffer_size(self.in_dims, v),
            "hard_swish": lambda: b.hard_swish_s8_get_buffer_size(self.in_dims, v),
            "hard_sigmoid": lambda: b.hard_sigmoid_s8_get_buffer_size(self.in_dims, v),
        }[self.op]()


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


def _seed(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def case_for_atom(atom: Atom, seed: int | None = None) -> Case:
    """A concrete, deterministic kernel invocation for an atom (random data from its key)."""
    rng = np.random.default_rng(_seed(atom.key) if seed is None else seed)
    t = atom.type

    def tensor(c, h, w):
        return rng.integers(-128, 128, size=(1, h, w, c), dtype=np.int8)

    x = tensor(atom.c_in, atom.h_in, atom.w_in)
    in_dims = (1, atom.h_in, atom.w_in, atom.c_in)
    out_dims = (1, atom.h_out, atom.w_out, atom.c_out)
    in_zp, out_zp, in_scale, out_scale = -128, -5, 0.02, 0.05
    act_min, act_max = q.activation_range(atom.activation, out_scale, out_zp)
    if t in ("conv", "dw", "pw"):
        k1, k2 = atom.k1 or 1, atom.k2 or 1
        if t == "dw":
            filt = rng.integers(-127, 128, size=(1, k1, k2, atom.c_in), dtype=np.int8)
            fan_in = k1 * k2
        else:
            filt = rng.integers(-127, 128, size=(atom.c_out, k1, k2, atom.c_in), dtype=np.int8)
            fan_in = k1 * k2 * atom.c_in
        bias = rng.integers(-2000, 2000, size=atom.c_out, dtype=np.int32)
        reals = rng.uniform(0.5, 1.5, atom.c_out) / (np.sqrt(fan_in) * 127.0)
        mult, shift = q.per_channel_multipliers(reals)
        top, left = atom.padding[0], atom.padding[1]
        p = q.ConvParams(atom.stride or 1, atom.stride or 1, top, left, 1, 1, -in_zp, out_zp,
                         act_min, act_max)
        return Case(t, in_dims, out_dims, dataclasses.astuple(p), filter_dims=filt.shape,
                    input=x, filter=filt, bias=bias, multiplier=mult, shift=shift,
                    param_record=p)
    if t == "fc":
        filt = rng.integers(-127, 128, size=(atom.c_out, 1, 1, atom.c_in), dtype=np.int8)
        bias = rng.integers(-2000, 2000, size=atom.c_out, dtype=np.int32)
        mult, shift = q.per_channel_multipliers(
            rng.uniform(0.5, 1.5, atom.c_out) / (np.sqrt(atom.c_in) * 127.0))
        p = q.FcParams(-in_zp, out_zp, act_min, act_max, 1)
        return Case(t, in_dims, (1, 1, 1, atom.c_out), dataclasses.astuple(p),
                    filter_dims=filt.shape, input=x, filter=filt, bias=bias, multiplier=mult,
                    shift=shift, param_record=p)
    if t == "pad":
        top, left, bottom, right = atom.padding
        p = q.PadParams(top, bottom, left, right, in_zp)
        return Case(t, in_dims, out_dims, dataclasses.astuple(p), input=x, param_record=p)
    if t == "add":
        p = q.add_quant_params(in_scale, in_zp, 0.03, 3, out_scale, out_zp, act_min, act_max)
        return Case(t, in_dims, out_dims, dataclasses.astuple(p), in2_dims=in_dims, input=x,
                    input2=tensor(atom.c_in, atom.h_in, atom.w_in), param_record=p)
    if t in ("mul", "mul_bcast"):
        p = q.mul_quant_params(in_scale, in_zp, 0.004, -128, out_scale, out_zp, act_min,
                               act_max)
        x2 = tensor(atom.c_in, 1, 1) if t == "mul_bcast" else tensor(atom.c_in, atom.h_in,
                                                                     atom.w_in)
        return Case("mul", in_dims, out_dims, dataclasses.astuple(p), in2_dims=x2.shape,
                    input=x, input2=x2, param_record=p)
    if t in ("avgpool", "maxpool"):
        k1, k2 = atom.k1 or 1, atom.k2 or 1
        p = q.PoolParams(atom.stride or 1, atom.stride or 1, atom.padding[0], atom.padding[1],
                         act_min, act_max)
        return Case(t, in_dims, out_dims, dataclasses.astuple(p), filter_dims=(1, k1, k2, 1),
                    input=x, param_record=p)
    if t == "global_avgpool":
        return Case(t, in_dims, (1, 1, 1, atom.c_in), (act_min, act_max), input=x)
    if t in ("relu", "relu6"):
        p = q.relu_quant_params(in_scale, in_zp, out_scale, out_zp, t)
        return Case("relu", in_dims, in_dims, dataclasses.astuple(p), input=x, param_record=p)
    if t == "hard_swish":
        p = q.hard_swish_quant_params(in_scale, in_zp, out_scale, out_zp)
        return Case(t, in_dims, in_dims, dataclasses.astuple(p), input=x, param_record=p)
    if t == "hard_sigmoid":
        lut = q.hard_sigmoid_lut(in_scale, in_zp, 1 / 256, -128)
        return Case(t, in_dims, in_dims, (), input=x, filter=lut.astype(np.int8))
    raise ConfigError(f"no kernel for atom type {t!r}")


def expected_output(case: Case) -> np.ndarray:
    """The integer-exact numpy reference for a case."""
    r, p = ops.reference, case.param_record
    out_hw = case.out_dims[1:3]
    if case.op == "conv":
        return r.conv_s8(case.input, case.filter, case.bias, case.multiplier, case.shift, p,
                         out_hw)
    if case.op == "dw":
        return r.depthwise_conv_s8(case.input, case.filter, case.bias, case.multiplier,
                                   case.shift, p, out_hw)
    if case.op == "pw":
        return r.pointwise_conv_s8(case.input, case.filter, case.bias, case.multiplier,
                                   case.shift, p, out_hw)
    if case.op == "fc":
        return r.fully_connected_s8(case.input, case.filter, case.bias, case.multiplier,
                                    case.shift, p)
    if case.op == "pad":
        return r.pad_s8(case.input, p)
    if case.op == "add":
        return r.add_s8(case.input, case.input2, p)
    if case.op == "mul":
        return r.mul_s8(case.input, case.input2, p)
    if case.op in ("avgpool", "maxpool"):
        fn = r.avgpool_s8 if case.op == "avgpool" else r.maxpool_s8
        return fn(case.input, case.filter_dims[1:3], p, out_hw)
    if case.op == "global_avgpool":
        return r.global_avgpool_s8(case.input, *case.params)
    if case.op == "relu":
        return r.relu_s8(case.input, p)
    if case.op == "hard_swish":
        return r.hard_swish_s8(case.input, p)
    if case.op == "hard_sigmoid":
        return r.hard_sigmoid_s8(case.input, case.filter)
    raise ConfigError(f"no reference for op {case.op!r}")


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

    def run_case(self, case: Case) -> CaseResult:
        """Place a case, run it, read the output back; raises on firmware errors."""
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

    def run_block(self, cases: list[Case]) -> tuple[int, int]:
        """Run several kernels back to back in one firmware run, as a deployed network does.

        A case whose input has the previous case's output shape reads that output (the data
        flows as in the block); others read their own input. Returns (cycles, instructions)
        between the markers around the whole sequence.
        """
        _, (begin, end), _, _ = self._run(cases, chain=True)
        return end.cycles - begin.cycles, end.instructions - begin.instructions

    def _run(self, cases: list[Case], chain: bool):
        if not 1 <= len(cases) <= MAX_JOBS:
            raise ConfigError(f"a harness run takes 1 to {MAX_JOBS} kernels, got {len(cases)}")
        flash = _Allocator("flash", *self._flash)
        arena = _Allocator("ram (activation arena)", *self._arena)
        mem = self.target
        jobs, outs, scratches = [], [], []
        prev_out = None
        for case in cases:
            filt = flash.put(mem, case.filter)
            bias = flash.put(mem, case.bias)
            mult = flash.put(mem, case.multiplier)
            shift = flash.put(mem, case.shift)
            if chain and prev_out is not None and prev_out[1] == tuple(case.in_dims):
                inp = prev_out[0]
            else:
                inp = arena.put(mem, case.input)
            inp2 = arena.put(mem, case.input2)
            out_size = int(np.prod(case.out_dims))
            out = arena.reserve(out_size)
            scratch_size = case.scratch_bytes(self.variant)
            scratch = arena.reserve(scratch_size) if scratch_size else 0
            flash.check()
            arena.check()
            mem.write_memory(out, b"\x5a" * out_size)  # poison: an unwritten output cannot pass
            params = list(case.params) + [0] * (16 - len(case.params))
            jobs.append(_JOB.pack(JOB_MAGIC, _JOB.size, OPS[case.op], 0, *case.in_dims,
                                  *case.in2_dims, *case.filter_dims, *case.out_dims, *params,
                                  inp, inp2, filt, bias, mult, shift, out, scratch,
                                  scratch_size))
            outs.append((out, out_size))
            scratches.append(scratch_size)
            prev_out = (out, tuple(case.out_dims))
        mem.write_memory(self._jobs, b"".join(jobs))
        mem.write_memory(self._njobs, struct.pack("<I", len(jobs)))
        self.target.reset()
        run = self.target.run(MAX_INSTRUCTIONS)
        run.raise_for_status()
        marks = {m.kind: m for m in run.markers}
        if set(marks) != {"begin", "end"}:
            raise AtomSimError(f"harness run on {self.board.id} produced markers {list(marks)}")
        return run, (marks["begin"], marks["end"]), outs, scratches

    def profile(self, atom: Atom):
        """Measure one atom; returns an atomsim.db.Measurement."""
        from atomsim.db import Measurement

        r = self.run_case(case_for_atom(atom))
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
