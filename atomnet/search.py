"""Zero-cost search under latency, peak-SRAM and Flash limits, from AtomDB.

Objective: MACs (the paper's zero-cost accuracy proxy). Constraints, per candidate:

* **latency** = sum over the candidate's atoms of their AtomDB latency on the board (kernel
  additivity). When the AtomDB file holds a calibration of the board (the calibration
  package's ``calibrations`` / ``calibrated_latency`` tables), the calibrated latency is used,
  by default the upper end of its interval (so "fits" means fits); atoms the calibration has
  no value for fall back to the raw emulated latency, and the result says how many did.
* **peak SRAM** = activation arena + kernel scratch + the network firmware's static RAM and
  stack on that board, as ``run_network`` measures it. The arena must fit the banks the network
  firmware leaves to its planner (:func:`atomsim.profiling.network.network_banks`: each bank
  less what the firmware keeps there, static data and guard), the same banks
  ``build_network`` plans over, so a candidate the search keeps also plans and links. During the
  search the arena is estimated as the largest arena the
  planner's greedy rule gives any two consecutive blocks (:func:`pair_arena`, cached per
  pair); the scratch is the largest of any op for the search's kernel variant. The estimate is
  not proven (a greedy plan of a chain need not be the max over its pairs); it equalled the
  real planner on every random candidate checked (benchmarks/search_speed.py), and the front's
  points are planned with the real planner (:func:`atomsim.nn.planner.plan`) over those banks
  anyway: a point whose plan breaks the limit leaves and the front is taken again from the
  archive.
* **Flash** = the firmware's weight arrays (int8 filters, int32 bias, per-channel multiplier
  and shift, the hard-sigmoid table; each rounded up to its 8-byte alignment) + the layer table
  + the code of the firmware with the kernels the candidate uses: the entry size measured once
  per board from a small network firmware (:func:`runtime_costs`, cached in the AtomDB file),
  the code per kernel set from the network firmware with that set and no layer
  (:func:`atomsim.profiling.network.probe_firmware`, one cached build per set the space can
  reach).

Block-level costs are cached per (block type, c_in, resolution, c_out, e, k, stride, SE), stage
costs per (stage, c_in, resolution, choice) and arenas per block pair, so one candidate costs a
dozen dictionary look-ups. Atoms missing from AtomDB are profiled on demand through the sweep
machinery (:func:`atomsim.profiling.sweep.sweep`) and stored.

Strategies: ``exhaustive`` (depth-first over every candidate of a grid, every other width by
default, pruning a prefix as soon as its Flash, SRAM or latency alone break a limit — all
three only grow along the chain), ``random`` and ``evolution`` (regularized evolution, Real et
al. 2019, one run per resolution: the oldest member leaves, a child of the best of a random
sample re-draws one to three stage genes). Every strategy feeds one archive (the candidates
with the most MACs per latency bin, all limits met) from which the Pareto front is taken.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from atomnet.space import Candidate, Space, reduced
from atomsim.boards import Board, get_board
from atomsim.core.errors import ConfigError, DoesNotFit
from atomsim.db import AtomDB
from atomsim.nn.graph import Graph
from atomsim.nn.lowering import GraphBuilder, Tensor, with_random_weights
from atomsim.nn.planner import Bank, plan

STRATEGIES = ("exhaustive", "random", "evolution")
LOWERING = {"conv": "conv", "mobile_one": "sep", "mbconvnext": "convnext", "mbconv": "mbconv"}
ALIGN = 8  # generate_model_c aligns every weight array to 8 bytes
RUNTIME_TABLE = """
CREATE TABLE IF NOT EXISTS atomnet_runtime (
    board          TEXT NOT NULL,
    kernel_variant TEXT NOT NULL,
    firmware_key   TEXT NOT NULL,
    code_bytes     INTEGER NOT NULL,
    layer_bytes    INTEGER NOT NULL,
    static_bytes   INTEGER NOT NULL,
    stack_bytes    INTEGER NOT NULL,
    created_at     TEXT NOT NULL,
    PRIMARY KEY (board, kernel_variant, firmware_key)
);
"""


class SearchError(ConfigError):
    """A search that cannot run: bad limits, or no candidate meets them."""

    status = "search-failed"


@dataclass(frozen=True)
class Limits:
    """The three limits of a search (ms, bytes, bytes)."""

    latency_ms: float
    sram_bytes: int
    flash_bytes: int

    def __post_init__(self) -> None:
        for name in ("latency_ms", "sram_bytes", "flash_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                    or v <= 0:
                raise SearchError(f"limit {name} must be a positive number, got {v!r}")


# -- block costs ------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlockCost:
    """Board-independent figures of one block (or the head), from its graph."""

    atoms: tuple[str, ...]  # atom keys, repeats kept
    macs: int
    weight_bytes: int  # firmware weight arrays, each rounded up to ALIGN
    act_peak: int  # largest live activation bytes at any op (planner lifetimes)
    scratch: int  # largest kernel scratch of any op
    layers: int  # firmware layers (ops that run code)
    out: Tensor
    # the planner's buffers: (size, first op, last op, tensor ids); the block input starts at
    # op -1, the output lasts to op n_ops (graph input / output)
    buffers: tuple[tuple[int, int, int, tuple[int, ...]], ...] = ()
    n_ops: int = 0
    input_buffer: int = 0
    output_buffer: int = 0
    kernels: int = 0  # the firmware kernels the block runs, a bit mask (kernel_mask)


_KERNEL_BITS: dict[str, int] = {}  # kernel name -> its bit in a kernel mask (this process)


def kernel_mask(names) -> int:
    """The bit mask of a set of network-firmware kernel names (bits given out as met)."""
    mask = 0
    for name in names:
        bit = _KERNEL_BITS.setdefault(name, 1 << len(_KERNEL_BITS))
        mask |= bit
    return mask


def kernel_names(mask: int) -> frozenset[str]:
    """The kernel names of a mask (:func:`kernel_mask`)."""
    return frozenset(name for name, bit in _KERNEL_BITS.items() if mask & bit)


def _block_graph(key: tuple) -> tuple[Graph, int]:
    block, c_in, h, c_out, e, k, s, se = key
    b = GraphBuilder(Graph(name="block"))
    x = b.input(Tensor(c_in, h, h))
    if block == "head":
        y = b.head(x, c_out)
    elif block == "conv":
        y = b.conv(x, c_out, k, s, activation="relu6")
    else:
        y = b.block(LOWERING[block], x, c_out, stride=s, kernel=k, expansion=e, se=se,
                    activation="relu6", residual=False if block == "mobile_one" else None,
                    pw_activation="relu6" if block == "mobile_one" else "none")
    b.graph.outputs.append(y)
    return b.graph, y


def _array_bytes(graph: Graph) -> int:
    """Bytes of the firmware's weight arrays (see atomsim.profiling.network.generate_model_c)."""
    total = 0

    def arr(n: int) -> int:
        return (max(n, 1) + ALIGN - 1) // ALIGN * ALIGN

    for op in graph.ops:
        if op.kind in ("conv", "dw", "pw", "fc"):
            c_out = graph.tensors[op.outputs[0]].shape[3]
            total += arr(graph.tensors[op.inputs[1]].size) + 3 * arr(4 * c_out)
        elif op.kind == "hard_sigmoid":
            total += arr(256)
    return total


def block_cost(key: tuple, variant: str = "reference") -> BlockCost:
    """The :class:`BlockCost` of ``key`` = (block, c_in, h, c_out, e, k, stride, se); the
    scratch is that of kernel ``variant``."""
    from atomsim.nn.planner import arena_buffers as _buffers
    from atomsim.profiling.network import graph_kernels

    graph, y = _block_graph(key)
    mem = plan(graph, [Bank("all", 1 << 40)], variant=variant)
    act = [live - s for live, s in zip(mem.live_bytes, mem.scratch_per_op, strict=True)]
    atoms = tuple(a.key for a in graph.atoms())
    layers = sum(1 for op in graph.ops if op.kind != "reshape")
    _, ho, wo, co = graph.tensors[y].shape
    bufs = tuple((size, first, last, ids) for ids, size, first, last in _buffers(graph))
    x = graph.inputs[0]
    i_in = next(i for i, b in enumerate(bufs) if x in b[3])
    i_out = next(i for i, b in enumerate(bufs) if y in b[3])
    return BlockCost(atoms, graph.macs(), _array_bytes(graph), max(act, default=0),
                     mem.scratch_bytes, layers, Tensor(co, ho, wo), bufs, len(graph.ops),
                     i_in, i_out, kernel_mask(graph_kernels(graph)))


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def pair_arena(a: BlockCost, b: BlockCost) -> int:
    """The activation arena the planner's greedy plan gives two consecutive blocks (``a``'s
    output is ``b``'s input): the planner's rule — largest buffer first (ties: earlier first
    use), each at the lowest 4-aligned offset clear of every placed buffer live at the same
    time — on the two blocks' buffers. The arena of a whole chain is estimated as the largest
    of its pairs' (checked against the real planner on the front; see the module doc)."""
    n = a.n_ops
    out = a.buffers[a.output_buffer]
    inp = b.buffers[b.input_buffer]
    bufs = [(size, first, last, (0, ids)) for i, (size, first, last, ids) in
            enumerate(a.buffers) if i != a.output_buffer]
    bufs.append((out[0], out[1], n + inp[2], (0, out[3])))
    bufs += [(size, first + n, last + n, (1, ids)) for i, (size, first, last, ids) in
             enumerate(b.buffers) if i != b.input_buffer]
    bufs.sort(key=lambda t: (-t[0], t[1], t[3]))
    placed: list[tuple[int, int, int, int]] = []  # offset, end, first, last
    top = 0
    for size, first, last, _ in bufs:
        need = _align4(size)
        busy = sorted((o, e) for o, e, f, la in placed if f <= last and first <= la)
        offset = 0
        for start, end in busy:
            if offset + need <= start:
                break
            offset = max(offset, end)
        placed.append((offset, offset + need, first, last))
        top = max(top, offset + size)
    return top


def block_atoms(key: tuple):
    """The Atom objects of a block (for profiling the missing ones)."""
    return _block_graph(key)[0].atoms()


# -- runtime costs per board ----------------------------------------------------------------------

@dataclass(frozen=True)
class RuntimeCosts:
    """What the network firmware adds on a board besides the weights and the arena."""

    code_bytes: int  # vectors, runtime, the probe's kernels, startup (Flash; candidates are
    # costed with the code of their own kernel set, Evaluator.firmware)
    layer_bytes: int  # one entry of the layer table (Flash)
    static_bytes: int  # .data + .bss besides the arena (SRAM; the probe's kernel set)
    stack_bytes: int  # stack high-water mark of a network run (SRAM)


def _firmware_key(variant: str) -> str:
    from atomsim.core.paths import FIRMWARE_DIR

    h = hashlib.sha256(variant.encode())
    for p in sorted(FIRMWARE_DIR.rglob("*")):
        if p.is_file() and p.suffix in (".c", ".h", ".S", ".s", ".ld"):
            h.update(str(p.relative_to(FIRMWARE_DIR)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


PROBE = {"input_resolution": 32, "num_classes": 10, "depth": [1, 1, 1, 2],
         "out_channel": [8, 8, 16, 16],
         "block_type_stage": ["conv", "mobile_one", "mbconv", "mbconvnext"],
         "act_stages": ["relu6"] * 4, "se_stages": [False, False, True, True],
         "stride_stages": [2, 1, 2, 2], "kernel_size": [3, 3, 3, 3], "expand_ratio": [1, 1, 3, 3]}


def runtime_costs(board: Board, variant: str, db: AtomDB, *, log=print) -> RuntimeCosts:
    """Measure (once per board, variant and firmware source; then read from the AtomDB file)
    the runtime's code, layer-table entry, static RAM and stack from a small network that uses
    every kernel the spaces use (conv, dw, pw, pad, add, mul_bcast, hard_sigmoid, global
    pool, fc)."""
    from atomsim.db.records import now
    from atomsim.nn.frontends.stage_config import parse
    from atomsim.nn.lowering import build_graph
    from atomsim.profiling.network import build_network, run_network

    db.ensure_tables("atomnet", RUNTIME_TABLE, version=1)
    key = _firmware_key(variant)
    row = db.connection.execute(
        "SELECT code_bytes, layer_bytes, static_bytes, stack_bytes FROM atomnet_runtime "
        "WHERE board = ? AND kernel_variant = ? AND firmware_key = ?",
        (board.id, variant, key)).fetchone()
    if row is not None:
        return RuntimeCosts(*row)
    log(f"measuring the network runtime on {board.id} (once; cached in {db.path})")
    graph = with_random_weights(build_graph(parse(PROBE, "runtime-probe")), seed=0)
    try:
        image = build_network(graph, board, variant)
    except DoesNotFit as exc:
        raise SearchError(f"the runtime probe network does not fit {board.id}: {exc}") from exc
    x = np.zeros(graph.tensors[graph.inputs[0]].size, dtype=np.int8)
    run = run_network(image, x)
    code = image.flash["total"] - _array_bytes(graph) - image.flash["graph"]
    costs = RuntimeCosts(code, image.flash["graph"] // len(image.layers), run.static_bytes,
                         run.stack_bytes)
    with db.transaction():
        db.connection.execute("INSERT OR REPLACE INTO atomnet_runtime VALUES (?,?,?,?,?,?,?,?)",
                              (board.id, variant, key, *vars(costs).values(), now()))
    return costs


# -- latencies from AtomDB (calibrated when a calibration exists) ----------------------------------

@dataclass
class LatencySource:
    """Per-atom latency on a board: calibrated (interval's upper end) or raw emulated."""

    ms: dict[str, float]
    calibration_id: str | None
    calibrated_atoms: int
    raw_atoms: int

    def describe(self) -> str:
        """One line for people."""
        if self.calibration_id is None:
            return ("no calibration for this board in the AtomDB file: raw emulated latency "
                    f"({self.raw_atoms} atoms)")
        return (f"calibration {self.calibration_id}: upper end of the interval for "
                f"{self.calibrated_atoms} atoms, raw emulated latency for {self.raw_atoms}")


def latest_calibration(db: AtomDB, board: str, variant: str) -> str | None:
    """The id of the newest calibration of ``board`` and kernel ``variant`` in the AtomDB file
    (the calibration package's ``calibrations`` table), or None."""
    con = db.connection
    if con.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = "
                   "'calibrations'").fetchone() is None:
        return None
    row = con.execute("SELECT id FROM calibrations WHERE board = ? AND kernel_variant = ? "
                      "ORDER BY created_at DESC, rowid DESC LIMIT 1", (board, variant)).fetchone()
    return None if row is None else row[0]


def latencies(db: AtomDB, board: str, variant: str, keys: list[str], *,
              calibrated: str = "high") -> LatencySource:
    """Latency per atom key; ``calibrated``: ``high`` (interval upper end), ``mid`` (point
    estimate) or ``off`` (raw emulated)."""
    best = {m.key: m for m in db.measurements(board, variant=variant, source="emulator",
                                              keys=keys)}  # one row per key at this filter
    missing = [k for k in keys if k not in best]
    if missing:
        raise SearchError(f"{len(missing)} atoms still missing on {board} (first {missing[0]})")
    ms = {k: best[k].latency_ms for k in keys}
    cal_id, n_cal = None, 0
    if calibrated != "off":
        cal_id = latest_calibration(db, board, variant)
        if cal_id is not None:
            column = "interval_high_ms" if calibrated == "high" else "calibrated_ms"
            wanted = set(keys)
            for k, v in db.connection.execute(
                    f"SELECT atom_key, {column} FROM calibrated_latency WHERE "
                    "calibration_id = ? AND status = 'ok'", (cal_id,)):
                if k in wanted and v is not None:
                    ms[k] = float(v)
                    n_cal += 1
    return LatencySource(ms, cal_id, n_cal, len(keys) - n_cal)


# -- the evaluator ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Metrics:
    """One candidate's figures (bytes, ms)."""

    macs: int
    latency_ms: float
    sram_bytes: int  # arena estimate + scratch (rounded to 8) + static + stack
    arena_bytes: int  # arena estimate + scratch (must fit the room of the first bank)
    flash_bytes: int
    layers: int

    def fits(self, limits: Limits, board: Board, room: int | None = None) -> bool:
        """All three limits and the board's memories; ``room``: bytes the plan has in the
        board's first bank (``Evaluator.room``: its size less what the network firmware keeps
        there); None: the bank's whole size, an upper bound."""
        return (self.latency_ms <= limits.latency_ms and self.sram_bytes <= limits.sram_bytes
                and self.flash_bytes <= limits.flash_bytes
                and self.arena_bytes <= (board.ram.size if room is None else room)
                and self.flash_bytes <= board.flash.size)


class Evaluator:
    """Costs of candidates of ``space`` on ``board`` from the AtomDB file ``db_path``."""

    def __init__(self, space: Space, board: str | Board, db_path: str | Path, *,
                 variant: str | None = None, calibrated: str = "high", log=print):
        from atomsim.profiling.profiler import DEFAULT_VARIANT

        self.space = space
        self.board = board if isinstance(board, Board) else get_board(board)
        self.db_path = Path(db_path)
        self.variant = variant or DEFAULT_VARIANT
        self.calibrated = calibrated
        self.log = log
        self.blocks: dict[tuple, BlockCost] = {}
        self.block_ms: dict[tuple, float] = {}
        self.stage_memo: dict[tuple, tuple] = {}
        self.pairs: dict[tuple, int] = {}
        # per kernel mask: (Flash of the firmware besides weights and layer entries, static
        # RAM, the banks as network_banks leaves them to the planner)
        self.firmware: dict[int, tuple[int, int, list[Bank]]] = {}
        self.room = self.board.ram.size  # first bank less what the firmware keeps (prepare)
        self.min_fixed_flash = 0  # the least firmware Flash of any kernel set (prepare)
        self.choices = space.stage_choices()
        self.fill_s = 0.0  # one-time: atoms profiled on demand and the runtime probe
        self.prepare_s = 0.0
        self.profiled = 0

    # the state after each stage: (channels, resolution)
    def _block_keys(self) -> list[tuple]:
        keys: dict[tuple, None] = {}
        for r in self.space.resolutions:
            states = {(3, r)}
            for si, stage in enumerate(self.space.stages):
                nxt = set()
                for c, h in sorted(states):
                    for block, w, d, e, k in self.choices[si]:
                        first = (block, c, h, w, e, k, stage.stride, stage.se and block != "conv")
                        keys[first] = None
                        h2 = (h - 1) // stage.stride + 1
                        if d > 1:
                            keys[(block, w, h2, w, e, k, 1, first[7])] = None
                        nxt.add((w, h2))
                states = nxt
            for c, h in states:
                keys[("head", c, h, self.space.num_classes, 1, 1, 1, False)] = None
        return list(keys)

    def prepare(self) -> None:
        """Block costs for the whole space; profile missing atoms; per-board runtime costs."""
        from atomsim.profiling.sweep import sweep

        t0 = time.perf_counter()
        keys = self._block_keys()
        for key in keys:
            if key not in self.blocks:
                self.blocks[key] = block_cost(key, self.variant)
        atom_keys = sorted({a for key in keys for a in self.blocks[key].atoms})
        t_fill = time.perf_counter()
        with AtomDB.open(self.db_path) as db:
            missing = set(db.missing_keys(self.board.id, atom_keys, self.variant,
                                          source="emulator"))
            # atoms a sweep already found not to fit the board (DoesNotFit) are not retried
            missing -= {f["atom_key"] for f in db.failures(self.board.id, self.variant)
                        if f["error"] in ("DoesNotFit", "ArenaDoesNotFit")}
        if missing:
            atoms: dict[str, Any] = {}
            for key in keys:
                if missing.intersection(self.blocks[key].atoms):
                    for a in block_atoms(key):
                        if a.key in missing:
                            atoms.setdefault(a.key, a)
            self.log(f"profiling {len(atoms)} atoms missing from {self.db_path} on "
                     f"{self.board.id} (once; stored in the AtomDB file)")
            report = sweep(self.board.id, list(atoms.values()), self.db_path,
                           variant=self.variant)
            self.profiled = report.measured
            failed = {k for k, _ in report.failed}
            if failed:  # atoms that cannot run on the board: blocks using them are out
                self.log(f"{len(failed)} atoms do not run on {self.board.id}; candidates "
                         "using them are left out")
        with AtomDB.open(self.db_path) as db:
            present = set(atom_keys) - set(db.missing_keys(self.board.id, atom_keys,
                                                           self.variant, source="emulator"))
            self.runtime = runtime_costs(self.board, self.variant, db, log=self.log)
            self.fill_s = time.perf_counter() - t_fill
            self.latency = latencies(db, self.board.id, self.variant, sorted(present),
                                     calibrated=self.calibrated)
        ms = self.latency.ms
        for key in keys:
            atoms_ = self.blocks[key].atoms
            self.block_ms[key] = (math.fsum(ms[a] for a in atoms_)
                                  if all(a in ms for a in atoms_) else math.inf)
        t_fw = time.perf_counter()
        sets = self.kernel_sets()
        for mask in sorted(sets):
            self.runtime_of(mask)
        self.room = min(self.firmware[m][2][0].room for m in sets)
        self.min_fixed_flash = min(self.firmware[m][0] for m in sets)
        self.fill_s += time.perf_counter() - t_fw
        self.prepare_s = time.perf_counter() - t0 - self.fill_s

    def kernel_sets(self) -> set[int]:
        """Every kernel mask a candidate of the space can have (stage by stage, per state)."""
        out: set[int] = set()
        for r in self.space.resolutions:
            states: dict[tuple[int, int], set[int]] = {(3, r): {0}}
            for si, stage in enumerate(self.space.stages):
                nxt: dict[tuple[int, int], set[int]] = {}
                for (c, h), masks in states.items():
                    for block, w, d, e, k in self.choices[si]:
                        se = stage.se and block != "conv"
                        first = self.blocks[(block, c, h, w, e, k, stage.stride, se)]
                        m = first.kernels
                        if d > 1:
                            m |= self.blocks[(block, w, first.out.h, w, e, k, 1, se)].kernels
                        nxt.setdefault((w, first.out.h), set()).update(x | m for x in masks)
                states = nxt
            for (c, h), masks in states.items():
                head = self.blocks[self.head_key(c, h)].kernels
                out.update(x | head for x in masks)
        return out

    def runtime_of(self, kernels: int) -> tuple[int, int, list[Bank]]:
        """(Flash of the network firmware with ``kernels`` besides the weights and the layer
        entries, its static RAM, its banks less what it keeps there) for a kernel mask: from
        the firmware with that kernel set and no layer (one cached build per set)."""
        got = self.firmware.get(kernels)
        if got is None:
            from atomsim.profiling.network import (
                GUARD_BYTES,
                flash_breakdown,
                network_banks,
                probe_firmware,
            )

            names = kernel_names(kernels)
            flash = flash_breakdown(probe_firmware(self.board, self.variant, names))
            banks = network_banks(self.board, self.variant, names)
            # the probe's layer table is one entry that never runs (+ the layer count); the
            # first bank keeps static data and the guard (the guard is not in the SRAM figure,
            # as run_network leaves it out of the measured peak)
            got = (flash["total"] - flash["weights"] - self.runtime.layer_bytes,
                   banks[0].reserved - GUARD_BYTES, banks)
            self.firmware[kernels] = got
        return got

    def pair(self, ka: tuple, kb: tuple) -> int:
        """Planned arena of two consecutive blocks (cached)."""
        got = self.pairs.get((ka, kb))
        if got is None:
            got = self.pairs[(ka, kb)] = pair_arena(self.blocks[ka], self.blocks[kb])
        return got

    def stage(self, si: int, c: int, h: int, choice: tuple) -> tuple:
        """(ms, weight bytes, MACs, arena of its block pairs, scratch, layers, c_out, h_out,
        first block key, last block key, kernel mask) of one stage."""
        memo = (si, c, h, choice)
        got = self.stage_memo.get(memo)
        if got is not None:
            return got
        block, w, d, e, k = choice
        st = self.space.stages[si]
        se = st.se and block != "conv"
        first = (block, c, h, w, e, k, st.stride, se)
        b1 = self.blocks[first]
        ms, wb, macs = self.block_ms[first], b1.weight_bytes, b1.macs
        arena, scratch, layers = b1.act_peak, b1.scratch, b1.layers
        kernels = b1.kernels
        last = first
        if d > 1:
            last = (block, w, b1.out.h, w, e, k, 1, se)
            b2 = self.blocks[last]
            ms += (d - 1) * self.block_ms[last]
            wb += (d - 1) * b2.weight_bytes
            macs += (d - 1) * b2.macs
            scratch = max(scratch, b2.scratch)
            layers += (d - 1) * b2.layers
            kernels |= b2.kernels
            arena = max(arena, self.pair(first, last))
            if d > 2:
                arena = max(arena, self.pair(last, last))
        got = (ms, wb, macs, arena, scratch, layers, w, b1.out.h, first, last, kernels)
        self.stage_memo[memo] = got
        return got

    def head_key(self, c: int, h: int) -> tuple:
        """The head's block key."""
        return ("head", c, h, self.space.num_classes, 1, 1, 1, False)

    def head(self, c: int, h: int) -> tuple:
        """The head's (ms, weight bytes, MACs, act peak, scratch, layers, kernel mask)."""
        key = self.head_key(c, h)
        b = self.blocks[key]
        return (self.block_ms[key], b.weight_bytes, b.macs, b.act_peak, b.scratch, b.layers,
                b.kernels)

    def finish(self, ms, wb, macs, arena, scratch, layers, kernels) -> Metrics:
        """Totals to :class:`Metrics` (the firmware of kernel mask ``kernels`` added); the
        scratch buffer goes after the arena, as the planner places it, and the firmware sizes
        the arena to 8 bytes."""
        rt = self.runtime
        fixed_flash, static, _ = self.firmware.get(kernels) or self.runtime_of(kernels)
        total = _align4(arena) + scratch
        return Metrics(macs, ms, ((total + 7) & ~7) + static + rt.stack_bytes, total,
                       wb + fixed_flash + rt.layer_bytes * layers, layers)

    def evaluate(self, cand: Candidate) -> Metrics:
        """The candidate's :class:`Metrics` (cached stage costs and block-pair arenas)."""
        c, h = 3, cand.resolution
        ms = 0.0
        wb = macs = arena = scratch = layers = 0
        prev = None
        kernels = 0
        pairs = self.pairs
        for si, choice in enumerate(cand.stages):
            s_ms, s_wb, s_macs, s_arena, s_scr, s_layers, c, h, first, last, s_k = \
                self.stage(si, c, h, choice)
            kernels |= s_k
            ms += s_ms
            wb += s_wb
            macs += s_macs
            layers += s_layers
            if s_arena > arena:
                arena = s_arena
            if s_scr > scratch:
                scratch = s_scr
            if prev is not None:
                v = pairs.get((prev, first))
                if v is None:
                    v = self.pair(prev, first)
                if v > arena:
                    arena = v
            prev = last
        hk = self.head_key(c, h)
        h_ms, h_wb, h_macs, _, h_scr, h_layers, h_k = self.head(c, h)
        arena = max(arena, self.pair(prev, hk))
        return self.finish(ms + h_ms, wb + h_wb, macs + h_macs, arena, max(scratch, h_scr),
                           layers + h_layers, kernels | h_k)

    # -- the real planner, for the front ----------------------------------------------------------

    def graph(self, cand: Candidate) -> Graph:
        """The shape-only graph of the candidate (the stage-config reader's)."""
        from atomsim.nn.frontends.stage_config import parse
        from atomsim.nn.lowering import build_graph

        return build_graph(parse(self.space.config(cand), "candidate"))

    def verify(self, cand: Candidate) -> tuple[int | None, str]:
        """(SRAM with the real memory plan, "") or (None, why it does not fit): the plan
        ``build_network`` makes, over the banks the firmware with the candidate's kernels leaves
        to the planner, and its arena as the firmware sizes it (per bank, rounded to 8) +
        that firmware's static RAM + the measured stack."""
        from atomsim.profiling.network import bank_arenas, graph_kernels

        graph = self.graph(cand)
        _, static, banks = self.runtime_of(kernel_mask(graph_kernels(graph)))
        try:
            mem = plan(graph, banks, variant=self.variant)
        except DoesNotFit as exc:
            return None, str(exc)
        arena = sum(n for _, n in bank_arenas(mem, banks).values())
        return arena + static + self.runtime.stack_bytes, ""


# -- the archive: the best candidates per latency bin ---------------------------------------------

def pareto(points: list[tuple[float, int, Any]]) -> list[tuple[float, int, Any]]:
    """The (latency ↓, MACs ↑) Pareto front of (latency, MACs, item) points, latency
    ascending: a point is kept when no other has less or equal latency and more or equal
    MACs (ties: the first)."""
    out: list[tuple[float, int, Any]] = []
    for p in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or p[1] > out[-1][1]:
            out.append(p)
    return out


class Archive:
    """Feasible candidates: the ``keep`` with the most MACs in each of ``bins`` latency bins
    (up to the latency limit). A superset of the Pareto front at bin resolution, with
    reserves behind each front point for when the real memory planner refuses one."""

    def __init__(self, latency_limit: float, bins: int = 200, keep: int = 16):
        self.scale = bins / latency_limit
        self.bins: dict[int, list] = {}
        self.keep = keep
        self.seq = 0
        self.seen: set = set()

    def add(self, cand: Candidate, m: Metrics) -> None:
        """Offer a feasible candidate."""
        if cand in self.seen:
            return
        b = int(m.latency_ms * self.scale)
        heap = self.bins.setdefault(b, [])
        self.seq += 1
        item = (m.macs, -self.seq, cand, m)
        if len(heap) < self.keep:
            heapq.heappush(heap, item)
            self.seen.add(cand)
        elif m.macs > heap[0][0]:
            out = heapq.heappushpop(heap, item)
            self.seen.discard(out[2])
            self.seen.add(cand)

    def points(self) -> list[tuple[float, int, tuple[Candidate, Metrics]]]:
        """Every kept (latency, MACs, (candidate, metrics))."""
        return [(m.latency_ms, m.macs, (c, m)) for heap in self.bins.values()
                for _, _, c, m in heap]

    def __len__(self) -> int:
        return sum(len(h) for h in self.bins.values())


# -- strategies ------------------------------------------------------------------------------------

@dataclass
class Progress:
    """What a strategy did."""

    evaluated: int = 0
    feasible: int = 0
    pruned_prefixes: int = 0
    covered: int = 0  # candidates decided (evaluated or pruned with their prefix)


def _exhaustive(ev: Evaluator, limits: Limits, front: Archive, prog: Progress,
                deadline: float) -> None:
    rt = ev.runtime
    fixed_sram = min(f[1] for f in ev.firmware.values()) + rt.stack_bytes
    fixed_flash = ev.min_fixed_flash  # the least of any kernel set: pruning stays safe
    n_stages = len(ev.choices)
    tail = [1] * (n_stages + 1)
    for si in range(n_stages - 1, -1, -1):
        tail[si] = tail[si + 1] * len(ev.choices[si])
    sram_cap = min(limits.sram_bytes - fixed_sram, ev.room)
    flash_cap = min(limits.flash_bytes, ev.board.flash.size) - fixed_flash
    lat_cap = limits.latency_ms
    lb = rt.layer_bytes

    def walk(si, c, h, ms, wb, macs, arena, scr, layers, picks, r, prev, km):
        if time.perf_counter() > deadline:
            raise TimeoutError
        if si == n_stages:
            h_ms, h_wb, h_macs, _, h_scr, h_layers, h_k = ev.head(c, h)
            arena = max(arena, ev.pair(prev, ev.head_key(c, h)))
            m = ev.finish(ms + h_ms, wb + h_wb, macs + h_macs, arena, max(scr, h_scr),
                          layers + h_layers, km | h_k)
            prog.evaluated += 1
            prog.covered += 1
            if m.fits(limits, ev.board, ev.room):
                prog.feasible += 1
                front.add(Candidate(r, tuple(picks)), m)
            return
        for choice in ev.choices[si]:
            s = ev.stage(si, c, h, choice)
            ms2, wb2 = ms + s[0], wb + s[1]
            arena2, scr2, layers2 = max(arena, s[3]), max(scr, s[4]), layers + s[5]
            if prev is not None:
                arena2 = max(arena2, ev.pair(prev, s[8]))
            if (ms2 > lat_cap or _align4(arena2) + scr2 > sram_cap
                    or wb2 + lb * layers2 > flash_cap):
                prog.pruned_prefixes += 1
                prog.covered += tail[si + 1]
                continue
            picks.append(choice)
            walk(si + 1, s[6], s[7], ms2, wb2, macs + s[2], arena2, scr2, layers2, picks, r,
                 s[9], km | s[10])
            picks.pop()

    try:
        for r in ev.space.resolutions:
            walk(0, 3, r, 0.0, 0, 0, 0, 0, 0, [], r, None, 0)
    except TimeoutError:
        pass


def _random(ev: Evaluator, limits: Limits, front: Archive, prog: Progress, deadline: float,
            budget: int, rng: random.Random) -> None:
    space = ev.space
    res, choices = space.resolutions, ev.choices
    while prog.evaluated < budget and (prog.evaluated & 255 or time.perf_counter() < deadline):
        cand = Candidate(rng.choice(res), tuple(rng.choice(c) for c in choices))
        m = ev.evaluate(cand)
        prog.evaluated += 1
        if m.fits(limits, ev.board, ev.room):
            prog.feasible += 1
            front.add(cand, m)
    prog.covered = prog.evaluated


def _score(m: Metrics, limits: Limits, board: Board, room: int) -> float:
    """MACs when all limits are met; else minus the relative violation (always < 0)."""
    over = (max(0.0, m.latency_ms / limits.latency_ms - 1)
            + max(0.0, m.sram_bytes / limits.sram_bytes - 1)
            + max(0.0, m.arena_bytes / room - 1)
            + max(0.0, m.flash_bytes / min(limits.flash_bytes, board.flash.size) - 1))
    return float(m.macs) if over == 0 else -over


def _evolution(ev: Evaluator, limits: Limits, front: Archive, prog: Progress, deadline: float,
               budget: int, rng: random.Random, population: int = 64,
               sample: int = 8) -> None:
    """Regularized evolution (Real et al. 2019), one run per input resolution (a resolution
    change moves every activation size at once, so single-gene steps rarely cross between
    resolutions): the oldest member leaves, a child of the best of a random sample with one to
    three stage genes re-drawn joins. Budget and time are split evenly over the runs."""
    space, choices = ev.space, ev.choices
    resolutions = space.resolutions
    start = time.perf_counter()

    def visit(cand: Candidate) -> float:
        m = ev.evaluate(cand)
        prog.evaluated += 1
        if m.fits(limits, ev.board, ev.room):
            prog.feasible += 1
            front.add(cand, m)
        return _score(m, limits, ev.board, ev.room)

    for n, r in enumerate(resolutions):
        stop = start + (deadline - start) * (n + 1) / len(resolutions)
        quota = budget * (n + 1) // len(resolutions)
        pop: deque[tuple[Candidate, float]] = deque()
        while len(pop) < population:
            cand = Candidate(r, tuple(rng.choice(c) for c in choices))
            pop.append((cand, visit(cand)))
        while prog.evaluated < quota and (prog.evaluated & 255 or time.perf_counter() < stop):
            parent = max(rng.sample(list(pop), sample), key=lambda p: p[1])[0]
            stages = list(parent.stages)
            for gene in rng.sample(range(len(choices)), rng.choice((1, 1, 2, 3))):
                stages[gene] = rng.choice(choices[gene])
            child = Candidate(r, tuple(stages))
            pop.append((child, visit(child)))
            pop.popleft()
    prog.covered = prog.evaluated


# -- the search ---------------------------------------------------------------------------

@dataclass
class FrontPoint:
    """One point of the verified front (``metrics.sram_bytes`` is the planned figure)."""

    candidate: Candidate
    config: dict[str, Any]
    metrics: Metrics
    planned_sram_bytes: int  # with the real memory planner (+ static + stack)


@dataclass
class SearchResult:
    """The front (latency ascending), the chosen point (most MACs) and how the search went."""

    board: str
    space: str
    strategy: str
    limits: Limits
    front: list[FrontPoint]
    evaluated: int
    feasible: int
    covered: int
    space_size: int
    search_s: float  # strategy + front verification (what "under a minute" is about)
    prepare_s: float  # block costs of the space (graphs), per process
    fill_s: float  # one-time: atoms profiled into AtomDB, runtime probe
    profiled_atoms: int
    latency_note: str
    rejected: list[str] = field(default_factory=list)  # front points the real planner refused
    runtime: RuntimeCosts | None = None

    @property
    def chosen(self) -> FrontPoint:
        """The front point with the most MACs."""
        return self.front[-1]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        return {
            "board": self.board, "space": self.space, "strategy": self.strategy,
            "limits": vars(self.limits), "evaluated": self.evaluated, "feasible": self.feasible,
            "covered": self.covered, "space_size": self.space_size, "search_s": self.search_s,
            "prepare_s": self.prepare_s, "fill_s": self.fill_s,
            "profiled_atoms": self.profiled_atoms, "latency": self.latency_note,
            "rejected": self.rejected, "runtime": None if self.runtime is None
            else vars(self.runtime),
            "front": [{"config": p.config, **vars(p.metrics),
                       "planned_sram_bytes": p.planned_sram_bytes} for p in self.front]}


def thin(items: list, n: int) -> list[int]:
    """Indices of at most ``n`` points spread evenly over a latency-sorted front, the last
    (most MACs) always included."""
    if len(items) <= n:
        return list(range(len(items)))
    picks = {round(i * (len(items) - 1) / (n - 1)) for i in range(n)}
    return sorted(picks)


def search(space: Space, board: str | Board, limits: Limits, db_path: str | Path, *,
           strategy: str = "evolution", budget: int = 200_000, time_limit_s: float = 30.0,
           seed: int = 0, max_front: int = 12, max_checks: int = 300,
           full_grid: bool = False, variant: str | None = None,
           calibrated: str = "high", evaluator: Evaluator | None = None,
           log: Callable[[str], None] = print) -> SearchResult:
    """Search ``space`` on ``board`` under ``limits``; see the module docstring."""
    if strategy not in STRATEGIES:
        raise SearchError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    ev = evaluator if evaluator is not None else Evaluator(space, board, db_path,
                                                           variant=variant,
                                                           calibrated=calibrated, log=log)
    if not ev.blocks:
        ev.prepare()
    if strategy == "exhaustive" and not full_grid:
        ev_space = reduced(space)
        ev.choices = ev_space.stage_choices()
    t0 = time.perf_counter()
    deadline = t0 + time_limit_s
    front, prog = Archive(limits.latency_ms), Progress()
    rng = random.Random(seed)
    try:
        if strategy == "exhaustive":
            _exhaustive(ev, limits, front, prog, deadline)
        elif strategy == "random":
            _random(ev, limits, front, prog, deadline, budget, rng)
        else:
            _evolution(ev, limits, front, prog, deadline, budget, rng)
    finally:
        ev.choices = space.stage_choices()
    space_size = reduced(space).size() if strategy == "exhaustive" and not full_grid \
        else space.size()
    if not len(front):
        raise SearchError(f"no candidate of the {space.name} space meets latency "
                          f"{limits.latency_ms:g} ms, SRAM {limits.sram_bytes / 1024:g} KB and "
                          f"Flash {limits.flash_bytes / 1024:g} KB on {ev.board.id} "
                          f"({prog.evaluated:,} evaluated)")
    # The real planner on the front: refused points leave, the front is taken again from the
    # archive, until every shown point is planned and fits (or the checks run out).
    points = front.points()
    verified: dict[Candidate, FrontPoint] = {}
    refused: set[Candidate] = set()
    rejected: list[str] = []
    checks = 0
    while True:
        current = pareto([p for p in points if p[2][0] not in refused])
        shown = [current[i] for i in thin(current, max_front)]
        todo = [p for p in shown if p[2][0] not in verified]
        if not todo or checks >= max_checks:
            break
        for _, _, (cand, m) in reversed(todo):
            checks += 1
            sram, why = ev.verify(cand)
            if sram is not None and sram <= limits.sram_bytes:
                verified[cand] = FrontPoint(cand, space.config(cand),
                                            replace(m, sram_bytes=sram), sram)
            else:
                refused.add(cand)
                rejected.append(f"{m.macs:,} MACs / {m.latency_ms:.1f} ms: "
                                + (why.split(";")[0] if why else
                                   f"planned SRAM {sram:,} B > limit"))
    final = [verified[p[2][0]] for p in shown if p[2][0] in verified]
    if not final:
        raise SearchError(f"every front point was refused by the memory planner on "
                          f"{ev.board.id} ({checks} checked): {rejected[:3]}")
    verified = final
    verified.sort(key=lambda p: p.metrics.latency_ms)
    return SearchResult(ev.board.id, space.name, strategy, limits, verified, prog.evaluated,
                        prog.feasible, prog.covered, space_size,
                        time.perf_counter() - t0, ev.prepare_s, ev.fill_s, ev.profiled,
                        ev.latency.describe(), rejected, ev.runtime)


def write_config(point: FrontPoint, path: str | Path) -> Path:
    """Write the chosen stage config JSON."""
    path = Path(path)
    try:
        path.write_text(json.dumps(point.config, indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write the config: {exc}") from None
    return path


__all__ = ["Evaluator", "Limits", "SearchResult", "search", "write_config"]


def space_of(config: dict[str, Any]) -> tuple[Space, Candidate]:
    """A one-candidate space holding exactly ``config`` (per-stage kernel and expansion lists,
    ReLU6 — as the search writes them), so any such config can be costed like a candidate."""
    from atomnet.config import StageConfig
    from atomnet.space import ACT, StageSpace

    c = StageConfig.from_dict(config)
    n = c.num_stages
    if len(c.kernel_size) != n or len(c.expand_ratio) != n or set(c.act_stages) != {ACT}:
        raise SearchError("predictions take per-stage kernel_size / expand_ratio lists and "
                          f"{ACT} activations (the search's own configs)")
    stages = tuple(StageSpace((c.block_type_stage[i],), (c.out_channel[i],), (c.depth[i],),
                              (c.expand_ratio[i],), c.se_stages[i], c.stride_stages[i],
                              (c.kernel_size[i],)) for i in range(n))
    space = Space("config", stages, (c.input_resolution,), c.num_classes)
    cand = Candidate(c.input_resolution, tuple(
        (c.block_type_stage[i], c.out_channel[i], c.depth[i], c.expand_ratio[i],
         c.kernel_size[i]) for i in range(n)))
    return space, cand


def predict(config: dict[str, Any], board: str | Board, db_path: str | Path, *,
            variant: str | None = None, calibrated: str = "high",
            log: Callable[[str], None] = print) -> tuple[Metrics, int]:
    """The search's figures for one stage config: (metrics, SRAM with the real planner)."""
    space, cand = space_of(config)
    ev = Evaluator(space, board, db_path, variant=variant, calibrated=calibrated, log=log)
    ev.prepare()
    sram, why = ev.verify(cand)
    if sram is None:
        raise SearchError(f"the config does not fit {ev.board.id}: {why}")
    return replace(ev.evaluate(cand), sram_bytes=sram), sram
