"""Calibrate end to end: measurements in, a recorded calibration and calibrated latencies out.

:func:`calibrate` takes a :class:`~calibration.measurements.MeasurementSource` (a CSV today, a
serial-port board later: both give the same records), runs the atoms on the emulated board
(cached in AtomDB), fits the per-class models on all measured atoms or on a budget of N
selected ones, judges them on held-back rows (K-fold CV with all rows; the unselected rows
with a budget), and records the calibration and a calibrated latency with its interval for
every emulated atom of the board in the AtomDB (``calibration.store``). Raw measurements are
never rewritten: each calibration adds rows under its own id.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from atomsim.boards import get_board
from atomsim.db import AtomDB
from calibration import dataset, evaluate, features, store
from calibration.errors import CalibrationError
from calibration.measurements import MeasurementSource, match_key
from calibration.models import CalibrationModel, ShapeBaseline
from calibration.selection import select


@dataclass
class Calibration:
    """What :func:`calibrate` did."""

    id: str
    board: str
    source: MeasurementSource
    n_points: int
    model: CalibrationModel
    errors: list[evaluate.ClassError]  # held-back, per class + 'all'
    baseline_errors: list[evaluate.ClassError]
    frame: pd.DataFrame  # every emulated atom with pred/low/high (+ cv_* for measured ones)
    oom: list[features.Oom]
    not_emulated: list[str]  # measured atom keys the emulator could not run (not OOM)
    emulation_errors: list[tuple[str, str]]  # (atom key, reason) from this run's emulation


def _errors_json(errs: list[evaluate.ClassError]) -> dict:
    return {e.cls: {"n": e.n, "mape": e.mape, "within10": e.within10,
                    "coverage": None if math.isnan(e.coverage) else e.coverage} for e in errs}


def calibrate(source: MeasurementSource, board_id: str, db_path: str | Path, *,
              budget: int | None = None, variant: str | None = None, seed: int = 0,
              k: int = 5, inner_k: int = 3, workers: int | None = None,
              include_db_atoms: bool = True, firmware_hash: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> Calibration:
    """Calibrate ``board_id`` against ``source``; see the module docstring.

    With ``include_db_atoms`` every atom the AtomDB already holds for the board (e.g. from a
    sweep) is run with the traffic counter too, so it gets a calibrated latency; otherwise
    only the measured atoms are. ``firmware_hash`` names the firmware the board ran (a serial
    board runs the harness ELF; a CSV's firmware is not known: the emulated one's is kept)."""
    from atomsim.profiling.profiler import DEFAULT_VARIANT

    variant = variant or DEFAULT_VARIANT
    board = get_board(board_id)
    with AtomDB.open(db_path) as db:
        store.ensure(db)
        atoms = [m.atom for m in source.measurements]
        if include_db_atoms:  # atoms a sweep stored without traffic: run them with it too
            atoms += [m.atom for m in db.measurements(board_id, variant=variant,
                                                      source="emulator")]
        errors = features.collect(db, board_id, atoms, variant=variant, workers=workers,
                                  progress=progress)
        emulated, ooms = features.load(db, board_id, variant)
    frame = dataset.build(emulated, source.measurements)
    measured = frame[frame["real_ms"].notna()]
    if len(measured) < 3:
        raise CalibrationError(f"only {len(measured)} of {len(source.measurements)} measured "
                               f"atoms could be run on the emulated {board_id}: too few to fit")
    frame = frame.assign(cv_pred_ms=np.nan, cv_low_ms=np.nan, cv_high_ms=np.nan,
                         used_in_fit=False)
    if budget is not None:
        if budget < 3:
            raise CalibrationError(f"--budget {budget}: at least 3 points are needed")
        chosen = select(measured, budget, seed=seed)
        fit_rows = measured.loc[chosen]
        held = measured.drop(index=chosen)
        model = CalibrationModel(k=inner_k, seed=seed).fit(fit_rows)
        if len(held):
            p = model.predict(held)
            frame.loc[held.index, ["cv_pred_ms", "cv_low_ms", "cv_high_ms"]] = p.to_numpy()
            base = ShapeBaseline().fit(fit_rows).predict(held)["pred_ms"]
            held_frame = frame.loc[held.index]
    else:
        fit_rows = measured
        oof, base = evaluate.kfold_all(measured, k=k, seed=seed, inner_k=inner_k)
        frame.loc[measured.index, ["cv_pred_ms", "cv_low_ms", "cv_high_ms"]] = oof.to_numpy()
        held_frame = frame.loc[measured.index]
        model = CalibrationModel(k=inner_k, seed=seed).fit(measured)
    frame.loc[fit_rows.index, "used_in_fit"] = True
    if budget is not None and not len(held):
        errs, base_errs = [], []
    else:
        errs = evaluate.errors(held_frame, held_frame["cv_pred_ms"], held_frame["cv_low_ms"],
                               held_frame["cv_high_ms"])
        base_errs = evaluate.errors(held_frame, base.loc[held_frame.index])
    pred = model.predict(frame)
    frame[["pred_ms", "low_ms", "high_ms"]] = pred.to_numpy()

    measured_keys = {match_key(m.atom) for m in source.measurements}
    oom = [o for key, o in ooms.items() if key in measured_keys]
    matched = set(frame.loc[frame["real_ms"].notna(), "key"])
    not_emulated = sorted(k_ for k_ in measured_keys if k_ not in matched and k_ not in ooms)
    model_json = model.to_json()
    first = next(iter(emulated.values()), None)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    cal_id = f"{board_id}-{created[:19].replace(':', '').replace('-', '')}-" + hashlib.sha256(
        json.dumps([source.describe(), budget, seed, model_json], sort_keys=True,
                   default=str).encode()).hexdigest()[:8]
    cal = Calibration(cal_id, board_id, source, len(fit_rows), model, errs, base_errs, frame,
                      oom, not_emulated, errors)
    with AtomDB.open(db_path) as db:
        _record(db, cal, variant, created, first, board.clock_hz, budget, firmware_hash)
    return cal


def _record(db: AtomDB, cal: Calibration, variant: str, created: str, first, clock_hz: int,
            budget: int | None, firmware_hash: str | None = None) -> None:
    conn = store.connection(db)
    measured = {match_key(m.atom): m for m in cal.source.measurements}
    with db.transaction():
        conn.execute(
            "INSERT INTO calibrations (id, board, kernel_variant, source_kind, source, "
            "source_sha256, n_points, repeats, model_json, cv_error_json, firmware_hash, "
            "timing_model_version, emulator_version, created_at) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (cal.id, cal.board, variant, cal.source.kind, cal.source.location,
             cal.source.sha256, cal.n_points, cal.source.repeats,
             json.dumps({"budget": budget, **cal.model.to_json()}, default=float),
             json.dumps({"held_back": "budget: unselected rows" if budget else "K-fold CV",
                         "model": _errors_json(cal.errors),
                         "shape_baseline": _errors_json(cal.baseline_errors)}),
             firmware_hash or (first.firmware_hash if first else None),
             first.timing_model_version if first else None,
             first.emulator_version if first else None, created))
        rows = []
        for r in cal.frame.itertuples(index=False):
            ok = not math.isnan(r.pred_ms)
            rows.append((cal.id, cal.board, r.atom_key, r.cls, "ok" if ok else "no-model",
                         r.emulated_ms, _f(r.pred_ms), _f(r.low_ms), _f(r.high_ms),
                         cal.model.level, _f(r.real_ms), _f(r.cv_pred_ms), _f(r.cv_low_ms),
                         _f(r.cv_high_ms), int(r.used_in_fit), None, None, None))
        for o in cal.oom:
            m = measured.get(match_key(o.atom))
            rows.append((cal.id, cal.board, o.atom.key, o.atom.type, "oom", None, None, None,
                         None, None, m.latency_ms if m else None, None, None, None, 0,
                         o.region, o.needed, o.available))
        for key in cal.not_emulated:
            m = measured[key]
            db.upsert_atoms([m.atom])
            rows.append((cal.id, cal.board, m.atom.key, m.atom.type, "no-emulation", None,
                         None, None, None, None, m.latency_ms, None, None, None, 0, None, None,
                         None))
        conn.executemany(
            "INSERT INTO calibrated_latency (calibration_id, board, atom_key, class, status, "
            "emulated_ms, calibrated_ms, interval_low_ms, interval_high_ms, interval_level, "
            "measured_ms, cv_pred_ms, cv_low_ms, cv_high_ms, used_in_fit, oom_region, "
            "oom_needed_bytes, oom_available_bytes) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _f(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) \
        else float(value)
