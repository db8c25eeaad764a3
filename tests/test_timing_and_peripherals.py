"""Emulator micro-tests: timing rules on assembled snippets, a few instructions run with their
registers asserted, and the peripheral models' register behaviour."""

from __future__ import annotations

import pytest
from conftest import assemble_thumb
from unicorn import arm_const as A

from atomsim.boards import get_board
from atomsim.emulator.machine import Machine
from atomsim.emulator.timing import decode
from atomsim.emulator.timing.cortex_m4 import CortexM4Model, P
from atomsim.emulator.timing.cortex_m7 import MISPREDICT, CortexM7Model

pytestmark = pytest.mark.emu


def m4_cost(tmp_path, asm: str):
    return CortexM4Model().block(decode(assemble_thumb(tmp_path, asm), 0x08000000))


def m7_cost(tmp_path, asm: str):
    return CortexM7Model().block(decode(assemble_thumb(tmp_path, asm, "cortex-m7"), 0x08000000))


# The M4 TRM's own examples (§3.3.2) and Table 3-1 rows.
@pytest.mark.parametrize("asm,cycles", [
    ("ldr r0, [r1]\n ldr r1, [r2]", 3),
    ("ldr r0, [r1, r2]\n str r0, [r3, #20]", 3),
    ("ldr r0, [r1]\n ldr r2, [r3]\n ldr r4, [r5]", 4),
    ("add r0, r1, r2\n ldr r3, [r0]", 1 + 3),  # address depends on the ALU result: +1
    ("ldrd r0, r1, [r2]", 3),
    ("push {r4, r5, r6, lr}", 5),
    ("stm r0!, {r1, r2, r3, r4, r5, r6, r7, r8}", 9),  # 1+N: the base is not in N
    ("ldm r0, {r1, r2, r3, r4}", 5),
    ("vpush {s16, s17, s18, s19}", 5),
    ("vldmia r0!, {d8, d9}", 5),  # 1+2N for doubles
    ("smlad r0, r1, r2, r0\n mla r3, r4, r5, r3", 2),
    ("vmla.f32 s0, s1, s2", 3),
    ("vdiv.f32 s0, s1, s2", 14),
])
def test_m4_trm_costs(tmp_path, asm, cycles):
    t = m4_cost(tmp_path, asm)
    assert (t.cost_fall, t.cost_taken) == (cycles, cycles)


def test_m4_conditional_branch_costs_refill_only_when_taken(tmp_path):
    t = m4_cost(tmp_path, "adds r0, #1\n cmp r0, r1\n bne .-4")
    assert t.n_insn == 3
    assert t.cost_fall == 3 and t.cost_taken == 2 + 1 + P


def test_m7_dual_issue_and_branch_prediction(tmp_path):
    alu = m7_cost(tmp_path, "add r0, r1\n add r2, r3\n add r4, r5\n add r6, r7")
    assert alu.cost_fall == 2  # independent ALU ops pair
    dep = m7_cost(tmp_path, "add r0, r1\n add r0, r2\n add r0, r3\n add r0, r4")
    assert dep.cost_fall == 4  # a chain cannot pair
    macs = m7_cost(tmp_path, "smlad r0, r1, r2, r0\n smlad r3, r4, r5, r3")
    assert macs.cost_fall == 2  # one MAC per cycle
    assert m7_cost(tmp_path, "stm r0!, {r1, r2, r3, r4}").cost_fall == 2  # ceil(4 / 2)
    assert m7_cost(tmp_path, "push {r4, r5, r6, lr}").cost_fall == 2
    loop = m7_cost(tmp_path, "subs r0, #1\n bne .-2")
    assert loop.cost_taken < loop.cost_fall == loop.cost_taken + MISPREDICT  # backward: taken


def test_halt_block_is_flagged(tmp_path):
    assert m4_cost(tmp_path, "b .").flags == 1
    assert m4_cost(tmp_path, "nop\n b .").flags == 0


def test_a_few_instructions_run_with_registers_asserted(tmp_path):
    board = get_board("stm32f412")
    code = assemble_thumb(tmp_path, "movs r0, #7\n movs r1, #6\n muls r0, r1, r0\n"
                          "ldr r2, =0x20000100\n str r0, [r2]\n ldr r3, [r2]\n b .\n .ltorg")
    m = Machine(board)
    vectors = (0x20010000).to_bytes(4, "little") + (0x08000009).to_bytes(4, "little")
    m.uc.mem_write(0x08000000, vectors + code)
    m.uc.reg_write(A.UC_ARM_REG_SP, 0x20010000)
    m.uc.reg_write(A.UC_ARM_REG_PC, 0x08000009)
    # run the counted engine directly: no firmware metadata needed for a snippet
    m.counter.state.budget = 100
    m.uc.emu_start(0x08000009, 0xFFFFFFFF)
    assert m.uc.reg_read(A.UC_ARM_REG_R0) == 42
    assert m.uc.reg_read(A.UC_ARM_REG_R3) == 42
    assert m.read_u32(0x20000100) == 42
    assert m.counter.state.instructions == 7  # 6 instructions and the first `b .`
    assert m.counter.state.stop_reason == 2  # halted on the branch to itself


@pytest.fixture
def f746():
    return Machine(get_board("stm32f746"))


def test_rcc_ready_flags_follow_enables_in_both_directions(f746):
    cr = 0x40023800
    f746.write_u32(cr, f746.read_u32(cr) | (1 << 24) | (1 << 16))
    assert f746.read_u32(cr) & (1 << 25) and f746.read_u32(cr) & (1 << 17)
    f746.write_u32(cr, f746.read_u32(cr) & ~(1 << 24))
    assert not f746.read_u32(cr) & (1 << 25)


def test_sws_follows_sw_and_flash_acr_reads_back(f746):
    f746.write_u32(0x40023808, 0x2)
    assert (f746.read_u32(0x40023808) >> 2) & 3 == 2
    f746.write_u32(0x40023C00, 0x307)
    assert f746.read_u32(0x40023C00) == 0x307


def test_f7_overdrive_and_usart_acks(f746):
    f746.write_u32(0x40007000, (1 << 16))
    assert f746.read_u32(0x40007004) & (1 << 16) and not f746.read_u32(0x40007004) & (1 << 17)
    f746.write_u32(0x40007000, (1 << 16) | (1 << 17))
    assert f746.read_u32(0x40007004) & (1 << 17)
    usart = 0x40004800
    assert not f746.read_u32(usart + 0x1C) & (1 << 21)
    f746.write_u32(usart, 0b1101)  # UE | RE | TE
    assert f746.read_u32(usart + 0x1C) & (3 << 21) == 3 << 21


def test_h7_supply_and_vos_ready():
    m = Machine(get_board("stm32h743"))
    assert m.read_u32(0x58024804) & (1 << 13)  # CSR1.ACTVOSRDY
    m.write_u32(0x58024818, 3 << 14)
    assert m.read_u32(0x58024818) & (1 << 13)  # D3CR.VOSRDY
    m.write_u32(0x58024400, 1 << 24)
    assert m.read_u32(0x58024400) & (1 << 25)
    m.write_u32(0x58024410, 3)
    assert (m.read_u32(0x58024410) >> 3) & 7 == 3
    assert m.read_u32(0x52002000) == 0x37  # FLASH_ACR reset value


def test_m7_cache_geometry_is_visible_to_startup_code():
    m = Machine(get_board("stm32h743"))
    m.write_u32(0xE000ED84, 0)  # CSSELR: L1 data cache
    ccsidr = m.read_u32(0xE000ED80)
    sets, ways = ((ccsidr >> 13) & 0x7FFF) + 1, ((ccsidr >> 3) & 0x3FF) + 1
    assert sets * ways * 32 == get_board("stm32h743").dcache_bytes
