"""Issue 2: firmware on the emulated boards, faults as results, exact memory figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import BOARD_IDS, HERE

from atomsim.boards import get_board
from atomsim.core.errors import (
    DoesNotFit,
    ElfError,
    FirmwareFailure,
    HardFault,
    StackOverflow,
    Timeout,
    UnmodelledAccess,
)
from atomsim.emulator.machine import Machine, run_elf
from atomsim.target import elf as elfmod

pytestmark = pytest.mark.firmware


def _size_berkeley(elf: Path) -> tuple[int, int, int]:
    out = subprocess.run(["arm-none-eabi-size", "-B", str(elf)], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1].split()
    return int(out[0]), int(out[1]), int(out[2])


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_hello_prints_its_line(board_id, example_elf):
    result = run_elf(get_board(board_id), example_elf("hello", board_id))
    assert result.status == "ok", result.error
    assert result.uart == f"Hello from {get_board(board_id).name}!\n"
    assert result.exit_code == 0
    assert result.instructions > 0 and result.cycles > 0


@pytest.mark.parametrize("board_id", BOARD_IDS)
@pytest.mark.parametrize("example", ["hello", "bench", "clockinit", "stackdepth"])
def test_flash_and_static_ram_equal_arm_none_eabi_size(board_id, example, example_elf):
    path = example_elf(example, board_id)
    text, data, bss = _size_berkeley(path)
    result = run_elf(get_board(board_id), path)
    assert result.flash_bytes == text + data
    assert result.static_ram_bytes == data + bss


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_stack_high_water_is_exact_to_the_word(board_id, example_elf):
    """The chain Reset_Handler -> main -> level1 -> level2 -> leaf, frames from -fstack-usage."""
    path = example_elf("stackdepth", board_id)
    frames = {}
    for su in path.parent.glob("*.su"):
        for line in su.read_text().splitlines():
            where, size, kind = line.split("\t")
            frames[where.rsplit(":", 1)[1].split(".")[0]] = (int(size), kind)
    chain = ["Reset_Handler", "main", "level1", "level2", "leaf"]
    assert all(frames[f][1] == "static" for f in chain)
    expected = sum(frames[f][0] for f in chain)
    result = run_elf(get_board(board_id), path)
    assert result.status == "ok"
    assert result.stack_bytes == expected
    assert result.peak_ram_bytes == result.static_ram_bytes + expected


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_hal_style_clock_setup_completes(board_id, example_elf):
    result = run_elf(get_board(board_id), example_elf("clockinit", board_id))
    assert result.status == "ok", f"{result.error}\n{result.uart}"
    assert "clock set-up done" in result.uart


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_same_firmware_same_cycles_every_run(board_id, example_elf):
    path = example_elf("bench", board_id)
    runs = [run_elf(get_board(board_id), path) for _ in range(3)]
    assert {(r.instructions, r.cycles, r.uart) for r in runs} == {
        (runs[0].instructions, runs[0].cycles, runs[0].uart)}
    assert "bench: PASS" in runs[0].uart


def test_paused_slices_add_up_to_an_uninterrupted_run(example_elf):
    board = get_board("stm32f746")
    path = example_elf("bench", board.id)
    whole = run_elf(board, path)
    machine = Machine(board)
    machine.load(path)
    slices = 0
    while (r := machine.run(max_cycles=50_000)).status == "running":
        slices += 1
    assert slices > 10
    assert (r.instructions, r.cycles, r.uart) == (whole.instructions, whole.cycles, whole.uart)


def test_m7_model_is_faster_than_m4_per_cycle_on_the_same_work(example_elf):
    """Dual issue: the same C code needs fewer modelled cycles per instruction on the M7."""
    m4 = run_elf(get_board("stm32f412"), example_elf("bench", "stm32f412"))
    m7 = run_elf(get_board("stm32f746"), example_elf("bench", "stm32f746"))
    assert m7.cycles / m7.instructions < m4.cycles / m4.instructions


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_fault_example_reports_the_address(board_id, example_elf):
    result = run_elf(get_board(board_id), example_elf("fault", board_id))
    assert result.status == "fault"
    err = result.error
    assert isinstance(err, HardFault)
    assert err.bfar == 0x60000000
    assert err.cfsr & (1 << 9) and err.cfsr & (1 << 15)  # PRECISERR, BFARVALID
    assert err.hfsr & (1 << 30)  # FORCED
    assert "0x60000000" in str(err)
    assert "about to read 0x60000000" in result.uart


def test_cli_fault_exits_non_zero_naming_the_address(example_elf):
    path = example_elf("fault", "stm32f412")
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "run", str(path), "--board",
                           "stm32f412", "--json"], capture_output=True, text=True)
    assert proc.returncode == HardFault.exit_code
    out = json.loads(proc.stdout)
    assert out["status"] == "fault" and out["error"]["bfar"] == 0x60000000
    assert "Traceback" not in proc.stderr


def test_cli_run_json_has_the_documented_keys(example_elf):
    path = example_elf("hello", "stm32h743")
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "run", str(path), "--board",
                           "stm32h743", "--json"], capture_output=True, text=True, check=True)
    out = json.loads(proc.stdout)
    for key in ("uart", "instructions", "cycles", "latency_ms", "flash_bytes",
                "static_ram_bytes", "stack_bytes", "peak_ram_bytes", "status"):
        assert key in out
    assert out["uart"] == "Hello from STM32H743!\n"
    assert out["latency_ms"] == pytest.approx(out["cycles"] / 480e6 * 1e3)


def test_undefined_instruction_is_a_hard_fault(test_elf):
    result = run_elf(get_board("stm32f746"), test_elf("udf", "stm32f746"))
    assert isinstance(result.error, HardFault)
    assert result.error.cfsr & (1 << 16)  # UNDEFINSTR
    assert "undefined instruction" in str(result.error)


def test_unmodelled_peripheral_access_names_address_and_pc(test_elf):
    result = run_elf(get_board("stm32f412"), test_elf("unmodelled", "stm32f412"))
    err = result.error
    assert isinstance(err, UnmodelledAccess)
    assert err.address == 0x40013000 and err.access == "write"
    assert "0x40013000" in str(err) and "PC=0x08" in str(err)


def test_unmodelled_register_of_a_modelled_peripheral_is_an_error():
    board = get_board("stm32f746")
    machine = Machine(board)
    with pytest.raises(UnmodelledAccess, match="0x40004880"):
        machine.read_u32(0x40004880)  # USART3 + 0x80: no such register


def test_stack_overflow_hits_the_guard(test_elf):
    result = run_elf(get_board("stm32f412"), test_elf("recurse", "stm32f412"))
    assert isinstance(result.error, StackOverflow), result.error
    assert result.status == "stack-overflow"
    board = get_board("stm32f412")
    assert result.error.stack_bottom == board.stack.address + 1024


def test_runaway_firmware_times_out(test_elf):
    result = run_elf(get_board("stm32h743"), test_elf("spin", "stm32h743"),
                     max_instructions=200_000)
    assert isinstance(result.error, Timeout)
    assert result.instructions >= 200_000
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "run",
                           str(test_elf("spin", "stm32h743")), "--board", "stm32h743",
                           "--max-instructions", "100000"], capture_output=True, text=True)
    assert proc.returncode == Timeout.exit_code and "timeout" in proc.stderr


def test_firmware_reported_failure(test_elf):
    result = run_elf(get_board("stm32f412"), test_elf("fails", "stm32f412"))
    assert isinstance(result.error, FirmwareFailure)
    assert result.exit_code == 1
    assert "self-check mismatch at index 3" in str(result.error)


@pytest.mark.parametrize("board_id", BOARD_IDS)
def test_image_too_big_fails_at_link_with_the_numbers(board_id, test_elf):
    with pytest.raises(DoesNotFit) as info:
        test_elf("too_big", board_id)
    board = get_board(board_id)
    assert info.value.available == board.ram.size
    assert info.value.needed > 600 * 1024
    assert re.search(rf"needs \d+ bytes of .*the board has {board.ram.size}", str(info.value))


def test_elf_that_does_not_fit_the_board_fails_at_load(example_elf, tmp_path):
    """A segment moved past the F412's 1 MB of flash (0x08200000) has no memory to load into."""
    import struct

    data = bytearray(Path(example_elf("hello", "stm32f412")).read_bytes())
    e_phoff = struct.unpack_from("<I", data, 0x1C)[0]
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 0x2A)
    for i in range(e_phnum):
        off = e_phoff + i * e_phentsize
        if struct.unpack_from("<I", data, off)[0] == 1:  # the first PT_LOAD: its p_paddr
            struct.pack_into("<I", data, off + 12, 0x08200000)
            break
    bad = tmp_path / "shifted.elf"
    bad.write_bytes(bytes(data))
    with pytest.raises(DoesNotFit, match="0x08200000"):
        Machine(get_board("stm32f412")).load(bad)


@pytest.mark.parametrize("corruption", ["truncated", "not_elf", "wrong_machine"])
def test_corrupt_or_foreign_elf_is_a_clear_error(tmp_path, example_elf, corruption):
    good = Path(example_elf("hello", "stm32f412")).read_bytes()
    path = tmp_path / f"{corruption}.elf"
    if corruption == "truncated":
        path.write_bytes(good[:300])
    elif corruption == "not_elf":
        path.write_bytes(b"MZ" + good[2:])
    else:
        path.write_bytes(good[:0x12] + (62).to_bytes(2, "little") + good[0x14:])  # EM_X86_64
    with pytest.raises(ElfError):
        elfmod.load(path)
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "run", str(path), "--board",
                           "stm32f412"], capture_output=True, text=True)
    assert proc.returncode == ElfError.exit_code
    assert "Traceback" not in proc.stderr and str(path) in proc.stderr.replace("\n", "")


def _foreign(tmp_path: Path, board_id: str, end_how: int) -> Path:
    board = get_board(board_id)
    f7 = int(board.platform().peripheral(board.console).type == "UART.STM32F7_USART")
    elf = tmp_path / f"foreign{end_how}.elf"
    ld = tmp_path / "foreign.ld"
    ld.write_text("SECTIONS { . = 0x08000000; .vectors : { KEEP(*(.vectors)) } "
                  ".text : { *(.text*) } }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-nostdlib",
                    f"-DEND_HOW={end_how}", f"-DUART_F7={f7}", "-T", str(ld),
                    str(HERE / "firmware_src" / "foreign.S"), "-o", str(elf)], check=True)
    return elf


@pytest.mark.parametrize("end_how,reason", [(1, "branch to self"), (2, "BKPT 0x00"),
                                            (3, "SYS_EXIT")])
@pytest.mark.parametrize("board_id", ["stm32f412", "stm32h743"])
def test_foreign_bare_metal_elf_ends_cleanly(tmp_path, board_id, end_how, reason):
    result = run_elf(get_board(board_id), _foreign(tmp_path, board_id, end_how),
                     max_instructions=100_000)
    assert result.status == "ok", result.error
    assert result.uart == "foreign firmware says hi\n"
    assert reason in result.end_reason


@pytest.mark.parametrize("enable", [0, 1])
def test_fpu_works_only_once_cpacr_enables_it(tmp_path, enable):
    elf = tmp_path / f"fpu{enable}.elf"
    ld = tmp_path / "fpu.ld"
    ld.write_text("SECTIONS { . = 0x08000000; .vectors : { KEEP(*(.vectors)) } "
                  ".text : { *(.text*) } }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16",
                    "-mfloat-abi=hard", "-nostdlib", f"-DENABLE={enable}", "-T", str(ld),
                    str(HERE / "firmware_src" / "fpu_off.S"), "-o", str(elf)], check=True)
    machine = Machine(get_board("stm32f412"))
    machine.load(elf)
    result = machine.run(max_instructions=1000)
    if enable:
        assert result.status == "ok", result.error
        from unicorn import arm_const
        assert machine.uc.reg_read(arm_const.UC_ARM_REG_R2) == 6
    else:
        assert isinstance(result.error, HardFault)
        assert result.error.cfsr & (1 << 19)  # NOCP
        assert "CPACR" in str(result.error)


@pytest.mark.parametrize("board_id", ["stm32f412", "stm32h743"])
def test_idle_polling_skip_is_exact(board_id, example_elf):
    """Waiting on the UART in bulk gives exactly the counts of spinning through every poll."""
    board = get_board(board_id)
    path = example_elf("echo", board_id)
    outcomes = []
    for skip in (False, True):
        machine = Machine(board)
        machine.idle_skip = skip
        machine.load(path)
        inputs = {3: b"first line\n", 7: b"second\r", 12: b"quit\n"}
        for slice_no in range(20):
            if slice_no in inputs:
                machine.uart_write(board.console, inputs[slice_no])
            result = machine.run(max_cycles=board.clock_hz // 2000)  # 0.5 ms slices
            if result.status != "running":
                break
        blocks = sorted((b.addr, b.size, b.count, b.taken) for b in machine.counter.blocks())
        outcomes.append((result.status, result.uart, result.instructions, result.cycles, blocks))
    assert outcomes[0][0] == "ok" and "echo: second" in outcomes[0][1]
    assert outcomes[1] == outcomes[0]


def test_waiting_for_input_without_a_source_times_out_quickly(example_elf):
    result = run_elf(get_board("stm32h743"), example_elf("echo", "stm32h743"),
                     max_instructions=500_000_000)
    assert isinstance(result.error, Timeout)
    assert result.uart == "echo ready\n"


def test_image_for_another_board_fails_at_load_naming_the_address(example_elf):
    """The H743 image keeps .data/.bss in AXI SRAM (0x24000000), which the F746 lacks."""
    machine = Machine(get_board("stm32f746"))
    with pytest.raises(DoesNotFit, match="0x24000000"):
        machine.load(example_elf("hello", "stm32h743"))
