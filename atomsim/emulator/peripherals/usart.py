"""STM32 USART: the F4 layout (SR/DR) and the F7/H7 layout (ISR/TDR/RDR, TEACK/REACK).

Transmission is instantaneous (TXE and TC always set); received bytes queue in ``rx`` and
raise RXNE until read. The interrupt request line is high while an enabled condition holds
(CR1.RXNEIE with RXNE, TXEIE with TXE, TCIE with TC), as the USART's level-sensitive IRQ
output is; it is handed to the NVIC through the host. Sources: CMSIS typedefs, HAL-F7
UART_CheckIdleState (STM32-FACTS §4); IRQ numbers from the RM0402/RM0385/RM0433 vector tables.
"""

from __future__ import annotations

from collections import deque

from atomsim.emulator.peripherals.base import Peripheral, regs

TXE, TC, RXNE = 1 << 7, 1 << 6, 1 << 5
RXNEIE, TCIE, TXEIE = 1 << 5, 1 << 6, 1 << 7
# NVIC IRQ number by USART base address: the same on STM32F4, F7 and H7.
IRQ_BY_BASE = {0x40011000: 37, 0x40004400: 38, 0x40004800: 39, 0x40004C00: 52,
               0x40005000: 53, 0x40011400: 71, 0x40007800: 82, 0x40007C00: 83}


class _Usart(Peripheral):
    CR1 = 0x00

    def __init__(self, decl, host):
        super().__init__(decl, host)
        self.rx: deque[int] = deque()
        irq = decl.properties.get("IRQ") if hasattr(decl, "properties") else None
        self.irq: int | None = int(irq) if irq is not None else IRQ_BY_BASE.get(self.base)
        self._line = False

    def transmit(self, byte: int) -> None:
        self.host.uart_output(self.name, byte & 0xFF)

    def receive(self, data: bytes) -> None:
        """Queue bytes on the RX line (as if sent by the host)."""
        self.rx.extend(data)
        self.update_irq()

    def pop_rx(self) -> int:
        value = self.rx.popleft() if self.rx else 0
        self.update_irq()
        return value

    def irq_level(self) -> bool:
        """The interrupt request line: an enabled condition holds (TXE and TC always do)."""
        cr1 = self.values[self.CR1]
        return bool(cr1 & (TXEIE | TCIE) or (cr1 & RXNEIE and self.rx))

    def update_irq(self) -> None:
        level = self.irq_level()
        if level != self._line and self.irq is not None:
            self._line = level
            self.host.irq_line(self.irq, level)

    def reset(self) -> None:
        super().reset()  # queued input survives a core reset, as on the wire
        self._line = False

    def write_reg(self, offset, value):
        super().write_reg(offset, value)
        if offset == self.CR1:
            self.update_irq()


class UsartF4(_Usart):
    """Legacy STM32F4 USART (Renode type UART.STM32_UART)."""

    CR1 = 0x0C

    def idle_read(self, offset):
        """Polling SR with nothing received waits for input."""
        return offset == 0x00 and not self.rx

    registers = regs((0x00, "SR", 0xC0), (0x04, "DR"), (0x08, "BRR"), (0x0C, "CR1"),
                     (0x10, "CR2"), (0x14, "CR3"), (0x18, "GTPR"))

    def read_reg(self, offset):
        if offset == 0x00:
            return self.values[0] | TXE | TC | (RXNE if self.rx else 0)
        if offset == 0x04:
            return self.pop_rx()
        return super().read_reg(offset)

    def write_reg(self, offset, value):
        if offset == 0x04:
            self.transmit(value)
        elif offset == 0x00:  # rc_w0 bits: writing 0 clears; TXE/TC/RXNE are derived anyway
            self.values[0] &= value
        else:
            super().write_reg(offset, value)


class UsartF7(_Usart):
    """STM32F7/H7 USART (Renode type UART.STM32F7_USART)."""

    CR1 = 0x00

    def idle_read(self, offset):
        """Polling ISR with nothing received waits for input."""
        return offset == 0x1C and not self.rx

    registers = regs((0x00, "CR1"), (0x04, "CR2"), (0x08, "CR3"), (0x0C, "BRR"), (0x10, "GTPR"),
                     (0x14, "RTOR"), (0x18, "RQR"), (0x1C, "ISR", 0xC0), (0x20, "ICR"),
                     (0x24, "RDR"), (0x28, "TDR"), (0x2C, "PRESC"))

    def read_reg(self, offset):
        if offset == 0x1C:
            cr1 = self.values[0x00]
            isr = TXE | TC | (RXNE if self.rx else 0)
            isr |= (1 << 21) if cr1 & (1 << 3) else 0  # TEACK follows TE
            isr |= (1 << 22) if cr1 & (1 << 2) else 0  # REACK follows RE
            return isr
        if offset == 0x24:
            return self.pop_rx()
        return super().read_reg(offset)

    def write_reg(self, offset, value):
        if offset == 0x28:
            self.transmit(value)
        elif offset == 0x18 and value & (1 << 3):  # RQR.RXFRQ: flush the received byte
            self.pop_rx()
        else:
            super().write_reg(offset, value)
