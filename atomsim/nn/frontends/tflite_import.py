"""int8 .tflite flatbuffers to a graph, read with the ``tflite`` package (no parser of ours).

Supported builtin operators: CONV_2D, DEPTHWISE_CONV_2D (depth multiplier 1),
FULLY_CONNECTED, ADD, MUL (elementwise, or broadcast of a (1, 1, 1, C) second input), PAD,
AVERAGE_POOL_2D, MAX_POOL_2D, MEAN (over H and W), RESHAPE, SOFTMAX, HARD_SWISH, LOGISTIC,
RELU, RELU6, and QUANTIZE / DEQUANTIZE where they convert the graph's float input / output.
Anything else — another op, a float or int16 tensor inside the graph, dilation, a fused
activation other than ReLU/ReLU6 — is an :class:`UnsupportedOperator` naming the op, its
index and the model; no partial graph is returned.

Shapes become NHWC: a rank-r tensor (r < 4) gets leading 1s, so ``(1, 640)`` is
``(1, 1, 1, 640)``; the bytes are the same. SAME padding becomes explicit (top, left,
bottom, right) padding of the op, computed as TFLite does; weights keep their file layouts,
which are the kernels' layouts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import tflite

from atomsim.core.errors import ConfigError
from atomsim.nn.graph import INT8, INT32, Graph, Quant

_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
SUPPORTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL", "PAD",
             "AVERAGE_POOL_2D", "MAX_POOL_2D", "MEAN", "RESHAPE", "SOFTMAX", "HARD_SWISH",
             "LOGISTIC", "RELU", "RELU6", "QUANTIZE", "DEQUANTIZE")
_TYPES = {tflite.TensorType.INT8: INT8, tflite.TensorType.INT32: INT32}
_NP = {INT8: np.int8, INT32: np.int32}
_ACT = {tflite.ActivationFunctionType.NONE: "none", tflite.ActivationFunctionType.RELU: "relu",
        tflite.ActivationFunctionType.RELU6: "relu6"}


class UnsupportedOperator(ConfigError):
    """A .tflite operator (or a feature of one) AtomSim cannot run."""

    def __init__(self, model: str, index: int, op: str, why: str = ""):
        self.model, self.index, self.op = model, index, op
        detail = f": {why}" if why else ""
        super().__init__(f"{model}: operator {index} ({op}) is not supported{detail}; "
                         f"supported: {', '.join(SUPPORTED)}")


def nhwc(shape) -> tuple[int, ...]:
    """A tflite shape as NHWC: leading 1s up to rank 4."""
    shape = tuple(int(d) for d in shape)
    if len(shape) > 4:
        raise ConfigError(f"rank-{len(shape)} tensor {shape}: at most 4 dimensions")
    return (1,) * (4 - len(shape)) + shape


def same_padding(size: int, k: int, stride: int) -> tuple[int, int, int]:
    """(out, before, after) for TFLite SAME padding."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + k - size, 0)
    return out, total // 2, total - total // 2


def _options(op, cls):
    table = op.BuiltinOptions()
    if table is None:
        return None
    opts = cls()
    opts.Init(table.Bytes, table.Pos)
    return opts


class _Importer:
    def __init__(self, buf: bytes, name: str):
        self.name = name
        try:
            self.model = tflite.Model.GetRootAsModel(buf, 0)
            if self.model.SubgraphsLength() < 1:
                raise ConfigError(f"{name}: the model has no subgraph")
            self.sub = self.model.Subgraphs(0)
        except ConfigError:
            raise
        except Exception as exc:  # a corrupt flatbuffer raises anything
            raise ConfigError(f"{name}: not a readable .tflite model: {exc}") from exc
        self.graph = Graph(name=name)
        self.ids: dict[int, int] = {}  # tflite tensor index -> graph tensor id
        self.index = 0
        self.opname = ""

    # -- tensors ---------------------------------------------------------------------------------

    def unsupported(self, why: str) -> UnsupportedOperator:
        return UnsupportedOperator(self.name, self.index, self.opname, why)

    def tensor(self, i: int):
        return self.sub.Tensors(i)

    def tname(self, i: int) -> str:
        raw = self.tensor(i).Name()
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def quant(self, i: int) -> Quant | None:
        q = self.tensor(i).Quantization()
        if q is None or q.ScaleLength() == 0:
            return None
        zps = q.ZeroPointAsNumpy() if q.ZeroPointLength() else [0]
        return Quant.of([float(s) for s in q.ScaleAsNumpy()], [int(z) for z in zps],
                        q.QuantizedDimension())

    def dtype(self, i: int) -> str:
        t = self.tensor(i).Type()
        if t not in _TYPES:
            raise self.unsupported(f"tensor {i} ({self.tname(i)}) has type "
                                   f"{_type_name(t)}, only int8 activations and int8/int32 "
                                   "constants are supported")
        return _TYPES[t]

    def data(self, i: int) -> np.ndarray | None:
        t = self.tensor(i)
        buf = self.model.Buffers(t.Buffer())
        if buf is None or buf.DataLength() == 0:
            return None
        dtype = self.dtype(i)
        return np.frombuffer(buf.DataAsNumpy().tobytes(), dtype=_NP[dtype]).reshape(
            tuple(int(d) for d in t.ShapeAsNumpy()))

    def shape(self, i: int) -> tuple[int, ...]:
        return tuple(int(d) for d in self.tensor(i).ShapeAsNumpy())

    def activation(self, i: int) -> int:
        """Graph id of activation ``i`` (must already be written or be a graph input)."""
        if i not in self.ids:
            if self.data(i) is not None:
                raise self.unsupported(f"constant tensor {i} ({self.tname(i)}) where an "
                                       "activation is expected")
            raise self.unsupported(f"tensor {i} ({self.tname(i)}) is read before it is written")
        return self.ids[i]

    def const(self, i: int, shape: tuple[int, ...] | None = None) -> int:
        """Graph id of constant ``i`` (created on first use)."""
        if i in self.ids:
            return self.ids[i]
        data = self.data(i)
        if data is None:
            raise self.unsupported(f"tensor {i} ({self.tname(i)}) should be constant")
        if shape is not None:
            data = data.reshape(shape)
        tid = self.graph.add_tensor(data.shape, name=self.tname(i), dtype=self.dtype(i),
                                    quant=self.quant(i), data=data)
        self.ids[i] = tid
        return tid

    def emit(self, kind: str, inputs: list[int], out: int, **params: Any) -> None:
        """Append op ``kind`` writing tflite tensor ``out``; its shape must match the file."""
        if self.dtype(out) != INT8:
            raise self.unsupported(f"output tensor {out} is not int8")
        try:
            tid = self.graph.add_op(kind, inputs, name=self.tname(out), quant=self.quant(out),
                                    **params)
        except ConfigError as exc:
            raise self.unsupported(str(exc)) from exc
        want = nhwc(self.shape(out))
        got = self.graph.tensors[tid].shape
        if kind != "reshape" and got != want:
            raise self.unsupported(f"output shape {want} in the file, {got} from the inputs")
        self.ids[out] = tid

    # -- the model -------------------------------------------------------------------------------

    def run(self) -> Graph:
        sub, g = self.sub, self.graph
        ops = [sub.Operators(k) for k in range(sub.OperatorsLength())]
        codes = []
        for op in ops:
            code = self.model.OperatorCodes(op.OpcodeIndex())
            codes.append(_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()),
                                    "CUSTOM"))
        # Check every operator first: an unsupported one fails before any graph exists.
        for k, name in enumerate(codes):
            if name not in SUPPORTED:
                self.index, self.opname = k, name
                raise self.unsupported("")
        graph_inputs = [int(i) for i in sub.InputsAsNumpy()]
        graph_outputs = [int(i) for i in sub.OutputsAsNumpy()]
        float_edges: dict[int, int] = {}
        for k, (op, name) in enumerate(zip(ops, codes, strict=True)):
            self.index, self.opname = k, name
            ins = [int(i) for i in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(i) for i in op.OutputsAsNumpy()]
            if name == "QUANTIZE":
                if ins[0] not in graph_inputs or self.tensor(ins[0]).Type() != 0:
                    raise self.unsupported("QUANTIZE is supported only on the float graph "
                                           "input")
                float_edges[ins[0]] = outs[0]
                continue
            if name == "DEQUANTIZE":
                if outs[0] not in graph_outputs:
                    raise self.unsupported("DEQUANTIZE is supported only on a graph output")
                float_edges[outs[0]] = ins[0]
                continue
            for i in ins:
                if i >= 0 and i not in self.ids and i in graph_inputs + list(
                        float_edges.values()) and self.data(i) is None:
                    if self.dtype(i) != INT8:
                        raise self.unsupported(f"graph input {i} is not int8")
                    self.ids[i] = g.add_input(nhwc(self.shape(i)), name=self.tname(i),
                                              quant=self.quant(i))
            self.convert(op, name, ins, outs)
        for i in graph_outputs:
            i = float_edges.get(i, i)
            if i not in self.ids:
                raise ConfigError(f"{self.name}: graph output {i} is never written")
            g.outputs.append(self.ids[i])
        self.index, self.opname = -1, "graph"
        return g.validate()

    def fused(self, opts) -> str:
        act = opts.FusedActivationFunction() if opts is not None else 0
        if act not in _ACT:
            raise self.unsupported(f"fused activation {act} (only NONE, RELU, RELU6)")
        return _ACT[act]

    def window(self, opts, h: int, w: int, kh: int, kw: int) -> tuple[int, tuple]:
        """(stride, padding) of a window op; unequal strides only where one axis has a
        single output (its stride then does not matter)."""
        sh, sw = opts.StrideH(), opts.StrideW()
        if opts.Padding() == tflite.Padding.SAME:
            ho, pt, pb = same_padding(h, kh, sh)
            wo, pl, pr = same_padding(w, kw, sw)
        else:
            ho, wo, (pt, pl, pb, pr) = (h - kh) // sh + 1, (w - kw) // sw + 1, (0, 0, 0, 0)
        if sh != sw:
            if ho == 1 and (h + pt + pb - kh) < sw:
                sh = sw
            elif wo == 1 and (w + pl + pr - kw) < sh:
                sw = sh
            else:
                raise self.unsupported(f"unequal strides {sh}x{sw}")
        return sh, (pt, pl, pb, pr)

    def convert(self, op, name: str, ins: list[int], outs: list[int]) -> None:
        g = self.graph
        out = outs[0]
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            cls = tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions
            opts = _options(op, cls)
            if opts.DilationHFactor() != 1 or opts.DilationWFactor() != 1:
                raise self.unsupported("dilation")
            x = self.activation(ins[0])
            _, h, w, c = g.tensors[x].shape
            filt = self.shape(ins[1])
            if name == "DEPTHWISE_CONV_2D":
                if filt[3] != c:
                    raise self.unsupported(f"depth multiplier {filt[3] // c} (only 1)")
                kind = "dw"
            else:
                kind = "pw" if filt[1:3] == (1, 1) else "conv"
            stride, padding = self.window(opts, h, w, filt[1], filt[2])
            inputs = [x, self.const(ins[1])]
            if len(ins) > 2 and ins[2] >= 0:
                inputs.append(self.const(ins[2]))
            self.emit(kind, inputs, out, stride=stride, padding=padding,
                      activation=self.fused(opts))
        elif name == "FULLY_CONNECTED":
            opts = _options(op, tflite.FullyConnectedOptions)
            x = self.activation(ins[0])
            inputs = [x, self.const(ins[1])]
            if len(ins) > 2 and ins[2] >= 0:
                inputs.append(self.const(ins[2]))
            self.emit("fc", inputs, out, activation=self.fused(opts))
        elif name in ("ADD", "MUL"):
            cls = tflite.AddOptions if name == "ADD" else tflite.MulOptions
            opts = _options(op, cls)
            a, b = self.activation(ins[0]), self.activation(ins[1])
            sa, sb = g.tensors[a].shape, g.tensors[b].shape
            kind = name.lower()
            if sa != sb:
                if name == "MUL" and sb == (1, 1, 1, sa[3]):
                    kind = "mul_bcast"
                elif name == "MUL" and sa == (1, 1, 1, sb[3]):
                    kind, a, b = "mul_bcast", b, a
                else:
                    raise self.unsupported(f"broadcast of {sa} and {sb}")
            act = self.fused(opts)
            if kind == "mul_bcast" and act != "none":
                raise self.unsupported("fused activation on a broadcast MUL")
            self.emit(kind, [a, b], out, **({"activation": act} if kind != "mul_bcast"
                                            else {}))
        elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            opts = _options(op, tflite.Pool2DOptions)
            x = self.activation(ins[0])
            _, h, w, _ = g.tensors[x].shape
            kh, kw = opts.FilterHeight(), opts.FilterWidth()
            stride, padding = self.window(opts, h, w, kh, kw)
            self.emit("avgpool" if name == "AVERAGE_POOL_2D" else "maxpool", [x], out,
                      kernel=(kh, kw), stride=stride, padding=padding,
                      activation=self.fused(opts))
        elif name == "MEAN":
            x = self.activation(ins[0])
            axes = self.data(ins[1])
            if axes is None or sorted(int(a) for a in np.ravel(axes)) != [1, 2]:
                raise self.unsupported(f"MEAN over axes {axes} (only H and W, axes 1 and 2)")
            self.emit("mean", [x], out)
        elif name == "PAD":
            x = self.activation(ins[0])
            pads = self.data(ins[1])
            if pads is None or pads.shape != (4, 2) or pads[0].any() or pads[3].any():
                raise self.unsupported(f"paddings {pads} (only H and W of a rank-4 tensor)")
            (pt, pb), (pl, pr) = (int(v) for v in pads[1]), (int(v) for v in pads[2])
            self.emit("pad", [x], out, padding=(pt, pl, pb, pr))
        elif name == "RESHAPE":
            x = self.activation(ins[0])
            self.emit("reshape", [x], out, shape=nhwc(self.shape(out)))
        elif name == "SOFTMAX":
            opts = _options(op, tflite.SoftmaxOptions)
            self.emit("softmax", [self.activation(ins[0])], out,
                      beta=float(opts.Beta()) if opts is not None else 1.0)
        elif name in ("HARD_SWISH", "LOGISTIC", "RELU", "RELU6"):
            kind = {"HARD_SWISH": "hard_swish", "LOGISTIC": "logistic", "RELU": "relu",
                    "RELU6": "relu6"}[name]
            self.emit(kind, [self.activation(ins[0])], out)
        else:  # pragma: no cover - SUPPORTED and this dispatch are kept in step
            raise self.unsupported("")


def _type_name(t: int) -> str:
    names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}
    return names.get(t, str(t))


def load_tflite(path: str | Path) -> Graph:
    """The graph of an int8 .tflite model (weights and quantization from the file)."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read model: {exc}") from exc
    return from_bytes(buf, path.name)


def from_bytes(buf: bytes, name: str = "model.tflite") -> Graph:
    """The graph of an int8 .tflite flatbuffer held in memory.

    The flatbuffer is read lazily and has no checksum: a truncated or corrupt file fails
    wherever the walk first reads past its end or meets a bad string, type or shape, so any
    such failure is named a ConfigError here (with the operator it was reading).
    """
    importer = _Importer(buf, name)
    try:
        return importer.run()
    except ConfigError:
        raise
    except Exception as exc:  # a corrupt flatbuffer raises anything, anywhere in the walk
        where = f" (operator {importer.index}, {importer.opname})" if importer.opname else ""
        raise ConfigError(f"{name}: not a readable .tflite model{where}: "
                          f"{type(exc).__name__}: {exc}") from exc
