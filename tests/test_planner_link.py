"""The memory plan and the linker agree at the edge of a bank: what the plan reserves in the
first bank is what the network firmware links there besides the arena, so a network that fills
the planned room links (and runs with its guard intact), and one that fills the bank without
the reserved bytes is an OOM of the plan naming the bank and the bytes, not a link error."""

from __future__ import annotations

import numpy as np
import pytest

from atomsim.boards import get_board
from atomsim.core.errors import DoesNotFit
from atomsim.nn.graph import Graph
from atomsim.nn.interpreter import run
from atomsim.nn.lowering import with_random_weights
from atomsim.nn.planner import ArenaDoesNotFit, board_banks, plan
from atomsim.profiling.network import GUARD_BYTES, build_network, network_banks, run_network
from atomsim.target.elf import load as load_elf

pytestmark = pytest.mark.firmware

BOARD = "stm32f746"


def relu6_net(nbytes: int) -> Graph:
    """One in-place relu6 over an int8 input of ``nbytes`` (a multiple of 8): the plan's arena
    is exactly one buffer of ``nbytes``, in the first bank."""
    g = Graph(name=f"relu6-{nbytes}")
    x = g.add_input((1, 1, nbytes // 8, 8))
    g.outputs.append(g.add_op("relu6", [x]))
    return with_random_weights(g, seed=0)


def test_the_reserved_bytes_are_what_the_firmware_links_besides_the_arena():
    board = get_board(BOARD)
    g = relu6_net(8)
    image = build_network(g, board, "reference")
    first = network_banks(board, "reference", {layer.kernel for layer in image.layers})[0]
    fw = load_elf(image.elf)
    origin = board_banks(board)[0].address
    static = fw.symbol("atomsim_arena") - origin  # .data + .bss (+ alignment) before the arena
    assert static > 0 and first.reserved == static + GUARD_BYTES
    assert fw.symbol("_end") - origin == image.primary_arena_bytes + first.reserved


def test_a_network_that_fills_the_planned_room_links_and_one_that_fills_the_bank_is_an_oom():
    board = get_board(BOARD)
    first = network_banks(board, "reference", {"relu"})[0]  # relu6 runs the relu kernel
    assert first.room % 8 == 0 and first.room == first.size - first.reserved

    # exactly the room: the plan fits, the link places arena + reserved = the whole bank
    g = relu6_net(first.room)
    image = build_network(g, board, "reference")
    assert {layer.kernel for layer in image.layers} == {"relu"}
    assert image.plan.bank_usage()[first.name] == (first.room, first.size)
    assert image.plan.bank_reserved[first.name] == first.reserved
    fw = load_elf(image.elf)
    linked = fw.symbol("_end") - first.address
    assert linked == image.plan.bank_usage()[first.name][0] + first.reserved == first.size
    x = np.random.default_rng(1).integers(-128, 128, size=first.room).astype(np.int8)
    result = run_network(image, x)  # also checks the guard after the arena
    assert np.array_equal(result.outputs[0], run(g, x)[0])

    # the whole bank, as the planner saw it before it reserved anything: the linker refuses
    # that plan by exactly the reserved bytes, and the planner now refuses it first
    over = relu6_net(first.size)
    unreserved = plan(over, board_banks(board))
    assert unreserved.bank_usage()[first.name][0] == first.size
    with pytest.raises(DoesNotFit) as linked:
        build_network(over, board, "reference", memory_plan=unreserved)
    assert not isinstance(linked.value, ArenaDoesNotFit)  # the linker's, not the plan's
    assert linked.value.needed - linked.value.available == first.reserved
    with pytest.raises(ArenaDoesNotFit) as info:
        build_network(over, board, "reference")
    err = info.value
    assert err.bank == first.name and err.over == first.reserved
    assert (err.needed, err.available) == (first.size, first.room)
    assert (f"in {first.name} the arena needs {first.size} B and has {first.room} B "
            f"({first.size} B less {first.reserved} B the firmware keeps there") in str(err)
