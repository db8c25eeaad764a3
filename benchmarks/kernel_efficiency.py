"""Kernel efficiency on the emulated boards: MACs per cycle and instructions per MAC.

For a fixed set of conv atoms (PW 1x1, DW 3x3 with no padding as AtomDB atoms have, NC 3x3),
each board and each kernel variant, one harness run (atomsim.profiler) gives cycles and
instructions between the profiling markers; MACs are the atom's paper-convention count. Every
output is checked bit for bit against the numpy reference before a figure is printed: a fast
wrong kernel must not look good. Prints a markdown table. Run:
    .venv/bin/python benchmarks/kernel_efficiency.py [--boards stm32f412 stm32h743]

Targets (CMSIS-NN v7 on the same emulator): PW 1x1 < 2.65 instructions/MAC, DW 3x3 < 8.9.
"""

from __future__ import annotations

import argparse

import numpy as np

from atomsim.atoms import Atom
from atomsim.boards import get_board
from atomsim.profiler import VARIANTS, Profiler, case_for_atom, expected_output

BOARDS = ("stm32f412", "stm32h743")


def _pw(c: int, hw: int) -> Atom:
    return Atom(type="pw", c_in=c, h_in=hw, w_in=hw, c_out=c, h_out=hw, w_out=hw)


def _dw(c: int, hw_out: int, stride: int) -> Atom:
    hw_in = (hw_out - 1) * stride + 3
    return Atom(type="dw", c_in=c, h_in=hw_in, w_in=hw_in, k1=3, k2=3, stride=stride,
                c_out=c, h_out=hw_out, w_out=hw_out)


def _nc(c_in: int, c_out: int, hw_out: int, k: int = 3, stride: int = 1) -> Atom:
    hw_in = (hw_out - 1) * stride + k
    return Atom(type="conv", c_in=c_in, h_in=hw_in, w_in=hw_in, k1=k, k2=k, stride=stride,
                c_out=c_out, h_out=hw_out, w_out=hw_out)


ATOMS: tuple[Atom, ...] = (
    _pw(16, 32), _pw(32, 32), _pw(64, 16), _pw(96, 16),
    _dw(32, 32, 1), _dw(32, 16, 2), _dw(64, 16, 1), _dw(64, 8, 2),
    _nc(16, 32, 32),
)


def measure(profiler: Profiler, atom: Atom) -> tuple[int, int]:
    """(cycles, instructions) of one atom; raises if the output is not bit-exact."""
    case = case_for_atom(atom)
    result = profiler.run_case(case)
    want = expected_output(case).reshape(result.output.shape)
    if not np.array_equal(result.output, want):
        bad = np.argwhere(result.output != want)
        raise AssertionError(f"{profiler.variant} on {profiler.board.id}, {atom.describe()}: "
                             f"{len(bad)} outputs differ, first at {tuple(bad[0])}")
    return result.cycles, result.instructions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", nargs="+", default=list(BOARDS))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    args = ap.parse_args()

    print("| board | atom | MACs | variant | cycles | instructions | MACs/cycle "
          "| instr/MAC |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for board_id in args.boards:
        board = get_board(board_id)
        profilers = {v: Profiler(board, v) for v in args.variants}
        try:
            for atom in ATOMS:
                for variant, prof in profilers.items():
                    cycles, insns = measure(prof, atom)
                    print(f"| {board_id} | {atom.describe()} | {atom.macs} | {variant} "
                          f"| {cycles} | {insns} | {atom.macs / cycles:.3f} "
                          f"| {insns / atom.macs:.3f} |", flush=True)
        finally:
            for prof in profilers.values():
                prof.close()


if __name__ == "__main__":
    main()
