"""Modelled cycles do not depend on where code sits in memory.

Unicorn ends a translated block at every 1 KB guest page boundary (and at an instruction
limit), where a real core sees nothing. A block cut there is costed in the context of the code
it falls into (atomsim.emulator.timing.in_context); these tests move the same loop across a
page boundary on the M4 and M7 models and check that the cycles stay the same, and that the
boundary really does cut the loop, so that the check can fail.
"""

from __future__ import annotations

import pytest
from conftest import assemble_thumb
from unicorn import arm_const as A

from atomsim.boards import get_board
from atomsim.emulator.machine import Machine
from atomsim.emulator.timing import decode, in_context
from atomsim.emulator.timing.cortex_m4 import CortexM4Model
from atomsim.emulator.timing.cortex_m7 import CortexM7Model

pytestmark = pytest.mark.emu

PAGE = 0x400  # Unicorn's ARM guest page
FLASH = 0x08000000
# Pairs, a MAC beside ALU ops, a byte load used at once, a multiply of a load result (M7);
# back-to-back loads that pipeline and an address computed just before its load (M4).
BODY = """
    add r1, r1, #1
    add r2, r2, #1
    ldr r5, [sp]
    ldr r9, [sp, #4]
    add r3, r3, #3
    eor r4, r4, r1
    smlad r6, r1, r2, r6
    ldrb r7, [sp]
    add r7, r7, #1
    mul r8, r7, r5
    add r10, sp, r3, lsr #30
    ldr r11, [r10]
    str r4, [sp, #8]
    add r12, r12, #1
    ldr r2, [sp]
    add r12, r12, #1
    smlad r3, r1, r2, r3
"""
CPU = {"stm32f412": "cortex-m4", "stm32h743": "cortex-m7", "stm32f746": "cortex-m7"}


def _program(tmp_path, board: str, repeats: int) -> bytes:
    asm = "movs r0, #20\n movs r3, #0\n1:\n" + BODY * repeats + "subs r0, #1\n bne 1b\n b .\n"
    return assemble_thumb(tmp_path, asm, CPU[board])


def _run(board: str, code: bytes, base: int) -> tuple[int, int, int]:
    """(cycles, instructions, distinct blocks) of the program placed at ``base``."""
    m = Machine(get_board(board))
    m.uc.mem_write(base, code)
    m.uc.reg_write(A.UC_ARM_REG_SP, 0x20010000)
    m.counter.state.budget = 10**6
    m.uc.emu_start(base | 1, 0xFFFFFFFF)
    st = m.counter.state
    assert st.stop_reason == 2  # halted on the final `b .`
    return st.cycles, st.instructions, len(m.counter.blocks())


@pytest.mark.parametrize("board", ["stm32f412", "stm32h743"])
@pytest.mark.parametrize("repeats", [3, 40])  # one page boundary in the loop; two (a chain)
def test_loop_cycles_do_not_depend_on_placement(tmp_path, board, repeats):
    code = _program(tmp_path, board, repeats)
    # Inside one page, then with the boundary at every 2-byte offset of the first repeat of
    # the body (and a few more bytes later for the long loop).
    bases = [FLASH + PAGE]
    bases += [FLASH + 2 * PAGE - off for off in range(4, 4 + 2 * 26, 2)]
    bases += [FLASH + 2 * PAGE - off for off in (200, 333 & ~1, 514)]
    runs = {base: _run(board, code, base) for base in bases}
    cycles = {c for c, _, _ in runs.values()}
    assert len({n for _, n, _ in runs.values()}) == 1
    blocks = {b for _, _, b in runs.values()}
    assert len(blocks) > 1, "no placement cut the loop: the test checks nothing"
    assert len(cycles) == 1, {hex(b): r for b, r in runs.items()}


def _decode(tmp_path, cpu: str, asm: str):
    return decode(assemble_thumb(tmp_path, asm, cpu), FLASH)


@pytest.mark.parametrize("model,cpu", [(CortexM4Model(), "cortex-m4"),
                                       (CortexM7Model(), "cortex-m7")])
def test_cut_blocks_telescope_to_the_uncut_cost(tmp_path, model, cpu):
    """Cut a straight run ending in a branch anywhere into two or three blocks: the
    fall-through costs of the cut pieces plus the last piece's cost add up to the run's."""
    insns = _decode(tmp_path, cpu, BODY + "subs r0, #1\n bne .-40")
    whole = model.block(insns)
    n = len(insns)
    for i in range(1, n):
        for j in range(i, n):
            pieces = [insns[:i], insns[i:j], insns[j:]]
            pieces = [p for p in pieces if p]
            fall = sum(in_context(model, p, insns[insns.index(p[0]):]).cost_fall
                       for p in pieces[:-1])
            last = model.block(pieces[-1])
            assert fall + last.cost_fall == whole.cost_fall, (i, j)
            assert fall + last.cost_taken == whole.cost_taken, (i, j)


def test_a_cut_can_cost_less_than_nothing_and_the_run_still_adds_up(tmp_path):
    """Greedy in-order pairing: one instruction in front of ``ldr; add; smlad`` lets the
    load pair with it and the MAC pair with the add, which saves the MAC's load stall. The
    cut block's fall-through cost is then negative, and the run's total stays exact."""
    model = CortexM7Model()
    insns = _decode(tmp_path, "cortex-m7", "add r12, r12, #1\n ldr r2, [sp]\n"
                    "add r12, r12, #1\n smlad r3, r1, r2, r3\n subs r0, #1\n bne .-16")
    cut = in_context(model, insns[:1], insns)
    assert cut.cost_fall < 0
    assert cut.cost_fall + model.block(insns[1:]).cost_fall == model.block(insns).cost_fall


def test_a_cut_block_that_pairs_across_the_cut_is_cheaper_in_context(tmp_path):
    """The M7 pairs the instruction before the cut with the one after it: alone, the block
    pays a full cycle for its last instruction; in context it adds only what the pair costs."""
    model = CortexM7Model()
    insns = _decode(tmp_path, "cortex-m7", "add r0, r1\n add r2, r3\n add r4, r5\n"
                    "add r6, r7\n subs r8, #1\n bne .-10")
    cut = insns[:3]
    assert model.block(cut).cost_fall == 2
    assert in_context(model, cut, insns).cost_fall == 1
    assert in_context(model, cut, insns).cost_taken == 2  # an exception at the cut: alone
    # a block that ends in a branch is its own run
    assert in_context(model, insns, insns) == model.block(insns)
