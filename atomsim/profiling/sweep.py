"""Sweeps: profile many atoms on a board, in parallel, resumably, into AtomDB.

Work is cut into batches of atoms. Workers (local processes by default, or a Dask cluster with
``scheduler=``) each keep one Profiler per board and kernel variant; the main process is the
only database writer and commits each finished batch in one transaction, so a sweep killed at
any moment keeps whole batches, and a restart skips what is stored (duplicates are impossible:
upserts are keyed). A batch whose worker dies is retried, then reported; the sweep finishes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from atomsim.boards import get_board
from atomsim.core.errors import AtomSimError, ConfigError
from atomsim.core.settings import SweepSettings
from atomsim.db import AtomDB, Measurement
from atomsim.nn.atoms import Atom

RETRIES = 2
_PROFILERS: dict[tuple[str, str], object] = {}


@dataclass
class SweepReport:
    """What a sweep did."""

    board: str
    variant: str
    requested: int
    already_stored: int
    measured: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (atom key, reason)
    retried_batches: int = 0

    @property
    def ok(self) -> bool:
        """True when every requested atom is stored or was a reported per-atom failure."""
        return self.already_stored + self.measured + len(self.failed) == self.requested


def _crash_injection(key: str) -> None:
    """Fault injection for tests: the worker dies (really) the first time it meets ``key``."""
    target, flag = os.environ.get("ATOMSIM_SWEEP_CRASH_KEY"), os.environ.get(
        "ATOMSIM_SWEEP_CRASH_FLAG")
    if target and flag and key == target and not os.path.exists(flag):
        Path(flag).write_text("crashed once\n")
        os._exit(17)


def profile_batch(board_id: str, variant: str, atoms: Sequence[Atom]
                  ) -> tuple[list[Measurement], list[tuple[str, str]]]:
    """Worker entry point: measure atoms; per-atom errors come back as (key, reason)."""
    from atomsim.profiling.profiler import Profiler

    prof = _PROFILERS.get((board_id, variant))
    if prof is None:
        prof = _PROFILERS[(board_id, variant)] = Profiler(get_board(board_id), variant)
    done, failed = [], []
    for atom in atoms:
        _crash_injection(atom.key)
        try:
            done.append(prof.profile(atom))
        except AtomSimError as exc:
            failed.append((atom.key, str(exc)))
    return done, failed


def _batches(atoms: list[Atom], size: int) -> list[list[Atom]]:
    return [atoms[i:i + size] for i in range(0, len(atoms), size)]


def sweep(board_id: str, atoms: Iterable[Atom], db_path: str | Path, *,
          variant: str | None = None, workers: int | None = None,
          batch_size: int = SweepSettings.batch_size, scheduler: str | None = None,
          progress: Callable[[int, int], None] | None = None) -> SweepReport:
    """Profile ``atoms`` on a board into the database at ``db_path``; see the module doc."""
    from atomsim.profiling.profiler import DEFAULT_VARIANT, VARIANTS

    variant = variant or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise ConfigError(f"unknown kernel variant {variant!r}; variants: {', '.join(VARIANTS)}")
    get_board(board_id)
    unique: dict[str, Atom] = {}
    for atom in atoms:
        unique.setdefault(atom.key, atom)
    with AtomDB.open(db_path) as db:
        missing = set(db.missing_keys(board_id, list(unique), variant, source="emulator"))
        todo = [a for k, a in unique.items() if k in missing]
        report = SweepReport(board_id, variant, len(unique), len(unique) - len(todo))
        if not todo:
            return report
        # Big atoms first: the slowest batches start early, so the tail stays short.
        todo.sort(key=lambda a: -(a.macs + a.input_bytes))
        batches = _batches(todo, batch_size)
        run = _run_dask if scheduler else _run_local
        run(board_id, variant, batches, db, report, workers or os.cpu_count() or 1, scheduler,
            progress)
    return report


def _record(db: AtomDB, report: SweepReport, result, progress, total: int) -> None:
    done, failed = result
    if done:
        db.upsert_measurements(done)  # one transaction per batch
    report.measured += len(done)
    report.failed.extend(failed)
    if progress:
        progress(report.measured + len(report.failed), total)


def _run_local(board_id, variant, batches, db, report, workers, _scheduler, progress) -> None:
    total = sum(len(b) for b in batches)
    attempts = {i: 0 for i in range(len(batches))}
    pending = list(range(len(batches)))
    while pending:
        with ProcessPoolExecutor(max_workers=min(workers, len(pending))) as pool:
            futures = {pool.submit(profile_batch, board_id, variant, batches[i]): i
                       for i in pending}
            pending = []
            while futures:
                finished, _ = wait(futures, return_when=FIRST_COMPLETED)
                for fut in finished:
                    i = futures.pop(fut)
                    try:
                        _record(db, report, fut.result(), progress, total)
                    except BrokenProcessPool:  # a worker died: every batch in flight is lost
                        _retry_or_report(i, attempts, batches, pending, report)


def _retry_or_report(i, attempts, batches, pending, report) -> None:
    attempts[i] += 1
    if attempts[i] <= RETRIES:
        report.retried_batches += 1
        pending.append(i)
    else:
        report.failed.extend((a.key, "worker died on every attempt") for a in batches[i])


def _run_dask(board_id, variant, batches, db, report, _workers, scheduler, progress) -> None:
    from distributed import Client, as_completed

    total = sum(len(b) for b in batches)
    with Client(scheduler, timeout="30s") as client:
        futures = {client.submit(profile_batch, board_id, variant, b, retries=RETRIES,
                                 pure=False): b for b in batches}
        for fut in as_completed(futures):
            batch = futures[fut]
            try:
                _record(db, report, fut.result(), progress, total)
            except Exception as exc:  # noqa: BLE001 - KilledWorker, lost worker, …
                report.failed.extend((a.key, f"{type(exc).__name__}: {exc}") for a in batch)
