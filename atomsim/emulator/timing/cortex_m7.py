"""Cortex-M7 timing: a documented first approximation of the dual-issue pipeline.

ARM publishes no M7 instruction timing table. This model follows the measured rules restated in
shared/reference/STM32-FACTS.md §2 (JNK-M7 on an H743, cross-checked with LLVM's M7 schedule):

- two adjacent instructions issue in one cycle unless a pairing rule forbids it: at most one
  multiply/MAC, no MAC beside a store, no two stores, no two loads (bank conflicts are not
  known statically, so loads never pair), DSP/bit-field ops only as the older of a pair and
  never two of them, FP ops never pair with FP ops, LDRD/STRD/LDM/STM/PUSH/POP, divides and
  FP divide/sqrt issue alone, and the younger may not read the older's result;
- a multiply cannot consume a load result from the previous cycle (+1); byte/halfword loads
  have latency 2 (+1 when used at once); MAC results have latency 2 (+1 when used at once,
  except as the accumulator of the next MAC, which is read a stage later);
- LDM/STM/PUSH/POP/LDRD/STRD take ceil(n/2) cycles; SDIV/UDIV 7 (LLVM); VDIV 16, VSQRT 14;
- branches: the BTAC is assumed to predict unconditional direct branches (1 cycle); backward
  conditional branches are predicted taken and forward ones not taken, a misprediction costs
  MISPREDICT extra cycles (LLVM-M7's value "that works better"); returns and other indirect
  branches pay the penalty.
Caches are assumed to hit (I- and D-cache on, as our startup enables them); TCM is zero-wait.
Misses, AXI latency and flash wait states are left to calibration.
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

MISPREDICT = 4
DIV_CYCLES = 7

_LOADS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrex", "ldrt", "vldr"}
_SLOW_LOADS = {"ldrb", "ldrh", "ldrsb", "ldrsh"}
_STORES = {"str", "strb", "strh", "strex", "strt", "vstr"}
_SINGLE = {"ldrd", "strd", "ldm", "ldmia", "ldmdb", "stm", "stmia", "stmdb", "push", "pop",
           "vldm", "vldmia", "vstm", "vstmia", "vstmdb", "vpush", "vpop"}
_MACS = {"mul", "mla", "mls", "smull", "umull", "smlal", "umlal", "smlabb", "smlabt", "smlatb",
         "smlatt", "smlad", "smladx", "smlsd", "smlsdx", "smlald", "smlaldx", "smlsld",
         "smlsldx", "smuad", "smuadx", "smusd", "smusdx", "smulbb", "smulbt", "smultb",
         "smultt", "smulwb", "smulwt", "smlawb", "smlawt", "smmul", "smmulr", "smmla",
         "smmlar", "smmls", "smmlsr", "umaal"}
_DSP = {"sxtb", "sxth", "uxtb", "uxth", "sxtb16", "uxtb16", "sxtab", "sxtah", "sxtab16",
        "uxtab", "uxtah", "uxtab16", "pkhbt", "pkhtb", "sel", "usad8", "usada8", "clz", "rev",
        "rev16", "revsh", "rbit", "bfi", "bfc", "ubfx", "sbfx", "qadd", "qsub", "qdadd",
        "qdsub", "ssat", "usat", "ssat16", "usat16", "sadd8", "sadd16", "ssub8", "ssub16",
        "uadd8", "uadd16", "usub8", "usub16", "qadd8", "qadd16", "qsub8", "qsub16", "uqadd8",
        "uqadd16", "uqsub8", "uqsub16", "shadd8", "shadd16", "uhadd8", "uhadd16", "sasx",
        "ssax", "uasx", "usax", "qasx", "qsax"}
_FP_LONG = {"vdiv": 16, "vsqrt": 14}


def _kind(insn: capstone.CsInsn) -> str:
    m = base_mnemonic(insn)
    if m in _SINGLE:
        return "multi"
    if m in ("sdiv", "udiv") or m in _FP_LONG:
        return "long"
    if m in _LOADS:
        return "load"
    if m in _STORES:
        return "store"
    if m in _MACS:
        return "mac"
    if m in _DSP:
        return "dsp"
    if m.startswith("v"):
        return "fp"
    if writes_pc(insn):
        return "branch"
    return "alu"


def _shifted_op2(insn: capstone.CsInsn) -> bool:
    return any(op.type == csarm.ARM_OP_REG and op.shift.type != 0 for op in insn.operands)


def _can_pair(a, ka: str, b, kb: str) -> bool:
    if "multi" in (ka, kb) or "long" in (ka, kb) or ka == "branch":
        return False
    if ka == kb and ka in ("mac", "store", "load", "dsp", "fp"):
        return False
    if {ka, kb} == {"mac", "store"} or kb == "dsp":
        return False
    if _shifted_op2(a) and _shifted_op2(b):
        return False
    written = set(a.regs_access()[1])
    return not (written & set(b.regs_access()[0]))


class CortexM7Model:
    """Dual-issue approximation of the Cortex-M7 (see the module docstring)."""

    # 2: LDM/STM N excludes the base register; 3: a block the emulator cut (1 KB page, insn
    # limit) is costed in the run it falls into (timing.in_context): placement-independent
    version = "cortex-m7-approx-3"

    def block(self, insns: Sequence[capstone.CsInsn]) -> BlockTiming:
        """Cost of one block."""
        if not insns:
            return BlockTiming(0, 0, 0)
        kinds = [_kind(i) for i in insns]
        cycles = 0
        i = 0
        last_issue: tuple[int, int] | None = None  # (index of older insn, index of younger)
        while i < len(insns):
            insn, k = insns[i], kinds[i]
            cost = self._issue_cost(insn, k)
            cost += self._stall(insns, kinds, i, last_issue)
            paired = (i + 1 < len(insns) and cost == 1 and kinds[i + 1] != "branch"
                      and self._issue_cost(insns[i + 1], kinds[i + 1]) == 1
                      and _can_pair(insn, k, insns[i + 1], kinds[i + 1]))
            if i + 1 < len(insns) and kinds[i + 1] == "branch" and i + 1 == len(insns) - 1 \
                    and cost == 1 and k not in ("multi", "long"):
                paired = True  # a predicted branch issues beside the instruction before it
            cycles += cost
            last_issue = (i, i + 1) if paired else (i, i)
            i += 2 if paired else 1
        last = insns[-1]
        fall_extra, taken_extra = self._branch_penalty(last, kinds[-1])
        flags = FLAG_HALT if is_halt(insns) else 0
        return BlockTiming(len(insns), cycles + fall_extra, cycles + taken_extra, flags)

    @staticmethod
    def _issue_cost(insn, kind: str) -> int:
        m = base_mnemonic(insn)
        if kind == "multi":  # ceil(registers in the list / 2); LDM/STM name their base first
            regs = sum(1 for op in insn.operands if op.type == csarm.ARM_OP_REG)
            if not m.endswith(("push", "pop")):
                regs -= 1
            return max(1, (regs + 1) // 2)
        if m in _FP_LONG:
            return _FP_LONG[m]
        if m in ("sdiv", "udiv"):
            return DIV_CYCLES
        return 1

    @staticmethod
    def _stall(insns, kinds, i: int, last_issue) -> int:
        """Extra cycles because instruction i reads a result that is not ready yet."""
        if last_issue is None:
            return 0
        reads = set(insns[i].regs_access()[0])
        stall = 0
        for j in set(last_issue):
            producer, pk = insns[j], kinds[j]
            if not reads & set(producer.regs_access()[1]):
                continue
            pm = base_mnemonic(producer)
            if pk == "load" and (kinds[i] == "mac" or pm in _SLOW_LOADS):
                stall = max(stall, 1)
            elif pk == "mac" and kinds[i] != "mac":
                stall = max(stall, 1)
            elif pk == "fp" and kinds[i] == "fp":
                stall = max(stall, 2)  # VADD/VMUL latency 3
        return stall

    @staticmethod
    def _branch_penalty(insn, kind: str) -> tuple[int, int]:
        """Extra cycles when falling through / taking the block's final branch."""
        if not writes_pc(insn):
            return 0, 0
        direct = bool(insn.operands) and insn.operands[-1].type == csarm.ARM_OP_IMM and (
            insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL))
        if not direct:
            return MISPREDICT, MISPREDICT  # returns, BX, POP {PC}, TBB: not predicted
        if not is_conditional(insn):
            return 0, 0
        backward = insn.operands[-1].imm <= insn.address
        return (MISPREDICT, 0) if backward else (0, MISPREDICT)
