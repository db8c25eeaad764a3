"""The harness over a real serial line: AtomSim's emulator behind a pseudo-terminal, driven
through pyserial as a NUCLEO board would be; every fault ends in a retry or a named error."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
import time

import pytest
import serial

from atomsim.boards import get_board
from atomsim.core.errors import ConfigError
from atomsim.core.paths import REPO_ROOT as REPO
from atomsim.nn import registry
from atomsim.nn.atoms import Atom
from atomsim.profiling.profiler import Profiler, harness_elf
from calibration.serial import protocol as P
from calibration.serial.errors import (
    BoardComputedWrongly,
    BoardDisconnected,
    BoardMismatch,
    BoardNotResponding,
)
from calibration.serial.host import LinkSettings, SerialBoard, flash, weight_bytes
from calibration.serial.journal import (
    Journal,
    board_measurements,
    measure_atoms,
    measure_on_port,
)
from calibration.serial.pty_board import Faults, InjectedTiming, PtyBoard

BOARD = "stm32h743"
FAST = LinkSettings(timeout_s=0.3, run_timeout_s=5.0, retries=6, backoff=1.3)
PW = Atom(type="pw", c_in=16, h_in=8, w_in=8, c_out=16, h_out=8, w_out=8)
DW = Atom(type="dw", c_in=16, h_in=8, w_in=8, k1=3, k2=3, c_out=16, h_out=8, w_out=8,
          stride=1, padding=(1, 1, 1, 1))
CONV = Atom(type="conv", c_in=8, h_in=6, w_in=6, k1=3, k2=3, c_out=8, h_out=6, w_out=6,
            stride=1, padding=(1, 1, 1, 1))


@pytest.fixture(scope="module")
def board():
    return get_board(BOARD)


@pytest.fixture(scope="module")
def elf(board):
    return harness_elf(board)  # built from source in the run (cached by content hash)


@pytest.fixture(scope="module")
def clean_cycles(board, elf):
    """Reported cycles of PW and DW on a pty board without faults (the reference)."""
    with PtyBoard(board, elf) as pty, SerialBoard(pty.port, board, elf, settings=FAST) as link:
        return {a.key: link.measure(a, repeats=1)[1][0].cycles[0] for a in (PW, DW)}


# -- frames (pure) --------------------------------------------------------------------------
@pytest.mark.unit
def test_decoder_resynchronises_after_garbage_and_damage():
    good = [P.encode(P.Type.WRITE_REPLY, s, bytes([s]) * s) for s in (1, 2, 3)]
    broken = bytearray(good[1])
    broken[9] ^= 0x10  # payload bit flip: CRC-32 fails
    stream = b"\xa5\x00\x5a\xa5\x5a\xff" + good[0] + bytes(broken) + good[2][:5]
    d = P.Decoder()
    frames = d.feed(stream)
    assert [f.seq for f in frames] == [1]
    assert [f.seq for f in d.feed(good[2][5:])] == [3]
    assert d.dropped > len(broken) - 1  # the damaged frame was searched byte by byte


@pytest.mark.unit
def test_frame_crc_matches_zlib_and_header_check():
    frame = P.encode(P.Type.RUN, 7, b"abc")
    assert frame[:2] == P.SOF and frame[2:4] == bytes([P.Type.RUN, 7])
    assert frame[6] == P.crc8(frame[2:6])
    assert int.from_bytes(frame[-4:], "little") == P.crc32(frame[2:-4])
    assert P.Decoder().feed(frame) == [P.Frame(P.Type.RUN, 7, b"abc")]


@pytest.mark.unit
def test_without_pyocd_flashing_names_the_elf_to_flash(tmp_path):
    if importlib.util.find_spec("pyocd") is not None:
        pytest.skip("pyOCD is installed: flash() would look for a probe")
    elf = tmp_path / "harness.elf"
    message = flash(elf)
    assert str(elf) in message and "pip install 'atomsim[board]'" in message


@pytest.mark.firmware
def test_a_missing_port_or_elf_is_a_named_error(board, elf, tmp_path):
    with pytest.raises(BoardDisconnected, match="cannot open") as err:
        SerialBoard(str(tmp_path / "ttyACM9"), board, elf)
    assert err.value.exit_code == 52
    with pytest.raises(ConfigError, match="no harness ELF"):
        SerialBoard(str(tmp_path / "ttyACM9"), board, tmp_path / "x.elf")


# -- the pty board --------------------------------------------------------------------------
@pytest.mark.firmware
def test_pty_board_reports_injected_timing_of_the_emulated_kernel(board, elf):
    timing = InjectedTiming(scale=1.25, per_call=3000, per_weight_byte=0.5)
    with PtyBoard(board, elf, timing) as pty, SerialBoard(pty.port, board, elf,
                                                          settings=FAST) as link:
        hello = link.connect()
        call, runs = link.measure(DW, repeats=2)
    assert hello.board == BOARD and hello.job_size == link.contract.type("atomsim_job_t").size
    base = pty.log.base_cycles
    assert len(base) == 2 and base[0] == base[1]  # deterministic
    wb = weight_bytes(call.filter_dims, call.out_dims, call.op)
    assert wb == DW.flash_bytes
    assert [r.cycles[0] for r in runs] == [timing.apply(base[0], wb)] * 2
    # the serial path's DWT cycles are the memory path's marker cycles up to the few cycles
    # of reading CYCCNT (weights sit in RAM here, in flash there: same cost on this model)
    emulated = Profiler(board).run_case(registry.call_for_atom(DW)).cycles
    assert abs(base[0] - emulated) <= 64, (base[0], emulated)
    assert pty.log.errors == []


@pytest.mark.firmware
def test_clean_line_needs_no_retry_and_no_new_session(board, elf):
    with PtyBoard(board, elf) as pty, SerialBoard(pty.port, board, elf, settings=FAST) as link:
        for atom in (PW, DW, CONV):
            link.measure(atom, repeats=2)
    assert pty.log.runs == 6
    assert link.stats["retransmits"] == 0 and link.stats["resets"] == 0


def _ask(port, frame: bytes, timeout: float = 5.0) -> P.Frame:
    """Send raw bytes, return the first reply frame (BOOT frames skipped)."""
    port.write(frame)
    decoder, deadline = P.Decoder(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        for f in decoder.feed(port.read(max(1, port.in_waiting))):
            if f.type != P.Type.BOOT:
                return f
    raise AssertionError("no reply")


@pytest.mark.firmware
def test_firmware_answers_a_repeated_request_without_applying_it_again(board, elf):
    with PtyBoard(board, elf) as pty, serial.Serial(pty.port, timeout=0.05) as port:
        hello = P.Hello.parse(_ask(port, P.encode(P.Type.HELLO, 1, struct.pack("<I", 99))).payload)
        assert hello.session == 99 and hello.board == BOARD
        addr = hello.arena_start
        write = P.encode(P.Type.WRITE, 2, struct.pack("<II", 99, addr) + b"\x11" * 8)
        acks = [_ask(port, write).payload for _ in range(2)]  # the second is a retransmission
        assert acks[0] == acks[1] == struct.pack("<I", P.crc32(struct.pack("<I", addr)
                                                               + b"\x11" * 8))
        outside = P.encode(P.Type.WRITE, 3, struct.pack("<II", 99, hello.image_start) + b"x")
        err = _ask(port, outside)
        assert err.type == P.Type.ERROR and err.seq == 3
        assert P.ErrorReply.parse(err.payload).code == P.LinkError.RANGE  # flash: refused
        stale = P.encode(P.Type.WRITE, 4, struct.pack("<II", 98, addr) + b"x")
        assert P.ErrorReply.parse(_ask(port, stale).payload).code == P.LinkError.SESSION


@pytest.mark.firmware
def test_output_read_back_equals_numpy_reference(board, elf):
    with PtyBoard(board, elf) as pty, SerialBoard(pty.port, board, elf, settings=FAST) as link:
        link.connect()
        call = registry.call_for_atom(PW)
        link.run_case(call)
        out = link.read_output(*_output_of(link, call))
    assert out == registry.expected_output(call).astype("int8").tobytes()


def _output_of(link, call):
    from calibration.serial.host import place

    upload = place([call], link.contract, link.hello, link.variant)
    return upload.outputs[0]


@pytest.mark.firmware
@pytest.mark.parametrize("faults", [
    Faults(seed=1, drop_to_board=0.001, drop_to_host=0.001),
    Faults(seed=2, corrupt_to_board=0.001, corrupt_to_host=0.001),
    Faults(seed=3, garbage=40),
], ids=["dropped-bytes", "corrupted-bytes", "garbage-first"])
def test_damaged_line_is_retried_and_measures_the_same(board, elf, clean_cycles, faults):
    with PtyBoard(board, elf, faults=faults) as pty, \
            SerialBoard(pty.port, board, elf, settings=FAST) as link:
        got = {a.key: link.measure(a, repeats=1)[1][0].cycles[0] for a in (PW, DW)}
    assert got == clean_cycles
    if faults.garbage:
        assert link.decoder.dropped >= faults.garbage
    else:
        assert pty.log.dropped + pty.log.corrupted > 0
        assert link.stats["retransmits"] > 0


@pytest.mark.firmware
def test_reset_mid_job_uploads_again_and_measures_the_same(board, elf, clean_cycles):
    faults = Faults(reset_at_runs=(1,))
    with PtyBoard(board, elf, faults=faults) as pty, \
            SerialBoard(pty.port, board, elf, settings=FAST) as link:
        _, runs = link.measure(DW, repeats=2)
    assert pty.log.resets == 1 and link.stats["resets"] == 1
    assert [r.cycles[0] for r in runs] == [clean_cycles[DW.key]] * 2


@pytest.mark.firmware
def test_disconnect_is_a_named_error(board, elf):
    with PtyBoard(board, elf, faults=Faults(disconnect_at_run=1)) as pty, \
            SerialBoard(pty.port, board, elf, settings=FAST) as link:
        with pytest.raises(BoardDisconnected, match="disconnected"):
            link.measure(PW, repeats=1)


@pytest.mark.firmware
def test_silent_board_times_out_with_bounded_retries(board, elf):
    settings = LinkSettings(timeout_s=0.1, retries=2, backoff=2.0)
    with PtyBoard(board, elf, faults=Faults(silent=True)) as pty, \
            SerialBoard(pty.port, board, elf, settings=settings) as link:
        with pytest.raises(BoardNotResponding) as err:
            link.connect()
    assert err.value.attempts == 3 and 0.6 <= err.value.waited_s < 1.0
    assert err.value.exit_code == 51


@pytest.mark.firmware
def test_board_that_computes_wrongly_is_caught(board, elf):
    with PtyBoard(board, elf, faults=Faults(wrong_output=True)) as pty, \
            SerialBoard(pty.port, board, elf, settings=FAST) as link:
        with pytest.raises(BoardComputedWrongly, match="numpy reference"):
            link.measure(PW, repeats=1)


@pytest.mark.firmware
def test_board_with_other_firmware_is_refused(board, elf):
    other = get_board("stm32f746")
    with PtyBoard(board, elf) as pty, SerialBoard(pty.port, other, elf, settings=FAST) as link:
        with pytest.raises(BoardMismatch, match="stm32h743"):
            link.connect()


@pytest.mark.firmware
def test_pty_board_in_its_own_process(board, elf):
    proc = subprocess.Popen([sys.executable, "-m", "calibration.serial.pty_board", "--board",
                             BOARD], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/")
        with SerialBoard(port, board, elf, settings=FAST) as link:
            _, runs = link.measure(PW, repeats=1)
        assert runs[0].cycles[0] > InjectedTiming().per_call
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


# -- resumable measurement ------------------------------------------------------------------
@pytest.mark.firmware
def test_interrupted_measurement_resumes_without_loss_or_duplicates(board, elf, tmp_path,
                                                                     clean_cycles):
    atoms, repeats = [PW, DW, CONV], 2
    path = tmp_path / "board.jsonl"
    # the cable is pulled during the 4th run (DW's second repeat)
    with PtyBoard(board, elf, faults=Faults(disconnect_at_run=4)) as pty, \
            SerialBoard(pty.port, board, elf, settings=FAST) as link:
        with pytest.raises(BoardDisconnected):
            measure_atoms(link, atoms, path, repeats=repeats)
    first = Journal(path).records
    assert [(r["atom_key"], r["repeat"]) for r in first] == [(PW.key, 0), (PW.key, 1),
                                                             (DW.key, 0)]
    with open(path, "ab") as fh:  # and the process died while writing a line
        fh.write(b'{"atom_key": "torn')
    with PtyBoard(board, elf) as pty, SerialBoard(pty.port, board, elf, settings=FAST) as link:
        journal = measure_atoms(link, atoms, path, repeats=repeats)
    samples = [(r["atom_key"], r["repeat"]) for r in journal.records]
    assert sorted(samples) == sorted((a.key, i) for a in atoms for i in range(repeats))
    assert pty.log.runs == 3  # only what was missing: DW's second repeat and CONV twice
    lines = [json.loads(x) for x in path.read_text().splitlines()[:3]]
    assert lines == first[:3]  # what was journaled is never rewritten
    by_key = {(r["atom_key"], r["repeat"]): r["cycles"] for r in journal.records}
    assert by_key[(DW.key, 0)] == by_key[(DW.key, 1)] == clean_cycles[DW.key]
    records = board_measurements(path, atoms, BOARD, board.clock_hz)
    assert [m.repeats for m in records] == [2, 2, 2]
    assert records[1].latency_ms == pytest.approx(clean_cycles[DW.key] / board.clock_hz * 1e3)


@pytest.mark.firmware
def test_noisy_line_and_a_reset_leave_the_journal_as_a_clean_run_does(board, elf, tmp_path):
    atoms, repeats = [PW, DW, CONV], 2
    journals = {}
    for name, faults in (("clean", Faults()),
                         ("noisy", Faults(seed=7, drop_to_board=0.0005, drop_to_host=0.0005,
                                          corrupt_to_board=0.0005, corrupt_to_host=0.0005,
                                          garbage=16, reset_at_runs=(3,)))):
        with PtyBoard(board, elf, faults=faults) as pty, \
                SerialBoard(pty.port, board, elf, settings=FAST) as link:
            journals[name] = measure_atoms(link, atoms, tmp_path / f"{name}.jsonl", repeats)
        if name == "noisy":
            assert pty.log.resets == 1 and pty.log.dropped + pty.log.corrupted > 0

    def samples(j):
        return sorted((r["atom_key"], r["repeat"], r["cycles"]) for r in j.records)

    assert samples(journals["noisy"]) == samples(journals["clean"])
    assert len(journals["clean"].records) == len(atoms) * repeats


@pytest.mark.firmware
def test_atom_that_does_not_fit_is_journaled_as_such(board, elf, tmp_path):
    huge = Atom(type="pw", c_in=256, h_in=64, w_in=64, c_out=256, h_out=64, w_out=64)
    path = tmp_path / "board.jsonl"
    with PtyBoard(board, elf) as pty, SerialBoard(pty.port, board, elf, settings=FAST) as link:
        journal = measure_atoms(link, [huge], path, repeats=2)
    (rec,) = journal.records
    assert rec["error"] == "does-not-fit" and rec["needed"] > rec["available"]
    assert journal.done(BOARD, link.variant, huge.key) is None  # not "not measured"
    assert board_measurements(path, [huge], BOARD, board.clock_hz) == []


@pytest.mark.firmware
def test_measure_on_port_gives_a_serial_measurement_source(board, elf, tmp_path):
    with PtyBoard(board, elf) as pty:
        source = measure_on_port(board, pty.port, [PW, CONV], tmp_path / "j.jsonl", repeats=2,
                                 settings=FAST)
    assert source.kind == "serial" and pty.port in source.location and source.sha256
    assert [m.atom for m in source.measurements] == [PW, CONV] and source.repeats == 2
    assert pty.log.runs == 4


# -- a real board ---------------------------------------------------------------------------
@pytest.mark.hardware
def test_real_board_on_a_port():
    port = os.environ.get("ATOMSIM_BOARD_PORT")
    if not port:
        pytest.skip("no board attached: set ATOMSIM_BOARD_PORT=/dev/ttyACM0 (and "
                    "ATOMSIM_BOARD_ID, default stm32h743) for a NUCLEO flashed with the "
                    "harness ELF to run this test")
    board = get_board(os.environ.get("ATOMSIM_BOARD_ID", BOARD))
    elf = harness_elf(board)
    with SerialBoard(port, board, elf, settings=LinkSettings()) as link:
        link.connect()
        _, runs = link.measure(PW, repeats=3)
    assert all(r.cycles[0] > 0 for r in runs)
