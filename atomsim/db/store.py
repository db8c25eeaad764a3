"""AtomDB: per-board atom measurements in one SQLite file (WAL: many readers, one writer).

Opening is safe by construction: the file is identified as an AtomDB (``PRAGMA
application_id``, or a version-1 file's tables) over a read-only connection before anything
is written, so another program's SQLite file, a CSV or a directory is refused untouched; a
file of an unknown schema version is refused before the switch to WAL; an older version is
migrated (``schema.MIGRATIONS``) in one transaction. Read-only commands open the file with
``mode=ro`` and never take a write lock.

Every write goes through :meth:`AtomDB.transaction`; a batch is one transaction, so a sweep
killed mid-write leaves either the whole batch or none of it. A write lock held by another
process is waited for with backoff up to ``busy_timeout`` seconds (default 60, or the
``ATOMSIM_DB_BUSY_TIMEOUT`` environment variable), then reported as :class:`DatabaseBusy`.
"""

from __future__ import annotations

import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self, TypeVar

from atomsim.core.errors import ConfigError
from atomsim.core.paths import may_write
from atomsim.db.errors import (
    AtomDBError,
    DatabaseBusy,
    DatabaseFull,
    DatabaseReadOnly,
    NoAtomDB,
    NotAnAtomDB,
    SchemaVersionError,
)
from atomsim.db.records import (
    MAX_INT,
    PROVENANCE,
    Measurement,
    MissingAtoms,
    Totals,
    now,
)
from atomsim.db.schema import (
    APPLICATION_ID,
    CORE_TABLES,
    CREATE,
    MIGRATIONS,
    OLDEST_READABLE,
    SCHEMA_VERSION,
    V1_TABLES,
    statements,
)
from atomsim.db.tables import export_table, import_table
from atomsim.nn.atoms import Atom, format_padding, parse_padding

__all__ = ["AtomDB", "Measurement", "MissingAtoms", "Totals"]

# When several measurements of one atom exist and the caller names no source, prefer a real
# board, then the emulator, then imported numbers.
SOURCE_PREFERENCE = ("board", "emulator", "import")
_CHUNK = 500  # keys per IN (...) query, well under SQLite's parameter limit
BUSY_TIMEOUT_ENV = "ATOMSIM_DB_BUSY_TIMEOUT"
DEFAULT_BUSY_TIMEOUT = 60.0  # seconds a writer waits for another process's lock
_SQLITE_MAGIC = b"SQLite format 3\x00"
_T = TypeVar("_T")


def default_busy_timeout() -> float:
    """Seconds to wait for a lock: ``ATOMSIM_DB_BUSY_TIMEOUT`` or 60."""
    value = os.environ.get(BUSY_TIMEOUT_ENV)
    if value is None:
        return DEFAULT_BUSY_TIMEOUT
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"{BUSY_TIMEOUT_ENV}={value!r}: a number of seconds >= 0 is needed")
    return seconds


def _sniff(head: bytes) -> str:
    """What a non-SQLite file looks like, for the error message."""
    if not head:
        return "an empty file"
    if head.startswith(b"PAR1"):
        return "a Parquet file"
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return "UTF-16 text"
    if b"\x00" in head:
        return "a binary file"
    return "a text file"


class AtomDB:
    """An AtomDB file. Use ``with AtomDB.open(path) as db:``; one connection per process.

    ``readonly=True`` (what ``db stats/query/export`` and reports use) opens an existing file
    without ever taking a write lock; ``must_exist=True`` refuses to create a new file.
    """

    def __init__(self, path: str | Path, *, must_exist: bool = False, readonly: bool = False,
                 busy_timeout: float | None = None):
        self.path = Path(path)
        self.readonly = readonly
        self.busy_timeout = default_busy_timeout() if busy_timeout is None else busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._depth = 0
        existed = self.path.exists()
        version = self._identify(must_exist=must_exist or readonly)
        try:
            if readonly:
                self._open_readonly(version)
            else:
                self._open_writable(version)
        except BaseException:
            self.close()
            if not existed and self.path.is_file() and self.path.stat().st_size == 0:
                self.path.unlink()  # a new file that could not be set up: leave nothing
            raise

    @classmethod
    def open(cls, path: str | Path, *, must_exist: bool = False, readonly: bool = False,
             busy_timeout: float | None = None) -> AtomDB:
        """Open (creating when absent, unless ``must_exist`` or ``readonly``) the AtomDB."""
        return cls(path, must_exist=must_exist, readonly=readonly, busy_timeout=busy_timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    @property
    def connection(self) -> sqlite3.Connection:
        """The SQLite connection (autocommit; write only inside :meth:`transaction`)."""
        if self._conn is None:
            raise AtomDBError(f"{self.path}: the AtomDB is closed")
        return self._conn

    # -- opening --------------------------------------------------------------------------------

    def _uri(self, mode: str) -> str:
        return f"{self.path.resolve().as_uri()}?mode={mode}"

    def _identify(self, must_exist: bool) -> int | None:
        """The file's schema version; None for a new (absent or empty) file. Writes nothing."""
        path = self.path
        if path.is_dir():
            raise NotAnAtomDB(f"{path} is a directory, not an AtomDB file")
        if not path.exists():
            if must_exist:
                raise NoAtomDB(f"no AtomDB at {path}")
            if not path.parent.is_dir():
                raise AtomDBError(f"cannot create AtomDB at {path}: no such directory "
                                  f"{path.parent}")
            return None
        if not path.is_file():
            raise NotAnAtomDB(f"{path} is not a regular file, not an AtomDB")
        try:
            with path.open("rb") as fh:
                head = fh.read(100)
        except OSError as exc:
            raise AtomDBError(f"cannot read {path}: {exc.strerror}") from None
        if not head and not must_exist:
            return None
        if not head.startswith(_SQLITE_MAGIC):
            raise NotAnAtomDB(f"{path} is not an AtomDB: not an SQLite database "
                              f"({_sniff(head)}); left untouched")
        probe = self._connect_ro()
        try:
            app_id = self._retry(lambda: probe.execute("PRAGMA application_id").fetchone()[0])
            user_version = probe.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in probe.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            ours = app_id == APPLICATION_ID or (app_id == 0 and set(V1_TABLES) <= tables)
            if not ours:
                if app_id == 0 and user_version == 0 and not tables and not must_exist:
                    return None  # an empty SQLite database: AtomDB may set it up
                shown = ", ".join(sorted(tables)[:8]) or "none"
                raise NotAnAtomDB(
                    f"{path} is not an AtomDB: an SQLite file of another program (application "
                    f"id 0x{app_id:08X}, tables: {shown}); AtomSim leaves it untouched")
            if "schema_version" not in tables:
                raise NotAnAtomDB(f"{path} has AtomDB's application id but no schema_version "
                                  "table: damaged; left untouched")
            versions = [r[0] for r in probe.execute("SELECT version FROM schema_version")]
        except sqlite3.Error as exc:
            raise self._named(exc) from None
        finally:
            probe.close()
        if len(versions) != 1 or not isinstance(versions[0], int):
            raise SchemaVersionError(f"{path}: schema_version holds {versions!r}, not one "
                                     "version number; left untouched")
        return versions[0]

    def _connect(self, mode: str) -> sqlite3.Connection:
        try:
            return sqlite3.connect(self._uri(mode), uri=True, isolation_level=None,
                                   timeout=min(self.busy_timeout, 0.25))
        except sqlite3.Error as exc:
            raise self._named(exc) from None

    def _connect_ro(self) -> sqlite3.Connection:
        """A read-only connection; in a folder we cannot write, an immutable one if safe.

        Reading a WAL file needs its ``-shm`` index, which SQLite cannot create in a read-only
        folder; when no ``-wal`` file holds changes, the database file alone is the whole
        truth and may be read as immutable.
        """
        conn = self._connect("ro")
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            low = str(exc).lower()
            if "readonly" not in low and "unable to open" not in low:
                raise self._named(exc) from None
        wal = Path(f"{self.path}-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            raise AtomDBError(f"cannot read {self.path}: its folder is read-only and its -wal "
                              "file holds changes not yet in the database file; open it once "
                              "where it can be written")
        try:
            return sqlite3.connect(self._uri("ro") + "&immutable=1", uri=True,
                                   isolation_level=None)
        except sqlite3.Error as exc:
            raise self._named(exc) from None

    def _check_version(self, version: int, oldest: int) -> None:
        if not oldest <= version <= SCHEMA_VERSION:
            newer = " (written by a newer AtomSim)" if version > SCHEMA_VERSION else ""
            raise SchemaVersionError(
                f"{self.path} has AtomDB schema version {version}{newer}, this AtomSim reads "
                f"versions {oldest} to {SCHEMA_VERSION}; left untouched")

    def _open_readonly(self, version: int | None) -> None:
        if version is None:  # an empty file: must_exist is implied by readonly
            raise NotAnAtomDB(f"{self.path} is empty, not an AtomDB")
        self._check_version(version, OLDEST_READABLE)
        self.schema_version = version
        self._conn = self._connect_ro()
        self._conn.execute("PRAGMA query_only = ON")

    def _open_writable(self, version: int | None) -> None:
        if version is not None:
            self._check_version(version, 1)
        for what, target in (("file", self.path), ("directory", self.path.parent)):
            if target.exists() and not may_write(target):
                raise DatabaseReadOnly(
                    f"{self.path}: the {what} {target} is read-only; nothing was written "
                    "(a writing command needs write access to the file and its directory)")
        self._conn = self._connect("rwc" if version is None else "rw")
        self._conn.execute("PRAGMA foreign_keys = ON")
        if version == SCHEMA_VERSION:
            try:  # a real write: a file we cannot write fails here, before any work
                with self.transaction(busy_timeout=0.25):
                    self._conn.execute("UPDATE schema_version SET version = version")
            except DatabaseBusy:
                pass  # another process is writing it, so it is writable; writes will wait
        else:
            self._set_up(version)
        self.schema_version = SCHEMA_VERSION
        mode = self._retry(lambda: self._conn.execute("PRAGMA journal_mode").fetchone()[0])
        if mode.lower() != "wal":
            self._retry(lambda: self._conn.execute("PRAGMA journal_mode = WAL").fetchone())
        self._conn.execute("PRAGMA synchronous = NORMAL")

    def _set_up(self, version: int | None) -> None:
        """Create a new file's schema, or migrate an older one, in one transaction."""
        with self.transaction():
            if version is None:
                for statement in statements(CREATE):
                    self._conn.execute(statement)
                self._conn.execute("INSERT INTO schema_version (version) VALUES (1)")
                version = 1
            for step in MIGRATIONS[version - 1:]:
                for statement in statements(step.sql):
                    self._conn.execute(statement)
                self._conn.execute("UPDATE schema_version SET version = ?",
                                   (step.from_version + 1,))

    # -- errors and locks -----------------------------------------------------------------------

    def _named(self, exc: BaseException, waited: float | None = None) -> AtomDBError:
        """The named error for an SQLite failure."""
        text = str(exc)
        low = text.lower()
        if "locked" in low or "busy" in low:
            seconds = self.busy_timeout if waited is None else waited
            return DatabaseBusy(f"{self.path}: database is locked by another process (waited "
                                f"{seconds:g} s with backoff); nothing of this transaction "
                                "was written, try again when the other writer is done")
        if "readonly" in low or "read-only" in low:
            return DatabaseReadOnly(f"{self.path}: read-only database ({text}); nothing was "
                                    "written")
        if "full" in low or "disk i/o" in low:
            return DatabaseFull(f"{self.path}: disk full or file-size limit reached ({text}); "
                                "the transaction was rolled back")
        if "not a database" in low or "malformed" in low:
            return NotAnAtomDB(f"{self.path} is not an AtomDB: {text}")
        if "unable to open" in low:
            return AtomDBError(f"cannot open AtomDB {self.path}: {text}")
        return AtomDBError(f"{self.path}: SQLite error: {text}")

    def _retry(self, action: Callable[[], _T], timeout: float | None = None) -> _T:
        """Run ``action``, retrying with backoff while the database is busy."""
        timeout = self.busy_timeout if timeout is None else timeout
        start = time.monotonic()
        delay = 0.02
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                low = str(exc).lower()
                waited = time.monotonic() - start
                if ("locked" not in low and "busy" not in low) or waited >= timeout:
                    raise self._named(exc, waited=round(waited, 1)) from None
                time.sleep(min(delay, max(0.0, timeout - waited)))
                delay = min(delay * 2, 1.0)

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """A read query's rows, waiting with backoff while another process locks the file."""
        conn = self.connection
        return self._retry(lambda: conn.execute(sql, params).fetchall())

    @contextmanager
    def transaction(self, busy_timeout: float | None = None) -> Iterator[AtomDB]:
        """All writes inside commit together or not at all (nesting joins the outer one).

        Waits up to ``busy_timeout`` seconds (default: the database's) for another writer.
        """
        if self.readonly:
            raise DatabaseReadOnly(f"{self.path} is open read-only")
        conn = self.connection
        if self._depth:
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
            return
        self._retry(lambda: conn.execute("BEGIN IMMEDIATE"), busy_timeout)
        self._depth = 1
        try:
            yield self
        except BaseException as exc:
            self._depth = 0
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise self._named(exc) from None
            if isinstance(exc, OverflowError):
                raise ConfigError(f"{self.path}: a value is too large for SQLite ({exc}); "
                                  "nothing was written") from None
            raise
        self._depth = 0
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._named(exc) from None

    def _rollback(self) -> None:
        try:
            self.connection.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (e.g. after "disk full")

    # -- other packages' tables -----------------------------------------------------------------

    def ensure_tables(self, name: str, sql: str, *, version: int = 1) -> int | None:
        """Keep a package's own tables in this file; returns the version registered before.

        ``sql`` holds ``CREATE TABLE|INDEX IF NOT EXISTS`` statements for the package's own
        tables (never AtomDB's). They run in one transaction, and ``(name, version)`` is
        recorded in ``atomdb_extensions``. The return value (None: first time) lets the
        package migrate its own tables. AtomDB's identification and migrations ignore such
        tables. On a read-only AtomDB the package must already be registered at ``version``.
        """
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name):
            raise ConfigError(f"extension name {name!r}: letters, digits, '_' and '.' only")
        parts = statements(sql)
        for statement in parts:
            found = re.match(r"CREATE\s+(?:UNIQUE\s+)?(TABLE|INDEX)\s+IF\s+NOT\s+EXISTS\s+"
                             r"[\"\[]?(\w+)", statement, re.IGNORECASE)
            if not found:
                raise ConfigError(f"ensure_tables({name!r}): only CREATE TABLE/INDEX IF NOT "
                                  f"EXISTS statements, got {statement[:60]!r}")
            if found.group(1).upper() == "TABLE" and found.group(2).lower() in CORE_TABLES:
                raise ConfigError(f"ensure_tables({name!r}): {found.group(2)} is AtomDB's own")
        before = None
        if self.schema_version >= 2:
            rows = self._rows("SELECT version FROM atomdb_extensions WHERE name = ?", (name,))
            before = rows[0][0] if rows else None
        if self.readonly:
            if before is not None and before >= version:
                return before
            raise DatabaseReadOnly(f"{self.path} is open read-only; {name} tables (version "
                                   f"{version}) are not set up in it")
        with self.transaction():
            for statement in parts:
                self.connection.execute(statement)
            self.connection.execute(
                "INSERT INTO atomdb_extensions (name, version, registered_at) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET version = excluded.version, "
                "registered_at = excluded.registered_at", (name, version, now()))
        return before

    # -- writing --------------------------------------------------------------------------------

    def upsert_atoms(self, atoms: Iterable[Atom]) -> int:
        """Add atoms (board-independent rows) that are not yet stored; returns how many given."""
        rows = [_atom_row(a) for a in atoms]
        with self.transaction():
            self.connection.executemany(
                f"INSERT INTO atoms ({', '.join(_ATOM_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_ATOM_COLUMNS))}) "
                "ON CONFLICT (atom_key) DO NOTHING", rows)
        return len(rows)

    def upsert_measurements(self, measurements: Iterable[Measurement],
                            busy_timeout: float | None = None) -> int:
        """Insert or replace measurements in ONE transaction; returns how many were written.

        The same (board, atom, kernel variant, source) written again replaces the earlier row,
        so repeating a batch leaves the row count unchanged. A stored measurement removes the
        atom's failure row for that board and variant.
        """
        return self.commit_batch(measurements, (), busy_timeout=busy_timeout)

    def commit_batch(self, measurements: Iterable[Measurement],
                     failures: Iterable[tuple[str, str, str, str, str]],
                     busy_timeout: float | None = None) -> int:
        """Measurements and failure rows ``(board, atom key, variant, error, reason)`` together.

        One transaction; returns the number of measurements written.
        """
        columns = ("atom_key", *PROVENANCE)
        sql = (f"INSERT INTO measurements ({', '.join(columns)}) "
               f"VALUES ({', '.join('?' * len(columns))}) "
               "ON CONFLICT (board, atom_key, kernel_variant, source) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in PROVENANCE
                           if c not in ("board", "kernel_variant", "source")))
        conn = self.connection
        count = 0
        with self.transaction(busy_timeout):
            for m in measurements:  # a generator that raises here rolls everything back
                self.upsert_atoms([m.atom])
                values = [getattr(m, c) for c in PROVENANCE]
                if m.created_at is None:
                    values[PROVENANCE.index("created_at")] = now()
                conn.execute(sql, (m.key, *values))
                conn.execute("DELETE FROM failures WHERE board = ? AND atom_key = ? "
                             "AND kernel_variant = ?", (m.board, m.key, m.kernel_variant))
                count += 1
            stamp = now()
            conn.executemany(
                "INSERT INTO failures (board, atom_key, kernel_variant, error, reason, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (board, atom_key, "
                "kernel_variant) DO UPDATE SET error = excluded.error, reason = "
                "excluded.reason, created_at = excluded.created_at",
                [(*f, stamp) for f in failures])
        return count

    def failures(self, board: str | None = None, variant: str | None = None
                 ) -> list[dict[str, str]]:
        """Stored sweep failures (atoms that did not fit, faulted, or crashed a worker)."""
        if self.schema_version < 2:
            return []
        where, params = [], []
        for column, value in (("board", board), ("kernel_variant", variant)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = ("SELECT board, atom_key, kernel_variant, error, reason, created_at FROM failures"
               + (f" WHERE {' AND '.join(where)}" if where else "")
               + " ORDER BY board, atom_key, kernel_variant")
        names = ("board", "atom_key", "kernel_variant", "error", "reason", "created_at")
        return [dict(zip(names, r, strict=True)) for r in self._rows(sql, params)]

    # -- reading --------------------------------------------------------------------------------

    def has(self, board: str, atom: Atom | str, variant: str, source: str | None = None) -> bool:
        """Whether ``atom`` (or its key) has a measurement on ``board`` with ``variant``."""
        return not self.missing_keys(board, [atom if isinstance(atom, str) else atom.key],
                                     variant, source)

    def missing_keys(self, board: str, keys: Iterable[str], variant: str,
                     source: str | None = None) -> list[str]:
        """The keys (in the given order, deduplicated) not yet measured: resume a sweep."""
        wanted = list(dict.fromkeys(keys))
        present: set[str] = set()
        for chunk in _chunks(wanted):
            sql = (f"SELECT atom_key FROM measurements WHERE board = ? AND kernel_variant = ? "
                   f"AND atom_key IN ({', '.join('?' * len(chunk))})")
            params: list[Any] = [board, variant, *chunk]
            if source is not None:
                sql += " AND source = ?"
                params.append(source)
            present.update(r[0] for r in self._rows(sql, params))
        return [k for k in wanted if k not in present]

    def measurements(self, board: str | None = None, *, variant: str | None = None,
                     source: str | None = None, atom_type: str | None = None,
                     keys: Sequence[str] | None = None) -> list[Measurement]:
        """Stored measurements matching every filter given, ordered by board and atom."""
        where, params = _filters(board=board, variant=variant, source=source,
                                 atom_type=atom_type)
        base = (f"SELECT {_SELECT} FROM measurements m JOIN atoms a USING (atom_key)"
                + (f" WHERE {' AND '.join(where)}" if where else ""))
        order = " ORDER BY m.board, a.type, m.atom_key, m.kernel_variant, m.source"
        if keys is None:
            return [_measurement(r) for r in self._rows(base + order, params)]
        out: list[Measurement] = []
        for chunk in _chunks(list(dict.fromkeys(keys))):
            sql = (base + (" AND " if where else " WHERE ")
                   + f"m.atom_key IN ({', '.join('?' * len(chunk))})" + order)
            out += [_measurement(r) for r in self._rows(sql, [*params, *chunk])]
        return out

    def lookup(self, board: str, atom: Atom, variant: str | None = None,
               source: str | None = None) -> Measurement | None:
        """The measurement of exactly this atom on ``board``, or None.

        With several matches (variants/sources), the source order board > emulator > import
        decides, then the newest.
        """
        found = self.measurements(board, variant=variant, source=source, keys=[atom.key])
        return _best(found).get(atom.key)

    def sum_atoms(self, board: str, atoms: Sequence[Atom], variant: str | None = None,
                  source: str | None = None) -> Totals:
        """Sum latency (and cycles) over ``atoms`` (repeats counted); peak SRAM is the max.

        Raises :class:`MissingAtoms` naming every atom without a measurement.
        """
        best = _best(self.measurements(board, variant=variant, source=source,
                                       keys=[a.key for a in atoms]))
        missing = list({a.key: a for a in atoms if a.key not in best}.values())
        if missing:
            raise MissingAtoms(board, missing, "sum_atoms")
        chosen = [best[a.key] for a in atoms]
        cycles = [m.cycles for m in chosen]
        srams = [m.sram_bytes for m in chosen]
        return Totals(
            board=board, atoms=len(atoms),
            latency_ms=math.fsum(m.latency_ms for m in chosen),
            cycles=None if None in cycles else sum(cycles),  # type: ignore[arg-type]
            flash_bytes=sum(a.flash_bytes for a in atoms),
            peak_sram_bytes=None if None in srams or not srams else max(srams),  # type: ignore
            peak_activation_bytes=max((a.input_bytes + a.output_bytes for a in atoms),
                                      default=0),
            macs=sum(a.macs for a in atoms))

    def efficiency(self, board: str, variant: str | None = None, source: str | None = None):
        """Computation efficiency (MACs per ms) of every measured atom with MACs, as a DataFrame.

        Columns: type, atom_key, the shape columns, macs, latency_ms, macs_per_ms,
        kernel_variant, source; sorted by type, then efficiency (highest first).
        """
        import pandas as pd

        rows = []
        for m in self.measurements(board, variant=variant, source=source):
            a = m.atom
            if a.macs == 0 or m.latency_ms <= 0:
                continue
            rows.append({
                "type": a.type, "atom_key": a.key, "groups": a.groups, "c_in": a.c_in,
                "h_in": a.h_in, "w_in": a.w_in, "k1": a.k1, "k2": a.k2, "c_out": a.c_out,
                "h_out": a.h_out, "w_out": a.w_out, "stride": a.stride, "macs": a.macs,
                "latency_ms": m.latency_ms, "macs_per_ms": a.macs / m.latency_ms,
                "kernel_variant": m.kernel_variant, "source": m.source})
        columns = ["type", "atom_key", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out",
                   "h_out", "w_out", "stride", "macs", "latency_ms", "macs_per_ms",
                   "kernel_variant", "source"]
        frame = pd.DataFrame(rows, columns=columns)
        return frame.sort_values(["type", "macs_per_ms"], ascending=[True, False],
                                 ignore_index=True)

    def stats(self, board: str | None = None) -> dict[str, Any]:
        """Counts: atoms, measurements, per board and source, per kernel variant, per type.

        With ``board``, only that board's measurements (and the atoms they measure).
        """
        where, params = ("WHERE board = ?", [board]) if board is not None else ("", [])
        measured = "atom_key IN (SELECT atom_key FROM measurements WHERE board = ?)"
        atoms_where = f"WHERE {measured}" if board is not None else ""

        def one(sql: str, args: Sequence[Any] = params) -> Any:
            return self._rows(sql, args)[0][0]

        boards: dict[str, dict[str, int]] = {}
        for name, source, n in self._rows(
                f"SELECT board, source, COUNT(*) FROM measurements {where} "
                "GROUP BY board, source ORDER BY board, source", params):
            boards.setdefault(name, {})[source] = n
        failures = 0
        if self.schema_version >= 2:
            failures = one(f"SELECT COUNT(*) FROM failures {where}")
        return {
            "path": str(self.path),
            "schema_version": one("SELECT version FROM schema_version", ()),
            "board": board,
            "atoms": one(f"SELECT COUNT(*) FROM atoms {atoms_where}"),
            "measurements": one(f"SELECT COUNT(*) FROM measurements {where}"),
            "failures": failures,
            "boards": boards,
            "kernel_variants": dict(self._rows(
                f"SELECT kernel_variant, COUNT(*) FROM measurements {where} "
                "GROUP BY kernel_variant ORDER BY kernel_variant", params)),
            "atom_types": dict(self._rows(
                f"SELECT type, COUNT(*) FROM atoms {atoms_where} GROUP BY type ORDER BY type",
                params)),
        }

    # -- files ------------------------------------------------------------------------------------

    def export(self, path: str | Path, board: str | None = None) -> int:
        """Write measurements as CSV or Parquet (by suffix) in the paper's layout; row count."""
        return export_table(self, path, board=board)

    def import_file(self, path: str | Path, board: str | None = None, **options: Any) -> int:
        """Import a CSV/Parquet table (see :func:`atomsim.db.tables.import_table`)."""
        return import_table(self, path, board=board, **options)


_ATOM_COLUMNS = ("atom_key", "type", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out",
                 "h_out", "w_out", "stride", "padding", "activation", "flash", "macs",
                 "input_bytes", "output_bytes")
_ATOM_FIELDS = ("type", "groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out", "h_out",
                "w_out", "stride", "padding", "activation")
_SELECT = ", ".join([*(f"a.{c}" for c in _ATOM_FIELDS), *(f"m.{c}" for c in PROVENANCE)])


def _atom_row(atom: Atom) -> tuple:
    for name, value in (("macs", atom.macs), ("flash", atom.flash_bytes),
                        ("input_bytes", atom.input_bytes), ("output_bytes", atom.output_bytes)):
        if value > MAX_INT:
            raise ConfigError(f"atom {atom.describe()}: {name} {value} is too large to store")
    return (atom.key, atom.type, atom.groups, atom.c_in, atom.h_in, atom.w_in, atom.k1,
            atom.k2, atom.c_out, atom.h_out, atom.w_out, atom.stride,
            format_padding(atom.padding), atom.activation, atom.flash_bytes, atom.macs,
            atom.input_bytes, atom.output_bytes)


def _measurement(row: Sequence[Any]) -> Measurement:
    n = len(_ATOM_FIELDS)
    atom_values = dict(zip(_ATOM_FIELDS, row[:n], strict=True))
    atom_values["padding"] = parse_padding(atom_values["padding"])
    return Measurement(atom=Atom(**atom_values), **dict(zip(PROVENANCE, row[n:], strict=True)))


def _filters(**given: str | None) -> tuple[list[str], list[Any]]:
    column = {"board": "m.board", "variant": "m.kernel_variant", "source": "m.source",
              "atom_type": "a.type"}
    where, params = [], []
    for name, value in given.items():
        if value is not None:
            where.append(f"{column[name]} = ?")
            params.append(value)
    return where, params


def _best(found: Iterable[Measurement]) -> dict[str, Measurement]:
    """Per atom key, the preferred measurement (source order, then newest)."""
    best: dict[str, Measurement] = {}
    for m in found:
        held = best.get(m.key)
        rank = (-SOURCE_PREFERENCE.index(m.source), m.created_at or "")
        if held is None or rank > (-SOURCE_PREFERENCE.index(held.source),
                                   held.created_at or ""):
            best[m.key] = m
    return best


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i:i + _CHUNK]
