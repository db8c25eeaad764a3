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
