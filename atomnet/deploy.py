"""Deploy a quantized AtomNet on an emulated board and prove it computes what the host computed.

:func:`deploy` takes the quantize output (a :class:`~atomnet.quantize.QModel`) and/or its
.tflite, imports the .tflite with AtomSim's own importer (what a user's TFLite file goes
through), builds the network firmware for the board (:mod:`atomsim.profiling.network`: memory
plan, generated model C, the kernels) and runs N test images on the emulated board — one
loaded firmware, only the input rewritten between runs. Every image's int8 logits must equal
the host int8 reference (``atomnet.quantize.run_int8``) and TensorFlow Lite Micro's interpreter
on the same .tflite (when the ``tflite_micro`` package is installed) bit for bit; the accuracy
measured on the board is then the host int8 accuracy exactly (both are reported, not assumed).

The deployed graph is the .tflite's. ``atomnet export`` writes every k > 1 convolution as a PAD
op and a VALID convolution, the Pad and convolution atoms of the stage-config graph the search
costed; TFLite has no int8 hard-sigmoid, so the SE gate is folded into the SE expand
convolution (a fused ReLU6 with the 1/6 in the scale), the one difference left. A
``--pad-in-conv`` export (SAME padding inside stride-1 convolutions) has fewer atoms and runs
slower than costed (the kernels' border path); the differences printed beside the predictions
show what either is worth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atomsim.boards import Board, get_board
from atomsim.core.errors import AtomSimError, ConfigError


class NotBitExact(AtomSimError):
    """The emulated board's outputs differ from the host int8 reference or from TFLM."""

    exit_code = 21
    status = "not-bit-exact"


@dataclass
class DeployResult:
    """What ran on the board, what it measured, and the comparisons."""

    board: str
    images: int
    labels: np.ndarray = field(repr=False)
    board_logits: np.ndarray = field(repr=False)
    host_logits: np.ndarray | None = field(repr=False)
    tflm_logits: np.ndarray | None = field(repr=False)
    flash: dict[str, int]  # weights / graph / code / total, from the ELF
    sram: dict[str, int]  # arena / static / stack / peak, measured
    latency_ms: float  # the slowest image
    cycles: int
    ops: dict[str, int]  # op kinds of the deployed graph
    macs: int
    wall_s: float
    predicted: Any = None  # atomnet.search.Metrics of the stage config, when asked for

    @property
    def host_exact(self) -> bool | None:
        """Board logits == host int8 logits on every image."""
        return None if self.host_logits is None else bool(
            np.array_equal(self.board_logits, self.host_logits))

    @property
    def tflm_exact(self) -> bool | None:
        """Board logits == TFLM logits on every image (None: TFLM not installed)."""
        return None if self.tflm_logits is None else bool(
            np.array_equal(self.board_logits, self.tflm_logits))

    @property
    def board_accuracy(self) -> float:
        """Top-1 accuracy of the board's logits."""
        return float(np.mean(self.board_logits.argmax(1) == self.labels))

    @property
    def host_accuracy(self) -> float | None:
        """Top-1 accuracy of the host int8 logits."""
        return None if self.host_logits is None else float(
            np.mean(self.host_logits.argmax(1) == self.labels))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON)."""
        pred = None if self.predicted is None else vars(self.predicted)
        return {"board": self.board, "images": self.images, "host_exact": self.host_exact,
                "tflm_exact": self.tflm_exact, "board_accuracy": self.board_accuracy,
                "host_accuracy": self.host_accuracy, "flash": self.flash, "sram": self.sram,
                "latency_ms": self.latency_ms, "cycles": self.cycles, "ops": self.ops,
                "macs": self.macs, "wall_s": self.wall_s, "predicted": pred}


def tflm_logits(buf: bytes, x: np.ndarray) -> np.ndarray | None:
    """TFLite Micro's int8 outputs for each image of ``x`` (None: not installed)."""
    try:
        import tflite_micro
    except ImportError:
        return None
    interp = tflite_micro.runtime.Interpreter.from_bytes(buf, arena_size=4 << 20)
    out = []
    for i in range(len(x)):
        interp.set_input(x[i:i + 1], 0)
        interp.invoke()
        out.append(np.array(interp.get_output(0), copy=True).reshape(-1))
    del interp
    return np.stack(out).astype(np.int8)


def deploy(board: str | Board, x: np.ndarray, labels: np.ndarray, *, qmodel=None,
           tflite: bytes | None = None, variant: str | None = None,
           log=print) -> DeployResult:
    """Build the network firmware for ``board`` and run the int8 images ``x`` (N, R, R, 3).

    Give ``qmodel`` (the quantize output; its .tflite is exported here when ``tflite`` is
    None) and/or ``tflite`` (bytes). Host int8 logits come from ``qmodel``; without it the
    reference is TFLM alone.
    """
    from atomsim.emulator.machine import Machine
    from atomsim.nn.frontends import tflite_import
    from atomsim.profiling.network import build_network, run_network
    from atomsim.profiling.profiler import DEFAULT_VARIANT

    board = board if isinstance(board, Board) else get_board(board)
    variant = variant or DEFAULT_VARIANT
    if qmodel is None and tflite is None:
        raise ConfigError("deploy needs the quantized model or its .tflite")
    if tflite is None:
        from atomnet.export_tflite import to_tflite

        tflite = to_tflite(qmodel)
    if x.dtype != np.int8 or x.ndim != 4 or len(x) != len(labels) or not len(x):
        raise ConfigError(f"deploy: expected int8 images (N, R, R, 3) and N labels, got "
                          f"{x.dtype} {x.shape} and {len(labels)} labels")
    t0 = time.perf_counter()
    graph = tflite_import.from_bytes(tflite, "atomnet.tflite")
    log(f"building the network firmware for {board.id} ({len(graph.ops)} ops)")
    image = build_network(graph, board, variant)  # ArenaDoesNotFit when it does not fit
    machine = Machine(board)
    fw = machine.load(image.elf)
    outs, stack, cycles = [], 0, 0
    first = None
    for i in range(len(x)):
        run = run_network(image, x[i:i + 1], machine, loaded=fw)
        first = first or run
        outs.append(run.outputs[0].reshape(-1))
        stack, cycles = max(stack, run.stack_bytes), max(cycles, run.cycles)
    board_logits = np.stack(outs)
    host = None
    if qmodel is not None:
        from atomnet.quantize import run_int8

        host = run_int8(qmodel, x)
    tflm = tflm_logits(tflite, x)
    ops: dict[str, int] = {}
    for op in graph.ops:
        ops[op.kind] = ops.get(op.kind, 0) + 1
    sram = {"arena": image.arena_bytes, "static": first.static_bytes, "stack": stack,
            "peak": image.arena_bytes + first.static_bytes + stack}
    return DeployResult(board.id, len(x), np.asarray(labels), board_logits, host, tflm,
                        dict(image.flash), sram, cycles / board.clock_hz * 1e3, cycles, ops,
                        graph.macs(), time.perf_counter() - t0)


def check(result: DeployResult) -> None:
    """Raise :class:`NotBitExact` naming the first differing image and logit."""
    for name, ref in (("host int8", result.host_logits), ("TFLM", result.tflm_logits)):
        if ref is None:
            continue
        bad = np.argwhere(result.board_logits != ref)
        if bad.size:
            i, j = bad[0]
            raise NotBitExact(f"{len(bad)} of {ref.size} logits differ between the emulated "
                              f"{result.board} and {name}; first at image {i}, class {j}: "
                              f"board {result.board_logits[i, j]}, {name} {ref[i, j]}")


def comparison_rows(result: DeployResult) -> list[tuple[str, str, str, str]]:
    """(figure, predicted, measured, difference) rows: MACs, SRAM, Flash, latency."""
    p = result.predicted

    def row(name, pred, meas, unit, scale=1.0):
        if pred is None:
            return (name, "-", f"{meas / scale:,.1f} {unit}", "-")
        diff = meas - pred
        return (name, f"{pred / scale:,.1f} {unit}", f"{meas / scale:,.1f} {unit}",
                f"{diff / scale:+,.1f} {unit} {100 * diff / pred:+.1f} %")

    return [
        row("MACs", None if p is None else p.macs, result.macs, "M", 1e6),
        row("peak SRAM", None if p is None else p.sram_bytes, result.sram["peak"], "KB", 1024),
        row("Flash", None if p is None else p.flash_bytes, result.flash["total"], "KB", 1024),
        row("latency", None if p is None else p.latency_ms, result.latency_ms, "ms"),
    ]


def print_result(result: DeployResult, console=None) -> None:
    """The comparison table and the bit-exactness / accuracy lines."""
    from rich.table import Table

    if console is None:
        from atomsim.cli.output import console
    table = Table(title=f"deployed on the emulated {result.board}: search prediction vs "
                        "measured")
    for col in ("figure", "predicted (search)", "measured (board)", "difference"):
        table.add_column(col, justify="left" if col == "figure" else "right", no_wrap=True)
    for r in comparison_rows(result):
        table.add_row(*r)
    console.print(table)

    def yn(v):
        return "not checked (tflite_micro not installed)" if v is None else (
            "yes" if v else "NO")

    lines = [
        f"{result.images} test images on the board: logits == host int8 reference: "
        f"{yn(result.host_exact)}; == TFLite Micro: {yn(result.tflm_exact)}",
        f"accuracy on the board {100 * result.board_accuracy:.2f} %, host int8 "
        + ("-" if result.host_accuracy is None else f"{100 * result.host_accuracy:.2f} %"),
        f"Flash {result.flash['total']:,} B = weights {result.flash['weights']:,} + graph "
        f"{result.flash['graph']:,} + code {result.flash['code']:,}; peak SRAM "
        f"{result.sram['peak']:,} B = arena {result.sram['arena']:,} + static "
        f"{result.sram['static']:,} + stack {result.sram['stack']:,}; latency "
        f"{result.latency_ms:.3f} ms ({result.cycles:,} cycles)",
        "deployed ops: " + ", ".join(f"{k} {v}" for k, v in sorted(result.ops.items())),
    ]
    console.print("\n".join(lines), highlight=False)


def load_model(path: Path, qmodel_path: Path | None = None) -> tuple[Any, bytes | None]:
    """(QModel or None, .tflite bytes or None) from a quantize output or a .tflite."""
    from atomnet.quantize import QModel

    path = Path(path)
    if path.suffix == ".tflite":
        try:
            buf = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read model: {exc}") from None
        return (QModel.load(qmodel_path) if qmodel_path else None), buf
    return QModel.load(path), None
