"""SRAM banks: tensors placed whole across a board's banks, in the planner, the network
firmware, the profiling harness and the sweep's fit check (the STM32H743's AXI SRAM, SRAM1-3
and SRAM4)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from atomsim.boards import get_board
from atomsim.core.errors import DoesNotFit
from atomsim.nn import registry
from atomsim.nn.atoms import Atom
from atomsim.nn.interpreter import run
from atomsim.nn.lowering import GraphBuilder, Tensor, with_random_weights
from atomsim.nn.planner import ArenaDoesNotFit, board_banks, plan
from atomsim.profiling.sweep import check_fits

H743 = "stm32h743"
AXI, D2, D3 = "axi_sram", "sram1+sram2+sram3", "sram4"


def two_big_tensors():
    """Input 32x88x88 (247,808 B) and a 1x1 conv output 40x88x88 (309,760 B), live together:
    557,568 B, more than the H743's largest bank (AXI SRAM, 512 KB)."""
    b = GraphBuilder()
    x = b.input(Tensor(32, 88, 88))
    y = b.conv(x, 40, 1, 1)
    b.graph.outputs.append(y)
    return b.graph


@pytest.mark.unit
def test_h743_spreads_tensors_over_its_banks_each_whole_in_one():
    g = two_big_tensors()
    banks = board_banks(get_board(H743))
    assert [(b.name, b.size) for b in banks] == [(AXI, 512 * 1024), (D2, 288 * 1024),
                                                 (D3, 64 * 1024)]
    p = plan(g, banks, variant="cortex_m_dsp")
    where = {g.tensors[t].name: pl.bank for pl in p.placements for t in pl.tensors}
    assert where["pw0"] == AXI and where["input"] == D2  # largest first, first bank with room
    usage = p.bank_usage()
    assert usage[D2] == (247_808, 288 * 1024) and usage[D3] == (0, 64 * 1024)
    assert usage[AXI][0] >= 309_760
    assert p.total_arena_bytes > banks[0].size  # more than the largest bank, yet it fits
    for pl in p.placements:
        assert pl.offset + pl.size <= p.bank_sizes[pl.bank]
    # one bank of the same total size as AXI SRAM cannot hold it
    with pytest.raises(ArenaDoesNotFit):
        plan(g, banks[:1], variant="cortex_m_dsp")


@pytest.mark.unit
def test_a_tensor_larger_than_every_bank_is_an_oom_naming_it_and_the_banks():
    b = GraphBuilder()
    x = b.input(Tensor(8, 24, 24))
    y = b.conv(x, 1024, 1, 1)  # 1024x24x24 = 589,824 B
    b.graph.outputs.append(y)
    g = b.graph
    with pytest.raises(ArenaDoesNotFit) as info:
        plan(g, board_banks(get_board(H743)))
    msg = str(info.value)
    assert "buffer pw0 (589824 B) is larger than every bank alone" in msg
    assert "axi_sram 524288 B, sram1+sram2+sram3 294912 B, sram4 65536 B" in msg
    assert f"needs {589_824 - 524_288} bytes more" in msg
    assert info.value.bank_sizes == {AXI: 524_288, D2: 294_912, D3: 65_536}


@pytest.mark.unit
def test_sweep_fit_check_uses_the_banks():
    board = get_board(H743)
    spread = Atom(type="pw", c_in=40, h_in=88, w_in=88, c_out=32, h_out=88, w_out=88)
    assert spread.input_bytes + spread.output_bytes > board.ram.size
    check_fits(spread, board)  # fits: input in AXI SRAM, output in SRAM1-3
    single = Atom(type="pw", c_in=8, h_in=24, w_in=24, c_out=1024, h_out=24, w_out=24)
    with pytest.raises(DoesNotFit, match="output tensor whole in one bank; banks axi_sram"):
        check_fits(single, board)  # 589,824 B output: no bank holds it
    with pytest.raises(DoesNotFit, match="ram"):  # the single-bank F746 refuses the spread one
        check_fits(spread, get_board("stm32f746"))


@pytest.mark.firmware
@pytest.mark.emu
def test_network_over_512_kb_runs_on_the_h743_bit_exact_with_per_bank_usage():
    from atomsim.profiling.network import build_network, profile_model, run_network

    g = with_random_weights(two_big_tensors(), seed=1)
    board = get_board(H743)
    image = build_network(g, board, "cortex_m_dsp")
    d2 = board.banks[1]
    assert image.bank_arenas[D2] == (d2.address, 247_808)  # input placed at SRAM1's base
    assert image.bank_arenas[AXI][0] is None  # the linked atomsim_arena array
    assert image.arena_bytes > board.ram.size
    x = np.random.default_rng(7).integers(-128, 128, size=g.tensors[g.inputs[0]].size,
                                          dtype=np.int8)
    result = run_network(image, x)
    assert np.array_equal(result.outputs[0], run(g, x)[0])
    assert len(np.unique(result.outputs[0])) > 3
    assert result.peak_sram_bytes > 512 * 1024
    profile = profile_model(g, board, "cortex_m_dsp", seed=3)
    assert profile.status == "ok" and profile.exact
    assert profile.banks[D2] == {"address": d2.address, "size": d2.size, "used": 247_808}
    assert profile.banks[AXI]["used"] >= 309_760 and profile.banks[D3]["used"] == 0


@pytest.mark.firmware
@pytest.mark.emu
def test_a_write_past_the_arena_of_a_second_bank_is_caught():
    from atomsim.profiling.network import ArenaOverrun, build_network, run_network

    b = GraphBuilder()
    x = b.input(Tensor(8, 8, 8))
    y = b.conv(x, 16, 1, 1)
    b.graph.outputs.append(y)
    g = with_random_weights(b.graph, seed=2)
    board = get_board(H743)
    honest = plan(g, board_banks(board), variant="cortex_m_dsp")
    # claim the 1,024-byte output takes 4 bytes at the base of SRAM1: the kernel writes 1,024
    lying = tuple(dataclasses.replace(p, bank=D2, offset=0, size=4) if y in p.tensors else p
                  for p in honest.placements)
    image = build_network(g, board, "cortex_m_dsp",
                          memory_plan=dataclasses.replace(honest, placements=lying))
    assert image.bank_arenas[D2] == (board.banks[1].address, 8)
    with pytest.raises(ArenaOverrun) as info:
        run_network(image, np.zeros(512, dtype=np.int8))
    assert info.value.address == board.banks[1].address + 8


@pytest.mark.firmware
@pytest.mark.emu
def test_atoms_over_the_largest_bank_run_spread_and_the_others_are_oom():
    from atomsim.profiling.profiler import Profiler

    board = get_board(H743)
    prof = Profiler(board, "cortex_m_dsp")
    try:
        for atom in (Atom(type="pad", c_in=32, h_in=94, w_in=94, c_out=32, h_out=96, w_out=96,
                          padding=(1, 1, 1, 1)),
                     Atom(type="dw", groups=144, c_in=144, h_in=46, w_in=46, k1=3, k2=3,
                          c_out=144, h_out=44, w_out=44)):
            assert atom.input_bytes + atom.output_bytes > board.banks[0].size
            call = registry.call_for_atom(atom, seed=4)
            r = prof.run_case(call)
            assert np.array_equal(r.output, registry.expected_output(call)), atom.key
            assert r.cycles > 0 and r.sram_bytes >= atom.input_bytes + atom.output_bytes
        too_big = Atom(type="dw", groups=96, c_in=96, h_in=66, w_in=66, k1=3, k2=3, c_out=96,
                       h_out=64, w_out=64)  # 418,176 B in, 393,216 B out: one fits no bank
        check_fits(too_big, board)  # the cheap check passes; the exact placement refuses
        with pytest.raises(DoesNotFit) as info:
            prof.profile(too_big)
        msg = str(info.value)
        assert "393216-byte activation buffer" in msg and "sram1+sram2+sram3 294912 B" in msg
        assert re.search(r"axi_sram \(free RAM\) \d+ B", msg)
    finally:
        prof.close()
