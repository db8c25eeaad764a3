"""WFI sleep: host time follows the work done, not the emulated time slept.

The `wfisleep` example sleeps in a WFI loop woken by SysTick (a few instructions of work per
tick). The emulator skips the time between wake-ups in one step, so host time grows with the
number of wake-ups and stays flat in the length of the sleep: compare 0.1, 1 and 10 s of
emulated sleep at a 1 kHz tick (10x the wake-ups each step) and at a 50 Hz tick (few
wake-ups: host time nearly constant). Run:
    .venv/bin/python benchmarks/wfi_sleep.py [--boards stm32f412 ...] [--seconds 0.1 1 10]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

from atomsim.boards import board_ids, get_board
from atomsim.emulator.machine import Machine
from atomsim.target.firmware import build_example


def measure(board, seconds: float, tick_hz: int) -> tuple[float, int, int, float]:
    """(host seconds, wake-ups, instructions, emulated seconds) of one sleep."""
    elf = build_example("wfisleep", board, extra_flags=[f"-DSLEEP_MS={int(seconds * 1000)}u",
                                                        f"-DTICK_HZ={tick_hz}u"])
    machine = Machine(board)
    machine.load(elf)
    t = time.perf_counter()
    result = machine.run()
    host = time.perf_counter() - t
    machine.close()
    assert result.status == "ok", result.error
    ticks = int(result.uart.split("@atomsim ticks=")[1].split()[0])
    return host, ticks, result.instructions, result.cycles / board.clock_hz


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", nargs="+", default=board_ids())
    ap.add_argument("--seconds", nargs="+", type=float, default=[0.1, 1.0, 10.0])
    ap.add_argument("--ticks", nargs="+", type=int, default=[1000, 50])  # SysTick: 24 bits
    args = ap.parse_args()
    print(f"# WFI sleep, {platform.node()} ({platform.processor() or platform.machine()}), "
          f"{datetime.date.today()}")
    print("| board | tick | emulated s | wake-ups | instructions | host s | "
          "host s per emulated s | host us per wake-up |")
    print("|---|---|---|---|---|---|---|---|")
    for board_id in args.boards:
        board = get_board(board_id)
        for tick_hz in args.ticks:
            for seconds in args.seconds:
                host, ticks, insns, emulated = measure(board, seconds, tick_hz)
                print(f"| {board_id} | {tick_hz} Hz | {emulated:.3f} | {ticks} | {insns} | "
                      f"{host:.3f} | {host / emulated:.4f} | {host / max(ticks, 1) * 1e6:.0f} |")


if __name__ == "__main__":
    main()
