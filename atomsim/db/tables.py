"""AtomDB as a table: CSV / Parquet export in the paper's column layout, and import.

Import reads AtomDB's own export, the shared calibration CSV (``atom`` column, ``latency_ms``
with min/max/repeats) and the paper's CSV (``conv_type``, ``latency``). The whole file is
checked before anything is written; then it goes in as one transaction.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from atomsim.core.errors import ConfigError
from atomsim.db.schema import SOURCES
from atomsim.db.store import AtomDB, Measurement
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
# Columns of other layouts that import understands (or knowingly ignores).
_ALSO_KNOWN = ("atom", "conv_type", "latency", "latency_min_ms", "latency_max_ms", "repeats",
               "MACs/latency")
_INT_COLUMNS = ("cycles", "instructions", "sram_bytes", "flash_bytes")
_TEXT_COLUMNS = ("firmware_hash", "timing_model_version", "emulator_version", "calibration_id",
                 "created_at")
DEFAULT_KERNEL_VARIANT = "external"  # kernels AtomSim did not build (e.g. X-CUBE-AI on a board)


def _format(path: Path, fmt: str | None) -> str:
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt in ("csv", "parquet"):
        return fmt
    raise ConfigError(f"{path}: unknown table format {fmt!r}; use .csv or .parquet")


def export_table(db: AtomDB, path: str | Path, *, board: str | None = None,
                 fmt: str | None = None) -> int:
    """Write ``db``'s measurements (one board, or all) to ``path``; returns the row count.

    Not-applicable fields (Pad's groups, kernel, stride; unknown cycles) are empty cells.
    """
    import pandas as pd

    path = Path(path)
    kind = _format(path, fmt)
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
    try:
        if kind == "csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from exc
    return len(frame)


def _read(path: Path, kind: str):
    import pandas as pd

    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    try:
        if kind == "csv":
            return pd.read_csv(path, dtype=str, keep_default_na=False)
        return pd.read_parquet(path)
    except Exception as exc:  # pandas raises many types for a malformed file
        raise ConfigError(f"{path}: cannot read as {kind}: {exc}") from exc


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


def import_table(db: AtomDB, path: str | Path, *, board: str | None = None,
                 source: str | None = None, kernel_variant: str | None = None,
                 calibration_id: str | None = None, fmt: str | None = None) -> int:
    """Import measurements from a CSV/Parquet table; returns the number of rows written.

    ``board``, ``source`` and ``kernel_variant`` fill rows whose file has no such column
    (a file value that contradicts a given ``board`` is an error). Defaults: source
    ``import``, kernel variant ``external``. For ``source="board"`` without a
    ``calibration_id``, one is derived from the file name and content hash. Flash / MACs
    columns must agree with the atom's conventions. On any error nothing is written and the
    :class:`ConfigError` names the row (1 = first data row) and column.
    """
    path = Path(path)
    kind = _format(path, fmt)
    frame = _read(path, kind)
    columns = [str(c) for c in frame.columns]
    unknown = [c for c in columns if c not in EXPORT_COLUMNS and c not in _ALSO_KNOWN]
    if unknown:
        raise ConfigError(f"{path}: unknown column(s) {', '.join(unknown)}")
    missing = [c for c in _SHAPE if c not in columns]
    if "type" not in columns and "atom" not in columns:
        missing.insert(0, "type")
    if "latency_ms" not in columns and "latency" not in columns:
        missing.append("latency_ms")
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}")
    if source is not None and source not in SOURCES:
        raise ConfigError(f"source must be one of {SOURCES}, got {source!r}")
    if source == "board" and calibration_id is None and "calibration_id" not in columns:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        calibration_id = f"{path.stem}-{digest}"
    latency_column = "latency_ms" if "latency_ms" in columns else "latency"

    measurements: list[Measurement] = []
    seen: dict[tuple, int] = {}
    for index, record in enumerate(frame.to_dict("records"), start=1):
        row = {k: _cell(v) for k, v in record.items()}
        where = f"{path.name}: row {index}"
        try:
            atom = Atom.from_row(row)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        for column, computed in (("Flash", atom.flash_bytes), ("MACs", atom.macs)):
            if row.get(column) is not None:
                given = _number(row[column], where, column)
                if given != computed:
                    raise ConfigError(f"{where}, column {column}: {row[column]} differs from "
                                      f"{computed} computed for {atom.describe()}")
        latency = _number(row.get(latency_column), where, latency_column)
        row_board = row.get("board")
        if board is not None and row_board is not None and row_board != board:
            raise ConfigError(f"{where}, column board: {row_board!r} but importing for {board!r}")
        values: dict[str, Any] = {
            "board": row_board or board,
            "kernel_variant": kernel_variant or row.get("kernel_variant")
            or DEFAULT_KERNEL_VARIANT,
            "source": source or row.get("source") or "import",
        }
        if values["board"] is None:
            raise ConfigError(f"{where}: no board (give one; the file has no board column)")
        for name in _INT_COLUMNS:
            if row.get(name) is not None:
                number = _number(row[name], where, name)
                if number != int(number):
                    raise ConfigError(f"{where}, column {name}: {row[name]!r} is not whole")
                values[name] = int(number)
        for name in _TEXT_COLUMNS:
            if row.get(name) is not None:
                values[name] = str(row[name])
        if calibration_id is not None:
            values["calibration_id"] = calibration_id
        try:
            measurement = Measurement(atom=atom, latency_ms=latency, **values)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        identity = (measurement.board, atom.key, measurement.kernel_variant, measurement.source)
        if identity in seen:
            raise ConfigError(f"{where}: same atom, board, variant and source as row "
                              f"{seen[identity]} ({atom.describe()})")
        seen[identity] = index
        measurements.append(measurement)
    return db.upsert_measurements(measurements)


def _number(value: Any, where: str, column: str) -> float:
    if value is None:
        raise ConfigError(f"{where}, column {column}: empty, a number is needed")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}, column {column}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}, column {column}: {value!r} is not finite")
    return number
