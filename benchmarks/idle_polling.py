"""Idle polling: host time per emulated millisecond of a firmware waiting on UART input.

The `echo` example spins on the USART status register until a byte arrives. Measured with the
idle-loop skip off (one Python MMIO call per poll) and on (remaining iterations accounted in
bulk, exactly), in the same run. Counts are checked equal.
    .venv/bin/python benchmarks/idle_polling.py [--ms 20]
"""

from __future__ import annotations

import argparse
import platform
import time

from atomsim.boards import board_ids, get_board
from atomsim.emulator.machine import Machine
from atomsim.target.firmware import build_example


def _wait(board, elf, skip: bool, ms: int) -> tuple[float, int, int]:
    m = Machine(board)
    m.idle_skip = skip
    m.load(elf)
    m.run(max_cycles=board.clock_hz // 1000)  # boot and print "echo ready"
    t = time.perf_counter()
    r = m.run(max_cycles=board.clock_hz // 1000 * ms)
    return (time.perf_counter() - t) / ms * 1e3, r.instructions, r.cycles


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ms", type=int, default=20, help="emulated milliseconds to wait")
    args = ap.parse_args()
    print(f"# idle polling on {platform.node()}, {time.strftime('%Y-%m-%d')}, "
          f"{args.ms} emulated ms waiting for UART input")
    print("| board | host ms per emulated ms, skip off | skip on | speed-up | counts equal |")
    print("|---|---|---|---|---|")
    for board_id in board_ids():
        board = get_board(board_id)
        elf = build_example("echo", board)
        off = _wait(board, elf, False, args.ms)
        on = _wait(board, elf, True, args.ms)
        print(f"| {board_id} | {off[0]:.1f} | {on[0]:.2f} | {off[0] / on[0]:.0f}x | "
              f"{off[1:] == on[1:]} |")


if __name__ == "__main__":
    main()
