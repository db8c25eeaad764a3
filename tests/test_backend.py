"""Issue 7: one backend interface. The emulator implements it, and the consumers above it
(profiling, additivity, the Robot library) reach the target only through it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from atomsim.boards import get_board
from atomsim.emulator.machine import Machine
from atomsim.target.backend import Backend

ROOT = Path(__file__).resolve().parents[1] / "atomsim"
CONSUMERS = ("profiling", "robot")
# Machine internals a consumer must not reach past the interface for (names no board-data
# object uses: Region.memories is board data, so the machine's `memories` is not listed).
PRIVATE = {"uc", "counter", "scs", "peripherals", "_route", "_timings"}


@pytest.mark.unit
def test_emulator_machine_is_a_backend():
    machine = Machine(get_board("stm32f412"))
    try:
        assert isinstance(machine, Backend)
    finally:
        machine.close()


@pytest.mark.unit
@pytest.mark.parametrize("package", CONSUMERS)
def test_consumers_use_only_the_backend_interface(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert not offenders, "reaches past the Backend interface: " + ", ".join(offenders)
