"""Calibration: memory-traffic counters, the CSV path, correction models, AtomDB records, report.

Real parts only: the shared H743 measurements (skipped with the reason when ../shared/data is
absent), real emulated runs of a small subset of its atoms (the full-file figures are in
test_calibration_cv.py), a real SQLite file, a real PNG.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from atomsim.boards import get_board
from atomsim.core.errors import ConfigError
from atomsim.core.paths import shared_data_dir
from atomsim.db import AtomDB
from atomsim.emulator.counter import OTHER_REGION, traffic_delta
from atomsim.emulator.machine import Machine
from atomsim.nn.atoms import Atom

CSV = shared_data_dir() / "atomdb-h743-calibration.csv"
BOARD = "stm32h743"
needs_csv = pytest.mark.skipif(not CSV.is_file(), reason=f"shared data absent: {CSV}")
OOM_ATOM = Atom(type="pad", c_in=96, h_in=64, w_in=64, c_out=96, h_out=66, w_out=66,
                padding=1)  # 811 KB of buffers: more than the H743's 512 KB arena


# -- memory traffic counters ------------------------------------------------------------------

@pytest.mark.firmware
@pytest.mark.parametrize("board_id", ["stm32f412", "stm32h743"])
def test_traffic_counter_leaves_counts_unchanged_and_is_deterministic(board_id, example_elf):
    elf = example_elf("bench", board_id, ["-DBENCH_REPEAT=2"])
    board = get_board(board_id)
    results = []
    for traffic in (False, True, True):
        m = Machine(board, traffic=traffic)
        m.load(elf)
        results.append(m.run())
        m.close()
    off, on, again = results
    assert off.status == on.status == "ok"
    assert (off.instructions, off.cycles) == (on.instructions, on.cycles)
    assert off.traffic is None
    assert on.traffic == again.traffic
    names = {mem.name for mem in board.platform().memories} | {OTHER_REGION}
    assert set(on.traffic) == names
    ram = board.ram.memories[0]
    assert on.traffic[ram].reads > 0 and on.traffic[ram].writes > 0
    # The console and the SCS are written through MMIO: they land outside every memory.
    assert on.traffic[OTHER_REGION].writes > 0
    for t in on.traffic.values():
        assert t.reads <= t.read_bytes <= 8 * t.reads
        assert t.writes <= t.write_bytes <= 8 * t.writes


@pytest.mark.firmware
def test_traffic_between_markers_sees_the_weights_and_the_output():
    from atomsim.nn.registry import call_for_atom
    from atomsim.profiling.profiler import Profiler

    board = get_board(BOARD)
    atom = Atom(type="pw", c_in=32, h_in=8, w_in=8, c_out=16, h_out=8, w_out=8)
    prof = Profiler(board, target=Machine(board, traffic=True))
    try:
        r = prof.run_case(call_for_atom(atom))
    finally:
        prof.close()
    marks = {m.kind: m for m in r.run.markers}
    delta = traffic_delta(marks["end"].traffic, marks["begin"].traffic)
    flash = sum(delta[n].read_bytes for n in board.flash.memories)
    ram = delta[board.ram.memories[0]]
    assert flash >= atom.flash_bytes - 4 * atom.c_out  # every weight is read at least once
    assert sum(delta[n].write_bytes for n in board.flash.memories) == 0
    assert ram.write_bytes >= atom.output_bytes
    assert ram.read_bytes >= atom.input_bytes


# -- measurements --------------------------------------------------------------------------------

@pytest.mark.unit
@needs_csv
def test_shared_csv_reads_with_its_provenance():
    from calibration.measurements import read_csv

    src = read_csv(CSV)
    assert len(src.measurements) == 485
    assert src.kind == "csv" and len(src.sha256) == 64
    assert {m.atom.type for m in src.measurements} == {"conv", "dw", "pw", "pad"}
    assert all(m.latency_ms > 0 for m in src.measurements)


@pytest.mark.unit
def test_matching_ignores_the_fused_activation():
    from calibration.measurements import match_key

    a = Atom(type="pw", c_in=8, h_in=4, w_in=4, c_out=8, h_out=4, w_out=4)
    assert match_key(a.with_(activation="relu6")) == match_key(a) == a.key
    assert match_key(a.with_(c_out=16)) != match_key(a)


@pytest.mark.unit
def test_malformed_csv_is_a_named_error_with_the_row(tmp_path):
    from calibration.measurements import read_csv

    bad = tmp_path / "bad.csv"
    bad.write_text("atom,type,groups,c_in,h_in,w_in,k1,k2,c_out,h_out,w_out,latency_ms\n"
                   "pw,conv2d,1,8,4,4,1,1,8,4,4,0.1\n"
                   "pw,conv2d,1,8,4,4,1,1,8,4,4,abc\n")
    with pytest.raises(ConfigError, match="row 2.*latency_ms"):
        read_csv(bad)
    with pytest.raises(ConfigError, match="no such"):
        read_csv(tmp_path / "absent.csv")


@pytest.mark.unit
@pytest.mark.parametrize("lo, med, hi, reps, words", [
    ("0.2", "0.1", "0.3", "3", "latency_min_ms 0.2 <= latency_ms 0.1"),
    ("0.1", "0.2", "0.15", "3", "does not hold"),
    ("0.1", "0.2", "", "3", "latency_min_ms is given without its partner"),
    ("0", "0.2", "0.3", "3", "latency_min_ms: must be > 0"),
    ("0.1", "0.2", "0.3", "0", "repeats: must be a whole number >= 1"),
    ("0.1", "0.2", "0.3", "2.5", "repeats: must be a whole number >= 1"),
])
def test_csv_spread_must_be_consistent(tmp_path, lo, med, hi, reps, words):
    """The fit weighs a measurement by its repeat spread: min/median/max and repeats that
    cannot be true are a named error with the row, not a silently wrong weight."""
    from calibration.measurements import read_csv

    bad = tmp_path / "bad.csv"
    bad.write_text("atom,type,groups,c_in,h_in,w_in,k1,k2,c_out,h_out,w_out,latency_ms,"
                   "latency_min_ms,latency_max_ms,repeats\n"
                   "pw,conv2d,1,8,4,4,1,1,8,4,4,0.1,0.1,0.1,1\n"
                   f"pw,conv2d,1,8,4,4,1,1,16,4,4,{med},{lo},{hi},{reps}\n")
    with pytest.raises(ConfigError, match="row 2") as err:
        read_csv(bad)
    assert words in str(err.value)


# -- a small real subset: emulated features, fit recovery, records, report ---------------------------

def _subset_rows() -> pd.DataFrame:
    frame = pd.read_csv(CSV, dtype=str, keep_default_na=False)
    frame["_size"] = frame["MACs"].astype(int) + frame["c_in"].astype(int) * \
        frame["h_in"].astype(int) * frame["w_in"].astype(int)
    parts = [rows.nsmallest(8, "_size") for _, rows in frame.groupby("atom")]
    oom = frame[(frame["atom"] == "pad") & (frame["c_in"] == "96") & (frame["h_in"] == "64")]
    return pd.concat([*parts, oom]).drop(columns="_size")


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """A CSV of 33 real rows (8 smallest per class + one that cannot fit) and a database with
    their emulated features, run for real here."""
    if not CSV.is_file():
        pytest.skip(f"shared data absent: {CSV}")
    from calibration import features
    from calibration.measurements import read_csv

    d = tmp_path_factory.mktemp("calib")
    csv = d / "subset.csv"
    _subset_rows().to_csv(csv, index=False)
    src = read_csv(csv)
    db_path = d / "atomdb.sqlite"
    with AtomDB.open(db_path) as db:
        errors = features.collect(db, BOARD, [m.atom for m in src.measurements], workers=2)
        emulated, ooms = features.load(db, BOARD)
    assert errors == []
    return {"csv": csv, "src": src, "db": db_path, "emulated": emulated, "ooms": ooms}


@pytest.mark.firmware
@needs_csv
def test_features_are_stored_and_reused(subset):
    from calibration import features
    from calibration.measurements import match_key

    assert len(subset["emulated"]) == 32 and set(subset["ooms"]) == {match_key(OOM_ATOM)}
    oom = subset["ooms"][match_key(OOM_ATOM)]
    assert oom.needed > oom.available > 0
    for e in subset["emulated"].values():
        assert e.cycles > 0 and e.instructions > 0
        assert e.traffic["sram"][3] >= e.atom.output_bytes  # the output is written to RAM
    with AtomDB.open(subset["db"]) as db:
        before = db.measurements(BOARD)
        calls = []
        features.collect(db, BOARD, [m.atom for m in subset["src"].measurements],
                         progress=lambda *a: calls.append(a))
        assert calls == []  # nothing ran again: everything was cached
        assert db.measurements(BOARD) == before


@pytest.mark.firmware
@needs_csv
def test_fit_recovers_known_injected_factors(subset):
    """Synthetic board: real = 1.3 x emulated cycles + 2000 cycles per call + 0.5 cycles per
    weight byte, with +-0.5 % measurement noise; the fitted costs come back within 2 %."""
    from calibration import dataset
    from calibration.models import Candidate

    frame = dataset.build(subset["emulated"])
    hz = get_board(BOARD).clock_hz
    noise = 1 + np.random.default_rng(7).uniform(-0.005, 0.005, len(frame))
    frame["real_ms"] = (1.3 * frame["cycles"] + 2000 + 0.5 * frame["weight_bytes"]) / hz * 1e3 \
        * noise
    weighted = frame[frame["cls"].isin(["pw", "dw", "conv"])].copy()
    weighted["cls"] = "conv-like"
    m = Candidate("physical:scale+call+bytes").fit(weighted)
    p = m.params
    assert p["emulated_ms"] == pytest.approx(1.3, rel=0.02)
    assert p["call"] * hz / 1e3 == pytest.approx(2000, rel=0.02)
    assert p["weight_bytes"] * hz / 1e3 == pytest.approx(0.5, rel=0.02)
    assert p["act_bytes"] * hz / 1e3 < 0.01  # not injected: stays near zero


@pytest.mark.firmware
@needs_csv
def test_calibration_records_report_and_recalibration(subset, tmp_path):
    from calibration import store
    from calibration.calibrate import calibrate
    from calibration.report import report

    db_path = subset["db"]
    with AtomDB.open(db_path) as db:
        raw_before = db.measurements(BOARD)
    cal = calibrate(subset["src"], BOARD, db_path, budget=24)
    cal2 = calibrate(subset["src"], BOARD, db_path, budget=24, seed=1)
    assert cal.id != cal2.id
    with AtomDB.open(db_path) as db:
        assert db.measurements(BOARD) == raw_before  # raw measurements never rewritten
        conn = store.connection(db)
        rec = conn.execute("SELECT board, source_kind, source, source_sha256, n_points, "
                           "model_json, cv_error_json, firmware_hash, timing_model_version "
                           "FROM calibrations WHERE id = ?", (cal.id,)).fetchone()
        board, kind, source, sha, n, model_json, cv_json, fw, tm = rec
        assert (board, kind, sha, n) == (BOARD, "csv", subset["src"].sha256, 24)
        assert source.endswith("subset.csv") and fw and tm
        model = json.loads(model_json)
        assert set(model["classes"]) == {"conv", "dw", "pad", "pw"}
        assert all(c["model"] and c["params"] for c in model["classes"].values())
        cv = json.loads(cv_json)
        assert cv["model"]["all"]["n"] == 32 - 24  # judged on the rows not used in the fit
        rows = conn.execute("SELECT status, emulated_ms, calibrated_ms, interval_low_ms, "
                            "interval_high_ms, measured_ms, used_in_fit, oom_needed_bytes, "
                            "oom_available_bytes FROM calibrated_latency WHERE "
                            "calibration_id = ?", (cal.id,)).fetchall()
        assert conn.execute("SELECT COUNT(*) FROM calibrated_latency WHERE calibration_id = ?",
                            (cal2.id,)).fetchone()[0] == len(rows)
    ok = [r for r in rows if r[0] == "ok"]
    oom = [r for r in rows if r[0] == "oom"]
    assert len(ok) == 32 and sum(r[6] for r in ok) == 24
    for _, emu, cal_ms, lo, hi, *_ in ok:
        assert emu > 0 and lo < cal_ms < hi
    assert len(oom) == 1 and oom[0][5] > 0 and oom[0][7] > oom[0][8] > 0  # measured, numbers

    png = tmp_path / "cal.png"
    record, out = report(db_path, cal.id, png=png)
    assert out == png and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image as mpimg

    assert mpimg.imread(png).shape[0] > 100
    assert record["id"] == cal.id


@pytest.mark.unit
def test_selection_covers_every_class_and_the_shape_range():
    from calibration.selection import allocate, select

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"cls": ["conv"] * 20 + ["dw"] * 100 + ["pw"] * 80})
    for col in ("log_cycles", "log_weight_bytes", "log_act_bytes", "log_macs",
                "log_flash_read_bytes", "log_hw_out", "log_c_in", "log_c_out"):
        frame[col] = rng.normal(size=len(frame))
    alloc = allocate(frame.groupby("cls").size().to_dict(), 25)
    assert sum(alloc.values()) == 25 and min(alloc.values()) >= 6 and alloc["dw"] > alloc["conv"]
    chosen = select(frame, 25, seed=3)
    assert len(chosen) == len(set(chosen)) == 25
    assert chosen == select(frame, 25, seed=3)  # deterministic for a seed
    dw = frame.loc[[c for c in chosen if frame.loc[c, "cls"] == "dw"], "log_cycles"]
    all_dw = frame.loc[frame["cls"] == "dw", "log_cycles"]
    assert dw.min() <= all_dw.quantile(0.15) and dw.max() >= all_dw.quantile(0.85)


# -- CLI ------------------------------------------------------------------------------------------

def _atomsim(*args):
    return subprocess.run([sys.executable, "-m", "atomsim.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.unit
def test_cli_serial_port_bad_input_is_a_named_error(tmp_path):
    from calibration.serial.errors import BoardDisconnected

    db = str(tmp_path / "db.sqlite")
    p = _atomsim("calibrate", "--port", str(tmp_path / "ttyNONE"), "--board", BOARD,
                 "--db", db, "--budget", "10")
    assert p.returncode == BoardDisconnected.exit_code and "ttyNONE" in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "db.sqlite").exists()
    p = _atomsim("calibrate", "--port", "/dev/null", "--from-csv", "x.csv", "--board", BOARD,
                 "--db", db)
    assert p.returncode == ConfigError.exit_code and "not both" in p.stderr
    p = _atomsim("calibrate", "--port", "/dev/null", "--board", BOARD)
    assert p.returncode == ConfigError.exit_code and "--db" in p.stderr
    p = _atomsim("calibrate", "--port", "/dev/null", "--board", BOARD, "--db", db,
                 "--space", "nosuch")
    assert p.returncode == ConfigError.exit_code and "nosuch" in p.stderr
    import os

    master, slave = os.openpty()  # a real tty, so the missing AtomDB is what fails
    p = _atomsim("calibrate", "--port", os.ttyname(slave), "--board", BOARD, "--db", db)
    os.close(master), os.close(slave)
    assert p.returncode == 20 and "does not exist" in p.stderr  # CalibrationError
    assert not (tmp_path / "db.sqlite").exists()


@pytest.mark.unit
def test_cli_bad_input_is_a_named_error(tmp_path):
    p = _atomsim("calibrate", "--from-csv", str(tmp_path / "absent.csv"), "--board", BOARD,
                 "--db", str(tmp_path / "db.sqlite"))
    assert p.returncode == ConfigError.exit_code and "no such" in p.stderr
    p = _atomsim("calibrate", "report", "--db", str(tmp_path / "absent.sqlite"))
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert not (tmp_path / "absent.sqlite").exists()


@pytest.mark.firmware
@needs_csv
def test_cli_calibrates_from_csv_and_reports(subset, tmp_path):
    db = tmp_path / "cli.sqlite"
    png = tmp_path / "cli.png"
    with sqlite3.connect(subset["db"]) as src, sqlite3.connect(db) as dst:
        src.backup(dst)  # the emulated features are already in the copy
    with AtomDB.open(db) as d:
        d.connection.execute("DELETE FROM calibrated_latency")
        d.connection.execute("DELETE FROM calibrations")
    p = _atomsim("calibrate", "--from-csv", str(subset["csv"]), "--board", BOARD, "--db",
                 str(db), "--budget", "24", "--png", str(png), "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["calibration"]["n_points"] == 24 and out["oom"] == [OOM_ATOM.key]
    assert png.read_bytes()[:4] == b"\x89PNG"
    p = _atomsim("calibrate", "report", "--db", str(db), "--png", str(tmp_path / "r.png"))
    assert p.returncode == 0, p.stderr
    assert "MAPE" in p.stdout and "pw" in p.stdout
    assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM calibrations").fetchone()[0] == 1


@pytest.mark.firmware
def test_traffic_benchmark_script_runs_and_counts_agree():
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "traffic_counter.py"
    p = subprocess.run([sys.executable, str(script), "--repeat", "1", "--trials", "1",
                        "--boards", "stm32f412"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    row = [line for line in p.stdout.splitlines() if line.startswith("| stm32f412 |")]
    assert len(row) == 1 and row[0].rstrip(" |").endswith("True")


@pytest.mark.firmware
@needs_csv
def test_atoms_from_a_sweep_get_calibrated_latencies(subset, tmp_path):
    """Atoms a sweep stored (no traffic) are run with the counter by calibrate and get a
    calibrated latency: a ReLU6 twin of a measured atom, and an atom nobody measured."""
    from atomsim.profiling.sweep import sweep
    from calibration import store
    from calibration.calibrate import calibrate

    db_path = tmp_path / "swept.sqlite"
    with sqlite3.connect(subset["db"]) as src, sqlite3.connect(db_path) as dst:
        src.backup(dst)
    measured_pw = next(m.atom for m in subset["src"].measurements if m.atom.type == "pw")
    twin = measured_pw.with_(activation="relu6")
    fresh = Atom(type="pw", c_in=24, h_in=6, w_in=6, c_out=40, h_out=6, w_out=6,
                 activation="relu6")
    report = sweep(BOARD, [twin, fresh], db_path, workers=1)
    assert report.measured == 2
    cal = calibrate(subset["src"], BOARD, db_path, budget=24, workers=1)
    with AtomDB.open(db_path) as db:
        rows = dict(store.connection(db).execute(
            "SELECT atom_key, calibrated_ms FROM calibrated_latency WHERE calibration_id = ? "
            "AND status = 'ok' AND measured_ms IS NULL", (cal.id,)).fetchall())
    assert rows.get(twin.key, 0) > 0 and rows.get(fresh.key, 0) > 0
    with AtomDB.open(db_path) as db:
        n = store.connection(db).execute("SELECT COUNT(*) FROM emulated_traffic WHERE "
                                         "atom_key = ?", (fresh.key,)).fetchone()[0]
    assert n > 0
