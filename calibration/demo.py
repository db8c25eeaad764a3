"""The calibration step of ``make demo``: calibrate from the shared H743 CSV, print the table;
without the shared file, calibrate against the pseudo-terminal board over a real serial line."""

from __future__ import annotations

import sys
from pathlib import Path

from atomsim.core.paths import shared_data_dir

SHARED_CSV = shared_data_dir() / "atomdb-h743-calibration.csv"
BOARD = "stm32h743"
SERIAL_BUDGET = 24  # 6 per class: what the few-term models need (docs/calibration.md)
SERIAL_CLASSES = ("conv", "dw", "pad", "pw")  # the classes of the shared H743 file


def main(argv: list[str] | None = None) -> int:
    """Calibrate the H743 from the shared CSV with a budget of 25 atoms and print the error
    table (the held-back rows are the other measured atoms). The database is the feature cache
    under build/calibration/ (see :func:`calibration.features.cache_path`); the PNG goes next
    to it, or into the folder given as the first argument.
    When the shared file is absent, the pseudo-terminal board (the emulator serving the serial
    protocol with its injected timing) stands in for a physical one: :func:`serial_demo`."""
    from rich.console import Console

    from calibration.calibrate import calibrate
    from calibration.measurements import read_csv
    from calibration.report import report

    console = Console()
    if not SHARED_CSV.is_file():
        console.print(f"{SHARED_CSV} is absent: calibrating against the pseudo-terminal board")
        return serial_demo(argv, console)
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


def serial_demo(argv: list[str] | None = None, console=None, budget: int = SERIAL_BUDGET) -> int:
    """``atomsim calibrate --port`` against the pseudo-terminal board: ``budget`` atoms of the
    table2 space chosen (its conv, dw, pad and pw atoms), each measured 3 times over the
    serial line (pyserial on a real pty), fitted and recorded in
    ``build/calibration/demo-serial.atomdb`` (journal beside it: a second demo reuses the
    measurements). The fitted scale should come out near the board's
    injected 1.25."""
    from rich.console import Console

    from atomsim.boards import get_board
    from atomsim.core.paths import build_dir
    from atomsim.profiling.profiler import harness_elf
    from calibration.port import calibrate_on_port, spread_table
    from calibration.report import report
    from calibration.serial.pty_board import InjectedTiming, PtyBoard

    console = console or Console()
    out_dir = build_dir() / "calibration"
    out_dir.mkdir(parents=True, exist_ok=True)
    db = out_dir / "demo-serial.atomdb"
    out = Path(argv[0]) if argv else out_dir
    board = get_board(BOARD)
    timing = InjectedTiming()
    with PtyBoard(board, harness_elf(board), timing) as pty:
        console.print(f"pseudo-terminal board on {pty.port} (injected: {timing.scale} x cycles "
                      f"+ {timing.per_call:g} per call + {timing.per_weight_byte} per weight "
                      "byte)")
        res = calibrate_on_port(BOARD, pty.port, db, budget=budget, repeats=3, space="table2",
                                classes=SERIAL_CLASSES,
                                say=lambda line: console.print(line, markup=False))
    console.print(spread_table(res.measurements))
    if res.not_fitting:
        console.print(f"{len(res.not_fitting)} chosen atoms do not fit the serial arena: "
                      f"{', '.join(res.not_fitting)}", markup=False)
    out.mkdir(parents=True, exist_ok=True)
    _, png = report(db, res.calibration.id, png=out / "calibration-serial.png", console=console)
    scales = {c: m.model.params.get("emulated_ms") or m.model.params.get("scale", {}).get(c)
              for c, m in res.calibration.model.classes.items()}
    console.print(f"fitted scale per class {scales} (injected {timing.scale}); database {db}; "
                  f"plot {png}", markup=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
