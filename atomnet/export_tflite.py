"""Export a quantized AtomNet (:class:`atomnet.quantize.QModel`) as an int8 .tflite flatbuffer.

Written with the flatbuffers builder functions generated from TFLite's schema that the
``tflite`` package ships (``tflite.Model.ModelStart`` ...), so the file follows the schema by
construction. Ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, MUL, AVERAGE_POOL_2D
(global pooling, same scale in and out), HARD_SWISH and PAD. The SE gate's hard-sigmoid is part
of its conv (see ``atomnet.quantize``). Input int8 (1, R, R, 3) = pixel - 128, output int8
(1, classes).

Padding, by default (X-CUBE-AI style, the graph the search costs): every k×k convolution with
k > 1 is an int8 PAD of k//2 on each side (TFLite pads int8 with the tensor's zero point) and a
VALID convolution, exactly the Pad atom + convolution atom that ``atomsim.nn.lowering`` puts in
the stage-config graph ``atomnet search`` sums, so the deployed network is the costed one.
``pad_in_conv=True`` (``atomnet export --pad-in-conv``) writes TFLite-converter-style graphs
instead: SAME padding inside the convolution, and PAD only where PyTorch's symmetric k//2
padding differs from SAME (a stride-2 conv on an even-sized map: PyTorch pads the top/left,
SAME the bottom/right). Both compute the same int8 numbers: a padded tap holds the zero point,
which the input offset (-zero point) turns into 0, what SAME padding contributes in TFLite's
int8 kernels and in ``atomnet.quantize.run_int8``.

TensorFlow Lite Micro's interpreter runs the file and its output equals
:func:`atomnet.quantize.run_int8` bit for bit (tests/test_atomnet_pipeline.py).

:func:`read_qmodel` reads the input of ``atomnet export``: a file that is not what
``atomnet quantize`` writes (a training checkpoint, a state_dict, a .tflite, a stage config,
a file cut short …) is a :class:`NotAQuantizedModel` saying what the file looks like, found
by its first bytes and, for a pickle, by walking its opcodes (nothing is unpickled until the
file is known to be a whole pickle of a ``QModel``).
"""

from __future__ import annotations

import importlib
import json
import pickle
import pickletools
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np
from tflite.ActivationFunctionType import ActivationFunctionType as Act
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.BuiltinOptions import BuiltinOptions as Opt
from tflite.Padding import Padding
from tflite.TensorType import TensorType

from atomnet.quantize import CONV_KINDS, QModel, QOp
from atomsim.core.errors import ConfigError

EXPECTED = ("the quantized model that `atomsim atomnet quantize CHECKPOINT --out MODEL.q` "
            "writes")
# What torch.save's legacy (pre-zip) format starts with: its magic number, pickled first.
_TORCH_LEGACY_HEAD = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)
_SQLITE_HEAD = b"SQLite format 3\x00"


class NotAQuantizedModel(ConfigError):
    """``atomnet export`` was given a file that is not an AtomNet quantized model."""

    status = "not-a-qmodel"

    def __init__(self, path: Path, looks_like: str, hint: str = ""):
        self.path, self.looks_like = path, looks_like
        super().__init__(f"{path} is not an AtomNet quantized model: it looks like "
                         f"{looks_like}. atomnet export expects {EXPECTED}{hint}")


def read_qmodel(path: str | Path) -> QModel:
    """The quantized model in ``path``; anything else is a named error saying what it is."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file (atomnet export expects {EXPECTED})")
    if path.is_dir():
        raise NotAQuantizedModel(path, "a directory")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    if not data.startswith(b"\x80") or data.startswith(_TORCH_LEGACY_HEAD):
        looks, hint = _looks_like(path, data)
        raise NotAQuantizedModel(path, looks, hint)
    try:
        ops = list(pickletools.genops(data))
    except Exception as exc:  # pickletools raises ValueError and others on a damaged stream
        raise NotAQuantizedModel(
            path, f"a Python pickle cut short or damaged ({len(data):,} bytes; {exc}): a "
            "partial copy or download") from None
    names = {arg for _, arg, _ in ops if isinstance(arg, str)}
    if "QModel" not in names or not {"atomnet.quantize", "atomnet.quantize QModel"} & names:
        raise NotAQuantizedModel(path, "a Python pickle of something else (it holds no "
                                       "atomnet.quantize.QModel)")
    try:
        q = QModel.load(path)
    except (ConfigError, ImportError, TypeError, ValueError) as exc:
        raise NotAQuantizedModel(path, f"a pickled QModel this AtomNet cannot read ({exc}): "
                                       "written by another version? quantize again") from None
    unquantized = [op.name for op in q.ops
                   if op.kind in (*CONV_KINDS, "fc") and op.qweight is None]
    if not q.ops or unquantized:
        raise NotAQuantizedModel(path, "a QModel that was lowered but never quantized "
                                       f"({len(q.ops)} ops, {len(unquantized)} without int8 "
                                       "weights)")
    return q


def _looks_like(path: Path, data: bytes) -> tuple[str, str]:
    """What a file that is not a whole pickle looks like, and a hint what to do with it."""
    quantize_it = (f"; quantize it first: atomsim atomnet quantize {path} --data DATA "
                   "--out MODEL.q")
    if not data:
        return "an empty file", ""
    if data.startswith(_TORCH_LEGACY_HEAD):
        return "a PyTorch file in torch.save's legacy format (a checkpoint or state_dict)", ""
    if data.startswith(b"PK\x03\x04"):
        return _zip_looks_like(path, quantize_it)
    if data[4:8] == b"TFL3":
        return "a .tflite model: already exported, nothing to do", ""
    if data.startswith(_SQLITE_HEAD):
        return "an SQLite database (an AtomDB?)", ""
    if b"\x00" in data[:4096]:
        return f"a binary file of {len(data):,} bytes (not a pickle, zip or .tflite)", ""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return f"a binary file of {len(data):,} bytes (not a pickle, zip or .tflite)", ""
    try:
        doc = json.loads(text)
    except ValueError:
        return "a text file", ""
    if isinstance(doc, dict):
        keys = ", ".join(repr(k) for k in list(doc)[:4])
        return f"JSON text with keys {keys} (a stage config? train and quantize it)", ""
    return "JSON text", ""


def _zip_looks_like(path: Path, quantize_it: str) -> tuple[str, str]:
    """A zip: torch.save's file (a training checkpoint or a state_dict) or another archive."""
    import torch

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "a zip archive cut short or damaged (a PyTorch file? torch.save writes zips)", ""
    if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        shown = ", ".join(names[:3]) or "no entries"
        return f"a zip archive ({shown})", ""
    try:  # weights_only: no code of the file runs
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or exotic file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"a PyTorch file (torch.save) that torch cannot read safely ({first})", ""
    if isinstance(obj, dict) and {"model", "stage_config"} <= set(obj):
        return (f"a training checkpoint of atomnet train (epoch {obj.get('epoch', '?')})",
                quantize_it)
    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        first = next(iter(obj))
        return (f"a PyTorch state_dict ({len(obj)} tensors, the first {first!r}): the weights "
                "alone, without the stage config", "")
    return f"a PyTorch file (torch.save) holding a {type(obj).__name__}", ""


# Operator versions as TFLite's converter writes them for int8 (per-channel) models.
VERSIONS = {Op.CONV_2D: 3, Op.DEPTHWISE_CONV_2D: 3, Op.FULLY_CONNECTED: 4, Op.ADD: 2,
            Op.MUL: 2, Op.AVERAGE_POOL_2D: 2, Op.HARD_SWISH: 1, Op.PAD: 2}
FUSED = {"none": Act.NONE, "relu": Act.RELU, "relu6": Act.RELU6, "hsigmoid": Act.NONE}


@dataclass
class _Tensor:
    name: str
    shape: tuple[int, ...]
    type: int
    buffer: int = 0
    scale: list[float] | None = None
    zero_point: list[int] | None = None
    axis: int = 0


@dataclass
class _Operator:
    code: int
    inputs: list[int]
    outputs: list[int]
    options_type: int = 0
    options: tuple = ()  # (Start function prefix, {field: value}) or ()


@dataclass
class _Model:
    tensors: list[_Tensor] = field(default_factory=list)
    operators: list[_Operator] = field(default_factory=list)
    buffers: list[bytes] = field(default_factory=lambda: [b""])  # 0: TFLite's empty sentinel

    def tensor(self, t: _Tensor, data: np.ndarray | None = None) -> int:
        if data is not None:
            self.buffers.append(np.ascontiguousarray(data).tobytes())
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1


def _same_padding(size: int, k: int, s: int) -> tuple[int, int]:
    """(output size, pad before) of TFLite's SAME padding."""
    out = (size + s - 1) // s
    return out, max((out - 1) * s + k - size, 0) // 2


def _activation_tensor(q: QModel, index: int) -> _Tensor:
    t = q.tensors[index]
    shape = (1, q.num_classes) if index == q.output else (1, *t.shape)
    return _Tensor(t.name, shape, TensorType.INT8, scale=[t.scale], zero_point=[t.zero_point])


def _conv(m: _Model, q: QModel, op: QOp, ids: dict[int, int], pad_in_conv: bool) -> None:
    src = q.tensors[op.inputs[0]]
    x = ids[op.inputs[0]]
    (h, w, c), k, s, p = src.shape, op.kernel, op.stride, op.pad
    same = all(_same_padding(n, k, s) == ((n + 2 * p - k) // s + 1, p) for n in (h, w))
    padding = Padding.SAME if pad_in_conv and same and k > 1 else Padding.VALID
    if k > 1 and (not pad_in_conv or not same):  # an explicit PAD, then VALID
        if pad_in_conv:  # PyTorch pads top/left by k//2; only what the output reads below
            out_h, out_w = q.tensors[op.output].shape[:2]
            bottom = max(0, (out_h - 1) * s + k - h - p)
            right = max(0, (out_w - 1) * s + k - w - p)
        else:  # k//2 on every side, as the Pad atom of the costed graph
            bottom = right = p
        pads = np.array([[0, 0], [p, bottom], [p, right], [0, 0]], dtype=np.int32)
        t_pads = m.tensor(_Tensor(f"{op.name}.paddings", (4, 2), TensorType.INT32), pads)
        padded = _Tensor(f"{op.name}.padded", (1, h + p + bottom, w + p + right, c),
                         TensorType.INT8, scale=[src.scale], zero_point=[src.zero_point])
        y = m.tensor(padded)
        m.operators.append(_Operator(Op.PAD, [x, t_pads], [y], Opt.PadOptions,
                                     ("PadOptions", {})))
        x = y
    dw = op.kind == "dw"
    t_w = m.tensor(_Tensor(f"{op.name}.weights", op.qweight.shape, TensorType.INT8,
                           scale=[float(v) for v in op.wscale],
                           zero_point=[0] * len(op.wscale), axis=3 if dw else 0), op.qweight)
    s_in = src.scale
    t_b = m.tensor(_Tensor(f"{op.name}.bias", op.qbias.shape, TensorType.INT32,
                           scale=[float(np.float32(s_in * float(v))) for v in op.wscale],
                           zero_point=[0] * len(op.wscale)), op.qbias)
    fields = {"Padding": padding, "StrideW": s, "StrideH": s,
              "FusedActivationFunction": FUSED[op.act], "DilationWFactor": 1,
              "DilationHFactor": 1}
    if dw:
        fields["DepthMultiplier"] = 1
        m.operators.append(_Operator(Op.DEPTHWISE_CONV_2D, [x, t_w, t_b], [ids[op.output]],
                                     Opt.DepthwiseConv2DOptions,
                                     ("DepthwiseConv2DOptions", fields)))
    else:
        m.operators.append(_Operator(Op.CONV_2D, [x, t_w, t_b], [ids[op.output]],
                                     Opt.Conv2DOptions, ("Conv2DOptions", fields)))


def _describe(q: QModel, pad_in_conv: bool = False) -> _Model:
    if not q.ops or q.ops[0].qweight is None:
        raise ConfigError("export needs a quantized model (atomnet.quantize.quantize)")
    m = _Model()
    ids = {i: m.tensor(_activation_tensor(q, i)) for i in range(len(q.tensors))}
    for op in q.ops:
        ins, out = [ids[i] for i in op.inputs], [ids[op.output]]
        if op.kind in ("conv", "dw", "pw"):
            _conv(m, q, op, ids, pad_in_conv)
        elif op.kind == "fc":
            t_w = m.tensor(_Tensor(f"{op.name}.weights", op.qweight.shape, TensorType.INT8,
                                   scale=[float(op.wscale[0])], zero_point=[0]), op.qweight)
            s_b = float(np.float32(q.tensors[op.inputs[0]].scale * float(op.wscale[0])))
            t_b = m.tensor(_Tensor(f"{op.name}.bias", op.qbias.shape, TensorType.INT32,
                                   scale=[s_b], zero_point=[0]), op.qbias)
            m.operators.append(_Operator(
                Op.FULLY_CONNECTED, [ins[0], t_w, t_b], out, Opt.FullyConnectedOptions,
                ("FullyConnectedOptions", {"FusedActivationFunction": Act.NONE,
                                           "KeepNumDims": False})))
        elif op.kind == "hard_swish":
            m.operators.append(_Operator(Op.HARD_SWISH, ins, out, Opt.HardSwishOptions,
                                         ("HardSwishOptions", {})))
        elif op.kind in ("add", "mul"):
            code, kind = (Op.ADD, "AddOptions") if op.kind == "add" else (Op.MUL, "MulOptions")
            m.operators.append(_Operator(code, ins, out, getattr(Opt, kind),
                                         (kind, {"FusedActivationFunction": Act.NONE})))
        elif op.kind == "global_avgpool":
            h, w, _ = q.tensors[op.inputs[0]].shape
            m.operators.append(_Operator(Op.AVERAGE_POOL_2D, ins, out, Opt.Pool2DOptions, (
                "Pool2DOptions", {"Padding": Padding.VALID, "StrideW": 1, "StrideH": 1,
                                  "FilterWidth": w, "FilterHeight": h,
                                  "FusedActivationFunction": Act.NONE})))
        else:
            raise ConfigError(f"export: op {op.name} of kind {op.kind!r} has no TFLite op")
    return m


# ---- serialisation with the generated builder functions ----

def _offsets(b: flatbuffers.Builder, start, offsets: list[int]) -> int:
    start(b, len(offsets))
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def _bytes(b: flatbuffers.Builder, data: bytes) -> int:
    b.StartVector(1, len(data), 16)  # 16-byte aligned, so int32 bias reads are aligned
    b.head -= len(data)
    b.Bytes[b.head:b.head + len(data)] = data
    b.vectorNumElems = len(data)
    return b.EndVector()


def _table(b: flatbuffers.Builder, name: str, fields: dict) -> int:
    mod = importlib.import_module(f"tflite.{name}")  # the generated module of that table
    getattr(mod, f"{name}Start")(b)
    for key, value in fields.items():
        getattr(mod, f"{name}Add{key}")(b, value)
    return getattr(mod, f"{name}End")(b)


def serialize(m: _Model, description: str = "AtomNet int8") -> bytes:
    """The flatbuffer bytes of a described model (file identifier TFL3)."""
    # the package's __init__ shadows its generated modules with classes: import the modules
    Buf, Mdl, Oper, QP, SG, Ten = (importlib.import_module(f"tflite.{n}") for n in (
        "Buffer", "Model", "Operator", "QuantizationParameters", "SubGraph", "Tensor"))

    b = flatbuffers.Builder(1 << 16)
    buffers = []
    for data in m.buffers:
        vec = _bytes(b, data) if data else None
        Buf.BufferStart(b)
        if vec is not None:
            Buf.BufferAddData(b, vec)
        buffers.append(Buf.BufferEnd(b))
    tensors = []
    for t in m.tensors:
        name = b.CreateString(t.name)
        shape = b.CreateNumpyVector(np.array(t.shape, dtype=np.int32))
        qp = None
        if t.scale is not None:
            scale = b.CreateNumpyVector(np.array(t.scale, dtype=np.float32))
            zp = b.CreateNumpyVector(np.array(t.zero_point, dtype=np.int64))
            QP.QuantizationParametersStart(b)
            QP.QuantizationParametersAddScale(b, scale)
            QP.QuantizationParametersAddZeroPoint(b, zp)
            QP.QuantizationParametersAddQuantizedDimension(b, t.axis)
            qp = QP.QuantizationParametersEnd(b)
        Ten.TensorStart(b)
        Ten.TensorAddShape(b, shape)
        Ten.TensorAddType(b, t.type)
        Ten.TensorAddBuffer(b, t.buffer)
        Ten.TensorAddName(b, name)
        if qp is not None:
            Ten.TensorAddQuantization(b, qp)
        tensors.append(Ten.TensorEnd(b))
    codes = sorted({o.code for o in m.operators})
    operators = []
    for o in m.operators:
        opts = _table(b, o.options[0], o.options[1]) if o.options else None
        ins = b.CreateNumpyVector(np.array(o.inputs, dtype=np.int32))
        outs = b.CreateNumpyVector(np.array(o.outputs, dtype=np.int32))
        Oper.OperatorStart(b)
        Oper.OperatorAddOpcodeIndex(b, codes.index(o.code))
        Oper.OperatorAddInputs(b, ins)
        Oper.OperatorAddOutputs(b, outs)
        if opts is not None:
            Oper.OperatorAddBuiltinOptionsType(b, o.options_type)
            Oper.OperatorAddBuiltinOptions(b, opts)
        operators.append(Oper.OperatorEnd(b))
    opcodes = [_table(b, "OperatorCode", {"DeprecatedBuiltinCode": min(c, 127),
                                          "BuiltinCode": c, "Version": VERSIONS[c]})
               for c in codes]
    t_vec = _offsets(b, SG.SubGraphStartTensorsVector, tensors)
    o_vec = _offsets(b, SG.SubGraphStartOperatorsVector, operators)
    graph_in = b.CreateNumpyVector(np.array([0], dtype=np.int32))
    graph_out = b.CreateNumpyVector(np.array(m.operators[-1].outputs, dtype=np.int32))
    sg_name = b.CreateString("main")
    SG.SubGraphStart(b)
    SG.SubGraphAddTensors(b, t_vec)
    SG.SubGraphAddInputs(b, graph_in)
    SG.SubGraphAddOutputs(b, graph_out)
    SG.SubGraphAddOperators(b, o_vec)
    SG.SubGraphAddName(b, sg_name)
    subgraph = SG.SubGraphEnd(b)
    sg_vec = _offsets(b, Mdl.ModelStartSubgraphsVector, [subgraph])
    code_vec = _offsets(b, Mdl.ModelStartOperatorCodesVector, opcodes)
    buf_vec = _offsets(b, Mdl.ModelStartBuffersVector, buffers)
    desc = b.CreateString(description)
    Mdl.ModelStart(b)
    Mdl.ModelAddVersion(b, 3)
    Mdl.ModelAddOperatorCodes(b, code_vec)
    Mdl.ModelAddSubgraphs(b, sg_vec)
    Mdl.ModelAddDescription(b, desc)
    Mdl.ModelAddBuffers(b, buf_vec)
    b.Finish(Mdl.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def to_tflite(q: QModel, *, pad_in_conv: bool = False) -> bytes:
    """The .tflite bytes of a quantized model.

    Default: an explicit PAD (k//2 each side) before every k > 1 convolution, which is VALID
    (the graph the search costs); ``pad_in_conv``: SAME padding inside the convolution where
    it equals PyTorch's (TFLite-converter style).
    """
    return serialize(_describe(q, pad_in_conv))


def export_tflite(q: QModel, path: str | Path, *, pad_in_conv: bool = False) -> Path:
    """Write the .tflite file (padding as :func:`to_tflite`); returns its path."""
    path = Path(path)
    try:
        path.write_bytes(to_tflite(q, pad_in_conv=pad_in_conv))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write .tflite: {exc}") from exc
    return path
