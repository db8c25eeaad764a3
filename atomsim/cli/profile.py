"""``atomsim profile MODEL --board B``: a whole network on an emulated board, layer by layer.

MODEL is a .tflite, a stage config or an MCUNet config (configs get seeded weights). Prints the
per-layer table (type, shapes, MACs, cycles, ms, share, live activation bytes, weight bytes)
and the totals (MACs, parameters, Flash = weights + graph + code, peak SRAM = arena + scratch +
static + stack, latency at the board clock, instructions); ``--board all`` compares the three
boards (OOM where the network does not fit). ``--budget`` (or ``[profile] budget`` in
atomsim.toml) fails the command naming each broken budget; ``--junit`` writes one test case per
budget and board.
"""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from atomsim.cli.options import add_settings, verb_parser
from atomsim.cli.output import console, err_console, print_json
from atomsim.core.errors import AtomSimError
from atomsim.core.settings import ProfileModelSettings


def register(subparsers):
    """Add the ``profile`` verb."""
    parser = verb_parser(subparsers, "profile", "profile a whole network on emulated boards")
    parser.add_argument("model", help="a .tflite, a stage config or an MCUNet config (JSON)")
    return add_settings(parser, ProfileModelSettings)


def _boards(text: str):
    from atomsim.boards import board_ids, get_board

    ids = board_ids() if text == "all" else [b.strip() for b in text.split(",") if b.strip()]
    return [get_board(b) for b in ids]


def run(args) -> int:
    """Profile, print, check budgets; exit non-zero when a budget fails."""
    from atomsim.db import AtomDB
    from atomsim.nn.frontends import load_model
    from atomsim.profiling.budgets import (
        BudgetExceeded,
        ModelDoesNotFit,
        check_budgets,
        parse_budgets,
        write_junit,
    )
    from atomsim.profiling.network import plot_profile, profile_model

    s: ProfileModelSettings = args.settings
    budgets = parse_budgets(s.budget)
    boards = _boards(s.board)
    if s.junit is not None:  # before any work: a bad path found after profiling wastes it
        _check_output(s.junit, "--junit", (".xml",))
    if s.plot is not None:
        _check_output(s.plot, "--plot", _plot_formats())
    graph = load_model(args.model, seed=s.seed)
    profiles = []
    db = AtomDB.open(s.db) if s.db is not None else None
    try:
        for board in boards:
            profiles.append(profile_model(graph, board, s.variant, seed=s.seed, db=db))
    finally:
        if db is not None:
            db.close()
    checks = check_budgets(profiles, budgets)
    if s.junit is not None:
        write_junit(checks, s.junit)
    if s.plot is not None:
        plot_profile(profiles, s.plot)
    failed = [c for c in checks if not c.passed]
    error: AtomSimError | None = None
    if failed:
        error = BudgetExceeded(f"{len(failed)} budget(s) failed: "
                               + "; ".join(c.describe() for c in failed))
    elif all(p.status != "ok" for p in profiles):  # nothing was measured: not a success
        error = ModelDoesNotFit("; ".join(f"{p.board}: {p.message}" for p in profiles))
    if args.json:  # one JSON document, the error (if any) beside the profiles
        doc = {"profiles": [p.to_dict() for p in profiles],
               "budgets": [{**c.__dict__, "passed": c.passed} for c in checks]}
        if error is not None:
            doc = {"status": error.status, "error": {
                "type": type(error).__name__, "message": str(error),
                "exit_code": error.exit_code}, **doc}
        print_json(doc)
    else:
        for p in profiles:
            _print_profile(p)
        if len(profiles) > 1:
            _print_comparison(profiles)
        for c in checks:
            (console if c.passed else err_console).print(escape(c.describe()), highlight=False)
    if error is None:
        return 0
    err_console.print(f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
    return error.exit_code


def _check_output(path: Path, what: str, suffixes: tuple[str, ...]) -> None:
    """``path`` can be written as a new file of one of ``suffixes``; else a ConfigError."""
    from atomsim.core.errors import ConfigError
    from atomsim.core.paths import writable_dir

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a directory; name a file")
    if path.suffix.lower() not in suffixes:
        raise ConfigError(f"{what} {path}: name a file ending in one of {', '.join(suffixes)}")
    writable_dir(path.parent, f"{what} {path}")


def _plot_formats() -> tuple[str, ...]:
    from matplotlib.figure import Figure

    return tuple(f".{ext}" for ext in sorted(Figure().canvas.get_supported_filetypes()))


def _print_profile(p) -> None:
    if p.status != "ok":
        console.print(f"[bold]{escape(p.model)}[/bold] on {p.board}: [red]OOM[/red] "
                      f"{escape(p.message)}", highlight=False)
        return
    table = Table(title=f"{p.model} on {p.board} ({p.variant})")
    for col in ("#", "type", "input", "output", "MACs", "cycles", "ms", "share",
                "live B", "weights B"):
        table.add_column(col, justify="left" if col in ("type", "input", "output") else "right")
    for r in p.layers:
        table.add_row(str(r.index), r.kind, "x".join(map(str, r.in_shape[1:])),
                      "x".join(map(str, r.out_shape[1:])), f"{r.macs:,}", f"{r.cycles:,}",
                      f"{r.ms:.3f}", f"{100 * r.share:.1f} %", f"{r.live_bytes:,}",
                      f"{r.weight_bytes:,}")
    console.print(table)
    f, m = p.flash, p.sram
    lines = [
        f"MACs {p.macs:,}   parameters {p.params:,}",
        f"Flash {f['total']:,} B = weights {f['weights']:,} + graph {f['graph']:,} + code "
        f"{f['code']:,}",
        f"peak SRAM {m['peak']:,} B = arena {m['arena']:,} + scratch {m['scratch']:,} + static "
        f"{m['static']:,} + stack {m['stack']:,}",
        f"latency {p.latency_ms:.3f} ms at {p.clock_hz / 1e6:g} MHz ({p.cycles:,} cycles, "
        f"{p.instructions:,} instructions)",
        f"output == numpy reference: {'yes' if p.exact else 'NO'}",
    ]
    if len(p.banks) > 1:  # arena (with scratch) per SRAM bank: used / size
        lines.insert(3, "arena per SRAM bank: " + ", ".join(
            f"{name} {b['used']:,} / {b['size']:,} B" for name, b in p.banks.items()))
    if p.additivity is not None:
        lines.append(f"additivity: whole network vs sum of atoms {100 * p.additivity:+.3f} %")
    console.print("\n".join(lines), highlight=False)


def _print_comparison(profiles) -> None:
    table = Table(title=f"{profiles[0].model}: boards")
    for col in ("board", "MACs", "params", "Flash KB", "peak SRAM KB", "latency ms"):
        table.add_column(col, justify="left" if col == "board" else "right")
    for p in profiles:
        if p.status != "ok":
            table.add_row(p.board, f"{p.macs:,}", f"{p.params:,}", "-", "-", "OOM")
        else:
            table.add_row(p.board, f"{p.macs:,}", f"{p.params:,}",
                          f"{p.flash['total'] / 1024:.1f}", f"{p.sram['peak'] / 1024:.1f}",
                          f"{p.latency_ms:.2f}")
    console.print(table)
