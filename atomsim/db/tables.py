"""AtomDB as a table: CSV / Parquet export in the paper's column layout, and import.

Import reads AtomDB's own export, the shared calibration CSV (``atom`` column, ``latency_ms``
with min/max/repeats) and the paper's CSV (``conv_type``, ``latency``). The whole file is
checked before anything is written (the format, every column name, every cell's range, board
names, the source); then it goes in as one transaction. This module works on any object with
AtomDB's ``measurements`` and ``upsert_measurements`` methods (it does not import the store).
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Protocol

from atomsim.boards import board_ids
from atomsim.core.errors import ConfigError
from atomsim.core.paths import may_write
from atomsim.db.errors import (
    BadTableValue,
    OutputError,
    SourceConflict,
    TableFormatError,
    UnknownBoard,
    UnknownColumn,
    close_match,
)
from atomsim.db.records import MAX_INT, MAX_LATENCY_MS, Measurement
from atomsim.db.schema import SOURCES
from atomsim.nn.atoms import Atom, format_padding

# The paper's columns first, then ours.
EXPORT_COLUMNS = (
    "type", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out", "h_out", "w_out",
    "Flash", "MACs", "latency_ms",
    "stride", "padding", "activation", "board", "cycles", "instructions", "sram_bytes",
    "kernel_variant", "firmware_hash", "timing_model_version",
    "emulator_version", "calibration_id", "source", "flash_bytes", "created_at",
)
_SHAPE = ("c_in", "h_in", "w_in", "c_out", "h_out", "w_out")
_DIMENSIONS = ("groups", *_SHAPE, "k1", "k2", "stride")
MAX_DIMENSION = 2**31 - 1  # the harness's int32 dimension fields
# Columns of other layouts that import understands (or knowingly ignores).
ALSO_KNOWN_COLUMNS = ("atom", "conv_type", "latency", "latency_min_ms", "latency_max_ms", "repeats",
               "MACs/latency")
_INT_COLUMNS = ("cycles", "instructions", "sram_bytes", "flash_bytes")
_TEXT_COLUMNS = ("firmware_hash", "timing_model_version", "emulator_version", "calibration_id",
                 "created_at")
DEFAULT_KERNEL_VARIANT = "external"  # kernels AtomSim did not build (e.g. X-CUBE-AI on a board)
_SQLITE_MAGIC = b"SQLite format 3\x00"


class MeasurementStore(Protocol):
    """What export and import need of an AtomDB."""

    def measurements(self, board: str | None = None) -> list[Measurement]:
        """Stored measurements (of one board, or all)."""

    def upsert_measurements(self, measurements: list[Measurement]) -> int:
        """Write measurements in one transaction."""


def _format(path: Path, fmt: str | None) -> str:
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt in ("csv", "parquet"):
        return fmt
    raise TableFormatError(f"{path}: unknown table format {fmt!r}; use .csv or .parquet")


def _check_output(path: Path) -> None:
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a directory (name a file)")
    if not path.parent.is_dir():
        raise OutputError(f"cannot write {path}: no such directory {path.parent}")
    for target in (path.parent, path):
        if target.exists() and not may_write(target):
            raise OutputError(f"cannot write {path}: {target} is read-only")




def export_table(db: MeasurementStore, path: str | Path, *, board: str | None = None,
                 fmt: str | None = None) -> int:
    """Write ``db``'s measurements (one board, or all) to ``path``; returns the row count.

    Not-applicable fields (Pad's groups, kernel, stride; unknown cycles) are empty cells. The
    file is written next to ``path`` and renamed into place: never a half-written table.
    """
    import pandas as pd

    path = Path(path)
    kind = _format(path, fmt)
    _check_output(path)
    rows = []
    for m in db.measurements(board):
        a = m.atom
        row: dict[str, Any] = {
            "type": a.type, "groups": a.groups or None, "c_in": a.c_in, "h_in": a.h_in,
            "w_in": a.w_in, "k1": a.k1 or None, "k2": a.k2 or None, "c_out": a.c_out,
            "h_out": a.h_out, "w_out": a.w_out, "Flash": a.flash_bytes, "MACs": a.macs,
            "latency_ms": m.latency_ms, "stride": a.stride or None,
            "padding": format_padding(a.padding), "activation": a.activation,
        }
        for name in EXPORT_COLUMNS[len(row):]:
            row[name] = getattr(m, name)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))
    for name in ("groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out", "h_out", "w_out",
                 "Flash", "MACs", "stride", *_INT_COLUMNS):
        frame[name] = frame[name].astype("Int64")
    frame["latency_ms"] = frame["latency_ms"].astype("float64")
    for name in ("type", "padding", "activation", "board", "kernel_variant", "source",
                 *_TEXT_COLUMNS):
        frame[name] = frame[name].astype("string")
    fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        if kind == "csv":
            frame.to_csv(partial, index=False)
        else:
            frame.to_parquet(partial, index=False)
        os.replace(partial, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; nothing written") \
            from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return len(frame)


def _read(path: Path, kind: str):
    import pandas as pd

    if path.is_dir():
        raise TableFormatError(f"{path} is a directory; a .{kind} file is expected")
    if not path.is_file():
        raise TableFormatError(f"no such file: {path}")
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise TableFormatError(f"cannot read {path}: {exc.strerror}") from None
    if kind == "csv":
        problem = None
        if head.startswith(b"PAR1"):
            problem = "is a Parquet file, not a CSV (name it .parquet)"
        elif head.startswith(_SQLITE_MAGIC):
            problem = "is an SQLite database, not a CSV"
        elif head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            problem = "is UTF-16 text; save the CSV as UTF-8"
        elif b"\x00" in head:
            problem = "is a binary file, not a CSV"
        elif not head.strip():
            problem = "is empty, not a CSV with a header row"
        if problem:
            raise TableFormatError(f"{path} {problem}")
    elif not head.startswith(b"PAR1"):
        raise TableFormatError(f"{path} is not a Parquet file (no PAR1 magic)")
    try:
        if kind == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        return pd.read_parquet(path)
    except UnicodeDecodeError as exc:
        raise TableFormatError(f"{path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02X} "
                               f"at offset {exc.start}); save the CSV as UTF-8") from None
    except Exception as exc:  # pandas raises many types for a malformed file
        raise TableFormatError(f"{path}: cannot read as {kind}: {exc}") from None


def _cell(value: Any) -> Any:
    """None for empty / NA cells, stripped text otherwise."""
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _whole(value: Any, path: Path, row: int, column: str, low: int, high: int) -> int:
    """A cell as a whole number in ``[low, high]``, or a :class:`BadTableValue`."""
    number = _number(value, path, row, column)
    if number != math.floor(number):
        raise BadTableValue(path, row, column, f"{value!r} is not a whole number")
    if not low <= number <= high:
        raise BadTableValue(path, row, column, f"{value} is out of range ({low} to {high})")
    return int(number)


def _number(value: Any, path: Path, row: int, column: str) -> float:
    if value is None:
        raise BadTableValue(path, row, column, "empty, a number is needed")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise BadTableValue(path, row, column, f"{value!r} is not a number") from None
    if not math.isfinite(number):
        raise BadTableValue(path, row, column, f"{value!r} is not a finite number")
    return number


def _check_columns(path: Path, columns: list[str]) -> None:
    known = (*EXPORT_COLUMNS, *ALSO_KNOWN_COLUMNS)
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise UnknownColumn(path, unknown, known)
    missing = [c for c in _SHAPE if c not in columns]
    if "type" not in columns and "atom" not in columns:
        missing.insert(0, "type")
    if "latency_ms" not in columns and "latency" not in columns:
        missing.append("latency_ms")
    if missing:
        raise TableFormatError(f"{path}: missing column(s) {', '.join(missing)}")


def import_table(db: MeasurementStore, path: str | Path, *, board: str | None = None,
                 source: str | None = None, kernel_variant: str | None = None,
                 calibration_id: str | None = None, fmt: str | None = None) -> int:
    """Import measurements from a CSV/Parquet table; returns the number of rows written.

    ``board`` and ``kernel_variant`` fill rows whose file has no such column (a file value
    that contradicts a given ``board`` is an error). The file's own ``source`` column is
    kept; ``source`` fills it where the file has none, and contradicting it is a
    :class:`SourceConflict` (an emulator export is never turned into board measurements).
    Defaults: source ``import``, kernel variant ``external``. For ``source="board"`` without
    a ``calibration_id``, one is derived from the file name and content hash. Board names
    must be AtomSim's; Flash / MACs columns must agree with the atom's conventions; numbers
    must be finite and in range. On any error nothing is written, and the error names the
    file, the row (1 = first data row) and the column.
    """
    path = Path(path)
    kind = _format(path, fmt)
    if source is not None and source not in SOURCES:
        raise ConfigError(f"source must be one of {SOURCES}, got {source!r}"
                          + close_match(str(source), SOURCES))
    boards = board_ids()
    if board is not None and board not in boards:
        raise UnknownBoard(f"unknown board {board!r}{close_match(board, boards)}; valid "
                           f"boards: {', '.join(boards)}")
    frame = _read(path, kind)
    columns = [str(c) for c in frame.columns]
    _check_columns(path, columns)
    if source == "board" and calibration_id is None and "calibration_id" not in columns:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        calibration_id = f"{path.stem}-{digest}"
    latency_column = "latency_ms" if "latency_ms" in columns else "latency"

    measurements: list[Measurement] = []
    seen: dict[tuple, int] = {}
    for index, record in enumerate(frame.to_dict("records"), start=1):
        row = {k: _cell(v) for k, v in record.items()}
        measurements.append(_measurement(path, index, row, board=board, source=source,
                                         kernel_variant=kernel_variant,
                                         calibration_id=calibration_id,
                                         latency_column=latency_column, boards=boards))
        m = measurements[-1]
        identity = (m.board, m.key, m.kernel_variant, m.source)
        if identity in seen:
            raise BadTableValue(path, index, None, f"same atom, board, variant and source as "
                                f"row {seen[identity]} ({m.atom.describe()})")
        seen[identity] = index
    return db.upsert_measurements(measurements)


def _measurement(path: Path, index: int, row: dict[str, Any], *, board: str | None,
                 source: str | None, kernel_variant: str | None, calibration_id: str | None,
                 latency_column: str, boards: tuple[str, ...]) -> Measurement:
    """One checked row as a Measurement (every problem names the row and the column)."""
    for name in _DIMENSIONS:
        if row.get(name) is not None:
            row[name] = _whole(row[name], path, index, name, 0, MAX_DIMENSION)
    try:
        atom = Atom.from_row(row)
    except ConfigError as exc:
        raise BadTableValue(path, index, None, str(exc)) from None
    for name, value in (("MACs", atom.macs), ("Flash", atom.flash_bytes),
                        ("input bytes", atom.input_bytes), ("output bytes", atom.output_bytes)):
        if value > MAX_INT:
            raise BadTableValue(path, index, None, f"{atom.describe()}: {name} {value} exceed "
                                "SQLite's 64-bit integers")
    for column, computed in (("Flash", atom.flash_bytes), ("MACs", atom.macs)):
        if row.get(column) is not None:
            given = _whole(row[column], path, index, column, 0, MAX_INT)
            if given != computed:
                raise BadTableValue(path, index, column, f"{row[column]} differs from "
                                    f"{computed} computed for {atom.describe()}")
    latency = _number(row.get(latency_column), path, index, latency_column)
    if not 0 <= latency <= MAX_LATENCY_MS:
        raise BadTableValue(path, index, latency_column,
                            f"{row[latency_column]} is out of range (0 to {MAX_LATENCY_MS:g} ms)")
    row_board = row.get("board")
    if row_board is not None:
        row_board = str(row_board)
        if row_board not in boards:
            raise BadTableValue(path, index, "board", f"unknown board {row_board!r}"
                                f"{close_match(row_board, boards)}; valid boards: "
                                f"{', '.join(boards)}")
        if board is not None and row_board != board:
            raise BadTableValue(path, index, "board",
                                f"{row_board!r} but importing for {board!r}")
    row_source = row.get("source")
    if row_source is not None:
        row_source = str(row_source)
        if row_source not in SOURCES:
            raise BadTableValue(path, index, "source", f"{row_source!r} is not one of "
                                f"{', '.join(SOURCES)}{close_match(row_source, SOURCES)}")
        if source is not None and row_source != source:
            raise SourceConflict(f"{path.name}: row {index}, column source: the file says "
                                 f"{row_source!r}, --source says {source!r}; leave --source "
                                 "out to keep the file's sources")
    values: dict[str, Any] = {
        "board": row_board or board,
        "kernel_variant": kernel_variant or row.get("kernel_variant")
        or DEFAULT_KERNEL_VARIANT,
        "source": row_source or source or "import",
    }
    if values["board"] is None:
        raise BadTableValue(path, index, "board",
                            "no board (give one; the file has no board column)")
    for name in _INT_COLUMNS:
        if row.get(name) is not None:
            values[name] = _whole(row[name], path, index, name, 0, MAX_INT)
    for name in _TEXT_COLUMNS:
        if row.get(name) is not None:
            values[name] = str(row[name])
    if calibration_id is not None:
        values["calibration_id"] = calibration_id
    try:
        return Measurement(atom=atom, latency_ms=latency, **values)
    except ConfigError as exc:
        raise BadTableValue(path, index, None, str(exc)) from None
