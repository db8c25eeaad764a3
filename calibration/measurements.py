"""Board measurements to calibrate against, and how they are matched to emulated atoms.

A board measurement is an atom with its measured latency (median of ``repeats``, with the
spread). Today they come from a CSV in the paper's layout (the shared H743 file is the
example: ``atom, type, groups, c_in … latency_ms, latency_min_ms, latency_max_ms, repeats``);
a serial-port backend will produce the same records.

Matching ignores the fused activation: the board's CSV lists convolutions without one, while
lowered atoms carry ReLU6, whose clamp the kernels apply for free in the requantization.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from atomsim.core.errors import ConfigError
from atomsim.nn.atoms import Atom


@dataclass(frozen=True)
class BoardMeasurement:
    """One atom measured on the physical board."""

    atom: Atom
    latency_ms: float  # median of the repeats
    latency_min_ms: float | None = None
    latency_max_ms: float | None = None
    repeats: int = 1

    @property
    def spread(self) -> float | None:
        """(max - min) / median, the repeat spread; None when unknown."""
        if self.latency_min_ms is None or self.latency_max_ms is None or self.latency_ms <= 0:
            return None
        return (self.latency_max_ms - self.latency_min_ms) / self.latency_ms


@dataclass(frozen=True)
class MeasurementSource:
    """Where measurements came from: ``kind`` 'csv' (path + sha256) or 'serial' (port)."""

    kind: str
    location: str
    sha256: str | None
    measurements: tuple[BoardMeasurement, ...]

    @property
    def repeats(self) -> int:
        """The largest repeat count of any measurement (the CSV says 1 for most rows)."""
        return max((m.repeats for m in self.measurements), default=0)

    def describe(self) -> str:
        """E.g. ``csv:/path/file.csv sha256=ab12…``."""
        digest = f" sha256={self.sha256}" if self.sha256 else ""
        return f"{self.kind}:{self.location}{digest}"


def match_key(atom: Atom) -> str:
    """The atom's key without its fused activation (see the module docstring)."""
    return atom.with_(activation="none").key if atom.activation != "none" else atom.key


def read_csv(path: str | Path) -> MeasurementSource:
    """Read a measurement CSV in the paper's layout; the whole file is checked first.

    A malformed file is a :class:`ConfigError` naming the row and column; duplicate atoms are
    an error (one row per distinct atom).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such measurement file: {path}")
    raw = path.read_bytes()
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for a malformed file
        raise ConfigError(f"{path}: cannot read as CSV: {exc}") from exc
    column = "latency_ms" if "latency_ms" in frame.columns else "latency"
    if column not in frame.columns:
        raise ConfigError(f"{path}: no latency_ms (or latency) column")
    out: list[BoardMeasurement] = []
    seen: dict[str, int] = {}
    for index, row in enumerate(frame.to_dict("records"), start=1):
        where = f"{path.name}: row {index}"
        try:
            atom = Atom.from_row(row)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        latency = _number(row.get(column), where, column)
        if latency <= 0:
            raise ConfigError(f"{where}, column {column}: latency must be > 0, got {latency}")
        lo = _number(row["latency_min_ms"], where, "latency_min_ms") \
            if row.get("latency_min_ms") else None
        hi = _number(row["latency_max_ms"], where, "latency_max_ms") \
            if row.get("latency_max_ms") else None
        repeats = _number(row["repeats"], where, "repeats") if row.get("repeats") else 1
        if repeats < 1 or repeats != int(repeats):
            raise ConfigError(f"{where}, column repeats: must be a whole number >= 1, "
                              f"got {row['repeats']!r}")
        repeats = int(repeats)
        _check_spread(lo, latency, hi, where, column)
        key = match_key(atom)
        if key in seen:
            raise ConfigError(f"{where}: same atom as row {seen[key]} ({atom.describe()})")
        seen[key] = index
        out.append(BoardMeasurement(atom, latency, lo, hi, repeats))
    if not out:
        raise ConfigError(f"{path}: no measurement rows")
    return MeasurementSource("csv", str(path.resolve()), hashlib.sha256(raw).hexdigest(),
                             tuple(out))


def _check_spread(lo: float | None, median: float, hi: float | None, where: str,
                  column: str) -> None:
    """min <= median <= max, both given or neither: the fit weighs each measurement by its
    spread (calibration.models.label_weights), so a swapped pair would be trusted wrongly."""
    if (lo is None) != (hi is None):
        given = "latency_min_ms" if lo is not None else "latency_max_ms"
        raise ConfigError(f"{where}: {given} is given without its partner; give both "
                          "latency_min_ms and latency_max_ms or neither")
    if lo is None:
        return
    if lo <= 0:
        raise ConfigError(f"{where}, column latency_min_ms: must be > 0, got {lo}")
    if not lo <= median <= hi:
        raise ConfigError(f"{where}: latency_min_ms {lo} <= {column} {median} <= "
                          f"latency_max_ms {hi} does not hold (min, median and max of the "
                          "repeats)")


def _number(value, where: str, column: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}, column {column}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}, column {column}: {value!r} is not finite")
    return number
