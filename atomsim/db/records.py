"""AtomDB's records: a measurement with its provenance, sums over atoms, missing atoms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from atomsim.core.errors import ConfigError
from atomsim.db.schema import SOURCES
from atomsim.nn.atoms import Atom

MAX_INT = 2**63 - 1  # SQLite's INTEGER
MAX_LATENCY_MS = 1e9  # about 11.6 days: anything longer is a unit mistake


class MissingAtoms(ConfigError):
    """A query needs atoms that AtomDB has not measured for the board (``.missing``: atoms)."""

    def __init__(self, board: str, missing: Sequence[Atom], what: str = "query"):
        self.board, self.missing = board, list(missing)
        shown = "; ".join(a.describe() for a in self.missing[:10])
        more = f" and {len(self.missing) - 10} more" if len(self.missing) > 10 else ""
        super().__init__(f"{what}: AtomDB has no measurement on {board} for "
                         f"{len(self.missing)} atom(s): {shown}{more}")


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, kw_only=True)
class Measurement:
    """One atom measured on one board with one kernel variant, with its provenance."""

    atom: Atom
    board: str
    latency_ms: float
    kernel_variant: str
    source: str = "emulator"  # emulator | board | import
    cycles: int | None = None
    instructions: int | None = None
    sram_bytes: int | None = None  # input + output + scratch + kernel stack high-water
    flash_bytes: int | None = None  # the atom's measured Flash share (weights + bias tables)
    firmware_hash: str | None = None
    timing_model_version: str | None = None
    emulator_version: str | None = None
    calibration_id: str | None = None
    created_at: str | None = None  # ISO 8601 UTC; set on upsert when left out

    def __post_init__(self) -> None:
        if not isinstance(self.atom, Atom):
            raise ConfigError(f"measurement atom must be an Atom, got {type(self.atom).__name__}")
        if not self.board or not isinstance(self.board, str):
            raise ConfigError("measurement needs a board name")
        if not self.kernel_variant or not isinstance(self.kernel_variant, str):
            raise ConfigError("measurement needs a kernel_variant")
        if self.source not in SOURCES:
            raise ConfigError(f"measurement source must be one of {SOURCES}, got {self.source!r}")
        latency = self.latency_ms
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) \
                or not math.isfinite(latency) or not 0 <= latency <= MAX_LATENCY_MS:
            raise ConfigError(f"latency_ms must be a finite number from 0 to "
                              f"{MAX_LATENCY_MS:g}, got {latency!r}")
        for name in ("cycles", "instructions", "sram_bytes", "flash_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or not 0 <= value <= MAX_INT):
                raise ConfigError(f"{name} must be an int from 0 to {MAX_INT} or None, "
                                  f"got {value!r}")

    @property
    def key(self) -> str:
        """The atom's key."""
        return self.atom.key


PROVENANCE = tuple(f.name for f in fields(Measurement) if f.name not in ("atom",))


@dataclass(frozen=True)
class Totals:
    """A block's or network's figures summed from its atoms (kernel additivity)."""

    board: str
    atoms: int
    latency_ms: float
    cycles: int | None  # None when any atom lacks a cycle count
    flash_bytes: int  # sum of the atoms' weight + bias Flash (METHOD convention)
    peak_sram_bytes: int | None  # max measured SRAM over atoms; None when any lacks it
    peak_activation_bytes: int  # max input + output bytes over atoms (no scratch)
    macs: int
