"""Kernel efficiency on the emulated boards: MACs per cycle and instructions per MAC.

For a fixed set of conv atoms (PW 1x1, DW 3x3 with no padding as AtomDB atoms have, NC 3x3),
each board and each kernel variant, one harness run (atomsim.profiling.profiler) gives cycles and
instructions between the profiling markers; MACs are the atom's paper-convention count. A
second table does the same for the elementwise, pooling, padding and activation atoms per
element: per output element, per input element for global average pooling. Every output is
checked bit for bit against the numpy reference before a figure is printed: a fast wrong kernel
must not look good. Prints markdown tables. Run:
    .venv/bin/python benchmarks/kernel_efficiency.py [--boards stm32f412 stm32h743]
        [--tables conv elementwise]

Targets (CMSIS-NN v7 on the same emulator): PW 1x1 < 2.65 instructions/MAC, DW 3x3 < 8.9.
"""

from __future__ import annotations

import argparse

import numpy as np

from atomsim.boards import get_board
from atomsim.nn.atoms import Atom
from atomsim.nn.registry import call_for_atom, expected_output
from atomsim.profiling.profiler import VARIANTS, Profiler

BOARDS = ("stm32f412", "stm32h743")


def _pw(c: int, hw: int, c_out: int | None = None) -> Atom:
    return Atom(type="pw", c_in=c, h_in=hw, w_in=hw, c_out=c if c_out is None else c_out,
                h_out=hw, w_out=hw)


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
    _pw(8, 32, 16), _pw(16, 32, 32), _pw(24, 32), _pw(32, 16, 8),
    _dw(32, 32, 1), _dw(32, 16, 2), _dw(64, 16, 1), _dw(64, 8, 2),
    _nc(16, 32, 32),
)


def _same(t: str, c: int, hw: int) -> Atom:
    return Atom(type=t, c_in=c, h_in=hw, w_in=hw, c_out=c, h_out=hw, w_out=hw)


def _pool(t: str, c: int, hw_in: int, k: int, stride: int, pad: int = 0) -> Atom:
    hw_out = (hw_in + 2 * pad - k) // stride + 1
    return Atom(type=t, c_in=c, h_in=hw_in, w_in=hw_in, k1=k, k2=k, stride=stride,
                padding=pad, c_out=c, h_out=hw_out, w_out=hw_out)


ELEMENT_ATOMS: tuple[Atom, ...] = (
    _same("add", 32, 32), _same("mul", 32, 16), _same("mul_bcast", 32, 16),
    _pool("avgpool", 32, 16, 3, 1, 1), _pool("maxpool", 32, 32, 2, 2),
    _pool("maxpool", 32, 16, 3, 2, 1),
    Atom(type="global_avgpool", c_in=64, h_in=7, w_in=7, c_out=64),
    _same("relu", 32, 32), _same("relu6", 32, 32), _same("hard_swish", 32, 32),
    _same("hard_sigmoid", 32, 32),
    Atom(type="pad", c_in=32, h_in=16, w_in=16, padding=1, c_out=32, h_out=18, w_out=18),
    Atom(type="pad", c_in=3, h_in=32, w_in=32, padding=(0, 0, 1, 1), c_out=3, h_out=33,
         w_out=33),
)


def elements(atom: Atom) -> int:
    """Elements an atom's cost is counted per: its input for global pooling, else its output."""
    return atom.c_in * atom.h_in * atom.w_in if atom.type == "global_avgpool" else \
        atom.output_bytes


def measure(profiler: Profiler, atom: Atom) -> tuple[int, int]:
    """(cycles, instructions) of one atom; raises if the output is not bit-exact."""
    case = call_for_atom(atom)
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
    ap.add_argument("--tables", nargs="+", default=["conv", "elementwise"],
                    choices=["conv", "elementwise"])
    args = ap.parse_args()

    for table in args.tables:
        conv = table == "conv"
        unit = "MAC" if conv else "elem"
        print(f"\n| board | atom | {unit}s | variant | cycles | instructions "
              f"| {unit}s/cycle | instr/{unit} | cycles/{unit} |")
        print("|---|---|---:|---|---:|---:|---:|---:|---:|")
        for board_id in args.boards:
            board = get_board(board_id)
            profilers = {v: Profiler(board, v) for v in args.variants}
            try:
                for atom in ATOMS if conv else ELEMENT_ATOMS:
                    n = atom.macs if conv else elements(atom)
                    for variant, prof in profilers.items():
                        cycles, insns = measure(prof, atom)
                        print(f"| {board_id} | {atom.describe()} | {n} | {variant} "
                              f"| {cycles} | {insns} | {n / cycles:.3f} | {insns / n:.3f} "
                              f"| {cycles / n:.3f} |", flush=True)
            finally:
                for prof in profilers.values():
                    prof.close()


if __name__ == "__main__":
    main()
