"""AtomNet search speed: candidates evaluated per minute, search wall time per setting, how
close the block-pair SRAM estimate is to the real memory planner, and (``--compare``) the best
MACs of the hybrid space against the single-pattern spaces and the MCUNet configs profiled on
the same board.

    python benchmarks/search_speed.py --db atoms.db [--settings f412,f746,h743] [--compare]
        [--mcunet ../shared/data/mcunet-configs]

The AtomDB file is filled on demand (atoms of the space profiled on the emulated board); that
one-time fill is timed and printed separately from the search. Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atomnet.search import Evaluator, Limits, search  # noqa: E402
from atomnet.space import get_space  # noqa: E402
from atomsim.nn.planner import Bank, plan  # noqa: E402

SETTINGS = {  # METHOD.md: the paper's three settings and their latency limits
    "f412": ("stm32f412", 2200.0, 256, 1024),
    "f746": ("stm32f746", 980.0, 320, 1024),
    "h743": ("stm32h743", 521.0, 512, 2048),
}


def quiet(_m: str) -> None:
    """Drop progress lines."""


def speed(name: str, db: Path) -> list[str]:
    """Throughput, wall time per strategy and the SRAM estimate check for one setting."""
    board, lat, sram, flash = SETTINGS[name]
    limits = Limits(lat, sram * 1024, flash * 1024)
    space = get_space("hybrid")
    ev = Evaluator(space, board, db, log=quiet)
    t0 = time.perf_counter()
    ev.prepare()
    rows = [f"| {board} | prepare | one-time AtomDB fill {ev.fill_s:.1f} s "
            f"({ev.profiled} atoms profiled); block costs {ev.prepare_s:.1f} s "
            f"({len(ev.blocks)} blocks) | {time.perf_counter() - t0:.1f} s | | |"]
    # raw evaluation throughput on random candidates (stage and pair caches warm up inside)
    rng = random.Random(0)
    cands = [space.sample(rng) for _ in range(100_000)]
    for label in ("cold caches", "warm caches"):
        t = time.perf_counter()
        for c in cands:
            ev.evaluate(c)
        dt = time.perf_counter() - t
        rows.append(f"| {board} | evaluate, {label} | {len(cands):,} random candidates | "
                    f"{dt:.1f} s | {len(cands) / dt * 60:,.0f} | |")
    for strategy, kw in (("exhaustive", {}), ("random", {"budget": 300_000}),
                         ("evolution", {"budget": 300_000})):
        r = search(space, board, limits, db, strategy=strategy, evaluator=ev, log=quiet,
                   time_limit_s=50, **kw)
        m = r.chosen.metrics
        rows.append(f"| {board} | {strategy} | {r.evaluated:,} evaluated, {r.covered:,} of "
                    f"{r.space_size:,} decided; {len(r.rejected)} refused by the planner | "
                    f"{r.search_s:.1f} s | {r.evaluated / r.search_s * 60:,.0f} | "
                    f"{m.macs / 1e6:.1f}M, {m.latency_ms:.0f} ms |")
    return rows


def estimate_check(name: str, db: Path, n: int = 400) -> str:
    """Block-pair arena estimate vs the real planner on random candidates of the space."""
    board, *_ = SETTINGS[name]
    space = get_space("hybrid")
    ev = Evaluator(space, board, db, log=quiet)
    ev.prepare()
    rng = random.Random(1)
    exact = under = over = 0
    worst_under = worst_over = 0.0
    for _ in range(n):
        c = space.sample(rng)
        est = ev.evaluate(c).arena_bytes
        mem = plan(ev.graph(c), [Bank("all", 1 << 40)],
                   variant=ev.variant)
        real = max(p.offset + p.size for p in mem.placements)
        if est == real or abs(est - real) < 8:
            exact += 1
        elif est < real:
            under += 1
            worst_under = max(worst_under, (real - est) / real)
        else:
            over += 1
            worst_over = max(worst_over, (est - real) / real)
    return (f"| {n} random hybrid candidates | {exact} within 8 B | {under} under "
            f"(worst {100 * worst_under:.1f} %) | {over} over (worst {100 * worst_over:.1f} %) |")


def compare(name: str, db: Path, mcunet: Path | None) -> list[str]:
    """Best MACs per space (evolution, 30 s) and the MCUNet configs on the same board."""
    board, lat, sram, flash = SETTINGS[name]
    limits = Limits(lat, sram * 1024, flash * 1024)
    rows = []
    for space_name in ("hybrid", "sep", "convnext", "mbconv"):
        space = get_space(space_name)
        r = search(space, board, limits, db, strategy="evolution", budget=600_000,
                   time_limit_s=30, log=quiet)
        p = r.chosen
        m = p.metrics
        rows.append(f"| {board} | {space_name} | {m.macs / 1e6:.1f}M | {m.latency_ms:.0f} | "
                    f"{p.planned_sram_bytes / 1024:.0f} | {m.flash_bytes / 1024:.0f} | "
                    f"{r.search_s:.0f} s |")
    if mcunet is not None:
        from atomsim.boards import get_board
        from atomsim.nn.frontends import load_model
        from atomsim.profiling.network import profile_model

        for path in sorted(Path(mcunet).glob("*.json")):
            graph = load_model(path, seed=0)
            prof = profile_model(graph, get_board(board))
            if prof.status != "ok":
                rows.append(f"| {board} | {path.stem} | {prof.macs / 1e6:.1f}M | OOM | - | - | "
                            "- |")
                continue
            fits = (prof.latency_ms <= lat and prof.sram["peak"] <= sram * 1024
                    and prof.flash["total"] <= flash * 1024)
            rows.append(f"| {board} | {path.stem} (profiled) | {prof.macs / 1e6:.1f}M | "
                        f"{prof.latency_ms:.0f} | {prof.sram['peak'] / 1024:.0f} | "
                        f"{prof.flash['total'] / 1024:.0f} | "
                        f"{'fits' if fits else 'breaks a limit'} |")
    return rows


def main() -> int:
    """Run the benchmark; print Markdown tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--settings", default="f412,f746,h743")
    ap.add_argument("--compare", action="store_true")
    ap.add_argument("--mcunet", type=Path, default=None)
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args()
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    if not args.no_speed:
        print("| board | what | detail | wall | candidates/min | best |")
        print("|---|---|---|---|---|---|")
        for name in names:
            for row in speed(name, args.db):
                print(row, flush=True)
        print("\n| SRAM estimate | exact | under | over |\n|---|---|---|---|")
        print(estimate_check(names[0], args.db), flush=True)
    if args.compare:
        print("\n| board | space / model | MACs | latency ms | SRAM KB | Flash KB | search |")
        print("|---|---|---|---|---|---|---|")
        for name in names:
            for row in compare(name, args.db, args.mcunet):
                print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
