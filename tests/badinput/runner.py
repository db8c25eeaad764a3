"""Runs the bad-input corpus (cases.toml): recipes that make the files, the subprocess, checks.

A case (see cases.toml's header for every key) names its files by placeholder; ``{name}`` in the
command line, the environment and ``expect`` is the path (or address) a recipe made. The checks
are in :func:`check`; :func:`summary` counts the outcomes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atomdb_v1 import V1_SQL

from badinput import nn_recipes

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "cases.toml"
ATOMSIM = Path(sys.executable).with_name("atomsim")  # the installed console script
RESULTS = HERE.parents[1] / "build" / "badinput" / "results.json"
PARALLEL = 3  # cases at a time: most of a case is process start-up and waiting
KEYS = {"name", "verb", "args", "files", "env", "exit", "error", "words", "not_words", "expect",
        "fault", "robot", "needs",
        "fault_after_rows", "lock", "lock_seconds", "file_size_limit", "timeout", "why"}


def load_cases(path: Path = CORPUS) -> list[dict[str, Any]]:
    """The cases, checked for unknown keys and duplicate names."""
    cases = tomllib.loads(path.read_text())["case"]
    names = set()
    for case in cases:
        unknown = set(case) - KEYS
        assert not unknown, f"case {case.get('name')}: unknown key(s) {sorted(unknown)}"
        assert case["name"] not in names, f"duplicate case name {case['name']}"
        names.add(case["name"])
    return cases


CASES = load_cases()


def expected_outcome(case: dict[str, Any]) -> str:
    """What the case expects: a named error, a correct result, or a handled fault."""
    if case.get("fault"):
        return "fault handled"
    return "correct result" if case["exit"] == 0 else "named error"


# -- recipes ------------------------------------------------------------------------------------


# A good import table: two pw atoms for the H743 (the paper's column layout).
_GOOD_ROWS = [
    {"type": "conv2d", "groups": "1", "c_in": "32", "h_in": "64", "w_in": "64", "k1": "1",
     "k2": "1", "c_out": "32", "h_out": "64", "w_out": "64", "Flash": "1152",
     "MACs": "4194336", "latency_ms": "9.9"},
    {"type": "conv2d", "groups": "1", "c_in": "16", "h_in": "64", "w_in": "64", "k1": "1",
     "k2": "1", "c_out": "32", "h_out": "64", "w_out": "64", "Flash": str(16 * 32 + 4 * 32),
     "MACs": str(32 * 64 * 64 * 16 + 32), "latency_ms": "5.1"},
]
_DEFAULT_NAMES = {"atomdb": "atoms.db", "atomdb_version": "atoms.db", "foreign_sqlite":
                  "other.sqlite", "import_csv": "table.csv", "export_csv": "export.csv",
                  "atoms_csv": "atoms.csv", "elf": "hello.elf", "host_elf": "host.elf"}
_SESSION: dict[str, Any] = {}
_SESSION_LOCK = threading.Lock()


def _tiny_atom(i: int):
    from atomsim.nn.atoms import Atom

    return Atom(type="pw", c_in=8 + 4 * (i % 8), h_in=4 + i // 8, w_in=4, k1=1, k2=1, c_out=8,
                h_out=4 + i // 8, w_out=4)


def _atomdb(path: Path, rows: int = 3, boards: list[str] | None = None,
            source: str = "emulator") -> None:
    from atomsim.db import AtomDB, Measurement

    with AtomDB.open(path) as db:
        db.upsert_measurements([
            Measurement(atom=_tiny_atom(i), board=board, latency_ms=0.5 + i, cycles=1000 + i,
                        kernel_variant="cortex_m_dsp", source=source)
            for board in boards or ["stm32h743"] for i in range(rows)])


def _table(rows: list[dict[str, str]], path: Path, spec: dict[str, Any]) -> None:
    import pandas as pd

    rows = [dict(r) for r in rows]
    for row in rows:
        for column in spec.get("drop", []):
            row.pop(column, None)
        row.update({k: str(v) for k, v in spec.get("add", {}).items()})
    if spec.get("change"):  # the last row differs
        rows[-1].update({k: str(v) for k, v in spec["change"].items()})
    rows += [{k: str(v) for k, v in r.items()} for r in spec.get("extra", [])]
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(k for r in rows for k in r)))
    if spec.get("format") == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def _silent_server() -> str:
    """A local TCP server that accepts connections and never says a word (session-long)."""
    with _SESSION_LOCK:
        if "silent" not in _SESSION:
            server = socket.create_server(("127.0.0.1", 0))
            held: list[socket.socket] = []

            def accept() -> None:
                while True:
                    try:
                        held.append(server.accept()[0])
                    except OSError:
                        return

            threading.Thread(target=accept, daemon=True).start()
            _SESSION["silent"] = (server, held)
        return f"tcp://127.0.0.1:{_SESSION['silent'][0].getsockname()[1]}"


def _elf(board: str) -> str:
    with _SESSION_LOCK:
        if ("elf", board) not in _SESSION:
            from atomsim.boards import get_board
            from atomsim.target.firmware import build_example

            _SESSION[("elf", board)] = str(build_example("hello", get_board(board)))
        return _SESSION[("elf", board)]


def make(spec: dict[str, Any], placeholder: str, folder: Path) -> str:
    """Run one recipe in ``folder``; returns the placeholder's value (a path or address)."""
    recipe = spec["recipe"]
    if spec.get("dir_mode") is not None:
        folder = folder / f"{placeholder}-dir"
        folder.mkdir()
    path = folder / spec.get("file", _DEFAULT_NAMES.get(recipe, placeholder))
    path.parent.mkdir(parents=True, exist_ok=True)  # a file may name a sub-folder: ck/last.pt
    if recipe == "atomdb":
        _atomdb(path, spec.get("rows", 3), spec.get("boards"), spec.get("source", "emulator"))
    elif recipe == "atomdb_version":
        conn = sqlite3.connect(path)
        conn.executescript(V1_SQL)
        conn.execute("INSERT INTO schema_version VALUES (?)", (spec["version"],))
        atom = _tiny_atom(0)
        conn.execute("INSERT INTO atoms VALUES (?, 'pw', 1, 8, 4, 4, 1, 1, 8, 4, 4, 1, "
                     "'0,0,0,0', 'none', ?, ?, 128, 128)",
                     (atom.key, atom.flash_bytes, atom.macs))
        conn.execute("INSERT INTO measurements (board, atom_key, kernel_variant, source, "
                     "latency_ms, created_at) VALUES ('stm32h743', ?, 'cortex_m_dsp', "
                     "'emulator', 0.5, '2026-01-01T00:00:00+00:00')", (atom.key,))
        conn.commit()
        conn.close()
    elif recipe == "foreign_sqlite":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        conn.execute("INSERT INTO notes (text) VALUES ('keep me')")
        for table in spec.get("tables", []):
            conn.execute(f"CREATE TABLE {table} (x)")
        if spec.get("wal"):
            conn.execute("PRAGMA journal_mode = WAL")
        conn.commit()
        conn.close()
    elif recipe == "text":
        path.write_bytes(spec.get("text", "").encode(spec.get("encoding", "utf-8")))
    elif recipe == "hex":
        path.write_bytes(bytes.fromhex(spec["hex"]))
    elif recipe == "dir":
        path.mkdir()
    elif recipe == "missing":
        pass
    elif recipe == "missing_dir":
        path = folder / "no-such-dir" / path.name
    elif recipe == "import_csv":
        _table(_GOOD_ROWS, path, spec)
    elif recipe == "export_csv":
        from atomsim.db import AtomDB

        source_db = folder / f"{placeholder}-source.db"
        _atomdb(source_db, spec.get("rows", 3), spec.get("boards"),
                spec.get("source", "emulator"))
        with AtomDB.open(source_db, readonly=True) as db:
            db.export(path)
    elif recipe == "atoms_csv":
        count = spec.get("count", 2)
        _table([{k: str(v) for k, v in _tiny_atom(i).as_row().items()} for i in range(count)],
               path, spec)
    elif recipe == "elf":
        return _elf(spec.get("board", "stm32f746"))
    elif recipe == "host_elf":
        shutil.copy(Path(sys.executable).resolve(), path)
    elif recipe == "silent_server":
        return _silent_server()
    elif recipe == "closed_port":
        with socket.create_server(("127.0.0.1", 0)) as probe:
            port = probe.getsockname()[1]
        return f"tcp://127.0.0.1:{port}"
    elif nn_recipes.make(recipe, spec, path) is None:
        raise AssertionError(f"unknown recipe {recipe!r}")
    if spec.get("mode") is not None:
        path.chmod(spec["mode"])
    if spec.get("dir_mode") is not None:
        folder.chmod(spec["dir_mode"])
    return str(path)


# -- observing the database ---------------------------------------------------------------------

def _digest(path: Path) -> str | None:
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _db_facts(path: Path) -> dict[str, Any]:
    """Rows, failures, sources, schema version, journal mode of an AtomDB (read-only)."""
    if not path.is_file():
        return {"exists": path.exists()}  # a folder (a checkpoint dir) exists too
    facts: dict[str, Any] = {"exists": True}
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            facts["rows"] = conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
            facts["sources"] = dict(conn.execute(
                "SELECT source, COUNT(*) FROM measurements GROUP BY source"))
            facts["version"] = conn.execute("SELECT version FROM schema_version").fetchone()[0]
            facts["wal"] = conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            facts["failures"] = conn.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        facts["error"] = str(exc)
    return facts


def _rows(path: Path) -> int:
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.1)
        try:
            return conn.execute("SELECT COUNT(*) FROM measurements").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


# -- running one case ---------------------------------------------------------------------------

@dataclass
class Outcome:
    """What one case did."""

    case: dict[str, Any]
    command: list[str] = field(default_factory=list)
    rc: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    timed_out: bool = False
    problems: list[str] = field(default_factory=list)  # found while running (faults, setup)
    before: dict[str, str | None] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    paths: dict[str, str] = field(default_factory=dict)
    skipped: str | None = None  # why the case cannot run here (see ``needs``)
    robot: tuple[str, str] | None = None  # (status, message) of a Robot case's test

    def transcript(self) -> str:
        """The command and its output, for a failure message."""
        return (f"$ {' '.join(self.command)}\nexit {self.rc} after {self.seconds:.1f} s\n"
                f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}")


def _env(case: dict[str, Any], ctx: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ATOMSIM_DEBUG", "COLUMNS")}
    env.update(NO_COLOR="1", TERM="dumb", COLUMNS="400", PYTHONUNBUFFERED="1")
    env.update({k: str(v).format(**ctx) for k, v in case.get("env", {}).items()})
    return env


def _hold_lock(path: str, seconds: float | None) -> subprocess.Popen:
    """Another process that takes the database's write lock (for ``seconds``, or until killed)."""
    script = ("import sqlite3, sys, time\n"
              "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "c.execute('BEGIN IMMEDIATE')\n"
              "print('locked', flush=True)\n"
              "time.sleep(float(sys.argv[2]))\n"
              "c.execute('ROLLBACK')\n")
    holder = subprocess.Popen([sys.executable, "-c", script, path, str(seconds or 3600)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked", "the lock holder did not start"
    return holder


def run_case(case: dict[str, Any], folder: Path) -> Outcome:
    """Make the files, run the command (or the fault scenario), observe the database."""
    folder.mkdir(parents=True)
    out = Outcome(case, skipped=nn_recipes.unmet(case))
    if out.skipped:
        return out
    ctx = {"tmp": str(folder)}
    holder = None
    try:
        for placeholder, spec in case.get("files", {}).items():
            ctx[placeholder] = make(spec, placeholder, folder)
        out.paths = ctx
        for placeholder in case.get("expect", {}):
            out.before[placeholder] = _digest(Path(ctx[placeholder]))
        out.command = nn_recipes.robot_command(case, folder) if case.get("robot") else \
            [str(ATOMSIM), *(a.format(**ctx) for a in case["args"])]
        env = _env(case, ctx)
        if case.get("lock"):
            holder = _hold_lock(ctx[case["lock"]], case.get("lock_seconds"))
        limit = case.get("file_size_limit")

        def preexec() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        started = time.monotonic()
        if case.get("fault"):
            _fault(case, out, env, folder, ctx)
        else:
            try:
                done = subprocess.run(out.command, capture_output=True, text=True, env=env,
                                      cwd=folder, timeout=case.get("timeout", 60),
                                      preexec_fn=preexec, stdin=subprocess.DEVNULL)
                out.rc, out.stdout, out.stderr = done.returncode, done.stdout, done.stderr
            except subprocess.TimeoutExpired as exc:
                out.timed_out = True
                out.stdout = (exc.stdout or b"").decode(errors="replace") \
                    if isinstance(exc.stdout, bytes) else exc.stdout or ""
                out.stderr = (exc.stderr or b"").decode(errors="replace") \
                    if isinstance(exc.stderr, bytes) else exc.stderr or ""
        out.seconds = time.monotonic() - started
        if case.get("robot"):
            out.robot = nn_recipes.robot_message(folder)
            if out.robot is not None:  # the whole message, for the words
                out.stdout += f"\n--- Robot: {out.robot[0]}: {out.robot[1]}\n"
    except Exception as exc:  # noqa: BLE001 - a broken recipe is a failed case, not a crash
        out.problems.append(f"the case could not be set up or run: {type(exc).__name__}: {exc}")
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        for placeholder in case.get("expect", {}):
            if placeholder in ctx:
                wal = Path(ctx[placeholder] + "-wal")
                out.after[placeholder] = {"digest": _digest(Path(ctx[placeholder])),
                                          "wal_bytes": wal.stat().st_size if wal.is_file()
                                          else 0, **_db_facts(Path(ctx[placeholder]))}
        for sub in folder.rglob("*"):  # undo chmods so that the folder can be removed
            if sub.is_dir():
                sub.chmod(0o755)
    return out


def _fault(case: dict[str, Any], out: Outcome, env: dict[str, str], folder: Path,
           ctx: dict[str, str]) -> None:
    """Start a sweep, wait until it has stored rows and has workers, then do the fault."""
    fault = case["fault"]
    db = Path(ctx["db"])
    proc = subprocess.Popen(out.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=folder, start_new_session=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + case.get("timeout", 60)
    workers: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        workers = [p for p in _children(proc.pid) if _alive(p)]
        if workers and _rows(db) >= case.get("fault_after_rows", 1):
            break
        time.sleep(0.02)
    if proc.poll() is not None or not workers:
        out.problems.append(f"the sweep ended (exit {proc.poll()}) or had no worker before "
                            f"the fault could be done (workers: {workers})")
    elif fault == "kill-main":
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    elif fault == "kill-worker":
        os.kill(workers[0], signal.SIGKILL)
    elif fault == "sigint":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        raise AssertionError(f"unknown fault {fault!r}")
    if fault in ("kill-main", "sigint") and workers:
        if fault == "sigint":
            try:
                proc.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        gone_by = time.monotonic() + 5.0
        while time.monotonic() < gone_by and any(_alive(w) for w in workers):
            time.sleep(0.05)
        alive = [w for w in workers if _alive(w)]
        if alive:
            out.problems.append(f"worker process(es) {alive} still running 5 s after "
                                f"{fault} of the main process")
            for w in alive:
                os.kill(w, signal.SIGKILL)
    try:
        out.stdout, out.stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        out.timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out.stdout, out.stderr = proc.communicate()
    out.rc = proc.returncode


def run_cases(cases: list[dict[str, Any]], root: Path) -> dict[str, Outcome]:
    """Run cases several at a time; saves a summary to build/badinput/results.json."""
    def one(index_case: tuple[int, dict[str, Any]]) -> Outcome:
        index, case = index_case
        return run_case(case, root / f"{index:03d}-{re.sub(r'[^A-Za-z0-9]+', '-', case['name'])}")

    with ThreadPoolExecutor(PARALLEL) as pool:
        results = {o.case["name"]: o for o in pool.map(one, enumerate(cases))}
    if len(results) == len(CASES):  # only a full run is a result worth keeping
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "cases": len(results), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "outcomes": {name: _verdict(o) for name, o in results.items()}}, indent=1))
    return results


# -- checking -----------------------------------------------------------------------------------

def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _json_error(stdout: str) -> dict[str, Any] | None:
    try:
        data = json.loads(stdout)
    except ValueError:
        return None
    return data.get("error") if isinstance(data, dict) else None


def check(out: Outcome) -> list[str]:
    """Every way the outcome differs from the case's expectation (empty: as expected)."""
    case = out.case
    problems = list(out.problems)
    output = out.stdout + out.stderr
    if out.timed_out:
        return [*problems, f"hang: no exit within {case.get('timeout', 60)} s"]
    if "Traceback (most recent call last)" in output:
        problems.append("traceback in the output")
    if out.rc == 70 or "internal error" in output.lower():
        problems.append("internal error (an exception AtomSim did not name)")
    if out.rc != case["exit"]:
        problems.append(f"exit code {out.rc}, expected {case['exit']}")
    if case.get("robot"):
        problems += nn_recipes.robot_problems(case, out.robot)
    elif case.get("error"):
        if "--json" in case["args"]:
            error = _json_error(out.stdout)
            if error is None:
                problems.append("--json: no JSON error object on stdout")
            elif error.get("type") != case["error"]:
                problems.append(f"error {error.get('type')}, expected {case['error']}")
        elif "error:" not in out.stderr:
            problems.append("no 'error:' line on stderr")
    for word in case.get("words", []):
        if _norm(word) not in _norm(output):
            problems.append(f"output lacks {word!r}")
    for word in case.get("not_words", []):
        if _norm(word) in _norm(output):
            problems.append(f"output holds {word!r}, which it must not")
    for placeholder, want in case.get("expect", {}).items():
        problems += _check_db(placeholder, want, out.before.get(placeholder),
                              out.after.get(placeholder, {}))
    return problems


def _check_db(name: str, want: Any, before: str | None, after: dict[str, Any]) -> list[str]:
    if want == "unchanged":  # the file's bytes, and no committed frames waiting in a WAL
        problems = [] if after.get("digest") == before else [f"{name} was modified"]
        if after.get("wal_bytes", 0) > 32 and before is not None:
            problems.append(f"{name} was modified (its -wal file holds frames)")
        return problems
    if want == "absent":
        return [] if not after.get("exists") else [f"{name} exists, expected absent"]
    if want == "exists":
        return [] if after.get("exists") else [f"{name} does not exist"]
    if isinstance(want, int):
        want = {"rows": want}
    problems = []
    for key, value in want.items():
        if key == "min_rows":
            if after.get("rows", 0) < value:
                problems.append(f"{name} holds {after.get('rows')} rows, expected >= {value}")
        elif after.get(key) != value:
            problems.append(f"{name}: {key} is {after.get(key)!r}, expected {value!r}")
    return problems


def _verdict(out: Outcome) -> str:
    if out.skipped:
        return "skipped"
    problems = check(out)
    if not problems:
        return "as expected"
    first = problems[0]
    for label in ("hang", "traceback", "internal error", "exit code", "error ", "--json",
                  "output lacks", "was modified", "holds", "worker", "a Python exception",
                  "the test ended", "Robot wrote no"):
        if first.startswith(label) or label in first:
            return {"hang": "hang", "traceback": "traceback", "internal error": "internal error",
                    "exit code": "wrong exit code", "error ": "wrong error name",
                    "--json": "no JSON error", "output lacks": "message lacks words",
                    "was modified": "database modified", "holds": "lost or wrong rows",
                    "worker": "orphaned workers", "a Python exception": "traceback",
                    "the test ended": "wrong exit code", "Robot wrote no": "no result"}[label]
    return "database wrong" if ":" in first else first


def summary(results: dict[str, Outcome]) -> str:
    """Corpus size, expected outcomes, actual outcomes, and the cases that failed."""
    by_verb: dict[str, int] = {}
    expected: dict[str, int] = {}
    actual: dict[str, int] = {}
    failing = []
    for name, out in results.items():
        by_verb[out.case["verb"]] = by_verb.get(out.case["verb"], 0) + 1
        kind = expected_outcome(out.case)
        expected[kind] = expected.get(kind, 0) + 1
        verdict = _verdict(out)
        actual[verdict] = actual.get(verdict, 0) + 1
        if verdict not in ("as expected", "skipped"):
            failing.append(f"  {name}: {'; '.join(check(out))}")
    lines = [f"bad-input corpus: {len(results)} case(s) run of {len(CASES)} "
             f"({', '.join(f'{v} {n}' for v, n in sorted(by_verb.items()))})",
             "  expected: " + ", ".join(f"{k} {n}" for k, n in sorted(expected.items())),
             "  actual:   " + ", ".join(f"{k} {n}" for k, n in sorted(actual.items()))]
    slowest = sorted(results.values(), key=lambda o: -o.seconds)[:8]
    lines.append("  slowest: " + ", ".join(f"{o.case['name']} {o.seconds:.1f} s"
                                           for o in slowest))
    return "\n".join(lines + failing)
