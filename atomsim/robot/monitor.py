"""The subset of Renode's monitor language that AtomSim's emulator understands.

An :class:`Emulation` holds named machines, the monitor's ``$variables`` and macros, and
executes one monitor command at a time (``execute``) or a whole ``.resc`` script (``include``).
A machine gets its board from the platform file it loads: the board in ``atomsim.boards``
whose ``platform_path`` is that file. Emulated time runs only when asked (``advance``), in
slices of emulated time, every started machine by the same amount: the host's speed never
changes what a test sees. A command outside the subset is an error naming it, never ignored.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from atomsim.boards import Board, board_ids, get_board
from atomsim.core.errors import ConfigError
from atomsim.core.paths import REPO_ROOT
from atomsim.emulator.machine import Machine
from atomsim.target.backend import Backend, RunResult

SLICE_SECONDS = 1e-3  # emulated time run between two checks of a waiting keyword

SUPPORTED = (
    "mach create [\"name\"]", "mach set \"name\"|index", "machine LoadPlatformDescription @file",
    "machine LoadPlatformDescriptionFromString \"...\"", "sysbus LoadELF @file|$var",
    "sysbus ReadDoubleWord addr", "sysbus WriteDoubleWord addr value", "cpu PC",
    "cpu VectorTableOffset addr", "cpu PerformanceInMips n", "start", "pause",
    "emulation RunFor \"seconds\"", "include @file.resc", "using sysbus", "$var=value",
    "$var?=value", "macro name \"\"\"...\"\"\"", "runMacro $name",
)

_ASSIGN_RE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)\s*(\?=|=)\s*(.+)$")
_DECL_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([A-Za-z_][\w.]*)\s*@")


@dataclass
class MachineSlot:
    """One ``mach create``: the machine exists once a platform file gives it a board."""

    name: str
    machine: Backend | None = None
    renode_only: list[str] = field(default_factory=list)  # from LoadPlatformDescriptionFromString
    elf: Path | None = None

    @property
    def board(self) -> Board | None:
        """The board, once a platform is loaded."""
        return self.machine.board if self.machine is not None else None

    def seconds(self) -> float:
        """Emulated time of this machine: modelled cycles at the board clock."""
        if self.machine is None:
            return 0.0
        return self.machine.cycles() / self.machine.board.clock_hz

    def ended(self) -> RunResult | None:
        """The final result once the firmware has stopped (exit, fault, halt), else None."""
        return self.machine.finished if self.machine is not None else None


@dataclass
class WaitOutcome:
    """How a wait ended: ``matched``, ``ended`` (the firmware stopped) or ``timeout``."""

    how: str
    waited_seconds: float
    result: RunResult | None = None


class Emulation:
    """Machines, monitor variables and macros: what a Renode emulation holds."""

    def __init__(self) -> None:
        self.slots: dict[str, MachineSlot] = {}
        self.current: str | None = None
        self.variables: dict[str, str] = {}
        self.macros: dict[str, list[str]] = {}
        self.started = False
        self.notes: list[str] = []  # what a command accepted but AtomSim does differently

    # -- life cycle -------------------------------------------------------------------------
    def clear(self) -> None:
        """Remove every machine, variable and macro (Renode's ``Reset Emulation``)."""
        for slot in self.slots.values():
            if slot.machine is not None:
                slot.machine.close()
        self.slots.clear()
        self.current = None
        self.variables.clear()
        self.macros.clear()
        self.started = False
        self.notes.clear()

    def slot(self, name: str | None = None) -> MachineSlot:
        """The named machine, or the current one."""
        if name is not None:
            if name not in self.slots:
                raise ConfigError(f"no machine named {name!r}; machines: "
                                  f"{', '.join(self.slots) or 'none (use mach create)'}")
            return self.slots[name]
        if self.current is None:
            raise ConfigError("no machine selected: run `mach create` first")
        return self.slots[self.current]

    def machine(self, name: str | None = None) -> Backend:
        """The emulator of the named (or current) machine; it needs a platform file."""
        slot = self.slot(name)
        if slot.machine is None:
            raise ConfigError(f"machine {slot.name!r} has no platform: run "
                              "`machine LoadPlatformDescription @renode_platforms/<board>.repl`")
        return slot.machine

    # -- commands ---------------------------------------------------------------------------
    def execute(self, command: str, origin: Path | None = None) -> str:
        """Run one monitor command; return what Renode's monitor would print."""
        text = command.strip()
        if not text or text.startswith("#"):
            return ""
        assign = _ASSIGN_RE.match(text)
        if assign:
            name, op, value = assign.groups()
            if op == "=" or name not in self.variables:
                self.variables[name] = self._value(_tokens(value)[0], origin)
            return ""
        words = _tokens(text)
        head, args = words[0], words[1:]
        if head.startswith("sysbus.") and head != "sysbus.cpu":
            head = head[len("sysbus."):]  # `sysbus.cpu` is `cpu` after `using sysbus`
        handler = {
            "mach": self._mach, "machine": self._machine, "sysbus": self._sysbus,
            "cpu": self._cpu, "sysbus.cpu": self._cpu, "emulation": self._emulation,
            "include": self._include, "i": self._include, "using": self._using,
            "start": self._start, "s": self._start, "pause": self._pause, "p": self._pause,
            "runMacro": self._run_macro,
        }.get(head)
        if handler is None:
            raise _unsupported(command)
        return handler(args, command, origin)

    def include(self, path: str | Path) -> str:
        """Execute a ``.resc`` script line by line (``include @file``)."""
        script = Path(path)
        out = []
        for item in _script_commands(script):
            if isinstance(item, _Macro):
                self.macros[item.name] = item.body
            else:
                out.append(self.execute(item, origin=script.parent))
        return "".join(out)

    def _value(self, token: str, origin: Path | None) -> str:
        if token.startswith("$"):
            name = token[1:]
            if name == "ORIGIN" and origin is not None:
                return str(origin)
            if name not in self.variables:
                raise ConfigError(f"monitor variable ${name} is not set")
            return self.variables[name]
        if token.startswith("@"):
            return str(resolve_path(token[1:], origin))
        return token

    def _path_arg(self, args: list[str], command: str, origin: Path | None) -> Path:
        if len(args) != 1:
            raise ConfigError(f"{command!r}: expected one file argument (@path or $variable)")
        if not args[0].startswith(("@", "$")):
            raise ConfigError(f"{command!r}: a file is written @path or $variable")
        return resolve_path(self._value(args[0], origin), origin)

    def _mach(self, args, command, origin) -> str:
        if args[:1] == ["create"] and len(args) <= 2:
            name = args[1] if len(args) == 2 else f"machine-{len(self.slots)}"
            if name in self.slots:
                raise ConfigError(f"{command!r}: a machine named {name!r} already exists")
            self.slots[name] = MachineSlot(name)
            self.current = name
            return ""
        if args[:1] == ["set"] and len(args) == 2:
            key = args[1]
            if key.isdigit():
                names = list(self.slots)
                if int(key) >= len(names):
                    raise ConfigError(f"{command!r}: there are {len(names)} machines")
                key = names[int(key)]
            self.slot(key)
            self.current = key
            return ""
        raise _unsupported(command)

    def _machine(self, args, command, origin) -> str:
        if args[:1] == ["LoadPlatformDescription"]:
            path = self._path_arg(args[1:], command, origin)
            slot = self.slot()
            if slot.machine is not None:
                raise ConfigError(f"{command!r}: machine {slot.name!r} already has the platform "
                                  f"{slot.machine.board.platform_path}")
            slot.machine = Machine(board_for_platform(path))
            return ""
        if args[:1] == ["LoadPlatformDescriptionFromString"] and len(args) == 2:
            slot = self.slot()
            if slot.machine is not None:
                raise ConfigError(f"{command!r}: AtomSim builds a machine from its platform file "
                                  "only; declarations from strings must come before it")
            names = [m.group(1) for m in map(_DECL_RE.match, args[1].split("\n")) if m]
            if not names:
                raise ConfigError(f"{command!r}: no `name: Type @ sysbus address` declaration")
            slot.renode_only.extend(names)
            self.notes.append(
                f"{', '.join(names)} declared from a string for Renode only: AtomSim leaves "
                "its addresses unmapped, so an access stops the run as an unmodelled access")
            return ""
        raise _unsupported(command)

    def _sysbus(self, args, command, origin) -> str:
        if args[:1] == ["LoadELF"]:
            path = self._path_arg(args[1:], command, origin)
            slot = self.slot()
            self.machine().load(path)
            slot.elf = path
            return ""
        if args[:1] == ["ReadDoubleWord"] and len(args) == 2:
            value = self.machine().read_u32(_int(args[1], command))
            return f"0x{value:08X}\n"
        if args[:1] == ["WriteDoubleWord"] and len(args) == 3:
            self.machine().write_u32(_int(args[1], command), _int(args[2], command))
            return ""
        raise _unsupported(command)

    def _cpu(self, args, command, origin) -> str:
        machine = self.machine()
        if args == ["PC"]:
            return f"0x{machine.pc:x}\n"
        if args[:1] == ["PerformanceInMips"] and len(args) == 2:
            _int(args[1], command)
            self.notes.append(f"{command.strip()!r}: AtomSim's timing model sets emulated time; "
                              "PerformanceInMips does not change it")
            return ""
        if args[:1] == ["VectorTableOffset"] and len(args) == 2:
            wanted = _int(args[1], command)
            if machine.firmware is None:
                raise ConfigError(f"{command!r}: load the ELF first")
            found = machine.vector_table()
            if wanted != found:
                raise ConfigError(f"{command!r}: AtomSim takes the vector table from the ELF, "
                                  f"at 0x{found:08X}; another offset is not supported")
            return ""
        raise _unsupported(command)

    def _emulation(self, args, command, origin) -> str:
        if args[:1] == ["RunFor"] and len(args) == 2:
            seconds = parse_time(args[1], command)
            self.started = True
            self.advance(seconds, lambda: False)
            return ""
        raise _unsupported(command)

    def _include(self, args, command, origin) -> str:
        return self.include(self._path_arg(args, command, origin))

    def _using(self, args, command, origin) -> str:
        if args != ["sysbus"]:
            raise _unsupported(command)
        return ""

    def _start(self, args, command, origin) -> str:
        if args:
            raise _unsupported(command)
        self.started = True
        return ""

    def _pause(self, args, command, origin) -> str:
        if args:
            raise _unsupported(command)
        self.started = False
        return ""

    def _run_macro(self, args, command, origin) -> str:
        if len(args) != 1 or not args[0].startswith("$"):
            raise ConfigError(f"{command!r}: expected runMacro $name")
        name = args[0][1:]
        if name not in self.macros:
            raise ConfigError(f"{command!r}: no macro named {name!r}")
        return "".join(self.execute(line, origin) for line in self.macros[name])

    # -- time -------------------------------------------------------------------------------
    def running_slots(self) -> Iterator[MachineSlot]:
        """Machines that have firmware and have not stopped."""
        for slot in self.slots.values():
            m = slot.machine
            if m is not None and m.firmware is not None and m.finished is None:
                yield slot

    def advance(self, seconds: float, done: Callable[[], bool],
                reference: MachineSlot | None = None) -> WaitOutcome:
        """Run every started machine until ``done()``, ``seconds`` of emulated time, or the
        reference machine's firmware stops. Machines advance together, slice by slice, each
        to the same emulated time (at block granularity)."""
        if reference is not None and reference.machine is not None and \
                reference.machine.firmware is None:
            raise ConfigError(f"machine {reference.name!r} has no firmware: use sysbus LoadELF")
        running = list(self.running_slots())
        if reference is None and running:
            reference = running[0]
        origin = {slot.name: slot.seconds() for slot in self.slots.values()}
        elapsed = 0.0
        while True:
            if reference is not None:
                elapsed = reference.seconds() - origin[reference.name]
            if done():
                return WaitOutcome("matched", elapsed)
            if reference is not None and reference.ended() is not None:
                return WaitOutcome("ended", elapsed, reference.ended())
            running = list(self.running_slots())
            if not running:
                return WaitOutcome("ended", elapsed, None)
            if elapsed >= seconds:
                return WaitOutcome("timeout", elapsed)
            target = elapsed + min(SLICE_SECONDS, seconds - elapsed)
            for slot in running:
                clock = slot.machine.board.clock_hz
                goal = round((origin[slot.name] + target) * clock)
                slot.machine.run(max_cycles=max(1, goal - slot.machine.cycles()))


# -- helpers --------------------------------------------------------------------------------

def _unsupported(command: str) -> ConfigError:
    return ConfigError(f"unsupported monitor command {command.strip()!r}; AtomSim understands: "
                       + "; ".join(SUPPORTED))


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text, posix=True)
    except ValueError as exc:
        raise ConfigError(f"cannot parse monitor command {text!r}: {exc}") from None


def _int(token: str, command: str) -> int:
    try:
        return int(token.replace("_", ""), 0)
    except ValueError:
        raise ConfigError(f"{command!r}: {token!r} is not a number") from None


def parse_time(token: str, command: str = "") -> float:
    """Seconds from Renode's time interval notation: ``0.5`` or ``hh:mm:ss[.fff]``."""
    parts = token.split(":")
    try:
        if len(parts) == 1:
            seconds = float(parts[0])
        elif len(parts) == 3:
            seconds = int(parts[0]) * 3600 + int(parts[1]) * 60 + float(parts[2])
        else:
            raise ValueError(token)
    except ValueError:
        raise ConfigError(f"{command or token!r}: {token!r} is not a time interval (seconds, "
                          "e.g. \"0.5\", or hh:mm:ss.fff)") from None
    if seconds < 0:
        raise ConfigError(f"{command or token!r}: a time interval cannot be negative")
    return seconds


def resolve_path(text: str, origin: Path | None = None) -> Path:
    """A monitor ``@path``: absolute, or relative to the working directory, the including
    script's directory or the repository root (the first that exists)."""
    path = Path(text)
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [Path.cwd() / path, *([origin / path] if origin else []), REPO_ROOT / path]
    for candidate in candidates:
        if candidate.exists():
            return candidate.resolve()
    raise ConfigError(f"file not found: {text} (looked in "
                      f"{', '.join(str(c.parent) for c in candidates)})")


def board_for_platform(path: Path) -> Board:
    """The board whose platform file is ``path``."""
    path = Path(path).resolve()
    for board_id in board_ids():
        board = get_board(board_id)
        if board.platform_path.resolve() == path:
            return board
    known = ", ".join(f"{b} ({get_board(b).platform_path.name})" for b in board_ids())
    raise ConfigError(f"no AtomSim board uses the platform file {path}; boards: {known}")


@dataclass(frozen=True)
class _Macro:
    """A ``macro name`` block of a script: its commands, run by ``runMacro $name``."""

    name: str
    body: list[str]


def _script_commands(script: Path) -> Iterator[str | _Macro]:
    """Commands of a .resc file, with ``macro`` blocks folded into one pseudo-command each."""
    try:
        lines = script.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read monitor script {script}: {exc}") from None
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        if not line or line.startswith("#") or line.startswith(":"):
            continue  # blank, comment, or a `:name:`/`:description:` header
        macro = re.match(r"^macro\s+([A-Za-z_]\w*)\s*(\"\"\")?\s*$", line)
        if macro:
            if macro.group(2) is None:
                while i < len(lines) and not lines[i].strip():
                    i += 1
                if i >= len(lines) or lines[i].strip() != '"""':
                    raise ConfigError(f"{script}:{i}: `macro {macro.group(1)}` needs a "
                                      "\"\"\" block")
                i += 1
            body = []
            while i < len(lines) and lines[i].strip() != '"""':
                if lines[i].strip():
                    body.append(lines[i].strip())
                i += 1
            if i >= len(lines):
                raise ConfigError(f"{script}: unterminated \"\"\" block of macro "
                                  f"{macro.group(1)}")
            i += 1
            yield _Macro(macro.group(1), body)
            continue
        yield line


__all__ = ["Emulation", "MachineSlot", "WaitOutcome", "board_for_platform", "parse_time",
           "resolve_path"]
