"""Cortex-M4 timing: the TRM's instruction table and load/store pipelining rules.

Source: ARM DDI 0439D (Cortex-M4 r0p1 TRM) §3.3.1 Tables 3-1/3-2, §3.3.2, §7.2.3 Table 7-1, as
restated in shared/reference/STM32-FACTS.md §1. Memory is assumed zero-wait (on the F412 the
ART accelerator's prefetch and cache hide flash wait states for straight-line code); data wait
states and ART misses are not modelled — calibration against a board corrects for them.
"""

from __future__ import annotations

from collections.abc import Sequence

import capstone
from capstone import arm as csarm

from atomsim.emulator.timing import (
    FLAG_HALT,
    BlockTiming,
    base_mnemonic,
    is_conditional,
    is_halt,
    writes_pc,
)

# Pipeline refill after a taken branch: the TRM gives 1 to 3 cycles; 2 is used (GCC's M4
# model charges 3 cycles for a branch, i.e. 1+2).
P = 2
DIV_CYCLES = 7  # SDIV/UDIV take 2 to 12 cycles depending on the operands (no formula given)

_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrt", "ldrbt", "ldrht", "ldrsbt", "ldrsht",
          "ldrex", "ldrexb", "ldrexh"}
_STORES = {"str", "strb", "strh", "strt", "strbt", "strht", "strex", "strexb", "strexh"}
_MULTI = {"ldm", "ldmia", "ldmdb", "ldmfd", "ldmea", "stm", "stmia", "stmdb", "stmea", "stmfd",
          "push", "pop"}
_FP_MAC = {"vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms"}
_FP_MULTI = {"vldm", "vldmia", "vldmdb", "vstm", "vstmia", "vstmdb", "vpush", "vpop"}
_FP_SLOW = {"vdiv": 14, "vsqrt": 14}
_DATA_PROCESSING_EXCLUDED = _LOADS | _STORES | _MULTI | {"ldrd", "strd", "it", "nop"}


def _mem_regs(insn: capstone.CsInsn) -> set[int]:
    regs = set()
    for op in insn.operands:
        if op.type == csarm.ARM_OP_MEM:
            regs.add(op.mem.base)
            if op.mem.index:
                regs.add(op.mem.index)
    regs.discard(0)
    return regs


def _reg_count(insn: capstone.CsInsn) -> int:
    """N of the TRM's 1+N: registers in the list (LDM/STM/VLDM/VSTM name their base first)."""
    regs = [op for op in insn.operands if op.type == csarm.ARM_OP_REG]
    if not base_mnemonic(insn).endswith(("push", "pop")):
        regs = regs[1:]
    return len(regs) or 1


def _has_reg_offset(insn: capstone.CsInsn) -> bool:
    return any(op.type == csarm.ARM_OP_MEM and op.mem.index for op in insn.operands)


class CortexM4Model:
    """Cycle costs per the Cortex-M4 TRM; see the module docstring for what is left out."""

    # 2: LDM/STM N excludes the base register; 3: a block the emulator cut (1 KB page, insn
    # limit) is costed in the run it falls into (timing.in_context): placement-independent
    version = "cortex-m4-trm-3"

    def block(self, insns: Sequence[capstone.CsInsn]) -> BlockTiming:
        """Cost of one block: in-order, single issue, with TRM load/store pipelining."""
        if not insns:
            return BlockTiming(0, 0, 0)
        total = 0
        prev = None
        prev_written: set[int] = set()
        for i, insn in enumerate(insns):
            last = i == len(insns) - 1
            cost = self._cost(insn, prev, prev_written)
            if last:
                fall, taken = self._leave(insn, cost)
                flags = FLAG_HALT if is_halt(insns) else 0
                return BlockTiming(len(insns), total + fall, total + taken, flags)
            total += cost
            prev = insn
            prev_written = set(insn.regs_access()[1])
        raise AssertionError("unreachable")

    def _cost(self, insn, prev, prev_written: set[int]) -> int:
        m = base_mnemonic(insn)
        if m == "it":
            return 0 if prev is not None and prev.size == 2 else 1  # folds onto a 16-bit insn
        if m in _LOADS or m in _STORES:
            cost = 2
            if m in _STORES and not _has_reg_offset(insn):
                cost = 1  # "STR Rx,[Ry,#imm] is always one cycle" (write buffer)
            addr_regs = _mem_regs(insn)
            if prev is not None:
                pm = base_mnemonic(prev)
                if pm in _LOADS and not (addr_regs & prev_written) and cost == 2:
                    cost = 1  # pipelined behind the previous LDR
                elif (pm not in _DATA_PROCESSING_EXCLUDED and addr_regs & prev_written
                      and not pm.startswith("v")):
                    cost += 1  # address depends on the previous data-processing result
            return cost
        if m in ("ldrd", "strd"):
            return 3
        if m in _MULTI:
            return 1 + _reg_count(insn)
        if m in ("sdiv", "udiv"):
            return DIV_CYCLES
        if m in _FP_SLOW:
            return _FP_SLOW[m]
        if m in _FP_MAC:
            return 3
        if m in _FP_MULTI:  # 1+N for single-precision registers, 1+2N for double
            n = _reg_count(insn)
            last = insn.operands[-1]
            double = last.type == csarm.ARM_OP_REG and insn.reg_name(last.reg).startswith("d")
            return 1 + (2 * n if double else n)
        if m in ("vldr", "vstr"):
            return 3 if insn.op_str.startswith("d") else 2
        if m == "vmov":
            regs = [op for op in insn.operands if op.type == csarm.ARM_OP_REG]
            return 2 if len(regs) >= 3 or (len(regs) == 2 and _core_and_fp(regs)) else 1
        if m == "isb":
            return 1 + P
        return 1

    def _leave(self, insn, cost: int) -> tuple[int, int]:
        """Costs of the block's last instruction when falling through / taking the branch."""
        if not writes_pc(insn):
            return cost, cost
        m = base_mnemonic(insn)
        if m in ("tbb", "tbh"):
            taken = 2 + P
        elif m in _MULTI:
            taken = 1 + _reg_count(insn) + P
        elif m in _LOADS:
            taken = 2 + P
        else:
            taken = 1 + P
        if is_conditional(insn):
            return 1, taken
        return taken, taken


def _core_and_fp(regs) -> bool:
    names = [r.reg for r in regs]
    core = [r for r in names if csarm.ARM_REG_R0 <= r <= csarm.ARM_REG_R12 or
            r in (csarm.ARM_REG_LR, csarm.ARM_REG_SP)]
    return 0 < len(core) < len(names)
