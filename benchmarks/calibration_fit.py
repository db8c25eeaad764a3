"""Cost of fitting the calibration models: one CalibrationModel.fit on every measured row of
the shared H743 file, with the forest as it is (300 trees, leaves of one point) and as it was
(200 trees, leaves of two), in the same run.

The fit scores every candidate by an inner K-fold CV per class and refits the chosen one, so
its time is what ``atomsim calibrate --from-csv`` (without --budget: once more per outer fold
for the held-back figures) and the AtomNet demo's one-time calibration spend after emulation.
The emulated features come from the feature cache the tests fill (build/calibration/); the
first run emulates the 485 atoms (about a minute on 2 cores). Run:
    .venv/bin/python benchmarks/calibration_fit.py [--trials 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from atomsim.core.paths import shared_data_dir
from atomsim.db import AtomDB

BOARD = "stm32h743"


def _frame():
    from calibration import dataset, features
    from calibration.measurements import read_csv

    src = read_csv(shared_data_dir() / "atomdb-h743-calibration.csv")
    with AtomDB.open(features.cache_path(BOARD)) as db:
        features.collect(db, BOARD, [m.atom for m in src.measurements], workers=2)
        emulated, _ = features.load(db, BOARD)
    f = dataset.build(emulated, src.measurements)
    return f[f["real_ms"].notna()].reset_index(drop=True)


def _fit_s(frame, forest: dict) -> tuple[float, dict[str, str]]:
    """Seconds for one fit with the forest's hyper-parameters ``forest``."""
    from calibration import models

    shipped = models.FOREST
    models.FOREST = forest
    try:
        t = time.perf_counter()
        model = models.CalibrationModel(k=3, seed=0).fit(frame)
        dt = time.perf_counter() - t
    finally:
        models.FOREST = shipped
    return dt, {c: m.model.name for c, m in model.classes.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    frame = _frame()
    print(f"{platform.node()} {platform.processor() or platform.machine()}, "
          f"{time.strftime('%Y-%m-%d')}; {len(frame)} rows")
    from calibration.models import FOREST

    rows = {"now (300 trees, leaf 1)": FOREST,
            "before (200 trees, leaf 2)": {"n_estimators": 200, "min_samples_leaf": 2}}
    medians = {}
    for name, forest in rows.items():
        times = []
        for _ in range(args.trials):
            dt, chosen = _fit_s(frame, forest)
            times.append(dt)
        medians[name] = statistics.median(times)
        print(f"{name:28s} median {medians[name]:6.1f} s over {args.trials} "
              f"(min {min(times):.1f}, max {max(times):.1f}); chosen {chosen}")
    now, before = medians.values()
    print(f"ratio now / before: {now / before:.2f}")


if __name__ == "__main__":
    main()
