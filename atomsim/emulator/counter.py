"""Python side of the native block counter (``native/blockcount.c``).

The C file is compiled once with the system C compiler against the headers and library that
the unicorn wheel ships, cached under the build directory by content hash, and loaded with
ctypes. Python is consulted once per *distinct* block (to describe its timing), never per
executed block or instruction.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import unicorn

from atomsim.core.errors import ToolchainError
from atomsim.core.paths import build_dir

_SOURCE = Path(__file__).with_name("native") / "blockcount.c"
_UNICORN_DIR = Path(unicorn.__file__).parent
FLAG_HALT = 1

STOP_RUNNING, STOP_BUDGET, STOP_HALT, STOP_DESCRIBE, STOP_NOMEM, STOP_CYCLES = range(6)


class BlockDesc(ctypes.Structure):
    """What the timing model says about one block (mirrors ``asb_desc_t``)."""

    _fields_ = [("n_insn", ctypes.c_uint32), ("cost_fall", ctypes.c_int32),
                ("cost_taken", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class BlockRecord(ctypes.Structure):
    """One distinct block and its counts (mirrors ``asb_block_t``)."""

    _fields_ = [("addr", ctypes.c_uint32), ("size", ctypes.c_uint32), ("d", BlockDesc),
                ("count", ctypes.c_uint64), ("taken", ctypes.c_uint64)]


DESCRIBE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_uint32,
                               ctypes.POINTER(BlockDesc))


class CounterState(ctypes.Structure):
    """Live counters shared with C (mirrors ``asb_state_t``)."""

    _fields_ = [("instructions", ctypes.c_uint64), ("cycles", ctypes.c_uint64),
                ("budget", ctypes.c_uint64), ("cycle_budget", ctypes.c_uint64),
                ("blocks_executed", ctypes.c_uint64),
                ("stop_reason", ctypes.c_uint32), ("halt_addr", ctypes.c_uint32),
                ("n_blocks", ctypes.c_uint32), ("capacity", ctypes.c_uint32),
                ("table", ctypes.c_void_p), ("prev", ctypes.c_int64),
                ("describe", ctypes.c_void_p), ("hook", ctypes.c_size_t)]


def _unicorn_lib() -> Path:
    libs = sorted((_UNICORN_DIR / "lib").glob("libunicorn.so*"))
    if not libs:
        raise ToolchainError(f"the unicorn wheel has no shared library under {_UNICORN_DIR}/lib")
    return libs[0]


def compile_native(source: Path, name: str) -> Path:
    """Compile one of native/*.c against the unicorn wheel's headers and library, cached under
    the build directory by content hash (and unicorn version); returns the shared object."""
    lib = _unicorn_lib()
    key = hashlib.sha256(source.read_bytes() + unicorn.__version__.encode()).hexdigest()[:16]
    out = build_dir() / "native" / f"{name}-{key}.so"
    if out.exists():
        return out
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise ToolchainError("no host C compiler (cc) found: install gcc (make setup does)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.stem}.{os.getpid()}.tmp.so")  # one per concurrent builder
    cmd = [cc, "-O2", "-shared", "-fPIC", "-std=c11", "-Wall", "-Werror",
           f"-I{_UNICORN_DIR / 'include'}", str(source), "-o", str(tmp),
           str(lib), f"-Wl,-rpath,{lib.parent}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ToolchainError(f"compiling {source.name} failed:\n{proc.stderr.strip()}")
    tmp.replace(out)  # atomic: concurrent builders never see a half-written library
    return out


def library_path() -> Path:
    """Compile the counter if needed and return the shared object's path."""
    return compile_native(_SOURCE, "blockcount")


_LIB: ctypes.CDLL | None = None


def _lib() -> ctypes.CDLL:
    global _LIB
    if _LIB is None:
        lib = ctypes.CDLL(str(library_path()))
        lib.asb_new.restype = ctypes.POINTER(CounterState)
        lib.asb_new.argtypes = [DESCRIBE_FN]
        lib.asb_attach.argtypes = [ctypes.POINTER(CounterState), ctypes.c_void_p]
        lib.asb_detach.argtypes = [ctypes.POINTER(CounterState), ctypes.c_void_p]
        lib.asb_finish.argtypes = [ctypes.POINTER(CounterState)]
        lib.asb_export.restype = ctypes.c_uint32
        lib.asb_export.argtypes = [ctypes.POINTER(CounterState), ctypes.POINTER(BlockRecord),
                                   ctypes.c_uint32]
        lib.asb_free.argtypes = [ctypes.POINTER(CounterState)]
        lib.asb_current.restype = ctypes.c_int
        lib.asb_current.argtypes = [ctypes.POINTER(CounterState), ctypes.POINTER(ctypes.c_uint32),
                                    ctypes.POINTER(ctypes.c_uint32)]
        lib.asb_repeat_current.argtypes = [ctypes.POINTER(CounterState), ctypes.c_uint64]
        lib.ast_new.restype = ctypes.c_void_p
        lib.ast_new.argtypes = [ctypes.POINTER(ctypes.c_uint32), ctypes.c_uint32, ctypes.c_uint32]
        for name in ("ast_attach", "ast_detach"):
            getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.ast_clear.argtypes = [ctypes.c_void_p]
        lib.ast_export.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)]
        lib.ast_free.argtypes = [ctypes.c_void_p]
        _LIB = lib
    return _LIB


@dataclass(frozen=True)
class BlockCount:
    """A distinct block with its execution counts, as exported after a run."""

    addr: int
    size: int
    n_insn: int
    cost_fall: int
    cost_taken: int
    count: int
    taken: int


class BlockCounter:
    """Owns one native counter attached to one Unicorn engine.

    ``describe(addr, size) -> (n_insn, cost_fall, cost_taken, flags)`` is called once per
    distinct block. An exception in it stops the run; it is kept in ``describe_error``.
    """

    def __init__(self, uc: unicorn.Uc, describe: Callable[[int, int], tuple[int, int, int, int]]):
        self._describe_py = describe
        self.describe_error: BaseException | None = None
        self._cb = DESCRIBE_FN(self._describe)  # keep a reference: C holds the pointer
        lib = _lib()
        self._state = lib.asb_new(self._cb)
        if not self._state:
            raise MemoryError("cannot allocate the block counter")
        self._uc = uc
        err = lib.asb_attach(self._state, uc._uch)
        if err != 0:
            lib.asb_free(self._state)
            raise RuntimeError(f"uc_hook_add failed with Unicorn error {err}")
        # Detach and free through a finalizer, not __del__: finalizers run at exit newest first,
        # so this one (made after the engine's own) detaches while the engine is still open.
        # It holds the engine and the callback until then.
        self._release = weakref.finalize(self, _release, self._state, uc, self._cb)

    def _describe(self, addr: int, size: int, out: ctypes.POINTER(BlockDesc)) -> int:
        try:
            n, fall, taken, flags = self._describe_py(addr, size)
            d = out.contents
            d.n_insn, d.cost_fall, d.cost_taken, d.flags = n, fall, taken, flags
            return 0
        except BaseException as exc:  # noqa: BLE001 - carried across the C boundary
            self.describe_error = exc
            return 1

    @property
    def active(self) -> bool:
        """False once closed (e.g. detached for a bare-speed benchmark)."""
        return bool(self._state)

    @property
    def state(self) -> CounterState:
        """The live counters (instructions, cycles, budget, stop_reason …)."""
        return self._state.contents

    def finish(self) -> None:
        """Account the block in flight when a run ends."""
        _lib().asb_finish(self._state)

    def current_block(self) -> tuple[int, int] | None:
        """(address, size) of the block being executed, or None (also once closed)."""
        if not self._state:
            return None
        addr, size = ctypes.c_uint32(), ctypes.c_uint32()
        if _lib().asb_current(self._state, ctypes.byref(addr), ctypes.byref(size)):
            return addr.value, size.value
        return None

    def repeat_current(self, k: int) -> None:
        """Account ``k`` more taken-branch executions of the block in flight."""
        if not self._state:
            raise RuntimeError("the block counter is closed")
        _lib().asb_repeat_current(self._state, k)

    def blocks(self) -> list[BlockCount]:
        """Every distinct block seen, with counts."""
        n = self.state.n_blocks
        arr = (BlockRecord * max(n, 1))()
        got = _lib().asb_export(self._state, arr, n)
        return [BlockCount(b.addr, b.size, b.d.n_insn, b.d.cost_fall, b.d.cost_taken,
                           b.count, b.taken) for b in arr[:got]]

    def close(self) -> None:
        """Detach from the engine and free the native state (idempotent)."""
        self._release()
        self._state = None


@dataclass(frozen=True)
class RegionTraffic:
    """Data accesses to one board memory: reads and writes, counts and bytes."""

    reads: int = 0
    writes: int = 0
    read_bytes: int = 0
    write_bytes: int = 0

    def __sub__(self, other: RegionTraffic) -> RegionTraffic:
        return RegionTraffic(self.reads - other.reads, self.writes - other.writes,
                             self.read_bytes - other.read_bytes,
                             self.write_bytes - other.write_bytes)

    def __add__(self, other: RegionTraffic) -> RegionTraffic:
        return RegionTraffic(self.reads + other.reads, self.writes + other.writes,
                             self.read_bytes + other.read_bytes,
                             self.write_bytes + other.write_bytes)


OTHER_REGION = "other"  # accesses outside every memory: peripherals, the system control space


def traffic_delta(end: dict[str, RegionTraffic], begin: dict[str, RegionTraffic]
                  ) -> dict[str, RegionTraffic]:
    """Per-region traffic between two snapshots (e.g. the profiling markers)."""
    return {name: end[name] - begin.get(name, RegionTraffic()) for name in end}


class TrafficCounter:
    """Native per-memory data-traffic counter attached to one Unicorn engine (optional).

    ``memories`` lists ``(name, addresses, size)``: every address a memory is mapped at
    becomes one range of the native table (set once); counts are kept per memory name, plus
    :data:`OTHER_REGION` for everything else. Every data access calls the C hook, none calls
    Python; the cost is Unicorn's slow memory path (see docs/benchmarks.md), so machines
    enable it only when asked.
    """

    def __init__(self, uc: unicorn.Uc, memories: list[tuple[str, list[int], int]]):
        self.names = [name for name, _, _ in memories] + [OTHER_REGION]
        ranges = sorted((addr, addr + size, slot) for slot, (_, addrs, size)
                        in enumerate(memories) for addr in addrs)
        for (lo, hi, _), (lo2, _, _) in zip(ranges, ranges[1:], strict=False):
            if lo2 < hi:
                raise ValueError(f"memory ranges overlap at 0x{lo2:08X} (0x{lo:08X}-0x{hi:08X})")
        flat = (ctypes.c_uint32 * max(3 * len(ranges), 1))(*[v for r in ranges for v in r])
        lib = _lib()
        self._state = lib.ast_new(flat, len(ranges), len(self.names))
        if not self._state:
            raise MemoryError("cannot allocate the traffic counter")
        err = lib.ast_attach(self._state, uc._uch)
        if err != 0:
            lib.ast_free(self._state)
            raise RuntimeError(f"uc_hook_add failed with Unicorn error {err}")
        self._release = weakref.finalize(self, _release_traffic, self._state, uc)

    def clear(self) -> None:
        """Zero every count (at core reset)."""
        if self._state:
            _lib().ast_clear(self._state)

    def snapshot(self) -> dict[str, RegionTraffic]:
        """The counts so far, per memory name (and :data:`OTHER_REGION`)."""
        if not self._state:
            return {}
        raw = (ctypes.c_uint64 * (4 * len(self.names)))()
        _lib().ast_export(self._state, raw)
        return {name: RegionTraffic(*raw[4 * i:4 * i + 4]) for i, name in enumerate(self.names)}

    def close(self) -> None:
        """Detach from the engine and free the native state (idempotent)."""
        self._release()
        self._state = None


def _release_traffic(state, uc: unicorn.Uc) -> None:
    lib = _lib()
    lib.ast_detach(state, uc._uch)
    lib.ast_free(state)


def _release(state, uc: unicorn.Uc, callback) -> None:
    """Detach the hook from ``uc`` and free ``state``; ``callback`` is kept alive until now."""
    lib = _lib()
    lib.asb_detach(state, uc._uch)
    lib.asb_free(state)
