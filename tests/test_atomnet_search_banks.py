"""The search's SRAM and Flash for a candidate are what ``build_network`` plans and links.

The search plans over the banks the network firmware leaves to the planner (``network_banks``:
each bank less the static data and guard the firmware keeps there) and costs the code of the
firmware with the kernels the candidate uses. So, for small candidates on the emulated F746:
the search's SRAM (planned arena + static RAM + stack) equals the measured peak of the built and
run network, its Flash is within 8 B of the ELF's (alignment padding between the code and the
weight arrays), and at the edge of the bank the search refuses exactly what the planner and the
linker refuse.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from atomnet.search import Evaluator, kernel_mask, kernel_names, space_of
from atomsim.boards import get_board
from atomsim.core.errors import DoesNotFit
from atomsim.nn.lowering import with_random_weights
from atomsim.nn.planner import ArenaDoesNotFit, board_banks, plan
from atomsim.profiling.network import (
    bank_arenas,
    build_network,
    graph_kernels,
    network_banks,
    run_network,
)

pytestmark = pytest.mark.firmware

BOARD = "stm32f746"
FLASH_SLACK = 8  # the ELF pads the code to the 8-byte alignment of the first weight array


def config(blocks, widths, depths, se, expand):
    """A 32 px, 10-class stage config of the search's own form (ReLU6, k 3, stride 2)."""
    n = len(blocks)
    return {"input_resolution": 32, "num_classes": 10, "depth": depths, "out_channel": widths,
            "block_type_stage": blocks, "act_stages": ["relu6"] * n, "se_stages": se,
            "stride_stages": [2] * n, "kernel_size": [3] * n, "expand_ratio": expand}


CONFIGS = {
    # conv stem and SEP blocks: no squeeze-excite, no residual, so fewer kernels than the
    # runtime probe (no add, mul, hard_sigmoid)
    "sep": config(["conv", "mobile_one", "mobile_one"], [8, 16, 16], [1, 1, 1],
                  [False, False, False], [1, 1, 1]),
    # ConvNext twice with SE: a residual add and the SE's kernels, the probe's kernel set
    "convnext-se": config(["conv", "mobile_one", "mbconvnext"], [8, 16, 24], [1, 1, 2],
                          [False, False, True], [1, 1, 3]),
}


@pytest.fixture(scope="module")
def evaluators(tmp_path_factory):
    """One prepared evaluator per config (atoms profiled on demand into one AtomDB file)."""
    db = tmp_path_factory.mktemp("search-banks") / "atoms.db"
    out = {}
    for name, cfg in CONFIGS.items():
        space, cand = space_of(cfg)
        ev = Evaluator(space, BOARD, db, log=lambda _m: None)
        ev.prepare()
        out[name] = (ev, cand)
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_search_sram_and_flash_are_what_build_network_plans_links_and_runs(evaluators, name):
    ev, cand = evaluators[name]
    board = ev.board
    metrics = ev.evaluate(cand)
    sram, why = ev.verify(cand)
    assert sram is not None, why
    graph = with_random_weights(ev.graph(cand), seed=0)
    image = build_network(graph, board, ev.variant)
    used = {layer.kernel for layer in image.layers}
    assert used == graph_kernels(graph)

    # the same banks, each less what the firmware keeps there, and the same plan
    fixed_flash, static, banks = ev.runtime_of(kernel_mask(used))
    assert banks == network_banks(board, ev.variant, used)
    assert banks[0].reserved > 0
    assert image.plan.bank_reserved == {b.name: b.reserved for b in banks}
    assert plan(ev.graph(cand), banks, variant=ev.variant).placements == image.plan.placements

    # SRAM: planned arena (as the firmware sizes it) + linked static RAM + stack == measured
    x = np.random.default_rng(0).integers(-128, 128, size=graph.tensors[graph.inputs[0]].size)
    run = run_network(image, x.astype(np.int8))
    assert static == run.static_bytes
    assert run.stack_bytes == ev.runtime.stack_bytes
    assert sram == image.arena_bytes + run.static_bytes + run.stack_bytes == run.peak_sram_bytes

    # Flash: weights + layer table + the code of the candidate's own kernel set
    assert kernel_names(_candidate_mask(ev, cand)) == frozenset(used)
    total = image.flash["total"]
    assert 0 <= total - metrics.flash_bytes <= FLASH_SLACK, (total, metrics.flash_bytes)


def _candidate_mask(ev: Evaluator, cand) -> int:
    """The kernel mask evaluate() costs the candidate with (its stages' and the head's)."""
    c, h, mask = 3, cand.resolution, 0
    for si, choice in enumerate(cand.stages):
        s = ev.stage(si, c, h, choice)
        c, h, mask = s[6], s[7], mask | s[10]
    return mask | ev.head(c, h)[6]


def test_flash_follows_the_kernels_the_candidate_uses(evaluators):
    """A candidate without SE or residual links fewer kernels than the runtime probe: costed
    with the probe's code it was hundreds of bytes over its ELF, with its own within 8 B."""
    ev, cand = evaluators["sep"]
    graph = with_random_weights(ev.graph(cand), seed=0)
    image = build_network(graph, ev.board, ev.variant)
    metrics = ev.evaluate(cand)
    fixed_flash, _, _ = ev.runtime_of(_candidate_mask(ev, cand))
    with_probe_code = metrics.flash_bytes - fixed_flash + ev.runtime.code_bytes
    assert with_probe_code - image.flash["total"] > 100  # add, mul, hard_sigmoid not linked
    assert 0 <= image.flash["total"] - metrics.flash_bytes <= FLASH_SLACK
    full, _, _ = ev.runtime_of(kernel_mask(kernel_names(_candidate_mask(ev, cand))
                                           | {"add", "mul", "hard_sigmoid"}))
    assert full > fixed_flash


def shrunk(board, size: int):
    """The board with its first SRAM bank (the ``ram`` region) cut to ``size`` bytes."""
    first = dataclasses.replace(board.banks[0], size=size)
    return dataclasses.replace(board, ram=first, banks=(first, *board.banks[1:]))


def test_at_the_bank_edge_the_search_refuses_exactly_what_build_network_refuses(evaluators):
    """A bank of the planned arena + what the firmware keeps there: the search keeps the
    candidate, and it plans, links and runs; 8 B less: the search refuses it with the plan's
    OOM, as build_network does, though a plan over the raw bank would still have fitted (and
    the linker refused that plan)."""
    ev, cand = evaluators["sep"]
    board = get_board(BOARD)
    assert len(board.banks) == 1
    shape_only = ev.graph(cand)
    graph = with_random_weights(shape_only, seed=0)
    banks = network_banks(board, ev.variant, graph_kernels(graph))
    arena = sum(n for _, n in bank_arenas(plan(shape_only, banks, variant=ev.variant),
                                          banks).values())
    reserved = banks[0].reserved
    x = np.zeros(graph.tensors[graph.inputs[0]].size, dtype=np.int8)

    edge = shrunk(board, arena + reserved)
    at_edge = Evaluator(ev.space, edge, ev.db_path, log=lambda _m: None)
    at_edge.runtime = ev.runtime  # the same chip and firmware: code, static data and stack
    sram, why = at_edge.verify(cand)
    assert sram is not None, why
    image = build_network(graph, edge, ev.variant)
    assert image.arena_bytes == arena
    run = run_network(image, x)  # the guard after the arena is checked too
    assert sram == run.peak_sram_bytes

    tight = shrunk(board, arena + reserved - 8)
    at_tight = Evaluator(ev.space, tight, ev.db_path, log=lambda _m: None)
    at_tight.runtime = ev.runtime
    sram, why = at_tight.verify(cand)
    assert sram is None and f"has {arena - 8} B" in why
    with pytest.raises(ArenaDoesNotFit) as info:
        build_network(graph, tight, ev.variant)
    assert info.value.bank == banks[0].name and 0 < info.value.over <= 8  # arena rounded to 8
    raw = plan(graph, board_banks(tight), variant=ev.variant)  # what verify planned over before
    with pytest.raises(DoesNotFit) as linked:
        build_network(graph, tight, ev.variant, memory_plan=raw)
    assert not isinstance(linked.value, ArenaDoesNotFit)  # the linker's refusal
