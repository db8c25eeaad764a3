"""Cost of the per-memory traffic counter: emulated MIPS with it off and on, same firmware.

The counter (``Machine(board, traffic=True)``) adds a native UC_HOOK_MEM_READ|WRITE callback;
Unicorn then takes its slow memory path for every load and store. This prints the speed with
the counter off and on, the slowdown, and checks that instructions and cycles are identical.
Run:
    .venv/bin/python benchmarks/traffic_counter.py [--repeat 40] [--trials 3]
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


def _timed(board, elf, traffic: bool):
    m = Machine(board, traffic=traffic)
    m.load(elf)
    t = time.perf_counter()
    r = m.run()
    dt = time.perf_counter() - t
    m.close()
    assert r.status == "ok", r.error
    return dt, r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=40, help="matmul repetitions in the firmware")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--boards", nargs="*", default=list(board_ids()))
    args = ap.parse_args()
    print(f"# traffic counter cost on {platform.node()}, {time.strftime('%Y-%m-%d')}, "
          f"unicorn {unicorn.__version__}, python {platform.python_version()}")
    print("| board | instructions | MIPS, counter off | MIPS, counter on | slowdown | "
          "data accesses counted | counts identical |")
    print("|---|---|---|---|---|---|---|")
    for board_id in args.boards:
        board = get_board(board_id)
        elf = build_example("bench", board, extra_flags=[f"-DBENCH_REPEAT={args.repeat}"])
        off, on = [], []
        for _ in range(args.trials):
            dt, r_off = _timed(board, elf, False)
            off.append(dt)
            dt, r_on = _timed(board, elf, True)
            on.append(dt)
        n = r_off.instructions
        same = (r_off.instructions, r_off.cycles) == (r_on.instructions, r_on.cycles)
        accesses = sum(t.reads + t.writes for t in r_on.traffic.values())
        a, b = (n / statistics.median(x) / 1e6 for x in (off, on))
        print(f"| {board_id} | {n:,} | {a:.0f} | {b:.0f} | {a / b:.1f}x | {accesses:,} | "
              f"{same} |")


if __name__ == "__main__":
    main()
