"""Timing models: pure functions from a decoded basic block to its cycle cost.

A model sees each distinct block once (decoded with capstone) and returns what leaving the
block costs by falling through and by a taken branch; the native counter multiplies those by
the recorded counts. Models are swappable per core; each has a version string that goes into
every measurement's provenance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import capstone
from capstone import arm as csarm

FLAG_HALT = 1  # the block is a branch to itself: the firmware has finished


@dataclass(frozen=True)
class BlockTiming:
    """What a block costs: instructions, cycles when left by fall-through / by a taken branch."""

    n_insn: int
    cost_fall: int
    cost_taken: int
    flags: int = 0


class TimingModel(Protocol):
    """A per-core timing model."""

    version: str

    def block(self, insns: Sequence[capstone.CsInsn]) -> BlockTiming:
        """Cost of one decoded block."""


@cache
def decoder() -> capstone.Cs:
    """A Thumb-2 M-class decoder with operand details."""
    cs = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    cs.detail = True
    return cs


def decode(code: bytes, address: int) -> list[capstone.CsInsn]:
    """Decode a block; stops at the first undecodable instruction."""
    return list(decoder().disasm(code, address))


def base_mnemonic(insn: capstone.CsInsn) -> str:
    """Mnemonic without width (.w/.n) or data-type suffixes, e.g. 'ldr.w' -> 'ldr'."""
    return insn.mnemonic.split(".")[0]


def is_conditional(insn: capstone.CsInsn) -> bool:
    """Conditionally executed: a B<cc>, CBZ/CBNZ, or an instruction inside an IT block."""
    return base_mnemonic(insn) in ("cbz", "cbnz") or insn.cc not in (csarm.ARM_CC_AL,
                                                                       csarm.ARM_CC_INVALID)


def writes_pc(insn: capstone.CsInsn) -> bool:
    """True for branches and any instruction that loads or writes the PC."""
    if insn.group(capstone.CS_GRP_JUMP) or insn.group(capstone.CS_GRP_CALL) or \
            insn.group(capstone.CS_GRP_RET):
        return True
    _, written = insn.regs_access()
    return csarm.ARM_REG_PC in written


def is_halt(insns: Sequence[capstone.CsInsn]) -> bool:
    """A block that is one unconditional branch to itself (the end of a bare-metal main)."""
    if len(insns) != 1:
        return False
    insn = insns[0]
    return (base_mnemonic(insn) == "b" and not is_conditional(insn)
            and insn.operands and insn.operands[0].type == csarm.ARM_OP_IMM
            and insn.operands[0].imm == insn.address)


def model_for(core: str) -> TimingModel:
    """The default timing model for a core name from the board data."""
    from atomsim.emulator.timing.cortex_m4 import CortexM4Model
    from atomsim.emulator.timing.cortex_m7 import CortexM7Model

    models = {"cortex-m4": CortexM4Model, "cortex-m7": CortexM7Model}
    if core not in models:
        from atomsim.core.errors import ConfigError

        raise ConfigError(f"no timing model for core {core!r}; known: {', '.join(models)}")
    return models[core]()
