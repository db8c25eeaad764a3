"""The ``atomsim`` command line: settings layering, verbs from entry points, bad arguments.

Every case runs the installed ``atomsim`` console script in a subprocess, under a timeout, and
checks the exit code, the error's name and words, and that no Python traceback is printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest

from atomsim.cli import BUILTIN_VERBS, ENTRY_POINT_GROUP, INTERNAL_ERROR_EXIT, build_parser
from atomsim.core.errors import ConfigError, Timeout
from atomsim.core.settings import SETTINGS, flag_name

ATOMSIM = Path(sys.executable).with_name("atomsim")
TIMEOUT_S = 120


def atomsim(*argv, cwd: Path | None = None, env: dict | None = None, timeout=TIMEOUT_S):
    """Run the console script; a hang fails the test instead of stalling the suite."""
    if not ATOMSIM.exists():
        pytest.skip(f"the atomsim console script is not installed at {ATOMSIM}")
    return subprocess.run([str(ATOMSIM), *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


def assert_named_error(proc, code: int, *words: str, json_out: bool = False) -> None:
    """Exit ``code``, ``words`` in the message, no traceback; a JSON error with --json."""
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    message = proc.stderr
    if json_out:
        error = json.loads(proc.stdout)["error"]
        assert error["type"] and error["exit_code"] == code
        message = error["message"]
    for word in words:
        assert word in message, message


@pytest.fixture(scope="module")
def bench_elf():
    """An example that runs for a long time (so a budget decides when it ends)."""
    from atomsim.boards import get_board
    from atomsim.target.firmware import build_example

    return build_example("bench", get_board("stm32f412"))


# -- settings: flag names from fields, layering through the real command --------------------------

@pytest.mark.unit
def test_every_option_of_every_verb_is_a_settings_field():
    parser = build_parser()

    def leaf_parsers(p: argparse.ArgumentParser):
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield p
        for sub in subs:
            for child in dict.fromkeys(sub.choices.values()):
                yield from leaf_parsers(child)

    settings_seen = set()
    for leaf in leaf_parsers(parser):
        cls = leaf.get_default("_settings_class")
        options = {o for a in leaf._actions for o in a.option_strings} - {
            "-h", "--help", "--json", "--config"}
        expected = {flag_name(f.name) for f in fields(cls)} if cls else set()
        assert options == expected, (leaf.prog, options ^ expected)
        settings_seen.add(cls)
    assert set(SETTINGS) - settings_seen <= {s for s in SETTINGS if s.section.count(".") == 0
                                            and any(c.section.startswith(s.section + ".")
                                                    for c in SETTINGS)}


@pytest.mark.firmware
def test_budget_layers_default_then_project_file_then_flag(tmp_path, bench_elf):
    (tmp_path / "atomsim.toml").write_text('[run]\nboard = "stm32f412"\n'
                                           "max_instructions = 1000\n")
    from_file = atomsim("run", bench_elf, "--json", cwd=tmp_path)
    assert from_file.returncode == Timeout.exit_code, from_file.stderr
    assert json.loads(from_file.stdout)["error"]["budget"] == 1000

    from_flag = atomsim("run", bench_elf, "--json", "--max-instructions", "2500", cwd=tmp_path)
    assert json.loads(from_flag.stdout)["error"]["budget"] == 2500

    other = tmp_path / "other.toml"
    other.write_text('[run]\nboard = "stm32f746"\nmax_instructions = 700\n')
    from atomsim.boards import get_board
    from atomsim.target.firmware import build_example

    f746 = build_example("bench", get_board("stm32f746"))
    explicit = atomsim("--config", other, "run", f746, "--json", cwd=tmp_path)
    out = json.loads(explicit.stdout)
    assert (out["board"], out["error"]["budget"]) == ("stm32f746", 700)


@pytest.mark.unit
@pytest.mark.parametrize("text, words", [
    ("[run]\nmax_instrutions = 5\n", ["max_instrutions", "[run]"]),
    ("[run]\nmax_instructions = \"many\"\n", ["[run] max_instructions", "integer"]),
    ("[sweap]\n", ["[sweap]"]),
])
def test_project_file_mistakes_name_the_key_and_the_file(tmp_path, text, words):
    (tmp_path / "atomsim.toml").write_text(text)
    proc = atomsim("boards", "--json", cwd=tmp_path)
    assert_named_error(proc, ConfigError.exit_code, str(tmp_path / "atomsim.toml"), *words,
                       json_out=True)
    missing = atomsim("--config", tmp_path / "nope.toml", "boards", cwd=tmp_path)
    assert_named_error(missing, ConfigError.exit_code, "nope.toml", "not found")


# -- bad arguments: a named error and its exit code, never a traceback or a hang ---------------

BAD = [
    # (name, argv, exit code, words in the message)
    ("negative budget", ["run", "{elf}", "--board", "stm32f412", "--max-instructions", "-5"],
     2, ["--max-instructions", ">= 1"]),
    ("zero budget", ["run", "{elf}", "--board", "stm32f412", "--max-instructions", "0"],
     2, ["--max-instructions"]),
    ("budget past 2**63", ["run", "{elf}", "--board", "stm32f412", "--max-instructions",
                           str(2**64 + 1)], 2, ["--max-instructions", "2**63"]),
    ("NaN budget", ["run", "{elf}", "--board", "stm32f412", "--max-instructions", "nan"],
     2, ["--max-instructions", "integer", "nan"]),
    ("inf budget", ["run", "{elf}", "--board", "stm32f412", "--max-instructions", "inf"],
     2, ["--max-instructions", "inf"]),
    ("1e20 budget", ["run", "{elf}", "--board", "stm32f412", "--max-instructions", "1e20"],
     2, ["--max-instructions", "1e20"]),
    ("5000-digit budget", ["run", "{elf}", "--board", "stm32f412", "--max-instructions",
                           "9" * 5000], 2, ["--max-instructions", "integer"]),
    ("unknown board", ["run", "{elf}", "--board", "stm32f999"], 2, ["stm32f999", "stm32f412"]),
    ("no board", ["run", "{elf}"], 2, ["missing setting board", "--board"]),
    ("unknown verb", ["frobnicate"], 2, ["frobnicate"]),
    ("unknown option", ["boards", "--colour"], 2, ["--colour"]),
    ("workers -1", ["sweep", "--board", "stm32f412", "--atoms", "table2", "--db", "{db}",
                    "--workers", "-1"], 2, ["--workers", "-1"]),
    ("workers 0", ["sweep", "--board", "stm32f412", "--atoms", "table2", "--db", "{db}",
                   "--workers", "0"], 2, ["--workers"]),
    ("batch size 0", ["sweep", "--board", "stm32f412", "--atoms", "table2", "--db", "{db}",
                      "--batch-size", "0"], 2, ["--batch-size"]),
    ("batch size -1", ["sweep", "--board", "stm32f412", "--atoms", "table2", "--db", "{db}",
                       "--batch-size", "-1"], 2, ["--batch-size", "-1"]),
    ("batch size NaN", ["sweep", "--board", "stm32f412", "--atoms", "table2", "--db", "{db}",
                        "--batch-size", "NaN"], 2, ["--batch-size"]),
    ("scheduler without port", ["sweep", "--board", "stm32f412", "--atoms", "table2", "--db",
                                "{db}", "--scheduler", "tcp://localhost"], 2,
     ["--scheduler", "host:port"]),
    ("scheduler bad scheme", ["sweep", "--board", "stm32f412", "--atoms", "table2", "--db",
                              "{db}", "--scheduler", "http://localhost:8786"], 2,
     ["--scheduler", "http"]),
    ("scheduler bad port", ["sweep", "--board", "stm32f412", "--atoms", "table2", "--db",
                            "{db}", "--scheduler", "tcp://localhost:123456"], 2,
     ["--scheduler", "port"]),
    ("atoms misspelt column", ["sweep", "--board", "stm32f412", "--atoms", "{misspelt}",
                               "--db", "{db}"], 2, ["activaton", "did you mean 'activation'"]),
    ("atoms UTF-16", ["sweep", "--board", "stm32f412", "--atoms", "{utf16}", "--db", "{db}"],
     2, ["UTF-8"]),
    ("atoms empty", ["sweep", "--board", "stm32f412", "--atoms", "{empty}", "--db", "{db}"],
     2, ["no atoms"]),
    ("atoms directory", ["sweep", "--board", "stm32f412", "--atoms", "{dir}", "--db", "{db}"],
     2, ["is a directory"]),
    ("query limit -1", ["db", "query", "--db", "{db}", "--limit", "-1"], 2, ["--limit"]),
    ("export format", ["db", "export", "--db", "{db}", "--out", "x.csv", "--format", "xlsx"],
     2, ["--format", "csv, parquet"]),
    ("report out is a file", ["report", "guidelines", "--db", "{db}", "--board", "stm32f412",
                              "--out", "{file}"], 2, ["--out", "is a file"]),
    ("report out under a file", ["report", "guidelines", "--db", "{db}", "--board",
                                 "stm32f412", "--out", "{file}/sub"], 2, ["--out", "cannot"]),
]


@pytest.mark.firmware
@pytest.mark.parametrize("json_out", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("name, argv, code, words", BAD, ids=[b[0] for b in BAD])
def test_bad_arguments_are_named_errors(tmp_path, bench_elf, name, argv, code, words, json_out):
    (tmp_path / "a_file").write_text("not a directory\n")
    header = "type,groups,c_in,h_in,w_in,k1,k2,c_out,h_out,w_out"
    (tmp_path / "misspelt.csv").write_text(f"{header},activaton\nConv2d,1,8,10,10,3,3,8,8,8,relu\n")
    (tmp_path / "utf16.csv").write_text(f"{header}\nConv2d,1,8,10,10,3,3,8,8,8\n",
                                        encoding="utf-16")
    (tmp_path / "empty.csv").write_text("")
    values = {"elf": bench_elf, "db": tmp_path / "x.db", "file": tmp_path / "a_file",
              "dir": tmp_path, **{n: tmp_path / f"{n}.csv" for n in ("misspelt", "utf16", "empty")}}
    argv = [a.format(**values) for a in argv] + (["--json"] if json_out else [])
    proc = atomsim(*argv, cwd=tmp_path, timeout=60)
    assert_named_error(proc, code, *words, json_out=json_out)
    assert not (tmp_path / "x.db").exists(), "a refused command must not create the database"


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process cannot write in (root ignores mode bits: use /sys then)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for candidate in (locked, Path("/sys/kernel")):
        try:
            (candidate / ".probe").write_text("x")
            (candidate / ".probe").unlink()
        except OSError:
            return candidate
    pytest.skip("no unwritable directory available (root, and /sys is writable)")


@pytest.mark.unit
def test_report_out_unwritable_directory(tmp_path):
    target = _unwritable_dir(tmp_path)
    proc = atomsim("report", "guidelines", "--db", tmp_path / "x.db", "--board", "stm32f412",
                   "--out", target, "--json")
    assert_named_error(proc, ConfigError.exit_code, "--out", "not writable", json_out=True)


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["file", "unwritable", "empty"])
def test_build_dir_must_be_a_writable_directory(tmp_path, kind):
    if kind == "file":
        value, words = tmp_path / "f", ["ATOMSIM_BUILD_DIR", "is a file"]
        value.write_text("x")
    elif kind == "unwritable":
        value, words = _unwritable_dir(tmp_path), ["ATOMSIM_BUILD_DIR", "not writable"]
    else:
        value, words = "", ["ATOMSIM_BUILD_DIR", "empty"]
    proc = atomsim("build", "hello", "--board", "stm32f412",
                   env={"ATOMSIM_BUILD_DIR": str(value)})
    assert_named_error(proc, ConfigError.exit_code, *words)


# -- db: --board filters stats, --limit is exact ---------------------------------------------

@pytest.fixture(scope="module")
def two_board_db(tmp_path_factory):
    """A real AtomDB with the same two small atoms swept on two boards by the CLI."""
    from atomsim.nn.atoms import Atom

    tmp = tmp_path_factory.mktemp("db")
    atoms = [Atom(type="add", c_in=8, h_in=h, w_in=h, c_out=8, h_out=h, w_out=h) for h in (4, 6)]
    path = tmp / "atoms.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(atoms[0].as_row()))
        writer.writeheader()
        writer.writerows(a.as_row() for a in atoms)
    db = tmp / "two.db"
    for board in ("stm32f412", "stm32h743"):
        proc = atomsim("sweep", "--board", board, "--atoms", path, "--db", db, "--workers", "1",
                       "--json", timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["measured"] == len(atoms)
    return db


@pytest.mark.firmware
def test_db_stats_board_filters(two_board_db):
    every = json.loads(atomsim("db", "stats", "--db", two_board_db, "--json").stdout)
    assert set(every["boards"]) == {"stm32f412", "stm32h743"}
    one = atomsim("db", "stats", "--db", two_board_db, "--board", "stm32h743", "--json")
    assert one.returncode == 0, one.stderr
    stats = json.loads(one.stdout)
    assert set(stats["boards"]) == {"stm32h743"}
    assert stats["measurements"] == every["boards"]["stm32h743"]["emulator"] == 2


@pytest.mark.firmware
def test_db_query_limit_is_exact(two_board_db):
    def rows(*extra):
        proc = atomsim("db", "query", "--db", two_board_db, "--json", *extra)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    assert len(rows()) == 4  # the default limit (50) is above the row count
    assert len(rows("--limit", "3")) == 3
    assert len(rows("--limit", "0")) == 4  # 0 shows every row
    assert len(rows("--limit", "1", "--board", "stm32f412")) == 1


# -- verbs from other packages, through packaging entry points --------------------------------

PLUGIN = '''
"""A verb from another distribution, found through the atomsim.verbs entry point group."""
from dataclasses import dataclass
from typing import ClassVar

from atomsim.core.errors import ConfigError
from atomsim.core.settings import setting


@dataclass(frozen=True)
class GreetSettings:
    section: ClassVar[str] = "greet"
    name: str = setting("world", "who to greet")
    times: int = setting(1, "how often", min=1, max=5)


SETTINGS = GreetSettings


def register(subparsers):
    return subparsers.add_parser("greet", help="say hello")


def run(args):
    if args.settings.name == "boom":
        raise RuntimeError("the plugin broke")
    if args.settings.name == "bad":
        raise ConfigError("bad name")
    print(" ".join(["hello " + args.settings.name] * args.settings.times))
    return 0
'''


@pytest.fixture
def plugin_site(tmp_path):
    """A tiny installed distribution (a dist-info with entry_points.txt) on PYTHONPATH."""
    site = tmp_path / "site"
    (site / "greetverb").mkdir(parents=True)
    (site / "greetverb" / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    dist = site / "greetverb-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: greetverb\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\ngreet = greetverb\nbroken = greetverb_missing.cli\n")
    return {"PYTHONPATH": str(site)}


@pytest.mark.unit
def test_entry_point_verbs_are_found_and_run(tmp_path, plugin_site):
    listing = atomsim("--help", env=plugin_site)
    assert listing.returncode == 0 and "greet" in listing.stdout and "broken" in listing.stdout
    assert atomsim("greet", env=plugin_site).stdout == "hello world\n"
    flagged = atomsim("greet", "--name", "AtomSim", "--times", "2", env=plugin_site)
    assert flagged.stdout == "hello AtomSim hello AtomSim\n", flagged.stderr
    (tmp_path / "atomsim.toml").write_text('[greet]\nname = "toml"\n')
    assert atomsim("greet", env=plugin_site, cwd=tmp_path).stdout == "hello toml\n"
    # the plugin's settings are checked like the built-in ones
    assert_named_error(atomsim("greet", "--times", "9", env=plugin_site), 2, "--times")
    (tmp_path / "atomsim.toml").write_text("[greet]\nnmae = 3\n")
    assert_named_error(atomsim("greet", env=plugin_site, cwd=tmp_path), 2, "nmae", "[greet]")


@pytest.mark.unit
def test_a_broken_entry_point_fails_only_its_own_verb(plugin_site):
    assert atomsim("boards", "--json", env=plugin_site).returncode == 0
    proc = atomsim("broken", env=plugin_site)
    assert_named_error(proc, ConfigError.exit_code, "broken", "greetverb_missing",
                       "cannot be loaded")


@pytest.mark.unit
def test_errors_of_a_verb_are_named_and_internal_errors_are_one_line(plugin_site):
    named = atomsim("greet", "--name", "bad", "--json", env=plugin_site)
    assert_named_error(named, ConfigError.exit_code, "bad name", json_out=True)
    internal = atomsim("greet", "--name", "boom", env=plugin_site)
    assert_named_error(internal, INTERNAL_ERROR_EXIT, "internal error", "RuntimeError",
                       "the plugin broke", "ATOMSIM_DEBUG=1")
    as_json = atomsim("greet", "--name", "boom", "--json", env=plugin_site)
    assert_named_error(as_json, INTERNAL_ERROR_EXIT, "internal error", json_out=True)
    assert json.loads(as_json.stdout)["error"]["type"] == "InternalError"
    debug = atomsim("greet", "--name", "boom", env={**plugin_site, "ATOMSIM_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


@pytest.mark.unit
def test_builtin_verbs_cannot_be_shadowed(tmp_path, plugin_site):
    dist = Path(plugin_site["PYTHONPATH"]) / "greetverb-0.1.dist-info"
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nboards = greetverb\n")
    proc = atomsim("boards", "--json", env=plugin_site)
    assert proc.returncode == 0 and {b["id"] for b in json.loads(proc.stdout)} >= {"stm32f412"}
    assert set(BUILTIN_VERBS) >= {"boards", "run", "sweep", "db"}
