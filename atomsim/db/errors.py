"""AtomDB's named errors: what can be wrong with the file, its state, or a table to import.

Table problems are the user's input (exit code 2, like every ConfigError); problems with the
database file itself have exit codes 20-24 so that scripts can tell "busy, try later" from
"not an AtomDB".
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from pathlib import Path

from atomsim.core.errors import ConfigError


class AtomDBError(ConfigError):
    """Base of AtomDB's errors about the database file."""

    exit_code = 2
    status = "db-error"


class NoAtomDB(AtomDBError):
    """A reading command names a file that does not exist."""

    status = "no-db"


class NotAnAtomDB(AtomDBError):
    """The file is not an AtomDB (another program's SQLite file, a CSV, a directory...).

    AtomDB identifies its files before writing anything, so such a file is never modified.
    """

    exit_code = 20
    status = "not-an-atomdb"


class SchemaVersionError(AtomDBError):
    """An AtomDB of a schema version this AtomSim cannot read or migrate."""

    exit_code = 21
    status = "schema-version"


class DatabaseReadOnly(AtomDBError):
    """A writing command on a file (or directory) that cannot or must not be written."""

    exit_code = 22
    status = "db-read-only"


class DatabaseBusy(AtomDBError):
    """Another process held the write lock for longer than the busy timeout."""

    exit_code = 23
    status = "db-busy"


class DatabaseFull(AtomDBError):
    """The disk (or the process's file-size limit) is full; the transaction was rolled back."""

    exit_code = 24
    status = "db-full"


class TableError(ConfigError):
    """A table to import (CSV / Parquet) cannot be read or has a bad value."""

    status = "bad-table"


class TableFormatError(TableError):
    """The file is not a readable UTF-8 CSV / Parquet table (binary, UTF-16, a directory...)."""


class UnknownColumn(TableError):
    """A column the importer does not know (often a misspelling; the message suggests one)."""

    def __init__(self, path: Path | str, unknown: Iterable[str], known: Iterable[str]):
        known = list(known)
        parts = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
            parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        self.columns = list(unknown)
        super().__init__(f"{path}: unknown column(s) {', '.join(parts)}")


class BadTableValue(TableError):
    """One cell is out of range or malformed: names the file, the row and the column."""

    def __init__(self, path: Path | str, row: int, column: str | None, problem: str):
        self.path, self.row, self.column = str(path), row, column
        where = f"{Path(path).name}: row {row}" + (f", column {column}" if column else "")
        super().__init__(f"{where}: {problem}")


class UnknownBoard(TableError):
    """A board name that is not in boards.toml."""


class OutputError(ConfigError):
    """An output file cannot be written (a directory, no such directory, read-only, full)."""

    status = "cannot-write"


class SourceConflict(TableError):
    """``--source`` contradicts the file's own ``source`` column."""


def close_match(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or an empty string."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
