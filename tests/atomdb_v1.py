"""An AtomDB of schema version 1 as the first release wrote it (no application id, no
failures table): the starting point of the migration tests and of the bad-input corpus."""

V1_SQL = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE atoms (atom_key TEXT PRIMARY KEY, type TEXT NOT NULL, groups INTEGER NOT NULL,
    c_in INTEGER NOT NULL, h_in INTEGER NOT NULL, w_in INTEGER NOT NULL, k1 INTEGER NOT NULL,
    k2 INTEGER NOT NULL, c_out INTEGER NOT NULL, h_out INTEGER NOT NULL,
    w_out INTEGER NOT NULL, stride INTEGER NOT NULL, padding TEXT NOT NULL,
    activation TEXT NOT NULL, flash INTEGER NOT NULL, macs INTEGER NOT NULL,
    input_bytes INTEGER NOT NULL, output_bytes INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE measurements (id INTEGER PRIMARY KEY, board TEXT NOT NULL,
    atom_key TEXT NOT NULL REFERENCES atoms (atom_key), kernel_variant TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('emulator', 'board', 'import')),
    latency_ms REAL NOT NULL CHECK (latency_ms >= 0), cycles INTEGER, instructions INTEGER,
    sram_bytes INTEGER, flash_bytes INTEGER, firmware_hash TEXT, timing_model_version TEXT,
    emulator_version TEXT, calibration_id TEXT, created_at TEXT NOT NULL,
    UNIQUE (board, atom_key, kernel_variant, source));
"""
