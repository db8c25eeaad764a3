"""The calibration step of ``make demo``: calibrate from the shared H743 CSV, print the table."""

from __future__ import annotations

import sys
from pathlib import Path

from atomsim.core.paths import shared_data_dir

SHARED_CSV = shared_data_dir() / "atomdb-h743-calibration.csv"
BOARD = "stm32h743"


def main(argv: list[str] | None = None) -> int:
    """Calibrate the H743 from the shared CSV with a budget of 25 atoms and print the error
    table (the held-back rows are the other measured atoms). The database is the feature cache
    under build/calibration/ (see :func:`calibration.features.cache_path`); the PNG goes next
    to it, or into the folder given as the first argument.
    Says why and returns 0 when the shared file is absent (the serial/pseudo-terminal board
    that would replace it is not built yet)."""
    from rich.console import Console

    from calibration.calibrate import calibrate
    from calibration.measurements import read_csv
    from calibration.report import report

    console = Console()
    if not SHARED_CSV.is_file():
        console.print(f"calibration demo skipped: {SHARED_CSV} is absent, and the "
                      "pseudo-terminal board that would stand in for it is not built yet")
        return 0
    from calibration.features import cache_path

    db = cache_path(BOARD)  # emulated figures are reused from one demo to the next
    out = Path(argv[0]) if argv else db.parent
    console.print(f"calibrating {BOARD} from {SHARED_CSV} (budget 25; emulating the atoms, "
                  "about a minute on 2 cores the first time) …")
    cal = calibrate(read_csv(SHARED_CSV), BOARD, db, budget=25)
    out.mkdir(parents=True, exist_ok=True)
    _, png = report(db, cal.id, png=out / "calibration.png", console=console)
    console.print(f"{len(cal.oom)} measured atoms do not fit the emulated {BOARD} (recorded "
                  f"as OOM); database {db}; plot {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
