"""PyTorch models built from a stage config, with the block definitions of METHOD.md.

Every convolution is ``ConvBNAct``: conv (no bias) + BatchNorm + activation, "same" padding
k//2 on each side (PyTorch style; a stride-2 conv on an even map pads top/left by k//2). The
batch norm is folded into the conv weights at quantization (``atomnet.quantize``), so the
deployed network has one int8 conv with an int32 bias per ``ConvBNAct``.

``summarize(model)`` lists the layers as AtomSim's atoms see them (type, shapes, MACs with the
paper's convention, parameters after BN folding), so the model can be held to the graph that
``atomsim`` builds from the same config.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from atomnet.config import BlockSpec, StageConfig, make_divisible


def activation(name: str) -> nn.Module:
    """The activation module for a config name ("none" for the linear projections)."""
    table = {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "none": nn.Identity}
    return table[name]()


class ConvBNAct(nn.Sequential):
    """k x k conv (stride, groups, padding k//2, no bias) -> BatchNorm -> activation."""

    def __init__(self, c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1,
                 act: str = "none"):
        super().__init__(
            nn.Conv2d(c_in, c_out, k, stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(c_out),
            activation(act),
        )
        self.act_name = act


class GlobalAvgPool(nn.Module):
    """Mean over H and W, keeping a 1 x 1 map: (N, C, H, W) -> (N, C, 1, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Add(nn.Module):
    """Residual Add (its own module so that summaries and quantization see it)."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class Mul(nn.Module):
    """Elementwise Mul, broadcasting a (N, C, 1, 1) gate over (N, C, H, W)."""

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return x * gate


class SqueezeExcite(nn.Module):
    """SE: pool -> 1x1 conv c->r (bias) -> ReLU -> 1x1 conv r->c (bias) -> hard-sigmoid -> Mul."""

    def __init__(self, c: int):
        super().__init__()
        r = make_divisible(c / 4)
        self.pool = GlobalAvgPool()
        self.reduce = nn.Conv2d(c, r, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(r, c, 1)
        self.gate = nn.Hardsigmoid()  # relu6(x + 3) / 6
        self.mul = Mul()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.relu(self.reduce(self.pool(x)))  # (N, r, 1, 1)
        return self.mul(x, self.gate(self.expand(s)))  # gate (N, c, 1, 1) broadcast


class MobileOne(nn.Module):
    """SEP: DW k x k (stride) -> act -> [SE] -> PW c_in -> c_out -> act. No residual."""

    def __init__(self, b: BlockSpec):
        super().__init__()
        self.dw = ConvBNAct(b.c_in, b.c_in, b.kernel_size, b.stride, groups=b.c_in, act=b.act)
        self.se = SqueezeExcite(b.c_in) if b.se else nn.Identity()
        self.pw = ConvBNAct(b.c_in, b.c_out, 1, act=b.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(self.se(self.dw(x)))


class MBConv(nn.Module):
    """Inverted residual: [PW expand -> act] -> DW k x k -> act -> [SE] -> PW project [+ x]."""

    def __init__(self, b: BlockSpec):
        super().__init__()
        m = b.mid_channels
        self.expand = (ConvBNAct(b.c_in, m, 1, act=b.act) if b.expand_ratio != 1
                       else nn.Identity())  # skipped at e == 1 (then m == c_in)
        self.dw = ConvBNAct(m, m, b.kernel_size, b.stride, groups=m, act=b.act)
        self.se = SqueezeExcite(m) if b.se else nn.Identity()
        self.project = ConvBNAct(m, b.c_out, 1, act="none")
        self.add = Add() if b.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return self.add(x, y) if self.add is not None else y


class MBConvNeXt(nn.Module):
    """ConvNext-style: DW k x k on c_in -> act -> [SE] -> PW expand -> act -> PW project [+ x]."""

    def __init__(self, b: BlockSpec):
        super().__init__()
        m = b.mid_channels
        self.dw = ConvBNAct(b.c_in, b.c_in, b.kernel_size, b.stride, groups=b.c_in, act=b.act)
        self.se = SqueezeExcite(b.c_in) if b.se else nn.Identity()
        self.expand = ConvBNAct(b.c_in, m, 1, act=b.act)
        self.project = ConvBNAct(m, b.c_out, 1, act="none")
        self.add = Add() if b.residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.expand(self.se(self.dw(x))))
        return self.add(x, y) if self.add is not None else y


class Head(nn.Module):
    """Classifier: global average pool -> fully connected to num_classes."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.pool = GlobalAvgPool()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(x).flatten(1))  # (N, C, 1, 1) -> (N, C) -> (N, classes)


def build_block(b: BlockSpec) -> nn.Module:
    """The module for one resolved block."""
    if b.block_type == "conv":
        return ConvBNAct(b.c_in, b.c_out, b.kernel_size, b.stride, act=b.act)
    return {"mobile_one": MobileOne, "mbconv": MBConv, "mbconvnext": MBConvNeXt}[
        b.block_type](b)


class AtomNet(nn.Module):
    """The network of a stage config. Input: (N, 3, R, R) floats, pixels / 255 in [0, 1]."""

    def __init__(self, config: StageConfig):
        super().__init__()
        self.config = config
        blocks = config.blocks()
        self.blocks = nn.Sequential(*(build_block(b) for b in blocks))
        self.head = Head(blocks[-1].c_out, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x))  # (N, 3, R, R) -> (N, num_classes)


# ---- per-layer summary in AtomSim's atom terms ----

@dataclass(frozen=True)
class LayerInfo:
    """One layer as an AtomSim atom sees it; shapes are (C, H, W)."""

    name: str
    type: str  # conv | dw | pw | fc | add | mul | mul_bcast | global_avgpool | hard_swish | ...
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: int = 0
    stride: int = 0
    groups: int = 0
    activation: str = "none"  # fused relu / relu6 (hard-swish is its own row)
    macs: int = 0  # the paper's convention (bias adds counted; see atomsim.nn.atoms)
    params: int = 0  # weights + bias after BN folding

    def as_dict(self) -> dict:
        """Plain dict (for JSON / tables)."""
        return asdict(self)


def _chw(t: torch.Tensor) -> tuple[int, int, int]:
    shape = tuple(t.shape[1:]) + (1, 1)
    return int(shape[0]), int(shape[1]), int(shape[2])


def _row(name: str, module: nn.Module, x: torch.Tensor, y: torch.Tensor,
         other: torch.Tensor | None) -> LayerInfo | None:
    cin, (cout, ho, wo) = _chw(x), _chw(y)
    if isinstance(module, nn.Conv2d):
        k, g = module.kernel_size[0], module.groups
        kind = "pw" if k == 1 and g == 1 else ("dw" if g == cin[0] == cout and g > 1 else "conv")
        weights = cout * k * k * (cin[0] // g)
        return LayerInfo(name, kind, cin, (cout, ho, wo), k, module.stride[0], g,
                         macs=weights * ho * wo + cout, params=weights + cout)
    if isinstance(module, nn.Linear):
        n = module.in_features * module.out_features
        return LayerInfo(name, "fc", (module.in_features, 1, 1), (module.out_features, 1, 1),
                         macs=n + module.out_features, params=n + module.out_features)
    if isinstance(module, GlobalAvgPool):
        return LayerInfo(name, "global_avgpool", cin, (cout, 1, 1), macs=cin[0] * cin[1] * cin[2])
    elements = cout * ho * wo
    if isinstance(module, Add):
        return LayerInfo(name, "add", cin, (cout, ho, wo), macs=elements)
    if isinstance(module, Mul):
        kind = "mul" if other is not None and other.shape == x.shape else "mul_bcast"
        return LayerInfo(name, kind, cin, (cout, ho, wo), macs=elements)
    if isinstance(module, nn.Hardswish):
        return LayerInfo(name, "hard_swish", cin, (cout, ho, wo), macs=elements)
    if isinstance(module, nn.Hardsigmoid):
        return LayerInfo(name, "hard_sigmoid", cin, (cout, ho, wo), macs=elements)
    return None


@torch.no_grad()
def summarize(model: AtomNet) -> list[LayerInfo]:
    """Layers in execution order, from hooks on one forward pass of a zero image.

    BatchNorm is folded (no row); ReLU / ReLU6 after a convolution are fused into its row.
    """
    rows: list[LayerInfo] = []

    def hook(name: str):
        def fn(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if isinstance(module, nn.ReLU | nn.ReLU6):
                last = rows[-1]
                fused = "relu6" if isinstance(module, nn.ReLU6) else "relu"
                rows[-1] = LayerInfo(**{**last.as_dict(), "activation": fused})
                return
            row = _row(name, module, inputs[0], output, inputs[1] if len(inputs) > 1 else None)
            if row is not None:
                rows.append(row)
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if not list(m.children()) or isinstance(m, Add | Mul | GlobalAvgPool)]
    was_training = model.training
    model.eval()
    try:
        r = model.config.input_resolution
        model(torch.zeros(1, 3, r, r))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return rows


def total_macs(rows: list[LayerInfo]) -> int:
    """Sum of the rows' MACs (paper convention)."""
    return sum(r.macs for r in rows)


def total_params(rows: list[LayerInfo]) -> int:
    """Sum of the rows' parameters (after BN folding)."""
    return sum(r.params for r in rows)
