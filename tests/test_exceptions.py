"""The exception model and the fault model on firmware built in the run.

HAL-style firmware (SysTick at 1 kHz, HAL_Delay, interrupt-driven UART, a WFI scheduler)
on every board; priorities, preemption, tail-chaining, SVC/PendSV, the FP extended frame on
the process stack; WFI time skipping and the "no wake-up source" end; and the faults a real
Cortex-M raises, checked by their CFSR bits (ARMv7-M ARM B3.2.15).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from atomsim.boards import get_board
from atomsim.core.errors import HardFault, MissingVectorTable, SleepingNoWakeup
from atomsim.emulator.machine import Machine, run_elf

pytestmark = pytest.mark.emu

HERE = Path(__file__).resolve().parent
BOARDS = ["stm32f412", "stm32f746", "stm32h743"]
UNDEFINSTR, INVSTATE, INVPC, NOCP = 1 << 16, 1 << 17, 1 << 18, 1 << 19
UNALIGNED, DIVBYZERO, IBUSERR = 1 << 24, 1 << 25, 1 << 8
FORCED = 1 << 30


def reports(uart: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for key, value in re.findall(r"^@atomsim (\w+)=(\d+)$", uart, re.M):
        out.setdefault(key, []).append(int(value))
    return out


def run_case(test_elf, case: int, board_id: str = "stm32f746", **kw):
    elf = test_elf("exceptions", board_id, extra_flags=[f"-DCASE={case}"])
    return run_elf(get_board(board_id), elf, **kw)


# -- HAL-style firmware ----------------------------------------------------------------------
@pytest.mark.firmware
@pytest.mark.parametrize("board_id", BOARDS)
def test_hal_style_firmware_runs_on_every_board(board_id, example_elf):
    board = get_board(board_id)
    machine = Machine(board)
    try:
        machine.load(example_elf("halstyle", board_id))
        machine.uart_write(board.console, b"hello\rworld\n")
        result = machine.run(max_instructions=20_000_000)
    finally:
        machine.close()
    assert result.status == "ok", result.error
    lines = result.uart.splitlines()
    assert lines[:5] == [f"halstyle: boot on {board_id}", "halstyle: HAL_Delay(100) took 101 ticks",
                         "echo: hello", "echo: world", lines[4]]
    assert lines[5] == "halstyle: done"
    rep = reports(result.uart)
    # HAL_Delay(100): 100 ms +- 1 tick of emulated time, by DWT cycles at the core clock.
    delay_s = rep["delay_cycles"][0] / board.clock_hz
    assert abs(delay_s - 0.100) <= 0.001 + 1e-6, delay_s
    # SysTick at 1 kHz: the run's emulated time matches the tick count.
    assert rep["ticks"][0] == pytest.approx(result.cycles / board.clock_hz * 1000, abs=2)
    counts = dict(kv.split("=") for kv in lines[4].removeprefix("halstyle: ").split())
    assert counts["svc"] == "1"
    assert int(counts["task10"]) == rep["ticks"][0] // 10  # PendSV from SysTick every 10 ms
    assert counts["rx_irqs"] == str(len(b"hello\rworld\n"))
    assert rep["sleeps"][0] >= 290  # the scheduler slept between ticks
    # Sleeping costs no instructions: ~400 ms of emulated time in few instructions.
    assert result.instructions < 100_000


@pytest.mark.firmware
def test_hal_style_firmware_in_slices_gives_the_same_counts(example_elf):
    board = get_board("stm32f412")
    path = example_elf("halstyle", "stm32f412")
    results = []
    for slice_cycles in (None, board.clock_hz // 1000 * 7):  # whole, then 7 ms slices
        machine = Machine(board)
        machine.load(path)
        machine.uart_write(board.console, b"abc\n")
        if slice_cycles is None:
            result = machine.run()
        else:
            for _ in range(1000):
                result = machine.run(max_cycles=slice_cycles)
                if result.status != "running":
                    break
        machine.close()
        results.append(result)
    whole, sliced = results
    assert sliced.status == "ok", sliced.error
    assert (sliced.instructions, sliced.cycles, sliced.uart) == \
        (whole.instructions, whole.cycles, whole.uart)


# -- exception model ---------------------------------------------------------------------------
@pytest.mark.firmware
def test_higher_priority_irq_preempts_a_lower_one(test_elf):
    result = run_case(test_elf, 7)
    assert result.status == "ok", result.error
    # low handler starts, high preempts it, low finishes, then thread mode resumes
    assert reports(result.uart)["log"] == [37, 38, 1037, 1]


@pytest.mark.firmware
@pytest.mark.parametrize("board_id", BOARDS)
def test_fp_extended_frame_on_the_process_stack(test_elf, board_id):
    result = run_case(test_elf, 8, board_id)
    assert result.status == "ok", result.error
    rep = reports(result.uart)
    assert rep["fp_ok"] == [1]  # s0/s1 survive handlers that clobber them
    assert rep["ticks"][0] >= 400
    assert rep["lr"] == [0xFFFFFFED]  # EXC_RETURN: thread mode, PSP, extended frame
    assert rep["spsel"] == [1]


@pytest.mark.firmware
def test_wfi_with_primask_wakes_and_takes_the_interrupt_at_cpsie(test_elf):
    result = run_case(test_elf, 9)
    assert result.status == "ok", result.error
    rep = reports(result.uart)
    assert rep["before"] == [0] and rep["after"] == [1]


@pytest.mark.firmware
def test_an_empty_main_loop_with_interrupts_is_idle_not_the_end(test_elf):
    result = run_case(test_elf, 16, "stm32f412")
    assert result.status == "ok", result.error
    assert reports(result.uart)["ticks"] == [5]
    assert 5 * 10000 <= result.cycles < 6 * 10000  # five SysTick periods of emulated time
    # the spinning is counted as executed: about one branch per cycle it costs
    assert result.instructions > 5 * 10000 // 4


@pytest.mark.firmware
def test_sleep_with_no_wake_up_source_ends_the_run(test_elf):
    result = run_case(test_elf, 6)
    assert isinstance(result.error, SleepingNoWakeup), result.error
    assert result.status == "sleeping"
    assert "no wake-up source" in str(result.error) and "SysTick is off" in str(result.error)
    assert "woke up" not in result.uart
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "run",
                           str(test_elf("exceptions", "stm32f746", extra_flags=["-DCASE=6"])),
                           "--board", "stm32f746"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == SleepingNoWakeup.exit_code, proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.firmware
def test_svc_with_interrupts_masked_escalates_to_hard_fault(test_elf):
    result = run_case(test_elf, 5)
    assert isinstance(result.error, HardFault), result.error
    assert result.error.hfsr & FORCED and "SVC" in str(result.error)


# -- fault model ---------------------------------------------------------------------------------
@pytest.mark.firmware
def test_branch_to_an_arm_state_address_is_invstate(test_elf):
    result = run_case(test_elf, 1)
    assert isinstance(result.error, HardFault), result.error
    assert result.error.cfsr == INVSTATE
    assert "INVSTATE" in str(result.error)


@pytest.mark.firmware
def test_division_by_zero_faults_only_with_div_0_trp(test_elf):
    trapped = run_case(test_elf, 2)
    assert isinstance(trapped.error, HardFault), trapped.error
    assert trapped.error.cfsr == DIVBYZERO and "DIVBYZERO" in str(trapped.error)
    plain = run_case(test_elf, 3)
    assert plain.status == "ok", plain.error
    assert reports(plain.uart)["quotient"] == [0]  # ARMv7-M: x / 0 = 0 without the trap


@pytest.mark.firmware
def test_an_enabled_usage_fault_is_not_escalated(test_elf):
    result = run_case(test_elf, 15)
    assert isinstance(result.error, HardFault), result.error
    assert result.error.cfsr == DIVBYZERO and not result.error.hfsr & FORCED
    assert "taken as UsageFault" in str(result.error)


@pytest.mark.firmware
def test_fetch_from_a_peripheral_address_says_so(test_elf):
    result = run_case(test_elf, 4)
    assert isinstance(result.error, HardFault), result.error
    assert result.error.cfsr == IBUSERR
    assert "peripheral" in str(result.error) and "0x40004800" in str(result.error)
    assert "exception 3" not in str(result.error)


@pytest.mark.firmware
@pytest.mark.parametrize("case,what", [(10, "ldr"), (11, "ldrd"), (12, "stm")])
def test_unaligned_accesses_that_must_fault_raise_unaligned(test_elf, case, what):
    result = run_case(test_elf, case)
    assert isinstance(result.error, HardFault), result.error
    assert result.error.cfsr == UNALIGNED, hex(result.error.cfsr)
    assert "UNALIGNED" in str(result.error)


@pytest.mark.firmware
def test_a_skipped_conditional_ldrd_does_not_fault(test_elf):
    result = run_case(test_elf, 14)
    assert result.status == "ok", result.error
    assert reports(result.uart)["ldrd"] == [11]


@pytest.mark.firmware
def test_unaligned_ldr_without_the_trap_is_allowed(test_elf):
    result = run_case(test_elf, 13)
    assert result.status == "ok", result.error
    assert reports(result.uart)["unaligned"] == [0x88112233]


def _raw_elf(tmp_path: Path, name: str, asm: str) -> Path:
    src, elf, ld = tmp_path / f"{name}.S", tmp_path / f"{name}.elf", tmp_path / "raw.ld"
    src.write_text(".syntax unified\n.thumb\n" + asm + "\n")
    ld.write_text("SECTIONS { . = 0x08000000; .vectors : { KEEP(*(.vectors)) } "
                  ".text : { *(.text*) } }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-nostdlib", "-T",
                    str(ld), str(src), "-o", str(elf)], check=True)
    return elf


def test_reset_vector_without_thumb_bit_is_invstate(tmp_path):
    elf = _raw_elf(tmp_path, "nothumb", ".section .vectors, \"a\"\n.global vector_table\n"
                   "vector_table:\n.word 0x20010000\n.word reset\n.text\nreset:\n nop\n b reset\n")
    result = run_elf(get_board("stm32f412"), elf, max_instructions=1000)
    assert isinstance(result.error, HardFault), result.error
    assert result.error.cfsr == INVSTATE and result.error.hfsr & FORCED
    assert "reset vector" in str(result.error) and "Thumb" in str(result.error)
    assert result.instructions == 0  # nothing ran as ARM code, nothing ran as Thumb either


def test_missing_vector_table_is_named(tmp_path):
    elf = _raw_elf(tmp_path, "novt", ".text\n.word 0x12345678\n.word 0x9ABCDEF1\n nop\n")
    machine = Machine(get_board("stm32f412"))
    with pytest.raises(MissingVectorTable, match="no vector table found"):
        machine.load(elf)
    proc = subprocess.run([sys.executable, "-m", "atomsim.cli", "run", str(elf), "--board",
                           "stm32f412"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == MissingVectorTable.exit_code
    assert "no vector table found" in proc.stderr and "Traceback" not in proc.stderr


def test_reset_vector_into_a_peripheral_is_ibuserr(tmp_path):
    elf = _raw_elf(tmp_path, "periph", ".section .vectors, \"a\"\n.global vector_table\n"
                   "vector_table:\n.word 0x20010000\n.word 0x40004801\n")
    result = run_elf(get_board("stm32h743"), elf, max_instructions=1000)
    assert isinstance(result.error, HardFault), result.error
    assert result.error.cfsr == IBUSERR and "usart3" in str(result.error)
