"""Cross-validated accuracy of the calibration on held-back board measurements.

* :func:`kfold_all` — all rows: K-fold CV; each fold's model (with its own inner CV choice
  of the model per class and its own intervals) predicts the held-back fold.
* :func:`budget_experiment` — few points: per seed, a random share of rows is held back,
  :func:`calibration.selection.select` picks ``budget`` atoms from the rest (label-free),
  the model is fitted on those and judged on the held-back rows; repeated over seeds.

Each judges the emulator-based model and the shape-only baseline on the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from calibration.models import CalibrationModel, ShapeBaseline
from calibration.selection import select


@dataclass
class ClassError:
    """Errors of one class (or 'all') on held-back rows."""

    cls: str
    n: int
    mape: float  # %
    within10: float  # % of rows within ±10 %
    coverage: float  # % of rows inside the interval (NaN when no interval)


def errors(frame: pd.DataFrame, pred: pd.Series, low: pd.Series | None = None,
           high: pd.Series | None = None) -> list[ClassError]:
    """Per-class errors plus an 'all' row whose MAPE is class-mix weighted."""
    real = frame["real_ms"].to_numpy(float)
    p = pred.to_numpy(float)
    rel = np.abs(p / real - 1)
    inside = ((real >= low.to_numpy(float)) & (real <= high.to_numpy(float))) \
        if low is not None else np.full(len(real), np.nan)
    out = []
    for cls in sorted(frame["cls"].unique()):
        m = (frame["cls"] == cls).to_numpy()
        out.append(ClassError(cls, int(m.sum()), float(rel[m].mean() * 100),
                              float((rel[m] <= 0.1).mean() * 100),
                              float(np.nanmean(inside[m]) * 100) if low is not None
                              else float("nan")))
    n = len(real)
    weighted = sum(e.mape * e.n / n for e in out)  # class-mix weights: each class's share
    out.append(ClassError("all", n, float(weighted), float((rel <= 0.1).mean() * 100),
                          float(np.nanmean(inside) * 100) if low is not None
                          else float("nan")))
    return out


def kfold_all(frame: pd.DataFrame, k: int = 10, seed: int = 0, inner_k: int = 5
              ) -> tuple[pd.DataFrame, pd.Series]:
    """Out-of-fold predictions (pred/low/high) of the model and of the baseline (pred)."""
    from calibration.models import folds

    out = pd.DataFrame(index=frame.index, columns=["pred_ms", "low_ms", "high_ms"], dtype=float)
    base = pd.Series(index=frame.index, dtype=float)
    # Stratify by class: fold each class separately, so every fold sees every class.
    fold_of = pd.Series(0, index=frame.index)
    for _, rows in frame.groupby("cls"):
        for i, test in enumerate(folds(len(rows), k, seed)):
            fold_of.loc[rows.index[test]] = i
    for i in range(k):
        test = fold_of == i
        if not test.any():
            continue
        train = frame[~test]
        model = CalibrationModel(k=inner_k, seed=seed).fit(train)
        out.loc[test] = model.predict(frame[test]).to_numpy()
        base.loc[test] = ShapeBaseline().fit(train).predict(frame[test])["pred_ms"]
    return out, base


@dataclass
class BudgetRun:
    """One seed of the few-point experiment."""

    seed: int
    model: list[ClassError]
    baseline: list[ClassError]
    chosen: dict[str, str]  # class -> chosen model


def budget_experiment(frame: pd.DataFrame, budget: int = 25, seeds=range(10),
                      test_fraction: float = 0.3, inner_k: int = 5) -> list[BudgetRun]:
    """The few-point experiment over ``seeds`` (see the module docstring)."""
    runs = []
    for seed in seeds:
        rng = np.random.default_rng(1000 + seed)
        held = np.zeros(len(frame), dtype=bool)
        for _, rows in frame.groupby("cls"):  # hold back the same share of every class
            pos = frame.index.get_indexer(rows.index)
            n_test = int(round(len(pos) * test_fraction))
            held[rng.choice(pos, n_test, replace=False)] = True
        pool, test = frame[~held], frame[held]
        chosen_rows = pool.loc[select(pool, budget, seed=seed)]
        model = CalibrationModel(k=inner_k, seed=seed).fit(chosen_rows)
        p = model.predict(test)
        b = ShapeBaseline().fit(chosen_rows).predict(test)
        runs.append(BudgetRun(seed, errors(test, p["pred_ms"], p["low_ms"], p["high_ms"]),
                              errors(test, b["pred_ms"]),
                              {c: m.model.name for c, m in model.classes.items()}))
    return runs


def summarize(runs: list[BudgetRun]) -> pd.DataFrame:
    """Mean and standard deviation over seeds, per class, for model and baseline."""
    rows = []
    for r in runs:
        for which, errs in (("model", r.model), ("baseline", r.baseline)):
            for e in errs:
                rows.append({"which": which, "cls": e.cls, "seed": r.seed, "mape": e.mape,
                             "within10": e.within10, "coverage": e.coverage})
    df = pd.DataFrame(rows)
    return df.groupby(["which", "cls"]).agg(
        mape_mean=("mape", "mean"), mape_std=("mape", "std"), mape_max=("mape", "max"),
        within10_mean=("within10", "mean"), coverage_mean=("coverage", "mean")).reset_index()
