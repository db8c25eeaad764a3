"""Typed settings (atomsim.core.settings): layering, checks, one declaration per default."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from atomsim.core.errors import ConfigError
from atomsim.core.paths import writable_dir
from atomsim.core.settings import (
    SETTINGS,
    DbQuerySettings,
    ProfileSettings,
    ProjectFile,
    RunSettings,
    SweepSettings,
    dask_address,
    field_type,
    flag_name,
    load_project_file,
    resolve,
)

pytestmark = pytest.mark.unit
ATOMSIM = Path(__file__).resolve().parents[1] / "atomsim"


def _project(tmp_path: Path, text: str) -> ProjectFile:
    path = tmp_path / "atomsim.toml"
    path.write_text(text)
    return load_project_file(path)


def test_defaults_then_file_then_flags(tmp_path):
    assert resolve(RunSettings, flags={"board": "b"}).max_instructions == \
        RunSettings.max_instructions
    project = _project(tmp_path, '[run]\nboard = "stm32f412"\nmax_instructions = 1234\n')
    from_file = resolve(RunSettings, project)
    assert (from_file.board, from_file.max_instructions) == ("stm32f412", 1234)
    flagged = resolve(RunSettings, project, {"max_instructions": 99})
    assert (flagged.board, flagged.max_instructions) == ("stm32f412", 99)


def test_sub_verb_sections_layer_over_the_verb_section(tmp_path):
    project = _project(tmp_path, '[db]\ndb = "a.sqlite"\nboard = "stm32f746"\n'
                                 '[db.query]\nboard = "stm32h743"\nlimit = 7\n')
    s = resolve(DbQuerySettings, project)
    assert (s.db, s.board, s.limit) == (Path("a.sqlite"), "stm32h743", 7)


def test_found_in_the_working_directory_only_when_present(tmp_path):
    assert load_project_file(cwd=tmp_path).data == {}
    (tmp_path / "atomsim.toml").write_text("[sweep]\nbatch_size = 3\n")
    assert load_project_file(cwd=tmp_path).table("sweep") == {"batch_size": 3}
    with pytest.raises(ConfigError, match="not found"):
        load_project_file(tmp_path / "missing.toml")


@pytest.mark.parametrize("text, words", [
    ("[run]\nmax_instrutions = 5\n", ["[run]", "max_instrutions", "max_instructions"]),
    ("[sweap]\nworkers = 2\n", ["section [sweap]", "sweep"]),
    ("[db]\nlimit = 5\n", ["[db]", "'limit'", "query"]),
    ("[db.query]\nlimmit = 5\n", ["[db.query]", "limmit"]),
    ('[run]\nmax_instructions = "5"\n', ["[run] max_instructions", "integer", "str"]),
    ("[run]\nmax_instructions = 5.0\n", ["max_instructions", "integer", "float"]),
    ("[run]\nmax_instructions = true\n", ["max_instructions", "integer", "bool"]),
    ("[run]\nmax_instructions = nan\n", ["max_instructions", "integer"]),
    ("[run]\nmax_instructions = 0\n", ["max_instructions", ">= 1"]),
    ("[sweep]\nworkers = -1\n", ["[sweep] workers", "between 1 and"]),
    ("[sweep]\nbatch_size = 0\n", ["batch_size", "between 1 and"]),
    ('[sweep]\nscheduler = "tcp//x"\n', ["scheduler", "tcp://host:port"]),
    ('[db.export]\nformat = "xlsx"\n', ["format", "csv, parquet"]),
    ("[run]\nboard = 7\n", ["[run] board", "string"]),
    ("run = 5\n", ["[run] must", "table"]),
    ("[run\n", ["not valid TOML"]),
])
def test_bad_project_files_name_the_key_and_the_file(tmp_path, text, words):
    with pytest.raises(ConfigError) as err:
        _project(tmp_path, text)
    message = str(err.value)
    assert str(tmp_path / "atomsim.toml") in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("flags, words", [
    ({"max_instructions": -5}, ["--max-instructions", ">= 1"]),
    ({"max_instructions": 0}, ["--max-instructions"]),
    ({"max_instructions": 2**63}, ["--max-instructions", "2**63"]),
    ({"max_instructions": 2**64 + 3}, ["--max-instructions"]),
])
def test_flag_values_are_range_checked(flags, words):
    with pytest.raises(ConfigError) as err:
        resolve(RunSettings, flags={"board": "b", **flags})
    for word in words:
        assert word in str(err.value)


def test_required_settings_say_where_to_give_them():
    with pytest.raises(ConfigError, match=r"missing setting board: give --board or set board "
                                          r"in \[run\] of atomsim.toml"):
        resolve(RunSettings)


def test_largest_budget_is_accepted():
    assert resolve(RunSettings, flags={"board": "b", "max_instructions": 2**63 - 1})


@pytest.mark.parametrize("address, ok", [
    ("tcp://127.0.0.1:8786", True), ("tls://scheduler.example:8786", True),
    ("127.0.0.1:8786", True), ("tcp://[::1]:8786", True), ("inproc://1.2/3", True),
    ("tcp://host", False), ("tcp://:8786", False), ("tcp://host:99999", False),
    ("tcp://host:abc", False), ("http://host:8786", False), ("tcp://host:8786/x", False),
    ("", False),
])
def test_scheduler_addresses(address, ok):
    assert (dask_address(address) is None) is ok


def test_every_setting_has_a_supported_type_help_and_a_flag():
    for cls in (*SETTINGS, ProfileSettings):
        for f in fields(cls):
            field_type(cls, f)  # raises for a type the CLI cannot parse
            assert f.metadata["help"], f"{cls.__name__}.{f.name} has no help text"
            assert flag_name(f.name) == "--" + f.name.replace("_", "-")


def test_each_default_is_declared_once():
    """The library layers read these defaults from core.settings; no second literal."""
    from atomsim.emulator import machine
    from atomsim.profiling import profiler

    assert machine.DEFAULT_MAX_INSTRUCTIONS is RunSettings.max_instructions
    assert profiler.MAX_INSTRUCTIONS is ProfileSettings.max_instructions
    assert profiler.DEFAULT_VARIANT is ProfileSettings.variant is SweepSettings.variant
    # a module constant or a typed parameter default with a literal value
    pattern = re.compile(r"^\s*\w*(MAX_INSTRUCTIONS|BATCH_SIZE|WORKERS)\s*=\s*\d"
                         r"|\b(max_instructions|batch_size|workers)\s*:[^=\n]*=\s*\d"
                         rf"|(?<![=!<>])=\s*[\"']{ProfileSettings.variant}[\"']")
    offenders = [f"{p.relative_to(ATOMSIM)}:{n}: {line.strip()}"
                 for p in ATOMSIM.rglob("*.py") if p.name != "settings.py"
                 for n, line in enumerate(p.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert not offenders, offenders


def test_writable_dir_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        writable_dir(tmp_path / "f", "--out")
    with pytest.raises(ConfigError, match="cannot create"):
        writable_dir(tmp_path / "f" / "sub", "--out")
    assert writable_dir(tmp_path / "new" / "dir", "--out").is_dir()
