"""Emulator speed: million emulated instructions per second (MIPS), three ways, same firmware.

1. AtomSim's run: native block counter + timing model (the default path).
2. Bare Unicorn: the same machine with no hooks at all, run to the same exit address.
3. The design to beat: a Python callback per executed block (what the native counter replaces).

Each is timed several times in the same process, and the median is reported. Run:
    .venv/bin/python benchmarks/emulator_speed.py [--repeat 40] [--trials 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import unicorn

from atomsim.boards import board_ids, get_board
from atomsim.emulator.machine import Machine
from atomsim.target.firmware import build_example


def _timed_counted(board, elf) -> tuple[float, int]:
    m = Machine(board)
    m.load(elf)
    t = time.perf_counter()
    r = m.run()
    dt = time.perf_counter() - t
    assert r.status == "ok", r.error
    m.close()
    return dt, r.instructions


def _timed_bare(board, elf, python_hook: bool) -> float:
    m = Machine(board)
    fw = m.load(elf)
    m.counter.close()  # detach the native counter: no hooks left on the hot path
    counts: dict[int, int] = {}
    if python_hook:
        def on_block(uc, address, size, user):
            counts[address] = counts.get(address, 0) + 1
        m.uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
    stop = fw.symbol("atomsim_exit")
    t = time.perf_counter()
    m.uc.emu_start(m.uc.reg_read(unicorn.arm_const.UC_ARM_REG_PC) | 1, stop)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=40, help="matmul repetitions in the firmware")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--boards", nargs="*", default=list(board_ids()))
    args = ap.parse_args()
    print(f"# emulator speed on {platform.node()} ({platform.processor() or platform.machine()}),"
          f" {time.strftime('%Y-%m-%d')}, unicorn {unicorn.__version__}, "
          f"python {platform.python_version()}")
    print("| board | instructions | counted MIPS | bare MIPS | Python-hook MIPS | "
          "counting cost | native vs Python hook |")
    print("|---|---|---|---|---|---|---|")
    for board_id in args.boards:
        board = get_board(board_id)
        elf = build_example("bench", board, extra_flags=[f"-DBENCH_REPEAT={args.repeat}"])
        counted, bare, pyhook = [], [], []
        n = 0
        for _ in range(args.trials):
            dt, n = _timed_counted(board, elf)
            counted.append(dt)
            bare.append(_timed_bare(board, elf, python_hook=False))
        pyhook.append(_timed_bare(board, elf, python_hook=True))  # slow: once is enough
        c, b, p = (n / statistics.median(x) / 1e6 for x in (counted, bare, pyhook))
        print(f"| {board_id} | {n:,} | {c:.0f} | {b:.0f} | {p:.0f} | "
              f"{(1 - c / b) * 100:.0f} % | {c / p:.1f}x |")


if __name__ == "__main__":
    main()
