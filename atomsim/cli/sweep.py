"""``atomsim sweep``: profile a list or space of atoms into AtomDB (resumable, parallel)."""

from __future__ import annotations

from rich.markup import escape

from atomsim.cli.options import add_settings, verb_parser
from atomsim.cli.output import console, err_console, print_json
from atomsim.core.settings import SweepSettings


def register(subparsers):
    """Add the ``sweep`` verb."""
    return add_settings(verb_parser(subparsers, "sweep", "profile atoms into AtomDB"),
                        SweepSettings)


def load_atoms(spec: str):
    """Atoms from a CSV file in the paper's layout, or a named space (e.g. ``table2``).

    The CSV's columns are checked strictly (a misspelt optional column is an error, not a
    silently dropped activation); a file that is not UTF-8 CSV text is a named error.
    """
    import csv
    import difflib
    from dataclasses import fields
    from pathlib import Path

    from atomsim.core.errors import ConfigError
    from atomsim.db.tables import ALSO_KNOWN_COLUMNS, EXPORT_COLUMNS
    from atomsim.nn.atoms import Atom
    from atomsim.nn.spaces import get_space

    path = Path(spec)
    if not path.suffix and not path.exists():
        return get_space(spec)
    if path.is_dir():
        raise ConfigError(f"--atoms {path} is a directory; give a CSV file or a space name")
    if not path.exists():
        raise ConfigError(f"atoms file not found: {path}")
    # a measured CSV in the paper's layout (e.g. a board's calibration file) sweeps too: its
    # measurement columns are known and ignored here
    known = {f.name for f in fields(Atom)} | set(EXPORT_COLUMNS) | set(ALSO_KNOWN_COLUMNS)
    atoms = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            unknown = [c for c in reader.fieldnames or () if c not in known]
            if unknown:
                hints = [f"{c!r}" + "".join(f" (did you mean {m!r}?)" for m in
                                            difflib.get_close_matches(c, known, n=1))
                         for c in unknown]
                raise ConfigError(f"{path}: unknown column(s) {', '.join(hints)}")
            for line, row in enumerate(reader, start=2):
                if None in row:
                    raise ConfigError(f"{path}:{line}: more cells than header columns")
                try:
                    atoms.append(Atom.from_row(row))
                except ConfigError as exc:
                    raise ConfigError(f"{path}:{line}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 CSV text (UTF-16, Parquet or another binary "
                          "file?); save it as a UTF-8 CSV") from None
    except csv.Error as exc:
        raise ConfigError(f"{path}: not a readable CSV: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not atoms:
        raise ConfigError(f"{path} holds no atoms (a header row and one row per atom)")
    return atoms


def run(args) -> int:
    """Sweep, with a progress bar on stderr (none with --json); a summary at the end."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from atomsim.profiling.sweep import sweep

    s: SweepSettings = args.settings
    atoms = load_atoms(s.atoms)
    with Progress(TextColumn(f"{s.board} {s.atoms}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[rate]} atoms/s"), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=err_console, disable=args.json) as bar:
        task = bar.add_task("sweep", total=None, rate="-")

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[task].elapsed or 1e-9
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:.1f}")

        report = sweep(board_id=s.board, atoms=atoms, db_path=s.db, variant=s.variant,
                       workers=s.workers, batch_size=s.batch_size, scheduler=s.scheduler,
                       progress=progress)
    summary = {"board": report.board, "variant": report.variant, "requested": report.requested,
               "already_stored": report.already_stored, "measured": report.measured,
               "failed": len(report.failed), "retried_batches": report.retried_batches,
               "failures": [{"atom": k, "reason": r} for k, r in report.failed[:50]]}
    if args.json:
        print_json(summary)
    else:
        console.print(f"{report.requested} atoms: {report.already_stored} already stored, "
                      f"{report.measured} measured, {len(report.failed)} failed "
                      f"({report.retried_batches} batches retried)")
        for key, reason in report.failed[:10]:
            console.print(f"  [yellow]{escape(key)}[/yellow]: {escape(reason)}",
                          highlight=False)
    return 0 if report.ok else 1
