"""Board measurements persisted as they arrive, so an interrupted calibration resumes.

Each checked run is one JSON line in a journal file (appended, flushed and fsynced before
the next run starts): board, kernel variant, atom key and fields, repeat index, DWT cycles,
the board's firmware image CRC and the port. :func:`measure_atoms` skips every (atom, repeat)
already in the journal, so a run stopped at any point (Ctrl-C, a pulled cable, a crash)
continues where it stopped: nothing is lost, nothing is measured twice. A line cut short by
the interruption is ignored (and measured again). An atom that does not fit the board is
journaled once with the sizes, so "does not fit" stays distinct from "not measured".

:func:`board_measurements` turns the journal into the calibration package's records
(:class:`calibration.measurements.BoardMeasurement`: median latency of the repeats, min, max).
"""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from atomsim.core.errors import ConfigError, DoesNotFit
from atomsim.nn import registry
from atomsim.nn.atoms import Atom
from calibration.serial.host import BoardRun, SerialBoard


class Journal:
    """An append-only JSON-lines file of board samples."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.records: list[dict] = []
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        for n, line in enumerate(raw.splitlines(), start=1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if line.startswith(b"{"):
                    continue  # a record cut short by an interruption (closed off on resume)
                raise ConfigError(f"{self.path}: line {n} is not a journal record") from None
            if not isinstance(rec, dict) or "atom_key" not in rec:
                raise ConfigError(f"{self.path}: line {n} is not a journal record")
            self.records.append(rec)

    def done(self, board: str, variant: str, atom_key: str) -> set[int] | None:
        """Repeat indices journaled for an atom; None when it was journaled as not fitting."""
        got: set[int] = set()
        for r in self.records:
            if (r["board"], r["variant"], r["atom_key"]) == (board, variant, atom_key):
                if "error" in r:
                    return None
                got.add(r["repeat"])
        return got

    def append(self, record: dict) -> None:
        """Write one record durably (a torn last line from before is closed off first)."""
        record = {**record, "at": datetime.now(UTC).isoformat(timespec="seconds")}
        with open(self.path, "ab") as fh:
            if fh.tell() and not _ends_with_newline(self.path):
                fh.write(b"\n")
            fh.write(json.dumps(record, sort_keys=True).encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.records.append(record)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def measure_atoms(link: SerialBoard, atoms: Iterable[Atom], journal: Journal | str | Path,
                  repeats: int = 3,
                  progress: Callable[[Atom, int, int], None] | None = None) -> Journal:
    """Measure each atom ``repeats`` times on the board, journaling every run as it arrives.

    Resumable: what the journal already holds is not measured again. ``progress(atom, i, n)``
    is called before each atom.
    """
    journal = journal if isinstance(journal, Journal) else Journal(journal)
    board, variant = link.board.id, link.variant
    atoms = list(atoms)
    for i, atom in enumerate(atoms):
        done = journal.done(board, variant, atom.key)
        if done is None:
            continue
        missing = [r for r in range(repeats) if r not in done]
        if not missing:
            continue
        if progress is not None:
            progress(atom, i, len(atoms))
        base = {"board": board, "variant": variant, "atom_key": atom.key,
                "atom": asdict(atom), "port": link.port}
        queue = list(missing)

        def keep(run: BoardRun, base=base, queue=queue) -> None:
            journal.append({**base, "repeat": queue.pop(0), "cycles": run.cycles[0],
                            "image_crc": link.hello.image_crc if link.hello else None})

        try:
            link.run_case(registry.call_for_atom(atom), len(missing), on_run=keep)
        except DoesNotFit as exc:
            journal.append({**base, "error": exc.status, "needed": exc.needed,
                            "available": exc.available, "region": exc.region})
    return journal


def board_measurements(journal: Journal | str | Path, atoms: Sequence[Atom], board: str,
                       clock_hz: int, variant: str | None = None) -> list:
    """The journal's samples of ``atoms`` as calibration records (median, min, max in ms).

    Atoms journaled as not fitting and atoms not measured are left out (``journal.done``
    tells them apart).
    """
    from calibration.measurements import BoardMeasurement

    journal = journal if isinstance(journal, Journal) else Journal(journal)
    out = []
    for atom in atoms:
        cycles = [r["cycles"] for r in journal.records
                  if r["atom_key"] == atom.key and r["board"] == board and "error" not in r
                  and (variant is None or r["variant"] == variant)]
        if not cycles:
            continue
        ms = [c / clock_hz * 1e3 for c in cycles]
        out.append(BoardMeasurement(atom=atom, latency_ms=statistics.median(ms),
                                    latency_min_ms=min(ms), latency_max_ms=max(ms),
                                    repeats=len(ms)))
    return out


def measurement_source(journal: Journal | str | Path, atoms: Sequence[Atom], board: str,
                       clock_hz: int, port: str, variant: str | None = None):
    """The journal's samples as a ``calibration.measurements.MeasurementSource`` ('serial')."""
    import hashlib

    from calibration.measurements import MeasurementSource

    journal = journal if isinstance(journal, Journal) else Journal(journal)
    digest = hashlib.sha256(journal.path.read_bytes()).hexdigest() \
        if journal.path.exists() else None
    return MeasurementSource("serial", f"{port} (journal {journal.path})", digest, tuple(
        board_measurements(journal, atoms, board, clock_hz, variant)))


def measure_on_port(board, port: str, atoms: Sequence[Atom], journal: str | Path,
                    repeats: int = 3, variant: str | None = None, settings=None,
                    progress: Callable[[Atom, int, int], None] | None = None):
    """What ``atomsim calibrate --port`` needs in one call: the harness ELF for ``board`` (built
    or cached), the board on ``port`` checked with HELLO, every missing (atom, repeat)
    measured and journaled, and the result as a 'serial' MeasurementSource.

    Flash the ELF first (:func:`calibration.serial.host.flash`, or your own tool).
    """
    from atomsim.profiling.profiler import DEFAULT_VARIANT, harness_elf

    variant = variant or DEFAULT_VARIANT
    elf = harness_elf(board, variant)
    with SerialBoard(port, board, elf, variant, settings) as link:
        link.connect()
        measure_atoms(link, atoms, journal, repeats, progress)
    return measurement_source(journal, atoms, board.id, board.clock_hz, port, variant)
