"""Which atoms to measure on the board: a budget of N that covers classes and shapes.

Label-free (it runs before anything is measured): it sees only the emulator's features.
The budget is split over classes in proportion to their share of the candidates, with at
least ``min_per_class`` each (enough for the few-term physical model of that class). Inside a
class, the candidates are cut into as many equal-count strata of log emulated cycles as the
class gets points (so the shape range is covered from the smallest to the largest atom), and
from each stratum the point farthest from those already chosen in the standardised feature
space (log cycles, weight and activation bytes, MACs, flash traffic, map size, channels) is
taken: a stratified farthest-point design. Pure farthest-point sampling (a D-optimal-like
design) was tried and chose extreme, atypical atoms whose corrections do not transfer (see
docs/calibration.md). The seed picks the first stratum's point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SELECT_FEATURES = ("log_cycles", "log_weight_bytes", "log_act_bytes", "log_macs",
                   "log_flash_read_bytes", "log_hw_out", "log_c_in", "log_c_out")
DEFAULT_BUDGET = 25
# Per class: enough for the two- or three-term physical model and a leave-one-out check of it;
# 4 left the conv class (7 % of the H743 file) at 16 % held-back MAPE, 6 brought it to 8 %.
MIN_PER_CLASS = 6


def allocate(counts: dict[str, int], budget: int,
             min_per_class: int = MIN_PER_CLASS) -> dict[str, int]:
    """Points per class: at least ``min_per_class`` (or all the class has), the rest by share
    (largest remainder)."""
    alloc = {c: min(n, min_per_class) for c, n in counts.items()}
    left = budget - sum(alloc.values())
    if left < 0:  # budget below the minimum: spread it evenly, big classes first
        alloc = dict.fromkeys(counts, 0)
        for i, c in enumerate(sorted(counts, key=lambda c: -counts[c]) * budget):
            if i >= budget:
                break
            if alloc[c] < counts[c]:
                alloc[c] += 1
        return alloc
    total = sum(counts.values())
    while left > 0:
        room = {c: counts[c] - alloc[c] for c in counts if counts[c] > alloc[c]}
        if not room:
            break
        share = {c: budget * counts[c] / total - alloc[c] for c in room}
        c = max(share, key=lambda c: (share[c], room[c]))
        alloc[c] += 1
        left -= 1
    return alloc


def stratified_spread(rows: pd.DataFrame, k: int, rng: np.random.Generator,
                      features: tuple[str, ...] = SELECT_FEATURES,
                      order_by: str = "log_cycles") -> list[int]:
    """k row positions: one per equal-count stratum of log emulated cycles (the shape range),
    each the member of its stratum farthest from the points already chosen in the
    standardised feature space (the first stratum's pick is random: the seed)."""
    X = rows[list(features)].to_numpy(float)
    sd = X.std(axis=0)
    X = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1)
    order = np.argsort(rows[order_by].to_numpy(float), kind="stable")
    strata = [s for s in np.array_split(order, min(k, len(rows))) if len(s)]
    chosen: list[int] = []
    for stratum in strata:
        if not chosen:
            chosen.append(int(rng.choice(stratum)))
            continue
        dist = np.min(np.linalg.norm(X[stratum][:, None, :] - X[chosen][None, :, :], axis=2),
                      axis=1)
        chosen.append(int(stratum[np.argmax(dist)]))
    return chosen


def select(frame: pd.DataFrame, budget: int = DEFAULT_BUDGET, seed: int = 0,
           min_per_class: int = MIN_PER_CLASS) -> list[int]:
    """Row labels of ``frame`` to measure (at most ``budget``)."""
    counts = frame.groupby("cls").size().to_dict()
    alloc = allocate(counts, budget, min_per_class)
    rng = np.random.default_rng(seed)
    out: list[int] = []
    for cls, rows in frame.groupby("cls", sort=True):
        k = alloc.get(cls, 0)
        if k:
            out += [rows.index[i] for i in stratified_spread(rows, k, rng)]
    return out


SHAPE_SELECT_FEATURES = ("log_work", "log_weight_bytes", "log_act_bytes", "log_macs",
                         "log_hw_out", "log_c_in", "log_c_out")
POOL_PER_POINT = 6  # shape-only pre-selection keeps this many candidates per point to measure


def shape_frame(atoms) -> pd.DataFrame:
    """Shape features of atoms (no emulator): what :func:`preselect` sees."""
    rows = []
    for i, a in enumerate(atoms):
        act = a.input_bytes + a.output_bytes
        rows.append({"i": i, "cls": a.type, "log_macs": np.log1p(a.macs),
                     "log_act_bytes": np.log(max(act, 1)),
                     "log_weight_bytes": np.log1p(a.flash_bytes),
                     "log_work": np.log1p(a.macs + act), "log_hw_out": np.log(a.h_out * a.w_out),
                     "log_c_in": np.log(a.c_in), "log_c_out": np.log(a.c_out)})
    return pd.DataFrame(rows)


def preselect(atoms: list, n: int, seed: int = 0) -> list:
    """At most ``n`` of ``atoms`` spread over classes and shapes by shape alone — the same
    stratified design as :func:`select`, with MACs + activation bytes standing in for the
    emulated cycles. It thins a large space (table2: 2797 atoms) to a pool that is then run on
    the emulator with the traffic counter, from which :func:`select` picks the atoms to
    measure. Atoms are returned in their original order."""
    if len(atoms) <= n:
        return list(atoms)
    frame = shape_frame(atoms)
    alloc = allocate(frame.groupby("cls").size().to_dict(), n,
                     min_per_class=max(MIN_PER_CLASS, n // 8))
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for cls, rows in frame.groupby("cls", sort=True):
        k = alloc.get(cls, 0)
        if k:
            picks = stratified_spread(rows, k, rng, SHAPE_SELECT_FEATURES, "log_work")
            keep += [int(rows["i"].iloc[j]) for j in picks]
    return [atoms[i] for i in sorted(keep)]
