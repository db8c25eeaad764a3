"""Serial job link over a pseudo-terminal: what an atom costs over the protocol vs in process.

For each atom: wall time of the emulator's memory path (``Profiler.run_case``), wall time of
the same atom measured over the serial protocol on a pty board (upload + run + CRC check,
pyserial host, emulator behind the pty in a thread), the bytes the upload moved, and the
emulated cycles of both paths (the serial path's DWT window vs the memory path's markers).
Prints a Markdown table.

    .venv/bin/python benchmarks/serial_link.py [--board stm32h743] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from atomsim.boards import get_board
from atomsim.nn import registry
from atomsim.nn.atoms import Atom
from atomsim.profiling.profiler import Profiler, harness_elf
from calibration.serial.host import SerialBoard, place
from calibration.serial.pty_board import InjectedTiming, PtyBoard

ATOMS = {
    "pw 16x16 8x8": Atom(type="pw", c_in=16, h_in=8, w_in=8, c_out=16, h_out=8, w_out=8),
    "pw 64x64 16x16": Atom(type="pw", c_in=64, h_in=16, w_in=16, c_out=64, h_out=16, w_out=16),
    "dw 32 3x3 16x16": Atom(type="dw", c_in=32, h_in=16, w_in=16, k1=3, k2=3, c_out=32,
                            h_out=16, w_out=16, stride=1, padding=(1, 1, 1, 1)),
    "conv 16x32 3x3 12x12": Atom(type="conv", c_in=16, h_in=12, w_in=12, k1=3, k2=3, c_out=32,
                                 h_out=12, w_out=12, stride=1, padding=(1, 1, 1, 1)),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="stm32h743")
    ap.add_argument("--repeat", type=int, default=3, help="timed repetitions per atom")
    args = ap.parse_args()
    board = get_board(args.board)
    elf = harness_elf(board)
    profiler = Profiler(board)
    identity = InjectedTiming(scale=1.0, per_call=0.0, per_weight_byte=0.0)
    print(f"board {board.id}, {args.repeat} repetitions, median wall time\n")
    print("| atom | upload bytes | memory path ms | serial ms | serial KB/s | memory-path "
          "cycles | serial cycles | difference |")
    print("|---|---|---|---|---|---|---|---|")
    with PtyBoard(board, elf, identity) as pty, SerialBoard(pty.port, board, elf) as link:
        link.connect()
        for name, atom in ATOMS.items():
            call = registry.call_for_atom(atom)
            upload = place([call], link.contract, link.hello, link.variant)
            nbytes = sum(len(d) for _, d in upload.writes)
            mem_s, ser_s = [], []
            for _ in range(args.repeat):
                t = time.perf_counter()
                mem = profiler.run_case(call).cycles
                mem_s.append(time.perf_counter() - t)
                t = time.perf_counter()
                (run,) = link.run_case(call)
                ser_s.append(time.perf_counter() - t)
            m, s = statistics.median(mem_s), statistics.median(ser_s)
            ser = run.cycles[0]
            print(f"| {name} | {nbytes:,} | {m * 1e3:.0f} | {s * 1e3:.0f} | "
                  f"{nbytes / s / 1e3:.0f} | {mem:,} | {ser:,} | {ser - mem:+d} |")
    print(f"\nretransmits {link.stats['retransmits']}, resets {link.stats['resets']}")


if __name__ == "__main__":
    main()
