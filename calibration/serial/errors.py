"""Named errors of the serial board link, each with its own CLI exit code (50-58)."""

from __future__ import annotations

from atomsim.core.errors import AtomSimError


class SerialLinkError(AtomSimError):
    """Base: something went wrong between the host and a board on a serial port."""

    exit_code = 50
    status = "serial-error"


class BoardNotResponding(SerialLinkError):
    """No valid reply after every retry (wrong port, board not flashed, link too noisy)."""

    exit_code = 51
    status = "board-not-responding"

    def __init__(self, port: str, request: str, attempts: int, waited_s: float):
        self.port, self.request, self.attempts, self.waited_s = port, request, attempts, waited_s
        super().__init__(
            f"no valid reply from the board on {port} to {request} after {attempts} attempts "
            f"({waited_s:.1f} s): is the harness firmware flashed and the port right?")


class BoardDisconnected(SerialLinkError):
    """The port went away (cable pulled, board re-enumerated, pseudo-terminal closed)."""

    exit_code = 52
    status = "board-disconnected"

    def __init__(self, port: str, why: str):
        self.port = port
        super().__init__(f"serial port {port} disconnected: {why}")


class BoardReset(SerialLinkError):
    """The board restarted during a job more often than the retry budget allows."""

    exit_code = 53
    status = "board-reset"

    def __init__(self, port: str, resets: int):
        self.port, self.resets = port, resets
        super().__init__(f"the board on {port} reset {resets} times during one job "
                         "(power, watchdog or a crash in the firmware)")


class BoardMismatch(SerialLinkError):
    """The board does not run the firmware the host built (image CRC, board, layout)."""

    exit_code = 54
    status = "board-mismatch"


class BoardComputedWrongly(SerialLinkError):
    """An output's CRC differs from the numpy reference: the board is not calibrated from it."""

    exit_code = 55
    status = "board-wrong-output"

    def __init__(self, what: str, got: int, expected: int):
        self.what, self.got, self.expected = what, got, expected
        super().__init__(f"the board computed {what} wrongly: output CRC 0x{got:08X}, the "
                         f"numpy reference gives 0x{expected:08X}; not used for calibration")


class BoardRefused(SerialLinkError):
    """The board answered a request with an ERROR frame it cannot recover from."""

    exit_code = 56
    status = "board-refused"


class FlashingFailed(SerialLinkError):
    """pyOCD could not program the board."""

    exit_code = 57
    status = "flash-failed"


class NotASerialPort(SerialLinkError):
    """The port names something that is not a serial line: a regular file, a directory, a
    character device that is no terminal (``/dev/null``), a pyserial URL of an unknown scheme.
    A port that does not exist is :class:`BoardDisconnected` (the board is unplugged)."""

    exit_code = 58
    status = "not-a-serial-port"

    def __init__(self, port: str, what: str):
        self.port, self.what = port, what
        super().__init__(f"{port} is not a serial port: {what}; name the board's serial "
                         "device (a tty such as /dev/ttyACM0 or /dev/ttyUSB0) or a pyserial URL")
