"""Timing models: pure functions from a decoded basic block to its cycle cost.

A model sees each distinct block once (decoded with capstone) and returns what leaving the
block costs by falling through and by a taken branch; the native counter multiplies those by
the recorded counts. Models are swappable per core; each has a version string that goes into
every measurement's provenance.

Unicorn (QEMU) also ends a block where no branch is: at a 1 KB guest page boundary and at its
instruction limit. A real core sees nothing there, so a block that was cut is costed in the
context of the code it falls into (:func:`in_context`); the costs of a straight run of code
then do not depend on where it sits in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import capstone
from capstone import arm as csarm

FLAG_HALT = 1  # the block is a branch to itself: the firmware has finished
# How far a cut block looks ahead for the rest of its straight-line run (instructions, and the
# bytes to read for them: Thumb-2 instructions are at most 4 bytes).
FOLLOW_LIMIT = 64
FOLLOW_BYTES = 4 * FOLLOW_LIMIT


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


def in_context(model: TimingModel, insns: Sequence[capstone.CsInsn],
               stream: Sequence[capstone.CsInsn]) -> BlockTiming:
    """A block's timing, its fall-through cost seen in the straight-line run it belongs to.

    ``stream`` is the code decoded from the block's first instruction on (the block, then
    what follows it in memory, e.g. :data:`FOLLOW_BYTES` more). A block that ends in a PC
    write is costed alone. A block that does not was cut by the emulator: falling through
    it, the core goes on with F, the instructions after it up to and including the next PC
    write (at most :data:`FOLLOW_LIMIT`), and the fall-through cost is
    ``cost(block + F) - cost(F)``: what the block adds in front of that code, pairs and stalls
    across the cut included. Along a chain of cut blocks these telescope, so the run costs
    exactly what it costs as one block, wherever the cuts are; a block entered by a branch
    still costs its own run from there. The difference can be negative (by a cycle or so):
    in-order issue is greedy, and one more instruction in front can shift the pairing of
    what follows to a cheaper one; the native counter takes a signed fall-through cost so
    that the sum stays exact. The taken cost (used when an exception is taken at the cut)
    stays the block's own.
    """
    alone = model.block(insns)
    if not insns or writes_pc(insns[-1]):
        return alone
    n = len(insns)
    if len(stream) <= n or [i.address for i in stream[:n]] != [i.address for i in insns]:
        return alone
    follow = []
    for insn in stream[n:n + FOLLOW_LIMIT]:
        follow.append(insn)
        if writes_pc(insn):
            break
    joined = model.block([*stream[:n], *follow]).cost_fall - model.block(follow).cost_fall
    return BlockTiming(alone.n_insn, joined, alone.cost_taken, alone.flags)


_TIMINGS: dict[tuple[str, int, bytes, bytes | None], BlockTiming] = {}


def block_timing(model: TimingModel, address: int, code: bytes,
                 insns: Sequence[capstone.CsInsn], ahead: bytes | None) -> BlockTiming:
    """The timing of the block ``code`` at ``address`` (decoded: ``insns``), memoised per
    model version and bytes, since every run of a firmware (a profiler resets the machine per
    atom) describes the same blocks again. ``ahead``: the bytes after a block that the
    emulator cut (costed :func:`in_context`), None for a block that ends where its code does.
    """
    key = (model.version, address, code, ahead)
    t = _TIMINGS.get(key)
    if t is None:
        t = model.block(insns) if ahead is None else \
            in_context(model, insns, decode(code + ahead, address))
        _TIMINGS[key] = t
    return t


def model_for(core: str) -> TimingModel:
    """The default timing model for a core name from the board data."""
    from atomsim.emulator.timing.cortex_m4 import CortexM4Model
    from atomsim.emulator.timing.cortex_m7 import CortexM7Model

    models = {"cortex-m4": CortexM4Model, "cortex-m7": CortexM7Model}
    if core not in models:
        from atomsim.core.errors import ConfigError

        raise ConfigError(f"no timing model for core {core!r}; known: {', '.join(models)}")
    return models[core]()
