"""The ``atomsim`` command line: one verb per module, typed settings, named errors.

Verbs: boards, build, run, demo, sweep, db, report (modules of this package), plus the verbs
that other installed packages (``calibration``, ``atomnet``) declare as packaging entry points
in the group ``atomsim.verbs``. ``atomsim`` never imports those packages by name; it loads an
entry point only when its verb is asked for, so a heavy dependency costs nothing elsewhere.

A verb, built-in or from an entry point, is a module (or any object) with:

``register(subparsers) -> argparse.ArgumentParser``
    Add the verb's parser with ``subparsers.add_parser(NAME, help=...)``, where NAME is the
    entry point's name, and its arguments; return that parser. Keep the module's imports light
    (import heavy things inside ``run``). :func:`atomsim.cli.options.verb_parser` adds the
    common ``--json`` and ``--config`` options.
``run(args: argparse.Namespace) -> int``
    Do the work and return the exit code. Raise an ``atomsim.core.errors.AtomSimError`` for
    anything the user can fix: the CLI prints it (as JSON with ``--json``) and exits with its
    code; any other exception is an internal error (exit 70).
``SETTINGS`` (optional)
    A frozen dataclass of settings (see ``atomsim.core.settings.setting``). Its fields become
    flags, the project file's ``[NAME]`` section layers under them, and ``run`` finds the
    resolved instance at ``args.settings``. A verb with sub-commands calls
    ``atomsim.cli.options.add_settings(subparser, Cls)`` on each instead (``Cls.section``
    such as ``"NAME.train"``); the chosen one is resolved the same way.

An entry point in the plugin's pyproject.toml::

    [project.entry-points."atomsim.verbs"]
    calibrate = "calibration.cli"

Every user mistake ends with ``error: ...`` on stderr (``{"error": {...}}`` on stdout with
``--json``) and the error's exit code (atomsim/core/errors.py), never a traceback. An
unexpected exception prints one line and exits 70; ``ATOMSIM_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from atomsim.cli.options import (
    Parser,
    UsageError,
    add_common,
    add_settings,
    settings_for,
)
from atomsim.core.errors import AtomSimError, ConfigError
from atomsim.core.settings import load_project_file

BUILTIN_VERBS = ("boards", "build", "run", "demo", "sweep", "db", "report", "profile")
ENTRY_POINT_GROUP = "atomsim.verbs"
INTERNAL_ERROR_EXIT = 70  # EX_SOFTWARE (sysexits.h)


@functools.cache
def verb_entry_points() -> dict[str, metadata.EntryPoint]:
    """The installed entry points of ``atomsim.verbs`` by verb name (first one wins)."""
    found: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in BUILTIN_VERBS:
            found.setdefault(ep.name, ep)
    return found


def _chosen_verb(argv: Sequence[str]) -> str | None:
    pre = Parser(add_help=False)
    pre.add_argument("--config")
    pre.add_argument("verb", nargs="?")
    try:
        return pre.parse_known_args(list(argv))[0].verb
    except UsageError:
        return None


def _load_entry_point(ep: metadata.EntryPoint):
    dist = ep.dist.name if ep.dist else "?"
    try:
        module = ep.load()
    except Exception as exc:  # noqa: BLE001 - any import failure of someone else's package
        raise ConfigError(f"verb {ep.name!r} (entry point {ep.value} of {dist}) cannot be "
                          f"loaded: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, "register", None)) or not callable(
            getattr(module, "run", None)):
        raise ConfigError(f"verb {ep.name!r} ({ep.value} of {dist}) lacks register() or run()")
    return module


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The full parser; the entry-point verb named in ``argv`` (if any) is loaded."""
    parser = Parser(prog="atomsim", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, metavar="TOML", default=None,
                        help="project file (default: ./atomsim.toml when present)")
    parser.set_defaults(json=False)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name in BUILTIN_VERBS:
        module = importlib.import_module(f"atomsim.cli.{name}")
        module.register(sub).set_defaults(_run=module.run)
    chosen = _chosen_verb(argv)
    for name, ep in verb_entry_points().items():
        if name != chosen:
            sub.add_parser(name, help=f"from {ep.value} (see atomsim {name} --help)")
            continue
        module = _load_entry_point(ep)
        verb = module.register(sub)
        if not isinstance(verb, argparse.ArgumentParser):
            raise ConfigError(f"verb {name!r}: register() must return its ArgumentParser")
        verb.set_defaults(_run=module.run)
        if not any("--config" in a.option_strings for a in verb._actions):
            add_common(verb)
        if getattr(module, "SETTINGS", None) is not None:
            add_settings(verb, module.SETTINGS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``atomsim`` script: parse, layer the settings, run the verb."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = argparse.Namespace(json="--json" in argv)
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        project = load_project_file(args.config, extra_sections=verb_entry_points())
        args.settings = settings_for(args, project)
        return args._run(args)
    except AtomSimError as exc:
        _report(args, exc, type(exc).__name__, exc.status, str(exc))
        if isinstance(exc, UsageError) and exc.usage and not args.json:
            sys.stderr.write(exc.usage)
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    except BrokenPipeError:  # `atomsim db query | head`: the reader left; say nothing
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        if os.environ.get("ATOMSIM_DEBUG", "") not in ("", "0"):
            raise
        detail = (str(exc).strip().splitlines() or [""])[0]
        _report(args, exc, "InternalError", "internal-error",
                f"internal error: {type(exc).__name__}: {detail} -- this is a bug in AtomSim; "
                "please report it with the output of the same command run with ATOMSIM_DEBUG=1")
        return INTERNAL_ERROR_EXIT


def _report(args, exc: BaseException, type_: str, status: str, message: str) -> None:
    from rich.markup import escape

    from atomsim.cli.output import err_console, print_json

    if getattr(args, "json", False):
        error = {"type": type_, "message": message,
                 "exit_code": getattr(exc, "exit_code", INTERNAL_ERROR_EXIT)}
        if type_ == "InternalError":
            error["exception"] = type(exc).__name__
        print_json({"status": status, "error": error})
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True,
                      soft_wrap=True)
