"""AtomDB: per-board atom measurements in one SQLite file (WAL: many readers, one writer).

Every write goes through :meth:`AtomDB.transaction`; a batch is one transaction, so a sweep
killed mid-write leaves either the whole batch or none of it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from atomsim.core.errors import ConfigError
from atomsim.db.schema import SCHEMA, SCHEMA_VERSION, SOURCES
from atomsim.nn.atoms import Atom, format_padding, parse_padding

# When several measurements of one atom exist and the caller names no source, prefer a real
# board, then the emulator, then imported numbers.
SOURCE_PREFERENCE = ("board", "emulator", "import")
_CHUNK = 500  # keys per IN (...) query, well under SQLite's parameter limit


class MissingAtoms(ConfigError):
    """A query needs atoms that AtomDB has not measured for the board (``.missing``: atoms)."""

    def __init__(self, board: str, missing: Sequence[Atom], what: str = "query"):
        self.board, self.missing = board, list(missing)
        shown = "; ".join(a.describe() for a in self.missing[:10])
        more = f" and {len(self.missing) - 10} more" if len(self.missing) > 10 else ""
        super().__init__(f"{what}: AtomDB has no measurement on {board} for "
                         f"{len(self.missing)} atom(s): {shown}{more}")


def _now() -> str:
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
                or not math.isfinite(latency) or latency < 0:
            raise ConfigError(f"latency_ms must be a finite number >= 0, got {latency!r}")
        for name in ("cycles", "instructions", "sram_bytes", "flash_bytes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                      or value < 0):
                raise ConfigError(f"{name} must be an int >= 0 or None, got {value!r}")

    @property
    def key(self) -> str:
        """The atom's key."""
        return self.atom.key


_PROVENANCE = tuple(f.name for f in fields(Measurement) if f.name not in ("atom",))


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


class AtomDB:
    """An AtomDB file. Use ``with AtomDB.open(path) as db:``; one connection per process."""

    def __init__(self, path: str | Path, *, must_exist: bool = False):
        self.path = Path(path)
        if must_exist and not self.path.is_file():
            raise ConfigError(f"no AtomDB at {self.path}")
        if not self.path.parent.is_dir():
            raise ConfigError(f"cannot create AtomDB at {self.path}: no such directory")
        try:
            self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path} is not an AtomDB (SQLite says: {exc})") from exc
        self._depth = 0
        self._init_schema()

    @classmethod
    def open(cls, path: str | Path, *, must_exist: bool = False) -> AtomDB:
        """Open (creating when absent, unless ``must_exist``) the AtomDB at ``path``."""
        return cls(path, must_exist=must_exist)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None  # type: ignore[assignment]

    def _init_schema(self) -> None:
        with self.transaction():
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    self._conn.execute(statement)
            row = self._conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO schema_version (version) VALUES (?)",
                                   (SCHEMA_VERSION,))
            elif row[0] != SCHEMA_VERSION:
                raise ConfigError(f"{self.path} has AtomDB schema version {row[0]}, this "
                                  f"AtomSim reads version {SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[AtomDB]:
        """All writes inside commit together or not at all (nesting joins the outer one)."""
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield self
        except BaseException:
            self._depth = 0
            self._conn.execute("ROLLBACK")
            raise
        self._depth = 0
        self._conn.execute("COMMIT")

    # -- writing --------------------------------------------------------------------------------

    def upsert_atoms(self, atoms: Iterable[Atom]) -> int:
        """Add atoms (board-independent rows) that are not yet stored; returns how many given."""
        rows = [_atom_row(a) for a in atoms]
        with self.transaction():
            self._conn.executemany(
                f"INSERT INTO atoms ({', '.join(_ATOM_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_ATOM_COLUMNS))}) "
                "ON CONFLICT (atom_key) DO NOTHING", rows)
        return len(rows)

    def upsert_measurements(self, measurements: Iterable[Measurement]) -> int:
        """Insert or replace measurements in ONE transaction; returns how many were written.

        The same (board, atom, kernel variant, source) written again replaces the earlier row,
        so repeating a batch leaves the row count unchanged.
        """
        columns = ("atom_key", *_PROVENANCE)
        sql = (f"INSERT INTO measurements ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' * len(columns))}) "
               "ON CONFLICT (board, atom_key, kernel_variant, source) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in _PROVENANCE
                           if c not in ("board", "kernel_variant", "source")))
        count = 0
        with self.transaction():
            for m in measurements:  # a generator that raises here rolls everything back
                self.upsert_atoms([m.atom])
                values = [getattr(m, c) for c in _PROVENANCE]
                if m.created_at is None:
                    values[_PROVENANCE.index("created_at")] = _now()
                self._conn.execute(sql, (m.key, *values))
                count += 1
        return count

    # -- reading --------------------------------------------------------------------------------

    def has(self, board: str, atom: Atom | str, variant: str, source: str | None = None) -> bool:
        """Whether ``atom`` (or its key) has a measurement on ``board`` with ``variant``."""
        return not self.missing_keys(board, [atom if isinstance(atom, str) else atom.key],
                                     variant, source)

    def missing_keys(self, board: str, keys: Iterable[str], variant: str,
                     source: str | None = None) -> list[str]:
        """The keys (in the given order, deduplicated) not yet measured: resume a sweep."""
        wanted = list(dict.fromkeys(keys))
        present: set[str] = set()
        for chunk in _chunks(wanted):
            sql = (f"SELECT atom_key FROM measurements WHERE board = ? AND kernel_variant = ? "
                   f"AND atom_key IN ({', '.join('?' * len(chunk))})")
            params: list[Any] = [board, variant, *chunk]
            if source is not None:
                sql += " AND source = ?"
                params.append(source)
            present.update(r[0] for r in self._conn.execute(sql, params))
        return [k for k in wanted if k not in present]

    def measurements(self, board: str | None = None, *, variant: str | None = None,
                     source: str | None = None, atom_type: str | None = None,
                     keys: Sequence[str] | None = None) -> list[Measurement]:
        """Stored measurements matching every filter given, ordered by board and atom."""
        where, params = _filters(board=board, variant=variant, source=source,
                                 atom_type=atom_type)
        base = (f"SELECT {_SELECT} FROM measurements m JOIN atoms a USING (atom_key)"
                + (f" WHERE {' AND '.join(where)}" if where else ""))
        order = " ORDER BY m.board, a.type, m.atom_key, m.kernel_variant, m.source"
        if keys is None:
            return [_measurement(r) for r in self._conn.execute(base + order, params)]
        out: list[Measurement] = []
        for chunk in _chunks(list(dict.fromkeys(keys))):
            sql = (base + (" AND " if where else " WHERE ")
                   + f"m.atom_key IN ({', '.join('?' * len(chunk))})" + order)
            out += [_measurement(r) for r in self._conn.execute(sql, [*params, *chunk])]
        return out

    def lookup(self, board: str, atom: Atom, variant: str | None = None,
               source: str | None = None) -> Measurement | None:
        """The measurement of exactly this atom on ``board``, or None.

        With several matches (variants/sources), the source order board > emulator > import
        decides, then the newest.
        """
        found = self.measurements(board, variant=variant, source=source, keys=[atom.key])
        return _best(found).get(atom.key)

    def sum_atoms(self, board: str, atoms: Sequence[Atom], variant: str | None = None,
                  source: str | None = None) -> Totals:
        """Sum latency (and cycles) over ``atoms`` (repeats counted); peak SRAM is the max.

        Raises :class:`MissingAtoms` naming every atom without a measurement.
        """
        best = _best(self.measurements(board, variant=variant, source=source,
                                       keys=[a.key for a in atoms]))
        missing = list({a.key: a for a in atoms if a.key not in best}.values())
        if missing:
            raise MissingAtoms(board, missing, "sum_atoms")
        chosen = [best[a.key] for a in atoms]
        cycles = [m.cycles for m in chosen]
        srams = [m.sram_bytes for m in chosen]
        return Totals(
            board=board, atoms=len(atoms),
            latency_ms=math.fsum(m.latency_ms for m in chosen),
            cycles=None if None in cycles else sum(cycles),  # type: ignore[arg-type]
            flash_bytes=sum(a.flash_bytes for a in atoms),
            peak_sram_bytes=None if None in srams or not srams else max(srams),  # type: ignore
            peak_activation_bytes=max((a.input_bytes + a.output_bytes for a in atoms),
                                      default=0),
            macs=sum(a.macs for a in atoms))

    def efficiency(self, board: str, variant: str | None = None, source: str | None = None):
        """Computation efficiency (MACs per ms) of every measured atom with MACs, as a DataFrame.

        Columns: type, atom_key, the shape columns, macs, latency_ms, macs_per_ms,
        kernel_variant, source; sorted by type, then efficiency (highest first).
        """
        import pandas as pd

        rows = []
        for m in self.measurements(board, variant=variant, source=source):
            a = m.atom
            if a.macs == 0 or m.latency_ms <= 0:
                continue
            rows.append({
                "type": a.type, "atom_key": a.key, "groups": a.groups, "c_in": a.c_in,
                "h_in": a.h_in, "w_in": a.w_in, "k1": a.k1, "k2": a.k2, "c_out": a.c_out,
                "h_out": a.h_out, "w_out": a.w_out, "stride": a.stride, "macs": a.macs,
                "latency_ms": m.latency_ms, "macs_per_ms": a.macs / m.latency_ms,
                "kernel_variant": m.kernel_variant, "source": m.source})
        columns = ["type", "atom_key", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out",
                   "h_out", "w_out", "stride", "macs", "latency_ms", "macs_per_ms",
                   "kernel_variant", "source"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.sort_values(["type", "macs_per_ms"], ascending=[True, False],
                                 ignore_index=True)

    def stats(self) -> dict[str, Any]:
        """Counts: atoms, measurements, per board and source, per kernel variant, per type."""
        q = self._conn.execute
        boards: dict[str, dict[str, int]] = {}
        for board, source, n in q("SELECT board, source, COUNT(*) FROM measurements "
                                  "GROUP BY board, source ORDER BY board, source"):
            boards.setdefault(board, {})[source] = n
        return {
            "path": str(self.path),
            "schema_version": q("SELECT version FROM schema_version").fetchone()[0],
            "atoms": q("SELECT COUNT(*) FROM atoms").fetchone()[0],
            "measurements": q("SELECT COUNT(*) FROM measurements").fetchone()[0],
            "boards": boards,
            "kernel_variants": dict(q("SELECT kernel_variant, COUNT(*) FROM measurements "
                                      "GROUP BY kernel_variant ORDER BY kernel_variant")),
            "atom_types": dict(q("SELECT type, COUNT(*) FROM atoms GROUP BY type "
                                 "ORDER BY type")),
        }

    # -- files ------------------------------------------------------------------------------------

    def export(self, path: str | Path, board: str | None = None) -> int:
        """Write measurements as CSV or Parquet (by suffix) in the paper's layout; row count."""
        from atomsim.db.tables import export_table

        return export_table(self, path, board=board)

    def import_file(self, path: str | Path, board: str | None = None, **options: Any) -> int:
        """Import a CSV/Parquet table (see :func:`atomsim.db.tables.import_table`)."""
        from atomsim.db.tables import import_table

        return import_table(self, path, board=board, **options)


_ATOM_COLUMNS = ("atom_key", "type", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out",
                 "h_out", "w_out", "stride", "padding", "activation", "flash", "macs",
                 "input_bytes", "output_bytes")
_ATOM_FIELDS = ("type", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out", "h_out",
                "w_out", "stride", "padding", "activation")
_SELECT = ", ".join([*(f"a.{c}" for c in _ATOM_FIELDS), *(f"m.{c}" for c in _PROVENANCE)])


def _atom_row(atom: Atom) -> tuple:
    return (atom.key, atom.type, atom.groups, atom.c_in, atom.h_in, atom.w_in, atom.k1,
            atom.k2, atom.c_out, atom.h_out, atom.w_out, atom.stride,
            format_padding(atom.padding), atom.activation, atom.flash_bytes, atom.macs,
            atom.input_bytes, atom.output_bytes)


def _measurement(row: Sequence[Any]) -> Measurement:
    n = len(_ATOM_FIELDS)
    atom_values = dict(zip(_ATOM_FIELDS, row[:n], strict=True))
    atom_values["padding"] = parse_padding(atom_values["padding"])
    return Measurement(atom=Atom(**atom_values), **dict(zip(_PROVENANCE, row[n:], strict=True)))


def _filters(**given: str | None) -> tuple[list[str], list[Any]]:
    column = {"board": "m.board", "variant": "m.kernel_variant", "source": "m.source",
              "atom_type": "a.type"}
    where, params = [], []
    for name, value in given.items():
        if value is not None:
            where.append(f"{column[name]} = ?")
            params.append(value)
    return where, params


def _best(found: Iterable[Measurement]) -> dict[str, Measurement]:
    """Per atom key, the preferred measurement (source order, then newest)."""
    best: dict[str, Measurement] = {}
    for m in found:
        held = best.get(m.key)
        rank = (-SOURCE_PREFERENCE.index(m.source), m.created_at or "")
        if held is None or rank > (-SOURCE_PREFERENCE.index(held.source),
                                   held.created_at or ""):
            best[m.key] = m
    return best


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]
