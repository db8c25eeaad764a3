"""AtomDB on real SQLite files: upserts, transactions, queries, CSV/Parquet, calibration import."""

import csv
import sqlite3
from pathlib import Path

import pytest

from atomsim.core.errors import ConfigError
from atomsim.db import AtomDB, Measurement, MissingAtoms
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
        assert db.stats()["schema_version"] == 1
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"schema_version", "atoms", "measurements"} <= tables


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
    ({"c_out": "x"}, "row 2: column 'c_out': 'x' is not a number"),
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
        db.import_file(write_csv(tmp_path / "a.csv", [without]), board="b")
    with pytest.raises(ConfigError, match="unknown column.*colour"):
        db.import_file(write_csv(tmp_path / "b.csv", [dict(GOOD, colour="red")]), board="b")
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
