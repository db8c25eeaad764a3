"""Platform files, board data and datasheet facts, held to each other; the .repl parser.

The datasheet numbers are written once, in CHIP_FACTS below, with the STM32-FACTS section
they come from. Everything else is read from renode_platforms/ and atomsim/boards/.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from atomsim.boards import Board, board_ids, get_board, load_boards
from atomsim.boards.platform import Platform, Ref, load_platform
from atomsim.core.errors import ConfigError

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[1]
KB = 1024
MB = 1024 * KB

# Datasheet facts (shared/reference/STM32-FACTS.md §3 memory map from CMSIS-F4/F7/H7, §4 bases
# from CMSIS and the ZEPHYR board files) and the METHOD.md board table (flash, SRAM budget).
CHIP_FACTS = {
    "stm32f412": {
        "core": "cortex-m4", "renode_cpu": "cortex-m4f",
        "flash": [(0x08000000, 1 * MB)], "flash_aliases": [0x00000000],
        "ram": [(0x20000000, 256 * KB)],
        "flash_total": 1 * MB, "sram_budget": 256 * KB,
        "banks": [(0x20000000, 240 * KB)],  # SRAM1 less the 16 KB stack
        "uart": "UART.STM32_UART",
        "rcc": 0x40023800, "pwr": 0x40007000, "flash_regs": 0x40023C00, "dbgmcu": 0xE0042000,
        "syscfg": None,
    },
    "stm32f746": {
        "core": "cortex-m7", "renode_cpu": "cortex-m7",
        "flash": [(0x08000000, 1 * MB)], "flash_aliases": [0x00200000],
        "ram": [(0x00000000, 16 * KB), (0x20000000, 64 * KB), (0x20010000, 240 * KB),
                (0x2004C000, 16 * KB), (0x40024000, 4 * KB)],
        "flash_total": 1 * MB, "sram_budget": 320 * KB,
        "banks": [(0x20000000, 304 * KB)],  # DTCM+SRAM1; SRAM2 is the stack
        "uart": "UART.STM32F7_USART",
        "rcc": 0x40023800, "pwr": 0x40007000, "flash_regs": 0x40023C00, "dbgmcu": 0xE0042000,
        "syscfg": None,
    },
    "stm32h743": {
        "core": "cortex-m7", "renode_cpu": "cortex-m7",
        "flash": [(0x08000000, 1 * MB), (0x08100000, 1 * MB)], "flash_aliases": [],
        "ram": [(0x00000000, 64 * KB), (0x20000000, 128 * KB), (0x24000000, 512 * KB),
                (0x30000000, 128 * KB), (0x30020000, 128 * KB), (0x30040000, 32 * KB),
                (0x38000000, 64 * KB), (0x38800000, 4 * KB)],
        "flash_total": 2 * MB, "sram_budget": 512 * KB,
        # AXI SRAM, then SRAM1-3 (one contiguous run), then SRAM4; DTCM is the stack
        "banks": [(0x24000000, 512 * KB), (0x30000000, 288 * KB), (0x38000000, 64 * KB)],
        "uart": "UART.STM32F7_USART",
        "rcc": 0x58024400, "pwr": 0x58024800, "flash_regs": 0x52002000, "dbgmcu": 0x5C001000,
        "syscfg": 0x58000400,
    },
}
CONSOLE_BASE = 0x40004800  # USART3 on all three NUCLEO boards (STM32-FACTS §4)
DWT_BASE = 0xE0001000  # CORE-CM7 / M4TRM (STM32-FACTS §4)
SCS_BASE = 0xE000E000  # NVIC, SysTick, SCB, FPU registers (STM32-FACTS §4)
RCC_TYPES = {"stm32f412": "Miscellaneous.STM32F4_RCC", "stm32f746": "Miscellaneous.STM32F4_RCC",
             "stm32h743": "Miscellaneous.STM32H7_RCC"}
FLASH_CTRL_TYPES = {"stm32f412": "MTD.STM32F4_FlashController",
                    "stm32f746": "MTD.STM32F4_FlashController",
                    "stm32h743": "MTD.STM32H7_FlashController"}
# Types AtomSim's emulator models (the brief it is written against); nothing else may appear
MODELLED_TYPES = {"IRQControllers.NVIC", "Miscellaneous.DWT", "UART.STM32_UART",
                  "UART.STM32F7_USART", "Miscellaneous.STM32F4_RCC",
                  "Miscellaneous.STM32H7_RCC", "MTD.STM32F4_FlashController",
                  "MTD.STM32H7_FlashController", "Miscellaneous.STM32_PWR",
                  "Python.PythonPeripheral"}


def _is_flash(name: str) -> bool:
    return name.startswith("flash")


@pytest.fixture(params=sorted(CHIP_FACTS))
def board(request) -> Board:
    return get_board(request.param)


@pytest.fixture
def platform(board: Board) -> Platform:
    return board.platform()


# --- the boards file and the facts cover the same boards ---------------------------------------

def test_every_board_has_facts_and_a_platform_file():
    assert set(board_ids()) == set(CHIP_FACTS)
    for board_id in board_ids():
        assert get_board(board_id).platform_path == REPO / "renode_platforms" / f"{board_id}.repl"


# --- memory map against the datasheet -----------------------------------------------------------

def test_memories_have_datasheet_sizes(board, platform):
    facts = CHIP_FACTS[board.id]
    flash = [m for m in platform.memories if _is_flash(m.name)]
    ram = [m for m in platform.memories if not _is_flash(m.name)]
    assert sorted((m.address, m.size) for m in flash) == facts["flash"]
    assert sorted((m.address, m.size) for m in ram) == facts["ram"]
    assert sum(m.size for m in flash) == facts["flash_total"] == board.flash.size
    assert sorted(a for m in flash for a in m.addresses[1:]) == facts["flash_aliases"]
    assert all(len(m.addresses) == 1 for m in ram), "RAM is never aliased in these maps"


def test_sram_budget_is_the_contiguous_block_holding_ram(board, platform):
    blocks = sorted(r for m in platform.memories if not _is_flash(m.name) for r in m.ranges())
    runs: list[list[int]] = []
    for start, end in blocks:
        if runs and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    (run,) = [r for r in runs if r[0] <= board.ram.address < r[1]]
    assert run[1] - run[0] == board.sram_budget_bytes == CHIP_FACTS[board.id]["sram_budget"]


@pytest.mark.parametrize("region_name", ["flash", "ram", "stack"])
def test_region_lies_in_the_memories_it_names(board, platform, region_name):
    region = getattr(board, region_name)
    ranges = sorted(r for name in region.memories for r in platform.memory(name).ranges())
    for name in region.memories:  # every named memory contributes to the region
        assert any(s < region.end and region.address < e
                   for s, e in platform.memory(name).ranges()), (region_name, name)
    covered = region.address  # the named memories cover the region with no gap
    for start, end in ranges:
        if start <= covered < end:
            covered = end
    assert covered >= region.end, f"{region_name} not inside {region.memories}"


def test_banks_are_contiguous_runs_of_the_memories_they_name(board, platform):
    assert [(b.address, b.size) for b in board.banks] == CHIP_FACTS[board.id]["banks"]
    assert (board.banks[0].address, board.banks[0].size) == (board.ram.address, board.ram.size)
    for bank in board.banks:
        ranges = sorted(r for name in bank.memories for r in platform.memory(name).ranges())
        covered = bank.address  # the named memories cover the bank with no gap
        for start, end in ranges:
            if start <= covered < end:
                covered = end
        assert covered >= bank.end, f"{bank.name} not inside {bank.memories}"
    others = (board.flash, board.stack, *board.banks)
    for a, b in itertools.combinations(others, 2):
        assert a.end <= b.address or b.end <= a.address, (a, b)


def test_regions_do_not_overlap(board):
    regions = sorted((board.flash, board.ram, board.stack), key=lambda r: r.address)
    for low, high in itertools.pairwise(regions):
        assert low.end <= high.address, (low, high)


# --- core and peripherals -------------------------------------------------------------------

def test_cpu_matches_core(board, platform):
    facts = CHIP_FACTS[board.id]
    assert board.core == facts["core"]
    assert platform.cpu_type == facts["renode_cpu"]
    assert platform.cpu_type.startswith(board.core)
    assert board.fpu


def test_console_uart(board, platform):
    uart = platform.peripheral(board.console)
    assert uart.address == CONSOLE_BASE
    assert uart.type == CHIP_FACTS[board.id]["uart"]


def test_system_peripherals_and_clocks(board, platform):
    nvic, dwt = platform.peripheral("nvic"), platform.peripheral("dwt")
    assert (nvic.type, nvic.address) == ("IRQControllers.NVIC", SCS_BASE)
    assert (dwt.type, dwt.address) == ("Miscellaneous.DWT", DWT_BASE)
    assert nvic.properties.get("systickFrequency") == board.clock_hz
    assert dwt.properties.get("frequency") == board.clock_hz


def test_clock_setup_peripherals_at_cmsis_bases(board, platform):
    facts = CHIP_FACTS[board.id]
    rcc, pwr = platform.peripheral("rcc"), platform.peripheral("pwr")
    flash_ctrl = platform.peripheral("flash_ctrl")
    assert (rcc.type, rcc.address) == (RCC_TYPES[board.id], facts["rcc"])
    assert pwr.address == facts["pwr"]
    assert (flash_ctrl.type, flash_ctrl.address) == (FLASH_CTRL_TYPES[board.id],
                                                     facts["flash_regs"])
    flash_refs = [v for v in flash_ctrl.properties.values() if isinstance(v, Ref)]
    assert flash_refs and all(_is_flash(platform.memory(r).name) for r in flash_refs)
    tags = {t.start: t for t in platform.tags}
    assert facts["dbgmcu"] in tags
    if facts["syscfg"] is not None:
        assert tags[facts["syscfg"]].name == "SYSCFG"


def test_only_modelled_types_are_declared(platform):
    assert {p.type for p in platform.peripherals} <= MODELLED_TYPES


def _resc(board: Board) -> str:
    return (REPO / "renode_platforms" / f"{board.id}.resc").read_text()


def test_references_resolve(board, platform):
    # `rtc` (for Renode's STM32F4_RCC) is the one name the .resc declares before the .repl
    from_resc = set(re.findall(r'LoadPlatformDescriptionFromString "(\w+):', _resc(board)))
    declared = {m.name for m in platform.memories} | {p.name for p in platform.peripherals}
    for peripheral in platform.peripherals:
        for key, value in peripheral.properties.items():
            if isinstance(value, Ref):
                assert value in declared | from_resc, (peripheral.name, key, value)


def test_python_peripheral_scripts_exist(platform):
    scripts = [p.properties.get("filename") for p in platform.peripherals
               if p.type == "Python.PythonPeripheral"]
    for script in scripts:
        assert (REPO / script).is_file(), script


def test_resc_loads_the_board(board):
    resc = _resc(board)
    assert f'mach create "{board.id}"' in resc
    assert f"machine LoadPlatformDescription @renode_platforms/{board.id}.repl" in resc
    assert re.search(r"^\$bin\?=@build/", resc, re.MULTILINE)
    assert re.search(r'macro reset\n"""\n\s+sysbus LoadELF \$bin\n', resc)
    assert resc.rstrip().endswith("runMacro $reset")
    mips = re.search(r"^cpu PerformanceInMips (\d+)$", resc, re.MULTILINE)
    assert mips and int(mips.group(1)) == board.mips_nominal


# --- the Renode Python peripherals for PWR --------------------------------------------------------

class _Request:
    """Renode's PythonPeripheral request, in the old (isInit) or new (IsInit) spelling."""

    def __init__(self, capitalised: bool, kind: str, offset: int = 0, value: int = 0):
        names = ("IsInit", "IsRead", "IsWrite", "Offset", "Value") if capitalised else \
            ("isInit", "isRead", "isWrite", "offset", "value")
        for name, v in zip(names, (kind == "init", kind == "read", kind == "write",
                                   offset, value), strict=True):
            setattr(self, name, v)

    def result(self) -> int:
        return getattr(self, "Value", getattr(self, "value", None))


class _PwrScript:
    """Runs a pydev script the way Renode does: one shared scope, one exec per access."""

    def __init__(self, path: Path, capitalised: bool):
        self.code = compile(path.read_text(), str(path), "exec")
        self.capitalised, self.scope = capitalised, {}
        self._run("init")

    def _run(self, kind: str, offset: int = 0, value: int = 0) -> _Request:
        self.scope["request"] = request = _Request(self.capitalised, kind, offset, value)
        exec(self.code, self.scope)  # noqa: S102 -- the script under test, as Renode runs it
        return request

    def read(self, offset: int) -> int:
        return self._run("read", offset).result()

    def write(self, offset: int, value: int) -> None:
        self._run("write", offset, value)


@pytest.mark.parametrize("capitalised", [False, True])
def test_f7_pwr_overdrive_flags_follow_enables(capitalised):
    pwr = _PwrScript(REPO / "renode_platforms/pydev/stm32f7_pwr.py", capitalised)
    cr1, csr1, oden, odswen, vosrdy = 0x00, 0x04, 1 << 16, 1 << 17, 1 << 14
    assert pwr.read(cr1) == 0x0000C000
    assert pwr.read(csr1) & (oden | odswen) == 0 and pwr.read(csr1) & vosrdy
    pwr.write(cr1, 0xC000 | oden)
    assert pwr.read(csr1) & (oden | odswen) == oden
    pwr.write(cr1, 0xC000 | oden | odswen)
    assert pwr.read(csr1) & (oden | odswen) == oden | odswen
    pwr.write(cr1, 0xC000)
    assert pwr.read(csr1) & (oden | odswen) == 0
    assert pwr.read(cr1) == 0xC000


@pytest.mark.parametrize("capitalised", [False, True])
def test_h7_pwr_ready_flags(capitalised):
    pwr = _PwrScript(REPO / "renode_platforms/pydev/stm32h7_pwr.py", capitalised)
    csr1, cr3, d3cr, bit13 = 0x04, 0x0C, 0x18, 1 << 13
    assert pwr.read(csr1) & bit13
    assert pwr.read(cr3) == 0x6
    pwr.write(cr3, 0x2)
    assert pwr.read(cr3) == 0x2
    assert pwr.read(d3cr) == 0x4000 | bit13
    pwr.write(d3cr, 0xC000)
    assert pwr.read(d3cr) == 0xC000 | bit13


# --- parser ----------------------------------------------------------------------------------------

SOC = """\
/* a tiny SoC
   spanning comment */
cpu: CPU.CortexM @ sysbus
    cpuType: "cortex-m7"   // trailing comment
    nvic: nvic

nvic: IRQControllers.NVIC @ sysbus 0xE000E000
    systickFrequency: 1_000
    priorityMask: 0xF0

flash: Memory.MappedMemory @ {
        sysbus 0x0800_0000;   // primary
        sysbus 0x0
    }
    size: 0x10_0000

ram: Memory.MappedMemory @ sysbus <0x20000000, +0x1000>
    size: 0x1000

pwr: Python.PythonPeripheral @ sysbus 0x40007000
    size: 0x400
    initable: true

sysbus:
    init:
        Tag <0xE0042000, 0xE0042003> "DBGMCU_IDCODE" 0x450
        Tag <0xE0042004, 0xE00423FF> "DBGMCU"
"""


def _write(tmp_path: Path, text: str, name: str = "board.repl") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parses_declarations_aliases_and_tags(tmp_path):
    platform = load_platform(_write(tmp_path, SOC))
    assert platform.cpu_type == "cortex-m7"
    flash = platform.memory("flash")
    assert flash.addresses == (0x08000000, 0x0) and flash.size == 0x100000
    assert platform.memory("ram").ranges() == ((0x20000000, 0x20001000),)
    nvic = platform.peripheral("nvic")
    assert dict(nvic.properties) == {"systickFrequency": 1000, "priorityMask": 0xF0}
    assert nvic.size is None
    pwr = platform.peripheral("pwr")
    assert pwr.size == 0x400 and pwr.properties.get("initable") is True
    assert [(t.name, t.start, t.end, t.value) for t in platform.tags] == [
        ("DBGMCU_IDCODE", 0xE0042000, 0xE0042003, 0x450),
        ("DBGMCU", 0xE0042004, 0xE00423FF, 0)]


def test_using_and_override(tmp_path):
    _write(tmp_path, SOC, "soc.repl")
    board = _write(tmp_path, 'using "soc.repl"\n\nnvic:\n    systickFrequency: 480_000_000\n'
                             '\nuart: UART.STM32F7_USART @ sysbus 0x40004800\n'
                             '    frequency: 120_000_000\n')
    platform = load_platform(board)
    nvic = platform.peripheral("nvic")
    assert nvic.properties.get("systickFrequency") == 480_000_000
    assert nvic.properties.get("priorityMask") == 0xF0  # kept from the SoC file
    assert platform.peripheral("uart").type == "UART.STM32F7_USART"


def test_using_falls_back_to_the_repository_root(tmp_path):
    board = _write(tmp_path, 'using "renode_platforms/cpus/stm32f412.repl"\n'
                             "dwt:\n    frequency: 1\n")
    assert load_platform(board).peripheral("dwt").properties.get("frequency") == 1


def test_missing_names_are_config_errors(tmp_path):
    platform = load_platform(_write(tmp_path, SOC))
    with pytest.raises(ConfigError, match="no memory called 'sram'.*flash"):
        platform.memory("sram")
    with pytest.raises(ConfigError, match="no peripheral called 'usart3'.*nvic"):
        platform.peripheral("usart3")


MALFORMED = {
    # name: (text appended to SOC, error line within that text, words in the message)
    "bad address": ("uart: UART.STM32_UART @ sysbus 0xZZ\n", 1, "bad address"),
    "unknown syntax": ("uart UART.STM32_UART at 0x40004800\n", 1, "unsupported syntax"),
    "irq wiring": ("uart: UART.STM32_UART @ sysbus 0x40004800\n    -> nvic@39\n", 2,
                   "unsupported line"),
    "overlapping memories": ("sram2: Memory.MappedMemory @ sysbus 0x20000800\n    size: 0x1000\n",
                             1, "overlaps memory 'ram'"),
    "peripheral in memory": ("uart: UART.STM32_UART @ sysbus 0x20000010\n", 1,
                             "overlaps memory 'ram'"),
    "tag over peripheral": ("sysbus:\n    init:\n        Tag <0x40007100, 0x40007103> \"X\"\n",
                            3, "overlaps peripheral 'pwr'"),
    "past the bus": ("big: Memory.MappedMemory @ sysbus 0xFFFFF000\n    size: 0x2000\n", 1,
                     "past the 32-bit bus"),
    "duplicate": ("ram: Memory.MappedMemory @ sysbus 0x30000000\n    size: 0x1000\n", 1,
                  "already declared"),
    "undeclared override": ("uart:\n    frequency: 1\n", 1, "not declared"),
    "memory without size": ("sram2: Memory.MappedMemory @ sysbus 0x30000000\n", 1,
                            "needs an integer 'size'"),
    "tag end below start": ("sysbus:\n    init:\n        Tag <0x50000010, 0x50000000> \"X\"\n",
                            3, "below its start"),
    "late using": ('using "other.repl"\n', 1, "must come before"),
    "unterminated string": ("uart: UART.STM32_UART @ sysbus 0x40004800\n    name: \"abc\n", 2,
                            "unterminated string"),
    "bad value": ("uart: UART.STM32_UART @ sysbus 0x40004800\n    frequency: 3.3\n", 2,
                  "bad number"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_names_file_and_line(tmp_path, case):
    extra, line_in_extra, words = MALFORMED[case]
    line = SOC.count("\n") + line_in_extra
    path = _write(tmp_path, SOC + extra)
    with pytest.raises(ConfigError) as error:
        load_platform(path)
    assert f"{path}:{line}:" in str(error.value)
    assert words in str(error.value)


def test_using_cycle_and_missing_cpu(tmp_path):
    _write(tmp_path, 'using "b.repl"\n', "a.repl")
    _write(tmp_path, 'using "a.repl"\n', "b.repl")
    with pytest.raises(ConfigError, match="using cycle"):
        load_platform(tmp_path / "a.repl")
    no_cpu = _write(tmp_path, "ram: Memory.MappedMemory @ sysbus 0x20000000\n    size: 0x100\n")
    with pytest.raises(ConfigError, match="exactly one CPU"):
        load_platform(no_cpu)


# --- board loader ----------------------------------------------------------------------------------

BOARD_TOML = """\
[demo]
name = "STM32F412"
board = "NUCLEO-F412ZG"
platform = "stm32f412.repl"
core = { value = "cortex-m4", source = "S" }
fpu = { value = true, source = "S" }
clock_hz = { value = 100_000_000, source = "S" }
flash_wait_states = { value = 3, source = "S" }
icache_bytes = { value = 0, source = "S" }
dcache_bytes = { value = 0, source = "S" }
flash_accelerator = { value = "ART", source = "S" }
console = { value = "usart3", source = "S" }
sram_budget_bytes = { value = 262144, source = "S" }

[demo.flash]
address = 0x08000000
size = 0x100000
memories = ["flash"]
source = "S"

[demo.ram]
address = 0x20000000
size = 0x3C000
memories = ["sram"]
source = "S"

[demo.stack]
address = 0x2003C000
size = 0x4000
memories = ["sram"]
source = "S"
"""


def test_unknown_board_lists_the_valid_ids():
    with pytest.raises(ConfigError) as error:
        get_board("stm32f999")
    for board_id in board_ids():
        assert board_id in str(error.value)


def test_a_valid_boards_file_loads(tmp_path):
    boards = load_boards(_write(tmp_path, BOARD_TOML, "boards.toml"))
    demo = boards["demo"]
    assert demo.clock_hz == 100_000_000 and demo.mips_nominal == 100.0
    assert demo.stack.end == 0x20040000 and demo.sources["clock_hz"] == "S"
    assert demo.platform().memory("sram").size == 256 * KB


BAD_BOARDS = {
    "number without source": ("clock_hz = { value = 100_000_000, source = \"S\" }",
                              "clock_hz = 100_000_000", "'clock_hz'"),
    "empty source": ("flash_wait_states = { value = 3, source = \"S\" }",
                     "flash_wait_states = { value = 3, source = \"\" }", "'flash_wait_states'"),
    "wrong type": ("icache_bytes = { value = 0,", "icache_bytes = { value = \"0\",",
                   "'icache_bytes'"),
    "bool for a number": ("dcache_bytes = { value = 0,", "dcache_bytes = { value = false,",
                          "'dcache_bytes'"),
    "unknown key": ("board = \"NUCLEO-F412ZG\"", "board = \"NUCLEO-F412ZG\"\nboardd = \"x\"",
                    "'boardd'"),
    "region without source": ("memories = [\"flash\"]\nsource = \"S\"",
                              "memories = [\"flash\"]", "'flash'"),
    "overlapping regions": ("address = 0x2003C000", "address = 0x2003B000", "overlap"),
    "missing platform": ("platform = \"stm32f412.repl\"", "platform = \"nope.repl\"",
                         "'platform'"),
    "bank overlapping the stack": ("", "\n[[demo.banks]]\nname = \"sram\"\naddress = 0x20000000"
                                   "\nsize = 0x3C000\nmemories = [\"sram\"]\nsource = \"S\"\n"
                                   "[[demo.banks]]\nname = \"top\"\naddress = 0x2003E000\n"
                                   "size = 0x1000\nmemories = [\"sram\"]\nsource = \"S\"\n",
                                   "overlap"),
    "first bank not ram": ("", "\n[[demo.banks]]\nname = \"low\"\naddress = 0x20000000\n"
                           "size = 0x1000\nmemories = [\"sram\"]\nsource = \"S\"\n",
                           "ram region"),
}


@pytest.mark.parametrize("case", sorted(BAD_BOARDS))
def test_bad_boards_file_names_board_and_key(tmp_path, case):
    old, new, words = BAD_BOARDS[case]
    assert old in BOARD_TOML
    text = BOARD_TOML + new if not old else BOARD_TOML.replace(old, new, 1)
    path = _write(tmp_path, text, "boards.toml")
    with pytest.raises(ConfigError) as error:
        load_boards(path)
    assert "'demo'" in str(error.value) and words in str(error.value)
