"""Whole networks as firmware: one ELF per (network, board, kernel variant), run on a target.

:func:`build_network` plans the graph's memory for the board (atomsim.nn.planner), turns every
op into the kernel call the numpy interpreter makes (``interpreter.kernel_call``) and writes a
generated C model file: the weights, biases and quantization constants as ``const`` arrays in
flash, the layer table (``atomsim_layers``, firmware/network/atomsim_network.h) initialised by
field name, and the arena of the board's first SRAM bank (the ``ram`` region, which also holds
.data and .bss) as one ``.noinit`` array sized to the plan plus a guard. The other banks of the
board (``[[<board>.banks]]``, e.g. SRAM1-3 and SRAM4 of the STM32H743) hold nothing but arena:
their tensors are addressed from the bank's base address, with the same guard after the planned
part of each bank. The planner gets every bank less what the firmware keeps there besides the
arena (:func:`network_banks`: static data and guard, read from the ELF), so a plan that fits
links. It is built
with firmware/network/network.c (walks the table, a marker pair around every layer) and the
kernels of the chosen variant.

:func:`run_network` places the input in the arena, paints the rest of the arena and the guards
(one per bank used), runs, reads the output and checks every guard: a write past the planned
arena of any bank is an :class:`ArenaOverrun`. Per-layer cycles come from the markers; Flash
is split exactly into weights (the ``atomsim_w*`` arrays), graph (the layer table) and code
(everything else).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from elftools.elf.elffile import ELFFile

from atomsim.boards import Board
from atomsim.core.errors import AtomSimError, ConfigError, DoesNotFit, FirmwareError
from atomsim.core.paths import FIRMWARE_DIR, build_dir
from atomsim.emulator.machine import Machine
from atomsim.nn import interpreter, registry
from atomsim.nn.graph import Graph
from atomsim.nn.planner import SCRATCH, Bank, MemoryPlan, board_banks, plan
from atomsim.profiling.profiler import (
    DEFAULT_VARIANT,
    KERNELS_DIR,
    MAX_INSTRUCTIONS,
    kernel_sources,
)
from atomsim.target.backend import Backend, RunResult
from atomsim.target.elf import load as load_elf
from atomsim.target.firmware import build

NETWORK_DIR = FIRMWARE_DIR / "network"
GUARD_BYTES = 64  # after the planned arena; must still hold GUARD_FILL after the run
GUARD_FILL = 0xA5
WEIGHT_PREFIX = "atomsim_w"
GRAPH_SYMBOLS = ("atomsim_layers", "atomsim_nlayers")


class ArenaOverrun(FirmwareError):
    """The firmware wrote outside the planned arena (the guard after it changed)."""

    exit_code = 16
    status = "arena-overrun"

    def __init__(self, address: int, count: int):
        self.address, self.count = address, count
        super().__init__(f"arena overrun: {count} guard byte(s) after the planned arena "
                         f"changed, first at 0x{address:08X}")


@dataclass(frozen=True)
class Layer:
    """One layer of the firmware: the graph op it runs and its kernel."""

    op_index: int
    kind: str
    kernel: str


@dataclass
class NetworkImage:
    """A built network firmware and what the host needs to drive it."""

    elf: Path
    graph: Graph
    board: Board
    variant: str
    plan: MemoryPlan
    layers: tuple[Layer, ...]
    arena_bytes: int  # planned: activations and scratch over all banks (guards not included)
    flash: dict[str, int] = field(default_factory=dict)  # weights / graph / code / total
    # per bank used: (base address, or None for the .noinit array in the first bank; bytes)
    bank_arenas: dict[str, tuple[int | None, int]] = field(default_factory=dict)

    @property
    def primary_arena_bytes(self) -> int:
        """The planned part of the ``atomsim_arena`` array (first bank; guard not included)."""
        return sum(n for base, n in self.bank_arenas.values() if base is None)


@dataclass
class NetworkRun:
    """One inference on the target."""

    outputs: list[np.ndarray]
    layer_cycles: list[int]
    layer_instructions: list[int]
    cycles: int  # first marker to last marker
    instructions: int
    stack_bytes: int
    static_bytes: int  # .data + .bss besides the arena
    arena_bytes: int  # the planned arena (activations + scratch) the firmware holds
    run: RunResult = field(repr=False)

    @property
    def peak_sram_bytes(self) -> int:
        """Arena (with scratch) + static data + the stack's high-water mark, as measured."""
        return self.arena_bytes + self.static_bytes + self.stack_bytes


def _c_array(name: str, ctype: str, values: np.ndarray) -> str:
    flat = np.asarray(values).reshape(-1)
    body = ",".join(str(int(v)) for v in flat)
    return (f"const {ctype} {name}[{max(len(flat), 1)}] __attribute__((aligned(8))) = "
            f"{{{body or '0'}}};\n")


def _dims(d) -> str:
    return "{" + ", ".join(str(int(v)) for v in d) + "}"


NETWORK_OPS = ("softmax", "logistic")  # ops of firmware/network/network_ops.c, no atom


def logistic_params(s_in: float, zp_in: int) -> tuple[int, int, int, int]:
    """The params of ``atomsim_net_logistic_s8``: (input zero point, range radius, multiplier,
    shift), TFLite's Prepare() values (``interpreter.logistic_params``) held to int32 without
    changing any int8 result: |input - zero point| <= 255, so a radius above 256 saturates
    nothing and is stored as 256; a shift beyond ±31 only happens where it cannot matter (a
    radius of 0 above, a rescale that rounds every input to 0 below), so it is stored as ±31."""
    multiplier, shift, radius = interpreter.logistic_params(s_in)
    if not 0 < multiplier < 1 << 31:
        raise ConfigError(f"logistic: input scale {s_in!r} has no int32 multiplier "
                          f"({multiplier})")
    return int(zp_in), min(radius, 256), multiplier, max(-31, min(shift, 31))


def _layer_calls(graph: Graph) -> list[tuple[int, str, object]]:
    """(op index, kernel name, call) for every op that runs code; reshapes are views. The
    network ops (softmax, logistic) carry their params tuple instead of a KernelCall."""
    out = []
    for i, op in enumerate(graph.ops):
        if op.kind == "reshape":
            continue
        if op.kind in NETWORK_OPS:
            s_in, zp_in = graph.tensors[op.inputs[0]].quant.per_tensor
            s_out, zp_out = graph.tensors[op.outputs[0]].quant.per_tensor
            if (s_out, zp_out) != (1 / 256, -128):
                raise ConfigError(f"{graph.name}: op {i} ({op.kind}): output must be scale "
                                  f"1/256, zero point -128 (TFLite int8), got {s_out}, {zp_out}")
            params = (interpreter.softmax_params(s_in, op.param("beta", 1.0))
                      if op.kind == "softmax" else logistic_params(s_in, zp_in))
            out.append((i, op.kind, params))
        elif op.kind in interpreter.KERNEL_OF:
            out.append((i, interpreter.KERNEL_OF[op.kind], interpreter.kernel_call(graph, i)))
        else:
            raise ConfigError(f"{graph.name}: op {i} ({op.kind}) has no firmware kernel; the "
                              "network firmware runs the atom kernels, softmax and logistic")
    return out


def bank_arenas(mem: MemoryPlan, banks: Sequence[Bank] | None = None
                ) -> dict[str, tuple[int | None, int]]:
    """Per bank the plan uses: (base address, planned bytes rounded to 8). The first of
    ``banks`` is the ``atomsim_arena`` array (base None); the others are addressed from their
    base. Without ``banks`` (or for a plan over banks the board does not name) the plan must
    use one bank, which becomes the array."""
    used: dict[str, int] = {}
    for p in mem.placements:
        used[p.bank] = max(used.get(p.bank, 0), (p.offset + p.size + 7) & ~7)
    by_name = {b.name: b for b in banks or ()}
    if banks and set(used) <= set(by_name):
        first = banks[0].name
        return {name: (None if name == first else by_name[name].address, n)
                for name, n in sorted(used.items(), key=lambda kv: list(by_name).index(kv[0]))}
    if len(used) > 1:
        raise ConfigError(f"{mem.graph}: the plan uses banks {sorted(used)}, not all of them "
                          f"banks of the board ({', '.join(by_name) or 'none given'})")
    return {name: (None, n) for name, n in used.items()}


def generate_model_c(graph: Graph, mem: MemoryPlan, variant: str,
                     banks: Sequence[Bank] | None = None) -> tuple[str, int]:
    """The generated model file for ``graph`` under plan ``mem`` over ``banks`` (the first one
    is the ``atomsim_arena`` array); returns (C text, planned arena bytes over all banks)."""
    arenas = bank_arenas(mem, banks)
    base = {}
    lines = ["/* Generated by atomsim.profiling.network: do not edit. */",
             '#include "atomsim_network.h"', ""]
    primary = sum(n for b, n in arenas.values() if b is None)
    lines += [f"#define ATOMSIM_ARENA_BYTES {primary}",
              f"#define ATOMSIM_GUARD_BYTES {GUARD_BYTES}",
              "int8_t atomsim_arena[ATOMSIM_ARENA_BYTES + ATOMSIM_GUARD_BYTES] "
              "__attribute__((aligned(8), used, section(\".noinit\")));"]
    for k, (name, (address, _)) in enumerate(arenas.items()):
        if address is None:
            base[name] = "atomsim_arena"
        else:  # a bank that holds nothing but arena: addressed from its base
            base[name] = f"ATOMSIM_BANK{k}"
            lines.append(f"#define ATOMSIM_BANK{k} ((int8_t *)0x{address:08X}u) /* {name} */")
    lines.append("")
    arena = sum(n for _, n in arenas.values())
    where = {t: f"{base[p.bank]} + {p.offset}" for p in mem.placements for t in p.tensors}
    scratch = where.get(SCRATCH)
    layers = []
    for n, (i, kernel, call) in enumerate(_layer_calls(graph)):
        op = graph.ops[i]
        acts = graph.activation_inputs(op)
        fields = [f".op = ATOMSIM_OP_{kernel.upper()}" if kernel in NETWORK_OPS
                  else f".op = {registry.operator(kernel).c_id}"]

        def act(t: int) -> str:
            return where[t]

        fields.append(f".input = {act(acts[0])}")
        fields.append(f".output = {act(op.outputs[0])}")
        if kernel in NETWORK_OPS:
            fields.append(f".in_dims = {_dims(graph.tensors[acts[0]].nhwc)}")
            fields.append(".params = {" + ", ".join(str(v) for v in call) + "}")
            layers.append("{" + ", ".join(fields) + "}")
            continue
        if len(acts) > 1:
            fields.append(f".input2 = {act(acts[1])}")
        fields += [f".in_dims = {_dims(call.in_dims)}", f".out_dims = {_dims(call.out_dims)}",
                   f".in2_dims = {_dims(call.in2_dims)}",
                   f".filter_dims = {_dims(call.filter_dims)}"]
        if call.params is not None:
            values = dataclasses.astuple(call.params)
            fields.append(".params = {" + ", ".join(str(int(v)) for v in values) + "}")
        for name, ctype, array in (("filter", "int8_t", call.filter),
                                   ("bias", "int32_t", call.bias),
                                   ("multiplier", "int32_t", call.multiplier),
                                   ("shift", "int32_t", call.shift)):
            if array is not None:
                symbol = f"{WEIGHT_PREFIX}{n}_{name}"
                lines.append(_c_array(symbol, ctype, array))
                fields.append(f".{name} = {symbol}")
        size = registry.scratch_bytes(call, variant)
        if size:
            fields += [f".scratch = {scratch}", f".scratch_size = {size}"]
        layers.append("{" + ", ".join(fields) + "}")
    # no layer (network_banks' probe): one entry that is never run keeps the arena linked
    lines.append("const atomsim_layer_t atomsim_layers[] = {\n    "
                 + ",\n    ".join(layers or ["{.input = atomsim_arena}"]) + "\n};")
    lines.append(f"const uint32_t atomsim_nlayers = {len(layers)};")
    return "\n".join(lines) + "\n", arena


def build_network(graph: Graph, board: Board, variant: str = DEFAULT_VARIANT, *,
                  memory_plan: MemoryPlan | None = None) -> NetworkImage:
    """Plan ``graph`` for ``board`` (an OOM raises ArenaDoesNotFit) and build its firmware.

    ``memory_plan`` overrides the planner (tests use it to prove that overruns are caught).
    """
    if not graph.quantized:
        raise ConfigError(f"{graph.name}: the graph has no weights; give it seeded ones "
                          "(lowering.with_random_weights) or load a .tflite")
    banks = board_banks(board)
    layers = tuple(Layer(i, graph.ops[i].kind, k) for i, k, _ in _layer_calls(graph))
    used = {layer.kernel for layer in layers}
    mem = memory_plan if memory_plan is not None else plan(
        graph, network_banks(board, variant, used), variant=variant)
    if mem.variant != variant:
        raise ConfigError(f"{graph.name}: the memory plan is for kernel variant "
                          f"{mem.variant!r}, the firmware for {variant!r}")
    # Then the weights alone must fit the flash: refuse before generating and compiling megabytes of
    # C (a huge config otherwise failed only at link time, after minutes).
    const = sum(t.nbytes for t in graph.tensors if t.const)
    if const > board.flash.size:
        raise DoesNotFit("flash", const, board.flash.size,
                         what=f"{graph.name}'s constant data (weights, bias, tables)")
    text, arena = generate_model_c(graph, mem, variant, banks)
    elf = _link(board, variant, text, used)
    image = NetworkImage(elf, graph, board, variant, mem, layers, arena,
                         bank_arenas=bank_arenas(mem, banks))
    image.flash = flash_breakdown(elf)
    return image


def _link(board: Board, variant: str, text: str, used: Set[str] | None) -> Path:
    """Write the model file ``text`` (named by its hash) and build it with the network firmware
    and the kernels of ``variant``; only the kernels named in ``used`` (None: all) are linked."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    src_dir = build_dir() / "network-src" / board.id / variant
    src_dir.mkdir(parents=True, exist_ok=True)
    model_c = src_dir / f"model_{digest}.c"
    if not model_c.exists():
        tmp = model_c.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(model_c)
    include = [NETWORK_DIR, KERNELS_DIR / "include", KERNELS_DIR / "reference"]
    if variant != "reference":
        include.insert(2, KERNELS_DIR / variant)
    names = (*(op.name for op in registry.OPERATORS), *NETWORK_OPS)
    if used is not None and not set(used) <= set(names):
        raise ConfigError(f"no network kernel named {', '.join(sorted(set(used) - set(names)))}"
                          f" (kernels: {', '.join(names)})")
    uses = [f"-DATOMSIM_USES_{name.upper()}={int(used is None or name in used)}"
            for name in names]
    return build(f"network-{variant}", board,
                 [NETWORK_DIR / "network.c", NETWORK_DIR / "network_ops.c", model_c,
                  *kernel_sources(variant)], include_dirs=include, extra_flags=uses)


def graph_kernels(graph: Graph) -> set[str]:
    """The kernels the network firmware of ``graph`` links (``build_network``'s ``used``), from
    the op kinds alone, so shape-only graphs (no weights yet) have them too."""
    return {op.kind if op.kind in NETWORK_OPS else interpreter.KERNEL_OF[op.kind]
            for op in graph.ops if op.kind in NETWORK_OPS or op.kind in interpreter.KERNEL_OF}


def probe_firmware(board: Board, variant: str = DEFAULT_VARIANT,
                   used: Set[str] | None = None) -> Path:
    """The network firmware with kernels ``used`` (None: all) and an empty layer table (one
    cached build per board, variant and kernel set): what the firmware costs besides any
    network — its code in Flash (``flash_breakdown``) and its static data in the first bank."""
    empty = MemoryPlan("reserved-probe", variant, (), {}, 0, (), (), ())
    text, _ = generate_model_c(Graph(name="reserved-probe"), empty, variant, board_banks(board))
    return _link(board, variant, text, used)


def network_banks(board: Board, variant: str = DEFAULT_VARIANT,
                  used: Set[str] | None = None) -> list[Bank]:
    """The board's SRAM banks as the network firmware leaves them to the planner, each with the
    bytes it keeps there besides the planned arena (``Bank.reserved``).

    First bank: everything the linker places in the ``ram`` region when the arena is empty —
    static data (.data, .bss), alignment, and the ``GUARD_BYTES`` inside ``atomsim_arena`` —
    read (``_end``) from the ELF of this very firmware with kernels ``used`` (None: all) and an
    empty layer table (one cached build per board, variant and kernel set). The others: the
    guard after the planned part. Both leave a room that is a multiple of 8 (the planned part
    of a bank is rounded to 8 bytes), so a plan that fits links and one byte more is an OOM of
    the plan, naming the bank and the bytes.
    """
    banks = board_banks(board)
    fw = load_elf(probe_firmware(board, variant, used))
    end = fw.symbol("_end")
    if end is None or fw.symbol("atomsim_arena") is None:  # no kernel used: nothing reads it
        raise AtomSimError(f"{fw.path} lacks _end or atomsim_arena: cannot measure what the "
                           f"network firmware keeps in {banks[0].name} (kernels: {used})")
    taken = [end - banks[0].address, *(GUARD_BYTES for _ in banks[1:])]
    return [dataclasses.replace(b, reserved=min(b.size, b.size - (b.size - t) // 8 * 8))
            for b, t in zip(banks, taken, strict=True)]


def flash_breakdown(elf: Path) -> dict[str, int]:
    """Flash of the image split exactly: weights (atomsim_w* arrays), graph (the layer table),
    code (vectors, code, other read-only data, .data initialisers and alignment padding: the
    rest). The total is what the loadable segments occupy (``__flash_used_end`` − origin)."""
    with open(elf, "rb") as fh:
        f = ELFFile(fh)
        total = 0
        for seg in f.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_filesz"]:
                total += seg["p_filesz"]
        symtab = f.get_section_by_name(".symtab")
        weights = graph_bytes = 0
        for sym in symtab.iter_symbols():
            if sym["st_info"]["type"] != "STT_OBJECT":
                continue
            if sym.name.startswith(WEIGHT_PREFIX):
                weights += sym["st_size"]
            elif sym.name in GRAPH_SYMBOLS:
                graph_bytes += sym["st_size"]
    return {"weights": weights, "graph": graph_bytes, "code": total - weights - graph_bytes,
            "total": total}


def run_network(image: NetworkImage, inputs: np.ndarray | list[np.ndarray],
                target: Backend | None = None, *, loaded=None) -> NetworkRun:
    """Run one inference: input into the arena, run, output back, guard checked.

    ``loaded``: the Firmware that ``target.load(image.elf)`` returned earlier; the image is
    then not loaded again (a reset re-runs the startup code, the arena is rewritten), so many
    inputs run on one loaded firmware.
    """
    g = image.graph
    if isinstance(inputs, np.ndarray):
        inputs = [inputs]
    if loaded is not None and target is None:
        raise ConfigError("run_network: loaded= needs the target it was loaded on")
    target = target if target is not None else Machine(image.board)
    fw = loaded if loaded is not None else target.load(image.elf)
    array = fw.symbol("atomsim_arena")
    if array is None:
        raise AtomSimError(f"{image.elf} lacks atomsim_arena")
    arenas = image.bank_arenas or {"arena": (None, image.arena_bytes)}
    base = {name: array if address is None else address
            for name, (address, _) in arenas.items()}
    where = {t: base[p.bank] + p.offset for p in image.plan.placements for t in p.tensors}
    guards = []  # the first guard byte of every bank used
    for address, n in arenas.values():
        start = array if address is None else address
        target.write_memory(start, bytes([GUARD_FILL]) * (n + GUARD_BYTES))
        guards.append(start + n)
    for tid, x in zip(g.inputs, inputs, strict=True):
        data = np.ascontiguousarray(x, dtype=np.int8).tobytes()
        if len(data) != g.tensors[tid].size:
            raise ConfigError(f"{g.name}: input {g.tensors[tid].name} needs "
                              f"{g.tensors[tid].size} int8 values, got {len(data)}")
        target.write_memory(where[tid], data)
    target.reset()
    run = target.run(MAX_INSTRUCTIONS * 64)
    run.raise_for_status()
    for start in guards:
        guard = target.read_memory(start, GUARD_BYTES)
        changed = [k for k, b in enumerate(guard) if b != GUARD_FILL]
        if changed:
            raise ArenaOverrun(start + changed[0], len(changed))
    marks = run.markers
    begins = [m for m in marks if m.kind == "begin"]
    ends = [m for m in marks if m.kind == "end"]
    if len(begins) != len(image.layers) or len(ends) != len(image.layers):
        raise AtomSimError(f"{image.elf.name}: {len(begins)} layer markers for "
                           f"{len(image.layers)} layers")
    outputs = []
    for tid in g.outputs:
        t = g.tensors[tid]
        raw = target.read_memory(where[tid], t.size)
        outputs.append(np.frombuffer(raw, dtype=np.int8).reshape(t.shape).copy())
    primary = sum(n for address, n in arenas.values() if address is None)
    static = fw.sizes.static_ram - (primary + GUARD_BYTES)
    return NetworkRun(
        outputs, [e.cycles - b.cycles for b, e in zip(begins, ends, strict=True)],
        [e.instructions - b.instructions for b, e in zip(begins, ends, strict=True)],
        ends[-1].cycles - begins[0].cycles, ends[-1].instructions - begins[0].instructions,
        run.stack_bytes, static, image.arena_bytes, run)


# ---- network-level additivity -----------------------------------------------------------------

@dataclass(frozen=True)
class LayerAdditivity:
    """One layer: its cycles in the whole-network run and its atom's from AtomDB."""

    op_index: int
    kind: str
    network_cycles: int
    atom_cycles: int | None  # None: no atom (softmax, logistic)


@dataclass(frozen=True)
class NetworkAdditivity:
    """Whole-network cycles vs the sum of its atoms (AtomDB, measured one atom per run)."""

    board: str
    variant: str
    whole_cycles: int  # first layer marker to last
    atoms_cycles: int  # sum over the layers that are atoms
    other_cycles: int  # layers with no atom (softmax, logistic), as measured in the run
    layers: tuple[LayerAdditivity, ...]

    @property
    def deviation(self) -> float:
        """(whole − (atoms + other)) / (atoms + other)."""
        expected = self.atoms_cycles + self.other_cycles
        return (self.whole_cycles - expected) / expected


def network_additivity(image: NetworkImage, result: NetworkRun, db, profiler=None
                       ) -> NetworkAdditivity:
    """Compare a network run with the sum of its atoms in ``db`` (an AtomDB); atoms not yet
    measured on this board and variant are profiled on demand (harness, one atom per run)
    and stored first."""
    from atomsim.profiling.profiler import Profiler

    g, board = image.graph, image.board
    atoms = {layer.op_index: g.atom(layer.op_index) for layer in image.layers}
    wanted = [a for a in atoms.values() if a is not None]
    missing = set(db.missing_keys(board.id, [a.key for a in wanted], image.variant,
                                  source="emulator"))
    if missing:
        own = profiler is None
        prof = profiler if profiler is not None else Profiler(board, image.variant)
        try:
            todo = {a.key: a for a in wanted if a.key in missing}.values()
            db.upsert_measurements([prof.profile(a) for a in todo])
        finally:
            if own:
                prof.close()
    cycles = {}
    for a in wanted:
        m = db.lookup(board.id, a, variant=image.variant, source="emulator")
        cycles[a.key] = m.cycles
    rows = []
    for layer, net_cycles in zip(image.layers, result.layer_cycles, strict=True):
        atom = atoms[layer.op_index]
        rows.append(LayerAdditivity(layer.op_index, layer.kind, net_cycles,
                                    None if atom is None else cycles[atom.key]))
    return NetworkAdditivity(
        board.id, image.variant, result.cycles,
        sum(r.atom_cycles for r in rows if r.atom_cycles is not None),
        sum(r.network_cycles for r in rows if r.atom_cycles is None), tuple(rows))


# ---- the per-layer profile of a model on a board ------------------------------------------------

@dataclass(frozen=True)
class LayerRow:
    """One layer of a profiled network (the per-layer table)."""

    index: int  # graph op index
    kind: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    macs: int
    cycles: int
    ms: float
    share: float  # of the network's cycles
    live_bytes: int  # activations live during the layer + its scratch (the plan)
    weight_bytes: int  # the atom's Flash (int8 weights + int32 bias)


@dataclass
class BoardProfile:
    """A model on one board: the paper's Table 3 columns and how each one is made up."""

    model: str
    board: str
    variant: str
    status: str  # "ok" or "oom"
    macs: int
    params: int
    message: str = ""
    flash: dict[str, int] = field(default_factory=dict)  # weights / graph / code / total
    sram: dict[str, int] = field(default_factory=dict)  # arena / scratch / static / stack / peak
    latency_ms: float | None = None
    cycles: int | None = None
    instructions: int | None = None
    clock_hz: int = 0
    layers: list[LayerRow] = field(default_factory=list)
    exact: bool | None = None  # output == the numpy reference of the graph
    additivity: float | None = None  # whole vs sum of atoms (when asked for)
    banks: dict[str, dict[str, int]] = field(default_factory=dict)  # address / size / used

    def to_dict(self) -> dict:
        """Plain data for --json."""
        out = dataclasses.asdict(self)
        out["layers"] = [dataclasses.asdict(r) for r in self.layers]
        return out


def profile_model(graph: Graph, board: Board, variant: str = DEFAULT_VARIANT, *,
                  seed: int = 0, db=None) -> BoardProfile:
    """Plan, build and run ``graph`` on ``board`` with a seeded random input; per-layer
    figures, totals, a bit-exactness check against the numpy interpreter, and (with ``db``)
    network-level additivity. A network that does not fit is a profile with status "oom"."""
    common = {"model": graph.name, "board": board.id, "variant": variant,
              "macs": graph.macs(), "params": graph.param_count(), "clock_hz": board.clock_hz}
    try:
        image = build_network(graph, board, variant)
    except DoesNotFit as exc:  # the arena (planner), the weights or the linked image
        return BoardProfile(status="oom", message=str(exc), **common)
    x = np.random.default_rng(seed).integers(
        -128, 128, size=graph.tensors[graph.inputs[0]].size).astype(np.int8)
    result = run_network(image, x)
    want = interpreter.run(graph, x)
    exact = all(np.array_equal(a, b) for a, b in zip(result.outputs, want, strict=True))
    mem = image.plan
    scratch = mem.scratch_bytes
    sram = {"arena": image.arena_bytes - scratch, "scratch": scratch,
            "static": result.static_bytes, "stack": result.stack_bytes,
            "peak": result.peak_sram_bytes}
    rows = []
    total = max(result.cycles, 1)
    for layer, cycles in zip(image.layers, result.layer_cycles, strict=True):
        i = layer.op_index
        op = graph.ops[i]
        atom = graph.atom(i)
        rows.append(LayerRow(
            i, op.kind, graph.tensors[graph.activation_inputs(op)[0]].shape,
            graph.tensors[op.outputs[0]].shape, atom.macs if atom else 0, cycles,
            cycles / board.clock_hz * 1e3, cycles / total, mem.live_bytes[i],
            atom.flash_bytes if atom else 0))
    profile = BoardProfile(
        status="ok", flash=image.flash, sram=sram, latency_ms=result.cycles / board.clock_hz
        * 1e3, cycles=result.cycles, instructions=result.instructions, layers=rows,
        exact=exact, banks=_bank_report(image), **common)
    if db is not None:
        profile.additivity = network_additivity(image, result, db).deviation
    return profile


def _bank_report(image: NetworkImage) -> dict[str, dict[str, int]]:
    """Per SRAM bank of the board: its address, size and the bytes of arena the plan uses."""
    usage = image.plan.bank_usage()
    return {b.name: {"address": b.address, "size": b.size, "used": usage.get(b.name, (0, 0))[0]}
            for b in board_banks(image.board)}


def plot_profile(profiles: list[BoardProfile], path: str | Path) -> Path:
    """SRAM in use and cumulative Flash across the layers (the paper's Figure 4 style), one
    line per board that runs the model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [p for p in profiles if p.status == "ok"]
    if not ok:
        raise ConfigError("nothing to plot: the model fits none of the boards")
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    first = ok[0]
    for p in ok:
        ax1.plot([r.live_bytes / 1024 for r in p.layers], label=p.board)
    ax1.set_ylabel("SRAM in use (KB)")
    ax1.legend()
    flash = np.cumsum([r.weight_bytes for r in first.layers]) / 1024
    code = first.flash["code"] / 1024 + first.flash["graph"] / 1024
    ax2.plot(flash + code, color="tab:red")
    ax2.set_ylabel("cumulative Flash (KB)")
    ax2.set_xlabel("layer")
    labels = [r.kind for r in first.layers]
    ax2.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    fig.suptitle(f"{first.model}: SRAM and Flash across the layers")
    fig.tight_layout()
    out = Path(path)
    try:
        fig.savefig(out, dpi=120)
    except OSError as exc:
        raise ConfigError(f"--plot {out}: cannot write the plot: {exc}") from None
    finally:
        plt.close(fig)
    return out
