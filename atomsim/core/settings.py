"""Typed settings: one frozen dataclass per verb, the single declaration of every default.

Values are layered: the defaults below < the project file ``atomsim.toml`` (one section per
verb, e.g. ``[run]``, ``[sweep]``, ``[db.query]``) < command-line flags. Flag names come from
the field names (``max_instructions`` -> ``--max-instructions``); the help text, ranges and
choices come from the field's metadata, so a setting is declared exactly once.

The settings live in ``core`` (the lowest layer, as pyOCD keeps its options registry in its
core) so that the library layers read their defaults from here too: the emulator's instruction
budget, the profiler's kernel variant and budget and the sweep's batch size are these fields,
not copies of them. Library code that is called without the CLI therefore behaves like the CLI
with no project file and no flags.

A sub-verb's settings class extends its verb's (``DbQuerySettings(DbSettings)``); its section
is dotted (``db.query``) and layers over the verb's own section (``[db]`` then ``[db.query]``).
"""

from __future__ import annotations

import math
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from atomsim.core.errors import ConfigError

PROJECT_FILE = "atomsim.toml"
INT64_MAX = 2**63 - 1
_SUPPORTED = (bool, int, float, str, Path)


def setting(default: Any = None, help: str = "", *, min: float | None = None,
            max: float | None = None, choices: Iterable[str] | None = None,
            required: bool = False, check: Callable[[Any], str | None] | None = None) -> Any:
    """A settings field: its default, help text and the checks every source must pass.

    ``min``/``max`` bound numbers (inclusive); ``choices`` lists the allowed strings;
    ``required`` means the default ``None`` must be replaced by the file or a flag; ``check``
    returns a reason when a value is wrong (None when it is right).
    """
    return field(default=default, metadata={
        "help": help, "min": min, "max": max, "required": required, "check": check,
        "choices": tuple(choices) if choices is not None else None})


def dask_address(value: str) -> str | None:
    """Why ``value`` is not a Dask scheduler address (``tcp://host:port``), or None."""
    scheme, sep, rest = value.partition("://")
    if not sep:
        scheme, rest = "tcp", value
    if scheme not in ("tcp", "tls", "ws", "wss", "ucx", "inproc"):
        return f"unknown scheme {scheme!r} (use tcp://host:port)"
    if scheme == "inproc":
        return None if rest else "inproc:// needs an address"
    host, colon, port = rest.rpartition(":")
    if not colon or not host.strip("[]") or "/" in rest:
        return "expected tcp://host:port"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"port {port!r} is not a number in 1..65535"
    return None


# -- the settings, one class per verb ------------------------------------------------------------

@dataclass(frozen=True)
class RunSettings:
    """``atomsim run``: run one ELF on an emulated board."""

    section: ClassVar[str | None] = "run"
    board: str | None = setting(help="board id (see `atomsim boards`)", required=True)
    max_instructions: int = setting(
        2_000_000_000, "instruction budget; a run that reaches it ends with status timeout",
        min=1, max=INT64_MAX)


@dataclass(frozen=True)
class ProfileSettings:
    """The profiler's own settings (library defaults; no verb of its own yet, so no section)."""

    section: ClassVar[str | None] = None
    variant: str = setting("cortex_m_dsp", "kernel variant: a folder under firmware/kernels/")
    max_instructions: int = setting(4_000_000_000, "instruction budget of one harness run",
                                    min=1, max=INT64_MAX)


@dataclass(frozen=True)
class BuildSettings:
    """``atomsim build``: build an example firmware for a board."""

    section: ClassVar[str | None] = "build"
    board: str | None = setting(help="board id (see `atomsim boards`)", required=True)


@dataclass(frozen=True)
class SweepSettings:
    """``atomsim sweep``: profile a list or space of atoms into AtomDB."""

    section: ClassVar[str | None] = "sweep"
    board: str | None = setting(help="board id (see `atomsim boards`)", required=True)
    atoms: str | None = setting(help="a CSV in the paper's layout, or a space name (table2)",
                                required=True)
    db: Path | None = setting(help="AtomDB file (SQLite)", required=True)
    variant: str = setting(ProfileSettings.variant, "kernel variant")
    workers: int | None = setting(None, "local worker processes (default: one per core)",
                                  min=1, max=4096)
    batch_size: int = setting(8, "atoms per batch (one database transaction each)",
                              min=1, max=1_000_000)
    scheduler: str | None = setting(None, "Dask scheduler address, e.g. tcp://host:8786",
                                    check=dask_address)


@dataclass(frozen=True)
class DbSettings:
    """``atomsim db``: what every db sub-verb shares (section ``[db]``)."""

    section: ClassVar[str | None] = "db"
    db: Path | None = setting(help="AtomDB file (SQLite)", required=True)
    board: str | None = setting(help="only this board")


@dataclass(frozen=True)
class DbStatsSettings(DbSettings):
    """``atomsim db stats``."""

    section: ClassVar[str | None] = "db.stats"


@dataclass(frozen=True)
class DbQuerySettings(DbSettings):
    """``atomsim db query``."""

    section: ClassVar[str | None] = "db.query"
    type: str | None = setting(help="only this atom type (e.g. Conv2d)")
    variant: str | None = setting(help="only this kernel variant")
    source: str | None = setting(help="only this source (emulator, board, import)")
    limit: int = setting(50, "rows to show; 0 shows every row", min=0, max=INT64_MAX)


@dataclass(frozen=True)
class DbExportSettings(DbSettings):
    """``atomsim db export``."""

    section: ClassVar[str | None] = "db.export"
    out: Path | None = setting(help="output file, .csv or .parquet", required=True)
    format: str | None = setting(help="file format; must match the suffix of --out",
                                 choices=("csv", "parquet"))


@dataclass(frozen=True)
class DbImportSettings(DbSettings):
    """``atomsim db import``."""

    section: ClassVar[str | None] = "db.import"
    source: str | None = setting(
        help="source of rows whose file has no source column (default: keep the file's, "
             "else import)")


@dataclass(frozen=True)
class ReportSettings:
    """``atomsim report``: what every report shares (section ``[report]``)."""

    section: ClassVar[str | None] = "report"
    db: Path | None = setting(help="AtomDB file (SQLite)", required=True)
    board: str | None = setting(help="board id (see `atomsim boards`)", required=True)


@dataclass(frozen=True)
class ReportGuidelinesSettings(ReportSettings):
    """``atomsim report guidelines``."""

    section: ClassVar[str | None] = "report.guidelines"
    out: Path | None = setting(help="output directory for the plots and the summary",
                               required=True)


@dataclass(frozen=True)
class ProfileModelSettings:
    """``atomsim profile MODEL --board B``: a whole network on emulated boards."""

    section: ClassVar[str | None] = "profile"
    many_boards: ClassVar[bool] = True  # board may be a comma list or "all" (checked by the verb)
    board: str | None = setting(help="board id (see `atomsim boards`), a comma list, or 'all'",
                                required=True)
    variant: str = setting(ProfileSettings.variant, "kernel variant")
    seed: int = setting(0, "seed of the input (and of the weights of configs)", min=0,
                        max=INT64_MAX)
    budget: str | None = setting(None, "budgets, e.g. latency_ms=500,sram_kb=320,flash_kb=1024")
    junit: Path | None = setting(None, "write one JUnit test case per budget and board here")
    plot: Path | None = setting(None, "write the SRAM / Flash per layer plot here (PNG)")
    db: Path | None = setting(None, "AtomDB file: adds whole-network vs sum-of-atoms additivity")


SETTINGS: tuple[type, ...] = (RunSettings, BuildSettings, SweepSettings, DbSettings,
                              DbStatsSettings, DbQuerySettings, DbExportSettings,
                              DbImportSettings, ReportSettings, ReportGuidelinesSettings,
                              ProfileModelSettings)


# -- types and checks ----------------------------------------------------------------------------

def field_type(cls: type, f: Field) -> tuple[type, bool]:
    """(the value type, whether None is allowed) of a settings field."""
    hint = typing.get_type_hints(cls)[f.name]
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(args) < len(typing.get_args(hint))
        if len(args) != 1:
            raise TypeError(f"{cls.__name__}.{f.name}: one type (or type | None) per setting")
        hint = args[0]
    if hint not in _SUPPORTED:
        raise TypeError(f"{cls.__name__}.{f.name}: unsupported setting type {hint!r}")
    return hint, optional


def settings_fields(cls: type) -> tuple[Field, ...]:
    """The settings fields of ``cls`` (every dataclass field)."""
    return fields(cls)


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
               Path: "a path (string)"}


def coerce(cls: type, f: Field, value: Any, where: str) -> Any:
    """``value`` (from a TOML file or a parsed flag) as ``f``'s type, checked; else ConfigError.

    ``where`` names the source for the message, e.g. ``atomsim.toml: [run] max_instructions``
    or ``--max-instructions``.
    """
    kind, optional = field_type(cls, f)
    if value is None and optional:
        return None
    ok = {bool: isinstance(value, bool),
          int: isinstance(value, int) and not isinstance(value, bool),
          float: isinstance(value, int | float) and not isinstance(value, bool),
          str: isinstance(value, str),
          Path: isinstance(value, str | Path)}[kind]
    if not ok:
        raise ConfigError(f"{where}: expected {_TYPE_WORDS[kind]}, got "
                          f"{type(value).__name__} {value!r}")
    if kind is Path:
        value = Path(value)
        if not str(value).strip():
            raise ConfigError(f"{where}: the path is empty")
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    meta = f.metadata
    lo, hi = meta.get("min"), meta.get("max")
    if kind in (int, float) and ((lo is not None and value < lo)
                                 or (hi is not None and value > hi)):
        bounds = (f">= {lo}" if hi is None else f"<= {hi}" if lo is None
                  else f">= {lo} and < 2**63" if hi == INT64_MAX
                  else f"between {lo} and {hi}")
        raise ConfigError(f"{where}: must be {bounds}, got {value}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ConfigError(f"{where}: must be one of {', '.join(meta['choices'])}, "
                          f"got {value!r}")
    if kind is str and not value.strip():
        raise ConfigError(f"{where}: must not be empty")
    check = meta.get("check")
    if check is not None and (reason := check(value)) is not None:
        raise ConfigError(f"{where}: {value!r}: {reason}")
    return value


# -- the project file ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ProjectFile:
    """The parsed ``atomsim.toml`` (empty when there is none) and where it came from."""

    path: Path | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def table(self, section: str) -> Mapping[str, Any]:
        """The table at a dotted section name (empty when absent)."""
        node: Any = self.data
        for part in section.split("."):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        return node if isinstance(node, Mapping) else {}


def load_project_file(path: str | Path | None = None, *, cwd: Path | None = None,
                      extra_sections: Iterable[str] = ()) -> ProjectFile:
    """Read ``path`` (must exist), else ``./atomsim.toml`` if present; check every section.

    Unknown sections and keys and wrongly typed values are ConfigErrors naming the key and the
    file. ``extra_sections`` are sections owned by verbs from other packages (entry points):
    their keys are checked when that verb runs.
    """
    if path is None:
        candidate = (cwd or Path.cwd()) / PROJECT_FILE
        if not candidate.is_file():
            return ProjectFile()
        path = candidate
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"project file {path} not found (or not a file)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the project file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    project = ProjectFile(path, data)
    check_project_file(project, SETTINGS, extra_sections)
    return project


def check_project_file(project: ProjectFile, classes: Iterable[type],
                       extra_sections: Iterable[str] = ()) -> None:
    """Every key of the file belongs to one of ``classes`` (by section) and has its type."""
    by_section = {c.section: c for c in classes if c.section}
    extra = set(extra_sections)

    def walk(table: Mapping[str, Any], prefix: str) -> None:
        cls = by_section.get(prefix)
        names = {f.name: f for f in settings_fields(cls)} if cls else {}
        for key, value in table.items():
            dotted = f"{prefix}.{key}" if prefix else key
            if dotted in by_section or (not prefix and key in extra):
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{project.path}: [{dotted}] must be a table, "
                                      f"got {value!r}")
                if dotted in by_section:
                    walk(value, dotted)
            elif key in names:
                coerce(cls, names[key], value, f"{project.path}: [{prefix}] {key}")
            else:
                known = sorted({*names, *(s.rpartition(".")[2] for s in by_section
                                          if s.rpartition(".")[0] == prefix), *(
                                   extra if not prefix else ())})
                what = f"[{prefix}] key {key!r}" if prefix else f"section [{key}]"
                raise ConfigError(f"{project.path}: unknown {what}; known: {', '.join(known)}")

    walk(project.data, "")


def resolve(cls: type, project: ProjectFile | None = None,
            flags: Mapping[str, Any] | None = None, *,
            flag_names: Mapping[str, str] | None = None) -> Any:
    """An instance of ``cls``: defaults < the project file's sections < ``flags``.

    ``flags`` holds only the options given on the command line (field name -> parsed value);
    ``flag_names`` maps a field to how the user spelt it (for messages; default ``--name``).
    """
    project = project or ProjectFile()
    names = {f.name: f for f in settings_fields(cls)}
    values: dict[str, Any] = {}
    section = getattr(cls, "section", None)
    if section and project.data:
        parts = section.split(".")
        for i in range(1, len(parts) + 1):
            sub = ".".join(parts[:i])
            for key, value in project.table(sub).items():
                if key in names:
                    values[key] = coerce(cls, names[key], value,
                                         f"{project.path}: [{sub}] {key}")
                elif not isinstance(value, Mapping):  # a table is a sub-verb's section
                    raise ConfigError(f"{project.path}: unknown [{sub}] key {key!r}; known: "
                                      f"{', '.join(sorted(names))}")
    for key, value in (flags or {}).items():
        if key not in names:
            raise ConfigError(f"unknown setting {key!r} for {cls.__name__}")
        spelt = (flag_names or {}).get(key, flag_name(key))
        values[key] = coerce(cls, names[key], value, spelt)
    result = replace(cls(), **values)
    for f in names.values():
        if f.metadata.get("required") and getattr(result, f.name) is None:
            hint = f" or set {f.name} in [{section}] of {PROJECT_FILE}" if section else ""
            raise ConfigError(f"missing setting {f.name}: give {flag_name(f.name)}{hint}")
    return result


def flag_name(name: str) -> str:
    """The command-line flag of a settings field: ``max_instructions`` -> ``--max-instructions``."""
    return "--" + name.replace("_", "-")

