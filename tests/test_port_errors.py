"""``atomsim calibrate --port``: a bad port, board, AtomDB, space or journal is a named error
with its exit code, found before anything is built, emulated or written.

Every case runs the installed ``atomsim`` script in a subprocess in a fresh folder and then
compares the folder with what it held before: no AtomDB, no ``.plan.json``, no journal may
appear, and the files that were there keep their bytes. A pseudo-terminal nobody answers on
stands in for a board that is not flashed (``BoardNotResponding`` after the HELLO retries,
before any atom is emulated).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ATOMSIM = Path(sys.executable).with_name("atomsim")
BOARD = "stm32h743"


def calibrate(folder: Path, port: str, *extra: str, timeout: float = 120):
    """``atomsim calibrate --port PORT --board stm32h743 --json …`` run in ``folder``."""
    if not ATOMSIM.exists():
        pytest.skip(f"the atomsim console script is not installed at {ATOMSIM}")
    return subprocess.run([str(ATOMSIM), "calibrate", "--port", port, "--board", BOARD,
                           "--json", *extra], capture_output=True, text=True, cwd=folder,
                          timeout=timeout)


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its SHA-256 (``dir`` for a folder).

    SQLite's ``-wal`` / ``-shm`` companions of an existing AtomDB are left out: reading a WAL
    database read-only (how AtomDB identifies a file without writing it, as ``db stats`` does)
    makes SQLite create them, empty, and a read-only connection does not remove them.
    """
    return {str(p.relative_to(folder)): "dir" if p.is_dir()
            else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*"))
            if not (p.name.endswith(("-wal", "-shm")) and p.with_name(p.name[:-4]).is_file())}


def assert_named(proc, code: int, name: str, *words: str) -> str:
    """Exit ``code``, the JSON error ``name`` with ``words`` in its message, no traceback."""
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    error = json.loads(proc.stdout)["error"]
    assert (error["type"], error["exit_code"]) == (name, code), error
    for word in words:
        assert word in error["message"], error["message"]
    return error["message"]


def tiny_atomdb(path: Path, board: str = BOARD) -> None:
    """An AtomDB with three emulated pw atoms of ``board``."""
    from atomsim.db import AtomDB, Measurement
    from atomsim.nn.atoms import Atom

    with AtomDB.open(path) as db:
        db.upsert_measurements([
            Measurement(atom=Atom(type="pw", c_in=8 + 4 * i, h_in=4, w_in=4, k1=1, k2=1,
                                  c_out=8, h_out=4, w_out=4),
                        board=board, latency_ms=0.5 + i, cycles=1000 + i,
                        kernel_variant="cortex_m_dsp", source="emulator")
            for i in range(3)])


@pytest.fixture
def tty():
    """A real terminal (the slave side of a pseudo-terminal) that no board answers on."""
    master, slave = os.openpty()
    try:
        yield os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


# -- the port: not a serial line, or missing ----------------------------------------------------

NOT_A_PORT = {
    "dev-null": ("/dev/null", ["/dev/null", "not a serial port", "not a terminal"]),
    "regular-file": ("{tmp}/tty.txt", ["tty.txt", "not a serial port", "regular file"]),
    "directory": ("{tmp}/ports", ["ports", "not a serial port", "directory"]),
    "unknown-url-scheme": ("tty://board", ["tty://board", "not a serial port",
                                           "protocol 'tty' not known"]),
}


@pytest.mark.unit
@pytest.mark.parametrize("space", [None, "table2"], ids=["db-atoms", "space"])
@pytest.mark.parametrize("case", sorted(NOT_A_PORT))
def test_a_port_that_is_no_serial_line_is_named_and_creates_nothing(tmp_path, case, space):
    (tmp_path / "tty.txt").write_text("not a port\n")
    (tmp_path / "ports").mkdir()
    db = tmp_path / "atoms.db"
    if space is None:
        tiny_atomdb(db)
    port, words = NOT_A_PORT[case]
    before = snapshot(tmp_path)
    extra = ["--space", space] if space else []
    proc = calibrate(tmp_path, port.format(tmp=tmp_path), "--db", str(db), "--budget", "3",
                     *extra)
    assert_named(proc, 58, "NotASerialPort", *words)
    assert snapshot(tmp_path) == before


@pytest.mark.unit
def test_a_missing_port_is_board_disconnected_and_creates_nothing(tmp_path):
    before = snapshot(tmp_path)
    proc = calibrate(tmp_path, str(tmp_path / "ttyACM9"), "--db", str(tmp_path / "x.db"),
                     "--space", "table2", "--budget", "3")
    assert_named(proc, 52, "BoardDisconnected", "ttyACM9", "no such port")
    assert snapshot(tmp_path) == before


# -- a real terminal, with something else wrong --------------------------------------------------

@pytest.mark.unit
def test_missing_atomdb_without_space_creates_nothing(tmp_path, tty):
    proc = calibrate(tmp_path, tty, "--db", "X", "--budget", "3")
    assert_named(proc, 20, "CalibrationError", "X does not exist", "--space table2")
    assert snapshot(tmp_path) == {}


@pytest.mark.unit
def test_atomdb_without_atoms_of_the_board_is_refused_unchanged(tmp_path, tty):
    db = tmp_path / "atoms.db"
    tiny_atomdb(db, board="stm32f746")
    before = snapshot(tmp_path)
    proc = calibrate(tmp_path, tty, "--db", str(db), "--budget", "3")
    assert_named(proc, 20, "CalibrationError", "no emulated atom of stm32h743")
    assert snapshot(tmp_path) == before


@pytest.mark.unit
@pytest.mark.parametrize("space", [None, "table2"], ids=["db-atoms", "space"])
def test_a_file_that_is_no_atomdb_is_refused_unchanged(tmp_path, tty, space):
    db = tmp_path / "atoms.db"
    db.write_text("board,atom,latency_ms\nstm32h743,pw,1.0\n")
    before = snapshot(tmp_path)
    extra = ["--space", space] if space else []
    proc = calibrate(tmp_path, tty, "--db", str(db), "--budget", "3", *extra)
    assert_named(proc, 20, "NotAnAtomDB", "atoms.db", "not an SQLite database")
    assert snapshot(tmp_path) == before


@pytest.mark.unit
@pytest.mark.parametrize("flags, code, name, words", [
    (["--board", "stm32f999"], 2, "ConfigError", ["stm32f999"]),
    (["--space", "table9"], 2, "ConfigError", ["unknown atom space", "table9"]),
    (["--variant", "fastest"], 2, "ConfigError", ["unknown kernel variant", "fastest"]),
    (["--budget", "2"], 20, "CalibrationError", ["--budget 2"]),
    (["--repeats", "0"], 20, "CalibrationError", ["--repeats 0"]),
], ids=["unknown-board", "unknown-space", "unknown-variant", "budget-2", "repeats-0"])
def test_bad_flags_create_nothing(tmp_path, tty, flags, code, name, words):
    db = tmp_path / "atoms.db"
    tiny_atomdb(db)
    before = snapshot(tmp_path)
    argv = ["--db", str(db), "--space", "table2", "--budget", "3", *flags]
    proc = calibrate(tmp_path, tty, *argv)  # the last --board/--space/--budget wins
    assert_named(proc, code, name, *words)
    assert snapshot(tmp_path) == before


@pytest.mark.unit
def test_journal_in_a_missing_folder_creates_nothing(tmp_path, tty):
    proc = calibrate(tmp_path, tty, "--db", str(tmp_path / "x.db"), "--space", "table2",
                     "--budget", "3", "--journal", str(tmp_path / "nodir" / "j.jsonl"))
    assert_named(proc, 2, "ConfigError", "journal", "no such directory", "nodir")
    assert snapshot(tmp_path) == {}


@pytest.mark.unit
def test_journal_that_is_no_journal_is_named_before_any_emulation(tmp_path, tty):
    journal = tmp_path / "j.jsonl"
    journal.write_text("these are my notes\n")
    before = snapshot(tmp_path)
    proc = calibrate(tmp_path, tty, "--db", str(tmp_path / "x.db"), "--space", "table2",
                     "--budget", "3", "--journal", str(journal))
    assert_named(proc, 2, "ConfigError", "j.jsonl", "line 1 is not a journal record")
    assert snapshot(tmp_path) == before


@pytest.mark.unit
def test_read_only_folder_is_named_before_any_emulation(tmp_path, tty):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        proc = calibrate(tmp_path, tty, "--db", str(folder / "x.db"), "--space", "table2",
                         "--budget", "3")
        assert_named(proc, 22, "DatabaseReadOnly", "read-only", "ro")
        assert snapshot(folder) == {}
    finally:
        folder.chmod(0o755)


@pytest.mark.firmware
def test_a_board_that_does_not_answer_fails_before_any_emulation(tmp_path, tty):
    """A terminal nobody answers on (a board not flashed with the harness): HELLO is retried,
    then BoardNotResponding; the AtomDB, the plan and the journal are never created."""
    proc = calibrate(tmp_path, tty, "--db", str(tmp_path / "x.db"), "--space", "table2",
                     "--budget", "3", timeout=300)
    assert_named(proc, 51, "BoardNotResponding", tty, "HELLO")
    assert snapshot(tmp_path) == {}
