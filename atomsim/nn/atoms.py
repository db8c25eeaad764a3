"""Atom operators: one fused int8 kernel as the inference engine runs it, described by shape only.

An :class:`Atom` is board-independent: it knows its shape, MACs, weight Flash and activation
bytes. Measurements (latency, cycles, SRAM with scratch) live in AtomDB, keyed by
:attr:`Atom.key`.

Field conventions (the paper's columns plus ours):

* ``groups``, ``k1``, ``k2`` and ``stride`` are 0 where they do not apply (Pad, elementwise,
  activation, global pooling and FC atoms); the paper writes "-" for these, the CSV export
  writes an empty cell.
* ``padding`` is always stored as a ``(top, left, bottom, right)`` tuple; the constructor also
  takes a single int (the same on every side). A Pad atom carries the padding it adds.
  Convolutions lowered by :mod:`atomsim.nn.lowering` have padding 0: X-CUBE-AI runs a separate Pad
  atom before every k>1 convolution.
* ``activation`` is the activation fused into the kernel: ``none``, ``relu`` or ``relu6``.

MAC conventions (``macs``, the paper's; see METHOD.md):

* conv / dw / pw: ``c_out·h_out·w_out·k1·k2·(c_in/groups) + c_out`` (bias adds counted).
* fc: ``c_in·c_out + c_out``.
* pad: 0.
* add, mul, mul_bcast and the standalone activations: one op per output element
  (``c_out·h_out·w_out``), as the paper's AtomDB counts its ``eltwise`` rows.
* avgpool / maxpool: one op per window element, ``c_out·h_out·w_out·k1·k2``;
  global_avgpool: ``c_in·h_in·w_in``.

``published_macs`` is the convention of published model-zoo counts (MCUNet, ProxylessNAS): conv and
FC multiply-accumulates only, without the bias term; every other atom counts 0.

Flash (``flash_bytes``): conv / dw / pw / fc store int8 weights plus int32 bias,
``c_out·k1·k2·(c_in/groups) + 4·c_out`` (FC: ``c_in·c_out + 4·c_out``). No other atom has
constant parameters of its own (kernel code is counted with the firmware image, not the atom).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from atomsim.core.errors import ConfigError

CONV_TYPES = ("conv", "dw", "pw")
ELEMENTWISE_TYPES = ("add", "mul", "mul_bcast")
ACTIVATION_TYPES = ("relu", "relu6", "hard_swish", "hard_sigmoid")
POOL_TYPES = ("avgpool", "maxpool")
ATOM_TYPES = (
    "pad", *CONV_TYPES, *ELEMENTWISE_TYPES, *POOL_TYPES, "global_avgpool", "fc",
    *ACTIVATION_TYPES,
)
FUSED_ACTIVATIONS = ("none", "relu", "relu6")
# Atom types that may carry a fused activation; the others must say "none".
_FUSABLE = (*CONV_TYPES, "fc", "add", "mul")
# Atom types whose groups / kernel / stride fields do not apply (stored as 0).
_NO_KERNEL = ("pad", *ELEMENTWISE_TYPES, *ACTIVATION_TYPES, "global_avgpool", "fc")

# Names seen in other AtomDB layouts, mapped onto ours. The calibration CSV has an `atom` column
# (pw / dw / conv / pad) next to `type` = conv2d; the paper's CSV has `conv_type`.
_TYPE_ALIASES = {
    "pointwise": "pw", "depthwise": "dw", "normal": "conv", "nc": "conv",
    "linear": "fc", "dense": "fc", "fully_connected": "fc",
    "hard_sigmoid": "hard_sigmoid", "hsigmoid": "hard_sigmoid", "h_sigmoid": "hard_sigmoid",
    "hswish": "hard_swish", "h_swish": "hard_swish",
}

Padding = tuple[int, int, int, int]


def parse_padding(value: Any) -> Padding:
    """Padding as ``(top, left, bottom, right)`` from an int, a 4-sequence or "t,l,b,r" text."""
    if isinstance(value, bool):
        raise ConfigError(f"padding must be an int or four ints, not {value!r}")
    if isinstance(value, int):
        sides: list[Any] = [value] * 4
    elif isinstance(value, str):
        parts = [p for p in re.split(r"[,\s/]+", value.strip().strip("()[]")) if p]
        if len(parts) == 1:
            parts = parts * 4
        sides = parts
    elif isinstance(value, (tuple, list)):
        sides = list(value)
    else:
        raise ConfigError(f"padding must be an int or four ints, not {value!r}")
    if len(sides) != 4:
        raise ConfigError(f"padding needs 4 values (top, left, bottom, right), got {value!r}")
    try:
        out = tuple(int(s) for s in sides)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"padding {value!r} is not integers") from exc
    if min(out) < 0:
        raise ConfigError(f"padding {value!r} is negative")
    return out  # type: ignore[return-value]


def format_padding(padding: Padding) -> str:
    """The text form used in AtomDB and CSV exports: ``"t,l,b,r"``."""
    return ",".join(str(p) for p in padding)


def _conv_out(size: int, pad: int, k: int, stride: int) -> int:
    """Output length of a convolution or pooling window (floor, as every int8 kernel does)."""
    return (size + pad - k) // stride + 1


@dataclass(frozen=True, kw_only=True)
class Atom:
    """One atom operator configuration, in the paper's column order.

    Fields that do not apply to ``type`` may be left out; they are stored as 0 (see the module
    docstring). A dw atom defaults ``groups`` to ``c_in``; conv and pw default it to 1.
    """

    type: str
    groups: int | None = None
    c_in: int
    h_in: int = 1
    w_in: int = 1
    k1: int | None = None
    k2: int | None = None
    c_out: int
    h_out: int = 1
    w_out: int = 1
    stride: int | None = None
    padding: Padding = field(default=(0, 0, 0, 0))
    activation: str = "none"

    def __post_init__(self) -> None:
        t = self.type
        if t not in ATOM_TYPES:
            raise ConfigError(f"unknown atom type {t!r}; known: {', '.join(ATOM_TYPES)}")
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "padding", parse_padding(self.padding))
        for name in ("c_in", "h_in", "w_in", "c_out", "h_out", "w_out"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{t} atom: {name} must be a positive int, got {value!r}")
        if self.activation not in FUSED_ACTIVATIONS:
            raise ConfigError(f"{t} atom: activation must be one of {FUSED_ACTIVATIONS}, "
                              f"got {self.activation!r}")
        if self.activation != "none" and t not in _FUSABLE:
            raise ConfigError(f"{t} atom cannot carry a fused activation ({self.activation})")
        if t in _NO_KERNEL:
            for name in ("groups", "k1", "k2", "stride"):
                if getattr(self, name) not in (None, 0):
                    raise ConfigError(f"{t} atom: {name} does not apply (got "
                                      f"{getattr(self, name)!r}; leave it out or give 0)")
                set_(self, name, 0)
        else:
            defaults = {"groups": self.c_in if t == "dw" else 1, "stride": 1}
            if t == "pw":
                defaults.update(k1=1, k2=1)
            for name in ("groups", "k1", "k2", "stride"):
                value = getattr(self, name)
                if value is None:
                    if name not in defaults:
                        raise ConfigError(f"{t} atom: {name} is required")
                    value = defaults[name]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise ConfigError(f"{t} atom: {name} must be a positive int, got {value!r}")
                set_(self, name, value)
        self._check_shapes()

    # -- validation ---------------------------------------------------------------------------

    def _check_shapes(self) -> None:
        t, (pt, pl, pb, pr) = self.type, self.padding
        problems: list[str] = []

        def need(cond: bool, what: str) -> None:
            if not cond:
                problems.append(what)

        if t != "pad" and t not in CONV_TYPES and t not in POOL_TYPES:
            need(self.padding == (0, 0, 0, 0), f"padding {self.padding} does not apply")
        if t == "pad":
            need(self.c_out == self.c_in, f"c_out {self.c_out} != c_in {self.c_in}")
            need(self.h_out == self.h_in + pt + pb,
                 f"h_out {self.h_out} != h_in {self.h_in} + pad {pt}+{pb}")
            need(self.w_out == self.w_in + pl + pr,
                 f"w_out {self.w_out} != w_in {self.w_in} + pad {pl}+{pr}")
        elif t in CONV_TYPES or t in POOL_TYPES:
            if t == "pw":
                need(self.k1 == 1 and self.k2 == 1, f"pw kernel is {self.k1}x{self.k2}, not 1x1")
                need(self.groups == 1, f"pw groups is {self.groups}, not 1")
            if t == "dw":
                need(self.groups == self.c_in == self.c_out,
                     f"dw needs groups == c_in == c_out (got {self.groups}, {self.c_in}, "
                     f"{self.c_out})")
            if t == "conv":
                need(self.c_in % self.groups == 0 and self.c_out % self.groups == 0,
                     f"groups {self.groups} does not divide c_in {self.c_in} and c_out "
                     f"{self.c_out}")
            if t in POOL_TYPES:
                need(self.groups == 1, f"pooling groups is {self.groups}, not 1")
                need(self.c_out == self.c_in, f"c_out {self.c_out} != c_in {self.c_in}")
            need(self.k1 <= self.h_in + pt + pb and self.k2 <= self.w_in + pl + pr,
                 f"kernel {self.k1}x{self.k2} larger than padded input")
            h = _conv_out(self.h_in, pt + pb, self.k1, self.stride)
            w = _conv_out(self.w_in, pl + pr, self.k2, self.stride)
            need(self.h_out == h, f"h_out {self.h_out} != {h} from h_in {self.h_in}, "
                 f"k1 {self.k1}, stride {self.stride}, padding {pt}+{pb}")
            need(self.w_out == w, f"w_out {self.w_out} != {w} from w_in {self.w_in}, "
                 f"k2 {self.k2}, stride {self.stride}, padding {pl}+{pr}")
        elif t == "fc":
            need((self.h_in, self.w_in, self.h_out, self.w_out) == (1, 1, 1, 1),
                 "fc works on vectors: h_in, w_in, h_out, w_out must be 1")
        elif t == "global_avgpool":
            need(self.c_out == self.c_in, f"c_out {self.c_out} != c_in {self.c_in}")
            need(self.h_out == 1 and self.w_out == 1, "global_avgpool output must be 1x1")
        else:  # elementwise and activations keep the shape
            need((self.c_out, self.h_out, self.w_out) == (self.c_in, self.h_in, self.w_in),
                 f"output {self.c_out}x{self.h_out}x{self.w_out} != input "
                 f"{self.c_in}x{self.h_in}x{self.w_in}")
        if problems:
            raise ConfigError(f"inconsistent {t} atom {self.describe()}: " + "; ".join(problems))

    # -- derived figures ----------------------------------------------------------------------

    @property
    def macs(self) -> int:
        """MACs in the paper's convention (bias adds counted; see the module docstring)."""
        t = self.type
        out_elems = self.c_out * self.h_out * self.w_out
        if t in CONV_TYPES:
            return out_elems * self.k1 * self.k2 * (self.c_in // self.groups) + self.c_out
        if t == "fc":
            return self.c_in * self.c_out + self.c_out
        if t == "pad":
            return 0
        if t in POOL_TYPES:
            return out_elems * self.k1 * self.k2
        if t == "global_avgpool":
            return self.c_in * self.h_in * self.w_in
        return out_elems  # elementwise and activations: one op per output element

    @property
    def published_macs(self) -> int:
        """MACs as model zoos publish them: conv and FC multiply-accumulates, no bias, else 0."""
        if self.type in CONV_TYPES:
            return (self.c_out * self.h_out * self.w_out * self.k1 * self.k2
                    * (self.c_in // self.groups))
        if self.type == "fc":
            return self.c_in * self.c_out
        return 0

    def count_macs(self, convention: str = "paper") -> int:
        """MACs under ``convention``: ``"paper"`` (:attr:`macs`) or ``"published"``."""
        if convention == "paper":
            return self.macs
        if convention == "published":
            return self.published_macs
        raise ConfigError(f"unknown MAC convention {convention!r}; use 'paper' or 'published'")

    @property
    def flash_bytes(self) -> int:
        """Constant parameters in Flash: int8 weights + int32 bias for conv/dw/pw/fc, else 0."""
        if self.type in CONV_TYPES:
            return self.c_out * self.k1 * self.k2 * (self.c_in // self.groups) + 4 * self.c_out
        if self.type == "fc":
            return self.c_in * self.c_out + 4 * self.c_out
        return 0

    @property
    def input_bytes(self) -> int:
        """Bytes of int8 input tensors: add/mul read two, mul_bcast a map plus a c_in vector."""
        fmap = self.c_in * self.h_in * self.w_in
        if self.type in ("add", "mul"):
            return 2 * fmap
        if self.type == "mul_bcast":
            return fmap + self.c_in
        return fmap

    @property
    def output_bytes(self) -> int:
        """Bytes of the int8 output tensor."""
        return self.c_out * self.h_out * self.w_out

    @property
    def key(self) -> str:
        """Stable identity for AtomDB: every field, in a fixed, readable form."""
        return (f"{self.type}|g{self.groups}|{self.c_in}x{self.h_in}x{self.w_in}"
                f"|k{self.k1}x{self.k2}|{self.c_out}x{self.h_out}x{self.w_out}"
                f"|s{self.stride}|p{format_padding(self.padding)}|{self.activation}")

    def describe(self) -> str:
        """Short human form, e.g. ``dw 32x66x66 -k3x3/s1-> 32x64x64``."""
        kernel = f" -k{self.k1}x{self.k2}/s{self.stride}" if self.k1 else " -"
        return (f"{self.type} {self.c_in}x{self.h_in}x{self.w_in}{kernel}-> "
                f"{self.c_out}x{self.h_out}x{self.w_out}")

    def as_row(self) -> dict[str, Any]:
        """The atom as a flat dict: its fields (padding as text) plus Flash and MACs."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["padding"] = format_padding(self.padding)
        row["Flash"] = self.flash_bytes
        row["MACs"] = self.macs
        return row

    def with_(self, **changes: Any) -> Atom:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    # -- construction from table rows ----------------------------------------------------------

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Atom:
        """Build an atom from a table row (the paper's CSV columns, or AtomDB's export).

        Reads ``type, groups, c_in, h_in, w_in, k1, k2, c_out, h_out, w_out`` and optionally
        ``stride``, ``padding``, ``activation``, ``atom`` (calibration CSV: pw/dw/conv/pad, wins
        over ``type`` = conv2d) and ``conv_type`` (the paper's CSV: PointWise/DepthWise).
        Empty cells count as absent. Absent stride is inferred from the shapes (the smallest
        that fits); absent padding is 0 for convolutions and pooling, and for Pad the shape
        difference split evenly (an odd extra row/column goes to the bottom/right). Other keys
        are ignored here; callers that want strict columns check them first.
        """
        def get(name: str) -> Any:
            value = row.get(name)
            if value is None:
                return None
            if isinstance(value, float) and math.isnan(value):  # NaN from pandas
                return None
            if isinstance(value, str):
                value = value.strip()
                if value in ("", "-"):
                    return None
            return value

        def get_int(name: str) -> int | None:
            value = get(name)
            if value is None:
                return None
            try:
                number = float(value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"column {name!r}: {value!r} is not a number") from exc
            if not math.isfinite(number):
                raise ConfigError(f"column {name!r}: {value!r} is not a finite number")
            if number != int(number):
                raise ConfigError(f"column {name!r}: {value!r} is not a whole number")
            return int(number)

        atom_type = _row_type(get("type"), get("atom"), get("conv_type"), row)
        values: dict[str, Any] = {"type": atom_type}
        for name in ("groups", "c_in", "h_in", "w_in", "k1", "k2", "c_out", "h_out", "w_out",
                     "stride"):
            value = get_int(name)
            if value is not None:
                values[name] = value
        for name in ("c_in", "c_out"):
            if name not in values:
                raise ConfigError(f"{atom_type} row: column {name!r} is missing or empty")
        if atom_type in _NO_KERNEL:
            for name in ("groups", "k1", "k2", "stride"):
                values.pop(name, None)
        activation = get("activation")
        if activation is not None:
            values["activation"] = str(activation).lower()
        padding = get("padding")
        if padding is not None:
            values["padding"] = parse_padding(padding)
        elif atom_type == "pad":
            values["padding"] = _infer_pad(values)
        if atom_type in (*CONV_TYPES, *POOL_TYPES) and "stride" not in values:
            values["stride"] = _infer_stride(values)
        try:
            return cls(**values)
        except TypeError as exc:  # a required shape column is absent
            raise ConfigError(f"{atom_type} row is incomplete: {exc}") from exc


def _row_type(type_: Any, atom: Any, conv_type: Any, row: Mapping[str, Any]) -> str:
    """Our atom type from the type columns of the various CSV layouts."""
    for candidate in (atom, conv_type):
        if candidate is not None:
            name = str(candidate).strip().lower()
            name = _TYPE_ALIASES.get(name, name)
            if name in ATOM_TYPES:
                return name
            raise ConfigError(f"unknown atom kind {candidate!r}; known: {', '.join(ATOM_TYPES)}")
    if type_ is None:
        raise ConfigError("row has no 'type' (nor 'atom') value")
    name = str(type_).strip().lower()
    if name in ("conv2d", "conv"):
        return _classify_conv(row)
    if name == "eltwise":
        raise ConfigError("type 'eltwise' is ambiguous: say 'add' or 'mul'")
    name = _TYPE_ALIASES.get(name, name)
    if name not in ATOM_TYPES:
        raise ConfigError(f"unknown atom type {type_!r}; known: {', '.join(ATOM_TYPES)}")
    return name


def _classify_conv(row: Mapping[str, Any]) -> str:
    """conv2d rows without a finer kind: dw when groups == c_in > 1, pw for 1x1, else NC."""
    def num(name: str) -> int | None:
        try:
            return int(float(row.get(name)))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None

    groups, c_in, k1, k2 = num("groups"), num("c_in"), num("k1"), num("k2")
    if groups is not None and c_in is not None and groups == c_in and c_in > 1:
        return "dw"
    if k1 == 1 and k2 == 1 and groups in (None, 1):
        return "pw"
    return "conv"


def _infer_pad(values: Mapping[str, Any]) -> Padding:
    """Padding of a Pad row from its shapes, split evenly (extra row/column bottom/right)."""
    try:
        dh = values["h_out"] - values["h_in"]
        dw = values["w_out"] - values["w_in"]
    except KeyError as exc:
        raise ConfigError(f"pad row needs h_in, w_in, h_out, w_out (missing {exc})") from exc
    if dh < 0 or dw < 0:
        raise ConfigError(f"pad row shrinks the map ({values['h_in']}x{values['w_in']} -> "
                          f"{values['h_out']}x{values['w_out']})")
    return (dh // 2, dw // 2, dh - dh // 2, dw - dw // 2)


def _infer_stride(values: Mapping[str, Any]) -> int:
    """The smallest stride that maps the (padded) input onto the given output shape."""
    pt, pl, pb, pr = values.get("padding", (0, 0, 0, 0))
    try:
        h_in, w_in, h_out, w_out = (values[n] for n in ("h_in", "w_in", "h_out", "w_out"))
        k1, k2 = values.get("k1", 1), values.get("k2", 1)
    except KeyError as exc:
        raise ConfigError(f"cannot infer stride: column {exc} missing") from exc
    for stride in range(1, max(h_in, w_in) + 1):
        if (_conv_out(h_in, pt + pb, k1, stride) == h_out
                and _conv_out(w_in, pl + pr, k2, stride) == w_out):
            return stride
    raise ConfigError(f"no stride maps {h_in}x{w_in} onto {h_out}x{w_out} with kernel "
                      f"{k1}x{k2} and padding {pt},{pl},{pb},{pr}")


def total_macs(atoms: list[Atom], convention: str = "paper") -> int:
    """Sum of the atoms' MACs under ``convention`` (``"paper"`` or ``"published"``)."""
    return sum(a.count_macs(convention) for a in atoms)
