"""The network graph: int8 tensors with ids and operators (atoms) between them, in execution order.

One :class:`Graph` is what every front end produces (stage configs, MCUNet/ProxylessNAS JSON,
int8 .tflite) and what the planner, the numpy interpreter and the network firmware consume.

Tensors
    Every tensor has an id (its index in :attr:`Graph.tensors`), a name, a shape and a dtype.
    Activations are int8 NHWC ``(1, H, W, C)`` (vectors are ``(1, 1, 1, C)``); constants
    (weights, bias) carry ``data`` in the kernels' layouts of ``atomsim_nn.h``: conv filters
    ``(C_OUT, KH, KW, C_IN)``, depthwise ``(1, KH, KW, C)``, fully connected ``(C_OUT, C_IN)``,
    bias int32 ``(C_OUT,)``. Quantization is TFLite's: ``real = scale·(q − zero_point)``, one
    scale per tensor for activations, one per output channel for weights (zero point 0).
    Graphs built from configs are *shape-only* until :meth:`Graph.with_weights` (in
    :mod:`atomsim.nn.lowering`) gives them seeded weights and quantization.

Operators
    ``Op.kind`` is an atom type of :mod:`atomsim.nn.atoms` (``pad``, ``conv``, ``dw``, ``pw``,
    ``fc``, ``add``, ``mul``, ``mul_bcast``, ``avgpool``, ``maxpool``, ``global_avgpool``,
    ``relu``, ``relu6``, ``hard_swish``, ``hard_sigmoid``) or one of the ops with no atom
    kernel: ``mean`` (TFLite MEAN over H and W, atom ``global_avgpool``), ``reshape`` (a
    view: no work, no copy), ``softmax`` and ``logistic``. Inputs are the activation inputs
    first, then the constants (filter, bias). ``Op.params`` holds ``stride``, ``padding``
    ``(top, left, bottom, right)``, ``kernel`` ``(KH, KW)`` and ``activation`` (fused:
    ``none``/``relu``/``relu6``) where they apply. :meth:`Graph.atom` gives the op's atom, so
    AtomDB can be asked about every op, and MACs, parameters and Flash follow the atoms'
    conventions.

Lifetimes
    An activation lives from the op that writes it to the last op that reads it; graph inputs
    from before op 0, graph outputs to the end (:meth:`Graph.lifetimes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from atomsim.core.errors import ConfigError
from atomsim.nn.atoms import ACTIVATION_TYPES, CONV_TYPES, POOL_TYPES, Atom

# Op kinds with no atom kernel of their own (reshape costs nothing; the others are counted
# as unmodelled work in reports).
EXTRA_KINDS = ("mean", "reshape", "softmax", "logistic")
# Kernels that may write their output over their input (atomsim_nn.h, "Aliasing"); a reshape
# is a view of its input.
IN_PLACE_KINDS = ("relu", "relu6", "hard_swish", "hard_sigmoid", "reshape")
INT8, INT32 = "int8", "int32"


class GraphError(ConfigError):
    """A graph is inconsistent: names the op (index, kind) or the tensor at fault."""

    def __init__(self, message: str, *, op_index: int | None = None,
                 tensor_id: int | None = None):
        self.op_index, self.tensor_id = op_index, tensor_id
        super().__init__(message)


@dataclass(frozen=True)
class Quant:
    """int8 quantization: one scale/zero point, or one per channel along ``axis`` (weights)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @classmethod
    def of(cls, scale: float | Sequence[float], zero_point: int | Sequence[int] = 0,
           axis: int = 0) -> Quant:
        """Build from a scalar or per-channel scales (zero points broadcast). Scales are
        rounded to float32, as a .tflite stores them and TFLite computes with them."""
        scales = tuple(float(s) for s in np.atleast_1d(np.asarray(scale, dtype=np.float32)))
        zps = tuple(int(z) for z in np.atleast_1d(np.asarray(zero_point)))
        if len(zps) == 1 and len(scales) > 1:
            zps = zps * len(scales)
        return cls(scales, zps, axis)

    @property
    def per_tensor(self) -> tuple[float, int]:
        """(scale, zero point) of a per-tensor quantized tensor."""
        if len(self.scale) != 1:
            raise ConfigError(f"expected per-tensor quantization, got {len(self.scale)} scales")
        return self.scale[0], self.zero_point[0]


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a graph; ``data`` is set for constants (weights, bias, LUTs)."""

    id: int
    name: str
    shape: tuple[int, ...]
    dtype: str = INT8
    quant: Quant | None = None
    data: np.ndarray | None = field(default=None, compare=False, repr=False)
    const: bool = False

    @property
    def size(self) -> int:
        """Number of elements."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes as stored on the MCU (int8: 1 per element, int32: 4)."""
        return self.size * (4 if self.dtype == INT32 else 1)

    @property
    def nhwc(self) -> tuple[int, int, int, int]:
        """The shape of an activation as (N, H, W, C)."""
        if len(self.shape) != 4:
            raise GraphError(f"tensor {self.id} ({self.name}) is not NHWC: {self.shape}",
                             tensor_id=self.id)
        return self.shape  # type: ignore[return-value]


@dataclass(frozen=True)
class Op:
    """One operator: ``kind``, input and output tensor ids, kernel parameters."""

    kind: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    name: str = ""

    def param(self, key: str, default: Any = None) -> Any:
        """One parameter, with a default."""
        return self.params.get(key, default)


def _window_out(size: int, k: int, stride: int, before: int, after: int) -> int:
    return (size + before + after - k) // stride + 1


def infer_output_shape(kind: str, shapes: Sequence[tuple[int, ...]],
                       params: dict[str, Any]) -> tuple[int, ...]:
    """Output shape of an op of ``kind`` from its input shapes (activations then constants).

    Raises :class:`ConfigError` (the caller names the op) when the inputs do not fit together.
    """
    if not shapes:
        raise ConfigError(f"{kind} has no inputs")
    x = shapes[0]
    if kind == "reshape":
        new = tuple(params["shape"])
        if int(np.prod(new)) != int(np.prod(x)):
            raise ConfigError(f"reshape {x} -> {new} changes the element count")
        return new
    if kind in ("softmax", "logistic", *ACTIVATION_TYPES):
        return x
    if len(x) != 4 or x[0] != 1:
        raise ConfigError(f"{kind} input must be NHWC with N == 1, got {x}")
    _, h, w, c = x
    pt, pl, pb, pr = params.get("padding", (0, 0, 0, 0))
    if kind == "pad":
        return (1, h + pt + pb, w + pl + pr, c)
    if kind in CONV_TYPES:
        if len(shapes) < 2:
            raise ConfigError(f"{kind} needs a filter tensor")
        f = shapes[1]
        kh, kw = f[1], f[2]
        s = params.get("stride", 1)
        if kind == "dw":
            if f[0] != 1 or f[3] != c:
                raise ConfigError(f"dw filter {f} does not fit {c} input channels")
            c_out = c
        else:
            if f[3] != c:
                raise ConfigError(f"{kind} filter {f} takes {f[3]} channels, input has {c}")
            if kind == "pw" and (kh, kw) != (1, 1):
                raise ConfigError(f"pw filter must be 1x1, got {kh}x{kw}")
            c_out = f[0]
        if len(shapes) > 2 and shapes[2] != (c_out,):
            raise ConfigError(f"{kind} bias {shapes[2]} != ({c_out},)")
        ho, wo = _window_out(h, kh, s, pt, pb), _window_out(w, kw, s, pl, pr)
        if ho < 1 or wo < 1:
            raise ConfigError(f"{kind} {kh}x{kw}/s{s} leaves no output on {h}x{w}")
        return (1, ho, wo, c_out)
    if kind in POOL_TYPES:
        kh, kw = params["kernel"]
        s = params.get("stride", 1)
        ho, wo = _window_out(h, kh, s, pt, pb), _window_out(w, kw, s, pl, pr)
        if ho < 1 or wo < 1:
            raise ConfigError(f"{kind} {kh}x{kw}/s{s} leaves no output on {h}x{w}")
        return (1, ho, wo, c)
    if kind in ("global_avgpool", "mean"):
        return (1, 1, 1, c)
    if kind == "fc":
        if len(shapes) < 2:
            raise ConfigError("fc needs a weight tensor")
        wt = shapes[1]
        if wt[1] != h * w * c:
            raise ConfigError(f"fc weights {wt} take {wt[1]} inputs, input has {h * w * c}")
        if len(shapes) > 2 and shapes[2] != (wt[0],):
            raise ConfigError(f"fc bias {shapes[2]} != ({wt[0]},)")
        return (1, 1, 1, wt[0])
    if kind in ("add", "mul"):
        if len(shapes) != 2 or shapes[1] != x:
            raise ConfigError(f"{kind} needs two inputs of shape {x}, got {list(shapes)}")
        return x
    if kind == "mul_bcast":
        if len(shapes) != 2 or shapes[1] != (1, 1, 1, c):
            raise ConfigError(f"mul_bcast needs a (1, 1, 1, {c}) second input, "
                              f"got {list(shapes)[1:]}")
        return x
    raise ConfigError(f"unknown op kind {kind!r}")


@dataclass
class Graph:
    """Tensors, operators in execution order, graph inputs and outputs."""

    name: str = "graph"
    tensors: list[TensorInfo] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)

    # -- building ------------------------------------------------------------------------------

    def add_tensor(self, shape: Iterable[int], *, name: str = "", dtype: str = INT8,
                   quant: Quant | None = None, data: np.ndarray | None = None,
                   const: bool | None = None) -> int:
        """Append a tensor; returns its id."""
        tid = len(self.tensors)
        shape = tuple(int(d) for d in shape)
        is_const = data is not None if const is None else const
        if data is not None and tuple(data.shape) != shape:
            raise GraphError(f"tensor {tid} ({name}): data {data.shape} != shape {shape}",
                             tensor_id=tid)
        self.tensors.append(TensorInfo(tid, name or f"t{tid}", shape, dtype, quant, data,
                                       is_const))
        return tid

    def add_input(self, shape: Iterable[int], *, name: str = "input",
                  quant: Quant | None = None) -> int:
        """Append a graph input activation."""
        tid = self.add_tensor(shape, name=name, quant=quant)
        self.inputs.append(tid)
        return tid

    def add_op(self, kind: str, inputs: Sequence[int], *, name: str = "",
               quant: Quant | None = None, **params: Any) -> int:
        """Append an op, inferring its output shape; returns the output tensor id."""
        index = len(self.ops)
        for t in inputs:
            if not 0 <= t < len(self.tensors):
                raise GraphError(f"op {index} ({kind}): input tensor {t} does not exist",
                                 op_index=index, tensor_id=t)
        try:
            shape = infer_output_shape(kind, [self.tensors[t].shape for t in inputs], params)
        except ConfigError as exc:
            raise GraphError(f"op {index} ({kind}{' ' + name if name else ''}): {exc}",
                             op_index=index) from exc
        out = self.add_tensor(shape, name=name or f"{kind}{index}", quant=quant)
        self.ops.append(Op(kind, tuple(inputs), (out,), dict(params), name or f"{kind}{index}"))
        return out

    def replace_tensor(self, tid: int, **changes: Any) -> None:
        """Change fields of tensor ``tid`` (quantization, data)."""
        self.tensors[tid] = replace(self.tensors[tid], **changes)

    # -- queries -------------------------------------------------------------------------------

    def activation_inputs(self, op: Op) -> list[int]:
        """The non-constant inputs of ``op``."""
        return [t for t in op.inputs if not self.tensors[t].const]

    def const_inputs(self, op: Op) -> list[int]:
        """The constant inputs of ``op`` (filter, bias)."""
        return [t for t in op.inputs if self.tensors[t].const]

    def activations(self) -> list[TensorInfo]:
        """Every non-constant tensor."""
        return [t for t in self.tensors if not t.const]

    def producers(self) -> dict[int, int]:
        """Tensor id -> index of the op that writes it."""
        return {t: i for i, op in enumerate(self.ops) for t in op.outputs}

    def lifetimes(self) -> dict[int, tuple[int, int]]:
        """Activation id -> (first op, last op) that touch it; inputs start at -1, outputs
        end at ``len(ops)``. Tensors no op uses (and not graph inputs/outputs) are left out."""
        first: dict[int, int] = {t: -1 for t in self.inputs}
        last: dict[int, int] = {}
        for i, op in enumerate(self.ops):
            for t in op.inputs:
                if not self.tensors[t].const:
                    first.setdefault(t, i)
                    last[t] = i
            for t in op.outputs:
                first.setdefault(t, i)
                last.setdefault(t, i)
        for t in self.outputs:
            last[t] = len(self.ops)
        return {t: (first[t], last.get(t, first[t])) for t in first}

    def atom(self, index: int) -> Atom | None:
        """The atom op ``index`` runs (None for reshape, softmax and logistic)."""
        op = self.ops[index]
        kind = op.kind
        if kind in ("reshape", "softmax", "logistic"):
            return None
        x = self.tensors[op.inputs[0]].shape
        y = self.tensors[op.outputs[0]].shape
        _, h, w, c = x
        _, ho, wo, co = y
        common = {"c_in": c, "h_in": h, "w_in": w, "c_out": co, "h_out": ho, "w_out": wo}
        try:
            if kind in CONV_TYPES:
                f = self.tensors[op.inputs[1]].shape
                return Atom(type=kind, groups=c if kind == "dw" else 1, k1=f[1], k2=f[2],
                            stride=op.param("stride", 1),
                            padding=op.param("padding", (0, 0, 0, 0)),
                            activation=op.param("activation", "none"), **common)
            if kind in POOL_TYPES:
                kh, kw = op.param("kernel")
                return Atom(type=kind, k1=kh, k2=kw, stride=op.param("stride", 1),
                            padding=op.param("padding", (0, 0, 0, 0)), **common)
            if kind == "pad":
                return Atom(type="pad", padding=op.param("padding"), **common)
            if kind == "fc":
                return Atom(type="fc", c_in=h * w * c, c_out=co,
                            activation=op.param("activation", "none"))
            if kind in ("global_avgpool", "mean"):
                return Atom(type="global_avgpool", c_in=c, h_in=h, w_in=w, c_out=co)
            if kind in ("add", "mul"):
                return Atom(type=kind, activation=op.param("activation", "none"), **common)
            return Atom(type=kind, **common)
        except ConfigError as exc:
            raise GraphError(f"op {index} ({kind} {op.name}): no atom fits: {exc}",
                             op_index=index) from exc

    def atoms(self) -> list[Atom]:
        """The atoms of every op in execution order (ops without an atom left out)."""
        return [a for a in (self.atom(i) for i in range(len(self.ops))) if a is not None]

    def macs(self, convention: str = "paper") -> int:
        """Total MACs (atoms' conventions: ``paper`` or ``published``)."""
        return sum(a.count_macs(convention) for a in self.atoms())

    def param_count(self) -> int:
        """Weights and biases (elements) of every constant an op reads."""
        return sum(t.size for t in self.tensors if t.const and t.dtype in (INT8, INT32)
                   and self._is_param(t.id))

    def _is_param(self, tid: int) -> bool:
        return any(tid in op.inputs[1:] and op.kind in (*CONV_TYPES, "fc") for op in self.ops)

    def weight_bytes(self) -> int:
        """Flash of the parameters (int8 weights + int32 bias), the atoms' Flash convention."""
        return sum(a.flash_bytes for a in self.atoms())

    # -- validation ----------------------------------------------------------------------------

    def validate(self) -> Graph:
        """Check ids, execution order, shapes (re-inferred) and quantization; returns self."""
        n = len(self.tensors)
        for i, t in enumerate(self.tensors):
            if t.id != i:
                raise GraphError(f"tensor at position {i} has id {t.id}", tensor_id=t.id)
            if t.const and t.data is None:
                continue  # shape-only graph
        written: set[int] = set(self.inputs)
        for t in self.inputs:
            if not 0 <= t < n or self.tensors[t].const:
                raise GraphError(f"graph input {t} is not an activation tensor", tensor_id=t)
        for i, op in enumerate(self.ops):
            where = f"op {i} ({op.kind} {op.name})"
            if op.kind not in (*EXTRA_KINDS, *_ATOM_KINDS):
                raise GraphError(f"{where}: unknown kind", op_index=i)
            for t in (*op.inputs, *op.outputs):
                if not 0 <= t < n:
                    raise GraphError(f"{where}: tensor {t} does not exist", op_index=i,
                                     tensor_id=t)
            for t in op.inputs:
                if not self.tensors[t].const and t not in written:
                    raise GraphError(f"{where}: reads tensor {t} ({self.tensors[t].name}) "
                                     "before any op writes it", op_index=i, tensor_id=t)
            for t in op.outputs:
                if t in written:
                    raise GraphError(f"{where}: tensor {t} ({self.tensors[t].name}) is "
                                     "written twice", op_index=i, tensor_id=t)
                written.add(t)
            try:
                shape = infer_output_shape(op.kind, [self.tensors[t].shape for t in op.inputs],
                                           op.params)
            except ConfigError as exc:
                raise GraphError(f"{where}: {exc}", op_index=i) from exc
            out = self.tensors[op.outputs[0]]
            if out.shape != shape:
                raise GraphError(f"{where}: output tensor {out.id} ({out.name}) has shape "
                                 f"{out.shape}, the inputs give {shape}", op_index=i,
                                 tensor_id=out.id)
        for t in self.outputs:
            if t not in written:
                raise GraphError(f"graph output {t} is never written", tensor_id=t)
        return self

    @property
    def quantized(self) -> bool:
        """True when every activation has quantization and every constant has data."""
        return all(t.quant is not None and (not t.const or t.data is not None)
                   for t in self.tensors if not (t.const and t.dtype == INT32))

    def summary(self) -> str:
        """One line per op: index, kind, shapes."""
        lines = []
        for i, op in enumerate(self.ops):
            ins = " ".join(str(self.tensors[t].shape) for t in self.activation_inputs(op))
            outs = " ".join(str(self.tensors[t].shape) for t in op.outputs)
            lines.append(f"{i:3d} {op.kind:14s} {ins} -> {outs}")
        return "\n".join(lines)


_ATOM_KINDS = ("pad", *CONV_TYPES, "add", "mul", "mul_bcast", *POOL_TYPES, "global_avgpool",
               "fc", *ACTIVATION_TYPES)
