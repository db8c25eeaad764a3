"""Peripheral models: register blocks described as tables.

A model lists its registers (offset, name, reset value); reads and writes of a listed register
go through ``read_reg``/``write_reg`` hooks, anything else is an unmodelled access. Registers
that need behaviour (ready flags that follow enable bits, counters) override the hooks; the rest
simply hold what was written, as the hardware register would.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:
    from atomsim.boards import Board
    from atomsim.boards.platform import PeripheralDecl


@runtime_checkable
class PeripheralHost(Protocol):
    """What a peripheral model may ask of the machine it sits in, and nothing more.

    The embedded emulator's ``Machine`` implements it; unit tests use an in-memory fake
    (tests/test_peripherals_fake.py), so a model never needs Unicorn to be tested.
    """

    board: Board  # chip facts: core, clock, caches, FPU

    def cycles(self) -> int:
        """Modelled core cycles so far: the time source of SysTick, DWT and every timer."""
        ...

    def uart_output(self, name: str, byte: int) -> None:
        """A USART named ``name`` transmitted ``byte``."""
        ...

    def scs_trcena(self) -> bool:
        """DEMCR.TRCENA (the DWT counts only when it is set)."""
        ...

    def irq_line(self, irq: int, level: bool) -> None:
        """A peripheral's interrupt request line ``irq`` (the NVIC input) is now ``level``."""
        ...

    def interrupts_changed(self) -> None:
        """Something that can pend, enable or schedule an exception changed: the machine must
        re-evaluate before the core runs on (at the next block boundary)."""
        ...


class UnmodelledRegister(Exception):
    """Raised by a model for an offset it does not implement; the machine turns it into
    an UnmodelledAccess error naming the peripheral and the register offset."""


@dataclass(frozen=True)
class Reg:
    """One register of a block."""

    offset: int
    name: str
    reset: int = 0
    writable: int = 0xFFFFFFFF  # bits that software can change


class Peripheral:
    """Base for a memory-mapped peripheral with a register table."""

    size: ClassVar[int] = 0x400
    registers: ClassVar[tuple[Reg, ...]] = ()

    def __init__(self, decl: PeripheralDecl, host: PeripheralHost):
        self.name = decl.name
        self.decl = decl
        self.host = host
        self.base = decl.address
        self._regs = {r.offset: r for r in self.all_registers()}
        self.values = {r.offset: r.reset for r in self._regs.values()}

    def all_registers(self) -> Iterable[Reg]:
        """The register table (a model may compute it from the board)."""
        return self.registers

    @property
    def span(self) -> int:
        """Bytes of address space the block occupies."""
        return self.decl.size or self.size

    def reg_name(self, offset: int) -> str:
        """Name of the register at ``offset`` (for messages)."""
        reg = self._regs.get(offset & ~3)
        return reg.name if reg else f"+0x{offset:X}"

    def read(self, offset: int, size: int) -> int:
        """Bus read of ``size`` bytes; sub-word reads take lanes of the 32-bit register."""
        word = offset & ~3
        if word not in self._regs:
            raise UnmodelledRegister(offset)
        value = self.read_reg(word)
        shift = (offset & 3) * 8
        return (value >> shift) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        """Bus write; sub-word writes merge into the 32-bit register."""
        word = offset & ~3
        reg = self._regs.get(word)
        if reg is None:
            raise UnmodelledRegister(offset)
        if size < 4:
            shift = (offset & 3) * 8
            mask = ((1 << (8 * size)) - 1) << shift
            value = (self.values[word] & ~mask) | ((value << shift) & mask)
        self.write_reg(word, value & 0xFFFFFFFF)

    def idle_read(self, offset: int) -> bool:
        """True when reading ``offset`` has no side effect and its value cannot change until
        something outside the core happens (input arrives): polling it is idle waiting."""
        return False

    def read_reg(self, offset: int) -> int:
        """Value of a register; override for registers with behaviour."""
        return self.values[offset]

    def write_reg(self, offset: int, value: int) -> None:
        """Store a register; override for registers with behaviour."""
        reg = self._regs[offset]
        self.values[offset] = (self.values[offset] & ~reg.writable) | (value & reg.writable)

    def reset(self) -> None:
        """Back to reset values."""
        self.values = {r.offset: r.reset for r in self._regs.values()}


def follow(value: int, pairs: Iterable[tuple[int, int]]) -> int:
    """Set each ready bit to its enable bit: ``pairs`` are (enable_bit, ready_bit)."""
    for enable, ready in pairs:
        if value & (1 << enable):
            value |= 1 << ready
        else:
            value &= ~(1 << ready)
    return value


def regs(*spec: tuple) -> tuple[Reg, ...]:
    """Build a register table from (offset, name[, reset[, writable]]) tuples."""
    return tuple(Reg(*s) for s in spec)
