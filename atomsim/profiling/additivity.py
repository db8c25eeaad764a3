"""Kernel additivity: a block run whole as one firmware vs the sum of its atoms from AtomDB.

The paper measured under 0.1 % deviation on a real MCU (one core, in order, no OS). Here each
block of the search space is lowered to atoms (atomsim.nn.lowering), every atom is measured on its
own into AtomDB, the database sums them, and the same atoms run back to back in one harness run
give the whole-block figure. The deviation is the call and loop overhead the atoms do not see.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from atomsim.boards import get_board
from atomsim.db import AtomDB
from atomsim.nn.lowering import Tensor, lower_convnext, lower_mbconv, lower_sep
from atomsim.nn.registry import call_for_atom
from atomsim.profiling.profiler import DEFAULT_VARIANT, Profiler

# Blocks at a size every board can hold (activations well under the F412's 240 KB arena).
BLOCKS = {
    "SEP": lambda: lower_sep(Tensor(32, 24, 24), 48, stride=1),
    "MBConv": lambda: lower_mbconv(Tensor(24, 16, 16), 24, expansion=3, stride=1),
    "ConvNext+SE": lambda: lower_convnext(Tensor(32, 12, 12), 32, expansion=3, stride=1,
                                          se=True),
}


@dataclass(frozen=True)
class AdditivityRow:
    """One block on one board."""

    board: str
    block: str
    atoms: int
    whole_cycles: int
    sum_cycles: int

    @property
    def deviation(self) -> float:
        """(whole − sum) / sum."""
        return (self.whole_cycles - self.sum_cycles) / self.sum_cycles


def check_block(board_id: str, block: str, db: AtomDB, variant: str = DEFAULT_VARIANT,
                profiler: Profiler | None = None) -> AdditivityRow:
    """Measure a block whole and as the sum of its atoms (stored in and summed by ``db``)."""
    atoms, _ = BLOCKS[block]()
    prof = profiler or Profiler(get_board(board_id), variant)
    missing = set(db.missing_keys(board_id, [a.key for a in atoms], variant, source="emulator"))
    db.upsert_measurements([prof.profile(a) for a in {a.key: a for a in atoms
                                                      if a.key in missing}.values()])
    totals = db.sum_atoms(board_id, atoms, variant=variant, source="emulator")
    whole, _ = prof.run_block([call_for_atom(a) for a in atoms])
    return AdditivityRow(board_id, block, len(atoms), whole, totals.cycles)


def check_all(board_ids, db_path: str | Path, variant: str = DEFAULT_VARIANT
              ) -> list[AdditivityRow]:
    """Every block of BLOCKS on every board."""
    rows = []
    with AtomDB.open(db_path) as db:
        for board_id in board_ids:
            prof = Profiler(get_board(board_id), variant)
            try:
                rows += [check_block(board_id, b, db, variant, prof) for b in BLOCKS]
            finally:
                prof.close()
    return rows
