"""Text-mode `atomsim run` of firmware that floods the UART, against `--json`.

Builds tests/firmware_src/flood.c (5,000 numbered lines, then a clean exit), runs it through the
real `atomsim` command both ways, alternating, and prints the wall times. Text mode prints the
last lines and keeps the whole output in a file; rendering all of it had cost ten times the
emulation.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from atomsim.boards import get_board
from atomsim.target.firmware import build

ROOT = Path(__file__).resolve().parents[1]


def _timed(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="stm32f412")
    ap.add_argument("--trials", type=int, default=2)
    args = ap.parse_args()
    elf = build("test_flood", get_board(args.board), [ROOT / "tests" / "firmware_src" / "flood.c"])
    base = [sys.executable, "-m", "atomsim.cli", "run", str(elf), "--board", args.board]
    text, json_ = [], []
    for _ in range(args.trials):
        text.append(_timed(base))
        json_.append(_timed([*base, "--json"]))
    print(f"# UART flood on {platform.node()}, {time.strftime('%Y-%m-%d')}, {args.board}, "
          f"{args.trials} trials, median wall seconds")
    print("| mode | seconds | ratio to --json |")
    print("|---|---|---|")
    t, j = statistics.median(text), statistics.median(json_)
    print(f"| text | {t:.2f} | {t / j:.2f} |")
    print(f"| --json | {j:.2f} | 1.00 |")


if __name__ == "__main__":
    main()
