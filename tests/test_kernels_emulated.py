"""Issue 4: reference C == optimized C == numpy, bit for bit, run on the emulated boards.

The same plan of named shape cases as the host test (tests/kernel_cases.py), several seeds,
both kernel variants, on the Cortex-M4 (F412) and Cortex-M7 (H743) boards, through the
profiling harness (the real firmware, placed and run by atomsim.profiling.profiler).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from kernel_cases import PLAN, make_instance

from atomsim.boards import get_board
from atomsim.profiling.profiler import VARIANTS, Case, Profiler

pytestmark = pytest.mark.firmware

OP = {"conv": "conv", "depthwise_conv": "dw", "pointwise_conv": "pw", "fully_connected": "fc",
      "pad": "pad", "add": "add", "mul": "mul", "avgpool": "avgpool", "maxpool": "maxpool",
      "global_avgpool": "global_avgpool", "relu": "relu", "hard_swish": "hard_swish",
      "hard_sigmoid": "hard_sigmoid"}
SEEDS = (0, 1, 2)
BOARDS = ("stm32f412", "stm32h743")


def harness_case(inst) -> Case:
    """Turn a plan instance (arrays + parameter record) into a harness job."""
    a, op = inst.arrays, OP[inst.case.op]
    x = a["input"]
    out = inst.expected
    params = dataclasses.astuple(inst.params) if inst.params is not None else ()
    filt = a.get("filter", a.get("lut"))
    filter_dims = (0, 0, 0, 0)
    if op in ("conv", "dw", "pw"):
        filter_dims = filt.shape
    elif op == "fc":
        filter_dims = (filt.shape[0], 1, 1, filt.shape[1])
    elif op in ("avgpool", "maxpool"):
        filter_dims = (1, *inst.extra["kernel_hw"], 1)
    elif op == "global_avgpool":
        params = (inst.extra["act_min"], inst.extra["act_max"])
    in2 = a.get("input2")
    return Case(op, x.shape, out.shape, params, in2_dims=in2.shape if in2 is not None else
                (0, 0, 0, 0), filter_dims=filter_dims, input=x, input2=in2, filter=filt,
                bias=a.get("bias"), multiplier=a.get("multiplier"), shift=a.get("shift"))


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
        job = harness_case(inst)
        outputs = {}
        for variant in VARIANTS:
            result = profilers[(board_id, variant)].run_case(job)
            got, want = result.output, inst.expected.reshape(result.output.shape)
            bad = np.argwhere(got != want)
            assert bad.size == 0, (
                f"{variant} on {board_id}, seed {seed}: first mismatch at "
                f"{tuple(bad[0])}: got {got[tuple(bad[0])]}, expected {want[tuple(bad[0])]} "
                f"({len(bad)} of {got.size} differ)")
            outputs[variant] = got
        assert np.array_equal(outputs["reference"], outputs["cortex_m_dsp"])
