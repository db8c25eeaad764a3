"""A terminal tester on one UART, with Renode's matching rules.

The tester sees every byte the UART transmits after it is attached (a listener on the
machine). A line feed ends a line and carriage returns are dropped. Waiting for a line takes
the first complete line that contains the text (or matches the regular expression) and
forgets every line up to it, so the next wait starts after it. Timestamps are emulated
milliseconds of the tester's machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from atomsim.core.errors import ConfigError
from atomsim.robot.monitor import MachineSlot

REPORT_LINES = 12  # lines of UART history shown when an expectation fails


@dataclass
class TerminalTesterResult:
    """What ``Wait For Line On Uart`` returns: the line, its emulated time in ms, and the
    regular expression's groups (Renode's ``line``/``timestamp``/``groups``, also reachable
    capitalised, as in ``${result.Groups[0]}``)."""

    line: str
    timestamp: float
    groups: list[str] = field(default_factory=list)

    @property
    def Line(self) -> str:  # noqa: N802 - Renode's spelling
        """The matching line."""
        return self.line

    @property
    def Timestamp(self) -> float:  # noqa: N802
        """Emulated milliseconds when the line ended."""
        return self.timestamp

    @property
    def Groups(self) -> list[str]:  # noqa: N802
        """Regular expression groups (without the whole match); empty for plain text."""
        return self.groups

    def __str__(self) -> str:
        return self.line


@dataclass
class _Line:
    content: str
    ms: float


class TerminalTester:
    """Collects one UART's output into lines and matches expectations against them."""

    def __init__(self, slot: MachineSlot, uart: str, timeout: float):
        self.slot = slot
        self.uart = uart
        self.timeout = timeout
        self.lines: list[_Line] = []
        self.current = ""
        self.history: list[str] = []  # every completed line, for failure reports
        slot.machine.uart_listeners.append(self._on_byte)

    @property
    def label(self) -> str:
        """``sysbus.<uart>`` of machine <name>."""
        return f"sysbus.{self.uart} of machine {self.slot.name!r}"

    def _now_ms(self) -> float:
        return self.slot.seconds() * 1e3

    def _on_byte(self, name: str, byte: int) -> None:
        if name != self.uart or byte == 0x0D:
            return
        if byte == 0x0A:
            self.lines.append(_Line(self.current, self._now_ms()))
            self.history.append(self.current)
            self.current = ""
        else:
            self.current += chr(byte)

    def match(self, pattern: str, regex: bool, unfinished: bool,
              next_line_only: bool) -> TerminalTesterResult | None:
        """Take the first line matching ``pattern``; None if there is none yet."""
        try:
            compiled = re.compile(pattern) if regex else None
        except re.error as exc:
            raise ConfigError(f"not a valid regular expression: >>{pattern}<< ({exc})") from None

        def test(text: str) -> list[str] | None:
            if compiled is None:
                return [] if pattern in text else None
            m = compiled.search(text)
            return None if m is None else [g if g is not None else "" for g in m.groups()]

        candidates = self.lines[:1] if next_line_only else self.lines
        for index, line in enumerate(candidates):
            groups = test(line.content)
            if groups is not None:
                del self.lines[:index + 1]
                return TerminalTesterResult(line.content, line.ms, groups)
        if unfinished and not (next_line_only and self.lines):
            groups = test(self.current)
            if groups is not None:
                text, self.current = self.current, ""
                self.lines.clear()
                return TerminalTesterResult(text, self._now_ms(), groups)
        return None

    def next_line(self) -> TerminalTesterResult | None:
        """Take the oldest unread line, if any."""
        if not self.lines:
            return None
        line = self.lines.pop(0)
        return TerminalTesterResult(line.content, line.ms)

    def write(self, text: str) -> None:
        """Send characters to the UART's RX line."""
        self.slot.machine.uart_write(self.uart, text.encode("latin-1"))

    def report(self) -> str:
        """The last lines the UART printed and its unfinished line, for a failure message."""
        shown = self.history[-REPORT_LINES:]
        out = [f"last {len(shown)} of {len(self.history)} lines on {self.label}:"
               if shown else f"no complete line on {self.label}"]
        out += [f"  | {line}" for line in shown]
        if self.current:
            out.append(f"  | {self.current}  [[no newline]]")
        return "\n".join(out)
