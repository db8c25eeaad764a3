"""Platform files: our subset of Renode's platform-description (.repl) syntax.

The same ``renode_platforms/*.repl`` files drive Renode and AtomSim's own emulator, so the
emulator's memory map can never drift from the one Renode is given. This module reads them
into frozen dataclasses; it knows nothing about how a peripheral behaves.

The subset, line by line (anything else is a :class:`~atomsim.core.errors.ConfigError` naming
``file:line`` and the offending text):

- comments: ``// to end of line`` and ``/* block */``
- ``using "path"``, before any declaration. The path is tried relative to the including file,
  then relative to the repository root (which is how Renode, started there, finds it).
- ``name: Type.Class @ sysbus 0xADDR``, ``@ sysbus <0xADDR, +0xSIZE>``,
  ``@ { sysbus 0xA; sysbus 0xB }`` (the first address is primary, the others are aliases;
  the braces may span lines) and ``@ sysbus`` (the CPU only)
- indented ``key: value`` properties: integers (decimal or hex, ``_`` separators allowed),
  ``"strings"``, ``true``/``false``, and bare identifiers (references such as ``nvic: nvic``)
- ``name:`` alone, later in the same file or an including one: its properties override or
  extend those of the earlier declaration (how a board file adjusts its SoC file)
- ``sysbus:`` with an indented ``init:`` holding ``Tag <start, end> "NAME" [value]`` lines;
  ``end`` is inclusive, as in Renode, and ``value`` (default 0) is what every read returns.

Every byte of the bus has at most one owner: overlapping memories, peripherals or tags are
an error. A peripheral without an explicit size is checked at its base address only; its
model knows its size.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from atomsim.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
BUS_END = 1 << 32
MEMORY_TYPE = "Memory.MappedMemory"
CPU_TYPE_PREFIX = "CPU."


class Ref(str):
    """A bare identifier in a property value: a reference to another declaration by name."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Ref({str.__repr__(self)})"


@dataclass(frozen=True)
class MemoryDecl:
    """A RAM or flash block. ``addresses[0]`` is the primary address, the others are aliases."""

    name: str
    addresses: tuple[int, ...]
    size: int

    @property
    def address(self) -> int:
        """The primary address."""
        return self.addresses[0]

    def ranges(self) -> tuple[tuple[int, int], ...]:
        """``(start, end)`` for every mapping, end exclusive, primary first."""
        return tuple((a, a + self.size) for a in self.addresses)


@dataclass(frozen=True)
class PeripheralDecl:
    """A memory-mapped peripheral model, selected by its Renode ``type`` name."""

    name: str
    type: str
    address: int
    size: int | None
    properties: Mapping[str, object] = field(hash=False)


@dataclass(frozen=True)
class TagDecl:
    """A named, unmodelled register range: reads return ``value``, writes have no effect."""

    name: str
    start: int
    end: int  # inclusive, as Renode writes it
    value: int


@dataclass(frozen=True)
class Platform:
    """Everything a platform file declares, with ``using`` and overrides applied."""

    path: Path
    cpu_type: str
    memories: tuple[MemoryDecl, ...]
    peripherals: tuple[PeripheralDecl, ...]
    tags: tuple[TagDecl, ...]

    def memory(self, name: str) -> MemoryDecl:
        """The memory called ``name``; ConfigError naming the declared ones if there is none."""
        for memory in self.memories:
            if memory.name == name:
                return memory
        names = ", ".join(m.name for m in self.memories)
        raise ConfigError(f"{self.path}: no memory called {name!r} (declared: {names})")

    def peripheral(self, name: str) -> PeripheralDecl:
        """The peripheral called ``name``; ConfigError naming the declared ones if there is none."""
        for peripheral in self.peripherals:
            if peripheral.name == name:
                return peripheral
        names = ", ".join(p.name for p in self.peripherals)
        raise ConfigError(f"{self.path}: no peripheral called {name!r} (declared: {names})")


def load_platform(path: str | Path) -> Platform:
    """Parse a platform file (and the files it ``using``-includes) into a :class:`Platform`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"platform file not found: {path}")
    parser = _Parser()
    parser.parse_file(path.resolve(), include_stack=())
    return parser.build(path)


# --- lexical layer -----------------------------------------------------------------------

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_INT = r"(?:0[xX][0-9A-Fa-f_]+|[0-9][0-9_]*)"
_DECL_RE = re.compile(rf"^({_IDENT})\s*:\s*({_IDENT}(?:\.{_IDENT})+)\s*@\s*(.*)$")
_BLOCK_RE = re.compile(rf"^({_IDENT})\s*:\s*$")
_PROP_RE = re.compile(rf"^({_IDENT})\s*:\s*(\S.*)$")
_USING_RE = re.compile(r'^using\s+"([^"]+)"\s*$')
_REG_ADDR_RE = re.compile(rf"^sysbus\s+({_INT}|\S+)$")
_REG_RANGE_RE = re.compile(rf"^sysbus\s+<\s*({_INT}|\S+)\s*,\s*\+\s*({_INT}|\S+)\s*>$")
_TAG_RE = re.compile(rf'^Tag\s+<\s*(\S+?)\s*,\s*(\S+?)\s*>\s+"([^"]+)"(?:\s+({_INT}|\S+))?$')


@dataclass
class _Line:
    path: Path
    number: int
    indent: int
    text: str

    def error(self, message: str, text: str | None = None) -> ConfigError:
        shown = self.text if text is None else text
        return ConfigError(f"{self.path}:{self.number}: {message}: {shown!r}")


def _strip_comments(source: str, path: Path) -> list[str]:
    """Blank out comments, keeping line numbers and everything inside string literals."""
    def error(message: str, line: int) -> ConfigError:
        text = source.split("\n")[line - 1].strip()
        return ConfigError(f"{path}:{line}: {message}: {text!r}")

    out: list[str] = []
    i, n, line = 0, len(source), 1
    in_string = False
    while i < n:
        c = source[i]
        if in_string:
            if c == "\n":
                raise error("unterminated string", line)
            in_string = c != '"'
            out.append(c)
            i += 1
        elif c == '"':
            in_string = True
            out.append(c)
            i += 1
        elif source.startswith("//", i):
            while i < n and source[i] != "\n":
                i += 1
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            if end < 0:
                raise error("unterminated /* comment", line)
            newlines = source.count("\n", i, end)
            out.append("\n" * newlines if newlines else " ")
            line += newlines
            i = end + 2
        else:
            line += c == "\n"
            out.append(c)
            i += 1
    if in_string:
        raise error("unterminated string", line)
    return "".join(out).split("\n")


def _lines(path: Path) -> list[_Line]:
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read platform file {path}: {exc}") from exc
    result = []
    for number, raw in enumerate(_strip_comments(source, path), start=1):
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise ConfigError(f"{path}:{number}: indent with spaces, not tabs: {raw.strip()!r}")
        text = raw.rstrip()
        if text.strip():
            result.append(_Line(path, number, len(text) - len(text.lstrip()), text.strip()))
    return result


def _parse_int(token: str, line: _Line, what: str) -> int:
    digits = token.replace("_", "")
    if not re.fullmatch(_INT, token) or token.endswith("_") or digits.lower() == "0x":
        raise line.error(f"bad {what} {token!r}")
    return int(digits, 16 if digits[:2].lower() == "0x" else 10)


def _parse_value(token: str, line: _Line) -> object:
    if token.startswith('"'):
        if len(token) < 2 or not token.endswith('"') or '"' in token[1:-1]:
            raise line.error("bad string value", token)
        return token[1:-1]
    if token in ("true", "false"):
        return token == "true"
    if token[0].isdigit():
        return _parse_int(token, line, "number")
    if re.fullmatch(rf"{_IDENT}(?:\.{_IDENT})*", token):
        return Ref(token)
    raise line.error("unsupported property value", token)


def _check_address(value: int, size: int, line: _Line, what: str) -> None:
    if size <= 0:
        raise line.error(f"{what} size must be positive, got {size:#x}")
    if value + size > BUS_END:
        raise line.error(f"{what} 0x{value:X}+0x{size:X} runs past the 32-bit bus")


# --- declarations ------------------------------------------------------------------------

@dataclass
class _Decl:
    name: str
    type: str
    addresses: list[int]  # empty for "@ sysbus" (the CPU)
    range_size: int | None  # from "<addr, +size>"
    line: _Line
    properties: dict[str, object] = field(default_factory=dict)
    property_lines: dict[str, _Line] = field(default_factory=dict)


class _Parser:
    def __init__(self) -> None:
        self.decls: dict[str, _Decl] = {}
        self.tags: list[tuple[TagDecl, _Line]] = []

    # files and blocks
    def parse_file(self, path: Path, include_stack: tuple[Path, ...]) -> None:
        if path in include_stack:
            chain = " -> ".join(str(p) for p in (*include_stack, path))
            raise ConfigError(f"using cycle: {chain}")
        lines = _lines(path)
        i, seen_declaration = 0, False
        while i < len(lines):
            line = lines[i]
            if line.indent:
                raise line.error("indented line outside a block")
            using = _USING_RE.match(line.text)
            if using:
                if seen_declaration:
                    raise line.error("'using' must come before any declaration")
                self.parse_file(self._resolve_using(using.group(1), line),
                                (*include_stack, path))
                i += 1
                continue
            seen_declaration = True
            body_end = i + 1
            while body_end < len(lines) and lines[body_end].indent:
                body_end += 1
            i = self._parse_block(lines, i, body_end)

    @staticmethod
    def _resolve_using(target: str, line: _Line) -> Path:
        for base in (line.path.parent, REPO_ROOT):
            candidate = (base / target).resolve()
            if candidate.is_file():
                return candidate
        raise line.error(
            f"'using' target not found next to the file nor under {REPO_ROOT}", target)

    def _parse_block(self, lines: list[_Line], start: int, end: int) -> int:
        """Parse the top-level entry at ``start`` and its body; return the next line index."""
        head = lines[start]
        declaration = _DECL_RE.match(head.text)
        if declaration:
            name, type_name, registration = declaration.groups()
            # a multi-registration in braces may continue on the following lines
            body_start = start + 1
            if registration.startswith("{") and "}" not in registration:
                while body_start < end and "}" not in registration:
                    registration += " " + lines[body_start].text
                    body_start += 1
            if name in self.decls:
                first = self.decls[name].line
                raise head.error(f"{name!r} is already declared at {first.path}:{first.number}")
            addresses, range_size = self._parse_registration(registration.strip(), head)
            decl = _Decl(name, type_name, addresses, range_size, head)
            self.decls[name] = decl
            self._parse_properties(lines[body_start:end], decl)
            return end
        block = _BLOCK_RE.match(head.text)
        if block and block.group(1) == "sysbus":
            self._parse_sysbus(lines[start + 1:end], head)
            return end
        if block:
            name = block.group(1)
            if name not in self.decls:
                raise head.error(f"override of {name!r}, which is not declared before it")
            self._parse_properties(lines[start + 1:end], self.decls[name])
            return end
        raise head.error("unsupported syntax")

    @staticmethod
    def _parse_registration(text: str, line: _Line) -> tuple[list[int], int | None]:
        if text == "sysbus":
            return [], None
        ranged = _REG_RANGE_RE.match(text)
        if ranged:
            address = _parse_int(ranged.group(1), line, "address")
            size = _parse_int(ranged.group(2), line, "size")
            _check_address(address, size, line, "range")
            return [address], size
        if text.startswith("{"):
            if not text.endswith("}"):
                raise line.error("unsupported text after a multi-registration", text)
            parts = [p.strip() for p in text[1:-1].split(";") if p.strip()]
            if not parts:
                raise line.error("empty multi-registration", text)
            addresses = []
            for part in parts:
                single = _REG_ADDR_RE.match(part)
                if not single:
                    raise line.error("unsupported registration", part)
                addresses.append(_parse_int(single.group(1), line, "address"))
            if len(set(addresses)) != len(addresses):
                raise line.error("the same address is registered twice", text)
            return addresses, None
        single = _REG_ADDR_RE.match(text)
        if single:
            return [_parse_int(single.group(1), line, "address")], None
        raise line.error("unsupported registration", text)

    @staticmethod
    def _parse_properties(lines: list[_Line], decl: _Decl) -> None:
        if lines and any(line.indent != lines[0].indent for line in lines):
            bad = next(line for line in lines if line.indent != lines[0].indent)
            raise bad.error(f"properties of {decl.name!r} must share one indentation")
        for line in lines:
            prop = _PROP_RE.match(line.text)
            if not prop:
                raise line.error(f"unsupported line in {decl.name!r}")
            key, value = prop.groups()
            decl.properties[key] = _parse_value(value.strip(), line)
            decl.property_lines[key] = line

    def _parse_sysbus(self, lines: list[_Line], head: _Line) -> None:
        if not lines:
            raise head.error("empty 'sysbus:' block")
        if lines[0].text != "init:":
            raise lines[0].error("only 'init:' is supported under 'sysbus:'")
        init_indent = lines[0].indent
        for line in lines[1:]:
            if line.indent <= init_indent:
                raise line.error("expected a Tag line indented under 'init:'")
            tag = _TAG_RE.match(line.text)
            if not tag:
                raise line.error("unsupported line in sysbus init (only 'Tag <start, end> "
                                 "\"NAME\" [value]')")
            start = _parse_int(tag.group(1), line, "tag start")
            last = _parse_int(tag.group(2), line, "tag end")
            value = _parse_int(tag.group(4), line, "tag value") if tag.group(4) else 0
            if last < start:
                raise line.error("tag end is below its start")
            _check_address(start, last - start + 1, line, "tag")
            if value >= BUS_END:
                raise line.error("tag value does not fit 32 bits")
            self.tags.append((TagDecl(tag.group(3), start, last, value), line))

    # assembly and checks
    def build(self, path: Path) -> Platform:
        cpus = [d for d in self.decls.values() if d.type.startswith(CPU_TYPE_PREFIX)]
        if len(cpus) != 1:
            names = ", ".join(d.name for d in cpus) or "none"
            raise ConfigError(f"{path}: expected exactly one CPU.* declaration, found {names}")
        cpu = cpus[0]
        if cpu.addresses:
            raise cpu.line.error("the CPU is registered as '@ sysbus' without an address")
        cpu_type = cpu.properties.get("cpuType")
        if not isinstance(cpu_type, str) or isinstance(cpu_type, Ref):
            raise cpu.line.error("the CPU needs a quoted cpuType property")

        memories, peripherals = [], []
        owners: list[tuple[int, int, str, _Line]] = []  # start, end exclusive, what, where
        for decl in self.decls.values():
            if decl is cpu:
                continue
            if not decl.addresses:
                raise decl.line.error(f"{decl.name!r} needs an address on sysbus")
            if decl.type == MEMORY_TYPE:
                memory = self._memory(decl)
                memories.append(memory)
                owners += [(s, e, f"memory {memory.name!r}", decl.line) for s, e in memory.ranges()]
            else:
                peripheral = self._peripheral(decl)
                peripherals.append(peripheral)
                end = peripheral.address + (peripheral.size or 1)
                owners.append((peripheral.address, end, f"peripheral {decl.name!r}", decl.line))
        owners += [(t.start, t.end + 1, f"tag {t.name!r}", line) for t, line in self.tags]
        owners.sort(key=lambda o: (o[0], o[1]))
        for (s0, e0, what0, line0), (s1, _e1, what1, line1) in itertools.pairwise(owners):
            if s1 < e0:
                raise line1.error(
                    f"{what1} at 0x{s1:08X} overlaps {what0} (0x{s0:08X}-0x{e0 - 1:08X}, "
                    f"{line0.path}:{line0.number})")
        return Platform(path=path, cpu_type=cpu_type,
                        memories=tuple(sorted(memories, key=lambda m: m.address)),
                        peripherals=tuple(sorted(peripherals, key=lambda p: p.address)),
                        tags=tuple(sorted((t for t, _ in self.tags), key=lambda t: t.start)))

    @staticmethod
    def _memory(decl: _Decl) -> MemoryDecl:
        unknown = sorted(set(decl.properties) - {"size"})
        if unknown:
            raise decl.property_lines[unknown[0]].error(f"{MEMORY_TYPE} takes only 'size'")
        size = decl.properties.get("size")
        if not isinstance(size, int) or isinstance(size, bool):
            raise decl.line.error(f"memory {decl.name!r} needs an integer 'size' property")
        if decl.range_size is not None and decl.range_size != size:
            raise decl.line.error(f"registration size 0x{decl.range_size:X} differs from "
                                  f"size 0x{size:X}")
        for address in decl.addresses:
            _check_address(address, size, decl.line, f"memory {decl.name!r}")
        return MemoryDecl(decl.name, tuple(decl.addresses), size)

    @staticmethod
    def _peripheral(decl: _Decl) -> PeripheralDecl:
        if len(decl.addresses) != 1:
            raise decl.line.error(f"peripheral {decl.name!r} must have exactly one address")
        size = decl.range_size
        declared = decl.properties.get("size")
        if isinstance(declared, int) and not isinstance(declared, bool):
            if size is not None and size != declared:
                raise decl.line.error(f"registration size 0x{size:X} differs from "
                                      f"size 0x{declared:X}")
            size = declared
        address = decl.addresses[0]
        _check_address(address, size or 1, decl.line, f"peripheral {decl.name!r}")
        return PeripheralDecl(decl.name, decl.type, address, size,
                              MappingProxyType(dict(decl.properties)))
