"""Shared fixtures: boards, firmware builds (from source, in the run), small assembled snippets."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from atomsim.boards import board_ids, get_board
from atomsim.target.firmware import build, build_example

HERE = Path(__file__).resolve().parent
BOARD_IDS = board_ids()


@pytest.fixture(params=BOARD_IDS)
def board(request):
    """Each board in turn."""
    return get_board(request.param)


@pytest.fixture(scope="session")
def example_elf():
    """Build an example for a board (cached by content hash across the session)."""
    def _build(name: str, board_id: str, extra_flags=()):
        return build_example(name, get_board(board_id), extra_flags=extra_flags)
    return _build


@pytest.fixture(scope="session")
def test_elf():
    """Build a test firmware from tests/firmware_src/<name>.c with the AtomSim runtime."""
    def _build(name: str, board_id: str, extra_flags=()):
        src = HERE / "firmware_src" / f"{name}.c"
        return build(f"test_{name}", get_board(board_id), [src], extra_flags=extra_flags)
    return _build


def assemble_thumb(tmp_path: Path, asm: str, cpu: str = "cortex-m4") -> bytes:
    """Assemble a Thumb-2 snippet with arm-none-eabi-as; return the .text bytes."""
    src, obj, raw = tmp_path / "s.S", tmp_path / "s.o", tmp_path / "s.bin"
    src.write_text(".syntax unified\n.thumb\n.text\n" + asm + "\n")
    fpu = "-mfpu=fpv4-sp-d16" if cpu == "cortex-m4" else "-mfpu=fpv5-sp-d16"
    subprocess.run(["arm-none-eabi-as", f"-mcpu={cpu}", fpu, "-o", str(obj), str(src)],
                   check=True)
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)],
                   check=True)
    return raw.read_bytes()
