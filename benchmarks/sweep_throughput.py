"""Sweep throughput: the whole `table2` space on a board, atoms profiled per second.

Prints the distinct-atom count of table2, how many were measured and how many do not fit the
board (reported OOM), the wall time and the rate, for each board given. Fresh database per board.
    .venv/bin/python benchmarks/sweep_throughput.py [--boards stm32f412 ...] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from atomsim.boards import board_ids
from atomsim.nn.spaces import table2_atoms
from atomsim.profiling.sweep import sweep


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", nargs="*", default=list(board_ids()))
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    t0 = time.perf_counter()
    atoms = table2_atoms()
    enum_s = time.perf_counter() - t0
    print(f"# table2 sweep on {platform.node()} ({os.cpu_count()} cores), "
          f"{time.strftime('%Y-%m-%d')}; {len(atoms)} distinct atoms, enumerated in "
          f"{enum_s:.2f} s; {args.workers} worker processes")
    print("| board | atoms | measured | OOM (reported) | wall s | atoms/s |")
    print("|---|---|---|---|---|---|")
    for board_id in args.boards:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            report = sweep(board_id, atoms, Path(tmp) / "t2.db", workers=args.workers)
            wall = time.perf_counter() - t
        oom = sum("needs" in reason for _, reason in report.failed)
        print(f"| {board_id} | {report.requested} | {report.measured} | {oom} | {wall:.0f} | "
              f"{report.requested / wall:.1f} |")
        if len(report.failed) != oom:
            print(f"  (other failures: {[r for _, r in report.failed if 'needs' not in r][:3]})")


if __name__ == "__main__":
    main()
