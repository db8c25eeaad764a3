"""Issue 11: text-mode ``run`` of firmware that floods the UART shows the tail and keeps the
whole output in a file (rendering all of it on a terminal cost ten times the emulation)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.firmware


def test_a_uart_flood_prints_its_tail_and_keeps_all_of_it(test_elf, tmp_path):
    elf = test_elf("flood", "stm32f412")
    env = {**os.environ, "ATOMSIM_BUILD_DIR": str(tmp_path / "build")}
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "run", str(elf), "--board",
                           "stm32f412"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    shown = re.findall(r"^flood line (\d+)$", proc.stdout, flags=re.M)
    assert shown == [str(i) for i in range(4800, 5000)]  # the last 200, in order
    m = re.search(r"4800 earlier UART lines not shown; all 5000 are in (\S+)", proc.stderr)
    assert m, proc.stderr
    kept = open(m.group(1)).read().splitlines()
    assert kept == [f"flood line {i}" for i in range(5000)]
    assert "Traceback" not in proc.stderr


def test_short_output_is_printed_whole(example_elf):
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "run",
                           str(example_elf("hello", "stm32f412")), "--board", "stm32f412"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Hello from STM32F412!" in proc.stdout and "not shown" not in proc.stderr
