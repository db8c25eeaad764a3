"""Calibrating against the pseudo-terminal board recovers its known, injected timing.

The pty board reports ``1.25 * cycles + 3000 + 0.5 * weight bytes`` (InjectedTiming). The
atoms are measured over the serial line, their emulated cycles come from the emulator's memory
path (the AtomDB's numbers), and the calibration package's physical model (scale, per-call,
per-weight-byte and per-activation-byte costs) is fitted to them: each injected factor must
come back within 2 %.
"""

from __future__ import annotations

import pandas as pd
import pytest

from atomsim.boards import get_board
from atomsim.nn import registry
from atomsim.nn.atoms import Atom
from atomsim.profiling.profiler import Profiler, harness_elf
from calibration.serial.host import LinkSettings, SerialBoard
from calibration.serial.journal import board_measurements, measure_atoms
from calibration.serial.pty_board import InjectedTiming, PtyBoard

models = pytest.importorskip("calibration.models", reason="calibration models not present")


def _atoms() -> list[Atom]:
    out = []
    for c_in, c_out, hw in ((8, 16, 4), (16, 8, 10), (32, 32, 4), (16, 48, 6), (64, 16, 2)):
        out.append(Atom(type="pw", c_in=c_in, h_in=hw, w_in=hw, c_out=c_out, h_out=hw,
                        w_out=hw))
    for c, hw in ((8, 12), (32, 4), (24, 8)):
        out.append(Atom(type="dw", c_in=c, h_in=hw, w_in=hw, k1=3, k2=3, c_out=c, h_out=hw,
                        w_out=hw, stride=1, padding=(1, 1, 1, 1)))
    for c_in, c_out, hw in ((4, 8, 8), (8, 24, 3), (16, 8, 5), (3, 16, 10)):
        out.append(Atom(type="conv", c_in=c_in, h_in=hw, w_in=hw, k1=3, k2=3, c_out=c_out,
                        h_out=hw, w_out=hw, stride=1, padding=(1, 1, 1, 1)))
    return out


@pytest.mark.firmware
def test_fit_recovers_injected_factors_within_two_percent(tmp_path):
    board = get_board("stm32h743")
    elf = harness_elf(board)
    timing = InjectedTiming(scale=1.25, per_call=3000, per_weight_byte=0.5)
    atoms = _atoms()
    with PtyBoard(board, elf, timing) as pty, \
            SerialBoard(pty.port, board, elf, settings=LinkSettings(timeout_s=0.5)) as link:
        measure_atoms(link, atoms, tmp_path / "board.jsonl", repeats=1)
    measured = board_measurements(tmp_path / "board.jsonl", atoms, board.id, board.clock_hz)
    assert len(measured) == len(atoms)
    profiler = Profiler(board)
    ms = 1e3 / board.clock_hz  # one cycle in ms
    rows = []
    for m in measured:
        emulated = profiler.run_case(registry.call_for_atom(m.atom)).cycles
        rows.append({"emulated_ms": emulated * ms, "weight_bytes": m.atom.flash_bytes,
                     "act_bytes": m.atom.input_bytes + m.atom.output_bytes,
                     "real_ms": m.latency_ms})
    fit = models.Candidate("physical:scale+call+bytes").fit(pd.DataFrame(rows)).params
    assert fit["emulated_ms"] == pytest.approx(timing.scale, rel=0.02)
    assert fit["call"] / ms == pytest.approx(timing.per_call, rel=0.02)
    assert fit["weight_bytes"] / ms == pytest.approx(timing.per_weight_byte, rel=0.02)
    assert fit["act_bytes"] / ms < 0.01  # nothing was injected per activation byte


# -- end to end through the CLI: `atomsim calibrate --port` against the pty board process ------

E2E_PW = ((8, 16, 4), (16, 8, 10), (32, 32, 4), (16, 48, 6), (64, 16, 2), (8, 8, 16), (24, 40, 5),
          (48, 24, 3), (12, 20, 7), (32, 64, 2), (16, 16, 12), (40, 8, 6), (8, 32, 8),
          (64, 64, 1))


def _start_pty_board(log):
    """The pty board as its own process (as a user would run it); returns (process, port)."""
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "calibration.serial.pty_board",
                             "--board", "stm32h743"], stdout=subprocess.PIPE, stderr=log,
                            text=True)
    deadline = time.monotonic() + 30
    port = proc.stdout.readline().strip()  # the board prints its port first
    assert port.startswith("/dev/") and time.monotonic() < deadline, port
    return proc, port


@pytest.mark.firmware
def test_cli_calibrate_port_end_to_end_resumes_after_kill(tmp_path):
    """`atomsim calibrate --port` in a subprocess against the pty board process: killed
    mid-measurement, rerun, it measures only what is missing; the record is a serial
    calibration of N = 10 whose fitted scale is the injected one."""
    import hashlib
    import json
    import signal
    import sqlite3
    import subprocess
    import sys
    import time

    from atomsim.db import AtomDB
    from calibration import features

    board = get_board("stm32h743")
    db = tmp_path / "tmp.db"
    with AtomDB.open(db) as d:  # the user's AtomDB: 14 emulated pw atoms of the board
        assert features.collect(d, board.id, [
            Atom(type="pw", c_in=ci, h_in=hw, w_in=hw, c_out=co, h_out=hw, w_out=hw)
            for ci, co, hw in E2E_PW], workers=1) == []
    journal = tmp_path / "tmp.db.stm32h743.serial.jsonl"
    timing = InjectedTiming()  # what the pty board process injects by default
    with open(tmp_path / "pty.log", "w") as log:
        pty, port = _start_pty_board(log)
        try:
            cmd = [sys.executable, "-m", "atomsim.cli", "calibrate", "--port", port, "--board",
                   board.id, "--budget", "10", "--repeats", "3", "--db", str(db)]
            first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and first.poll() is None:
                if journal.exists() and journal.read_bytes().count(b"\n") >= 4:
                    break
                time.sleep(0.02)
            assert first.poll() is None, first.stderr.read().decode()  # still measuring
            first.send_signal(signal.SIGKILL)  # as abrupt as a pulled cable or a crash
            first.wait(10)
            first.stderr.close()
            runs_first = sum(1 for line in journal.read_bytes().splitlines()
                             if line.endswith(b"}"))
            assert 4 <= runs_first < 30
            second = subprocess.run([*cmd, "--json"], capture_output=True, text=True,
                                    timeout=120)
        finally:
            pty.send_signal(signal.SIGTERM)
            pty.wait(10)
            pty.stdout.close()
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    assert out["runs_reused"] == runs_first and out["runs_now"] == 30 - runs_first
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    pairs = [(r["atom_key"], r["repeat"]) for r in records]
    assert len(pairs) == 30 and len(set(pairs)) == 30  # nothing lost, nothing measured twice
    assert len(out["spread"]) == 10
    for s in out["spread"]:
        assert s["runs"] == 3 and s["min_ms"] <= s["median_ms"] <= s["max_ms"]
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, source_kind, source, n_points, repeats, firmware_hash, "
                            "model_json FROM calibrations").fetchall()
        n_calibrated = conn.execute("SELECT COUNT(*) FROM calibrated_latency WHERE "
                                    "status = 'ok'").fetchone()[0]
    assert len(rows) == 1  # the killed run recorded nothing
    cid, kind, source, n_points, repeats, firmware, model_json = rows[0]
    assert out["calibration"]["id"] == cid
    assert kind == "serial" and port in source and (n_points, repeats) == (10, 3)
    elf = harness_elf(board)
    assert firmware == hashlib.sha256(elf.read_bytes()).hexdigest()[:16]
    pw = json.loads(model_json)["classes"]["pw"]
    ms = 1e3 / board.clock_hz
    assert pw["model"].startswith("physical:scale+call")
    assert pw["params"]["emulated_ms"] == pytest.approx(timing.scale, rel=0.02)
    assert pw["params"]["call"] / ms == pytest.approx(timing.per_call, rel=0.02)
    assert n_calibrated == len(E2E_PW)  # every atom of the AtomDB got a calibrated latency
