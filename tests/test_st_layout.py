"""Issue 8: an ELF linked with ST's default STM32F746 layout loads and runs.

STM32CubeIDE's STM32F746ZGTX_FLASH.ld declares one RAM region of 320 KB at 0x20000000 (DTCM,
SRAM1 and SRAM2 are contiguous there) and puts the stack at its top. The emulated board maps the
three memories separately (their sizes are the datasheet's); the loader must take any range that
lies in one run of contiguous memories, not only inside one memory."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from atomsim.boards import get_board
from atomsim.core.errors import DoesNotFit, HardFault
from atomsim.emulator.machine import run_elf

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.firmware

# The memory layout of ST's generated script (the sections trimmed to what a C program needs).
ST_F746_LD = """
ENTRY(Reset_Handler)
_estack = ORIGIN(RAM) + LENGTH(RAM);
MEMORY
{
  RAM    (xrw) : ORIGIN = 0x20000000, LENGTH = 320K
  FLASH  (rx)  : ORIGIN = 0x08000000, LENGTH = 1024K
}
SECTIONS
{
  .isr_vector : { . = ALIGN(4); KEEP(*(.isr_vector)) . = ALIGN(4); } >FLASH
  .text : { . = ALIGN(4); *(.text) *(.text*) . = ALIGN(4); } >FLASH
  .rodata : { . = ALIGN(4); *(.rodata) *(.rodata*) . = ALIGN(4); } >FLASH
  _sidata = LOADADDR(.data);
  .data : { . = ALIGN(4); _sdata = .; *(.data) *(.data*) . = ALIGN(4); _edata = .; } >RAM AT> FLASH
  .bss : { . = ALIGN(4); _sbss = .; *(.bss) *(.bss*) *(COMMON) . = ALIGN(4); _ebss = .; } >RAM
}
"""


def _build(tmp_path: Path, ram_kb: int = 320) -> Path:
    ld, elf = tmp_path / "STM32F746ZGTX_FLASH.ld", tmp_path / "st_layout.elf"
    ld.write_text(ST_F746_LD.replace("LENGTH = 320K", f"LENGTH = {ram_kb}K"))
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-O1", "-nostdlib",
                    "-T", str(ld), str(HERE / "firmware_src" / "st_layout.c"), "-o", str(elf)],
                   check=True)
    return elf


def test_st_default_f746_layout_loads_and_runs(tmp_path):
    result = run_elf(get_board("stm32f746"), _build(tmp_path), max_instructions=5_000_000)
    assert result.status == "ok", result.error
    assert result.exit_code == 0, result.end_reason  # every word of the 300 KB buffer read back
    assert "SYS_EXIT" in result.end_reason


def test_a_stack_past_the_contiguous_block_is_a_precise_bus_fault(tmp_path):
    # 330 KB of RAM from 0x20000000 runs past SRAM2's end (0x20050000): the first push below
    # _estack writes where no memory is, and the core takes a precise bus fault there, as the
    # chip would (no silent RAM beyond the datasheet's 320 KB).
    result = run_elf(get_board("stm32f746"), _build(tmp_path, ram_kb=330),
                     max_instructions=1000)
    assert isinstance(result.error, HardFault), result.error
    assert result.error.bfar is not None and 0x20050000 <= result.error.bfar < 0x20052800
    assert result.error.cfsr & (1 << 9) and result.error.cfsr & (1 << 15)  # PRECISERR, BFARVALID


def test_a_segment_past_the_contiguous_block_is_refused_at_load(tmp_path):
    # .data placed at the end of the 320 KB block, 16 bytes over: the loader names the run of
    # memories and the sizes instead of loading half of it.
    ld, elf = tmp_path / "over.ld", tmp_path / "over.elf"
    ld.write_text("SECTIONS { . = 0x08000000; .text : { *(.text*) } "
                  ".data 0x2004FFF8 : AT(0x08001000) { LONG(1) LONG(2) LONG(3) LONG(4) } }\n")
    src = tmp_path / "x.S"
    src.write_text(".syntax unified\n.thumb\n.text\n.word 0x20040000\n.word 0x08000009\n"
                   "b .\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-nostdlib", "-T", str(ld),
                    str(src), "-o", str(elf)], check=True)
    with pytest.raises(DoesNotFit, match="dtcm\\+sram1\\+sram2"):
        run_elf(get_board("stm32f746"), elf, max_instructions=100).raise_for_status()
