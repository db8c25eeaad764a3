"""AtomDB's SQLite schema, its identity, and the migrations from older schema versions.

An AtomDB file is recognised by ``PRAGMA application_id`` (:data:`APPLICATION_ID`, set since
schema version 2); a version-1 file (before the id) by its three tables. Anything else is
another program's file and is never written to. ``MIGRATIONS[i]`` turns version ``i + 1`` into
``i + 2``; opening an older file for writing applies the steps it lacks in one transaction.
Other packages may keep their own tables in the same file (see ``AtomDB.ensure_tables``).
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 2
APPLICATION_ID = 0x41544D44  # "ATMD" in the SQLite header (offset 68)
OLDEST_READABLE = 1  # read-only commands read files of this version and newer, unmigrated

SOURCES = ("emulator", "board", "import")

# The tables AtomDB itself owns (a package's own tables go through ensure_tables).
CORE_TABLES = ("schema_version", "atoms", "measurements", "failures", "atomdb_extensions")
V1_TABLES = ("schema_version", "atoms", "measurements")

# atoms: board-independent, one row per atom key (the paper's columns + ours).
# measurements: one row per (board, atom, kernel variant, source), with its provenance.
_V1 = """
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS atoms (
    atom_key     TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    groups       INTEGER NOT NULL,
    c_in         INTEGER NOT NULL,
    h_in         INTEGER NOT NULL,
    w_in         INTEGER NOT NULL,
    k1           INTEGER NOT NULL,
    k2           INTEGER NOT NULL,
    c_out        INTEGER NOT NULL,
    h_out        INTEGER NOT NULL,
    w_out        INTEGER NOT NULL,
    stride       INTEGER NOT NULL,
    padding      TEXT NOT NULL,
    activation   TEXT NOT NULL,
    flash        INTEGER NOT NULL,
    macs         INTEGER NOT NULL,
    input_bytes  INTEGER NOT NULL,
    output_bytes INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS atoms_by_type ON atoms (type, c_in, c_out, h_in);
CREATE TABLE IF NOT EXISTS measurements (
    id                   INTEGER PRIMARY KEY,
    board                TEXT NOT NULL,
    atom_key             TEXT NOT NULL REFERENCES atoms (atom_key),
    kernel_variant       TEXT NOT NULL,
    source               TEXT NOT NULL CHECK (source IN ('emulator', 'board', 'import')),
    latency_ms           REAL NOT NULL CHECK (latency_ms >= 0),
    cycles               INTEGER,
    instructions         INTEGER,
    sram_bytes           INTEGER,
    flash_bytes          INTEGER,
    firmware_hash        TEXT,
    timing_model_version TEXT,
    emulator_version     TEXT,
    calibration_id       TEXT,
    created_at           TEXT NOT NULL,
    UNIQUE (board, atom_key, kernel_variant, source)
);
CREATE INDEX IF NOT EXISTS measurements_by_atom ON measurements (atom_key, board);
CREATE INDEX IF NOT EXISTS measurements_by_board ON measurements (board, kernel_variant, source);
"""

# Version 2: the application id; sweep failures kept as rows (an atom that does not fit or
# faults is stored with its reason, and a later successful measurement removes the row); the
# registry of packages that keep their own tables in the file.
_V1_TO_V2 = f"""
CREATE TABLE IF NOT EXISTS failures (
    board          TEXT NOT NULL,
    atom_key       TEXT NOT NULL,
    kernel_variant TEXT NOT NULL,
    error          TEXT NOT NULL,
    reason         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (board, atom_key, kernel_variant)
);
CREATE TABLE IF NOT EXISTS atomdb_extensions (
    name          TEXT PRIMARY KEY,
    version       INTEGER NOT NULL,
    registered_at TEXT NOT NULL
);
PRAGMA application_id = {APPLICATION_ID};
"""


@dataclass(frozen=True)
class Migration:
    """One step: SQL that turns a file of version ``from_version`` into ``from_version + 1``."""

    from_version: int
    what: str
    sql: str


MIGRATIONS = (
    Migration(1, "application id, failures table, extension registry", _V1_TO_V2),
)

# A new file is version 1 created, then migrated: one path, so new and migrated files match.
CREATE = _V1


def statements(script: str) -> list[str]:
    """The non-empty statements of a script (no ';' inside literals in AtomDB's own SQL)."""
    return [s.strip() for s in script.split(";") if s.strip()]


assert [m.from_version for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION)), \
    "MIGRATIONS must hold one step per version"
