"""STM32 USART: the F4 layout (SR/DR) and the F7/H7 layout (ISR/TDR/RDR, TEACK/REACK).

Transmission is instantaneous (TXE and TC always set); received bytes queue in ``rx`` and
raise RXNE until read. Sources: CMSIS typedefs and HAL-F7 UART_CheckIdleState (STM32-FACTS §4).
"""

from __future__ import annotations

from collections import deque

from atomsim.emulator.peripherals.base import Peripheral, regs

TXE, TC, RXNE = 1 << 7, 1 << 6, 1 << 5


class _Usart(Peripheral):
    def __init__(self, decl, machine):
        super().__init__(decl, machine)
        self.rx: deque[int] = deque()

    def transmit(self, byte: int) -> None:
        self.machine.uart_output(self.name, byte & 0xFF)

    def receive(self, data: bytes) -> None:
        """Queue bytes on the RX line (as if sent by the host)."""
        self.rx.extend(data)

    def pop_rx(self) -> int:
        return self.rx.popleft() if self.rx else 0


class UsartF4(_Usart):
    """Legacy STM32F4 USART (Renode type UART.STM32_UART)."""

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
        else:
            super().write_reg(offset, value)
