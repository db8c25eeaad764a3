"""Memory plan of a graph: activation arena offsets from tensor lifetimes, plus kernel scratch.

The arena is planned like TensorFlow Lite Micro's ``GreedyMemoryPlanner``: buffers are taken
largest first (ties: earlier first use, then id) and each goes to the lowest offset where it
overlaps no already placed buffer whose lifetime overlaps its own. So no two tensors that are
live at the same time share a byte.

In place: an op writes over its input only where the kernel contract allows it
(``atomsim_nn.h``, "Aliasing": relu, relu6, hard_swish, hard_sigmoid) and the input dies at
that op; a reshape is a view of its input. Aliased tensors are one buffer.

Scratch: one buffer of the largest ``*_get_buffer_size()`` of any op for the chosen kernel
variant (:mod:`atomsim.nn.ops.buffers`), live for the whole run, placed right after the
activation arena of the first bank with room for it: arena + scratch is the plan's SRAM.

Banks: the caller gives the SRAM banks (name, size) the arena may use — e.g. one 320 KB region
on the STM32F746, AXI SRAM and other banks on the STM32H743 — and, per bank, the bytes the
firmware keeps there besides the planned buffers (``Bank.reserved``: the network firmware's
static data and the guard after its arena, measured from its ELF by
:func:`atomsim.profiling.network.network_banks`), so a plan that fits also links. Each buffer
goes to the first bank (in the order given) where it fits in ``size - reserved``; a buffer that
fits no bank is an OOM (:class:`ArenaDoesNotFit`) naming the bank, the bytes needed and
available, and the tensors live at the peak.

:func:`arena_buffers` is the planner's buffer list (aliased tensors merged) for callers that
estimate arenas without planning (atomnet's search).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from atomsim.core.errors import ConfigError, DoesNotFit
from atomsim.nn.graph import Graph
from atomsim.nn.ops import buffers

ALIGNMENT = 4  # kernels need 4-byte aligned scratch; activations get the same
IN_PLACE_KERNELS = ("relu", "relu6", "hard_swish", "hard_sigmoid")
SCRATCH = -1  # buffer id of the shared scratch buffer


@dataclass(frozen=True)
class Bank:
    """One SRAM region the arena may use; ``reserved`` of its ``size`` bytes hold what the
    firmware keeps there besides the planned buffers (static data, guard), so the plan has
    ``room`` = size - reserved."""

    name: str
    size: int
    address: int = 0
    reserved: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.reserved <= self.size:
            raise ConfigError(f"bank {self.name}: {self.reserved} reserved bytes of "
                              f"{self.size}: must be between 0 and the bank's size")

    @property
    def room(self) -> int:
        """Bytes the planned buffers may use."""
        return self.size - self.reserved


class Buffer(NamedTuple):
    """One arena buffer: the tensors that share it (aliases merged), its bytes (unaligned) and
    its lifetime in op indices, both ends live (``Graph.lifetimes``: -1 for a graph input,
    written before the run; the number of ops for a graph output, read after it)."""

    tensors: tuple[int, ...]
    size: int
    first: int
    last: int


@dataclass(frozen=True)
class Placement:
    """Where one buffer (one or more aliased tensors) lives."""

    tensors: tuple[int, ...]  # tensor ids sharing the buffer (SCRATCH for scratch)
    bank: str
    offset: int
    size: int
    first: int
    last: int


@dataclass(frozen=True)
class MemoryPlan:
    """The plan: buffer placements, arena and scratch sizes, live bytes per op."""

    graph: str
    variant: str
    placements: tuple[Placement, ...]
    arena_bytes: dict[str, int]  # per bank: end of the highest activation buffer
    scratch_bytes: int
    scratch_per_op: tuple[int, ...]
    live_bytes: tuple[int, ...]  # activations live during each op (+ that op's scratch)
    live_tensors: tuple[tuple[int, ...], ...]
    bank_sizes: dict[str, int] = field(default_factory=dict)  # the banks planned over
    bank_reserved: dict[str, int] = field(default_factory=dict)  # Bank.reserved of each

    def bank_usage(self) -> dict[str, tuple[int, int]]:
        """Per bank, in the order planned: (bytes used — activations and scratch, bank size)."""
        used = dict.fromkeys(self.bank_sizes or self.arena_bytes, 0)
        for p in self.placements:
            used[p.bank] = max(used.get(p.bank, 0), _align(p.offset + p.size, ALIGNMENT))
        return {name: (n, self.bank_sizes.get(name, 0)) for name, n in used.items()}

    @property
    def total_arena_bytes(self) -> int:
        """Activation arena over all banks (scratch not included)."""
        return sum(self.arena_bytes.values())

    @property
    def peak_bytes(self) -> int:
        """The largest live-activation + scratch figure of any op."""
        return max(self.live_bytes, default=0)

    @property
    def peak_op(self) -> int:
        """Index of the op at the peak."""
        return max(range(len(self.live_bytes)), key=self.live_bytes.__getitem__, default=-1)

    def offset_of(self, tensor: int) -> tuple[str, int]:
        """(bank, offset) of a tensor."""
        for p in self.placements:
            if tensor in p.tensors:
                return p.bank, p.offset
        raise KeyError(tensor)

    def check(self) -> None:
        """Assert the plan's invariant: buffers live at the same time never overlap."""
        ps = self.placements
        for i, a in enumerate(ps):
            for b in ps[i + 1:]:
                if a.bank == b.bank and a.first <= b.last and b.first <= a.last and \
                        a.offset < b.offset + b.size and b.offset < a.offset + a.size:
                    raise AssertionError(f"buffers {a.tensors} and {b.tensors} overlap")


class ArenaDoesNotFit(DoesNotFit):
    """The activations (and scratch) of a graph do not fit the banks given."""

    def __init__(self, graph: str, tensor: str, size: int, over: int, peak_op: int,
                 peak_bytes: int, live: Sequence[str], banks: Sequence[Bank],
                 bank: Bank | None = None):
        self.tensor, self.size, self.over = tensor, size, over
        self.peak_op, self.peak_bytes, self.live = peak_op, peak_bytes, tuple(live)
        largest = max((b.room for b in banks), default=0)
        capacity = sum(b.room for b in banks)
        self.deficit = max(peak_bytes - capacity, over)  # bytes over at the peak
        self.bank_sizes = {b.name: b.size for b in banks}
        self.bank_reserved = {b.name: b.reserved for b in banks}
        # the bank that came closest (the named figures: bytes needed there and available)
        bank = bank if bank is not None else max(banks, key=lambda b: b.room, default=None)
        self.bank = bank.name if bank is not None else None
        room = bank.room if bank is not None else 0
        region = ", ".join(b.name for b in banks) or "no bank"
        super().__init__(self.bank or region, room + over, room, what=graph)
        sizes = ", ".join(f"{b.name} {b.size} B" + (f" less {b.reserved} B reserved"
                                                    if b.reserved else "")
                          for b in banks) or "none"
        why = ("is larger than every bank alone" if size > largest
               else "fits no bank beside the buffers live with it")
        where = ""
        if bank is not None:
            kept = (f" ({bank.size} B less {bank.reserved} B the firmware keeps there: static "
                    "data and guard)" if bank.reserved else "")
            where = f"; in {bank.name} the arena needs {room + over} B and has {room} B{kept}"
        total_reserved = sum(b.reserved for b in banks)
        sram = f"{sum(b.size for b in banks)} B of SRAM" + (
            f" less {total_reserved} B reserved" if total_reserved else "")
        self.args = (f"{graph} does not fit {region}: buffer {tensor} ({size} B) {why}: it "
                     f"needs {over} bytes more than any bank has free{where} (banks: {sizes}); "
                     f"at the peak (op {peak_op}) {peak_bytes} B are live against {sram} "
                     f"({self.deficit} B over); live there: {', '.join(live)}",)

    def __str__(self) -> str:
        return self.args[0]


def scratch_size(graph: Graph, index: int, variant: str = "reference") -> int:
    """Bytes of scratch op ``index`` needs with kernel ``variant`` (0 for most ops)."""
    op = graph.ops[index]
    kind = op.kind
    if kind not in ("conv", "dw", "pw", "fc"):
        buffers._check(variant)  # noqa: SLF001 - validates the variant name
        return 0
    x = graph.tensors[op.inputs[0]].shape
    f = graph.tensors[op.inputs[1]].shape
    y = graph.tensors[op.outputs[0]].shape
    if kind == "fc":
        return buffers.fully_connected_s8_get_buffer_size(x, (f[0], 1, 1, f[1]), y, variant)
    fn = {"conv": buffers.conv_s8_get_buffer_size,
          "dw": buffers.depthwise_conv_s8_get_buffer_size,
          "pw": buffers.pointwise_conv_s8_get_buffer_size}[kind]
    return fn(x, f, y, variant)


def _align(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


def arena_buffers(graph: Graph) -> list[Buffer]:
    """The arena buffers :func:`plan` places, one per tensor or group of aliased tensors (a
    reshape's view, an in-place elementwise output with its input): their tensor ids, bytes
    (the largest member's, unaligned) and lifetime. Scratch is not included. Each tuple
    unpacks as (tensors, size, first, last)."""
    life = graph.lifetimes()
    alias: dict[int, int] = {}  # tensor -> the tensor whose buffer it uses

    def root(t: int) -> int:
        while t in alias:
            t = alias[t]
        return t

    for i, op in enumerate(graph.ops):
        if op.kind == "reshape" or (op.kind in IN_PLACE_KERNELS and life[op.inputs[0]][1] == i
                                    and op.inputs[0] not in graph.outputs):
            alias[op.outputs[0]] = op.inputs[0]
    groups: dict[int, list[int]] = {}
    for t in life:
        groups.setdefault(root(t), []).append(t)
    out = []
    for members in groups.values():
        size = max(graph.tensors[t].nbytes for t in members)
        first = min(life[t][0] for t in members)
        last = max(life[t][1] for t in members)
        out.append(Buffer(tuple(sorted(members)), size, first, last))
    return out


def plan(graph: Graph, banks: Sequence[Bank], *, variant: str = "reference",
         alignment: int = ALIGNMENT) -> MemoryPlan:
    """Plan the activation arena and the scratch buffer of ``graph`` over ``banks``."""
    n = len(graph.ops)
    scratch_per_op = tuple(scratch_size(graph, i, variant) for i in range(n))
    scratch = max(scratch_per_op, default=0)
    bufs = arena_buffers(graph)
    # live bytes per op (activations by buffer, once per alias group) + that op's scratch
    live_tensors = []
    live_bytes = []
    for i in range(n):
        here = [b for b in bufs if b[2] <= i <= b[3]]
        live_tensors.append(tuple(t for b in here for t in b[0]))
        live_bytes.append(sum(b[1] for b in here) + scratch_per_op[i])
    todo = sorted(bufs, key=lambda b: (-b[1], b[2], b[0]))
    placed: list[Placement] = []
    for tensors, size, first, last in todo:
        need = _align(size, alignment)
        best: tuple[int, Bank] | None = None  # (bytes over, bank) where it came closest
        for bank in banks:
            offset = _lowest_offset(placed, bank.name, need, first, last, alignment)
            if offset + need <= bank.room:
                placed.append(Placement(tensors, bank.name, offset, size, first, last))
                break
            over = offset + need - bank.room
            if best is None or over < best[0]:
                best = (over, bank)
        else:
            _oom(graph, banks, tensors, size, best, live_bytes, live_tensors, scratch_per_op)
    if scratch:  # one region after the activations of the first bank with room for it
        best = None
        for bank in banks:
            offset = max((_align(p.offset + p.size, alignment) for p in placed
                          if p.bank == bank.name), default=0)
            if offset + scratch <= bank.room:
                placed.append(Placement((SCRATCH,), bank.name, offset, scratch, -1, n))
                break
            over = offset + scratch - bank.room
            if best is None or over < best[0]:
                best = (over, bank)
        else:
            _oom(graph, banks, (SCRATCH,), scratch, best, live_bytes, live_tensors,
                 scratch_per_op)
    arena = {b.name: 0 for b in banks}
    for p in placed:
        if p.tensors != (SCRATCH,):
            arena[p.bank] = max(arena[p.bank], _align(p.offset + p.size, alignment))
    result = MemoryPlan(graph.name, variant, tuple(placed), arena, scratch, scratch_per_op,
                        tuple(live_bytes), tuple(live_tensors), {b.name: b.size for b in banks},
                        {b.name: b.reserved for b in banks})
    result.check()
    return result


def _oom(graph: Graph, banks: Sequence[Bank], tensors: tuple[int, ...], size: int,
         best: tuple[int, Bank] | None, live_bytes: list[int],
         live_tensors: list[tuple[int, ...]], scratch_per_op: tuple[int, ...]) -> None:
    n = len(live_bytes)
    peak = max(range(n), key=live_bytes.__getitem__, default=0)
    name = ("scratch" if tensors == (SCRATCH,)
            else "/".join(graph.tensors[t].name for t in tensors))
    live = [f"{graph.tensors[t].name} ({graph.tensors[t].nbytes} B)"
            for t in live_tensors[peak]] if n else []
    if n and scratch_per_op[peak]:
        live.append(f"scratch ({scratch_per_op[peak]} B)")
    over, bank = best if best is not None else (size, None)
    raise ArenaDoesNotFit(graph.name, name, size, over, peak, live_bytes[peak] if n else 0, live,
                          banks, bank)


def _lowest_offset(placed: Sequence[Placement], bank: str, size: int, first: int, last: int,
                   alignment: int) -> int:
    """Lowest aligned offset in ``bank`` where ``size`` bytes overlap no buffer live at the
    same time (TFLite Micro's greedy search over the gaps between placed buffers)."""
    busy = sorted((p.offset, p.offset + _align(p.size, alignment)) for p in placed
                  if p.bank == bank and p.first <= last and first <= p.last)
    offset = 0
    for start, end in busy:
        if offset + size <= start:
            break
        offset = max(offset, end)
    return offset


def board_banks(board) -> list[Bank]:
    """The arena banks of an :class:`atomsim.boards.Board`, in order of preference: its
    ``banks`` (the data RAM region first, then the banks that hold nothing but arena), each
    named after the platform memories it spans."""
    return [Bank("+".join(r.memories) or r.name, r.size, r.address) for r in board.banks]
