"""The one interface to a target: what every consumer of a board uses to reach it.

A backend runs firmware on one board and reports what the run produced. The embedded emulator
(:class:`atomsim.emulator.machine.Machine`) is the first implementation; a physical board behind
a serial port (``calibration``) and a Renode process are the others. The profiler, the
additivity check and the Robot library reach the target only through this interface: load an
ELF, write and read target memory, reset, run with an instruction or time budget, UART in and
out, markers and counters, memory figures, faults (named errors in the result). The backend
owns the time source (``cycles``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from atomsim.core.errors import AtomSimError

if TYPE_CHECKING:
    from atomsim.boards import Board
    from atomsim.target.elf import Firmware


@dataclass
class Marker:
    """Counter snapshot at a profiling marker (BKPT 0x01 / 0x02 in AtomSim firmware)."""

    kind: str
    pc: int
    instructions: int
    cycles: int
    sp: int
    traffic: dict | None = None  # per-memory data traffic so far, when the backend counts it


@dataclass
class RunResult:
    """Everything a run produced. ``status`` is 'ok' or the error's status name."""

    board: str
    status: str
    uart: str
    instructions: int
    cycles: int
    clock_hz: int
    flash_bytes: int
    static_ram_bytes: int
    stack_bytes: int
    heap_bytes: int
    exit_code: int | None
    end_reason: str
    error: AtomSimError | None = None
    markers: list[Marker] = field(default_factory=list)
    semihosting_output: str = ""
    firmware_sha256: str = ""
    timing_model: str = ""
    backend: str = ""  # the backend and its version (e.g. the emulator's)
    traffic: dict | None = None  # memory name -> RegionTraffic, when the backend counts it

    @property
    def latency_ms(self) -> float:
        """Modelled cycles at the board clock."""
        return self.cycles / self.clock_hz * 1e3

    @property
    def renode_style_ms(self) -> float:
        """What Renode's estimate gives: instructions ÷ MIPS (one instruction per cycle)."""
        return self.instructions / self.clock_hz * 1e3

    @property
    def peak_ram_bytes(self) -> int:
        """Static data + stack high-water mark + heap peak."""
        return self.static_ram_bytes + self.stack_bytes + self.heap_bytes

    def raise_for_status(self) -> RunResult:
        """Raise the run's error, if any; return self otherwise."""
        if self.error is not None:
            raise self.error
        return self

    def to_dict(self) -> dict:
        """The JSON form printed by ``atomsim run --json``."""
        d = {
            "board": self.board, "status": self.status, "uart": self.uart,
            "instructions": self.instructions, "cycles": self.cycles,
            "latency_ms": self.latency_ms, "renode_style_latency_ms": self.renode_style_ms,
            "clock_hz": self.clock_hz, "flash_bytes": self.flash_bytes,
            "static_ram_bytes": self.static_ram_bytes, "stack_bytes": self.stack_bytes,
            "heap_bytes": self.heap_bytes, "peak_ram_bytes": self.peak_ram_bytes,
            "exit_code": self.exit_code, "end_reason": self.end_reason,
            "firmware_sha256": self.firmware_sha256, "timing_model": self.timing_model,
            "emulator": self.backend,
            "markers": [asdict(m) for m in self.markers],
        }
        if self.traffic is not None:
            d["traffic"] = {name: asdict(t) for name, t in self.traffic.items()}
        if self.semihosting_output:
            d["semihosting_output"] = self.semihosting_output
        if self.error is not None:
            d["error"] = {"type": type(self.error).__name__, "message": str(self.error),
                          **_error_details(self.error)}
        return d


def _error_details(err: AtomSimError) -> dict:
    keys = ("pc", "address", "access", "size", "cfsr", "hfsr", "bfar", "mmfar", "reason",
            "budget", "code", "stack_bottom")
    out = {}
    for k in keys:
        v = getattr(err, k, None)
        if v is not None:
            out[k] = v
    return out



@runtime_checkable
class Backend(Protocol):
    """One board that runs firmware. Errors of the firmware come back in the RunResult."""

    board: Board
    firmware: Firmware | None
    finished: RunResult | None  # the final result once the firmware has ended
    initial_sp: int  # the stack pointer the core started with (from the vector table)
    uart_listeners: list[Callable[[str, int], None]]  # called per transmitted byte
    markers: list[Marker]  # profiling markers of the current run, in order

    @property
    def pc(self) -> int:
        """The core's program counter (without the Thumb bit)."""

    def vector_table(self) -> int:
        """Address of the loaded firmware's vector table."""

    def load(self, path: Path | str) -> Firmware:
        """Load an ELF and reset the core."""

    def reset(self) -> None:
        """Core reset with the loaded firmware; counters, markers and UART buffers cleared."""

    def write_memory(self, address: int, data: bytes) -> None:
        """Write target memory (RAM or flash) before or between runs."""

    def read_memory(self, address: int, size: int) -> bytes:
        """Read target memory."""

    def read_u32(self, address: int) -> int:
        """Bus read of a word: memory or a peripheral register (as a debugger reads it)."""

    def write_u32(self, address: int, value: int) -> None:
        """Bus write of a word: memory or a peripheral register."""

    def run(self, max_instructions: int = ..., max_cycles: int | None = None) -> RunResult:
        """Run until the firmware ends, faults, or a budget runs out; with ``max_cycles`` the
        run pauses (status 'running') and a later call continues exactly there."""

    def cycles(self) -> int:
        """Cycles of emulated (or measured) time so far: the backend's time source."""

    def uarts(self) -> list[str]:
        """Names of the target's UARTs."""

    def uart_write(self, name: str, data: bytes) -> None:
        """Send bytes to a UART's RX line."""

    def uart_text(self, name: str) -> str:
        """Everything a UART has transmitted since reset."""

    def close(self) -> None:
        """Release the target."""


__all__ = ["Backend", "Marker", "RunResult"]
