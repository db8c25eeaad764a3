"""Whole networks on the emulated boards: Table-3 figures, emulation speed, planning time.

For every model (the six MCUNet/ProxylessNAS configs with seeded weights, the two MLPerf Tiny
.tflite models) and board: MACs, parameters, Flash (weights + graph + code), peak SRAM (arena +
scratch + static + stack), emulated latency, bit-exactness against the numpy reference, and
with ``--db`` the whole-network vs sum-of-atoms deviation (atoms profiled on demand into that
AtomDB). Speed: planning milliseconds per network (median of ``--trials``), emulated MACs and
instructions per host second of the network run. Prints one markdown table per section. Run:
    .venv/bin/python benchmarks/networks.py [--boards stm32h743] [--db atoms.db] [--variant V]
        [--models mcunet-10fps_imagenet,kws_ref_model] [--pad-in-conv]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from atomsim.boards import board_ids, get_board
from atomsim.core.errors import DoesNotFit
from atomsim.core.paths import REPO_ROOT
from atomsim.nn.frontends import load_model
from atomsim.nn.interpreter import run as numpy_run
from atomsim.nn.planner import ArenaDoesNotFit, plan
from atomsim.profiling.network import (
    build_network,
    graph_kernels,
    network_additivity,
    network_banks,
    run_network,
)

DATA = REPO_ROOT.parent / "shared" / "data"


def models() -> list[Path]:
    """The six MCUNet configs, then the two MLPerf Tiny models (those present)."""
    return sorted((DATA / "mcunet-configs").glob("*.json")) + sorted(
        (DATA / "tflite").glob("*.tflite"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", default=",".join(board_ids()))
    ap.add_argument("--variant", default="cortex_m_dsp")
    ap.add_argument("--db", type=Path, help="AtomDB for the additivity column (slow)")
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--models", help="comma list of model file stems (default: all)")
    ap.add_argument("--pad-in-conv", action="store_true",
                    help="configs with the padding inside the convolutions (no Pad atoms)")
    args = ap.parse_args()
    boards = [get_board(b) for b in args.boards.split(",")]
    paths = models()
    if args.models:
        keep = set(args.models.split(","))
        paths = [p for p in paths if p.stem in keep]
    db = None
    if args.db is not None:
        from atomsim.db import AtomDB

        db = AtomDB.open(args.db)
    print("| model | board | MACs | params | Flash KB (weights+graph+code) | peak SRAM KB "
          "(arena+scratch+static+stack) | latency ms | exact | additivity |")
    print("|---|---|---|---|---|---|---|---|---|")
    speed, planning = [], []
    for path in paths:
        g = load_model(path, seed=0, explicit_pad=not args.pad_in_conv)
        x = np.random.default_rng(0).integers(-128, 128, size=g.tensors[g.inputs[0]].size,
                                              dtype=np.int64).astype(np.int8)
        want = numpy_run(g, x)[0]
        for board in boards:
            # the banks build_network plans over: each less what the firmware keeps there
            banks = network_banks(board, args.variant, graph_kernels(g))
            times = []
            for _ in range(args.trials):
                t = time.perf_counter()
                try:
                    plan(g, banks, variant=args.variant)
                except ArenaDoesNotFit:
                    pass
                times.append(time.perf_counter() - t)
            planning.append((g.name, board.id, len(g.ops), statistics.median(times) * 1e3))
            head = f"| {g.name} | {board.id} | {g.macs('published') / 1e6:.1f}M | " \
                   f"{g.param_count() / 1e6:.3f}M |"
            try:
                image = build_network(g, board, args.variant)
            except ArenaDoesNotFit as exc:
                print(f"{head} - | OOM ({exc.peak_bytes / 1024:.0f} KB live at op "
                      f"{exc.peak_op}, {exc.deficit} B over) | OOM | - | - |", flush=True)
                continue
            except DoesNotFit as exc:  # the linked image: weights + code over the flash
                print(f"{head} - | OOM ({exc.region}: {exc.needed - exc.available} B over) | "
                      "OOM | - | - |", flush=True)
                continue
            t = time.perf_counter()
            try:
                r = run_network(image, x)
            except Exception as exc:  # noqa: BLE001 - report and go on with the next board
                print(f"{head} - | - | {type(exc).__name__}: {str(exc)[:80]} | - | - |",
                      flush=True)
                continue
            host = time.perf_counter() - t
            speed.append((g.name, board.id, g.macs() / host / 1e6, r.instructions / host / 1e6))
            f = image.flash
            scratch = image.plan.scratch_bytes
            dev = "-"
            if db is not None:
                dev = f"{100 * network_additivity(image, r, db).deviation:+.3f} %"
            print(f"{head} {f['total'] / 1024:.1f} ({f['weights'] / 1024:.1f}+"
                  f"{f['graph'] / 1024:.1f}+{f['code'] / 1024:.1f}) | "
                  f"{r.peak_sram_bytes / 1024:.1f} ({(r.arena_bytes - scratch) / 1024:.1f}+"
                  f"{scratch / 1024:.1f}+{r.static_bytes / 1024:.2f}+{r.stack_bytes / 1024:.2f})"
                  f" | {r.cycles / board.clock_hz * 1e3:.2f} | "
                  f"{'yes' if np.array_equal(r.outputs[0], want) else 'NO'} | {dev} |",
                  flush=True)
    print("\n| model | board | emulated MMACs per host s | emulated MIPS (host) |")
    print("|---|---|---|---|")
    for name, board, macs, mips in speed:
        print(f"| {name} | {board} | {macs:.1f} | {mips:.1f} |")
    print("\n| model | board | ops | planning ms (median) |")
    print("|---|---|---|---|")
    for name, board, ops, ms in planning:
        print(f"| {name} | {board} | {ops} | {ms:.2f} |")
    if db is not None:
        db.close()


if __name__ == "__main__":
    main()
