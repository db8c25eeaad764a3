"""Blocks to atoms: the one place where network structure becomes a list of :class:`Atom`.

Conventions (X-CUBE-AI style, as the calibration data shows):

* every k>1 convolution is preceded by its own Pad atom of ``k//2`` on each side ("same"
  padding, symmetric, as PyTorch-trained models are exported); the convolution itself has
  padding 0, so a stride-2 3x3 on an ``h`` map gives ``ceil(h/2)``;
* activations (ReLU/ReLU6) are fused into the convolution before them; hard-sigmoid (SE gate)
  stays a separate atom;
* channel counts of expansions are ``make_divisible(c_in·e, 8)`` unless given explicitly.

Block structure (METHOD.md, details as in the AtomNet reference implementation):

* SEP: Pad → DW k×k (stride s, act) → PW c_in→c_out (linear) [→ Add].
* MBConv: PW expand (act, skipped when e == 1) → Pad → DW k×k (act) [→ SE on the expanded
  map] → PW project (linear) [→ Add].
* ConvNext: Pad → DW k×k on c_in (act) [→ SE on c_in] → PW expand (act) → PW project
  (linear) [→ Add].
* SE on a c×h×w map: global avgpool → PW reduce c→make_divisible(c/4, 8) on 1×1 (ReLU) →
  PW expand back to c (linear) → hard-sigmoid → mul_bcast with the map.
* The residual Add is present when stride is 1 and c_in == c_out (override with ``residual``).
* Head: [PW feature mix (act)] → global avgpool → FC to ``num_classes``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atomsim.core.errors import ConfigError
from atomsim.nn.atoms import Atom, total_macs

BLOCK_TYPES = ("conv", "sep", "mbconv", "convnext")


@dataclass(frozen=True)
class Tensor:
    """Shape of an int8 feature map flowing between blocks (channels, height, width)."""

    c: int
    h: int
    w: int


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor`` (at least ``divisor``, never 10 % lower)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _out_len(size: int, k: int, stride: int) -> int:
    """Output length of a k×k conv with same padding k//2 on each side."""
    return (size + 2 * (k // 2) - k) // stride + 1


def lower_conv(x: Tensor, c_out: int, k: int, stride: int, *, groups: int = 1,
               activation: str = "none") -> tuple[list[Atom], Tensor]:
    """A k×k convolution with same padding: [Pad] + conv/dw/pw atom. Returns (atoms, output)."""
    atoms: list[Atom] = []
    h, w = x.h, x.w
    p = k // 2
    if p:
        atoms.append(Atom(type="pad", c_in=x.c, h_in=h, w_in=w, c_out=x.c,
                          h_out=h + 2 * p, w_out=w + 2 * p, padding=p))
        h, w = h + 2 * p, w + 2 * p
    if k == 1 and groups == 1:
        kind = "pw"
    elif groups == x.c == c_out and groups > 1:
        kind = "dw"
    else:
        kind = "conv"
    out = Tensor(c_out, _out_len(x.h, k, stride), _out_len(x.w, k, stride))
    atoms.append(Atom(type=kind, groups=groups, c_in=x.c, h_in=h, w_in=w, k1=k, k2=k,
                      c_out=c_out, h_out=out.h, w_out=out.w, stride=stride,
                      activation=activation))
    return atoms, out


def lower_stem(x: Tensor, c_out: int, *, k: int = 3, stride: int = 2,
               activation: str = "relu6") -> tuple[list[Atom], Tensor]:
    """The first convolution (normal k×k, stride 2): Pad + NC conv."""
    return lower_conv(x, c_out, k, stride, activation=activation)


def lower_se(x: Tensor, *, reduced: int | None = None) -> list[Atom]:
    """Squeeze-and-excitation on ``x``; the output has the shape of ``x``."""
    mid = reduced if reduced is not None else make_divisible(x.c / 4, 8)
    return [
        Atom(type="global_avgpool", c_in=x.c, h_in=x.h, w_in=x.w, c_out=x.c),
        Atom(type="pw", c_in=x.c, c_out=mid, activation="relu"),
        Atom(type="pw", c_in=mid, c_out=x.c),
        Atom(type="hard_sigmoid", c_in=x.c, c_out=x.c),
        Atom(type="mul_bcast", c_in=x.c, h_in=x.h, w_in=x.w, c_out=x.c, h_out=x.h, w_out=x.w),
    ]


def _residual(x: Tensor, out: Tensor, stride: int, residual: bool | None) -> list[Atom]:
    """The residual Add, when asked for or (by default) when the shapes allow."""
    if residual is None:
        residual = stride == 1 and x == out
    if not residual:
        return []
    if x != out:
        raise ConfigError(f"residual Add needs equal shapes, got {x} and {out}")
    return [Atom(type="add", c_in=out.c, h_in=out.h, w_in=out.w,
                 c_out=out.c, h_out=out.h, w_out=out.w)]


def lower_sep(x: Tensor, c_out: int, *, stride: int = 1, k: int = 3, se: bool = False,
              activation: str = "relu6", residual: bool | None = None
              ) -> tuple[list[Atom], Tensor]:
    """Separable block: DW k×k (stride) → [SE] → PW c_in→c_out → [Add]."""
    atoms, y = lower_conv(x, x.c, k, stride, groups=x.c, activation=activation)
    if se:
        atoms += lower_se(y)
    pw, out = lower_conv(y, c_out, 1, 1)
    atoms += pw
    return atoms + _residual(x, out, stride, residual), out


def lower_mbconv(x: Tensor, c_out: int, *, expansion: float = 6, stride: int = 1, k: int = 3,
                 se: bool = False, mid_channels: int | None = None, activation: str = "relu6",
                 residual: bool | None = None) -> tuple[list[Atom], Tensor]:
    """Inverted residual: PW expand (skipped at e == 1) → DW k×k → [SE] → PW project → [Add]."""
    mid = mid_channels if mid_channels is not None else (
        x.c if expansion == 1 else make_divisible(x.c * expansion, 8))
    atoms: list[Atom] = []
    y = x
    if mid != x.c or expansion != 1:
        atoms, y = lower_conv(x, mid, 1, 1, activation=activation)
    dw, y = lower_conv(y, mid, k, stride, groups=mid, activation=activation)
    atoms += dw
    if se:
        atoms += lower_se(y)
    pw, out = lower_conv(y, c_out, 1, 1)
    atoms += pw
    return atoms + _residual(x, out, stride, residual), out


def lower_convnext(x: Tensor, c_out: int, *, expansion: float = 6, stride: int = 1, k: int = 3,
                   se: bool = False, mid_channels: int | None = None, activation: str = "relu6",
                   residual: bool | None = None) -> tuple[list[Atom], Tensor]:
    """ConvNext-style: DW k×k on c_in → [SE] → PW expand (act) → PW project → [Add]."""
    mid = mid_channels if mid_channels is not None else make_divisible(x.c * expansion, 8)
    atoms, y = lower_conv(x, x.c, k, stride, groups=x.c, activation=activation)
    if se:
        atoms += lower_se(y)
    expand, y = lower_conv(y, mid, 1, 1, activation=activation)
    project, out = lower_conv(y, c_out, 1, 1)
    atoms += expand + project
    return atoms + _residual(x, out, stride, residual), out


def lower_head(x: Tensor, num_classes: int, *, feature_mix: int | None = None,
               activation: str = "relu6") -> list[Atom]:
    """Classifier head: [PW feature mix] → global avgpool → FC to ``num_classes``."""
    atoms: list[Atom] = []
    if feature_mix is not None:
        atoms, x = lower_conv(x, feature_mix, 1, 1, activation=activation)
    atoms.append(Atom(type="global_avgpool", c_in=x.c, h_in=x.h, w_in=x.w, c_out=x.c))
    atoms.append(Atom(type="fc", c_in=x.c, c_out=num_classes))
    return atoms


@dataclass(frozen=True)
class StageConfig:
    """One stage: ``depth`` blocks of one type; the first has ``stride``, the rest stride 1."""

    block: str  # conv (stem) | sep | mbconv | convnext
    width: int  # output channels of every block in the stage
    depth: int = 1
    expansion: float = 1  # PW expansion factor (mbconv, convnext)
    se: bool = False
    stride: int = 1
    kernel: int = 3
    mid_channels: int | None = None  # explicit expanded width (model-zoo configs); else derived
    residual: bool | None = None  # None: Add when stride 1 and c_in == c_out

    def __post_init__(self) -> None:
        if self.block not in BLOCK_TYPES:
            raise ConfigError(f"unknown block {self.block!r}; known: {', '.join(BLOCK_TYPES)}")
        for name in ("width", "depth", "stride", "kernel"):
            if getattr(self, name) < 1:
                raise ConfigError(f"stage {name} must be >= 1, got {getattr(self, name)}")
        if self.expansion <= 0:
            raise ConfigError(f"stage expansion must be > 0, got {self.expansion}")


@dataclass(frozen=True)
class NetworkConfig:
    """A whole CNN: input resolution, stages in order, and the classifier head."""

    resolution: int
    stages: tuple[StageConfig, ...]
    num_classes: int = 1000
    in_channels: int = 3
    feature_mix: int | None = None  # PW before the pool (MobileNetV2 / ProxylessNAS head)
    name: str = "network"
    activation: str = "relu6"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.resolution < 1 or self.num_classes < 1 or self.in_channels < 1:
            raise ConfigError("resolution, num_classes and in_channels must be >= 1")
        if not self.stages:
            raise ConfigError("a network needs at least one stage")


def lower_block(block: str, x: Tensor, c_out: int, *, stride: int, kernel: int = 3,
                expansion: float = 1, se: bool = False, mid_channels: int | None = None,
                residual: bool | None = None, activation: str = "relu6"
                ) -> tuple[list[Atom], Tensor]:
    """Dispatch one block of type ``block`` (see :data:`BLOCK_TYPES`)."""
    if block == "conv":
        return lower_conv(x, c_out, kernel, stride, activation=activation)
    common = {"stride": stride, "k": kernel, "se": se, "activation": activation,
              "residual": residual}
    if block == "sep":
        return lower_sep(x, c_out, **common)
    if block == "mbconv":
        return lower_mbconv(x, c_out, expansion=expansion, mid_channels=mid_channels, **common)
    if block == "convnext":
        return lower_convnext(x, c_out, expansion=expansion, mid_channels=mid_channels,
                              **common)
    raise ConfigError(f"unknown block {block!r}; known: {', '.join(BLOCK_TYPES)}")


def lower_network(config: NetworkConfig) -> list[Atom]:
    """Every atom of ``config`` in execution order (repeats kept: this is the network)."""
    x = Tensor(config.in_channels, config.resolution, config.resolution)
    atoms: list[Atom] = []
    for stage in config.stages:
        for i in range(stage.depth):
            block_atoms, x = lower_block(
                stage.block, x, stage.width, stride=stage.stride if i == 0 else 1,
                kernel=stage.kernel, expansion=stage.expansion, se=stage.se,
                mid_channels=stage.mid_channels, residual=stage.residual,
                activation=config.activation)
            atoms += block_atoms
    atoms += lower_head(x, config.num_classes, feature_mix=config.feature_mix,
                        activation=config.activation)
    return atoms


def network_macs(config: NetworkConfig, convention: str = "paper") -> int:
    """Total MACs of a network: ``"paper"`` (bias, pool, Add counted) or ``"published"``."""
    return total_macs(lower_network(config), convention)


# -- MCUNet / ProxylessNAS JSON -------------------------------------------------------------------

def load_proxyless_json(path: str | Path) -> NetworkConfig:
    """Read a ProxylessNAS-format model config (MCUNet model zoo) as a :class:`NetworkConfig`.

    Each MobileInvertedResidualBlock becomes a depth-1 ``mbconv`` stage with its own kernel,
    expansion, explicit ``mid_channels`` and its ``shortcut`` (Add) as written; ZeroLayer
    blocks (skipped layers: identity through the shortcut) lower to nothing.
    """
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read model config: {exc}") from exc
    try:
        first = spec["first_conv"]
        stages = [StageConfig(block="conv", width=first["out_channels"],
                              stride=first["stride"], kernel=first["kernel_size"])]
        c = first["out_channels"]
        for n, block in enumerate(spec["blocks"]):
            conv = block["mobile_inverted_conv"]
            if conv["name"] == "ZeroLayer":
                continue
            if conv["name"] != "MBInvertedConvLayer":
                raise ConfigError(f"{path}: block {n}: unsupported layer {conv['name']!r}")
            if conv["in_channels"] != c:
                raise ConfigError(f"{path}: block {n} expects {conv['in_channels']} channels, "
                                  f"previous block gives {c}")
            expansion = conv["expand_ratio"]
            mid = conv.get("mid_channels")
            stages.append(StageConfig(
                block="mbconv", width=conv["out_channels"], expansion=expansion,
                se=bool(conv.get("use_se")), stride=conv["stride"], kernel=conv["kernel_size"],
                mid_channels=mid if mid is not None else round(c * expansion),
                residual=block.get("shortcut") is not None))
            c = conv["out_channels"]
        mix = spec.get("feature_mix_layer")
        classifier = spec["classifier"]
        return NetworkConfig(
            resolution=spec["resolution"], stages=tuple(stages),
            num_classes=classifier["out_features"], in_channels=first["in_channels"],
            feature_mix=mix["out_channels"] if mix else None, name=path.stem)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a ProxylessNAS model config (missing {exc})") from exc
