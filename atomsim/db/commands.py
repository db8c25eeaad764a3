"""What ``atomsim db stats|query|export|import`` do, as plain functions for the CLI to call.

Each takes the values of its command-line options and returns data (the CLI prints it).
``stats``, ``query`` and ``export`` open the file read-only: they never take a write lock, so
they work beside a running sweep and never change the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atomsim.core.errors import ConfigError
from atomsim.db.store import AtomDB


def db_stats(db_path: str | Path, *, board: str | None = None) -> dict[str, Any]:
    """``atomsim db stats DB [--board]``: counts per board, source, kernel variant, atom type."""
    with AtomDB.open(db_path, readonly=True) as db:
        return db.stats(board=board)


def format_stats(stats: dict[str, Any]) -> str:
    """Plain-text rendering of :func:`db_stats`."""
    only = f", board {stats['board']}" if stats.get("board") else ""
    lines = [f"AtomDB {stats['path']} (schema {stats['schema_version']}{only})",
             f"  atoms: {stats['atoms']}   measurements: {stats['measurements']}"
             f"   failures: {stats.get('failures', 0)}"]
    for board, by_source in stats["boards"].items():
        parts = ", ".join(f"{source} {n}" for source, n in by_source.items())
        lines.append(f"  {board}: {parts}")
    if stats["kernel_variants"]:
        lines.append("  kernel variants: " + ", ".join(
            f"{v} {n}" for v, n in stats["kernel_variants"].items()))
    if stats["atom_types"]:
        lines.append("  atom types: " + ", ".join(
            f"{t} {n}" for t, n in stats["atom_types"].items()))
    return "\n".join(lines)


def db_query(db_path: str | Path, *, board: str | None = None, atom_type: str | None = None,
             variant: str | None = None, source: str | None = None, limit: int | None = 50):
    """``atomsim db query DB [--board] [--type] [--variant] [--source] [--limit]``.

    Returns a DataFrame in the export layout (the paper's columns first). ``limit`` is a
    number of rows >= 1, or None for all.
    """
    import pandas as pd

    from atomsim.db.tables import EXPORT_COLUMNS

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 1):
        raise ConfigError(f"--limit must be a whole number >= 1, got {limit!r}")
    with AtomDB.open(db_path, readonly=True) as db:
        found = db.measurements(board, variant=variant, source=source, atom_type=atom_type)
    rows = []
    for m in found[:limit] if limit is not None else found:
        row = m.atom.as_row()
        row.update({name: getattr(m, name) for name in EXPORT_COLUMNS
                    if name not in row and hasattr(m, name)})
        rows.append(row)
    return pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))


def db_export(db_path: str | Path, out_path: str | Path, *, board: str | None = None) -> int:
    """``atomsim db export DB OUT.csv|OUT.parquet [--board]``: rows written."""
    with AtomDB.open(db_path, readonly=True) as db:
        return db.export(out_path, board=board)


def db_import(db_path: str | Path, in_path: str | Path, *, board: str | None = None,
              source: str | None = None, kernel_variant: str | None = None,
              calibration_id: str | None = None) -> int:
    """``atomsim db import DB FILE [--board B] [--source S] [--kernel-variant V]``: rows.

    The file's own ``source`` column is kept; a ``source`` that contradicts it is refused.
    """
    with AtomDB.open(db_path) as db:
        return db.import_file(in_path, board=board, source=source,
                              kernel_variant=kernel_variant, calibration_id=calibration_id)
