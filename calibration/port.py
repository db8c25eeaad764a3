"""Calibrating against a board on a serial port: ``atomsim calibrate --port PORT``.

0. **Checks**, before anything is built, emulated or written: budget, repeats, board, variant,
   space, the port (:func:`calibration.serial.host.check_port`: it exists and is a terminal or a
   pyserial URL), the AtomDB (an AtomDB, identified read-only, with emulated atoms of the board
   unless a space is named; its file and folder writable) and the journal's folder. Then the
   harness ELF is built (or flashed, step 4) and the board must answer HELLO with that image
   before any atom is emulated: a failed check, a silent board or another image create no
   AtomDB, plan or journal.
1. **Candidates**: every emulated atom the AtomDB holds for the board, or the atoms of a named
   space (``--space table2``). A large candidate set is first thinned by shape alone
   (:func:`calibration.selection.preselect`, ``POOL_PER_POINT`` candidates per point).
2. **Emulated features**: the pool runs on the emulated board with the traffic counter
   (:func:`calibration.features.collect`, cached in the AtomDB).
3. **Selection**: N atoms (:func:`calibration.selection.select`, label-free: classes and the
   emulator's features). The plan is written next to the journal, so rerunning the same
   command measures the same atoms even when the AtomDB has grown since.
4. **Flashing**: through pyOCD with ``--flash`` when it is installed; otherwise the harness
   ELF's path is printed and the user flashes it. HELLO then refuses a board whose flash image
   differs from that ELF (``BoardMismatch``).
5. **Measuring**: each atom ``repeats`` times over the port; the host checks every output CRC
   against the numpy reference (``BoardComputedWrongly`` otherwise), and every run is
   journaled as it arrives (:mod:`calibration.serial.journal`): an interrupted calibration
   rerun measures only what is missing.
6. **Fit and record**: :func:`calibration.calibrate.calibrate` on the measured atoms, exactly as
   ``--from-csv`` without a budget (K-fold CV for the held-back errors, every candidate model),
   recorded with source ``serial``, the port and the harness firmware's hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from atomsim.boards import Board, get_board
from atomsim.core.errors import ConfigError
from atomsim.core.paths import may_write
from atomsim.db import AtomDB
from atomsim.db.errors import DatabaseReadOnly
from atomsim.nn.atoms import Atom
from calibration import dataset, features
from calibration.calibrate import Calibration, calibrate
from calibration.errors import CalibrationError
from calibration.measurements import BoardMeasurement
from calibration.selection import POOL_PER_POINT, preselect, select

DEFAULT_REPEATS = 3
PLAN_VERSION = 1


@dataclass
class PortCalibration:
    """What :func:`calibrate_on_port` did."""

    calibration: Calibration
    measurements: list[BoardMeasurement]  # per atom: median, min, max of the repeats
    planned: list[Atom]
    not_fitting: list[str]  # planned atoms the board's arena cannot hold (journaled so)
    runs_before: int  # (atom, repeat) runs the journal already held
    runs_now: int  # runs measured by this call
    journal: Path
    plan: Path
    elf: Path
    flash_message: str


def journal_path(db_path: str | Path, board_id: str) -> Path:
    """The default journal: next to the AtomDB, one per board."""
    db_path = Path(db_path)
    return db_path.with_name(f"{db_path.name}.{board_id}.serial.jsonl")


def candidates(db: AtomDB, board_id: str, variant: str, space: str | None,
               classes: tuple[str, ...] | None = None) -> list[Atom]:
    """The atoms to choose from: a named space, or the AtomDB's emulated atoms of the board
    (of the given classes only, when ``classes`` is given)."""
    if space:
        from atomsim.nn.spaces import get_space

        atoms = get_space(space)
    else:
        atoms = [m.atom for m in db.measurements(board_id, variant=variant, source="emulator")]
    atoms = [a for a in {a.key: a for a in atoms}.values() if not classes or a.type in classes]
    if not atoms:
        raise CalibrationError(
            f"{db.path} holds no emulated atom of {board_id} (variant {variant}) to choose "
            "from: run a sweep into it first, or name a space (--space table2)")
    return atoms


def _atom(fields: dict) -> Atom:
    if isinstance(fields.get("padding"), list):
        fields = {**fields, "padding": tuple(fields["padding"])}
    return Atom(**fields)


def plan_atoms(db_path: str | Path, board_id: str, budget: int, *, variant: str,
               space: str | None, seed: int, plan: Path, workers: int | None = None,
               classes: tuple[str, ...] | None = None,
               progress: Callable[[int, int], None] | None = None) -> list[Atom]:
    """The atoms to measure; reused from ``plan`` when it was made with the same settings."""
    settings = {"version": PLAN_VERSION, "board": board_id, "variant": variant,
                "budget": budget, "space": space, "seed": seed,
                "classes": sorted(classes) if classes else None}
    if plan.is_file():
        try:
            saved = json.loads(plan.read_text())
        except (OSError, ValueError):
            saved = None
        if isinstance(saved, dict) and saved.get("settings") == settings:
            return [_atom(a) for a in saved["atoms"]]
    with AtomDB.open(db_path) as db:
        pool = preselect(candidates(db, board_id, variant, space, classes), POOL_PER_POINT * budget,
                         seed)
        features.collect(db, board_id, pool, variant=variant, workers=workers,
                         progress=progress)
        emulated, _ = features.load(db, board_id, variant)
    keys = {a.key for a in pool}
    frame = dataset.build({k: e for k, e in emulated.items() if k in keys})
    if len(frame) < 3:
        raise CalibrationError(
            f"only {len(frame)} of {len(pool)} candidate atoms run on the emulated {board_id} "
            "(the others do not fit or failed): too few to calibrate")
    by_key = {e.atom.key: e.atom for e in emulated.values()}
    atoms = [by_key[frame.loc[i, "atom_key"]] for i in select(frame, budget, seed=seed)]
    tmp = plan.with_name(plan.name + ".tmp")
    tmp.write_text(json.dumps({"settings": settings, "atoms": [asdict(a) for a in atoms]},
                              indent=1))
    os.replace(tmp, plan)
    return atoms


def check_inputs(board_id: str, port: str, db_path: str | Path, *, budget: int,
                 repeats: int, variant: str, space: str | None, journal: Path,
                 classes: tuple[str, ...] | None = None) -> Board:
    """Everything :func:`calibrate_on_port` is given, checked before it builds, emulates or
    writes anything; each problem is a named error and nothing is created. Returns the board."""
    from atomsim.nn.spaces import SPACES
    from atomsim.profiling.profiler import VARIANTS
    from calibration.serial.host import check_port

    if budget < 3:
        raise CalibrationError(f"--budget {budget}: at least 3 points are needed")
    if repeats < 1:
        raise CalibrationError(f"--repeats {repeats}: at least one run per atom is needed")
    board = get_board(board_id)
    if variant not in VARIANTS:
        raise ConfigError(f"unknown kernel variant {variant!r}; variants: {', '.join(VARIANTS)}")
    if space is not None and space not in SPACES:
        raise ConfigError(f"unknown atom space {space!r}; known: {', '.join(SPACES)}")
    check_port(port)
    db_path = Path(db_path)
    if space is None and not db_path.exists():
        raise CalibrationError(f"{db_path} does not exist: calibrating over a port chooses from "
                               "the AtomDB's atoms of the board (run a sweep into it first) "
                               "or from a named space (--space table2)")
    if space is None or db_path.is_dir() or (db_path.is_file() and db_path.stat().st_size):
        with AtomDB.open(db_path, readonly=True) as db:  # identified, never written
            if space is None:
                candidates(db, board_id, variant, space, classes)
    _check_writable(db_path, "the AtomDB")
    plan = journal.with_name(journal.name + ".plan.json")
    for path, what in ((journal, "the journal"), (plan, "the journal's plan")):
        if path.exists() and not path.is_file():
            raise ConfigError(f"{what} {path} is not a regular file")
    if journal.is_file():
        from calibration.serial.journal import Journal

        Journal(journal)  # a file that is no journal is named here, not after the emulation
    _check_writable(journal, "the journal")
    return board


def _check_writable(path: Path, what: str) -> None:
    """``path`` (when it exists) and its folder (which must exist) may be written: permission
    bits are honoured even for root, as AtomDB does."""
    folder = path.parent
    if not folder.is_dir():
        raise ConfigError(f"{what} {path}: no such directory {folder}")
    for target in ((path, folder) if path.exists() else (folder,)):
        if not may_write(target):
            kind = "directory" if target.is_dir() else "file"
            raise DatabaseReadOnly(f"{what} {path}: the {kind} {target} is read-only; "
                                   "nothing was written")


def calibrate_on_port(board_id: str, port: str, db_path: str | Path, *, budget: int = 25,
                      repeats: int = DEFAULT_REPEATS, space: str | None = None,
                      journal: str | Path | None = None, flash: bool = False,
                      variant: str | None = None, seed: int = 0, workers: int | None = None,
                      include_db_atoms: bool = True, settings=None,
                      classes: tuple[str, ...] | None = None,
                      say: Callable[[str], None] = print) -> PortCalibration:
    """Check, pick, measure (resumably), fit and record; see the module docstring."""
    from atomsim.profiling.profiler import DEFAULT_VARIANT, harness_elf
    from calibration.serial.host import SerialBoard
    from calibration.serial.host import flash as flash_elf
    from calibration.serial.journal import Journal, measure_atoms, measurement_source

    variant = variant or DEFAULT_VARIANT
    journal = Path(journal) if journal else journal_path(db_path, board_id)
    board = check_inputs(board_id, port, db_path, budget=budget, repeats=repeats,
                         variant=variant, space=space, journal=journal, classes=classes)
    plan = journal.with_name(journal.name + ".plan.json")
    elf = harness_elf(board, variant)
    if flash:
        message = flash_elf(elf)
    else:
        message = (f"the board on {port} must run {elf} — flash it with your own tool "
                   "(STM32CubeProgrammer, st-flash, OpenOCD) or pass --flash with pyOCD "
                   "installed; HELLO checks its image CRC against this ELF")
    say(message)
    with SerialBoard(port, board, elf, variant, settings) as link:
        link.connect()  # a silent board or another image fails here, before any emulation
        say(f"choosing {budget} atoms of {space or 'the AtomDB'} for {board_id} …")
        atoms = plan_atoms(db_path, board_id, budget, variant=variant, space=space, seed=seed,
                           plan=plan, workers=workers, classes=classes)
        before = len(Journal(journal).records)
        todo = sum(1 for a in atoms if _missing(Journal(journal), board_id, variant, a, repeats))
        say(f"measuring {todo} of {len(atoms)} atoms on {port} ({repeats} runs each; "
            f"{len(atoms) - todo} already in {journal})")

        def progress(atom: Atom, i: int, n: int) -> None:
            say(f"  [{i + 1}/{n}] {atom.key}")

        measure_atoms(link, atoms, journal, repeats, progress)
    source = measurement_source(journal, atoms, board.id, board.clock_hz, port, variant)
    done = Journal(journal)
    not_fitting = [a.key for a in atoms if done.done(board_id, variant, a.key) is None]
    firmware = hashlib.sha256(elf.read_bytes()).hexdigest()[:16]
    cal = calibrate(source, board_id, db_path, budget=None, variant=variant, seed=seed,
                    workers=workers, include_db_atoms=include_db_atoms,
                    firmware_hash=firmware)
    return PortCalibration(cal, list(source.measurements), atoms, not_fitting, before,
                           len(done.records) - before, journal, plan, elf, message)


def _missing(journal, board_id: str, variant: str, atom: Atom, repeats: int) -> bool:
    got = journal.done(board_id, variant, atom.key)
    return got is not None and len(got & set(range(repeats))) < repeats


def spread_table(measurements: list[BoardMeasurement]):
    """A rich table of the repeat spread per atom (min / median / max in ms)."""
    from rich.table import Table

    t = Table(title="repeat spread per atom (board measurements)")
    for col in ("atom", "runs", "min ms", "median ms", "max ms", "spread"):
        t.add_column(col, justify="left" if col == "atom" else "right")
    for m in sorted(measurements, key=lambda m: (m.atom.type, m.atom.key)):
        spread = m.spread
        t.add_row(m.atom.key, str(m.repeats), f"{m.latency_min_ms:.4f}", f"{m.latency_ms:.4f}",
                  f"{m.latency_max_ms:.4f}", "-" if spread is None else f"{spread:.2%}")
    return t
