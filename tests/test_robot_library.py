"""Issue 3: the Robot keyword library (atomsim.robot), piece by piece, on real firmware.

Monitor commands are parsed and executed against a machine built from the board's platform
file; UART expectations run the example firmware on the emulator and are checked for what a
failing test must tell its reader (the awaited text, the UART's last lines, emulated time).
"""

from __future__ import annotations

import re

import pytest
from robot.utils import Importer

from atomsim.boards import get_board
from atomsim.core.errors import ConfigError
from atomsim.core.paths import REPO_ROOT
from atomsim.robot import AtomSimLibrary, parse_time
from atomsim.robot import run as robot_run

pytestmark = pytest.mark.firmware


@pytest.fixture
def lib():
    """A fresh library instance (one Robot suite's worth of state)."""
    library = AtomSimLibrary()
    yield library
    library.reset_emulation()


def boot(lib: AtomSimLibrary, example: str, board: str, timeout: float = 1.0) -> str:
    """mach create + platform + ELF + terminal tester, in monitor commands."""
    elf = lib.build_example(example, board)
    lib.execute_command(f'mach create "{board}"')
    lib.execute_command(f"machine LoadPlatformDescription @{lib.board_platform(board)}")
    lib.execute_command(f"sysbus LoadELF @{elf}")
    lib.create_terminal_tester(lib.board_console_uart(board), timeout=timeout)
    lib.start_emulation()
    return elf


# -- monitor commands ---------------------------------------------------------------------

def test_platform_file_selects_the_board(lib):
    lib.execute_command("mach create")
    lib.execute_command("machine LoadPlatformDescription @renode_platforms/stm32h743.repl")
    assert lib.emulation.machine().board.id == "stm32h743"
    assert lib.emulation.current == "machine-0"


def test_a_platform_file_of_no_board_is_refused(lib):
    lib.execute_command("mach create")
    with pytest.raises(ConfigError, match=r"no AtomSim board uses .*cpus/stm32f412\.repl"):
        lib.execute_command("machine LoadPlatformDescription @renode_platforms/cpus/stm32f412.repl")


@pytest.mark.parametrize("command", [
    "showAnalyzer sysbus.usart3", "sysbus LoadBinary @x.bin 0x08000000", "cpu Step",
    "emulation SetGlobalQuantum \"0.0001\"", "mach create a b",
])
def test_unknown_command_fails_naming_it(lib, command):
    lib.execute_command("mach create")
    lib.execute_command("machine LoadPlatformDescription @renode_platforms/stm32f412.repl")
    with pytest.raises(ConfigError, match="unsupported monitor command") as info:
        lib.execute_command(command)
    assert repr(command) in str(info.value)


def test_register_reads_print_like_renode(lib):
    boot(lib, "hello", "stm32f746")
    lib.wait_for_line_on_uart("Hello")
    # USART3 CR1 after the runtime's set-up: UE (bit 0) | RE (bit 2) | TE (bit 3)
    assert lib.execute_command("sysbus ReadDoubleWord 0x40004800") == "0x0000000D\n"
    pc = lib.emulation.machine().pc
    assert lib.execute_command("sysbus.cpu PC") == f"0x{pc:x}\n"
    assert re.fullmatch(r"0x8[0-9a-f]{6}\n", lib.execute_command("cpu PC"))


def test_write_then_read_a_word_of_sram(lib):
    boot(lib, "hello", "stm32f412")
    lib.execute_command("sysbus WriteDoubleWord 0x20001000 0xCAFE_F00D")
    assert lib.execute_command("sysbus ReadDoubleWord 0x20001000") == "0xCAFEF00D\n"


def test_unmodelled_address_read_names_it(lib):
    boot(lib, "hello", "stm32f412")
    with pytest.raises(Exception, match="0x40013000"):
        lib.execute_command("sysbus ReadDoubleWord 0x40013000")


def test_variables_and_the_board_script(lib, tmp_path):
    elf = lib.build_example("hello", "stm32f412")
    lib.execute_command(f"$bin=@{elf}")
    lib.execute_command("$bin?=@renode_platforms/stm32f412.repl")  # set already: kept
    assert lib.emulation.variables["bin"] == str(elf)
    lib.execute_command("include @renode_platforms/stm32f412.resc")
    machine = lib.emulation.machine()
    assert machine.board.id == "stm32f412"
    assert str(machine.firmware.path) == elf
    assert "reset" in lib.emulation.macros
    lib.create_terminal_tester("sysbus.usart3")
    lib.start_emulation()
    assert lib.wait_for_line_on_uart("Hello from STM32F412!").line == "Hello from STM32F412!"


def test_script_without_the_bin_variable_uses_its_default(lib, tmp_path):
    elf = lib.build_example("hello", "stm32f746")
    script = tmp_path / "board.resc"
    script.write_text(
        ":name: test\n# comment\nusing sysbus\nmach create \"t\"\n"
        "machine LoadPlatformDescription @renode_platforms/stm32f746.repl\n"
        f"$bin?=@{elf}\nmacro reset\n\"\"\"\n    sysbus LoadELF $bin\n\"\"\"\nrunMacro $reset\n")
    lib.execute_script(str(script))
    assert str(lib.emulation.machine("t").firmware.path) == elf


def test_unterminated_macro_is_an_error(lib, tmp_path):
    script = tmp_path / "bad.resc"
    script.write_text('macro reset\n"""\n    sysbus LoadELF $bin\n')
    with pytest.raises(ConfigError, match="unterminated"):
        lib.execute_command(f"include @{script}")


def test_machines_are_selected_by_name_or_index(lib):
    lib.execute_command('mach create "a"')
    lib.execute_command('mach create "b"')
    lib.execute_command("mach set 0")
    assert lib.emulation.current == "a"
    lib.execute_command('mach set "b"')
    assert lib.emulation.current == "b"
    with pytest.raises(ConfigError, match="no machine named 'c'"):
        lib.execute_command('mach set "c"')


@pytest.mark.parametrize("text, seconds", [("0.5", 0.5), ("00:00:01.5", 1.5), ("2", 2.0)])
def test_time_intervals(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1s", "-1", "1:2"])
def test_bad_time_intervals(text):
    with pytest.raises(ConfigError, match="time interval"):
        parse_time(text)


def test_run_for_advances_emulated_time(lib):
    boot(lib, "echo", "stm32f412")  # polls its RX line forever: time can run freely
    board = get_board("stm32f412")
    lib.execute_command('emulation RunFor "0.003"')
    cycles = lib.emulated_cycles()
    assert 0.003 * board.clock_hz <= cycles < 0.003 * board.clock_hz + 1000
    lib.execute_command('emulation RunFor "00:00:00.001"')
    assert lib.emulated_cycles() >= 0.004 * board.clock_hz


def test_machines_advance_together(lib):
    for name, board in (("a", "stm32f412"), ("b", "stm32f746")):
        elf = lib.build_example("echo", board)
        lib.execute_command(f'mach create "{name}"')
        lib.execute_command(f"machine LoadPlatformDescription @{lib.board_platform(board)}")
        lib.execute_command(f"sysbus LoadELF @{elf}")
    lib.execute_command('emulation RunFor "0.002"')
    for name in ("a", "b"):
        slot = lib.emulation.slot(name)
        block_slack = 100 / slot.board.clock_hz
        assert 0.002 <= slot.seconds() < 0.002 + block_slack


def test_a_tester_on_a_machine_without_firmware(lib):
    lib.execute_command("mach create")
    lib.execute_command("machine LoadPlatformDescription @renode_platforms/stm32f412.repl")
    lib.create_terminal_tester("sysbus.usart3")
    lib.start_emulation()
    with pytest.raises(ConfigError, match="has no firmware"):
        lib.wait_for_line_on_uart("Hello")


def test_a_wait_before_start_emulation_fails_as_in_renode(lib):
    # Renode's emulated time stands still until Start Emulation: the wait cannot succeed.
    elf = lib.build_example("hello", "stm32f412")
    lib.execute_command('mach create "m"')
    lib.execute_command(f"machine LoadPlatformDescription @{lib.board_platform('stm32f412')}")
    lib.execute_command(f"sysbus LoadELF @{elf}")
    lib.create_terminal_tester("sysbus.usart3")
    with pytest.raises(AssertionError, match="not started.*Start Emulation"):
        lib.wait_for_line_on_uart("Hello")
    assert lib.emulation.machine().cycles() == 0  # nothing ran
    lib.start_emulation()
    assert lib.wait_for_line_on_uart("Hello").line.startswith("Hello")


def test_a_bad_regex_is_a_named_error(lib):
    boot(lib, "hello", "stm32f412")
    with pytest.raises(ConfigError, match=r"not a valid regular expression: >>\(unclosed<<"):
        lib.wait_for_line_on_uart("(unclosed", treatAsRegex=True)


# -- UART expectations --------------------------------------------------------------------

def test_regex_groups_and_timestamp(lib):
    boot(lib, "bench", "stm32f412")
    result = lib.wait_for_line_on_uart(r"matmul_cycles=(\d+)", treatAsRegex=True)
    assert result.Groups == result.groups
    assert len(result.Groups) == 1 and int(result.Groups[0]) > 0
    assert result.Line == f"@atomsim matmul_cycles={result.Groups[0]}"
    assert 0 < result.Timestamp <= lib.emulated_cycles() / 100e6 * 1e3
    plain = lib.wait_for_line_on_uart("crc32=")
    assert plain.Groups == []


def test_a_matched_line_is_consumed_with_the_lines_before_it(lib):
    boot(lib, "bench", "stm32f412")
    lib.wait_for_line_on_uart("bench: PASS")
    with pytest.raises(AssertionError, match="matmul_cycles"):  # shown in the report...
        lib.wait_for_line_on_uart("matmul_cycles")  # ...but no longer awaitable


def test_wait_fails_at_once_when_the_firmware_ends(lib):
    boot(lib, "hello", "stm32f412", timeout=8)
    with pytest.raises(AssertionError) as info:
        lib.wait_for_line_on_uart("Goodbye")
    message = str(info.value)
    assert ">>Goodbye<<" in message
    assert "the firmware ended" in message and "exit code 0" in message
    assert "| Hello from STM32F412!" in message  # the UART's last lines
    assert re.search(r"machine is at \d+\.\d{3} ms", message)


def test_wait_timeout_message_counts_emulated_time(lib):
    boot(lib, "echo", "stm32f412")
    lib.wait_for_line_on_uart("echo ready")
    lib.write_to_uart("half a line")
    with pytest.raises(AssertionError) as info:
        lib.wait_for_line_on_uart(r"echo: \w+", timeout=0.002, treatAsRegex=True)
    message = str(info.value)
    assert r"line containing regex >>echo: \w+<<" in message
    assert "within the timeout of 0.002 s of emulated time" in message
    assert "waited 2.000 ms of emulated time" in message
    assert "| echo ready" in message


def test_wait_names_the_fault_that_ended_the_run(lib):
    boot(lib, "fault", "stm32f746")
    with pytest.raises(AssertionError) as info:
        lib.wait_for_line_on_uart("never")
    message = str(info.value)
    assert "stopped with fault: hard fault: bus error on read at 0x60000000" in message
    assert "| about to read 0x60000000" in message


def test_write_line_ends_with_a_carriage_return(lib):
    boot(lib, "echo", "stm32f412")
    lib.wait_for_line_on_uart("echo ready")
    lib.write_line_to_uart("abc", waitForEcho=False)
    assert bytes(lib.emulation.machine().peripherals["usart3"].rx) == b"abc\r"
    lib.write_to_uart("\n")  # the echo example ends a line at a line feed
    assert lib.wait_for_line_on_uart("echo:").line == "echo: abc"


def test_write_line_waits_for_the_echo_by_default(lib):
    boot(lib, "hello", "stm32f412")  # reads nothing, echoes nothing
    lib.wait_for_line_on_uart("Hello")
    with pytest.raises(AssertionError, match=">>abc<<"):
        lib.write_line_to_uart("abc")


def test_should_not_be_on_uart(lib):
    boot(lib, "echo", "stm32f412")
    lib.should_not_be_on_uart("echo:", timeout=0.001)
    lib.write_to_uart("ping\n")
    with pytest.raises(AssertionError, match="unexpected line containing >>echo: ping<<"):
        lib.should_not_be_on_uart("echo: ping", timeout=0.01)


def test_next_line(lib):
    boot(lib, "bench", "stm32f412")
    first = lib.wait_for_next_line_on_uart()
    second = lib.wait_for_next_line_on_uart()
    assert first.line.startswith("@atomsim matmul_cycles=")
    assert second.line.startswith("@atomsim crc32=")


def test_tester_needs_a_uart_of_the_machine(lib):
    lib.execute_command("mach create")
    lib.execute_command("machine LoadPlatformDescription @renode_platforms/stm32f412.repl")
    with pytest.raises(ConfigError, match="no UART 'sysbus.usart1'.*sysbus.usart3"):
        lib.create_terminal_tester("sysbus.usart1")


def test_reset_emulation_clears_machines_and_testers(lib):
    boot(lib, "hello", "stm32f412")
    lib.reset_emulation()
    assert lib.emulation.slots == {} and lib.testers == []
    with pytest.raises(ConfigError, match="no terminal tester"):
        lib.wait_for_line_on_uart("Hello")


# -- AtomSim keywords ---------------------------------------------------------------------

def test_fault_should_be(lib):
    boot(lib, "fault", "stm32f412")
    lib.run_firmware_until_exit()
    lib.fault_should_be("HardFault", "0x60000000")
    lib.fault_should_be("fault")
    with pytest.raises(AssertionError, match="at 0x60000000, expected 0x60000004"):
        lib.fault_should_be("HardFault", "0x60000004")
    with pytest.raises(AssertionError, match="ended with fault"):
        lib.fault_should_be("UnmodelledAccess")
    with pytest.raises(ConfigError, match="unknown fault type 'Crash'"):
        lib.fault_should_be("Crash")


def test_unmodelled_access_example(lib):
    boot(lib, "unmodelled", "stm32f746")
    result = lib.run_firmware_until_exit()
    assert result.status == "unmodelled-access"
    lib.fault_should_be("unmodelled-access", "0x40013000")


def test_budgets(lib):
    boot(lib, "bench", "stm32f412")
    with pytest.raises(AssertionError, match="has not ended yet"):
        lib.cycles_should_be_below(10**9)
    result = lib.run_firmware_until_exit()
    lib.peak_ram_should_be_below(result.peak_ram_bytes + 1)
    lib.flash_should_be_below(result.flash_bytes + 1)
    lib.cycles_should_be_below(result.cycles + 1)
    with pytest.raises(AssertionError, match=rf"peak RAM {result.peak_ram_bytes} bytes .* of "
                       rf"bench\.elf on stm32f412 is not below the budget of "
                       rf"{result.peak_ram_bytes} bytes"):
        lib.peak_ram_should_be_below(result.peak_ram_bytes)
    with pytest.raises(AssertionError, match=rf"run time {result.cycles} cycles"):
        lib.cycles_should_be_below(result.cycles)


def test_dwt_count_agrees_with_the_markers(lib):
    boot(lib, "cyccnt", "stm32h743")
    work = lib.wait_for_line_on_uart(r"work_cycles=(\d+)", treatAsRegex=True)
    lib.run_firmware_until_exit()
    assert abs(lib.cycles_between_markers() - int(work.Groups[0])) <= 16


# -- Robot integration --------------------------------------------------------------------

def test_robot_imports_the_library_by_module_name():
    assert Importer("test library").import_class_or_module("atomsim.robot") is AtomSimLibrary


def test_runner_passes_keywords_and_firmware():
    args = robot_run.robot_arguments(["--include", "smoke"])
    variables = {args[i + 1].split(":", 1)[0]: args[i + 1].split(":", 1)[1]
                 for i, a in enumerate(args) if a == "--variable"}
    assert variables["RENODEKEYWORDS"].endswith("robot/atomsim-renode-keywords.resource")
    assert variables["BIN"].endswith("hello.elf")
    assert args[-3:] == ["--include", "smoke", str(REPO_ROOT / "robot")]


def test_runner_exit_status_follows_the_suites(tmp_path):
    passing = tmp_path / "passing.robot"
    passing.write_text(
        "*** Settings ***\nResource    ${RENODEKEYWORDS}\n*** Test Cases ***\n"
        "Should Boot\n    Execute Command    mach create\n"
        "    Execute Command    machine LoadPlatformDescription @renode_platforms/stm32f746.repl\n"
        "    Execute Command    sysbus LoadELF @${BIN}\n"
        "    Create Terminal Tester    sysbus.usart3\n    Start Emulation\n"
        "    Wait For Line On Uart    Hello\n")
    failing = tmp_path / "failing.robot"
    failing.write_text(passing.read_text().replace("Hello\n", "Goodbye\n"))
    out = ["--outputdir", str(tmp_path / "out"), "--quiet"]
    assert robot_run.main([*out, str(passing)]) == 0
    assert robot_run.main([*out, str(failing)]) == 1
