"""Command-line options generated from the typed settings (atomsim.core.settings).

A settings field ``max_instructions: int`` becomes ``--max-instructions`` with an integer
parser and the field's help text; nothing about an option is declared twice. Options that the
user did not give are absent from the namespace (``argparse.SUPPRESS``), so the project file
can supply them: defaults < ``atomsim.toml`` < flags (see :func:`settings_for`).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from atomsim.core.errors import ConfigError
from atomsim.core.settings import (
    ProjectFile,
    field_type,
    flag_name,
    resolve,
    settings_fields,
)

SETTINGS_KEY = "_settings_class"


class UsageError(ConfigError):
    """A malformed command line (unknown option, missing or unparsable value)."""

    status = "usage-error"

    def __init__(self, message: str, usage: str = ""):
        self.usage = usage
        super().__init__(message)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of printing and exiting.

    The CLI then reports it like every other named error (as JSON with ``--json``).
    """

    def error(self, message: str):
        """Raise instead of ``sys.exit(2)``."""
        raise UsageError(f"{self.prog}: {message}", self.format_usage())


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:  # also for more digits than Python converts
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


_PARSE = {int: _int, float: _float, str: str, Path: Path}


def verb_parser(subparsers, name: str, help_: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A verb's parser with the options every verb has: ``--json`` and ``--config``."""
    parser = subparsers.add_parser(name, help=help_, description=help_, **kwargs)
    add_common(parser)
    return parser


def add_common(parser: argparse.ArgumentParser) -> None:
    """``--json`` and ``--config`` (absent from the namespace unless given)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine-readable output (errors too)")
    parser.add_argument("--config", type=Path, metavar="TOML", default=argparse.SUPPRESS,
                        help="project file (default: ./atomsim.toml when present)")


def add_settings(parser: argparse.ArgumentParser, cls: type) -> argparse.ArgumentParser:
    """Add one option per field of the settings class ``cls`` and remember the class."""
    for f in settings_fields(cls):
        kind, _ = field_type(cls, f)
        meta = f.metadata
        help_ = meta.get("help", "")
        if meta.get("choices"):
            help_ += f" (one of: {', '.join(meta['choices'])})"
        if meta.get("required"):
            help_ += " (required here or in atomsim.toml)"
        elif f.default is not None:
            help_ += f" (default: {f.default})"
        if kind is bool:
            parser.add_argument(flag_name(f.name), dest=f.name, help=help_,
                                action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS)
        else:
            parser.add_argument(flag_name(f.name), dest=f.name, help=help_, type=_PARSE[kind],
                                metavar=f.name.upper(), default=argparse.SUPPRESS)
    parser.set_defaults(**{SETTINGS_KEY: cls})
    return parser


def settings_for(args: argparse.Namespace, project: ProjectFile) -> Any:
    """The layered settings of the chosen verb (None when it has none); boards are checked."""
    cls = getattr(args, SETTINGS_KEY, None)
    if cls is None:
        return None
    flags = {f.name: getattr(args, f.name) for f in settings_fields(cls) if hasattr(args, f.name)}
    settings = resolve(cls, project, flags)
    board = getattr(settings, "board", None)
    if board is not None and not getattr(cls, "many_boards", False):
        from atomsim.boards import get_board

        get_board(board)  # ConfigError listing the valid boards
    return settings
