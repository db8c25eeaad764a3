"""The feature table: one row per atom with board measurement and/or emulated figures."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from atomsim.nn.atoms import Atom
from calibration.features import Emulated
from calibration.measurements import BoardMeasurement, match_key


def _row(atom: Atom, e: Emulated, real: BoardMeasurement | None) -> dict:
    flash_rb = e.traffic["flash"][2]
    sram_moved = e.traffic["sram"][2] + e.traffic["sram"][3]
    tcm_moved = e.traffic["tcm"][2] + e.traffic["tcm"][3]
    act = atom.input_bytes + atom.output_bytes
    hw = atom.h_out * atom.w_out
    return {
        "key": match_key(atom), "atom_key": e.atom.key, "cls": atom.type,
        "real_ms": real.latency_ms if real else np.nan,
        # (max - min) / median of the board's repeats; NaN when unknown (one repeat, or no
        # spread given): the models trust a measurement less when its repeats disagree.
        "spread": _spread(real),
        "emulated_ms": e.latency_ms, "cycles": e.cycles, "instructions": e.instructions,
        "macs": atom.macs, "weight_bytes": atom.flash_bytes, "act_in_bytes": atom.input_bytes,
        "act_out_bytes": atom.output_bytes, "act_bytes": act,
        "flash_read_bytes": flash_rb, "sram_bytes_moved": sram_moved,
        "tcm_bytes_moved": tcm_moved,
        "c_in": atom.c_in, "c_out": atom.c_out, "h_out": atom.h_out, "w_out": atom.w_out,
        "k": atom.k1, "stride": atom.stride,
        "log_c_in": np.log(atom.c_in), "log_c_out": np.log(atom.c_out), "log_hw_out": np.log(hw),
        "log_macs": np.log1p(atom.macs), "log_act_bytes": np.log(act),
        "log_weight_bytes": np.log1p(atom.flash_bytes), "log_cycles": np.log(max(e.cycles, 1)),
        "log_cycles_per_mac": np.log(max(e.cycles, 1) / (atom.macs + 1)),
        "log_cycles_per_byte": np.log(max(e.cycles, 1) / act),
        "log_ipc": np.log(max(e.instructions, 1) / max(e.cycles, 1)),
        "log_weights_per_pixel": np.log1p(atom.flash_bytes / hw),
        "log_flash_read_bytes": np.log1p(flash_rb), "log_sram_bytes_moved": np.log1p(sram_moved),
        "log_tcm_bytes_moved": np.log1p(tcm_moved),
        "c_in_mod4": float(atom.c_in % 4 == 0), "c_in_mod8": float(atom.c_in % 8 == 0),
        "c_out_mod4": float(atom.c_out % 4 == 0), "c_out_mod8": float(atom.c_out % 8 == 0),
        "c_in_mod16": float(atom.c_in % 16 == 0), "c_out_mod16": float(atom.c_out % 16 == 0),
        "h_odd": float(atom.h_out % 2),
        # What a copy or a pad does per byte and per row: in/out bytes (1 for a convolution
        # keeping the map, < 1 for a pad, whose padding is written, not read), the input map,
        # the output row length; and wider channel blocks than 16.
        "log_in_out": np.log(atom.input_bytes / atom.output_bytes),
        "log_h_out": np.log(atom.h_out), "log_hw_in": np.log(atom.h_in * atom.w_in),
        "log_row_bytes": np.log(atom.c_out * atom.w_out),
        "c_in_mod32": float(atom.c_in % 32 == 0), "c_out_mod32": float(atom.c_out % 32 == 0),
    }


def _spread(real: BoardMeasurement | None) -> float:
    if real is None or real.repeats < 2 or real.spread is None:
        return np.nan
    return float(real.spread)


def build(emulated: dict[str, Emulated], measured: Iterable[BoardMeasurement] = ()
          ) -> pd.DataFrame:
    """One row per emulated atom (``emulated`` is keyed by atom key). A measured atom takes
    the emulated figures of the same atom, else of its twin with another fused activation
    (:func:`match_key`), and has ``real_ms`` set; every other emulated atom — a ReLU6 twin of
    a measured one included — gets its own row with ``real_ms`` NaN. Sorted by class and key."""
    by_match: dict[str, Emulated] = {}
    for e in emulated.values():
        k = match_key(e.atom)
        if k not in by_match or e.atom.activation == "none":
            by_match[k] = e
    rows, used = [], set()
    for m in measured:
        e = emulated.get(m.atom.key) or by_match.get(match_key(m.atom))
        if e is not None and e.atom.key not in used:
            rows.append(_row(m.atom, e, m))
            used.add(e.atom.key)
    for key, e in emulated.items():
        if key not in used:
            rows.append(_row(e.atom, e, None))
    frame = pd.DataFrame(rows)
    if len(frame):
        frame = frame.sort_values(["cls", "atom_key"], ignore_index=True)
    return frame
