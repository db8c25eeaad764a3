"""Issue 4: sweeps into AtomDB — worked examples, resumability, dead workers, Dask, additivity."""

from __future__ import annotations

import csv
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import BOARD_IDS

from atomsim.boards import get_board
from atomsim.core.errors import ConfigError
from atomsim.db import AtomDB
from atomsim.nn.atoms import Atom
from atomsim.nn.spaces import worked_examples
from atomsim.profiling.additivity import BLOCKS, check_block
from atomsim.profiling.profiler import Profiler
from atomsim.profiling.sweep import sweep

pytestmark = pytest.mark.firmware

# Small atoms of several types: a sweep over them takes a few seconds.
SMALL = [Atom(type="pw", groups=1, c_in=c, h_in=h, w_in=h, k1=1, k2=1, c_out=co, h_out=h,
              w_out=h) for c in (8, 16) for co in (8, 24) for h in (8, 12)] + \
        [Atom(type="dw", groups=c, c_in=c, h_in=h + 2, w_in=h + 2, k1=3, k2=3, c_out=c, h_out=h,
              w_out=h) for c in (8, 16, 24) for h in (6, 10)] + \
        [Atom(type="add", c_in=c, h_in=h, w_in=h, c_out=c, h_out=h, w_out=h)
         for c in (8, 16) for h in (4, 8)]


def _rows(db_path) -> set[tuple]:
    con = sqlite3.connect(db_path)
    try:
        return set(con.execute(
            "SELECT board, atom_key, kernel_variant, cycles, instructions, sram_bytes, flash "
            "FROM measurements JOIN atoms USING (atom_key)").fetchall())
    finally:
        con.close()


@pytest.fixture(scope="module")
def reference_rows(tmp_path_factory):
    """An uninterrupted sweep: the rows every interrupted one must end with."""
    db = tmp_path_factory.mktemp("ref") / "ref.db"
    report = sweep("stm32f746", SMALL, db, workers=2, batch_size=2)
    assert report.measured == len(SMALL) and not report.failed
    return _rows(db)


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_worked_examples_come_out_exactly(tmp_path, board_id):
    expected = {"pad": (0, 0), "dw": (416, 1_179_680), "pw": (1_152, 4_194_336)}
    db_path = tmp_path / "w.db"
    report = sweep(board_id, worked_examples(), db_path, workers=1)
    with AtomDB.open(db_path) as db:
        stored = {m.atom.type: m for m in db.measurements(board_id)}
    arena = get_board(board_id).ram.size
    for atom in worked_examples():
        flash, macs = expected[atom.type]
        assert (atom.flash_bytes, atom.macs) == (flash, macs)
        need = atom.input_bytes + atom.output_bytes
        if need <= arena:
            m = stored[atom.type]
            assert (m.flash_bytes, m.atom.macs) == (flash, macs)
            assert m.cycles > 0 and m.sram_bytes >= need
        else:  # the F412 cannot hold these activations: an OOM report with the numbers
            m = re.search(r"needs (\d+) bytes of ram .* the board has (\d+)",
                          dict(report.failed)[atom.key])
            assert m, dict(report.failed)[atom.key]
            assert int(m.group(1)) >= need > int(m.group(2))


def test_sweep_is_idempotent_and_resumes(tmp_path, reference_rows):
    db = tmp_path / "s.db"
    first = sweep("stm32f746", SMALL[:10], db, workers=1, batch_size=3)
    assert first.measured == 10
    again = sweep("stm32f746", SMALL, db, workers=2, batch_size=2)
    assert again.already_stored == 10 and again.measured == len(SMALL) - 10
    assert _rows(db) == reference_rows


def test_killed_sweep_restarts_with_exactly_the_uninterrupted_rows(tmp_path, reference_rows):
    atoms_csv = tmp_path / "atoms.csv"
    with atoms_csv.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(SMALL[0].as_row()))
        w.writeheader()
        for a in SMALL:
            w.writerow(a.as_row())
    db = tmp_path / "k.db"
    cmd = [sys.executable, "-m", "atomsim.cli", "sweep", "--board", "stm32f746", "--atoms",
           str(atoms_csv), "--db", str(db), "--workers", "1", "--batch-size", "1", "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline:
        if db.exists():
            try:
                stored = len(_rows(db))
            except sqlite3.OperationalError:
                stored = 0
        if stored >= 3:
            break
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole sweep, workers included, at any moment
    proc.wait()
    partial = _rows(db)
    assert 0 < len(partial) < len(SMALL), "the sweep must be killed mid-run"
    assert partial <= reference_rows  # nothing half-written, nothing wrong
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _rows(db) == reference_rows


def test_worker_killed_mid_run_is_retried(tmp_path, reference_rows, monkeypatch):
    flag = tmp_path / "crashed"
    monkeypatch.setenv("ATOMSIM_SWEEP_CRASH_KEY", SMALL[5].key)
    monkeypatch.setenv("ATOMSIM_SWEEP_CRASH_FLAG", str(flag))
    db = tmp_path / "c.db"
    report = sweep("stm32f746", SMALL, db, workers=2, batch_size=2)
    assert flag.exists(), "the injected crash did not happen"
    assert report.retried_batches >= 1 and not report.failed
    assert _rows(db) == reference_rows


def test_sweep_on_a_dask_cluster(tmp_path, reference_rows):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        db = tmp_path / "d.db"
        report = sweep("stm32f746", SMALL, db, scheduler=cluster.scheduler_address,
                       batch_size=3)
    assert report.measured == len(SMALL)
    assert _rows(db) == reference_rows  # same cycles on the cluster: deterministic


def test_sweep_rejects_bad_input(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("type,groups,c_in,h_in,w_in,k1,k2,c_out,h_out,w_out\n"
                   "Conv2d,1,8,10,10,3,3,8,8,8\nConv2d,1,eight,10,10,3,3,8,8,8\n")
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "sweep", "--board", "stm32f412",
                           "--atoms", str(bad), "--db", str(tmp_path / "x.db")],
                          capture_output=True, text=True)
    assert proc.returncode == ConfigError.exit_code
    assert "bad.csv:3" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(ConfigError, match="variant"):
        sweep("stm32f412", SMALL[:1], tmp_path / "y.db", variant="cmsis_nn_v9")


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_blocks_are_the_sum_of_their_atoms(tmp_path, board_id):
    prof = Profiler(get_board(board_id))
    with AtomDB.open(tmp_path / "a.db") as db:
        for block in BLOCKS:
            row = check_block(board_id, block, db, profiler=prof)
            assert row.atoms >= 3
            assert abs(row.deviation) < 0.01, f"{block} on {board_id}: {row.deviation:.4%}"


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_cli_export_has_the_paper_columns_and_ours(tmp_path, fmt):
    import pandas as pd

    db = tmp_path / "e.db"
    sweep("stm32h743", SMALL[:4], db, workers=1)
    out = tmp_path / f"atoms.{fmt}"
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "db", "export", "--db", str(db),
                           "--format", fmt, "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    paper = ["type", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out", "h_out", "w_out",
             "Flash", "MACs"]
    ours = ["stride", "padding", "board", "cycles", "instructions", "latency_ms", "sram_bytes"]
    assert all(c in frame.columns for c in paper + ours)
    assert len(frame) == 4 and set(frame["board"]) == {"stm32h743"}
    by_key = {a.key: a for a in SMALL[:4]}
    for _, row in frame.iterrows():
        atom = next(a for a in by_key.values() if a.c_in == row["c_in"] and a.h_in ==
                    row["h_in"] and a.c_out == row["c_out"] and a.type == row["type"])
        assert (row["Flash"], row["MACs"]) == (atom.flash_bytes, atom.macs)
        assert row["latency_ms"] == pytest.approx(row["cycles"] / 480e6 * 1e3)


# -- keeping every good result (issue 11) ---------------------------------------------------------

HUGE = Atom(type="add", c_in=1024, h_in=1024, w_in=1024, c_out=1024, h_out=1024, w_out=1024)
ABSURD = Atom(type="add", c_in=10**20, h_in=10**20, w_in=1, c_out=10**20, h_out=10**20, w_out=1)


def test_bad_atoms_fail_with_their_reason_and_the_good_ones_are_stored(tmp_path, reference_rows):
    import tracemalloc

    db = tmp_path / "b.db"
    tracemalloc.start()
    report = sweep("stm32f746", [HUGE, *SMALL[:4], ABSURD], db, workers=1, batch_size=2)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 200e6, f"the main process allocated {peak / 1e6:.0f} MB"  # no 1 GB tensor
    assert report.measured == 4 and report.ok
    reasons = dict(report.failed)
    assert set(reasons) == {HUGE.key, ABSURD.key}
    assert reasons[HUGE.key].startswith(f"DoesNotFit: atom needs {3 * 1024**3} bytes of ram")
    assert _rows(db) <= reference_rows and len(_rows(db)) == 4
    with AtomDB.open(db, readonly=True) as opened:
        stored = {f["atom_key"]: f["error"] for f in opened.failures("stm32f746")}
    assert stored == {HUGE.key: "DoesNotFit", ABSURD.key: "DoesNotFit"}


def test_check_fits_needs_no_allocation():
    from atomsim.core.errors import DoesNotFit
    from atomsim.profiling.sweep import check_fits

    board = get_board("stm32f412")
    with pytest.raises(DoesNotFit, match="flash"):
        check_fits(Atom(type="fc", c_in=4096, c_out=4096), board)
    with pytest.raises(DoesNotFit, match="ram"):
        check_fits(ABSURD, board)
    check_fits(SMALL[0], board)


def test_a_read_only_database_is_refused_before_measuring(tmp_path):
    from atomsim.db import DatabaseReadOnly

    db = tmp_path / "ro.db"
    AtomDB.open(db).close()
    db.chmod(0o444)
    started = time.monotonic()
    with pytest.raises(DatabaseReadOnly):
        sweep("stm32f746", SMALL, db, workers=1)
    assert time.monotonic() - started < 5  # nothing was measured first


def test_a_lock_held_throughout_loses_nothing(tmp_path, reference_rows):
    import pandas as pd

    from atomsim.db import DatabaseBusy

    db = tmp_path / "l.db"
    AtomDB.open(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseBusy, match=r"4 measurement\(s\) not yet stored are saved "
                           r"in (\S+\.csv)") as info:
            sweep("stm32f746", SMALL[:4], db, workers=1, batch_size=2, busy_timeout=1.0)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    saved = re.search(r"saved in (\S+\.csv)", str(info.value)).group(1)
    assert len(pd.read_csv(saved)) == 4 and _rows(db) == set()
    with AtomDB.open(db) as opened:
        assert opened.import_file(saved) == 4
    assert _rows(db) <= reference_rows and len(_rows(db)) == 4  # the same rows, as emulator


def test_a_lock_released_midway_is_waited_for(tmp_path, reference_rows):
    import threading

    db = tmp_path / "w.db"
    AtomDB.open(db).close()
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(3.0, lambda: holder.execute("ROLLBACK"))
    release.start()
    try:
        report = sweep("stm32f746", SMALL[:4], db, workers=1, batch_size=1, busy_timeout=30)
    finally:
        release.join()
        holder.close()
    assert report.measured == 4 and not report.failed
    assert len(_rows(db)) == 4


@pytest.mark.parametrize(("options", "message"), [
    ({"workers": -1}, "workers must be a whole number >= 1"),
    ({"workers": 0}, "workers must be"),
    ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
    ({"batch_size": -1}, "batch_size must be"),
    ({"scheduler": "tcp://"}, "scheduler address 'tcp://'"),
    ({"scheduler": "http://localhost:8786"}, "unknown scheme 'http'"),
    ({"scheduler": "tcp://localhost:99999"}, "port '99999'"),
])
def test_sweep_validates_its_arguments_before_opening_the_database(tmp_path, options, message):
    with pytest.raises(ConfigError, match=message):
        sweep("stm32f746", SMALL[:1], tmp_path / "v.db", **options)
    assert not (tmp_path / "v.db").exists()


def test_a_scheduler_that_accepts_and_never_speaks_times_out(tmp_path):
    import socket
    import threading

    from atomsim.profiling.sweep import SchedulerUnreachable

    server = socket.create_server(("127.0.0.1", 0))
    held = []
    threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
    port = server.getsockname()[1]
    started = time.monotonic()
    try:
        with pytest.raises(SchedulerUnreachable, match="did not answer within 1 s"):
            sweep("stm32f746", SMALL[:1], tmp_path / "s.db",
                  scheduler=f"tcp://127.0.0.1:{port}", scheduler_timeout=1.0)
        with pytest.raises(SchedulerUnreachable, match="cannot reach"):
            server.close()
            sweep("stm32f746", SMALL[:1], tmp_path / "s.db",
                  scheduler=f"tcp://127.0.0.1:{port}", scheduler_timeout=1.0)
    finally:
        server.close()
    assert time.monotonic() - started < 10
    assert not (tmp_path / "s.db").exists()  # nothing measured, nothing created


@pytest.mark.firmware
def test_a_measured_csv_in_the_papers_layout_sweeps_as_given(tmp_path):
    """A board's measurement file (latency_min_ms, latency_max_ms, repeats columns) is a valid
    --atoms file: those columns are known and ignored, not reported as misspelt."""
    from atomsim.core.paths import shared_data_dir

    src = shared_data_dir() / "atomdb-h743-calibration.csv"
    if not src.exists():
        pytest.skip("../shared/data/atomdb-h743-calibration.csv is absent")
    lines = src.read_text().splitlines()
    atoms = tmp_path / "measured.csv"
    atoms.write_text("\n".join(lines[:4]) + "\n")  # header + three measured atoms
    db = tmp_path / "atoms.db"
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "sweep", "--board", "stm32h743",
                           "--atoms", str(atoms), "--db", str(db), "--workers", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "3 measured" in proc.stdout + proc.stderr
