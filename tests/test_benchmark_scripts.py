"""The benchmark scripts run end to end on tiny inputs (their figures are not asserted: speed
is measured in benchmarks, never in tests; this only keeps the scripts working)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.firmware


def _run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_emulator_speed_script():
    out = _run("emulator_speed.py", "--repeat", "1", "--trials", "1", "--boards", "stm32f412")
    assert "| stm32f412 |" in out


def test_idle_polling_script_counts_agree():
    out = _run("idle_polling.py", "--ms", "1")
    rows = [line for line in out.splitlines() if line.startswith("| stm32")]
    assert len(rows) == 3 and all(row.rstrip(" |").endswith("True") for row in rows)


def test_uart_flood_script():
    out = _run("uart_flood.py", "--trials", "1")
    assert "| text |" in out and "| --json |" in out
