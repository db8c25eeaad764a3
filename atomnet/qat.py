"""Quantization-aware fine-tuning (optional; post-training quantization is the default).

Starts from a post-training quantized :class:`~atomnet.quantize.QModel`: its folded float
weights become trainable, and the forward pass fake-quantizes what the int8 network rounds —
conv weights per output channel (symmetric, [-127, 127], scale max|w| / 127 recomputed every
step), the FC weights per tensor, and every activation tensor with the scale and zero point
fixed by calibration (straight-through gradients inside the range, zero outside). After
fine-tuning the integer weights, bias and multipliers are recomputed
(:func:`atomnet.quantize.quantize_ops`); tensor quantization, and so the .tflite structure,
stay as they were.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F

from atomnet.data import ImageSet
from atomnet.quantize import CONV_KINDS, QModel, float_op, quantize_ops
from atomsim.core.errors import ConfigError


def _fake_weight(kind: str, w: torch.Tensor) -> torch.Tensor:
    if kind == "fc":
        scale = float(w.detach().abs().max()) / 127.0 or 1.0
        return torch.fake_quantize_per_tensor_affine(w, scale, 0, -127, 127)
    peak = w.detach().abs().flatten(1).max(dim=1).values  # per output channel (axis 0)
    scale = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak)).float()
    zero = torch.zeros_like(scale, dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -127, 127)


def fake_quant_forward(q: QModel, x: torch.Tensor,
                       params: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
                       ) -> torch.Tensor:
    """Logits (N, classes) of the fake-quantized network on x (N, 3, R, R) in [0, 1]."""
    vals = {0: x}  # pixel / 255 is exactly representable at scale 1/255
    for op in q.ops:
        xs = [vals[i] for i in op.inputs]
        if op.kind in CONV_KINDS or op.kind == "fc":
            w, b = params[op.name] if params is not None else (
                torch.from_numpy(op.weight), torch.from_numpy(op.bias))
            y = float_op(op, xs, _fake_weight(op.kind, w), b)
        else:
            y = float_op(op, xs)
        t = q.tensors[op.output]
        vals[op.output] = torch.fake_quantize_per_tensor_affine(y, t.scale, t.zero_point,
                                                                -128, 127)
    return vals[q.output].flatten(1)


def finetune(q: QModel, data: ImageSet, *, epochs: int = 1, batch_size: int = 64,
             lr: float = 0.005, seed: int = 0) -> QModel:
    """A copy of ``q`` fine-tuned with fake quantization (SGD momentum 0.9, cosine decay)."""
    if q.ops[0].qweight is None:
        raise ConfigError("quantization-aware fine-tuning starts from a quantized model")
    if len(data) < batch_size or epochs < 1:
        raise ConfigError(f"QAT needs >= 1 epoch and >= one batch of images ({batch_size}), "
                          f"got {epochs} epochs, {len(data)} images")
    q = copy.deepcopy(q)
    torch.manual_seed(seed)
    params = {op.name: (torch.tensor(op.weight, requires_grad=True),
                        torch.tensor(op.bias, requires_grad=True))
              for op in q.ops if op.kind in CONV_KINDS or op.kind == "fc"}
    opt = torch.optim.SGD([p for pair in params.values() for p in pair], lr=lr, momentum=0.9)
    steps = len(data) // batch_size
    total, step = epochs * steps, 0
    for epoch in range(epochs):
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(
            seed * 1_000_003 + epoch))
        for i in range(steps):
            x, y = data.batch(order[i * batch_size:(i + 1) * batch_size].numpy())
            for group in opt.param_groups:
                group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
            loss = F.cross_entropy(fake_quant_forward(q, x, params), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    for op in q.ops:
        if op.name in params:
            w, b = params[op.name]
            op.weight, op.bias = w.detach().numpy().copy(), b.detach().numpy().copy()
    return quantize_ops(q)
