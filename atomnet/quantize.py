"""int8 post-training quantization as TFLite does it, and the integer-only forward pass.

Steps (each a function):

1. :func:`lower` — the trained model becomes a flat list of int8-deployable ops with batch
   norm folded into the convolutions (w' = w * gamma / sigma, b' = beta - mean * gamma / sigma).
   The SE gate's hard-sigmoid relu6(z + 3) / 6 is folded into the conv before it
   (w' = w / 6, b' = (b + 3) / 6) and its output tensor gets the fixed range [0, 1]
   (scale 1/255, zero point -128), so int8 saturation *is* the clamp: conv + hard-sigmoid is
   one exact int8 conv. Hard-swish stays a separate op (TFLite HARD_SWISH).
2. :func:`calibrate` — float forward of those ops on sample images, min / max per tensor
   (range widened to include 0).
3. :func:`quantize` — per-tensor asymmetric int8 activations (scale = (max - min) / 255,
   zero point = round(-128 - min / scale)); per-channel symmetric int8 conv weights
   (zero point 0, scale = max|w| / 127), per-tensor for the fully connected layer (TFLite's
   default); int32 bias with scale s_in * s_w; fixed-point multipliers from
   ``atomsim.nn.ops.quant`` exactly as TFLite's Prepare() computes them (float32 scales
   widened to double). Global average pooling keeps its input's scale and zero point, as
   TFLite's AVERAGE_POOL_2D requires.
4. :func:`run_int8` — integer-only inference with AtomSim's reference kernels
   (``atomsim.nn.ops.reference``, bit-identical to TFLite Micro and to AtomSim's firmware).

The model input is int8 ``pixel - 128`` with scale 1/255 and zero point -128: exactly the
float input ``pixel / 255`` the model was trained on.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from atomnet.data import ImageSet
from atomnet.model import Add, AtomNet, ConvBNAct, MBConv, MBConvNeXt, MobileOne, SqueezeExcite
from atomsim.core.errors import ConfigError
from atomsim.nn.ops import quant
from atomsim.nn.ops import reference as ref

INPUT_SCALE = float(np.float32(1.0 / 255.0))
INPUT_ZERO_POINT = -128
GATE_SCALE, GATE_ZERO_POINT = INPUT_SCALE, -128  # the SE gate's fixed range [0, 1]
CONV_KINDS = ("conv", "dw", "pw")


@dataclass
class QTensor:
    """An int8 activation tensor: NHWC shape without the batch, and its quantization."""

    name: str
    shape: tuple[int, int, int]  # (H, W, C)
    scale: float | None = None  # float32 value widened to float
    zero_point: int | None = None
    fixed: bool = False  # range given by construction (input, SE gate), not calibrated
    same_as: int | None = None  # takes another tensor's scale / zero point (avg pooling)


@dataclass
class QOp:
    """One int8 op. Float fields come from :func:`lower`, integer fields from :func:`quantize`.

    kind: conv | dw | pw | fc | hard_swish | add | mul | global_avgpool.
    act (conv kinds): none | relu | relu6 | hsigmoid (folded SE gate, clamp to [0, 1]).
    """

    kind: str
    name: str
    inputs: list[int]
    output: int
    weight: np.ndarray | None = None  # float, torch layout: (co, ci/g, k, k) or (co, ci)
    bias: np.ndarray | None = None  # float (co,)
    kernel: int = 1
    stride: int = 1
    act: str = "none"
    qweight: np.ndarray | None = None  # int8, TFLite layout (see _tflite_layout)
    wscale: np.ndarray | None = None  # float32 per output channel (one for fc)
    qbias: np.ndarray | None = None  # int32
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None
    params: object = None  # the kernel's parameter record (atomsim.nn.ops.quant)

    @property
    def pad(self) -> int:
        """Top / left padding (PyTorch "same": k // 2 on each side)."""
        return self.kernel // 2


@dataclass
class QModel:
    """The lowered network: tensors (0 is the input) and ops in execution order."""

    tensors: list[QTensor] = field(default_factory=list)
    ops: list[QOp] = field(default_factory=list)
    num_classes: int = 0
    resolution: int = 0

    @property
    def output(self) -> int:
        """Index of the output tensor (the logits)."""
        return self.ops[-1].output

    def save(self, path: Path) -> None:
        """Pickle the quantized model (numpy arrays and dataclasses only)."""
        Path(path).write_bytes(pickle.dumps(self))

    @staticmethod
    def load(path: Path) -> QModel:
        """Read a model written by :meth:`save`."""
        try:
            obj = pickle.loads(Path(path).read_bytes())
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError) as exc:
            raise ConfigError(f"{path}: cannot read quantized model: {exc}") from exc
        if not isinstance(obj, QModel):
            raise ConfigError(f"{path}: not an AtomNet quantized model")
        return obj


# ---- 1. lowering with batch-norm folding ----

def fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """Conv weights and bias with the (eval-mode) batch norm folded in, float64."""
    w = conv.weight.detach().double()
    sigma = torch.sqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.detach().double() / sigma
    b = bn.bias.detach().double() - bn.running_mean.double() * gamma
    if conv.bias is not None:
        b = b + conv.bias.detach().double() * gamma
    return (w * gamma[:, None, None, None]).numpy(), b.numpy()


class _Lowering:
    def __init__(self, model: AtomNet):
        r = model.config.input_resolution
        self.q = QModel(num_classes=model.config.num_classes, resolution=r)
        self.q.tensors.append(QTensor("input", (r, r, 3), INPUT_SCALE, INPUT_ZERO_POINT,
                                      fixed=True))

    def tensor(self, name: str, shape: tuple[int, int, int], **kw) -> int:
        self.q.tensors.append(QTensor(name, shape, **kw))
        return len(self.q.tensors) - 1

    def conv(self, name: str, x: int, w: np.ndarray, b: np.ndarray, stride: int, groups: int,
             act: str) -> int:
        h, wd, c = self.q.tensors[x].shape
        co, k = w.shape[0], w.shape[2]
        kind = "pw" if k == 1 and groups == 1 else ("dw" if groups == c == co > 1 else "conv")
        if groups not in (1, c):
            raise ConfigError(f"{name}: grouped convolution (groups={groups}) is not supported")
        p = k // 2
        shape = ((h + 2 * p - k) // stride + 1, (wd + 2 * p - k) // stride + 1, co)
        gate = act == "hsigmoid"
        y = self.tensor(name, shape, scale=GATE_SCALE if gate else None,
                        zero_point=GATE_ZERO_POINT if gate else None, fixed=gate)
        self.q.ops.append(QOp(kind, name, [x], y, w.astype(np.float32), b.astype(np.float32),
                              kernel=k, stride=stride, act=act))
        return y

    def simple(self, kind: str, name: str, inputs: list[int], shape, **kw) -> int:
        y = self.tensor(name, shape, **kw)
        self.q.ops.append(QOp(kind, name, inputs, y))
        return y

    def conv_bn_act(self, name: str, m: ConvBNAct, x: int) -> int:
        w, b = fold_bn(m[0], m[1])
        fused = m.act_name if m.act_name in ("relu", "relu6") else "none"
        y = self.conv(name, x, w, b, m[0].stride[0], m[0].groups, fused)
        if m.act_name == "hswish":
            y = self.simple("hard_swish", f"{name}.hswish", [y], self.q.tensors[y].shape)
        return y

    def se(self, name: str, m: SqueezeExcite, x: int) -> int:
        h, w, c = self.q.tensors[x].shape
        p = self.simple("global_avgpool", f"{name}.pool", [x], (1, 1, c), same_as=x)
        r = self.conv(f"{name}.reduce", p, m.reduce.weight.detach().double().numpy(),
                      m.reduce.bias.detach().double().numpy(), 1, 1, "relu")
        w6 = m.expand.weight.detach().double().numpy() / 6.0  # hard-sigmoid folded: (z+3)/6
        b6 = (m.expand.bias.detach().double().numpy() + 3.0) / 6.0
        g = self.conv(f"{name}.expand", r, w6, b6, 1, 1, "hsigmoid")
        return self.simple("mul", f"{name}.mul", [x, g], (h, w, c))

    def module(self, name: str, m: nn.Module, x: int) -> int:
        if isinstance(m, ConvBNAct):
            return self.conv_bn_act(name, m, x)
        if isinstance(m, SqueezeExcite):
            return self.se(name, m, x)
        if isinstance(m, nn.Identity):
            return x
        if isinstance(m, MobileOne | MBConv | MBConvNeXt):
            y = x
            order = {MobileOne: ("dw", "se", "pw"), MBConv: ("expand", "dw", "se", "project"),
                     MBConvNeXt: ("dw", "se", "expand", "project")}[type(m)]
            for part in order:
                y = self.module(f"{name}.{part}", getattr(m, part), y)
            if isinstance(getattr(m, "add", None), Add):
                y = self.simple("add", f"{name}.add", [x, y], self.q.tensors[y].shape)
            return y
        raise ConfigError(f"{name}: cannot lower module {type(m).__name__}")


@torch.no_grad()
def lower(model: AtomNet) -> QModel:
    """The float op list of ``model`` (eval mode, batch norm folded)."""
    model = model.eval().cpu()
    low = _Lowering(model)
    x = 0
    for i, block in enumerate(model.blocks):
        x = low.module(f"blocks.{i}", block, x)
    c = low.q.tensors[x].shape[2]
    p = low.simple("global_avgpool", "head.pool", [x], (1, 1, c), same_as=x)
    fc = model.head.fc
    y = low.tensor("head.fc", (1, 1, fc.out_features))
    low.q.ops.append(QOp("fc", "head.fc", [p], y, fc.weight.detach().numpy().astype(np.float32),
                         fc.bias.detach().numpy().astype(np.float32)))
    return low.q


# ---- 2. float forward of the lowered ops (calibration, and a check of the folding) ----

def float_op(op: QOp, xs: list[torch.Tensor], w: torch.Tensor | None = None,
             b: torch.Tensor | None = None) -> torch.Tensor:
    """One op in float (NCHW); ``w`` / ``b`` replace the op's own weights when given."""
    if op.kind in CONV_KINDS or op.kind == "fc":
        w = torch.from_numpy(op.weight) if w is None else w
        b = torch.from_numpy(op.bias) if b is None else b
    if op.kind in CONV_KINDS:
        y = F.conv2d(xs[0], w, b, op.stride, op.pad, groups=xs[0].shape[1] // w.shape[1])
        return {"none": y, "relu": F.relu(y), "relu6": F.relu6(y),
                "hsigmoid": y.clamp(0.0, 1.0)}[op.act]
    if op.kind == "fc":
        return F.linear(xs[0].flatten(1), w, b)[:, :, None, None]  # (N, classes, 1, 1)
    if op.kind == "hard_swish":
        return F.hardswish(xs[0])
    if op.kind == "add":
        return xs[0] + xs[1]
    if op.kind == "mul":
        return xs[0] * xs[1]  # (N, C, H, W) * (N, C, 1, 1)
    if op.kind == "global_avgpool":
        return xs[0].mean(dim=(2, 3), keepdim=True)
    raise ConfigError(f"unknown op kind {op.kind!r}")


@torch.no_grad()
def run_float(q: QModel, x: torch.Tensor, ranges: dict | None = None) -> torch.Tensor:
    """Float forward of the lowered ops on x (N, 3, R, R); logits (N, classes).

    With ``ranges`` (tensor index -> [min, max]) every tensor's range is widened to cover
    this batch.
    """
    vals = {0: x.float()}
    for op in q.ops:
        vals[op.output] = float_op(op, [vals[i] for i in op.inputs])
        if ranges is not None:
            lo, hi = float(vals[op.output].min()), float(vals[op.output].max())
            old = ranges.get(op.output, (lo, hi))
            ranges[op.output] = (min(old[0], lo), max(old[1], hi))
    return vals[q.output].flatten(1)


def calibrate(q: QModel, data: ImageSet, count: int = 256, batch_size: int = 64) -> dict:
    """Min / max of every tensor over the first ``count`` images of ``data``."""
    ranges: dict[int, tuple[float, float]] = {}
    count = min(count, len(data))
    if count < 1:
        raise ConfigError("calibration needs at least one image")
    for start in range(0, count, batch_size):
        x, _ = data.batch(range(start, min(start + batch_size, count)))
        run_float(q, x, ranges)
    return ranges


# ---- 3. quantization ----

def _round(x: np.ndarray) -> np.ndarray:
    """Round half away from zero (std::round, as TFLite's quantizer does)."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def activation_params(lo: float, hi: float) -> tuple[float, int]:
    """(scale, zero point) of an asymmetric int8 tensor covering [lo, hi] and 0."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = float(np.float32(max(hi - lo, 1e-6) / 255.0))
    zp = int(np.clip(_round(np.array(-128.0 - lo / scale)), -128, 127))
    return scale, zp


def tflite_weight_layout(op: QOp) -> np.ndarray:
    """Float weights in TFLite's layout: conv / pw (co, k, k, ci), dw (1, k, k, c), fc (co, ci)."""
    if op.kind == "dw":
        return op.weight.transpose(1, 2, 3, 0)  # (c, 1, k, k) -> (1, k, k, c)
    if op.kind in ("conv", "pw"):
        return op.weight.transpose(0, 2, 3, 1)  # (co, ci, k, k) -> (co, k, k, ci)
    return op.weight


def _quantize_weights(op: QOp, s_in: float, s_out: float) -> None:
    w = tflite_weight_layout(op).astype(np.float64)
    axis = 3 if op.kind == "dw" else 0
    if op.kind == "fc":
        peak = np.array([np.abs(w).max()])
    else:
        peak = np.abs(np.moveaxis(w, axis, 0)).reshape(w.shape[axis], -1).max(axis=1)
    wscale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    per = wscale.astype(np.float64).reshape(shape) if op.kind != "fc" else float(wscale[0])
    op.qweight = np.clip(_round(w / per), -127, 127).astype(np.int8)
    op.wscale = wscale
    bias_scale = s_in * wscale.astype(np.float64)
    op.qbias = np.clip(_round(op.bias.astype(np.float64) / bias_scale), quant.INT32_MIN,
                       quant.INT32_MAX).astype(np.int32)
    op.multiplier, op.shift = quant.per_channel_multipliers(bias_scale / s_out)


def quantize(q: QModel, ranges: dict) -> QModel:
    """Fill in every tensor's scale / zero point and every op's integer parameters."""
    for i, t in enumerate(q.tensors):
        if t.fixed:
            continue
        if t.same_as is not None:
            src = q.tensors[t.same_as]
            t.scale, t.zero_point = src.scale, src.zero_point
        elif i in ranges:
            t.scale, t.zero_point = activation_params(*ranges[i])
        else:
            raise ConfigError(f"tensor {t.name} was not seen during calibration")
    return quantize_ops(q)


def quantize_ops(q: QModel) -> QModel:
    """Integer weights, bias and kernel parameters of every op from the float weights and the
    tensors' scales (quantization-aware fine-tuning calls this again after changing weights)."""
    for op in q.ops:
        ins = [q.tensors[i] for i in op.inputs]
        out = q.tensors[op.output]
        if op.kind in CONV_KINDS or op.kind == "fc":
            _quantize_weights(op, ins[0].scale, out.scale)
            kind = op.act if op.act in ("relu", "relu6") else "none"
            lo, hi = quant.activation_range(kind, out.scale, out.zero_point)
            if op.kind == "fc":
                op.params = quant.FcParams(-ins[0].zero_point, out.zero_point, lo, hi, 0)
            else:
                op.params = quant.ConvParams(op.stride, op.stride, op.pad, op.pad, 1, 1,
                                             -ins[0].zero_point, out.zero_point, lo, hi)
        elif op.kind == "hard_swish":
            op.params = quant.hard_swish_quant_params(ins[0].scale, ins[0].zero_point,
                                                      out.scale, out.zero_point)
        elif op.kind == "add":
            op.params = quant.add_quant_params(ins[0].scale, ins[0].zero_point, ins[1].scale,
                                               ins[1].zero_point, out.scale, out.zero_point)
        elif op.kind == "mul":
            op.params = quant.mul_quant_params(ins[0].scale, ins[0].zero_point, ins[1].scale,
                                               ins[1].zero_point, out.scale, out.zero_point)
    return q


def post_training_quantize(model: AtomNet, calibration: ImageSet, count: int = 256) -> QModel:
    """lower -> calibrate -> quantize."""
    q = lower(model)
    return quantize(q, calibrate(q, calibration, count))


# ---- 4. integer-only forward pass ----

def _int8_op(op: QOp, q: QModel, xs: list[np.ndarray]) -> np.ndarray:
    h, w, _ = q.tensors[op.output].shape
    if op.kind == "conv":
        return ref.conv_s8(xs[0], op.qweight, op.qbias, op.multiplier, op.shift, op.params,
                           (h, w))
    if op.kind == "pw":
        return ref.pointwise_conv_s8(xs[0], op.qweight, op.qbias, op.multiplier, op.shift,
                                     op.params, (h, w))
    if op.kind == "dw":
        return ref.depthwise_conv_s8(xs[0], op.qweight, op.qbias, op.multiplier, op.shift,
                                     op.params, (h, w))
    if op.kind == "fc":
        return ref.fully_connected_s8(xs[0], op.qweight, op.qbias, op.multiplier, op.shift,
                                      op.params)
    if op.kind == "hard_swish":
        return ref.hard_swish_s8(xs[0], op.params)
    if op.kind == "add":
        return ref.add_s8(xs[0], xs[1], op.params)
    if op.kind == "mul":
        return ref.mul_s8(xs[0], xs[1], op.params)
    if op.kind == "global_avgpool":
        return ref.global_avgpool_s8(xs[0])
    raise ConfigError(f"unknown op kind {op.kind!r}")


def run_int8(q: QModel, x: np.ndarray, keep: bool = False):
    """int8 inference on x int8 (N, R, R, 3) = pixel - 128; int8 logits (N, classes).

    With ``keep`` also returns every tensor of the last image (index -> int8 array).
    """
    if x.dtype != np.int8 or x.ndim != 4 or x.shape[1:] != q.tensors[0].shape:
        raise ConfigError(f"run_int8: expected int8 (N, {q.resolution}, {q.resolution}, 3), "
                          f"got {x.dtype} {x.shape}")
    out = np.empty((len(x), q.num_classes), dtype=np.int8)
    vals: dict[int, np.ndarray] = {}
    for n in range(len(x)):
        vals = {0: x[n:n + 1]}
        for op in q.ops:
            vals[op.output] = _int8_op(op, q, [vals[i] for i in op.inputs])
        out[n] = vals[q.output].reshape(-1)
    return (out, vals) if keep else out


def dequantize_output(q: QModel, logits: np.ndarray) -> np.ndarray:
    """int8 logits to float."""
    t = q.tensors[q.output]
    return (logits.astype(np.float64) - t.zero_point) * t.scale


def evaluate_int8(q: QModel, data: ImageSet, count: int | None = None) -> float:
    """Top-1 accuracy (0..1) of the integer-only forward pass on the first ``count`` images."""
    count = len(data) if count is None else min(count, len(data))
    idx = np.arange(count)
    pred = run_int8(q, data.int8_inputs(idx)).argmax(axis=1)
    return float((pred == data.labels[idx]).mean())
