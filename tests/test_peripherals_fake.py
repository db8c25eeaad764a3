"""Peripheral models against an in-memory fake host: no Unicorn, no machine.

Each model receives only the narrow ``PeripheralHost`` interface (a clock, the UART sink,
DEMCR.TRCENA, interrupt lines and a "re-evaluate interrupts" notice); the fake records what
the model asked of it, and the tests drive time by hand.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field

import pytest

from atomsim.boards import Board, get_board
from atomsim.emulator.peripherals import MODELS, model_key
from atomsim.emulator.peripherals.base import PeripheralHost
from atomsim.emulator.peripherals.scs import (
    IRQ0,
    PENDSV,
    SVCALL,
    SYSTICK,
    SystemControlSpace,
)

pytestmark = pytest.mark.unit


@dataclass
class FakeHost:
    """A PeripheralHost made of plain fields."""

    board: Board
    now: int = 0
    trace_enabled: bool = True
    sent: list[tuple[str, int]] = field(default_factory=list)
    lines: dict[int, bool] = field(default_factory=dict)
    changes: int = 0

    def cycles(self) -> int:
        return self.now

    def uart_output(self, name: str, byte: int) -> None:
        self.sent.append((name, byte))

    def scs_trcena(self) -> bool:
        return self.trace_enabled

    def irq_line(self, irq: int, level: bool) -> None:
        self.lines[irq] = level

    def interrupts_changed(self) -> None:
        self.changes += 1


def make(board_id: str, name: str):
    board = get_board(board_id)
    host = FakeHost(board)
    decl = board.platform().peripheral(name)
    assert isinstance(host, PeripheralHost)  # the fake satisfies the protocol's shape
    return MODELS[model_key(decl)](decl, host), host


def test_peripherals_import_no_machine_and_no_unicorn():
    code = ("import sys, atomsim.emulator.peripherals as p; "
            "assert 'unicorn' not in sys.modules, 'unicorn imported'; "
            "assert 'atomsim.emulator.machine' not in sys.modules, 'machine imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# -- USART ---------------------------------------------------------------------------------
@pytest.mark.parametrize("board_id,sr,dr,cr1,rdr", [
    ("stm32f412", 0x00, 0x04, 0x0C, 0x04), ("stm32h743", 0x1C, 0x28, 0x00, 0x24)])
def test_usart_transmits_receives_and_drives_its_irq_line(board_id, sr, dr, cr1, rdr):
    usart, host = make(board_id, "usart3")
    usart.write(dr, 4, ord("A"))
    assert host.sent == [("usart3", ord("A"))]
    assert usart.read(sr, 4) & 0xC0 == 0xC0  # TXE, TC: transmission is instantaneous
    assert usart.idle_read(sr)  # nothing received: polling it is idle waiting
    usart.receive(b"xy")
    assert usart.read(sr, 4) & (1 << 5)  # RXNE
    assert not usart.idle_read(sr)
    assert host.lines == {}  # RXNEIE clear: the line stays low
    usart.write(cr1, 4, usart.read(cr1, 4) | (1 << 5))  # RXNEIE
    assert host.lines == {39: True}  # USART3 is IRQ 39 on F4, F7 and H7
    assert usart.read(rdr, 4) == ord("x")
    assert host.lines[39]  # one byte still queued
    assert usart.read(rdr, 4) == ord("y")
    assert host.lines[39] is False
    usart.write(cr1, 4, usart.read(cr1, 4) | (1 << 7))  # TXEIE: TXE is always set
    assert host.lines[39] is True
    usart.write(cr1, 4, usart.read(cr1, 4) & ~(1 << 7))
    assert host.lines[39] is False


# -- DWT -----------------------------------------------------------------------------------
def test_dwt_cyccnt_follows_the_host_clock_only_while_enabled():
    dwt, host = make("stm32f746", "dwt")
    host.now = 1000
    assert dwt.read(0x004, 4) == 0  # CYCCNTENA clear: frozen
    dwt.write(0x000, 4, 1)  # CYCCNTENA
    host.now = 1500
    assert dwt.read(0x004, 4) == 500
    host.trace_enabled = False  # DEMCR.TRCENA gates it
    assert dwt.read(0x004, 4) == 0
    host.trace_enabled = True
    dwt.write(0x004, 4, 10)  # writes set the count
    host.now = 1600
    assert dwt.read(0x004, 4) == 110
    dwt.write(0x000, 4, 0)
    host.now = 5000
    assert dwt.read(0x004, 4) == 110


# -- SysTick -------------------------------------------------------------------------------
def test_systick_counts_core_cycles_and_says_when_it_fires():
    scs, host = make("stm32f412", "nvic")
    host.now = 100
    scs.write(0x014, 4, 999)  # RVR: period 1000 cycles
    assert scs.systick_next_event() is None  # disabled
    scs.write(0x010, 4, 0x7)  # CLKSOURCE core, TICKINT, ENABLE
    assert host.changes >= 2  # each write asked the machine to re-evaluate
    assert scs.systick_next_event() == 1100
    host.now = 600
    assert scs.read(0x018, 4) == 999 - 500  # CVR counts down
    assert not scs.systick_update()
    host.now = 1100
    assert scs.systick_update() and SYSTICK in scs.pend
    assert scs.systick_next_event() is None  # already pending: a further wrap changes nothing
    assert scs.read(0x010, 4) & (1 << 16)  # COUNTFLAG, cleared by the read
    assert not scs.read(0x010, 4) & (1 << 16)
    scs.acknowledge(SYSTICK)
    scs.complete(SYSTICK)
    assert scs.systick_next_event() == 2100


def test_systick_external_clock_is_the_core_clock_over_8():
    scs, host = make("stm32h743", "nvic")
    scs.write(0x014, 4, 99)
    scs.write(0x010, 4, 0x3)  # CLKSOURCE = external reference (HCLK/8 on STM32)
    assert scs.systick_next_event() == 800


# -- NVIC and SCB --------------------------------------------------------------------------
def test_nvic_enable_pending_active_registers():
    scs, _ = make("stm32f746", "nvic")
    scs.write(0x104, 4, 1 << 7)  # ISER1 bit 7: IRQ 39
    assert scs.read(0x100 + 4, 4) == 1 << 7 and scs.read(0x180 + 4, 4) == 1 << 7
    scs.write(0x204, 4, 1 << 7)  # ISPR1
    assert scs.read(0x284, 4) == 1 << 7 and scs.is_pending(IRQ0 + 39)
    assert scs.next_exception(256) == IRQ0 + 39
    scs.acknowledge(IRQ0 + 39)
    assert scs.read(0x304, 4) == 1 << 7  # IABR1: active
    assert scs.read(0xD04, 4) & 0x1FF == IRQ0 + 39  # ICSR.VECTACTIVE
    scs.complete(IRQ0 + 39)
    scs.write(0x184, 4, 1 << 7)  # ICER1
    assert scs.read(0x104, 4) == 0
    scs.write(0xF00, 4, 39)  # STIR pends it again
    assert scs.is_pending(IRQ0 + 39) and scs.next_exception(256) is None  # not enabled
    scs.write(0x284, 4, 1 << 7)  # ICPR1
    assert not scs.is_pending(IRQ0 + 39)


def test_level_sensitive_line_pends_again_after_return():
    scs, _ = make("stm32f412", "nvic")
    scs.write(0x104, 4, 1 << 7)
    scs.set_line(39, True)
    assert scs.next_exception(256) == IRQ0 + 39
    scs.acknowledge(IRQ0 + 39)
    assert not scs.is_pending(IRQ0 + 39)  # active, not pending
    scs.complete(IRQ0 + 39)
    assert scs.is_pending(IRQ0 + 39)  # still asserted
    scs.set_line(39, False)
    assert not scs.is_pending(IRQ0 + 39)


def test_priorities_grouping_and_masks_decide_preemption():
    scs, _ = make("stm32h743", "nvic")
    scs.write(0xD20, 4, (0xF0 << 24) | (0xF0 << 16))  # SysTick and PendSV lowest
    scs.write(0xD1C, 4, 0x40 << 24)  # SVCall priority 4
    scs.write(0x400 + 36, 4, 0x20 << 8)  # IRQ 37: priority 2 (byte 1 of IPR9)
    assert scs.priority(SYSTICK) == 0xF0 and scs.priority(SVCALL) == 0x40
    assert scs.priority(IRQ0 + 37) == 0x20
    assert scs.read(0x400 + 36, 4) == 0x20 << 8  # only 4 priority bits: writes of 0x2F read 0x20
    scs.write(0x400 + 36, 1, 0x2F)
    assert scs.priority(IRQ0 + 36) == 0x20
    scs.write(0x104, 4, 1 << 5)  # enable IRQ 37
    for exc in (SYSTICK, PENDSV, IRQ0 + 37):
        scs.pend_exception(exc)
    assert scs.next_exception(256) == IRQ0 + 37  # highest priority first
    assert scs.next_exception(scs.execution_priority(primask=1)) is None
    assert scs.next_exception(scs.execution_priority(basepri=0x30)) == IRQ0 + 37
    assert scs.next_exception(scs.execution_priority(basepri=0x20)) is None
    scs.acknowledge(IRQ0 + 37)
    assert scs.next_exception(scs.execution_priority()) is None  # SysTick cannot preempt
    scs.complete(IRQ0 + 37)
    assert scs.next_exception(scs.execution_priority()) == PENDSV  # equal priority: lower number
    # PRIGROUP 7: no group bits, nothing preempts an active handler.
    scs.write(0xD0C, 4, 0x05FA0700)
    assert scs.read(0xD0C, 4) == 0xFA050700
    scs.write(0xD0C, 4, 0x00000300)  # without VECTKEY: ignored
    assert scs.read(0xD0C, 4) == 0xFA050700
    scs.pend_exception(IRQ0 + 37)
    scs.acknowledge(PENDSV)
    assert scs.next_exception(scs.execution_priority()) is None


def test_icsr_pends_and_reports_pendsv_and_systick():
    scs, host = make("stm32f412", "nvic")
    before = host.changes
    scs.write(0xD04, 4, 1 << 28)  # PENDSVSET
    assert host.changes == before + 1
    icsr = scs.read(0xD04, 4)
    assert icsr & (1 << 28) and (icsr >> 12) & 0x1FF == PENDSV
    scs.write(0xD04, 4, 1 << 26)  # PENDSTSET
    assert scs.read(0xD04, 4) & (1 << 26)
    scs.write(0xD04, 4, (1 << 27) | (1 << 25))  # PENDSVCLR, PENDSTCLR
    assert scs.pending() == []
    assert scs.read(0xD04, 4) & (1 << 11)  # RETTOBASE with nothing active


def test_shcsr_enables_and_shows_active_handlers():
    scs, _ = make("stm32f746", "nvic")
    assert not scs.is_enabled(6)
    scs.write(0xD24, 4, 1 << 18)  # USGFAULTENA
    assert scs.is_enabled(6)
    scs.acknowledge(SVCALL)
    assert scs.read(0xD24, 4) & (1 << 7)  # SVCALLACT


# -- clocks --------------------------------------------------------------------------------
def test_rcc_ready_flags_follow_enables():
    rcc, _ = make("stm32f746", "rcc")
    rcc.write(0x00, 4, 1 << 16)  # HSEON
    assert rcc.read(0x00, 4) & (1 << 17)  # HSERDY
    rcc.write(0x08, 4, 0x2)  # SW = PLL
    assert (rcc.read(0x08, 4) >> 2) & 3 == 2  # SWS follows


def test_scs_is_a_peripheral_of_every_board():
    for board_id in ("stm32f412", "stm32f746", "stm32h743"):
        scs, _ = make(board_id, "nvic")
        assert isinstance(scs, SystemControlSpace)
