"""Boards: chip and board facts, each with its source, read from ``boards.toml``.

A board is one table in ``boards.toml`` plus a platform file in ``renode_platforms/``. Facts
are ``{ value = ..., source = "..." }`` and a fact without a source is an error, as are
unknown keys and wrong types. The memory map itself lives only in the platform file; the
placement regions here (where the linker puts flash, .data/.bss and the stack) name the
platform memories they lie in, and tests/test_platforms.py holds the two together.
"""

from __future__ import annotations

import functools
import itertools
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from atomsim.boards.platform import Platform, load_platform
from atomsim.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
PLATFORM_DIR = REPO_ROOT / "renode_platforms"
DEFAULT_BOARDS_FILE = Path(__file__).with_name("boards.toml")


@dataclass(frozen=True)
class Region:
    """A placement region: ``size`` bytes from ``address`` inside the named platform memories."""

    name: str
    address: int
    size: int
    memories: tuple[str, ...]

    @property
    def end(self) -> int:
        """First address past the region."""
        return self.address + self.size


@dataclass(frozen=True)
class Board:
    """One emulated board. ``sources`` maps each fact's field name to where it comes from."""

    id: str
    name: str  # chip, e.g. "STM32F412"
    board: str  # e.g. "NUCLEO-F412ZG"
    core: str  # "cortex-m4" or "cortex-m7"
    fpu: bool
    clock_hz: int  # core clock the firmware runs at
    flash_wait_states: int  # at clock_hz
    icache_bytes: int
    dcache_bytes: int
    flash_accelerator: str  # what sits between core and flash besides the L1 caches
    console: str  # peripheral name of the console UART in the platform file
    sram_budget_bytes: int  # the SRAM figure a model is judged against (METHOD.md)
    flash: Region
    ram: Region  # .data, .bss and the activation arena
    stack: Region
    platform_path: Path
    sources: Mapping[str, str] = field(hash=False)
    # SRAM banks the activation arena may use, in order of preference; banks[0] is ``ram``.
    # A bank is one run of contiguous platform memories. Default: the ram region alone.
    banks: tuple[Region, ...] = ()

    def __post_init__(self):
        if not self.banks:
            object.__setattr__(self, "banks", (Region("+".join(self.ram.memories),
                                                      self.ram.address, self.ram.size,
                                                      self.ram.memories),))

    @property
    def mips_nominal(self) -> float:
        """Core clock in MHz: instructions per microsecond at one instruction per cycle."""
        return self.clock_hz / 1e6

    def platform(self) -> Platform:
        """The parsed platform file (parsed once per path and process)."""
        return _cached_platform(self.platform_path)


def board_ids() -> tuple[str, ...]:
    """The ids of the boards in the default ``boards.toml``, in file order."""
    return tuple(_default_boards())


def get_board(board_id: str) -> Board:
    """The board called ``board_id``; ConfigError listing the valid ids if there is none."""
    boards = _default_boards()
    if board_id not in boards:
        raise ConfigError(f"unknown board {board_id!r}; valid boards: {', '.join(boards)}")
    return boards[board_id]


def load_boards(path: Path | None = None) -> dict[str, Board]:
    """Read and check a boards file (the packaged ``boards.toml`` when ``path`` is None)."""
    path = DEFAULT_BOARDS_FILE if path is None else Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read boards file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    if not data:
        raise ConfigError(f"{path}: no boards defined")
    return {board_id: _board(path, board_id, table) for board_id, table in data.items()}


# --- checking ------------------------------------------------------------------------------

# field -> (type, needs a source). Identity fields carry no source; every fact does.
_FIELDS: dict[str, tuple[type, bool]] = {
    "name": (str, False),
    "board": (str, False),
    "platform": (str, False),
    "core": (str, True),
    "fpu": (bool, True),
    "clock_hz": (int, True),
    "flash_wait_states": (int, True),
    "icache_bytes": (int, True),
    "dcache_bytes": (int, True),
    "flash_accelerator": (str, True),
    "console": (str, True),
    "sram_budget_bytes": (int, True),
}
_REGIONS = ("flash", "ram", "stack")
_REGION_KEYS = {"address": int, "size": int, "memories": list, "source": str}
_BANK_KEYS = {"name": str, **_REGION_KEYS}
_CORES = ("cortex-m4", "cortex-m7")
_ID_RE = re.compile(r"[a-z][a-z0-9_]*")


def _where(path: Path, board_id: str, key: str) -> str:
    return f"{path}: board {board_id!r}, key {key!r}"


def _is(value: object, kind: type) -> bool:
    # bool is an int in Python; a TOML `true` must not pass for a number, nor 1 for a flag
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _board(path: Path, board_id: str, table: object) -> Board:
    if not _ID_RE.fullmatch(board_id):
        raise ConfigError(f"{path}: board id {board_id!r} must be lower-case [a-z0-9_]")
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: board {board_id!r} must be a table")
    unknown = sorted(set(table) - set(_FIELDS) - set(_REGIONS) - {"banks"})
    if unknown:
        raise ConfigError(f"{_where(path, board_id, unknown[0])}: unknown key "
                          f"(known: {', '.join([*_FIELDS, *_REGIONS, 'banks'])})")
    values: dict[str, object] = {}
    sources: dict[str, str] = {}
    for key, (kind, sourced) in _FIELDS.items():
        if key not in table:
            raise ConfigError(f"{_where(path, board_id, key)}: missing")
        raw = table[key]
        if sourced:
            raw = _sourced(path, board_id, key, raw, sources)
        if not _is(raw, kind):
            raise ConfigError(f"{_where(path, board_id, key)}: expected {kind.__name__}, "
                              f"got {type(raw).__name__} {raw!r}")
        if kind is int and raw < 0:
            raise ConfigError(f"{_where(path, board_id, key)}: must not be negative, got {raw}")
        values[key] = raw
    if values["core"] not in _CORES:
        raise ConfigError(f"{_where(path, board_id, 'core')}: expected one of {_CORES}")
    if values["clock_hz"] == 0:
        raise ConfigError(f"{_where(path, board_id, 'clock_hz')}: must be positive")
    regions = {}
    for name in _REGIONS:
        if name not in table:
            raise ConfigError(f"{_where(path, board_id, name)}: missing region")
        regions[name] = _region(path, board_id, name, table[name], sources)
    ordered = sorted(regions.values(), key=lambda r: r.address)
    for low, high in itertools.pairwise(ordered):
        if high.address < low.end:
            raise ConfigError(f"{path}: board {board_id!r}: regions {low.name!r} and "
                              f"{high.name!r} overlap")
    banks = _banks(path, board_id, table.get("banks"), regions, sources)
    platform_path = PLATFORM_DIR / str(values.pop("platform"))
    if not platform_path.is_file():
        raise ConfigError(f"{_where(path, board_id, 'platform')}: no file {platform_path}")
    return Board(id=board_id, **values, **regions, platform_path=platform_path,
                 sources=MappingProxyType(sources), banks=banks)


def _banks(path: Path, board_id: str, raw: object, regions: dict[str, Region],
           sources: dict[str, str]) -> tuple[Region, ...]:
    """The ``[[<board>.banks]]`` array: banks[0] is the ram region; no bank overlaps another,
    the flash or the stack. Absent: () (the Board then uses its ram region alone)."""
    if raw is None:
        return ()
    where = _where(path, board_id, "banks")
    if not isinstance(raw, list) or not raw or not all(isinstance(b, dict) for b in raw):
        raise ConfigError(f"{where}: expected a non-empty array of tables [[{board_id}.banks]]")
    banks = []
    for i, bank in enumerate(raw):
        if set(bank) != set(_BANK_KEYS):
            raise ConfigError(f"{where}[{i}]: expected keys {', '.join(_BANK_KEYS)}, "
                              f"got {', '.join(sorted(bank))}")
        name = bank["name"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}[{i}].name: expected a non-empty string")
        region = _region(path, board_id, f"banks[{i}]",
                         {k: v for k, v in bank.items() if k != "name"}, sources)
        sources.pop(f"banks[{i}]")
        sources[f"banks.{name}"] = bank["source"]
        banks.append(Region(name, region.address, region.size, region.memories))
    ram = regions["ram"]
    if (banks[0].address, banks[0].size) != (ram.address, ram.size):
        raise ConfigError(f"{where}[0]: the first bank must be the ram region "
                          f"(0x{ram.address:X}, {ram.size} bytes)")
    if len({b.name for b in banks}) != len(banks):
        raise ConfigError(f"{where}: bank names must be unique")
    others = [regions["flash"], regions["stack"], *banks]
    for i, a in enumerate(others):
        for b in others[i + 1:]:
            if a.address < b.end and b.address < a.end and (a in banks or b in banks):
                raise ConfigError(f"{path}: board {board_id!r}: bank and region "
                                  f"{a.name!r} / {b.name!r} overlap")
    return tuple(banks)


def _sourced(path: Path, board_id: str, key: str, raw: object, sources: dict[str, str]) -> object:
    if not isinstance(raw, dict) or set(raw) != {"value", "source"}:
        raise ConfigError(f"{_where(path, board_id, key)}: must be "
                          f"{{ value = ..., source = \"...\" }}, got {raw!r}")
    source = raw["source"]
    if not isinstance(source, str) or not source.strip():
        raise ConfigError(f"{_where(path, board_id, key)}: source must be a non-empty string")
    sources[key] = source
    return raw["value"]


def _region(path: Path, board_id: str, name: str, raw: object,
            sources: dict[str, str]) -> Region:
    where = _where(path, board_id, name)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table with {', '.join(_REGION_KEYS)}")
    if set(raw) != set(_REGION_KEYS):
        missing = sorted(set(_REGION_KEYS) - set(raw))
        extra = sorted(set(raw) - set(_REGION_KEYS))
        raise ConfigError(f"{where}: missing {missing}, unknown {extra}")
    for key, kind in _REGION_KEYS.items():
        if not _is(raw[key], kind):
            raise ConfigError(f"{where}.{key}: expected {kind.__name__}, got {raw[key]!r}")
    memories = raw["memories"]
    if not memories or not all(isinstance(m, str) and m for m in memories):
        raise ConfigError(f"{where}.memories: expected a non-empty list of memory names")
    if not raw["source"].strip():
        raise ConfigError(f"{where}.source: must not be empty")
    if raw["size"] <= 0 or raw["address"] < 0 or raw["address"] + raw["size"] > 1 << 32:
        raise ConfigError(f"{where}: 0x{raw['address']:X}+0x{raw['size']:X} is not a range "
                          "on the 32-bit bus")
    sources[name] = raw["source"]
    return Region(name, raw["address"], raw["size"], tuple(memories))


@functools.cache
def _default_boards() -> dict[str, Board]:
    return load_boards()


@functools.cache
def _cached_platform(path: Path) -> Platform:
    return load_platform(path)
