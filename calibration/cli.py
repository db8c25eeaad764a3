"""``atomsim calibrate``: the verb, declared to atomsim as the entry point ``calibrate``.

    atomsim calibrate --from-csv FILE --board B --db DB [--budget N] [--png OUT.png]
    atomsim calibrate report --db DB [--id ID] [--board B] [--png OUT.png]
    atomsim calibrate --port PORT --board B --db DB [--budget N] [--repeats R] [--space S]
                      [--journal FILE] [--flash]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from calibration.errors import CalibrationError


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``calibrate`` verb (light imports only)."""
    from atomsim.cli.options import add_common, verb_parser

    p = verb_parser(subparsers, "calibrate",
                    "calibrate emulated latencies against one physical board")
    p.add_argument("--from-csv", type=Path, metavar="FILE",
                   help="board measurements in the paper's CSV layout")
    p.add_argument("--port", help="serial port (or pyserial URL) of a board running the "
                                  "harness ELF: measure the atoms on it")
    p.add_argument("--repeats", type=int, default=3,
                   help="with --port: runs per atom (default 3; the spread is reported)")
    p.add_argument("--space", help="with --port: choose the atoms from this named space "
                                   "(e.g. table2) instead of the AtomDB's atoms of the board")
    p.add_argument("--journal", type=Path,
                   help="with --port: the resumable measurement journal (default: next to "
                        "the AtomDB, DB.<board>.serial.jsonl)")
    p.add_argument("--flash", action="store_true",
                   help="with --port: flash the harness ELF through pyOCD first (when "
                        "installed; otherwise its path is printed)")
    p.add_argument("--board", help="board id (atomsim boards)")
    p.add_argument("--db", type=Path, help="AtomDB file (SQLite)")
    p.add_argument("--budget", type=int, metavar="N",
                   help="fit on N selected atoms (default with --from-csv: all rows; "
                        "with --port: 25)")
    p.add_argument("--variant", help="kernel variant of the emulated runs")
    p.add_argument("--seed", type=int, default=0, help="selection and CV seed")
    p.add_argument("--workers", type=int, help="emulator worker processes")
    p.add_argument("--png", type=Path, help="also write predicted-vs-measured PNG here")
    p.add_argument("--measured-only", action="store_true",
                   help="calibrate only the measured atoms, not every atom the AtomDB holds "
                        "for the board (those need an emulated run with traffic counting)")
    sub = p.add_subparsers(dest="calibrate_verb")
    r = sub.add_parser("report", help="error table and PNG of a recorded calibration")
    add_common(r)
    r.add_argument("--db", type=Path, dest="report_db", required=True, help="AtomDB file")
    r.add_argument("--id", dest="calibration_id", help="calibration id (default: newest)")
    r.add_argument("--board", dest="report_board", help="newest calibration of this board")
    r.add_argument("--png", type=Path, dest="report_png", default=Path("calibration.png"),
                   help="PNG to write (default: calibration.png)")
    return p


def run(args: argparse.Namespace) -> int:
    """Do what the flags ask; every problem is a named AtomSimError."""
    from atomsim.core.errors import ConfigError

    as_json = getattr(args, "json", False)
    if args.calibrate_verb == "report":
        from calibration.report import report

        record, png = report(args.report_db, args.calibration_id, args.report_board,
                             args.report_png, console=_console(as_json))
        if as_json:
            _print_json({"calibration": record, "png": str(png)})
        return 0
    if args.port and args.from_csv is not None:
        raise ConfigError("calibrate takes --from-csv FILE or --port PORT, not both")
    if args.port:
        return _run_port(args, as_json)
    for flag in ("space", "journal"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag} goes with --port")
    if args.from_csv is None:
        raise ConfigError("calibrate needs --from-csv FILE (or --port PORT), or `report`")
    for flag, value in (("--board", args.board), ("--db", args.db)):
        if not value:
            raise ConfigError(f"calibrate --from-csv needs {flag}")
    from atomsim.boards import get_board
    from calibration.calibrate import calibrate
    from calibration.measurements import read_csv
    from calibration.report import report

    get_board(args.board)  # an unknown board or variant fails before any work
    from atomsim.profiling.profiler import VARIANTS

    if args.variant is not None and args.variant not in VARIANTS:
        raise ConfigError(f"unknown kernel variant {args.variant!r}; variants: "
                          f"{', '.join(VARIANTS)}")
    if args.budget is not None and args.budget < 3:
        raise CalibrationError(f"--budget {args.budget}: at least 3 points are needed")
    _check_board_column(args.from_csv, args.board)
    cal = calibrate(read_csv(args.from_csv), args.board, args.db, budget=args.budget,
                    variant=args.variant, seed=args.seed, workers=args.workers,
                    include_db_atoms=not args.measured_only)
    record, png = report(args.db, cal.id, png=args.png, console=_console(as_json))
    if as_json:
        _print_json({"calibration": record, "png": str(png) if png else None,
                     "oom": [o.atom.key for o in cal.oom], "not_emulated": cal.not_emulated})
    return 0


def _check_board_column(path: Path, board: str) -> None:
    """A CSV with a ``board`` column (``db export`` writes one) must be of ``--board``: rows
    measured on another board would calibrate this one silently wrong."""
    import csv

    from atomsim.core.errors import ConfigError

    try:
        with open(path, newline="", encoding="utf-8") as f:
            boards = {row.get("board") for row in csv.DictReader(f)} - {None, ""}
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # read_csv names what is wrong with the file
    others = sorted(boards - {board})
    if others:
        raise ConfigError(f"{path}: its board column says {', '.join(others)}, not --board "
                          f"{board}; calibrate each board with its own measurements")


def _run_port(args: argparse.Namespace, as_json: bool) -> int:
    from atomsim.boards import get_board
    from atomsim.core.errors import ConfigError
    from atomsim.profiling.profiler import VARIANTS
    from calibration.port import calibrate_on_port, spread_table
    from calibration.report import report

    for flag, value in (("--board", args.board), ("--db", args.db)):
        if not value:
            raise ConfigError(f"calibrate --port needs {flag}")
    get_board(args.board)
    if args.variant is not None and args.variant not in VARIANTS:
        raise ConfigError(f"unknown kernel variant {args.variant!r}; variants: "
                          f"{', '.join(VARIANTS)}")
    if args.space is not None:
        from atomsim.nn.spaces import SPACES

        if args.space not in SPACES:
            raise ConfigError(f"unknown atom space {args.space!r}; known: {', '.join(SPACES)}")
    budget = 25 if args.budget is None else args.budget
    if budget < 3:
        raise CalibrationError(f"--budget {budget}: at least 3 points are needed")
    if args.repeats < 1:
        raise CalibrationError(f"--repeats {args.repeats}: at least one run per atom")
    console = _console(as_json)
    res = calibrate_on_port(args.board, args.port, args.db, budget=budget,
                            repeats=args.repeats, space=args.space, journal=args.journal,
                            flash=args.flash, variant=args.variant, seed=args.seed,
                            workers=args.workers, include_db_atoms=not args.measured_only,
                            say=lambda line: console.print(line, markup=False,
                                                           highlight=False))
    console.print(spread_table(res.measurements))
    if res.not_fitting:
        console.print(f"{len(res.not_fitting)} chosen atoms do not fit the board's arena over "
                      f"the serial link (journaled as such): {', '.join(res.not_fitting)}",
                      markup=False)
    console.print(f"{res.runs_now} runs measured now, {res.runs_before} reused from "
                  f"{res.journal}", markup=False)
    record, png = report(args.db, res.calibration.id, png=args.png, console=console)
    if as_json:
        _print_json({"calibration": record, "png": str(png) if png else None,
                     "journal": str(res.journal), "elf": str(res.elf),
                     "runs_now": res.runs_now, "runs_reused": res.runs_before,
                     "not_fitting": res.not_fitting,
                     "spread": [{"atom": m.atom.key, "runs": m.repeats,
                                 "min_ms": m.latency_min_ms, "median_ms": m.latency_ms,
                                 "max_ms": m.latency_max_ms} for m in res.measurements]})
    return 0


def _console(quiet: bool):
    from rich.console import Console

    return Console(quiet=quiet)


def _print_json(obj) -> None:
    from atomsim.cli.output import print_json

    print_json(obj)
