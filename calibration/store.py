"""The calibration package's tables in an AtomDB file (its own; AtomDB's tables untouched).

``emulated_traffic``: per-atom data traffic per board memory, from emulated runs (a cache next
to the emulator's rows in ``measurements``). ``emulated_oom``: atoms that do not fit the board
(region, bytes needed and available), so "does not fit" differs from "not measured".
``calibrations``: one row per calibration (board, source, N, repeats, model and parameters as
JSON, cross-validated error per class, firmware hash, timing-model version).
``calibrated_latency``: per atom and calibration, the calibrated latency with its interval
next to the raw emulated latency and the board's measurement when there is one; status ``ok``,
``oom`` (does not fit: region and bytes), ``no-emulation`` (measured, the emulator could not
run it) or ``no-model`` (emulated, but its class had no measured points); for measured atoms
also the held-back (cross-validated) prediction that the error figures and the plot use.
Recalibrating adds rows under a new id and never rewrites others or the raw measurements.
"""

from __future__ import annotations

from atomsim.db import AtomDB

EXTENSION, VERSION = "calibration", 1

SQL = """
CREATE TABLE IF NOT EXISTS emulated_traffic (
    board          TEXT NOT NULL,
    atom_key       TEXT NOT NULL,
    kernel_variant TEXT NOT NULL,
    region         TEXT NOT NULL,
    role           TEXT NOT NULL,
    reads          INTEGER NOT NULL,
    writes         INTEGER NOT NULL,
    read_bytes     INTEGER NOT NULL,
    write_bytes    INTEGER NOT NULL,
    firmware_hash  TEXT,
    PRIMARY KEY (board, atom_key, kernel_variant, region)
);
CREATE TABLE IF NOT EXISTS emulated_oom (
    board           TEXT NOT NULL,
    atom_key        TEXT NOT NULL,
    kernel_variant  TEXT NOT NULL,
    region          TEXT NOT NULL,
    needed_bytes    INTEGER NOT NULL,
    available_bytes INTEGER NOT NULL,
    firmware_hash   TEXT,
    PRIMARY KEY (board, atom_key, kernel_variant)
);
CREATE TABLE IF NOT EXISTS calibrations (
    id                   TEXT PRIMARY KEY,
    board                TEXT NOT NULL,
    kernel_variant       TEXT NOT NULL,
    source_kind          TEXT NOT NULL CHECK (source_kind IN ('csv', 'serial')),
    source               TEXT NOT NULL,
    source_sha256        TEXT,
    n_points             INTEGER NOT NULL,
    repeats              INTEGER NOT NULL,
    model_json           TEXT NOT NULL,
    cv_error_json        TEXT NOT NULL,
    firmware_hash        TEXT,
    timing_model_version TEXT,
    emulator_version     TEXT,
    created_at           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS calibrated_latency (
    calibration_id     TEXT NOT NULL REFERENCES calibrations (id),
    board              TEXT NOT NULL,
    atom_key           TEXT NOT NULL,
    class              TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('ok', 'oom', 'no-emulation', 'no-model')),
    emulated_ms        REAL,
    calibrated_ms      REAL,
    interval_low_ms    REAL,
    interval_high_ms   REAL,
    interval_level     REAL,
    measured_ms        REAL,
    cv_pred_ms         REAL,
    cv_low_ms          REAL,
    cv_high_ms         REAL,
    used_in_fit        INTEGER NOT NULL DEFAULT 0,
    oom_region         TEXT,
    oom_needed_bytes   INTEGER,
    oom_available_bytes INTEGER,
    PRIMARY KEY (calibration_id, atom_key)
);
CREATE INDEX IF NOT EXISTS calibrated_by_atom ON calibrated_latency (board, atom_key);
"""


def ensure(db: AtomDB) -> None:
    """Create the tables (idempotent), through AtomDB's extension hook when it has one."""
    if hasattr(db, "ensure_tables"):
        db.ensure_tables(EXTENSION, SQL, version=VERSION)
        return
    with db.transaction():  # older AtomDB: the same statements on its connection
        for statement in SQL.split(";"):
            if statement.strip():
                connection(db).execute(statement)


def connection(db: AtomDB):
    """AtomDB's SQLite connection (public ``connection`` when present)."""
    return db.connection if hasattr(type(db), "connection") else db._conn
