"""AtomDB on real SQLite files: upserts, transactions, queries, CSV/Parquet, calibration import."""

import csv
import sqlite3
from pathlib import Path

import pytest
from atomdb_v1 import V1_SQL

from atomsim.core.errors import ConfigError
from atomsim.db import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    AtomDB,
    BadTableValue,
    DatabaseBusy,
    DatabaseReadOnly,
    Measurement,
    MissingAtoms,
    NotAnAtomDB,
    SchemaVersionError,
    SourceConflict,
    TableFormatError,
    UnknownColumn,
)
from atomsim.db.commands import db_export, db_import, db_query, db_stats, format_stats
from atomsim.nn.atoms import Atom
from atomsim.nn.spaces import worked_examples

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CALIBRATION = DATA / "atomdb-h743-calibration.csv"
needs_calibration = pytest.mark.skipif(not CALIBRATION.is_file(),
                                       reason=f"shared data absent: {CALIBRATION}")


def measure(atom, latency, **extra):
    values = {"board": "stm32f746", "kernel_variant": "reference", "source": "emulator",
              "cycles": round(latency * 216_000), "sram_bytes": atom.input_bytes
              + atom.output_bytes + 64, "firmware_hash": "abc123",
              "timing_model_version": "m7-v1", "emulator_version": "0.1.0"}
    values.update(extra)
    return Measurement(atom=atom, latency_ms=latency, **values)


@pytest.fixture
def atoms():
    pad, dw, pw = worked_examples()
    add = Atom(type="add", c_in=32, h_in=64, w_in=64, c_out=32, h_out=64, w_out=64)
    return [pad, dw, pw, add]


@pytest.fixture
def db(tmp_path):
    with AtomDB.open(tmp_path / "atoms.db") as opened:
        yield opened


def count(db):
    return db.stats()["measurements"]


def test_new_database_has_schema_version_and_wal(tmp_path):
    path = tmp_path / "new.db"
    with AtomDB.open(path) as db:
        assert db.stats()["schema_version"] == SCHEMA_VERSION == 2
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schema_version", "atoms", "measurements", "failures"} <= tables


def test_other_schema_version_is_refused(tmp_path):
    path = tmp_path / "old.db"
    AtomDB.open(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        AtomDB.open(path)


def test_upsert_then_has_missing_and_exact_lookup(db, atoms):
    pad, dw, pw, add = atoms
    assert db.upsert_measurements([measure(pad, 0.07), measure(dw, 1.2)]) == 2
    assert db.has("stm32f746", dw, "reference")
    assert not db.has("stm32f746", dw, "cmsis")
    assert not db.has("stm32f412", dw, "reference")
    keys = [a.key for a in atoms]
    assert db.missing_keys("stm32f746", keys, "reference") == [pw.key, add.key]
    found = db.lookup("stm32f746", dw)
    assert found is not None and found.atom == dw and found.latency_ms == 1.2
    assert found.firmware_hash == "abc123" and found.created_at
    assert db.lookup("stm32f746", dw.with_(activation="relu6")) is None


def test_same_rows_twice_keep_the_count_and_update_values(db, atoms):
    batch = [measure(a, 1.0 + i) for i, a in enumerate(atoms)]
    db.upsert_measurements(batch)
    db.upsert_measurements(batch)
    assert (count(db), db.stats()["atoms"]) == (4, 4)
    db.upsert_measurements([measure(atoms[1], 9.5)])
    assert count(db) == 4 and db.lookup("stm32f746", atoms[1]).latency_ms == 9.5
    db.upsert_measurements([measure(atoms[1], 3.0, source="board")])
    assert count(db) == 5  # a different source is a different row


def test_a_batch_that_fails_midway_writes_nothing(tmp_path, atoms):
    path = tmp_path / "atomic.db"
    with AtomDB.open(path) as db:
        db.upsert_measurements([measure(atoms[0], 0.1)])

        def killed_sweep():
            yield measure(atoms[1], 1.0)
            yield measure(atoms[2], 2.0)
            raise KeyboardInterrupt("sweep killed")

        with pytest.raises(KeyboardInterrupt):
            db.upsert_measurements(killed_sweep())
        with pytest.raises(RuntimeError), db.transaction():
            db.upsert_measurements([measure(atoms[3], 3.0)])
            raise RuntimeError("boom")
    with AtomDB.open(path) as db:
        assert count(db) == 1 and db.stats()["atoms"] == 1
        assert db.missing_keys("stm32f746", [a.key for a in atoms], "reference") == [
            a.key for a in atoms[1:]]


def test_readers_see_committed_data_while_a_writer_holds_a_transaction(tmp_path, atoms):
    path = tmp_path / "shared.db"
    with AtomDB.open(path) as writer, AtomDB.open(path) as reader:
        writer.upsert_measurements([measure(atoms[0], 0.1)])
        with writer.transaction():
            writer.upsert_measurements([measure(atoms[1], 1.0)])
            assert count(reader) == 1  # WAL: the reader is not blocked, sees the last commit
        assert count(reader) == 2


def test_sum_atoms_adds_latency_and_takes_the_peak_sram(db, atoms):
    batch = [measure(a, 0.5 * (i + 1)) for i, a in enumerate(atoms)]
    db.upsert_measurements(batch)
    network = [atoms[0], atoms[1], atoms[2], atoms[2], atoms[3]]  # a repeated PW
    totals = db.sum_atoms("stm32f746", network)
    assert totals.atoms == 5
    assert totals.latency_ms == pytest.approx(0.5 + 1.0 + 1.5 + 1.5 + 2.0)
    assert totals.cycles == sum(batch[i].cycles for i in (0, 1, 2, 2, 3))
    assert totals.flash_bytes == 0 + 416 + 2 * 1152
    assert totals.peak_sram_bytes == max(m.sram_bytes for m in batch)
    assert totals.macs == sum(a.macs for a in network)


def test_sum_atoms_names_the_missing_atoms(db, atoms):
    db.upsert_measurements([measure(atoms[0], 0.1)])
    with pytest.raises(MissingAtoms, match=r"2 atom\(s\): dw 32x66x66") as info:
        db.sum_atoms("stm32f746", [atoms[0], atoms[1], atoms[2], atoms[1]])
    assert [a.key for a in info.value.missing] == [atoms[1].key, atoms[2].key]


def test_lookup_prefers_the_board_over_the_emulator(db, atoms):
    db.upsert_measurements([measure(atoms[2], 5.0), measure(atoms[2], 4.0, source="board")])
    assert db.lookup("stm32f746", atoms[2]).source == "board"
    assert db.lookup("stm32f746", atoms[2], source="emulator").latency_ms == 5.0


def test_efficiency_is_macs_per_ms_without_pad(db, atoms):
    db.upsert_measurements([measure(a, 2.0) for a in atoms])
    frame = db.efficiency("stm32f746")
    assert set(frame.type) == {"dw", "pw", "add"}
    row = frame[frame.type == "pw"].iloc[0]
    assert row.macs_per_ms == atoms[2].macs / 2.0


def test_measurement_validation():
    atom = worked_examples()[2]
    with pytest.raises(ConfigError, match="source must be one of"):
        Measurement(atom=atom, board="b", latency_ms=1.0, kernel_variant="v", source="guess")
    with pytest.raises(ConfigError, match="latency_ms must be"):
        Measurement(atom=atom, board="b", latency_ms=float("nan"), kernel_variant="v")
    with pytest.raises(ConfigError, match="cycles must be"):
        Measurement(atom=atom, board="b", latency_ms=1.0, kernel_variant="v", cycles=-1)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_import_round_trip_keeps_every_field(tmp_path, db, atoms, suffix):
    original = [measure(a, 0.25 * (i + 1)) for i, a in enumerate(atoms)]
    original.append(measure(atoms[1].with_(activation="relu6"), 1.3, instructions=12345,
                            calibration_id=None, source="board"))
    db.upsert_measurements(original)
    out = tmp_path / f"export{suffix}"
    assert db.export(out) == 5
    with AtomDB.open(tmp_path / "copy.db") as copy:
        assert copy.import_file(out) == 5
        assert copy.measurements() == db.measurements()


def test_export_has_the_paper_columns_first(tmp_path, db, atoms):
    db.upsert_measurements([measure(atoms[0], 0.07)])
    out = tmp_path / "paper.csv"
    db.export(out)
    header, row = list(csv.reader(out.open()))
    assert header[:13] == ["type", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out",
                           "h_out", "w_out", "Flash", "MACs", "latency_ms"]
    assert row[:13] == ["pad", "", "32", "64", "64", "", "", "32", "66", "66", "0", "0", "0.07"]


@needs_calibration
def test_calibration_csv_imports_all_rows_as_board_measurements(tmp_path):
    with AtomDB.open(tmp_path / "cal.db") as db:
        assert db.import_file(CALIBRATION, board="stm32h743", source="board") == 485
        stats = db.stats()
        assert stats["boards"] == {"stm32h743": {"board": 485}}
        assert stats["atom_types"] == {"conv": 35, "dw": 150, "pad": 150, "pw": 150}
        for row in csv.DictReader(CALIBRATION.open()):
            found = db.lookup("stm32h743", Atom.from_row(row))
            assert found.latency_ms == float(row["latency_ms"])
            assert found.atom.flash_bytes == int(row["Flash"])
            assert found.atom.macs == int(row["MACs"])
            assert found.calibration_id.startswith("atomdb-h743-calibration-")
        # importing again is idempotent
        db.import_file(CALIBRATION, board="stm32h743", source="board")
        assert db.stats()["measurements"] == 485


def write_csv(path, rows):
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
        writer.writeheader()
        writer.writerows(rows)
    return path


GOOD = {"type": "conv2d", "groups": "1", "c_in": "32", "h_in": "64", "w_in": "64", "k1": "1",
        "k2": "1", "c_out": "32", "h_out": "64", "w_out": "64", "Flash": "1152",
        "MACs": "4194336", "latency_ms": "9.9"}


@pytest.mark.parametrize(("change", "message"), [
    ({"latency_ms": "fast"}, "row 2, column latency_ms: 'fast' is not a number"),
    ({"c_out": "x"}, "row 2, column c_out: 'x' is not a number"),
    ({"Flash": "1000"}, f"row 2, column Flash: 1000 differs from {16 * 32 + 4 * 32}"),
    ({"h_out": "63"}, "row 2: no stride maps 64x64 onto 63x64"),
    ({"h_out": "63", "stride": "1"}, "row 2: inconsistent pw atom.*h_out 63 != 64"),
])
def test_bad_csv_names_row_and_column_and_writes_nothing(tmp_path, db, change, message):
    second = dict(GOOD, c_in="16", Flash=str(16 * 32 + 4 * 32), MACs=str(32 * 64 * 64 * 16 + 32))
    path = write_csv(tmp_path / "bad.csv", [GOOD, {**second, **change}])
    with pytest.raises(ConfigError, match=message):
        db.import_file(path, board="stm32h743")
    assert count(db) == 0


def test_missing_and_unknown_columns_are_named(tmp_path, db):
    without = {k: v for k, v in GOOD.items() if k != "h_out"}
    with pytest.raises(ConfigError, match="missing column.*h_out"):
        db.import_file(write_csv(tmp_path / "a.csv", [without]), board="stm32h743")
    with pytest.raises(ConfigError, match="unknown column.*colour"):
        db.import_file(write_csv(tmp_path / "b.csv", [dict(GOOD, colour="red")]),
                       board="stm32h743")
    with pytest.raises(ConfigError, match="no board"):
        db.import_file(write_csv(tmp_path / "c.csv", [GOOD]))
    assert count(db) == 0


def test_cli_functions(tmp_path, atoms):
    path = tmp_path / "cli.db"
    with pytest.raises(ConfigError, match="no AtomDB"):
        db_stats(path)
    with AtomDB.open(path) as db:
        db.upsert_measurements([measure(a, 1.0) for a in atoms])
    text = format_stats(db_stats(path))
    assert "measurements: 4" in text and "stm32f746: emulator 4" in text
    frame = db_query(path, atom_type="pw")
    assert list(frame.type) == ["pw"] and frame.iloc[0]["MACs"] == atoms[2].macs
    assert db_export(path, tmp_path / "out.parquet") == 4
    assert db_import(tmp_path / "other.db", tmp_path / "out.parquet") == 4
    with pytest.raises(ConfigError, match="unknown table format"):
        db_export(path, tmp_path / "out.xlsx")


# -- safety: identification, read-only opening, migrations, locks, other packages' tables ---------

def digest(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_db(path, version_table=False):
    """Another program's SQLite file, in rollback-journal mode."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
    if version_table:
        conn.execute("CREATE TABLE schema_version (version INTEGER)")
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("readonly", [False, True])
def test_another_programs_sqlite_file_is_refused_untouched(tmp_path, readonly):
    path = foreign_db(tmp_path / "other.sqlite", version_table=True)
    before = digest(path)
    with pytest.raises(NotAnAtomDB, match="another program.*notes"):
        AtomDB.open(path, readonly=readonly)
    assert digest(path) == before
    assert not (tmp_path / "other.sqlite-wal").exists()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master")] == [
        "notes", "schema_version"]


@pytest.mark.parametrize("content", [b"type,c_in\nconv,3\n", b"\xff\xfet\x00y\x00",
                                     b"PAR1\x00\x00", b"\x00\x01\x02"])
def test_a_file_that_is_not_sqlite_is_refused_untouched(tmp_path, content):
    path = tmp_path / "atoms.db"
    path.write_bytes(content)
    with pytest.raises(NotAnAtomDB, match="not an SQLite database"):
        AtomDB.open(path)
    assert path.read_bytes() == content
    with pytest.raises(NotAnAtomDB, match="is a directory"):
        AtomDB.open(tmp_path)


def v1_file(path, version=1):
    """A version-1 AtomDB as AtomSim 0.1 wrote it (no application id), in rollback mode."""
    conn = sqlite3.connect(path)
    conn.executescript(V1_SQL)
    conn.execute("INSERT INTO schema_version VALUES (?)", (version,))
    conn.execute("INSERT INTO atoms VALUES (?, 'add', 0, 8, 4, 4, 0, 0, 8, 4, 4, 0, "
                 "'0,0,0,0', 'none', 0, 128, 256, 128)", (V1_ATOM.key,))
    conn.execute("INSERT INTO measurements (board, atom_key, kernel_variant, source, "
                 "latency_ms, created_at) VALUES ('stm32f746', ?, 'reference', 'emulator', "
                 "0.5, '2026-01-01T00:00:00+00:00')", (V1_ATOM.key,))
    conn.commit()
    conn.close()
    return path


V1_ATOM = Atom(type="add", c_in=8, h_in=4, w_in=4, c_out=8, h_out=4, w_out=4)


def test_a_version_1_file_is_read_as_is_and_migrated_on_write(tmp_path):
    path = v1_file(tmp_path / "v1.db")
    before = digest(path)
    stats = db_stats(path)  # read-only: no migration, no WAL, same bytes
    assert (stats["schema_version"], stats["measurements"], stats["failures"]) == (1, 1, 0)
    assert digest(path) == before
    with AtomDB.open(path) as db:  # writing: migrated in one transaction
        assert db.schema_version == 2 and db.failures() == []
        assert db.lookup("stm32f746", V1_ATOM).latency_ms == 0.5
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_refused_schema_version_is_not_switched_to_wal(tmp_path):
    path = v1_file(tmp_path / "future.db", version=7)
    before = digest(path)
    for readonly in (False, True):
        with pytest.raises(SchemaVersionError, match="schema version 7 .*newer AtomSim"):
            AtomDB.open(path, readonly=readonly)
    assert digest(path) == before
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_read_only_commands_never_write_and_work_beside_a_writer(tmp_path, atoms):
    path = tmp_path / "busy.db"
    with AtomDB.open(path) as db:
        db.upsert_measurements([measure(a, 1.0) for a in atoms[:2]])
        db.export(tmp_path / "two.csv")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    holder.execute("UPDATE measurements SET latency_ms = 2.0")
    try:
        assert db_stats(path)["measurements"] == 2
        assert len(db_query(path)) == 2 and db_export(path, tmp_path / "out.csv") == 2
        with AtomDB.open(path, readonly=True) as reader, pytest.raises(DatabaseReadOnly):
            reader.upsert_measurements([measure(atoms[2], 1.0)])
        with AtomDB.open(path, busy_timeout=0.3) as writer, pytest.raises(
                DatabaseBusy, match="locked by another process"):
            writer.upsert_measurements([measure(atoms[2], 1.0)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with AtomDB.open(path) as db:
        assert [m.latency_ms for m in db.measurements()] == [1.0, 1.0]


def test_a_read_only_file_is_refused_before_anything_is_written(tmp_path, atoms):
    path = tmp_path / "ro.db"
    with AtomDB.open(path) as db:
        db.upsert_measurements([measure(atoms[0], 1.0)])
    path.chmod(0o444)
    before = digest(path)
    with pytest.raises(DatabaseReadOnly, match="read-only"):
        AtomDB.open(path)
    assert db_stats(path)["measurements"] == 1  # reading still works
    assert digest(path) == before


def test_packages_keep_their_own_tables_in_the_file(tmp_path, atoms):
    path = tmp_path / "ext.db"
    sql = ("CREATE TABLE IF NOT EXISTS calibrations (id TEXT PRIMARY KEY, board TEXT);"
           "CREATE TABLE IF NOT EXISTS calibrated_latency (id TEXT, atom_key TEXT, ms REAL);"
           "CREATE INDEX IF NOT EXISTS calibrated_by_atom ON calibrated_latency (atom_key)")
    with AtomDB.open(path) as db:
        assert db.ensure_tables("calibration", sql) is None
        assert db.ensure_tables("calibration", sql, version=2) == 1
        with db.transaction():
            db.connection.execute("INSERT INTO calibrations VALUES ('c1', 'stm32h743')")
        db.upsert_measurements([measure(atoms[0], 1.0)])
        with pytest.raises(ConfigError, match="measurements is AtomDB's own"):
            db.ensure_tables("evil", "CREATE TABLE IF NOT EXISTS measurements (x)")
        with pytest.raises(ConfigError, match="only CREATE"):
            db.ensure_tables("evil", "DROP TABLE atoms")
    with AtomDB.open(path, readonly=True) as db:  # extra tables do not confuse identification
        assert db.ensure_tables("calibration", sql, version=2) == 2
        assert db.connection.execute("SELECT board FROM calibrations").fetchall() == [
            ("stm32h743",)]
        with pytest.raises(DatabaseReadOnly):
            db.ensure_tables("calibration", sql, version=3)
    assert db_stats(path)["measurements"] == 1


def test_import_keeps_the_files_source_and_refuses_a_conflicting_one(tmp_path, db, atoms):
    db.upsert_measurements([measure(a, 1.0, board="stm32f746") for a in atoms])
    out = tmp_path / "emulated.csv"
    db.export(out)
    with AtomDB.open(tmp_path / "copy.db") as copy:
        with pytest.raises(SourceConflict, match="file says 'emulator', --source says 'board'"):
            copy.import_file(out, source="board")
        assert copy.stats()["measurements"] == 0
        assert copy.import_file(out) == 4
        assert copy.stats()["boards"] == {"stm32f746": {"emulator": 4}}


@pytest.mark.parametrize(("change", "error", "message"), [
    ({"latency_ms": "nan"}, BadTableValue, "row 2, column latency_ms: 'nan' is not a finite"),
    ({"latency_ms": "inf"}, BadTableValue, "row 2, column latency_ms: 'inf' is not a finite"),
    ({"latency_ms": "-1"}, BadTableValue, "row 2, column latency_ms: -1 is out of range"),
    ({"latency_ms": "1e20"}, BadTableValue, "row 2, column latency_ms: 1e20 is out of range"),
    ({"c_in": "nan"}, BadTableValue, "row 2, column c_in: 'nan' is not a finite"),
    ({"c_out": "-32"}, BadTableValue, "row 2, column c_out: -32 is out of range"),
    ({"h_in": "1e20"}, BadTableValue, "row 2, column h_in: 1e20 is out of range"),
    ({"cycles": "99999999999999999999999"}, BadTableValue, "row 2, column cycles: .* range"),
    ({"board": "stm32f74"}, BadTableValue, "row 2, column board: unknown board 'stm32f74' "
     r"\(did you mean 'stm32f746'\?\)"),
    ({"source": "guess"}, BadTableValue, "row 2, column source: 'guess' is not one of"),
    ({"activaton": "relu"}, UnknownColumn, r"'activaton' \(did you mean 'activation'\?\)"),
])
def test_bad_values_are_named_with_row_and_column_and_write_nothing(tmp_path, db, change,
                                                                    error, message):
    first = dict(GOOD, board="stm32h743")
    second = dict(first, c_in="16", Flash=str(16 * 32 + 4 * 32), MACs=str(32 * 64 * 64 * 16 + 32))
    path = write_csv(tmp_path / "bad.csv", [first, {**second, **change}])
    with pytest.raises(error, match=message):
        db.import_file(path)
    assert count(db) == 0


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: p.write_text("type,c_in\n", encoding="utf-16"), "UTF-16 text"),
    (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"), "binary file"),
    (lambda p: p.write_bytes(b"PAR1\x15\x04"), "Parquet file, not a CSV"),
    (lambda p: p.write_bytes("type,c_in\nconv,\xe9\n".encode("latin-1")), "not UTF-8"),
    (lambda p: p.mkdir(), "is a directory"),
    (lambda p: p.write_text(""), "is empty"),
])
def test_a_file_that_is_not_a_csv_table_is_named(tmp_path, db, make, message):
    path = tmp_path / "table.csv"
    make(path)
    with pytest.raises(TableFormatError, match=message):
        db.import_file(path, board="stm32h743")
    assert count(db) == 0


def test_stats_for_one_board_and_query_limit(tmp_path, atoms):
    path = tmp_path / "b.db"
    with AtomDB.open(path) as db:
        db.upsert_measurements([measure(a, 1.0) for a in atoms]
                               + [measure(atoms[0], 1.0, board="stm32h743")])
    assert db_stats(path, board="stm32h743")["measurements"] == 1
    assert db_stats(path, board="stm32h743")["boards"] == {"stm32h743": {"emulator": 1}}
    assert db_stats(path)["measurements"] == 5
    assert len(db_query(path, limit=2)) == 2 and len(db_query(path, limit=None)) == 5
    for bad in (0, -1):
        with pytest.raises(ConfigError, match="--limit must be"):
            db_query(path, limit=bad)


def test_a_database_in_a_read_only_folder_can_be_read(atoms):
    """WAL needs a -shm file SQLite cannot create there: read-only commands still work."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    if os.geteuid() == 0 and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: a read-only folder cannot be simulated")
    top = Path(tempfile.mkdtemp(prefix="atomdb-ro-"))
    try:
        top.chmod(0o755)
        folder = top / "ro"
        folder.mkdir()
        path = folder / "a.db"
        with AtomDB.open(path) as db:
            db.upsert_measurements([measure(a, 1.0) for a in atoms])
        folder.chmod(0o555)
        code = ("import sys; from atomsim.db.commands import db_stats, db_query\n"
                "print(db_stats(sys.argv[1])['measurements'], len(db_query(sys.argv[1])))")
        user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] \
            if os.geteuid() == 0 else []
        done = subprocess.run([*user, sys.executable, "-c", code, str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["4", "4"]
        assert sorted(p.name for p in folder.iterdir()) == ["a.db"]
    finally:
        (top / "ro").chmod(0o755)
        shutil.rmtree(top)
