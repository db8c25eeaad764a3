"""Named errors of the calibration package (AtomSim errors: the CLI prints them, no traceback)."""

from __future__ import annotations

from atomsim.core.errors import AtomSimError


class CalibrationError(AtomSimError):
    """Calibration cannot proceed with the data given (too few points, nothing matched …)."""

    exit_code = 20
    status = "calibration-error"
