"""The paper's design guidelines G1-G3, recomputed from AtomDB for one board.

* G1 (Flash): NC weight Flash grows with c_in·c_out·k² (linear fit, R²); per pair of input and
  output channels DW needs the least Flash, then PW, then NC.
* G2 (SRAM): Add/Mul keep both operands and the output live. Ratio of the peak SRAM to one
  input feature map: measured (the kernel's real SRAM high-water) where AtomDB has it, and the
  tensor-only model (inputs + output) alongside. The paper's "about 2x" corresponds to the
  output overwriting an operand in place; without reuse the tensors alone give 3x.
* G3 (latency): computation efficiency (MACs per ms) of PW against DW.

:func:`guidelines` returns the numbers, writes one PNG per guideline (matplotlib, no GUI
backend) and a markdown summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from atomsim.core.errors import ConfigError
from atomsim.db.store import AtomDB, Measurement

_FLASH_TYPES = ("dw", "pw", "conv")
_ELEMENTWISE = ("add", "mul", "mul_bcast")
# One colour per atom type across all plots.
# One distinct colour per atom type (tab10 has ten; the types with MACs are fewer).
_COLOUR = {"dw": "C0", "pw": "C1", "conv": "C2", "add": "C3", "mul": "C4", "mul_bcast": "C5",
           "fc": "C6", "global_avgpool": "C7", "hard_sigmoid": "C8", "hard_swish": "C9",
           "avgpool": "C7", "maxpool": "C8", "relu": "C9", "relu6": "C9"}


def _figure():
    from matplotlib.figure import Figure

    return Figure(figsize=(6.4, 4.4), layout="constrained")


def _flash(m: Measurement) -> int:
    """The atom's Flash: the measured share when recorded, else the METHOD convention."""
    return m.flash_bytes if m.flash_bytes is not None else m.atom.flash_bytes


def g1_flash(found: list[Measurement], plot: Path | None = None) -> dict[str, Any]:
    """G1 from the conv / dw / pw measurements in ``found``."""
    by_type = {t: [m for m in found if m.atom.type == t] for t in _FLASH_TYPES}
    result: dict[str, Any] = {"n": {t: len(v) for t, v in by_type.items()}}
    nc = by_type["conv"]
    if len(nc) >= 2:
        x = np.array([m.atom.c_in // m.atom.groups * m.atom.c_out * m.atom.k1 * m.atom.k2
                      for m in nc], dtype=float)
        y = np.array([_flash(m) for m in nc], dtype=float)
        slope, intercept = np.polyfit(x, y, 1)
        residual = y - (slope * x + intercept)
        total = float(((y - y.mean()) ** 2).sum())
        r2 = 1.0 - float((residual ** 2).sum()) / total if total else 1.0
        result["nc_fit"] = {"slope": float(slope), "intercept": float(intercept),
                            "r2": r2, "n": len(nc)}
    else:
        result["nc_fit"] = None
    # Bytes per (input channel, output channel) pair: independent of the sampled widths,
    # about 9 for NC 3x3, 1 for PW and 13/c for DW (+ the bias share).
    per_channel = {t: float(np.median([_flash(m) / (m.atom.c_in * m.atom.c_out) for m in v]))
                   for t, v in by_type.items() if v}
    result["flash_per_channel_pair"] = per_channel
    order = sorted(per_channel, key=per_channel.get)
    result["order"] = order
    result["holds"] = (len(order) == 3 and order == list(_FLASH_TYPES)
                       and (result["nc_fit"] or {}).get("r2", 0) > 0.9)
    if plot is not None:
        fig = _figure()
        ax = fig.add_subplot()
        for t, v in by_type.items():
            if v:
                ax.scatter([m.atom.c_in // m.atom.groups * m.atom.c_out * m.atom.k1 * m.atom.k2
                            for m in v], [_flash(m) for m in v], s=12, label=t,
                           color=_COLOUR[t])
        if result["nc_fit"]:
            fit = result["nc_fit"]
            xs = np.array(ax.get_xlim())
            ax.plot(xs, fit["slope"] * xs + fit["intercept"], "k--", lw=1,
                    label=f"NC fit, R²={fit['r2']:.4f}")
        ax.set(xscale="log", yscale="log", xlabel="c_in/groups · c_out · k1 · k2",
               ylabel="Flash (bytes)", title="G1: weight Flash")
        if any(by_type.values()):
            ax.legend()
        fig.savefig(plot, dpi=100)
    return result


def g2_sram(found: list[Measurement], plot: Path | None = None) -> dict[str, Any]:
    """G2 from the add / mul / mul_bcast measurements in ``found``."""
    result: dict[str, Any] = {}
    points = []
    for t in _ELEMENTWISE:
        rows = [m for m in found if m.atom.type == t]
        if not rows:
            continue
        model, measured = [], []
        for m in rows:
            fmap = m.atom.c_in * m.atom.h_in * m.atom.w_in  # one operand's bytes
            tensors = m.atom.input_bytes + m.atom.output_bytes
            model.append(tensors / fmap)
            if m.sram_bytes is not None:
                measured.append(m.sram_bytes / fmap)
            real = m.sram_bytes is not None
            points.append((t, fmap, m.sram_bytes if real else tensors, real))
        result[t] = {"n": len(rows), "n_measured_sram": len(measured),
                     "model_ratio": float(np.median(model)),
                     "measured_ratio": float(np.median(measured)) if measured else None}
    result["status"] = "ok" if points else "no add/mul measurements for this board"
    if plot is not None:
        fig = _figure()
        ax = fig.add_subplot()
        for t in _ELEMENTWISE:
            for measured, marker in ((True, "o"), (False, "x")):
                pts = [(f, s) for tt, f, s, real in points if tt == t and real == measured]
                if pts:
                    ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=14, marker=marker,
                               color=_COLOUR[t],
                               label=f"{t} ({'measured' if measured else 'tensors only'})")
        if points:
            xs = np.array([min(p[1] for p in points), max(p[1] for p in points)])
            ax.plot(xs, 2 * xs, "k--", lw=1, label="2 × input map")
            ax.set(xscale="log", yscale="log")
            ax.legend()
        else:
            ax.text(0.5, 0.5, result["status"], ha="center", transform=ax.transAxes)
        ax.set(xlabel="input feature map (bytes)", ylabel="peak SRAM (bytes)",
               title="G2: elementwise SRAM")
        fig.savefig(plot, dpi=100)
    return result


def g3_efficiency(db: AtomDB, board: str, plot: Path | None = None) -> dict[str, Any]:
    """G3: median MACs/ms per atom type, and PW over DW."""
    frame = db.efficiency(board)
    per_type = {t: {"n": len(g), "median_macs_per_ms": float(g.macs_per_ms.median()),
                    "p10": float(g.macs_per_ms.quantile(0.1)),
                    "p90": float(g.macs_per_ms.quantile(0.9))}
                for t, g in frame.groupby("type")}
    pw = per_type.get("pw", {}).get("median_macs_per_ms")
    dw = per_type.get("dw", {}).get("median_macs_per_ms")
    ratio = pw / dw if pw and dw else None
    result = {"per_type": per_type, "pw_over_dw": ratio,
              "holds": ratio is not None and ratio > 1}
    if plot is not None:
        fig = _figure()
        ax = fig.add_subplot()
        for t, g in frame.groupby("type"):
            ax.scatter(g.macs, g.latency_ms, s=10, color=_COLOUR.get(t), label=f"{t} (median "
                       f"{per_type[t]['median_macs_per_ms'] / 1e3:.0f}k MACs/ms)")
        ax.set(xscale="log", yscale="log", xlabel="MACs", ylabel="latency (ms)",
               title=f"G3: computation efficiency on {board}")
        if len(frame):
            ax.legend()
        fig.savefig(plot, dpi=100)
    return result


def _summary(board: str, g1: dict, g2: dict, g3: dict) -> str:
    lines = [f"# Design guidelines from AtomDB — {board}", "", "## G1 (Flash)"]
    fit = g1["nc_fit"]
    if fit:
        lines.append(f"- NC Flash = {fit['slope']:.4f} · c_in·c_out·k² + {fit['intercept']:.1f} "
                     f"(R² = {fit['r2']:.5f}, n = {fit['n']})")
    else:
        lines.append("- too few NC atoms for a fit")
    lines.append("- median Flash per (c_in, c_out) channel pair: " + ", ".join(
        f"{t} {v:.3f} B" for t, v in g1["flash_per_channel_pair"].items()))
    lines.append(f"- order (most Flash-friendly first): {' < '.join(g1['order'])}; "
                 f"guideline {'holds' if g1['holds'] else 'NOT confirmed'}")
    lines += ["", "## G2 (SRAM)"]
    if g2["status"] != "ok":
        lines.append(f"- {g2['status']}")
    for t in _ELEMENTWISE:
        if t in g2:
            r = g2[t]
            measured = (f"{r['measured_ratio']:.2f}" if r["measured_ratio"] is not None
                        else "not measured")
            lines.append(f"- {t}: peak SRAM / input map = {measured} (kernel high-water, "
                         f"{r['n_measured_sram']} of {r['n']}); tensors only "
                         f"{r['model_ratio']:.2f}")
    lines += ["", "## G3 (latency)"]
    for t, r in g3["per_type"].items():
        lines.append(f"- {t}: median {r['median_macs_per_ms']:,.0f} MACs/ms "
                     f"(p10 {r['p10']:,.0f}, p90 {r['p90']:,.0f}, n = {r['n']})")
    if g3["pw_over_dw"] is not None:
        lines.append(f"- PW / DW efficiency = {g3['pw_over_dw']:.2f} "
                     f"(paper: about 256k vs 91k, 2.8); guideline "
                     f"{'holds' if g3['holds'] else 'NOT confirmed'}")
    return "\n".join(lines) + "\n"


def guidelines(db: AtomDB, board: str, out_dir: str | Path) -> dict[str, Any]:
    """Recompute G1-G3 for ``board`` from ``db``; return the numbers and the written paths.

    Writes g1_flash.png, g2_sram.png, g3_efficiency.png and guidelines.md into ``out_dir``.
    """
    found = db.measurements(board)
    if not found:
        raise ConfigError(f"AtomDB {db.path} has no measurements for board {board!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = {"g1": out / "g1_flash.png", "g2": out / "g2_sram.png",
             "g3": out / "g3_efficiency.png"}
    g1 = g1_flash(found, plots["g1"])
    g2 = g2_sram(found, plots["g2"])
    g3 = g3_efficiency(db, board, plots["g3"])
    summary = out / "guidelines.md"
    summary.write_text(_summary(board, g1, g2, g3))
    return {"board": board, "g1": g1, "g2": g2, "g3": g3,
            "plots": {k: str(v) for k, v in plots.items()}, "summary": str(summary)}


def report_guidelines(db_path: str | Path, board: str, out_dir: str | Path) -> dict[str, Any]:
    """``atomsim report guidelines DB --board B --out DIR``: :func:`guidelines` on a file."""
    with AtomDB.open(db_path, readonly=True) as db:
        return guidelines(db, board, out_dir)
