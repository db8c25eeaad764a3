"""Reports of a recorded calibration: the per-class error table and predicted vs measured."""

from __future__ import annotations

import json
from pathlib import Path

from atomsim.db import AtomDB
from calibration import store
from calibration.errors import CalibrationError


def latest_id(db: AtomDB, board: str | None = None) -> str:
    """The newest calibration's id (of ``board`` when given)."""
    store.ensure(db)
    sql, args = "SELECT id FROM calibrations", []
    if board:
        sql += " WHERE board = ?"
        args.append(board)
    row = store.connection(db).execute(sql + " ORDER BY created_at DESC, rowid DESC LIMIT 1",
                                       args).fetchone()
    if row is None:
        raise CalibrationError(f"{db.path} holds no calibration"
                               + (f" for {board}" if board else ""))
    return row[0]


def load_record(db: AtomDB, calibration_id: str) -> dict:
    """The calibration's row as a dict (JSON columns decoded)."""
    store.ensure(db)
    cur = store.connection(db).execute("SELECT * FROM calibrations WHERE id = ?",
                                       (calibration_id,))
    row = cur.fetchone()
    if row is None:
        raise CalibrationError(f"no calibration {calibration_id!r} in {db.path}")
    rec = dict(zip([d[0] for d in cur.description], row, strict=True))
    rec["model"] = json.loads(rec.pop("model_json"))
    rec["cv_error"] = json.loads(rec.pop("cv_error_json"))
    return rec


def error_table(record: dict):
    """A rich Table: per class, held-back MAPE, share within ±10 %, interval coverage, the
    chosen model, and the shape-only baseline's MAPE."""
    from rich.table import Table

    cv = record["cv_error"]
    models = record["model"].get("classes", {})
    t = Table(title=f"calibration {record['id']} ({record['board']}, N = {record['n_points']}, "
                    f"held back: {cv['held_back']})")
    for col in ("class", "n held back", "MAPE", "within ±10 %", "90 % interval coverage",
                "model", "shape-only MAPE"):
        t.add_column(col, justify="left" if col in ("class", "model") else "right")
    for cls, e in cv["model"].items():
        base = cv["shape_baseline"].get(cls, {})
        cov = e.get("coverage")
        t.add_row(cls, str(e["n"]), f"{e['mape']:.1f} %", f"{e['within10']:.0f} %",
                  "-" if cov is None else f"{cov:.0f} %",
                  models.get(cls, {}).get("model", "(class-mix weighted)" if cls == "all"
                                          else "-"),
                  f"{base['mape']:.1f} %" if base else "-")
    return t


def plot(db: AtomDB, calibration_id: str, out: str | Path) -> Path:
    """PNG: held-back predicted vs measured latency, log-log, a colour per class, ±10 % band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = store.connection(db).execute(
        "SELECT class, measured_ms, cv_pred_ms FROM calibrated_latency WHERE calibration_id = ? "
        "AND measured_ms IS NOT NULL AND cv_pred_ms IS NOT NULL", (calibration_id,)).fetchall()
    if not rows:
        raise CalibrationError(f"calibration {calibration_id} has no held-back predictions")
    out = Path(out)
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    lo = min(min(r[1], r[2]) for r in rows) * 0.7
    hi = max(max(r[1], r[2]) for r in rows) * 1.4
    xs = [lo, hi]
    ax.fill_between(xs, [x * 0.9 for x in xs], [x * 1.1 for x in xs], color="0.85",
                    label="±10 %")
    ax.plot(xs, xs, color="0.4", lw=0.8)
    colours = plt.get_cmap("tab10")
    for i, cls in enumerate(sorted({r[0] for r in rows})):
        pts = [(r[1], r[2]) for r in rows if r[0] == cls]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, color=colours(i),
                   label=f"{cls} ({len(pts)})", alpha=0.8)
    ax.set(xscale="log", yscale="log", xlim=xs, ylim=xs, xlabel="measured on the board (ms)",
           ylabel="calibrated emulator, held back (ms)",
           title=f"calibration {calibration_id}")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(out)
    except OSError as exc:
        raise CalibrationError(f"cannot write {out}: {exc}") from exc
    finally:
        plt.close(fig)
    return out


def report(db_path: str | Path, calibration_id: str | None = None, board: str | None = None,
           png: str | Path | None = None, console=None) -> tuple[dict, Path | None]:
    """Print the error table (rich) and write the PNG; returns the record and the PNG path."""
    from rich.console import Console

    with AtomDB.open(db_path, must_exist=True, readonly=True) as db:  # a report never writes
        tables = {row[0] for row in store.connection(db).execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "calibrations" not in tables:
        raise CalibrationError(f"{db_path} holds no calibration")
    with AtomDB.open(db_path, must_exist=True) as db:
        cid = calibration_id or latest_id(db, board)
        record = load_record(db, cid)
        (console or Console()).print(error_table(record))
        path = plot(db, cid, png) if png is not None else None
    return record, path
