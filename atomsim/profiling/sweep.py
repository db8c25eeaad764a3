"""Sweeps: profile many atoms on a board, in parallel, resumably, into AtomDB.

Work is cut into batches of atoms. Workers (local processes by default, or a Dask cluster with
``scheduler=``) each keep one Profiler per board and kernel variant; the main process is the
only database writer. What keeps every good result:

- The database is opened for writing (and so checked: an AtomDB, writable, of a known schema
  version) before anything is measured.
- Each atom is checked against the board's RAM and Flash from its shapes alone
  (:func:`check_fits`) before any tensor of it is allocated on the host, so an absurd shape
  (a 1024^3 tensor, a dimension of 10^20) is a ``DoesNotFit`` failure, not a 2 GB allocation.
- One bad atom is a failure with its reason, never the end of the sweep: any exception while
  measuring it is caught in the worker. Failures are stored as rows of AtomDB's ``failures``
  table (board, atom key, variant, error name, reason) in the same transaction as the batch's
  measurements, and listed in :class:`SweepReport`. A later successful measurement of the atom
  removes its failure row; a rerun tries failed atoms again.
- Results are committed as they arrive, one small transaction per finished batch. A database
  locked by another process is retried with backoff while measuring goes on; at the end the
  writer waits up to the busy timeout, and if the lock is still held the unsaved measurements
  are written to a CSV next to the database (``db import`` reads it) before
  :class:`~atomsim.db.DatabaseBusy` is raised: nothing measured is lost.
- A worker that dies (killed, crashed) loses only the atom it was measuring: what it had sent
  is committed, the rest of its batch is retried; an atom that kills a worker ``RETRIES + 1``
  times is reported as failed.
- Workers watch their parent: if the main process is killed (``kill -9``) they exit within
  about a second. They ignore SIGINT: Ctrl-C stops the main process cleanly (what was measured
  is committed, the workers are stopped, :class:`SweepInterrupted` says how far it got).
- A Dask scheduler address is checked, and the scheduler must answer its handshake within
  ``scheduler_timeout`` seconds (a port that accepts and stays silent is
  :class:`SchedulerUnreachable`, not a hang).

Duplicates are impossible (upserts are keyed), so a killed sweep restarted with the same
arguments ends with exactly the rows of an uninterrupted one.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_any
from pathlib import Path
from typing import Any

from atomsim.boards import Board, get_board
from atomsim.core.errors import AtomSimError, ConfigError, DoesNotFit
from atomsim.core.settings import SweepSettings, dask_address
from atomsim.db import AtomDB, DatabaseBusy, Measurement, export_table
from atomsim.nn.atoms import Atom

RETRIES = 2  # extra attempts for an atom whose worker died while measuring it
PARENT_POLL_S = 0.5  # how often a worker checks that the main process is alive
BUSY_RETRY_S = 0.5  # how long one commit waits for a lock while measuring goes on
SCHEDULER_TIMEOUT_ENV = "ATOMSIM_SCHEDULER_TIMEOUT"
DEFAULT_SCHEDULER_TIMEOUT = 30.0
_PROFILERS: dict[tuple[str, str], object] = {}


class SchedulerUnreachable(AtomSimError):
    """The Dask scheduler refused the connection, or accepted it and never answered."""

    exit_code = 31
    status = "scheduler-unreachable"


class SweepInterrupted(AtomSimError):
    """Ctrl-C (SIGINT) stopped the sweep; what was measured is committed (``.report``)."""

    exit_code = 130
    status = "interrupted"

    def __init__(self, report: SweepReport):
        self.report = report
        left = report.requested - report.already_stored - report.measured - len(report.failed)
        super().__init__(f"interrupted: {report.measured} atom(s) measured and committed, "
                         f"{len(report.failed)} failed, {left} left; run the same command "
                         "again to resume")


@dataclass
class SweepReport:
    """What a sweep did."""

    board: str
    variant: str
    requested: int
    already_stored: int
    measured: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (atom key, "Error: reason")
    retried_batches: int = 0
    busy_waits: int = 0  # commits postponed because another process held the lock
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """True when every requested atom is stored or was a reported per-atom failure."""
        return self.already_stored + self.measured + len(self.failed) == self.requested


# -- checks before any work --------------------------------------------------------------------

def check_fits(atom: Atom, board: Board) -> None:
    """Raise :class:`DoesNotFit` when the atom's tensors cannot fit the board at all.

    Computed from the shapes (Python integers, no allocation): activations against the SRAM
    banks the board's arena may use (all of them together, and each tensor whole in one bank,
    as the memory planner places them), weights and bias against the whole Flash. The
    profiler's own placement, after the harness, stays the exact check; this one runs first
    and is cheap.
    """
    banks = board.banks
    activations = atom.input_bytes + atom.output_bytes
    capacity = sum(b.size for b in banks)
    sizes = ", ".join(f"{b.name} {b.size} B" for b in banks)
    if activations > capacity:
        raise DoesNotFit(f"ram (activation tensors; banks {sizes})", activations, capacity,
                         what="atom")
    fmap = atom.c_in * atom.h_in * atom.w_in
    largest = max(b.size for b in banks)
    for name, size in (("input", fmap), ("output", atom.output_bytes)):
        if size > largest:
            raise DoesNotFit(f"ram (its {name} tensor whole in one bank; banks {sizes})", size,
                             largest, what="atom")
    if atom.flash_bytes > board.flash.size:
        raise DoesNotFit("flash (weights and bias)", atom.flash_bytes, board.flash.size,
                         what="atom")


def _positive_int(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be a whole number >= 1, got {value!r}")


def _seconds(name: str, value: float | None, env: str, default: float) -> float:
    if value is None:
        raw = os.environ.get(env)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{env}={raw!r}: a number of seconds is needed") from None
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a number of seconds > 0, got {value!r}")
    return value


def _check_scheduler(address: str, timeout: float) -> None:
    """A malformed address is a ConfigError; a silent or closed port SchedulerUnreachable."""
    problem = dask_address(address) if isinstance(address, str) else "not a string"
    if problem:
        raise ConfigError(f"scheduler address {address!r}: {problem}")
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "tcp", address
    if scheme not in ("tcp", "tls"):
        return  # other transports: the client's own timeout applies
    host, _, port = rest.rpartition(":")
    host = host.strip("[]")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as conn:
            if scheme == "tcp":  # a Dask scheduler sends its handshake at once
                conn.settimeout(timeout)
                if not conn.recv(1):
                    raise SchedulerUnreachable(f"scheduler {address} closed the connection "
                                               "without a handshake: not a Dask scheduler?")
    except TimeoutError:
        raise SchedulerUnreachable(
            f"scheduler {address} did not answer within {timeout:g} s (the port accepts "
            "connections but nothing speaks Dask there); nothing was measured") from None
    except OSError as exc:
        raise SchedulerUnreachable(f"cannot reach scheduler {address}: "
                                   f"{exc.strerror or exc}; nothing was measured") from None


# -- the worker side ---------------------------------------------------------------------------

def _crash_injection(key: str) -> None:
    """Fault injection for tests: the worker dies (really) the first time it meets ``key``."""
    target, flag = os.environ.get("ATOMSIM_SWEEP_CRASH_KEY"), os.environ.get(
        "ATOMSIM_SWEEP_CRASH_FLAG")
    if target and flag and key == target and not os.path.exists(flag):
        Path(flag).write_text("crashed once\n")
        os._exit(17)


def _profiler(board_id: str, variant: str):
    from atomsim.profiling.profiler import Profiler

    prof = _PROFILERS.get((board_id, variant))
    if prof is None:
        prof = _PROFILERS[(board_id, variant)] = Profiler(get_board(board_id), variant)
    return prof


def _measure(board_id: str, variant: str, atom: Atom) -> tuple:
    """``("ok", Measurement)`` or ``("fail", key, error name, reason)``; never raises."""
    try:
        check_fits(atom, get_board(board_id))
        return ("ok", _profiler(board_id, variant).profile(atom))
    except Exception as exc:  # noqa: BLE001 - one bad atom must not end the sweep
        return ("fail", atom.key, type(exc).__name__, str(exc) or repr(exc))


def profile_batch(board_id: str, variant: str, atoms: Sequence[Atom]
                  ) -> tuple[list[Measurement], list[tuple[str, str, str]]]:
    """Measure atoms; failures come back as (key, error name, reason). Used by Dask workers."""
    done, failed = [], []
    for atom in atoms:
        _crash_injection(atom.key)
        result = _measure(board_id, variant, atom)
        if result[0] == "ok":
            done.append(result[1])
        else:
            failed.append(result[1:])
    return done, failed


def _watch_parent(parent_pid: int) -> None:
    while True:
        if os.getppid() != parent_pid:  # the main process died: we were re-parented
            os._exit(0)
        time.sleep(PARENT_POLL_S)


def _worker(conn, board_id: str, variant: str, parent_pid: int) -> None:
    """A local worker: receives batches, sends one message per atom, then "done"."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's business
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        if job is None:
            return
        index, atoms = job
        for atom in atoms:
            _crash_injection(atom.key)
            conn.send(("atom", index, _measure(board_id, variant, atom)))
        conn.send(("done", index))


# -- the main process: one writer ----------------------------------------------------------------

class _Writer:
    """Commits results as they arrive; waits out a busy database without losing anything."""

    def __init__(self, db: AtomDB, report: SweepReport, progress, total: int):
        self.db, self.report, self.progress, self.total = db, report, progress, total
        self.measurements: list[Measurement] = []
        self.failures: list[tuple[str, str, str, str, str]] = []

    def add(self, results: Iterable[tuple]) -> None:
        for result in results:
            if result[0] == "ok":
                self.measurements.append(result[1])
                self.report.measured += 1
            else:
                _, key, error, reason = result
                self.failures.append((self.report.board, key, self.report.variant, error,
                                      reason))
                self.report.failed.append((key, f"{error}: {reason}"))
        if self.progress:
            self.progress(self.report.measured + len(self.report.failed), self.total)
        self.flush(wait=False)

    def flush(self, wait: bool) -> None:
        if not self.measurements and not self.failures:
            return
        try:
            self.db.commit_batch(self.measurements, self.failures,
                                 busy_timeout=None if wait else BUSY_RETRY_S)
        except DatabaseBusy:
            if wait:
                raise
            self.report.busy_waits += 1  # keep them; the next flush tries again
            return
        self.measurements, self.failures = [], []

    def close(self) -> None:
        """The last commit: waits the full busy timeout, then saves the rest to a CSV."""
        try:
            self.flush(wait=True)
        except DatabaseBusy as exc:
            if not self.measurements:
                raise
            saved = self._spill()
            raise DatabaseBusy(f"{exc}. The {len(self.measurements)} measurement(s) not yet "
                               f"stored are saved in {saved}; store them later with "
                               f"`atomsim db import --db {self.db.path} {saved}`") from None

    def _spill(self) -> Path:
        class _Pending:
            def measurements(_self, board=None):  # noqa: N805 - a tiny adapter
                return self.measurements

        stamp = time.strftime("%Y%m%dT%H%M%S")
        for folder in (self.db.path.parent, Path(tempfile.gettempdir())):
            path = folder / f"{self.db.path.name}.unsaved-{stamp}-{os.getpid()}.csv"
            try:
                export_table(_Pending(), path)
                return path
            except AtomSimError:
                continue
        raise DatabaseBusy(f"{self.db.path}: locked, and no folder to save the "
                           f"{len(self.measurements)} unsaved measurements in")


def sweep(board_id: str, atoms: Iterable[Atom], db_path: str | Path, *,
          variant: str | None = None, workers: int | None = None,
          batch_size: int = SweepSettings.batch_size, scheduler: str | None = None,
          progress: Callable[[int, int], None] | None = None,
          scheduler_timeout: float | None = None,
          busy_timeout: float | None = None) -> SweepReport:
    """Profile ``atoms`` on a board into the database at ``db_path``; see the module doc.

    ``scheduler_timeout`` (default ``ATOMSIM_SCHEDULER_TIMEOUT`` or 30 s) bounds reaching a
    Dask scheduler; ``busy_timeout`` (default: AtomDB's) bounds waiting for a locked database.
    """
    from atomsim.profiling.profiler import DEFAULT_VARIANT, VARIANTS

    variant = variant or DEFAULT_VARIANT
    if variant not in VARIANTS:
        raise ConfigError(f"unknown kernel variant {variant!r}; variants: {', '.join(VARIANTS)}")
    board = get_board(board_id)
    _positive_int("workers", workers, allow_none=True)
    _positive_int("batch_size", batch_size)
    timeout = _seconds("scheduler_timeout", scheduler_timeout, SCHEDULER_TIMEOUT_ENV,
                       DEFAULT_SCHEDULER_TIMEOUT)
    if scheduler is not None:
        _check_scheduler(scheduler, timeout)
    unique: dict[str, Atom] = {}
    for atom in atoms:
        if not isinstance(atom, Atom):
            raise ConfigError(f"sweep takes Atom objects, got {type(atom).__name__}")
        unique.setdefault(atom.key, atom)
    with AtomDB.open(db_path, busy_timeout=busy_timeout) as db:  # writable, before measuring
        missing = set(db.missing_keys(board_id, list(unique), variant, source="emulator"))
        todo = [a for k, a in unique.items() if k in missing]
        report = SweepReport(board_id, variant, len(unique), len(unique) - len(todo))
        if not todo:
            return report
        writer = _Writer(db, report, progress, len(todo))
        fitting, too_big = [], []
        for atom in todo:  # the cheap fit check, before any host allocation
            try:
                check_fits(atom, board)
                fitting.append(atom)
            except DoesNotFit as exc:
                too_big.append(("fail", atom.key, type(exc).__name__, str(exc)))
        if too_big:
            writer.add(too_big)
        # Big atoms first: the slowest batches start early, so the tail stays short.
        fitting.sort(key=lambda a: -(a.macs + a.input_bytes))
        batches = [fitting[i:i + batch_size] for i in range(0, len(fitting), batch_size)]
        try:
            if batches and scheduler:
                _run_dask(board_id, variant, batches, writer, report, scheduler, timeout)
            elif batches:
                _run_local(board_id, variant, batches, writer, report,
                           workers or os.cpu_count() or 1)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            writer.close()
    if report.interrupted:
        raise SweepInterrupted(report)
    return report


@dataclass
class _Slot:
    process: Any
    conn: Any
    job: int | None = None  # index into the job list
    results: list = field(default_factory=list)


def _run_local(board_id: str, variant: str, batches: list[list[Atom]], writer: _Writer,
               report: SweepReport, workers: int) -> None:
    ctx = multiprocessing.get_context("fork")  # workers share the loaded modules: fast start
    jobs: list[list[Atom]] = list(batches)
    queue: deque[int] = deque(range(len(jobs)))
    deaths: dict[str, int] = {}
    slots: list[_Slot] = []

    def start() -> _Slot:
        ours, theirs = ctx.Pipe()
        # SIGINT blocked across the fork: a Ctrl-C in that instant cannot reach the child
        # before it ignores SIGINT (which would print a worker traceback).
        old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            proc = ctx.Process(target=_worker, args=(theirs, board_id, variant, os.getpid()),
                               daemon=True)
            proc.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        theirs.close()
        return _Slot(proc, ours)

    def lost(slot: _Slot) -> None:
        """The worker died: keep what it sent, retry the rest, blame the atom it was on."""
        remaining = list(jobs[slot.job])[len(slot.results):]
        writer.add(slot.results)
        code = slot.process.exitcode
        if remaining:
            culprit = remaining[0]
            deaths[culprit.key] = deaths.get(culprit.key, 0) + 1
            if deaths[culprit.key] > RETRIES:
                writer.add([("fail", culprit.key, "WorkerDied",
                             f"the worker process died (exit code {code}) on each of "
                             f"{RETRIES + 1} attempts at this atom")])
                remaining = remaining[1:]
        if remaining:
            jobs.append(remaining)
            queue.append(len(jobs) - 1)
            report.retried_batches += 1

    try:
        while queue or any(s.job is not None for s in slots):
            busy = sum(s.job is not None for s in slots)
            while len(slots) < min(workers, len(queue) + busy):
                slots.append(start())
            for slot in slots:
                if slot.job is None and queue:
                    slot.job, slot.results = queue.popleft(), []
                    slot.conn.send((slot.job, jobs[slot.job]))
            watched = {s.conn: s for s in slots} | {s.process.sentinel: s for s in slots}
            for ready in wait_any(list(watched), timeout=1.0):
                slot = watched[ready]
                if slot not in slots:
                    continue
                if ready is slot.conn:
                    try:
                        while slot.conn.poll():
                            message = slot.conn.recv()
                            if message[0] == "atom":
                                slot.results.append(message[2])
                            else:  # "done"
                                writer.add(slot.results)
                                slot.job, slot.results = None, []
                    except (EOFError, OSError):
                        pass  # it died: its sentinel says so
                if not slot.process.is_alive():
                    slot.process.join()
                    if slot.job is not None:
                        lost(slot)
                    slot.conn.close()
                    slots.remove(slot)
            writer.flush(wait=False)  # a commit postponed by a busy database
    finally:
        _stop(slots)


def _stop(slots: list[_Slot]) -> None:
    """Idle workers get a stop message; busy ones (only after an interrupt) are killed."""
    for slot in slots:
        try:
            if slot.job is None:
                slot.conn.send(None)
            else:
                slot.process.kill()
        except (OSError, ValueError):
            slot.process.kill()
    for slot in slots:
        slot.process.join(timeout=5)
        if slot.process.is_alive():
            slot.process.kill()
            slot.process.join(timeout=5)
        slot.conn.close()


def _run_dask(board_id: str, variant: str, batches: list[list[Atom]], writer: _Writer,
              report: SweepReport, scheduler: str, timeout: float) -> None:
    from distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout=f"{timeout}s")
    except (OSError, TimeoutError) as exc:
        raise SchedulerUnreachable(f"cannot connect to scheduler {scheduler}: {exc}; nothing "
                                   "was measured") from None
    with client:
        futures = {client.submit(profile_batch, board_id, variant, b, retries=RETRIES,
                                 pure=False): b for b in batches}
        for fut in as_completed(futures):
            batch = futures[fut]
            try:
                done, failed = fut.result()
                writer.add([("ok", m) for m in done] + [("fail", *f) for f in failed])
            except Exception as exc:  # noqa: BLE001 - KilledWorker, lost worker, …
                writer.add([("fail", a.key, type(exc).__name__, str(exc)) for a in batch])
