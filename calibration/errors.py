"""Named errors of the calibration package (AtomSim errors: the CLI prints them, no traceback)."""

from __future__ import annotations

from atomsim.core.errors import AtomSimError


class CalibrationError(AtomSimError):
    """Calibration cannot proceed with the data given (too few points, nothing matched …)."""

    exit_code = 20
    status = "calibration-error"


class SerialBackendNotBuilt(AtomSimError):
    """Measuring on a physical board over a serial port is not implemented yet."""

    exit_code = 21
    status = "serial-backend-not-built"

    def __init__(self, port: str):
        self.port = port
        super().__init__(
            f"calibrating over a serial port ({port}) is not built yet: the harness protocol "
            "over the console USART and its pyserial host side are a later step. Measure "
            "elsewhere and use `atomsim calibrate --from-csv FILE --board B` meanwhile.")
