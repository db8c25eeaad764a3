"""Issue 4: reference C == optimized C == numpy, bit for bit, run on the emulated boards.

The same plan of named shape cases as the host test (every operator's cases in
atomsim.nn.registry), several seeds, both kernel variants, on the Cortex-M4 (F412) and
Cortex-M7 (H743) boards, through the profiling harness (the real firmware, placed and run by
atomsim.profiling.profiler).
"""

from __future__ import annotations

import numpy as np
import pytest

from atomsim.boards import get_board
from atomsim.nn.registry import PLAN, make_instance
from atomsim.profiling.profiler import VARIANTS, Profiler

pytestmark = pytest.mark.firmware

SEEDS = (0, 1, 2)
BOARDS = ("stm32f412", "stm32h743")


@pytest.fixture(scope="module")
def profilers():
    made = {(b, v): Profiler(get_board(b), v) for b in BOARDS for v in VARIANTS}
    yield made
    for p in made.values():
        p.close()


@pytest.mark.parametrize("board_id", BOARDS)
@pytest.mark.parametrize("case", PLAN, ids=lambda c: c.id)
def test_emulated_kernels_are_bit_exact(profilers, board_id, case):
    for seed in SEEDS:
        inst = make_instance(case, seed)
        outputs = {}
        for variant in VARIANTS:
            result = profilers[(board_id, variant)].run_case(inst.call)
            got, want = result.output, inst.expected.reshape(result.output.shape)
            bad = np.argwhere(got != want)
            assert bad.size == 0, (
                f"{variant} on {board_id}, seed {seed}: first mismatch at "
                f"{tuple(bad[0])}: got {got[tuple(bad[0])]}, expected {want[tuple(bad[0])]} "
                f"({len(bad)} of {got.size} differ)")
            outputs[variant] = got
        assert np.array_equal(outputs["reference"], outputs["cortex_m_dsp"])
