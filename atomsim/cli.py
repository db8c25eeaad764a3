"""The ``atomsim`` command line. One verb per function; every verb has ``--json``.

User mistakes and firmware outcomes end with a message and a distinct exit code (see
atomsim/errors.py), never with a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from rich.console import Console
from rich.table import Table

from atomsim.boards import board_ids, get_board, load_boards
from atomsim.core.errors import AtomSimError

console = Console()
err_console = Console(stderr=True)

_VERBS: dict[str, Callable[[argparse.Namespace], int]] = {}


def verb(name: str):
    """Register a sub-command handler."""
    def deco(fn):
        _VERBS[name] = fn
        return fn
    return deco


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def _emit(args, data, text: str) -> None:
    """``data`` as JSON with --json, else ``text`` for a person."""
    if args.json:
        _print_json(data)
    else:
        console.print(text, highlight=False)


@verb("boards")
def cmd_boards(args) -> int:
    """Table of boards and their memories."""
    boards = load_boards()
    if args.json:
        _print_json([{
            "id": b.id, "name": b.name, "board": b.board, "core": b.core, "clock_hz": b.clock_hz,
            "flash_wait_states": b.flash_wait_states, "sram_budget_bytes": b.sram_budget_bytes,
            "memories": [{"name": m.name, "addresses": list(m.addresses), "size": m.size}
                         for m in b.platform().memories],
            "regions": {r.name: {"address": r.address, "size": r.size}
                        for r in (b.flash, b.ram, b.stack)},
        } for b in boards.values()])
        return 0
    table = Table(title="AtomSim boards")
    for col in ("board", "chip", "core", "clock", "flash WS", "memories (datasheet sizes)"):
        table.add_column(col)
    for b in boards.values():
        mems = ", ".join(f"{m.name} {m.size // 1024} KB @0x{m.addresses[0]:08X}"
                         for m in b.platform().memories)
        table.add_row(b.id, f"{b.name} ({b.board})", b.core, f"{b.clock_hz / 1e6:g} MHz",
                      str(b.flash_wait_states), mems)
    console.print(table)
    return 0


@verb("build")
def cmd_build(args) -> int:
    """Build an example firmware for a board and print the ELF path."""
    from atomsim.target.firmware import build_example

    elf = build_example(args.example, get_board(args.board))
    if args.json:
        _print_json({"elf": str(elf), "board": args.board, "example": args.example})
    else:
        print(elf)
    return 0


@verb("run")
def cmd_run(args) -> int:
    """Run an ELF on a board; exit code 0 only for a clean end."""
    from atomsim.emulator.machine import run_elf

    result = run_elf(get_board(args.board), args.elf, max_instructions=args.max_instructions)
    if args.json:
        _print_json(result.to_dict())
    else:
        if result.uart:
            console.print(result.uart, end="" if result.uart.endswith("\n") else "\n",
                          markup=False, highlight=False)
        _run_table([(args.elf, result)])
        if result.error is not None:
            err_console.print(f"[red]error:[/red] {result.error}", markup=True, highlight=False)
    return 0 if result.error is None else result.error.exit_code


def _run_table(rows) -> None:
    table = Table()
    for col in ("firmware", "board", "status", "instructions", "cycles", "latency ms",
                "Renode-style ms", "flash B", "static RAM B", "stack B", "peak RAM B"):
        table.add_column(col, justify="right" if col not in ("firmware", "board", "status")
                         else "left")
    for name, r in rows:
        table.add_row(str(name), r.board, r.status, f"{r.instructions:,}", f"{r.cycles:,}",
                      f"{r.latency_ms:.3f}", f"{r.renode_style_ms:.3f}", f"{r.flash_bytes:,}",
                      f"{r.static_ram_bytes:,}", f"{r.stack_bytes:,}", f"{r.peak_ram_bytes:,}")
    console.print(table)


@verb("demo")
def cmd_demo(args) -> int:
    """The main job: examples on every board, then per-operator profiling into AtomDB."""
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
    sweeps = {b: sweep(b, worked_examples(), db_path, workers=1) for b in board_ids()}
    additivity = check_all(board_ids(), db_path)
    if args.json:
        _print_json({"examples": [dict(example=name, **r.to_dict()) for name, r in rows],
                     "db": str(db_path),
                     "oom": {b: r.failed for b, r in sweeps.items()},
                     "additivity": [dict(board=a.board, block=a.block, atoms=a.atoms,
                                         whole_cycles=a.whole_cycles, sum_cycles=a.sum_cycles,
                                         deviation=a.deviation) for a in additivity]})
        return 1 if failed else 0
    console.rule("1. Example firmware on the emulated boards")
    _run_table(rows)
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

    table = Table()
    for col in ("board", "atom", "Flash B", "MACs", "cycles", "latency ms", "SRAM B",
                "MACs/cycle"):
        table.add_column(col, justify="left" if col in ("board", "atom") else "right")
    from atomsim.nn.spaces import worked_examples

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

def load_atoms(spec: str):
    """Atoms from a CSV file in the paper's layout, or a named space (e.g. ``table2``)."""
    import csv
    from pathlib import Path

    from atomsim.core.errors import ConfigError
    from atomsim.nn.atoms import Atom
    from atomsim.nn.spaces import get_space

    path = Path(spec)
    if not path.suffix:
        return get_space(spec)
    if not path.exists():
        raise ConfigError(f"atoms file not found: {path}")
    atoms = []
    with path.open(newline="") as fh:
        for line, row in enumerate(csv.DictReader(fh), start=2):
            try:
                atoms.append(Atom.from_row(row))
            except ConfigError as exc:
                raise ConfigError(f"{path}:{line}: {exc}") from None
    return atoms


@verb("sweep")
def cmd_sweep(args) -> int:
    """Profile a list or space of atoms into AtomDB (resumable, parallel)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from atomsim.profiling.sweep import sweep

    atoms = load_atoms(args.atoms)
    with Progress(TextColumn(f"{args.board} {args.atoms}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]} atoms/s"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err_console, disable=args.json) as bar:
        task = bar.add_task("sweep", total=None, rate="-")

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[task].elapsed or 1e-9
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:.1f}")

        report = sweep(args.board, atoms, args.db, variant=args.variant, workers=args.workers,
                       batch_size=args.batch_size, scheduler=args.scheduler, progress=progress)
    summary = {"board": report.board, "variant": report.variant, "requested": report.requested,
               "already_stored": report.already_stored, "measured": report.measured,
               "failed": len(report.failed), "retried_batches": report.retried_batches,
               "failures": [{"atom": k, "reason": r} for k, r in report.failed[:50]]}
    if args.json:
        _print_json(summary)
    else:
        console.print(f"{report.requested} atoms: {report.already_stored} already stored, "
                      f"{report.measured} measured, {len(report.failed)} failed "
                      f"({report.retried_batches} batches retried)")
        for key, reason in report.failed[:10]:
            console.print(f"  [yellow]{key}[/yellow]: {reason}", highlight=False)
    return 0 if report.ok else 1


@verb("db")
def cmd_db(args) -> int:
    """AtomDB: stats, query, export, import."""
    from atomsim.db import commands as dbc

    if args.db_verb == "stats":
        stats = dbc.db_stats(args.db)
        _emit(args, stats, dbc.format_stats(stats))
    elif args.db_verb == "query":
        frame = dbc.db_query(args.db, board=args.board, atom_type=args.type,
                             variant=args.variant, source=args.source, limit=args.limit)
        if args.json:
            sys.stdout.write(frame.to_json(orient="records", indent=2) + "\n")
        else:
            console.print(frame.to_string(index=False), highlight=False)
    elif args.db_verb == "export":
        out = args.out
        if args.format and not out.endswith("." + args.format):
            from atomsim.core.errors import ConfigError

            raise ConfigError(f"--out {out} does not end in .{args.format}")
        n = dbc.db_export(args.db, out, board=args.board)
        _emit(args, {"rows": n, "out": out}, f"{n} rows -> {out}")
    elif args.db_verb == "import":
        n = dbc.db_import(args.db, args.file, board=args.board, source=args.source)
        _emit(args, {"rows": n}, f"{n} rows imported into {args.db}")
    return 0


@verb("report")
def cmd_report(args) -> int:
    """Reports from AtomDB: the method's guidelines with plots."""
    from atomsim.reports.guidelines import report_guidelines

    result = report_guidelines(args.db, args.board, args.out)
    if args.json:
        _print_json(result)
    else:
        summary = result.get("summary_path") or result.get("summary")
        console.print(f"guidelines for {args.board} written to {args.out}"
                      + (f" ({summary})" if summary else ""))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="atomsim", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="verb", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--json", action="store_true", help="machine-readable output")
        return sp

    add("boards", "list boards and their memories")
    b = add("build", "build an example firmware; prints the ELF path")
    b.add_argument("example")
    b.add_argument("--board", required=True, choices=board_ids())
    r = add("run", "run an ELF on an emulated board")
    r.add_argument("elf")
    r.add_argument("--board", required=True, choices=board_ids())
    r.add_argument("--max-instructions", type=int, default=2_000_000_000,
                   help="instruction budget; a run that reaches it ends with status timeout")
    add("demo", "build and run the examples on every board")
    sw = add("sweep", "profile atoms into AtomDB")
    sw.add_argument("--board", required=True, choices=board_ids())
    sw.add_argument("--atoms", required=True, help="a CSV in the paper's layout, or a space name")
    sw.add_argument("--db", required=True, help="AtomDB file (SQLite)")
    sw.add_argument("--variant", default=None, help="kernel variant (default cortex_m_dsp)")
    sw.add_argument("--workers", type=int, default=None, help="local processes (default: cores)")
    sw.add_argument("--batch-size", type=int, default=8)
    sw.add_argument("--scheduler", default=None, help="Dask scheduler, e.g. tcp://host:8786")
    d = add("db", "AtomDB: stats, query, export, import")
    dsub = d.add_subparsers(dest="db_verb", required=True)
    for name in ("stats", "query", "export", "import"):
        dp = dsub.add_parser(name)
        dp.add_argument("--db", required=True)
        dp.add_argument("--json", action="store_true")
        dp.add_argument("--board", default=None)
        if name == "query":
            dp.add_argument("--type", default=None)
            dp.add_argument("--variant", default=None)
            dp.add_argument("--source", default=None)
            dp.add_argument("--limit", type=int, default=50)
        if name == "export":
            dp.add_argument("--format", choices=("csv", "parquet"), default=None)
            dp.add_argument("--out", required=True)
        if name == "import":
            dp.add_argument("file")
            dp.add_argument("--source", default="board")
    rp = add("report", "reports from AtomDB")
    rsub = rp.add_subparsers(dest="report_verb", required=True)
    g = rsub.add_parser("guidelines")
    g.add_argument("--db", required=True)
    g.add_argument("--board", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--json", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``atomsim`` script."""
    args = _parser().parse_args(argv)
    try:
        return _VERBS[args.verb](args)
    except AtomSimError as exc:
        if getattr(args, "json", False):
            _print_json({"status": exc.status, "error": {"type": type(exc).__name__,
                                                         "message": str(exc)}})
        err_console.print(f"[red]error:[/red] {exc}", highlight=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
