"""Emulated features per atom: what only the emulator knows, cached in AtomDB.

For each atom: emulated cycles and instructions between the profiling markers, the atom's
weight bytes, activation bytes in and out, MACs, and data traffic per board memory (reads and
writes, counts and bytes, counted in native code by ``Machine(board, traffic=True)``), grouped
by role: ``flash``, ``sram`` (the board's RAM banks), ``tcm`` and ``other`` (peripherals).
Atoms are run through :class:`atomsim.profiling.profiler.Profiler` in worker processes; the
emulator's rows go into AtomDB's ``measurements`` and the traffic into ``emulated_traffic``
(one transaction per batch), so a second calibration reuses them. An atom whose buffers do not
fit the board is stored in ``emulated_oom`` with the bytes needed and available.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from atomsim.boards import Board, get_board
from atomsim.core.errors import AtomSimError, DoesNotFit
from atomsim.db import AtomDB, Measurement
from atomsim.nn.atoms import Atom
from calibration import store
from calibration.measurements import match_key

ROLES = ("flash", "sram", "tcm", "other")
_PROFILERS: dict[tuple[str, str], object] = {}


@dataclass(frozen=True)
class Oom:
    """An atom that does not fit the board: which region, bytes needed and available."""

    atom: Atom
    region: str
    needed: int
    available: int


def region_roles(board: Board) -> dict[str, str]:
    """Board memory name -> role (flash, sram, tcm); 'other' is everything unmapped."""
    roles = {}
    for mem in board.platform().memories:
        if mem.name in board.flash.memories:
            roles[mem.name] = "flash"
        elif "tcm" in mem.name.lower():
            roles[mem.name] = "tcm"
        else:
            roles[mem.name] = "sram"
    roles["other"] = "other"
    return roles


def measure_batch(board_id: str, variant: str, atoms: Sequence[Atom]) -> list[tuple]:
    """Worker: run atoms with the traffic counter on. Returns per atom one of
    ``("ok", Measurement, {region: RegionTraffic})``, ``("oom", Oom)``, ``("error", atom, text)``.
    """
    from atomsim.emulator.counter import traffic_delta
    from atomsim.emulator.machine import Machine
    from atomsim.profiling.profiler import Profiler

    try:
        from atomsim.nn.registry import call_for_atom
    except ImportError:  # before the kernel registry existed
        from atomsim.profiling.profiler import case_for_atom as call_for_atom

    prof = _PROFILERS.get((board_id, variant))
    if prof is None:
        board = get_board(board_id)
        prof = _PROFILERS[(board_id, variant)] = Profiler(
            board, variant, target=Machine(board, traffic=True))
    out: list[tuple] = []
    for atom in atoms:
        try:
            r = prof.run_case(call_for_atom(atom))
        except DoesNotFit as exc:
            out.append(("oom", Oom(atom, exc.region, exc.needed, exc.available)))
            continue
        except AtomSimError as exc:
            out.append(("error", atom, f"{type(exc).__name__}: {exc}"))
            continue
        marks = {m.kind: m for m in r.run.markers}
        traffic = traffic_delta(marks["end"].traffic, marks["begin"].traffic)
        m = Measurement(
            atom=atom, board=board_id, latency_ms=r.cycles / prof.board.clock_hz * 1e3,
            kernel_variant=variant, source="emulator", cycles=r.cycles,
            instructions=r.instructions, sram_bytes=r.sram_bytes, flash_bytes=atom.flash_bytes,
            firmware_hash=prof.firmware.sha256[:16], timing_model_version=r.run.timing_model,
            emulator_version=r.run.backend)
        out.append(("ok", m, traffic))
    return out


def _stored_keys(db: AtomDB, board: str, variant: str) -> tuple[set[str], set[str]]:
    """Atom keys with emulator measurement + traffic, and keys recorded as OOM."""
    conn = store.connection(db)
    done = {k for (k,) in conn.execute(
        "SELECT DISTINCT t.atom_key FROM emulated_traffic t JOIN measurements m "
        "ON m.atom_key = t.atom_key AND m.board = t.board AND m.kernel_variant = "
        "t.kernel_variant AND m.source = 'emulator' WHERE t.board = ? AND t.kernel_variant = ?",
        (board, variant))}
    oom = {k for (k,) in conn.execute(
        "SELECT atom_key FROM emulated_oom WHERE board = ? AND kernel_variant = ?",
        (board, variant))}
    return done, oom


def collect(db: AtomDB, board_id: str, atoms: Iterable[Atom], *, variant: str | None = None,
            workers: int | None = None, batch_size: int = 8,
            progress: Callable[[int, int], None] | None = None) -> list[tuple[str, str]]:
    """Run on the emulated board every atom not yet stored with its traffic; store results.

    Returns the per-atom errors ``(key, reason)`` (OOM is not an error: it is stored).
    """
    from atomsim.profiling.profiler import DEFAULT_VARIANT

    variant = variant or DEFAULT_VARIANT
    get_board(board_id)
    store.ensure(db)
    unique = {a.key: a for a in atoms}
    done, oom = _stored_keys(db, board_id, variant)
    todo = [a for k, a in unique.items() if k not in done and k not in oom]
    todo.sort(key=lambda a: -(a.macs + a.input_bytes))  # slow ones start first
    batches = [todo[i:i + batch_size] for i in range(0, len(todo), batch_size)]
    errors: list[tuple[str, str]] = []
    if not batches:
        return errors
    roles = region_roles(get_board(board_id))
    workers = max(1, min(workers or os.cpu_count() or 1, len(batches)))
    if workers == 1:
        results = (measure_batch(board_id, variant, b) for b in batches)
        _store_all(db, board_id, variant, roles, results, errors, progress, len(todo))
        return errors
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = pool.map(measure_batch, [board_id] * len(batches), [variant] * len(batches),
                           batches)
        _store_all(db, board_id, variant, roles, results, errors, progress, len(todo))
    return errors


def _store_all(db, board_id, variant, roles, results, errors, progress, total) -> int:
    conn = store.connection(db)
    finished = 0
    for batch in results:
        with db.transaction():
            ok = [r for r in batch if r[0] == "ok"]
            if ok:
                db.upsert_measurements([m for _, m, _ in ok])
            for _, m, traffic in ok:
                conn.executemany(
                    "INSERT OR REPLACE INTO emulated_traffic (board, atom_key, kernel_variant, "
                    "region, role, reads, writes, read_bytes, write_bytes, firmware_hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(board_id, m.key, variant, name, roles.get(name, "other"), t.reads,
                      t.writes, t.read_bytes, t.write_bytes, m.firmware_hash)
                     for name, t in traffic.items()])
            for r in batch:
                if r[0] == "oom":
                    o: Oom = r[1]
                    db.upsert_atoms([o.atom])
                    conn.execute(
                        "INSERT OR REPLACE INTO emulated_oom (board, atom_key, kernel_variant, "
                        "region, needed_bytes, available_bytes) VALUES (?, ?, ?, ?, ?, ?)",
                        (board_id, o.atom.key, variant, o.region, o.needed, o.available))
                elif r[0] == "error":
                    errors.append((r[1].key, r[2]))
        finished += len(batch)
        if progress:
            progress(finished, total)
    return finished


@dataclass(frozen=True)
class Emulated:
    """An atom's emulated figures (one row of the feature table)."""

    atom: Atom
    latency_ms: float
    cycles: int
    instructions: int
    traffic: dict[str, tuple[int, int, int, int]]  # role -> reads, writes, read/write bytes
    firmware_hash: str | None
    timing_model_version: str | None
    emulator_version: str | None


def load(db: AtomDB, board_id: str, variant: str | None = None
         ) -> tuple[dict[str, Emulated], dict[str, Oom]]:
    """Stored emulated figures by atom key, and OOM records by :func:`match_key`."""
    from atomsim.profiling.profiler import DEFAULT_VARIANT

    variant = variant or DEFAULT_VARIANT
    store.ensure(db)
    conn = store.connection(db)
    traffic: dict[str, dict[str, list[int]]] = {}
    for key, role, *counts in conn.execute(
            "SELECT atom_key, role, reads, writes, read_bytes, write_bytes FROM emulated_traffic"
            " WHERE board = ? AND kernel_variant = ?", (board_id, variant)):
        acc = traffic.setdefault(key, {}).setdefault(role, [0, 0, 0, 0])
        for i, c in enumerate(counts):
            acc[i] += c
    found: dict[str, Emulated] = {}
    for m in db.measurements(board_id, variant=variant, source="emulator",
                             keys=list(traffic)):
        if m.cycles is None:
            continue
        e = Emulated(m.atom, m.latency_ms, m.cycles, m.instructions or 0,
                     {r: tuple(traffic[m.key].get(r, (0, 0, 0, 0))) for r in ROLES},
                     m.firmware_hash, m.timing_model_version, m.emulator_version)
        found[m.key] = e
    ooms: dict[str, Oom] = {}
    for key, region, needed, available in conn.execute(
            "SELECT atom_key, region, needed_bytes, available_bytes FROM emulated_oom "
            "WHERE board = ? AND kernel_variant = ?", (board_id, variant)):
        atom = _atom_from_key(db, key)
        if atom is not None:
            ooms[match_key(atom)] = Oom(atom, region, needed, available)
    return found, ooms


def cache_path(board_id: str, variant: str | None = None) -> Path:
    """A reusable feature cache for a board: an AtomDB under the build directory, keyed by the
    harness ELF, the timing model's version and the traffic counter's source, so emulated
    figures are reused only while all three are unchanged."""
    from atomsim.core.paths import build_dir
    from atomsim.emulator.machine import EMULATOR_VERSION
    from atomsim.emulator.timing import model_for
    from atomsim.profiling.profiler import DEFAULT_VARIANT, harness_elf

    variant = variant or DEFAULT_VARIANT
    board = get_board(board_id)
    native = Path(__file__).resolve().parents[1] / "atomsim" / "emulator" / "native"
    digest = hashlib.sha256(harness_elf(board, variant).read_bytes())
    digest.update(model_for(board.core).version.encode() + EMULATOR_VERSION.encode())
    for src in sorted(native.glob("*.c")):
        digest.update(src.read_bytes())
    out = build_dir() / "calibration" / f"{board_id}-{variant}-{digest.hexdigest()[:16]}.atomdb"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _atom_from_key(db: AtomDB, key: str) -> Atom | None:
    row = store.connection(db).execute(
        "SELECT type, groups, c_in, h_in, w_in, k1, k2, c_out, h_out, w_out, stride, padding, "
        "activation FROM atoms WHERE atom_key = ?", (key,)).fetchone()
    if row is None:
        return None
    names = ("type", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out", "h_out", "w_out",
             "stride", "padding", "activation")
    values = dict(zip(names, row, strict=True))
    return Atom(**values)
