"""Correction models: emulated figures -> the board's latency, per atom class, with intervals.

Candidates, per class (``conv``, ``dw``, ``pw``, ``pad``, …):

* ``physical:<terms>`` — latency = Σ cost_i · term_i with a few physically meaningful terms:
  a scale on the emulated latency (``emulated_ms``: what the cache-always-hits timing model
  misses proportionally), a per-call overhead (``call``, in ms), a per-weight-byte and a
  per-activation-byte cost (``weight_bytes``, ``act_bytes``: what caches, flash wait states
  and the board's memory layout add per byte moved). Costs are non-negative. Fitted by robust
  least squares on *relative* residuals (pred/real - 1, soft-L1 loss): errors are judged
  relatively, latencies span four decades, and a linear model in milliseconds keeps each cost
  physical (an overhead in ms, a cost per byte) — a log-space fit would turn the sum into a
  product and the overhead would lose its meaning.
* ``joint`` (:class:`JointModel`) — one physical model over every class: a scale per class,
  and per-call, per-weight-byte, per-activation-byte and per-flash-byte-read costs shared by
  all classes (the board's memory system is the same for every kernel), scored per class on
  its out-of-fold predictions like the others.
* ``ratio-ridge`` / ``log-ridge`` — ridge regression of log(real / emulated) (or of
  log(real), the emulated cycles being one feature) on shape and emulator features: a
  multiplicative correction that drifts smoothly with shape; the penalty is chosen by
  generalised CV, so with few points it shrinks to a plain scale.
* ``boosted`` / ``forest`` — gradient boosting / extremely randomised trees on
  log(real / emulated) with shape and emulator features (channels, map size, stride, MACs,
  bytes, cycles per MAC and per byte, instructions per cycle, traffic per region, channel
  multiples of 4, 8 and 16), for classes with enough points (``MIN_BOOSTED``).
* ``shape-ridge`` — the shape-only baseline itself. It is a candidate so that the choice by CV
  never does worse than ignoring the emulator; where it wins, the report names it.

Per class the candidates are scored by cross-validated MAPE on the calibration points and the
simplest one within one standard error of the best is chosen (:func:`one_se_choice`); its
out-of-fold residuals in log space give the interval (split-conformal: the
⌈(n+1)·level⌉-th smallest |log(real/pred)|; with fewer than 19 points, where that rank does
not exist, a Student-t interval on their RMS: :func:`interval_q`).

The baseline :class:`ShapeBaseline` sees the shape only (no emulator): ridge regression of
log(latency) on log shape features, per class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from calibration.errors import CalibrationError

PHYSICAL_TERMS = {
    "scale": ("emulated_ms",),
    "scale+call": ("emulated_ms", "call"),
    "scale+call+bytes": ("emulated_ms", "call", "weight_bytes", "act_bytes"),
    "scale+call+traffic": ("emulated_ms", "call", "weight_bytes", "act_bytes",
                           "flash_read_bytes", "sram_bytes_moved"),
}
BOOST_FEATURES = ("log_c_in", "log_c_out", "log_hw_out", "stride", "log_macs", "log_act_bytes",
                  "log_weight_bytes", "log_cycles", "log_cycles_per_mac", "log_cycles_per_byte",
                  "log_ipc", "log_weights_per_pixel", "log_flash_read_bytes",
                  "log_sram_bytes_moved", "log_tcm_bytes_moved", "c_in_mod4", "c_in_mod8",
                  "c_out_mod4", "c_out_mod8", "h_odd",
                  # The board's kernels work on channel blocks: pw residuals of the H743 file
                  # were +7 % on average for c_in not a multiple of 16 (34 atoms), -1 % for the
                  # others; with these two features 10-fold CV on all rows went pw 8.2 -> 6.1 %,
                  # pad 5.3 -> 4.9 % (docs/calibration.md).
                  "c_in_mod16", "c_out_mod16",
                  # A pad writes its border and copies its interior: in/out bytes, the input map,
                  # the row length; and 32-channel blocks. 10-fold CV on all rows (3 fold
                  # seeds), with the forest's leaves of one point: pad 4.7 -> 4.2 %, pw 6.4 ->
                  # 6.0 % (docs/calibration.md).
                  "log_in_out", "log_h_out", "log_hw_in", "log_row_bytes", "c_in_mod32",
                  "c_out_mod32")
SHAPE_FEATURES = ("log_c_in", "log_c_out", "log_hw_out", "stride", "log_macs", "log_act_bytes",
                  "log_weight_bytes")
RATIO_FEATURES = (*SHAPE_FEATURES, "log_cycles", "log_cycles_per_mac", "log_cycles_per_byte",
                  "log_weights_per_pixel", "log_flash_read_bytes", "log_sram_bytes_moved")
MIN_BOOSTED = 40  # points of a class before boosting is a candidate
LEVEL = 0.9
SPREAD_TRUST = 0.10  # repeat spread at which a measurement counts half in a fit
# The forest: leaves of one point — the file's neighbouring shapes differ by real effects
# (channel blocks, pad widths), and averaging 300 randomised trees smooths enough
# (min_samples_leaf 2 -> 1: pad 4.4 -> 4.2 %, pw 6.3 -> 6.0 %; fit cost in docs/benchmarks.md).
FOREST = {"n_estimators": 300, "min_samples_leaf": 1}


def label_weights(frame: pd.DataFrame) -> np.ndarray:
    """How much each measurement counts in a fit: 1 / (1 + (spread / SPREAD_TRUST)²), where
    spread = (max - min) / median of its repeats; 1 when the spread is unknown.

    Repeats that disagree make the median a poor label. On the H743 file the pw and pad atoms
    whose repeats spread more than 10 % (21 of 149 pw, 32 of 147 pad) are bimodal: their
    repeats fall in a fast and a slow mode 1.2-1.6x apart, and the median lands in either or
    between. Fitted at full weight they drag their clean neighbours with them; down-weighted,
    10-fold CV on all rows (every row judged, noisy ones included) went pw 6.0 -> 5.7 %, pad
    4.2 -> 4.1 % (docs/calibration.md). Errors are still judged on every row unweighted."""
    if "spread" not in frame.columns:
        return np.ones(len(frame))
    spread = frame["spread"].to_numpy(float)
    return np.where(np.isfinite(spread), 1.0 / (1.0 + np.square(spread / SPREAD_TRUST)), 1.0)


def design(frame: pd.DataFrame, terms: tuple[str, ...]) -> np.ndarray:
    """The physical terms of each row (``call`` is the constant 1 ms)."""
    cols = [np.ones(len(frame)) if t == "call" else frame[t].to_numpy(float) for t in terms]
    return np.column_stack(cols)


def _fit_physical(X: np.ndarray, y: np.ndarray, n_scales: int = 1,
                  weights: np.ndarray | None = None) -> np.ndarray:
    """Non-negative costs p minimising the soft-L1 loss of X @ p / y - 1, each residual
    weighted by ``weights`` (:func:`label_weights`; none: all 1).

    The first ``n_scales`` columns are emulated latencies; the fit starts from "the emulator
    is right" (their costs 1, the others 0). Columns are scaled to comparable size first.
    """
    from scipy.optimize import least_squares

    A = X / y[:, None]  # relative residual: A @ p - 1 = pred / real - 1
    root_w = np.sqrt(weights) if weights is not None else np.ones(len(y))
    scale = np.maximum(np.abs(A).max(axis=0), 1e-30)
    start = np.zeros(X.shape[1])
    start[:n_scales] = 1.0
    res = least_squares(lambda p: root_w * ((A / scale) @ p - 1), start * scale,
                        loss="soft_l1", f_scale=0.05, bounds=(0, np.inf), method="trf")
    return res.x / scale


@dataclass
class Candidate:
    """One model family for one class: fit on rows, predict milliseconds."""

    name: str
    params: dict = field(default_factory=dict)
    _coef: np.ndarray | None = None
    _boost: object = None
    seed: int = 0

    @property
    def n_params(self) -> int:
        """Free parameters (physical) or a large number (boosted: needs MIN_BOOSTED points)."""
        if self.name.startswith("physical:"):
            return len(PHYSICAL_TERMS[self.name.split(":", 1)[1]])
        return MIN_BOOSTED // 2

    def fit(self, frame: pd.DataFrame) -> Candidate:
        """Fit on ``frame`` (needs ``real_ms``)."""
        y = frame["real_ms"].to_numpy(float)
        w = label_weights(frame)
        if self.name.startswith("physical:"):
            terms = PHYSICAL_TERMS[self.name.split(":", 1)[1]]
            self._coef = _fit_physical(design(frame, terms), y, weights=w)
            self.params = {t: float(c) for t, c in zip(terms, self._coef, strict=True)}
        elif self.name in ("ratio-ridge", "log-ridge"):
            from sklearn.linear_model import RidgeCV
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            self._boost = make_pipeline(StandardScaler(),
                                        RidgeCV(alphas=np.logspace(-3, 4, 15)))
            offset = np.log(frame["emulated_ms"].to_numpy(float)) \
                if self.name == "ratio-ridge" else 0.0
            self._boost.fit(frame[list(RATIO_FEATURES)].to_numpy(float), np.log(y) - offset,
                            ridgecv__sample_weight=w)
            ridge = self._boost[-1]
            self.params = {"alpha": float(ridge.alpha_), "features": list(RATIO_FEATURES),
                           "coef": [float(c) for c in ridge.coef_],
                           "intercept": float(ridge.intercept_),
                           "mean": [float(v) for v in self._boost[0].mean_],
                           "scale": [float(v) for v in self._boost[0].scale_]}
        elif self.name in ("boosted", "forest"):
            from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor

            if self.name == "boosted":
                hyper = {"n_estimators": 150, "max_depth": 3, "learning_rate": 0.1,
                         "subsample": 0.8, "loss": "huber", "random_state": self.seed}
                self._boost = GradientBoostingRegressor(**hyper)
            else:
                hyper = {**FOREST, "random_state": self.seed}
                self._boost = ExtraTreesRegressor(**hyper)
            self._boost.fit(frame[list(BOOST_FEATURES)].to_numpy(float),
                            np.log(y / frame["emulated_ms"].to_numpy(float)), sample_weight=w)
            self.params = {"target": "log(real / emulated)", "features": list(BOOST_FEATURES),
                           **hyper}
        elif self.name == "shape-ridge":
            self._boost = ShapeBaseline().fit(frame.assign(cls="_"))
            ridge = self._boost.models["_"][-1]
            self.params = {"target": "log(real)", "features": list(SHAPE_FEATURES),
                           "alpha": float(ridge.alpha_)}
        else:
            raise CalibrationError(f"unknown model {self.name!r}")
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted board latency in ms."""
        if self.name.startswith("physical:"):
            terms = PHYSICAL_TERMS[self.name.split(":", 1)[1]]
            pred = design(frame, terms) @ self._coef
        elif self.name in ("ratio-ridge", "log-ridge"):
            offset = frame["emulated_ms"].to_numpy(float) if self.name == "ratio-ridge" else 1.0
            pred = offset * np.exp(
                self._boost.predict(frame[list(RATIO_FEATURES)].to_numpy(float)))
        elif self.name == "shape-ridge":
            pred = self._boost.predict(frame.assign(cls="_"))["pred_ms"].to_numpy(float)
        else:
            pred = frame["emulated_ms"].to_numpy(float) * np.exp(
                self._boost.predict(frame[list(BOOST_FEATURES)].to_numpy(float)))
        return np.maximum(pred, 1e-9)


JOINT_SHARED = ("call", "weight_bytes", "act_bytes", "flash_read_bytes")


@dataclass
class JointModel:
    """One physical model over every class: a scale on the emulated latency per class, and
    costs shared by all classes — per call, per weight byte, per activation byte, per byte
    the emulator read from flash. The board's memory system is the same for every kernel, so
    with a few points per class the shared costs are estimated from all of them at once.
    Fitted like the per-class physical model (robust, relative residuals, costs >= 0)."""

    classes: tuple[str, ...] = ()
    params: dict = field(default_factory=dict)
    _coef: np.ndarray | None = None
    name: str = "joint"

    def _design(self, frame: pd.DataFrame) -> np.ndarray:
        emu = frame["emulated_ms"].to_numpy(float)
        cols = [(frame["cls"] == c).to_numpy(float) * emu for c in self.classes]
        return np.column_stack(cols + [design(frame, JOINT_SHARED)])

    def fit(self, frame: pd.DataFrame) -> JointModel:
        """Fit on every row of ``frame``."""
        self.classes = tuple(sorted(frame["cls"].unique()))
        self._coef = _fit_physical(self._design(frame), frame["real_ms"].to_numpy(float),
                                   n_scales=len(self.classes), weights=label_weights(frame))
        n = len(self.classes)
        self.params = {"scale": dict(zip(self.classes, map(float, self._coef[:n]), strict=True)),
                       **{t: float(c) for t, c in zip(JOINT_SHARED, self._coef[n:],
                                                       strict=True)}}
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Predicted board latency in ms (a class the fit did not see gets scale 0)."""
        return np.maximum(self._design(frame) @ self._coef, 1e-9)


def candidates_for(n: int, seed: int = 0) -> list[Candidate]:
    """The candidates a class with ``n`` calibration points can afford (n > 2·params)."""
    out = [Candidate(f"physical:{k}", seed=seed) for k, terms in PHYSICAL_TERMS.items()
           if n >= 2 * len(terms) + 1]
    if n >= 5:
        out.append(Candidate("ratio-ridge", seed=seed))
    if n >= 12:
        out.append(Candidate("log-ridge", seed=seed))
    if n >= 12:
        out.append(Candidate("shape-ridge", seed=seed))
    if n >= MIN_BOOSTED:
        out += [Candidate("boosted", seed=seed), Candidate("forest", seed=seed)]
    if not out:
        out.append(Candidate("physical:scale", seed=seed))
    return out


def folds(n: int, k: int, seed: int) -> list[np.ndarray]:
    """k roughly equal random folds of range(n) (leave-one-out when n <= k)."""
    idx = np.random.default_rng(seed).permutation(n)
    k = min(k, n)
    return [idx[i::k] for i in range(k)]


def oof_predictions(make, frame: pd.DataFrame, k: int, seed: int) -> np.ndarray:
    """Out-of-fold predictions of the model made by ``make()`` (K-fold CV)."""
    pred = np.zeros(len(frame))
    for test in folds(len(frame), k, seed):
        train = np.setdiff1d(np.arange(len(frame)), test)
        pred[test] = make().fit(frame.iloc[train]).predict(frame.iloc[test])
    return pred


def conformal_q(log_residuals: np.ndarray, level: float = LEVEL) -> float:
    """Split-conformal half-width in log space; inf with too few residuals."""
    r = np.sort(np.abs(log_residuals))
    n = len(r)
    rank = math.ceil((n + 1) * level)
    return float(r[rank - 1]) if 1 <= rank <= n else math.inf


def interval_q(log_residuals: np.ndarray, level: float, pooled: float) -> float:
    """A class's log-space half-width: split-conformal with >= 19 residuals (enough for the
    90 % rank to exist); below that, a Student-t interval on the residuals' RMS (a 90 % rank of
    6 residuals does not exist, and the pooled one would lend dw the errors of pw); with fewer
    than 3 residuals, the pooled half-width."""
    from scipy.stats import t

    n = len(log_residuals)
    if n >= 19:
        return conformal_q(log_residuals, level)
    if n < 3:
        return pooled
    rms = float(np.sqrt(np.mean(np.square(log_residuals))))
    return float(t.ppf(0.5 + level / 2, n - 1) * rms * math.sqrt(1 + 1 / n))


# Simplest first: the one-standard-error rule prefers the earliest candidate within reach.
# Candidates in one tuple are equally simple: among them the best score wins (the two tree
# ensembles; on the H743 file the rule used to take boosting over a forest 0.6 point better
# for pw, which cost 0.3 point of held-back pw MAPE).
SIMPLICITY = (("physical:scale",), ("physical:scale+call",), ("joint",),
              ("physical:scale+call+bytes",), ("physical:scale+call+traffic",),
              ("shape-ridge",), ("ratio-ridge",), ("log-ridge",), ("boosted", "forest"))


def _tier(name: str) -> int:
    return next((i for i, tier in enumerate(SIMPLICITY) if name in tier), len(SIMPLICITY))


ONE_SE_MIN_POINTS = 20


def one_se_choice(scores: dict[str, float], oofs: dict[str, np.ndarray]) -> str:
    """The simplest candidate whose CV MAPE is within one standard error of the best one's
    (the one-standard-error rule: a richer model must win by more than the CV's own noise;
    without it, 28 conv points let a 13-feature ridge win the inner CV by 0.5 point and then
    miss a held-back fold by 12 %). Below ``ONE_SE_MIN_POINTS`` the standard error of a
    handful of leave-one-out errors is itself noise, and the candidates are already limited
    by their parameter count: the best score wins (on the H743 file the rule at N = 25 fell
    back to a single scale for pw and cost 1.2 points there)."""
    best = min(scores, key=scores.get)
    if len(oofs[best]) < ONE_SE_MIN_POINTS:
        return best
    rel = np.abs(np.expm1(-oofs[best])) * 100  # |pred/real - 1| of the best, per point
    se = float(rel.std(ddof=1) / np.sqrt(len(rel))) if len(rel) > 1 else 0.0
    within = [n for n in scores if scores[n] <= scores[best] + se]
    return min(within, key=lambda n: (_tier(n), scores[n]))


@dataclass
class ClassModel:
    """The chosen model of one class, its CV figures and its interval half-width."""

    cls: str
    model: Candidate | JointModel
    cv_mape: dict[str, float]  # candidate -> CV MAPE (%) on the calibration points
    oof_log_residuals: np.ndarray
    q: float = math.inf  # log-space half-width of the LEVEL interval

    def to_json(self) -> dict:
        """The model and its parameters (JSON-ready)."""
        return {"model": self.model.name, "params": self.model.params,
                "cv_mape_by_candidate": self.cv_mape, "interval_log_halfwidth": self.q,
                "n_points": len(self.oof_log_residuals)}


class CalibrationModel:
    """Per-class models chosen by cross-validation; predictions with LEVEL intervals."""

    def __init__(self, k: int = 5, seed: int = 0, level: float = LEVEL,
                 allow_boosted: bool = True, allow_joint: bool = True):
        self.k, self.seed, self.level, self.allow_boosted = k, seed, level, allow_boosted
        self.allow_joint = allow_joint
        self.classes: dict[str, ClassModel] = {}
        self.pooled_q = math.inf

    def fit(self, frame: pd.DataFrame) -> CalibrationModel:
        """Fit every class present in ``frame`` (columns of :func:`calibration.dataset`)."""
        if len(frame) == 0:
            raise CalibrationError("no calibration points to fit")
        joint_oof, joint = None, None
        if self.allow_joint and len(frame) >= 2 * (frame["cls"].nunique() + 4) + 1:
            joint_oof = pd.Series(oof_predictions(JointModel, frame, self.k, self.seed),
                                  index=frame.index)
            joint = JointModel().fit(frame)
        for cls, rows in frame.groupby("cls", sort=True):
            y = rows["real_ms"].to_numpy(float)
            scores, oofs = {}, {}
            if joint_oof is not None:
                pred = joint_oof.loc[rows.index].to_numpy(float)
                scores["joint"] = float(np.mean(np.abs(pred / y - 1)) * 100)
                oofs["joint"] = np.log(y / pred)
            cands = candidates_for(len(rows), self.seed)
            if not self.allow_boosted:
                cands = [c for c in cands if c.name != "boosted"]
            for cand in cands:
                if len(rows) < 3:
                    break
                pred = oof_predictions(lambda c=cand: Candidate(c.name, seed=self.seed), rows,
                                       self.k, self.seed)
                scores[cand.name] = float(np.mean(np.abs(pred / y - 1)) * 100)
                oofs[cand.name] = np.log(y / pred)
            best = one_se_choice(scores, oofs) if scores else cands[0].name
            model = joint if best == "joint" else Candidate(best, seed=self.seed).fit(rows)
            resid = oofs.get(best, np.log(y / model.predict(rows)))
            self.classes[str(cls)] = ClassModel(str(cls), model, scores, resid)
        pooled = np.concatenate([c.oof_log_residuals for c in self.classes.values()])
        self.pooled_q = conformal_q(pooled, self.level)
        for c in self.classes.values():
            c.q = interval_q(c.oof_log_residuals, self.level, self.pooled_q)
        return self

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``pred_ms``, ``low_ms``, ``high_ms`` per row (NaN for a class not calibrated)."""
        out = pd.DataFrame(index=frame.index, columns=["pred_ms", "low_ms", "high_ms"],
                           dtype=float)
        for cls, rows in frame.groupby("cls"):
            cm = self.classes.get(str(cls))
            if cm is None:
                continue
            pred = cm.model.predict(rows)
            out.loc[rows.index, "pred_ms"] = pred
            out.loc[rows.index, "low_ms"] = pred * math.exp(-cm.q)
            out.loc[rows.index, "high_ms"] = pred * math.exp(cm.q)
        return out

    def to_json(self) -> dict:
        """Every class's model, parameters, CV scores and interval (JSON-ready)."""
        return {"level": self.level, "cv_folds": self.k, "seed": self.seed,
                "label_weights": f"1 / (1 + (spread / {SPREAD_TRUST})^2); 1 if unknown",
                "pooled_interval_log_halfwidth": self.pooled_q,
                "classes": {k: v.to_json() for k, v in self.classes.items()}}


class ShapeBaseline:
    """Regression on shape alone (no emulator): per class, ridge on log shape features."""

    def __init__(self):
        self.models: dict[str, object] = {}

    def fit(self, frame: pd.DataFrame) -> ShapeBaseline:
        """Fit log(real_ms) per class."""
        from sklearn.linear_model import RidgeCV
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        for cls, rows in frame.groupby("cls"):
            model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-4, 3, 15)))
            model.fit(rows[list(SHAPE_FEATURES)].to_numpy(float),
                      np.log(rows["real_ms"].to_numpy(float)))
            self.models[str(cls)] = model
        return self

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``pred_ms`` per row."""
        out = pd.DataFrame(index=frame.index, columns=["pred_ms"], dtype=float)
        for cls, rows in frame.groupby("cls"):
            m = self.models.get(str(cls))
            if m is not None:
                out.loc[rows.index, "pred_ms"] = np.exp(
                    m.predict(rows[list(SHAPE_FEATURES)].to_numpy(float)))
        return out
