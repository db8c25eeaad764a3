"""``atomsim demo``: the examples on every board, then per-operator profiling into AtomDB."""

from __future__ import annotations

from rich.table import Table

from atomsim.cli.options import verb_parser
from atomsim.cli.output import console, print_json, run_table


def register(subparsers):
    """Add the ``demo`` verb."""
    return verb_parser(subparsers, "demo", "build and run the examples on every board")


def run(args) -> int:
    """The main job: examples on every board, then per-operator profiling into AtomDB."""
    from atomsim.boards import board_ids, get_board
    from atomsim.core.paths import build_dir
    from atomsim.emulator.machine import run_elf
    from atomsim.nn.spaces import worked_examples
    from atomsim.profiling.additivity import check_all
    from atomsim.profiling.sweep import sweep
    from atomsim.target.firmware import build_example

    rows, failed = [], 0
    for board_id in board_ids():
        board = get_board(board_id)
        for example in ("hello", "clockinit", "bench"):
            result = run_elf(board, build_example(example, board))
            rows.append((example, result))
            failed += result.error is not None
    db_path = build_dir() / "demo" / "atomdb.sqlite"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    sweeps = {b: sweep(board_id=b, atoms=worked_examples(), db_path=db_path, workers=1)
              for b in board_ids()}
    additivity = check_all(board_ids(), db_path)
    if args.json:
        print_json({"examples": [dict(example=name, **r.to_dict()) for name, r in rows],
                    "db": str(db_path),
                    "oom": {b: r.failed for b, r in sweeps.items()},
                    "additivity": [dict(board=a.board, block=a.block, atoms=a.atoms,
                                        whole_cycles=a.whole_cycles, sum_cycles=a.sum_cycles,
                                        deviation=a.deviation) for a in additivity]})
        return 1 if failed else 0
    console.rule("1. Example firmware on the emulated boards")
    run_table(rows)
    console.rule("2. METHOD.md's worked examples, profiled per board (AtomDB: "
                 f"{db_path.relative_to(build_dir().parent)})")
    _atoms_table(db_path, sweeps)
    console.rule("3. Kernel additivity: block run whole vs the sum of its atoms from AtomDB")
    table = Table()
    for col in ("board", "block", "atoms", "whole cycles", "sum of atoms", "deviation"):
        table.add_column(col, justify="left" if col in ("board", "block") else "right")
    for a in additivity:
        table.add_row(a.board, a.block, str(a.atoms), f"{a.whole_cycles:,}",
                      f"{a.sum_cycles:,}", f"{a.deviation:+.4%}")
    console.print(table)
    return 1 if failed else 0


def _atoms_table(db_path, sweeps) -> None:
    from atomsim.db import AtomDB
    from atomsim.nn.spaces import worked_examples

    table = Table()
    for col in ("board", "atom", "Flash B", "MACs", "cycles", "latency ms", "SRAM B",
                "MACs/cycle"):
        table.add_column(col, justify="left" if col in ("board", "atom") else "right")
    keys = [a.key for a in worked_examples()]
    with AtomDB.open(db_path) as db:
        for board_id, report in sweeps.items():
            for m in db.measurements(board_id, keys=keys):
                table.add_row(board_id, m.atom.describe(), f"{m.atom.flash_bytes:,}",
                              f"{m.atom.macs:,}", f"{m.cycles:,}", f"{m.latency_ms:.3f}",
                              f"{m.sram_bytes:,}", f"{m.atom.macs / m.cycles:.2f}")
            for key, reason in report.failed:
                table.add_row(board_id, key, "", "", "", "", "[red]OOM[/red]", reason)
    console.print(table)
