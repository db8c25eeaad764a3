"""The host/firmware contract, read from the firmware's own debug information (DWARF).

The C sources are the single source of truth for every structure the host writes into target
memory: the profiling harness's job descriptor (``atomsim_job_t``), its op ids (the
``atomsim_op`` enum, ``ATOMSIM_OP_<NAME>`` for operator ``<name>``), its job limit (the length
of the ``atomsim_jobs`` array) and the kernels' parameter structs and prototypes
(firmware/kernels/include/atomsim_nn.h). The firmware is built with ``-g``; this module reads
the DWARF with pyelftools into plain records (:class:`CType`, :class:`Member`) and packs
values by field name at the DWARF offsets, so no layout is mirrored by hand in Python.
Parsed contracts are cached per ELF content hash.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from atomsim.core.errors import ConfigError, ElfError

# DW_ATE_* base-type encodings that read as signed integers
_SIGNED = {0x5, 0x6, 0xD}  # signed, signed_char, signed_fixed
_QUALIFIERS = ("DW_TAG_const_type", "DW_TAG_volatile_type", "DW_TAG_restrict_type",
               "DW_TAG_atomic_type")


@dataclass(frozen=True)
class Member:
    """One named, typed slot: a struct member (offset in bytes) or a function parameter."""

    name: str
    offset: int
    type: CType


@dataclass(frozen=True)
class CType:
    """A C type as DWARF describes it, typedefs and qualifiers resolved.

    kind is ``int`` (base and enum types), ``float``, ``pointer``, ``struct``, ``union``,
    ``array`` or ``void``; ``name`` is the C spelling (typedef name where there is one).
    """

    kind: str
    name: str
    size: int
    signed: bool = False
    members: tuple[Member, ...] = ()
    element: CType | None = None  # arrays: the element type; pointers: the target type
    count: int = 0  # arrays: number of elements

    def member(self, name: str) -> Member:
        """The member called ``name``; a ConfigError naming the struct when there is none."""
        for m in self.members:
            if m.name == name:
                return m
        raise ConfigError(f"{self.name} has no member {name!r}; members: "
                          f"{', '.join(m.name for m in self.members)}")

    def pack(self, value=None, **fields) -> bytes:
        """Bytes of this type holding ``value`` (or, for a struct, ``fields`` by name).

        Struct members not given are zero; an unknown member name is a ConfigError. A struct
        also takes a sequence (members in declaration order), an array a sequence of at most
        ``count`` elements (the rest zero).
        """
        buf = bytearray(self.size)
        _pack_into(buf, 0, self, fields if value is None and fields else value, self.name)
        return bytes(buf)


@dataclass(frozen=True)
class Contract:
    """What one firmware ELF's DWARF says: types, enumerators, globals and prototypes."""

    sha256: str
    types: Mapping[str, CType] = field(repr=False)  # struct tags and typedef names
    enumerators: Mapping[str, int] = field(repr=False)
    variables: Mapping[str, CType] = field(repr=False)  # global objects' types
    functions: Mapping[str, tuple[Member, ...]] = field(repr=False)  # parameters, in order

    def type(self, name: str) -> CType:
        """A struct or typedef by name; a ConfigError when the DWARF lacks it."""
        if name not in self.types:
            raise ConfigError(f"the firmware's debug information has no type {name!r} "
                              "(built without -g, or the name changed in the C source)")
        return self.types[name]

    def enumerator(self, name: str) -> int:
        """The value of an enum constant; a ConfigError when the DWARF lacks it."""
        if name not in self.enumerators:
            raise ConfigError(f"the firmware's debug information has no enum constant {name!r}")
        return self.enumerators[name]

    def variable(self, name: str) -> CType:
        """The type of a global object; a ConfigError when the DWARF lacks it."""
        if name not in self.variables:
            raise ConfigError(f"the firmware's debug information has no global {name!r}")
        return self.variables[name]

    def parameters(self, function: str) -> tuple[Member, ...]:
        """A function's parameters (offset = position) from its definition's DWARF."""
        if function not in self.functions:
            raise ConfigError(f"the firmware's debug information has no function {function!r}")
        return self.functions[function]


_CACHE: dict[str, Contract] = {}


def read_contract(elf: Path) -> Contract:
    """Parse (or reuse) the DWARF contract of ``elf``; cached per content hash."""
    data = Path(elf).read_bytes()
    key = hashlib.sha256(data).hexdigest()
    if key not in _CACHE:
        _CACHE[key] = _parse(Path(elf), key)
    return _CACHE[key]


def _parse(path: Path, key: str) -> Contract:
    try:
        with open(path, "rb") as fh:
            elf = ELFFile(fh)
            if not elf.has_dwarf_info():
                raise ConfigError(f"{path} carries no DWARF debug information (build with -g)")
            reader = _Reader()
            for cu in elf.get_dwarf_info().iter_CUs():
                reader.read_cu(cu)
    except ELFError as exc:
        raise ElfError(f"{path}: {exc}") from exc
    return Contract(key, reader.types, reader.enumerators, reader.variables, reader.functions)


class _Reader:
    """Walks the top level of each compile unit; resolves types on demand, memoised."""

    def __init__(self) -> None:
        self.types: dict[str, CType] = {}
        self.enumerators: dict[str, int] = {}
        self.variables: dict[str, CType] = {}
        self.functions: dict[str, tuple[Member, ...]] = {}
        self._memo: dict[int, CType] = {}

    def read_cu(self, cu) -> None:
        self._memo = {}  # offsets are per file, but keep the memo small
        for die in cu.get_top_DIE().iter_children():
            tag, name = die.tag, _name(die)
            if tag == "DW_TAG_enumeration_type":
                for e in die.iter_children():
                    if e.tag == "DW_TAG_enumerator":
                        self.enumerators[_name(e)] = int(e.attributes["DW_AT_const_value"].value)
            if tag in ("DW_TAG_structure_type", "DW_TAG_typedef") and name and \
                    "DW_AT_declaration" not in die.attributes:
                t = self.resolve(die)
                if t.kind in ("struct", "union") and name not in self.types:
                    self.types[name] = t
            elif tag == "DW_TAG_variable" and name and "DW_AT_type" in die.attributes:
                self.variables.setdefault(name, self._type_of(die))
            elif tag == "DW_TAG_subprogram" and name and \
                    "DW_AT_declaration" not in die.attributes:
                params = [c for c in die.iter_children() if c.tag == "DW_TAG_formal_parameter"]
                self.functions.setdefault(name, tuple(
                    Member(_name(p) or f"arg{i}", i, self._type_of(p))
                    for i, p in enumerate(params)))

    def _type_of(self, die) -> CType:
        if "DW_AT_type" not in die.attributes:
            return CType("void", "void", 0)
        return self.resolve(die.get_DIE_from_attribute("DW_AT_type"))

    def resolve(self, die) -> CType:
        if die.offset in self._memo:
            return self._memo[die.offset]
        tag, name = die.tag, _name(die)
        if tag in _QUALIFIERS:
            t = self._type_of(die)
        elif tag == "DW_TAG_typedef":
            inner = self._type_of(die)
            t = CType(inner.kind, name, inner.size, inner.signed, inner.members, inner.element,
                      inner.count)
        elif tag == "DW_TAG_base_type":
            enc = die.attributes["DW_AT_encoding"].value
            kind = "float" if enc == 0x4 else "int"
            t = CType(kind, name, _size(die), enc in _SIGNED)
        elif tag == "DW_TAG_enumeration_type":
            under = self._type_of(die) if "DW_AT_type" in die.attributes else None
            signed = under.signed if under else any(
                int(e.attributes["DW_AT_const_value"].value) < 0 for e in die.iter_children())
            t = CType("int", f"enum {name}" if name else "enum", _size(die), signed)
        elif tag == "DW_TAG_pointer_type":
            self._memo[die.offset] = CType("pointer", "pointer", _size(die))  # recursion guard
            target = self._type_of(die)
            t = CType("pointer", f"{target.name} *", _size(die), element=target)
        elif tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            members = tuple(
                Member(_name(m), _offset(m), self._type_of(m)) for m in die.iter_children()
                if m.tag == "DW_TAG_member")
            kind = "struct" if tag == "DW_TAG_structure_type" else "union"
            t = CType(kind, name or kind, _size(die), members=members)
        elif tag == "DW_TAG_array_type":
            element = self._type_of(die)
            count = 1
            for sub in die.iter_children():
                if sub.tag == "DW_TAG_subrange_type":
                    count *= _extent(sub)
            t = CType("array", f"{element.name}[{count}]", element.size * count,
                      element=element, count=count)
        elif tag == "DW_TAG_subroutine_type":
            t = CType("function", "function", 0)
        else:
            t = CType("void", name or tag, _size(die))
        self._memo[die.offset] = t
        return t


def _name(die) -> str:
    a = die.attributes.get("DW_AT_name")
    return a.value.decode() if a is not None else ""


def _size(die) -> int:
    a = die.attributes.get("DW_AT_byte_size")
    return int(a.value) if a is not None else 0


def _offset(die) -> int:
    a = die.attributes.get("DW_AT_data_member_location")
    if a is None:
        return 0
    if isinstance(a.value, int):
        return a.value
    # DWARF 2 form: DW_OP_plus_uconst <uleb128>
    raw, shift, value = list(a.value)[1:], 0, 0
    for byte in raw:
        value |= (byte & 0x7F) << shift
        shift += 7
    return value


def _extent(sub) -> int:
    if "DW_AT_count" in sub.attributes:
        return int(sub.attributes["DW_AT_count"].value)
    if "DW_AT_upper_bound" in sub.attributes:
        return int(sub.attributes["DW_AT_upper_bound"].value) + 1
    return 0  # a flexible array member


_INT_FORMATS = {(1, True): "<b", (1, False): "<B", (2, True): "<h", (2, False): "<H",
                (4, True): "<i", (4, False): "<I", (8, True): "<q", (8, False): "<Q"}


def _pack_into(buf: bytearray, offset: int, t: CType, value, where: str) -> None:
    if value is None:
        return  # zero
    if t.kind in ("int", "pointer"):
        fmt = _INT_FORMATS.get((t.size, t.signed and t.kind == "int"))
        if fmt is None:
            raise ConfigError(f"{where}: cannot pack a {t.size}-byte {t.name}")
        try:
            struct.pack_into(fmt, buf, offset, int(value))
        except struct.error as exc:
            raise ConfigError(f"{where}: {int(value)} does not fit {t.name}: {exc}") from exc
    elif t.kind == "array":
        values = list(value)
        if len(values) > t.count:
            raise ConfigError(f"{where}: {len(values)} values for {t.name}")
        for i, v in enumerate(values):
            _pack_into(buf, offset + i * t.element.size, t.element, v, f"{where}[{i}]")
    elif t.kind == "struct":
        if isinstance(value, Mapping):
            for name, v in value.items():
                m = t.member(name)
                _pack_into(buf, offset + m.offset, m.type, v, f"{where}.{name}")
        elif isinstance(value, Sequence) or hasattr(value, "__iter__"):
            values = list(value)
            if len(values) != len(t.members):
                raise ConfigError(f"{where}: {len(values)} values for the {len(t.members)} "
                                  f"members of {t.name}")
            for m, v in zip(t.members, values, strict=True):
                _pack_into(buf, offset + m.offset, m.type, v, f"{where}.{m.name}")
        else:
            raise ConfigError(f"{where}: a {t.name} takes a mapping or a sequence")
    else:
        raise ConfigError(f"{where}: cannot pack a value of C type {t.name} ({t.kind})")
