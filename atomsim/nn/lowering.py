"""Blocks to graphs: the one place where network structure becomes operators (atoms).

Every block is built into a :class:`~atomsim.nn.graph.Graph` by :class:`GraphBuilder`: the ops
read and write real tensor ids, so a residual Add takes the block input and the projection
output, and a squeeze-excite Mul takes the feature map and the hard-sigmoid gate. The atom-list
functions (``lower_sep``, ``lower_block``, ...) build a small graph and return its atoms; they
are what atom spaces (atomsim.nn.spaces) and the additivity check enumerate.

Conventions (X-CUBE-AI style, as the calibration data shows):

* every k>1 convolution is preceded by its own Pad atom of ``k//2`` on each side ("same"
  padding, symmetric, as PyTorch-trained models are exported); the convolution itself has
  padding 0, so a stride-2 3x3 on an ``h`` map gives ``ceil(h/2)``;
* activations ReLU/ReLU6 are fused into the convolution before them; hard-swish and the SE
  gate's hard-sigmoid are separate atoms;
* channel counts of expansions are ``make_divisible(c_in·e, 8)`` unless given explicitly.

Block structure (METHOD.md, "Network-level conventions"):

* SEP (``sep``; the stage configs' ``mobile_one``): Pad → DW k×k (stride s, act) [→ SE] →
  PW c_in→c_out (linear for ``sep``, act for ``mobile_one``) [→ Add, ``sep`` only].
* MBConv: PW expand (act, skipped when e == 1) → Pad → DW k×k (act) [→ SE on the expanded
  map] → PW project (linear) [→ Add].
* ConvNext (``convnext``; the stage configs' ``mbconvnext``): Pad → DW k×k on c_in (act)
  [→ SE on c_in] → PW expand (act) → PW project (linear) [→ Add].
* SE on a c×h×w map: global avgpool → PW reduce c→make_divisible(c/4, 8) on 1×1 (ReLU) →
  PW expand back to c (linear) → hard-sigmoid → mul_bcast(map, gate).
* The residual Add is present when stride is 1 and c_in == c_out (override with ``residual``).
* Head: [PW feature mix (act)] → global avgpool → FC to ``num_classes``.

Graphs from configs are shape-only; :func:`with_random_weights` gives them deterministic int8
weights and plausible quantization from a seed (configs carry no weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atomsim.core.errors import ConfigError
from atomsim.nn.atoms import CONV_TYPES, Atom, total_macs
from atomsim.nn.graph import INT32, Graph, Quant

BLOCK_TYPES = ("conv", "sep", "mbconv", "convnext")
ACTIVATIONS = ("none", "relu", "relu6", "hswish")


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


def _check_activation(activation: str) -> str:
    activation = {"hard_swish": "hswish", "h_swish": "hswish"}.get(activation, activation)
    if activation not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {activation!r}; known: {', '.join(ACTIVATIONS)}")
    return activation


class GraphBuilder:
    """Appends blocks to a graph; every method takes and returns tensor ids."""

    def __init__(self, graph: Graph | None = None, *, explicit_pad: bool = True):
        self.graph = graph if graph is not None else Graph()
        self.explicit_pad = explicit_pad  # False: padding inside the conv (TFLite style)

    def shape(self, t: int) -> Tensor:
        """The (c, h, w) of activation ``t``."""
        _, h, w, c = self.graph.tensors[t].shape
        return Tensor(c, h, w)

    def input(self, x: Tensor, name: str = "input") -> int:
        """A graph input of shape ``x``."""
        return self.graph.add_input((1, x.h, x.w, x.c), name=name)

    def _const(self, shape: tuple[int, ...], name: str, dtype: str = "int8") -> int:
        return self.graph.add_tensor(shape, name=name, dtype=dtype, const=True)

    def activate(self, y: int, activation: str) -> int:
        """A standalone activation atom (hard-swish; ReLU/ReLU6 are fused by :meth:`conv`)."""
        activation = _check_activation(activation)
        if activation == "hswish":
            return self.graph.add_op("hard_swish", [y])
        if activation in ("relu", "relu6"):
            return self.graph.add_op(activation, [y])
        return y

    def conv(self, x: int, c_out: int, k: int, stride: int, *, groups: int = 1,
             activation: str = "none") -> int:
        """A k×k convolution with same padding: [Pad] + conv/dw/pw [+ hard-swish]."""
        activation = _check_activation(activation)
        g = self.graph
        c_in = self.shape(x).c
        p = k // 2
        own_padding = (0, 0, 0, 0)
        if p and self.explicit_pad:
            x = g.add_op("pad", [x], padding=(p, p, p, p))
        elif p:
            own_padding = (p, p, p, p)
        if k == 1 and groups == 1:
            kind = "pw"
        elif groups == c_in == c_out and groups > 1:
            kind = "dw"
        elif groups == 1:
            kind = "conv"
        else:
            raise ConfigError(f"grouped convolution (groups {groups}, {c_in} -> {c_out}) is "
                              "not an atom")
        index = len(g.ops)
        filt = (1, k, k, c_in) if kind == "dw" else (c_out, k, k, c_in)
        w = self._const(filt, f"{kind}{index}.weights")
        b = self._const((c_out,), f"{kind}{index}.bias", INT32)
        fused = activation if activation in ("relu", "relu6") else "none"
        y = g.add_op(kind, [x, w, b], stride=stride, activation=fused, padding=own_padding)
        return self.activate(y, "hswish") if activation == "hswish" else y

    def se(self, x: int, *, reduced: int | None = None) -> int:
        """Squeeze-and-excitation on ``x``: returns mul_bcast(x, gate)."""
        g = self.graph
        c = self.shape(x).c
        mid = reduced if reduced is not None else make_divisible(c / 4, 8)
        pooled = g.add_op("global_avgpool", [x])
        r = self.conv(pooled, mid, 1, 1, activation="relu")
        e = self.conv(r, c, 1, 1)
        gate = g.add_op("hard_sigmoid", [e])
        return g.add_op("mul_bcast", [x, gate])

    def residual(self, x: int, out: int, stride: int, residual: bool | None) -> int:
        """add(block input, block output) when asked for or (default) when shapes allow."""
        xs, ys = self.shape(x), self.shape(out)
        if residual is None:
            residual = stride == 1 and xs == ys
        if not residual:
            return out
        if xs != ys:
            raise ConfigError(f"residual Add needs equal shapes, got {xs} and {ys}")
        return self.graph.add_op("add", [x, out])

    def sep(self, x: int, c_out: int, *, stride: int = 1, k: int = 3, se: bool = False,
            activation: str = "relu6", residual: bool | None = None,
            pw_activation: str = "none") -> int:
        """Separable block: DW k×k (stride) → [SE] → PW c_in→c_out → [Add]."""
        c = self.shape(x).c
        y = self.conv(x, c, k, stride, groups=c, activation=activation)
        if se:
            y = self.se(y)
        out = self.conv(y, c_out, 1, 1, activation=pw_activation)
        return self.residual(x, out, stride, residual)

    def mbconv(self, x: int, c_out: int, *, expansion: float = 6, stride: int = 1, k: int = 3,
               se: bool = False, mid_channels: int | None = None, activation: str = "relu6",
               residual: bool | None = None) -> int:
        """Inverted residual: PW expand (skipped at e == 1) → DW k×k → [SE] → PW project."""
        c = self.shape(x).c
        mid = mid_channels if mid_channels is not None else (
            c if expansion == 1 else make_divisible(c * expansion, 8))
        y = x
        if mid != c or expansion != 1:
            y = self.conv(x, mid, 1, 1, activation=activation)
        y = self.conv(y, mid, k, stride, groups=mid, activation=activation)
        if se:
            y = self.se(y)
        out = self.conv(y, c_out, 1, 1)
        return self.residual(x, out, stride, residual)

    def convnext(self, x: int, c_out: int, *, expansion: float = 6, stride: int = 1,
                 k: int = 3, se: bool = False, mid_channels: int | None = None,
                 activation: str = "relu6", residual: bool | None = None) -> int:
        """ConvNext-style: DW k×k on c_in → [SE] → PW expand (act) → PW project → [Add]."""
        c = self.shape(x).c
        mid = mid_channels if mid_channels is not None else make_divisible(c * expansion, 8)
        y = self.conv(x, c, k, stride, groups=c, activation=activation)
        if se:
            y = self.se(y)
        y = self.conv(y, mid, 1, 1, activation=activation)
        out = self.conv(y, c_out, 1, 1)
        return self.residual(x, out, stride, residual)

    def block(self, block: str, x: int, c_out: int, *, stride: int, kernel: int = 3,
              expansion: float = 1, se: bool = False, mid_channels: int | None = None,
              residual: bool | None = None, activation: str = "relu6",
              pw_activation: str = "none") -> int:
        """Dispatch one block of type ``block`` (see :data:`BLOCK_TYPES`)."""
        if block == "conv":
            return self.conv(x, c_out, kernel, stride, activation=activation)
        common: dict[str, Any] = {"stride": stride, "k": kernel, "se": se,
                                  "activation": activation, "residual": residual}
        if block == "sep":
            return self.sep(x, c_out, pw_activation=pw_activation, **common)
        if block == "mbconv":
            return self.mbconv(x, c_out, expansion=expansion, mid_channels=mid_channels,
                               **common)
        if block == "convnext":
            return self.convnext(x, c_out, expansion=expansion, mid_channels=mid_channels,
                                 **common)
        raise ConfigError(f"unknown block {block!r}; known: {', '.join(BLOCK_TYPES)}")

    def head(self, x: int, num_classes: int, *, feature_mix: int | None = None,
             activation: str = "relu6") -> int:
        """Classifier head: [PW feature mix] → global avgpool → FC to ``num_classes``."""
        g = self.graph
        if feature_mix is not None:
            x = self.conv(x, feature_mix, 1, 1, activation=activation)
        pooled = g.add_op("global_avgpool", [x])
        c = self.shape(pooled).c
        index = len(g.ops)
        w = self._const((num_classes, c), f"fc{index}.weights")
        b = self._const((num_classes,), f"fc{index}.bias", INT32)
        return g.add_op("fc", [pooled, w, b], activation="none")


# -- atom lists (what atom spaces and the additivity check enumerate) ---------------------------

def _atoms_of(x: Tensor, build) -> tuple[list[Atom], Tensor]:
    b = GraphBuilder()
    out = build(b, b.input(x))
    return b.graph.atoms(), b.shape(out)


def lower_conv(x: Tensor, c_out: int, k: int, stride: int, *, groups: int = 1,
               activation: str = "none") -> tuple[list[Atom], Tensor]:
    """A k×k convolution with same padding: [Pad] + conv/dw/pw atom. Returns (atoms, output)."""
    return _atoms_of(x, lambda b, t: b.conv(t, c_out, k, stride, groups=groups,
                                            activation=activation))


def lower_stem(x: Tensor, c_out: int, *, k: int = 3, stride: int = 2,
               activation: str = "relu6") -> tuple[list[Atom], Tensor]:
    """The first convolution (normal k×k, stride 2): Pad + NC conv."""
    return lower_conv(x, c_out, k, stride, activation=activation)


def lower_se(x: Tensor, *, reduced: int | None = None) -> list[Atom]:
    """Squeeze-and-excitation on ``x``; the output has the shape of ``x``."""
    return _atoms_of(x, lambda b, t: b.se(t, reduced=reduced))[0]


def lower_sep(x: Tensor, c_out: int, *, stride: int = 1, k: int = 3, se: bool = False,
              activation: str = "relu6", residual: bool | None = None,
              pw_activation: str = "none") -> tuple[list[Atom], Tensor]:
    """Separable block: DW k×k (stride) → [SE] → PW c_in→c_out → [Add]."""
    return _atoms_of(x, lambda b, t: b.sep(t, c_out, stride=stride, k=k, se=se,
                                           activation=activation, residual=residual,
                                           pw_activation=pw_activation))


def lower_mbconv(x: Tensor, c_out: int, *, expansion: float = 6, stride: int = 1, k: int = 3,
                 se: bool = False, mid_channels: int | None = None, activation: str = "relu6",
                 residual: bool | None = None) -> tuple[list[Atom], Tensor]:
    """Inverted residual: PW expand (skipped at e == 1) → DW k×k → [SE] → PW project → [Add]."""
    return _atoms_of(x, lambda b, t: b.mbconv(t, c_out, expansion=expansion, stride=stride,
                                              k=k, se=se, mid_channels=mid_channels,
                                              activation=activation, residual=residual))


def lower_convnext(x: Tensor, c_out: int, *, expansion: float = 6, stride: int = 1, k: int = 3,
                   se: bool = False, mid_channels: int | None = None, activation: str = "relu6",
                   residual: bool | None = None) -> tuple[list[Atom], Tensor]:
    """ConvNext-style: DW k×k on c_in → [SE] → PW expand (act) → PW project → [Add]."""
    return _atoms_of(x, lambda b, t: b.convnext(t, c_out, expansion=expansion, stride=stride,
                                                k=k, se=se, mid_channels=mid_channels,
                                                activation=activation, residual=residual))


def lower_head(x: Tensor, num_classes: int, *, feature_mix: int | None = None,
               activation: str = "relu6") -> list[Atom]:
    """Classifier head: [PW feature mix] → global avgpool → FC to ``num_classes``."""
    return _atoms_of(x, lambda b, t: b.head(t, num_classes, feature_mix=feature_mix,
                                            activation=activation))[0]


def lower_block(block: str, x: Tensor, c_out: int, *, stride: int, kernel: int = 3,
                expansion: float = 1, se: bool = False, mid_channels: int | None = None,
                residual: bool | None = None, activation: str = "relu6",
                pw_activation: str = "none") -> tuple[list[Atom], Tensor]:
    """Dispatch one block of type ``block`` (see :data:`BLOCK_TYPES`)."""
    return _atoms_of(x, lambda b, t: b.block(
        block, t, c_out, stride=stride, kernel=kernel, expansion=expansion, se=se,
        mid_channels=mid_channels, residual=residual, activation=activation,
        pw_activation=pw_activation))


# -- whole networks -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StageConfig:
    """One stage: ``depth`` blocks of one type; the first has ``stride``, the rest stride 1.

    ``kernels`` / ``expansions`` give per-block values (as long as ``depth``) and win over
    ``kernel`` / ``expansion``.
    """

    block: str  # conv (stem) | sep | mbconv | convnext
    width: int  # output channels of every block in the stage
    depth: int = 1
    expansion: float = 1  # PW expansion factor (mbconv, convnext)
    se: bool = False
    stride: int = 1
    kernel: int = 3
    mid_channels: int | None = None  # explicit expanded width (model-zoo configs); else derived
    residual: bool | None = None  # None: Add when stride 1 and c_in == c_out
    activation: str | None = None  # None: the network's activation
    pw_activation: bool = False  # sep only: activation after the PW too (stage configs'
    # mobile_one)
    kernels: tuple[int, ...] | None = None
    expansions: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.block not in BLOCK_TYPES:
            raise ConfigError(f"unknown block {self.block!r}; known: {', '.join(BLOCK_TYPES)}")
        for name in ("width", "depth", "stride", "kernel"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"stage {name} must be an int >= 1, got {value!r}")
        if not isinstance(self.expansion, (int, float)) or self.expansion <= 0:
            raise ConfigError(f"stage expansion must be > 0, got {self.expansion!r}")
        if self.activation is not None:
            _check_activation(self.activation)
        for name in ("kernels", "expansions"):
            values = getattr(self, name)
            if values is not None and len(values) != self.depth:
                raise ConfigError(f"stage {name} has {len(values)} values for depth "
                                  f"{self.depth}")

    def kernel_of(self, i: int) -> int:
        """Kernel size of block ``i`` of the stage."""
        return self.kernels[i] if self.kernels is not None else self.kernel

    def expansion_of(self, i: int) -> float:
        """Expansion ratio of block ``i`` of the stage."""
        return self.expansions[i] if self.expansions is not None else self.expansion


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
        _check_activation(self.activation)


def build_graph(config: NetworkConfig, *, explicit_pad: bool = True) -> Graph:
    """The shape-only graph of ``config`` (weights: :func:`with_random_weights`).

    ``explicit_pad=False`` puts the same padding inside each convolution (as TFLite and the
    kernels allow) instead of a Pad atom before it: no padded copy of the map is live.
    """
    b = GraphBuilder(Graph(name=config.name), explicit_pad=explicit_pad)
    x = b.input(Tensor(config.in_channels, config.resolution, config.resolution))
    for stage in config.stages:
        act = stage.activation or config.activation
        for i in range(stage.depth):
            x = b.block(stage.block, x, stage.width, stride=stage.stride if i == 0 else 1,
                        kernel=stage.kernel_of(i), expansion=stage.expansion_of(i),
                        se=stage.se, mid_channels=stage.mid_channels,
                        residual=stage.residual, activation=act,
                        pw_activation=act if stage.pw_activation else "none")
    out = b.head(x, config.num_classes, feature_mix=config.feature_mix,
                 activation=config.activation)
    b.graph.outputs.append(out)
    return b.graph.validate()


def lower_network(config: NetworkConfig) -> list[Atom]:
    """Every atom of ``config`` in execution order (repeats kept: this is the network)."""
    return build_graph(config).atoms()


def network_macs(config: NetworkConfig, convention: str = "paper") -> int:
    """Total MACs of a network: ``"paper"`` (bias, pool, Add counted) or ``"published"``."""
    return total_macs(lower_network(config), convention)


# -- deterministic weights and quantization for graphs built from configs --------------------------

# Real ranges the seeded quantization assumes: inputs and linear outputs about ±4, ReLU/ReLU6
# outputs in [0, 6], the SE gate in [0, 1].
_LINEAR = Quant.of(8 / 255, 0)
_RELU = Quant.of(6 / 255, -128)
_GATE = Quant.of(1 / 256, -128)


def _f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def with_random_weights(graph: Graph, seed: int = 0) -> Graph:
    """A copy of the shape-only ``graph`` with seeded int8 weights, int32 biases and
    quantization: per-channel weight scales for unit-variance real weights, biases of
    about ±0.1, and fixed activation ranges per op kind (see ``_LINEAR``/``_RELU``/``_GATE``).
    Scales are float32 values, as a .tflite file stores them. Same seed, same graph."""
    rng = np.random.default_rng(seed)
    g = Graph(graph.name, list(graph.tensors), list(graph.ops), list(graph.inputs),
              list(graph.outputs))
    for t in g.inputs:
        g.replace_tensor(t, quant=_LINEAR)

    def q(t: int) -> Quant:
        quant = g.tensors[t].quant
        if quant is None:
            raise ConfigError(f"tensor {t} has no quantization yet (ops out of order?)")
        return quant

    for op in g.ops:
        x = op.inputs[0]
        out = op.outputs[0]
        kind = op.kind
        if kind in (*CONV_TYPES, "fc"):
            w_id, b_id = op.inputs[1], op.inputs[2]
            shape = g.tensors[w_id].shape
            c_out = shape[3] if kind == "dw" else shape[0]
            fan_in = int(np.prod(shape[1:])) if kind != "dw" else shape[1] * shape[2]
            w = rng.integers(-127, 128, size=shape, dtype=np.int64).astype(np.int8)
            w_scale = _f32(np.full(c_out, math.sqrt(3.0 / fan_in) / 127.0)
                           * rng.uniform(0.7, 1.3, c_out))
            s_in = q(x).per_tensor[0]
            b_scale = s_in * w_scale
            bias = np.round(rng.uniform(-0.1, 0.1, c_out) / b_scale).astype(np.int32)
            g.replace_tensor(w_id, data=w, quant=Quant.of(w_scale, 0, 3 if kind == "dw" else 0))
            g.replace_tensor(b_id, data=bias, quant=Quant.of(b_scale, 0))
            act = op.param("activation", "none")
            g.replace_tensor(out, quant=_RELU if act in ("relu", "relu6") else _LINEAR)
        elif kind == "add":
            s1, s2 = q(op.inputs[0]).per_tensor[0], q(op.inputs[1]).per_tensor[0]
            g.replace_tensor(out, quant=Quant.of(float(_f32(1.5 * max(s1, s2))), 0))
        elif kind == "mul_bcast":
            g.replace_tensor(out, quant=q(x))
        elif kind == "hard_sigmoid":
            g.replace_tensor(out, quant=_GATE)
        elif kind in ("relu", "relu6"):
            g.replace_tensor(out, quant=_RELU)
        else:  # pad, pooling, hard_swish, reshape: the input's quantization
            g.replace_tensor(out, quant=q(x))
    return g
