"""Robot Framework keywords that speak Renode's language, run on AtomSim's embedded emulator.

``Library    atomsim.robot`` gives a suite Renode's keywords (``Execute Command``,
``Create Terminal Tester``, ``Wait For Line On Uart`` ...) with the same names and arguments,
plus AtomSim's own (``Build Example``, ``Run Firmware Until Exit``, budgets, faults). Every
timeout counts emulated seconds: machines run in slices of emulated time between two looks
at the UART, so a slow or loaded host never changes a result. docs/writing-tests.md lists
the monitor subset and what differs from Renode.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from robot.api import logger

from atomsim.boards import get_board
from atomsim.core.errors import (
    AtomSimError,
    ConfigError,
    FirmwareError,
    FirmwareFailure,
    HardFault,
    StackOverflow,
    Timeout,
    UnmodelledAccess,
)
from atomsim.core.paths import REPO_ROOT
from atomsim.emulator.machine import DEFAULT_MAX_INSTRUCTIONS
from atomsim.robot.monitor import Emulation, MachineSlot, WaitOutcome, parse_time, resolve_path
from atomsim.robot.terminal import TerminalTester, TerminalTesterResult
from atomsim.target.backend import RunResult
from atomsim.target.firmware import build_example

DEFAULT_UART_TIMEOUT = 8.0  # seconds, Renode's default (UartKeywords.globalTimeout)

_FAULT_TYPES = (HardFault, UnmodelledAccess, StackOverflow, Timeout, FirmwareFailure,
                FirmwareError)
T = TypeVar("T")


class AtomSimLibrary:
    """Renode's Robot keywords on AtomSim's emulator, plus AtomSim's measurement keywords."""

    ROBOT_LIBRARY_SCOPE = "SUITE"

    def __init__(self) -> None:
        self.emulation = Emulation()
        self.testers: list[TerminalTester] = []
        self.default_uart_timeout = DEFAULT_UART_TIMEOUT
        self.default_wait_for_echo = True
        self.default_match_next_line = False

    # -- Renode: emulation ------------------------------------------------------------------
    def execute_command(self, command: str, machine: str | None = None) -> str:
        """Run a monitor command (the subset in docs/writing-tests.md); return its output.

        ``sysbus ReadDoubleWord`` returns the value as Renode prints it, e.g. ``0x0000000D``
        and a line break; ``cpu PC`` returns ``0x8000188`` and a line break.
        """
        if machine is not None:
            self.emulation.slot(machine)
            self.emulation.current = machine
        return self._monitor(lambda: self.emulation.execute(command))

    def execute_script(self, path: str) -> str:
        """Run a ``.resc`` script (as ``include @path``)."""
        return self._monitor(lambda: self.emulation.include(resolve_path(path)))

    def reset_emulation(self) -> None:
        """Remove every machine, tester, variable and macro (Renode's ``Reset Emulation``)."""
        self.emulation.clear()
        self.testers.clear()

    def start_emulation(self) -> None:
        """Let emulated time run. It advances only inside waiting keywords and ``RunFor``."""
        self.emulation.started = True

    def wait_for_pause(self, timeout: float) -> None:
        """Run until every started machine has stopped (firmware exit, fault or halt),
        failing after ``timeout`` emulated seconds."""
        self.emulation.started = True
        outcome = self.emulation.advance(float(timeout), lambda: False)
        if outcome.how == "timeout":
            raise AssertionError(
                f"Emulation did not pause in expected time of {timeout} seconds "
                f"(emulated): {', '.join(s.name for s in self.emulation.running_slots())} "
                "still running")

    # -- Renode: UART -----------------------------------------------------------------------
    def set_default_uart_timeout(self, timeout: float) -> None:
        """Timeout, in emulated seconds, of testers created without one."""
        self.default_uart_timeout = _seconds(timeout)

    def create_terminal_tester(
            self, uart: str, timeout: float | None = None, machine: str | None = None,
            endLineOption: str | None = None, defaultPauseEmulation: bool | None = None,  # noqa: N803
            defaultWaitForEcho: bool | None = None, defaultMatchNextLine: bool | None = None,  # noqa: N803
            binaryMode: bool = False) -> int:  # noqa: N803
        """Attach a tester to ``sysbus.<uart>``; return its id (the new default tester).

        ``timeout`` is in emulated seconds (default 8, as Renode). Only line-feed line ends
        and text mode are supported; pausing on a match is what AtomSim always does.
        """
        if endLineOption not in (None, "TreatLineFeedAsEndLine"):
            raise ConfigError(f"endLineOption={endLineOption}: only TreatLineFeedAsEndLine is "
                              "supported")
        if binaryMode:
            raise ConfigError("binaryMode=True is not supported by AtomSim's terminal tester")
        slot = self.emulation.slot(machine)
        m = self.emulation.machine(machine)
        name = uart.removeprefix("sysbus.")
        uarts = m.uarts()
        if name not in uarts:
            raise ConfigError(f"no UART {uart!r} on machine {slot.name!r} ({m.board.id}); "
                              f"UARTs: {', '.join('sysbus.' + u for u in uarts)}")
        self.default_wait_for_echo = True if defaultWaitForEcho is None else defaultWaitForEcho
        self.default_match_next_line = bool(defaultMatchNextLine)
        seconds = self.default_uart_timeout if timeout is None else _seconds(timeout)
        self.testers.append(TerminalTester(slot, name, seconds))
        return len(self.testers) - 1

    def wait_for_line_on_uart(
            self, content: str, timeout: float | None = None, testerId: int | None = None,  # noqa: N803
            treatAsRegex: bool = False, includeUnfinishedLine: bool = False,  # noqa: N803
            pauseEmulation: bool | None = None,  # noqa: N803
            matchNextLine: bool | None = None) -> TerminalTesterResult:  # noqa: N803
        """Wait for a line containing ``content`` (or matching it as a regular expression);
        return it with ``.Line``, ``.Timestamp`` (emulated ms) and ``.Groups``."""
        tester = self._tester(testerId)
        next_only = self.default_match_next_line if matchNextLine is None else matchNextLine
        what = f"line containing{' regex' if treatAsRegex else ''} >>{content}<<"
        return self._wait(tester, timeout, what, lambda: tester.match(
            content, treatAsRegex, includeUnfinishedLine, next_only))

    def wait_for_prompt_on_uart(
            self, prompt: str, testerId: int | None = None, timeout: float | None = None,  # noqa: N803
            treatAsRegex: bool = False,  # noqa: N803
            pauseEmulation: bool | None = None) -> TerminalTesterResult:  # noqa: N803
        """Wait for ``prompt``, also in the line not yet ended by a line feed."""
        return self.wait_for_line_on_uart(prompt, timeout, testerId, treatAsRegex, True)

    def wait_for_next_line_on_uart(
            self, timeout: float | None = None, testerId: int | None = None,  # noqa: N803
            pauseEmulation: bool | None = None) -> TerminalTesterResult:  # noqa: N803
        """Wait for the next complete line, whatever it holds."""
        tester = self._tester(testerId)
        return self._wait(tester, timeout, "next line", tester.next_line)

    def should_not_be_on_uart(
            self, content: str, timeout: float | None = None, testerId: int | None = None,  # noqa: N803
            treatAsRegex: bool = False, includeUnfinishedLine: bool = False) -> None:  # noqa: N803
        """Fail if a line containing ``content`` appears within ``timeout`` emulated seconds
        (or before the firmware stops)."""
        tester = self._tester(testerId)
        seconds = tester.timeout if timeout is None else _seconds(timeout)
        hits: list[TerminalTesterResult] = []
        self._require_started(f"absence of >>{content}<<")
        self.emulation.advance(seconds, lambda: _found(hits, tester.match(
            content, treatAsRegex, includeUnfinishedLine, False)), reference=tester.slot)
        if hits:
            raise AssertionError(
                f"Terminal tester failed: unexpected line containing"
                f"{' regex' if treatAsRegex else ''} >>{content}<< on {tester.label} at "
                f"{hits[0].timestamp:.3f} ms (emulated): {hits[0].line}")

    def write_to_uart(self, content: str, testerId: int | None = None) -> None:  # noqa: N803
        """Send ``content`` to the UART's RX line as it is."""
        self._tester(testerId).write(content)

    def write_line_to_uart(
            self, content: str = "", testerId: int | None = None,  # noqa: N803
            waitForEcho: bool | None = None,  # noqa: N803
            pauseEmulation: bool | None = None) -> None:  # noqa: N803
        """Send ``content`` and a carriage return (Renode's line end); by default then wait
        for the firmware to echo ``content`` (``waitForEcho=false`` to skip that)."""
        tester = self._tester(testerId)
        tester.write(content + "\r")
        if self.default_wait_for_echo if waitForEcho is None else waitForEcho:
            self.wait_for_line_on_uart(content, testerId=testerId, includeUnfinishedLine=True)

    # -- AtomSim ----------------------------------------------------------------------------
    def build_example(self, name: str, board: str) -> str:
        """Build ``firmware/examples/<name>`` for ``board``; return the ELF's path."""
        return str(build_example(name, get_board(board)))

    def board_platform(self, board: str) -> str:
        """The platform file of ``board``, relative to the repository root."""
        return get_board(board).platform_path.relative_to(REPO_ROOT).as_posix()

    def board_console_uart(self, board: str) -> str:
        """The console UART of ``board`` as Renode names it, e.g. ``sysbus.usart3``."""
        return f"sysbus.{get_board(board).console}"

    def run_firmware_until_exit(self, max_instructions: int = DEFAULT_MAX_INSTRUCTIONS,
                                machine: str | None = None) -> RunResult:
        """Run the machine's firmware to its end (exit, fault, halt or the instruction budget)
        and return the RunResult (``.status``, ``.cycles``, ``.peak_ram_bytes`` ...)."""
        m = self.emulation.machine(machine)
        result = self._monitor(lambda: m.run(int(max_instructions)))
        logger.info(f"{self.emulation.slot(machine).name}: {result.status}, {result.cycles} "
                    f"cycles, {result.instructions} instructions, end: {result.end_reason}")
        return result

    def emulated_cycles(self, machine: str | None = None) -> int:
        """Modelled cycles the machine has run so far."""
        return self.emulation.machine(machine).cycles()

    def cycles_between_markers(self, machine: str | None = None) -> int:
        """Modelled cycles from the first begin marker (BKPT 0x01) to the end marker after it."""
        markers = self.emulation.machine(machine).markers
        begin = next((m for m in markers if m.kind == "begin"), None)
        end = next((m for m in markers if m.kind == "end" and begin and m.cycles >= begin.cycles),
                   None)
        if begin is None or end is None:
            raise AssertionError(f"no begin/end marker pair in this run (markers: "
                                 f"{[(m.kind, m.cycles) for m in markers]})")
        return end.cycles - begin.cycles

    def cycles_should_be_below(self, limit: int, machine: str | None = None) -> None:
        """The finished run took fewer than ``limit`` modelled cycles."""
        r = self._finished(machine)
        _below(self._run_label(machine), "run time", r.cycles, int(limit), "cycles",
               f"{r.latency_ms:.3f} ms at {r.clock_hz / 1e6:g} MHz")

    def peak_ram_should_be_below(self, limit: int, machine: str | None = None) -> None:
        """Static data + stack high-water mark + heap peak is below ``limit`` bytes."""
        r = self._finished(machine)
        _below(self._run_label(machine), "peak RAM", r.peak_ram_bytes, int(limit), "bytes",
               f"static {r.static_ram_bytes} + stack {r.stack_bytes} + heap {r.heap_bytes}")

    def flash_should_be_below(self, limit: int, machine: str | None = None) -> None:
        """The image's flash footprint is below ``limit`` bytes."""
        r = self._finished(machine)
        _below(self._run_label(machine), "flash", r.flash_bytes, int(limit), "bytes",
               "text + rodata + data image")

    def fault_should_be(self, kind: str, address: str | None = None,
                        machine: str | None = None) -> None:
        """The run ended in ``kind`` (``HardFault``/``fault``, ``UnmodelledAccess``/
        ``unmodelled-access`` ...), at ``address`` if given (BFAR/MMFAR or the access)."""
        r = self._finished(machine)
        wanted = _fault_status(kind)
        if r.status != wanted:
            got = f"{r.status}: {r.error}" if r.error else f"no fault ({r.end_reason})"
            raise AssertionError(f"expected the run to end in {kind} (status {wanted!r}), "
                                 f"but it ended with {got}")
        if address is None:
            return
        expected = int(str(address).replace("_", ""), 0)
        err = r.error
        actual = getattr(err, "address", None)
        if isinstance(err, HardFault):
            actual = err.bfar if err.bfar is not None else err.mmfar
        if actual is None:
            raise AssertionError(f"{kind} has no fault address to compare with "
                                 f"0x{expected:08X}: {err}")
        if actual != expected:
            raise AssertionError(f"{kind} at 0x{actual:08X}, expected 0x{expected:08X}: {err}")

    # -- internals --------------------------------------------------------------------------
    def _monitor(self, action: Callable[[], T]) -> T:
        try:
            return action()
        finally:
            for note in self.emulation.notes:
                logger.info(f"AtomSim: {note}")
            self.emulation.notes.clear()

    def _tester(self, tester_id: int | None) -> TerminalTester:
        if not self.testers:
            raise ConfigError("no terminal tester: use Create Terminal Tester first")
        index = len(self.testers) - 1 if tester_id is None else int(tester_id)
        if not 0 <= index < len(self.testers):
            raise ConfigError(f"no terminal tester with id {tester_id} "
                              f"(ids 0..{len(self.testers) - 1})")
        return self.testers[index]

    def _finished(self, machine: str | None) -> RunResult:
        slot = self.emulation.slot(machine)
        m = self.emulation.machine(machine)
        if m.finished is None:
            raise AssertionError(
                f"the firmware on machine {slot.name!r} has not ended yet ({m.cycles()} cycles "
                "so far): use Run Firmware Until Exit first")
        return m.finished

    def _run_label(self, machine: str | None) -> str:
        m = self.emulation.machine(machine)
        return f"{m.firmware.path.name} on {m.board.id}"

    def _require_started(self, what: str) -> None:
        # Renode's testers wait on emulated time, which stands still before Start Emulation:
        # such a wait fails there, so it fails here too instead of running the machine.
        if not self.emulation.started:
            raise AssertionError(f"waiting for {what}, but the emulation is not started (or "
                                 "was paused): call Start Emulation first")

    def _wait(self, tester: TerminalTester, timeout: float | None, what: str,
              attempt: Callable[[], T | None]) -> T:
        seconds = tester.timeout if timeout is None else _seconds(timeout)
        hits: list[T] = []
        self._require_started(what)
        outcome = self._monitor(lambda: self.emulation.advance(
            seconds, lambda: _found(hits, attempt()), reference=tester.slot))
        if hits:
            return hits[0]
        raise AssertionError(_failure(tester, what, seconds, outcome))


def _seconds(timeout: float) -> float:
    """A UART timeout in emulated seconds: finite and not negative (-5 waited nothing)."""
    seconds = float(timeout)
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigError(f"timeout={timeout}: a UART timeout is a finite number of emulated "
                          "seconds >= 0")
    return seconds


def _found(hits: list, value) -> bool:
    if value is not None:
        hits.append(value)
        return True
    return False


def _failure(tester: TerminalTester, what: str, seconds: float, outcome: WaitOutcome) -> str:
    clock = (f"waited {outcome.waited_seconds * 1e3:.3f} ms of emulated time; the machine is at "
             f"{tester.slot.seconds() * 1e3:.3f} ms")
    if outcome.how == "ended":
        r = outcome.result
        if r is None:
            why = "no machine has firmware running"
        elif r.error is not None:
            why = f"the firmware stopped with {r.status}: {r.error}"
        else:
            why = f"the firmware ended ({r.end_reason}, exit code {r.exit_code})"
        head = f"{why}, and no {what} had appeared ({clock})"
    else:
        head = f"no {what} within the timeout of {seconds:g} s of emulated time ({clock})"
    return f"Terminal tester failed on {tester.label}: {head}.\n{tester.report()}"


def _below(run: str, what: str, value: int, limit: int, unit: str, detail: str) -> None:
    if value >= limit:
        raise AssertionError(f"{what} {value} {unit} ({detail}) of {run} is not below the "
                             f"budget of {limit} {unit}")
    logger.info(f"{what} {value} {unit} < {limit} {unit} ({detail}) of {run}")


def _fault_status(kind: str) -> str:
    key = kind.strip().lower()
    for cls in _FAULT_TYPES:
        if key in (cls.__name__.lower(), cls.status):
            return cls.status
    names = ", ".join(f"{c.__name__}/{c.status}" for c in _FAULT_TYPES)
    raise ConfigError(f"unknown fault type {kind!r}; known: {names}")


# Robot Framework imports the class named like the module: ``Library    atomsim.robot``.
robot = AtomSimLibrary

__all__ = ["AtomSimError", "AtomSimLibrary", "MachineSlot", "TerminalTesterResult",
           "parse_time"]
