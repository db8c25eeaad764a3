"""The operator registry: one record per int8 kernel, everything else iterates over it.

An operator has ONE name, the kernel's (``conv``, ``depthwise_conv``, ...). Everything else
derives from it: the C function ``atomsim_<name>_s8`` and its ``_get_buffer_size``, the
harness op id ``ATOMSIM_OP_<NAME>`` (read from the firmware's DWARF by
atomsim.target.contract), and the atom types it serves (``Operator.atom_types``: ``dw`` is
served by ``depthwise_conv``, ``relu6`` by ``relu``, ``mul_bcast`` by ``mul``).

A record carries the operator's parameter record class (atomsim.nn.ops.quant), its
integer-exact numpy reference, its scratch-size mirror (atomsim.nn.ops.buffers) and which call
fields that mirror takes, the C arguments after the scratch context (``args``, names of
:class:`KernelCall` fields: the host test marshals them through ctypes from this alone), its
named shape cases and their generator (atomsim.nn.ops.cases), and how an atom becomes a call.

The profiler, the host and emulated kernel tests, the contract test and the benchmarks iterate
over :data:`OPERATORS`; none of them keeps its own table of operators.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from atomsim.core.errors import ConfigError
from atomsim.nn.atoms import Atom
from atomsim.nn.ops import buffers, cases
from atomsim.nn.ops import quant as q
from atomsim.nn.ops import reference as ref
from atomsim.nn.ops.cases import Dims, KernelCall, ShapeCase


@dataclass(frozen=True)
class AtomInputs:
    """What every atom's call starts from: its seeded generator, input tensor, dims and the
    output activation range (fixed quantization: the cost does not depend on scales)."""

    rng: np.random.Generator
    x: np.ndarray
    in_dims: Dims
    out_dims: Dims
    act_min: int
    act_max: int


# quantization of atom calls: fixed, realistic values (costs do not depend on them)
IN_ZP, OUT_ZP, IN_SCALE, OUT_SCALE = -128, -5, 0.02, 0.05


@dataclass(frozen=True)
class Operator:
    """One int8 kernel: its name and everything derived from or attached to it."""

    name: str
    atom_types: tuple[str, ...]
    params: type | None  # quant record class; None when the kernel takes no parameters
    reference: Callable[[KernelCall], np.ndarray]  # the numpy expectation of a call
    scratch: Callable[..., int]  # its buffers mirror (or buffers.no_scratch), (*dims, variant=)
    scratch_args: tuple[str, ...]  # the KernelCall dims fields that size function takes
    # The C arguments after ``ctx``, as KernelCall fields: "params" (pointer to the record's
    # struct), "*params" (the record's fields as int32 arguments), "quant" (per-channel
    # multiplier/shift), "<x>_dims" (pointer to atomsim_dims), arrays, "output".
    args: tuple[str, ...]
    cases: Mapping[str, dict]  # named shape cases (atomsim.nn.ops.cases)
    make_call: Callable[[ShapeCase, np.random.Generator], KernelCall]
    from_atom: Callable[[str, Atom, AtomInputs], KernelCall] | None = None  # atom types' call

    @property
    def c_function(self) -> str:
        """The kernel's C name."""
        return f"atomsim_{self.name}_s8"

    @property
    def c_id(self) -> str:
        """The harness enum constant whose value is this operator's op id."""
        return f"ATOMSIM_OP_{self.name.upper()}"

    def shape_cases(self) -> list[ShapeCase]:
        """This operator's named shape cases."""
        return [ShapeCase(self.name, n, s) for n, s in self.cases.items()]


# ---------------------------------------------------------------- atoms -> calls ----------

def _tensor(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    return rng.integers(-128, 128, size=(1, h, w, c), dtype=np.int8)


def _conv_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    rng = a.rng
    k1, k2 = atom.k1 or 1, atom.k2 or 1
    if op == "depthwise_conv":
        filt = rng.integers(-127, 128, size=(1, k1, k2, atom.c_in), dtype=np.int8)
        fan_in = k1 * k2
    else:
        filt = rng.integers(-127, 128, size=(atom.c_out, k1, k2, atom.c_in), dtype=np.int8)
        fan_in = k1 * k2 * atom.c_in
    bias = rng.integers(-2000, 2000, size=atom.c_out, dtype=np.int32)
    reals = rng.uniform(0.5, 1.5, atom.c_out) / (np.sqrt(fan_in) * 127.0)
    mult, shift = q.per_channel_multipliers(reals)
    stride = atom.stride or 1
    p = q.ConvParams(stride, stride, atom.padding[0], atom.padding[1], 1, 1, -IN_ZP, OUT_ZP,
                     a.act_min, a.act_max)
    return KernelCall(op, a.in_dims, a.out_dims, p, filter_dims=filt.shape, input=a.x,
                      filter=filt, bias=bias, multiplier=mult, shift=shift)


def _fc_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    rng = a.rng
    filt = rng.integers(-127, 128, size=(atom.c_out, 1, 1, atom.c_in), dtype=np.int8)
    bias = rng.integers(-2000, 2000, size=atom.c_out, dtype=np.int32)
    mult, shift = q.per_channel_multipliers(
        rng.uniform(0.5, 1.5, atom.c_out) / (np.sqrt(atom.c_in) * 127.0))
    p = q.FcParams(-IN_ZP, OUT_ZP, a.act_min, a.act_max, 1)
    return KernelCall(op, a.in_dims, (1, 1, 1, atom.c_out), p, filter_dims=filt.shape,
                      input=a.x, filter=filt, bias=bias, multiplier=mult, shift=shift)


def _pad_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    top, left, bottom, right = atom.padding
    p = q.PadParams(top, bottom, left, right, IN_ZP)
    return KernelCall(op, a.in_dims, a.out_dims, p, input=a.x)


def _add_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    p = q.add_quant_params(IN_SCALE, IN_ZP, 0.03, 3, OUT_SCALE, OUT_ZP, a.act_min, a.act_max)
    x2 = _tensor(a.rng, atom.c_in, atom.h_in, atom.w_in)
    return KernelCall(op, a.in_dims, a.out_dims, p, in2_dims=a.in_dims, input=a.x, input2=x2)


def _mul_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    p = q.mul_quant_params(IN_SCALE, IN_ZP, 0.004, -128, OUT_SCALE, OUT_ZP, a.act_min,
                           a.act_max)
    if atom.type == "mul_bcast":  # one value per channel (squeeze-and-excitation)
        x2 = _tensor(a.rng, atom.c_in, 1, 1)
    else:
        x2 = _tensor(a.rng, atom.c_in, atom.h_in, atom.w_in)
    return KernelCall(op, a.in_dims, a.out_dims, p, in2_dims=x2.shape, input=a.x, input2=x2)


def _pool_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    stride = atom.stride or 1
    p = q.PoolParams(stride, stride, atom.padding[0], atom.padding[1], a.act_min, a.act_max)
    return KernelCall(op, a.in_dims, a.out_dims, p,
                      filter_dims=(1, atom.k1 or 1, atom.k2 or 1, 1), input=a.x)


def _global_pool_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    return KernelCall(op, a.in_dims, (1, 1, 1, atom.c_in),
                      q.GlobalPoolParams(a.act_min, a.act_max), input=a.x)


def _relu_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    p = q.relu_quant_params(IN_SCALE, IN_ZP, OUT_SCALE, OUT_ZP, atom.type)  # relu or relu6
    return KernelCall(op, a.in_dims, a.in_dims, p, input=a.x)


def _hard_swish_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    p = q.hard_swish_quant_params(IN_SCALE, IN_ZP, OUT_SCALE, OUT_ZP)
    return KernelCall(op, a.in_dims, a.in_dims, p, input=a.x)


def _hard_sigmoid_from_atom(op: str, atom: Atom, a: AtomInputs) -> KernelCall:
    lut = q.hard_sigmoid_lut(IN_SCALE, IN_ZP, 1 / 256, -128)
    return KernelCall(op, a.in_dims, a.in_dims, None, input=a.x, filter=lut.astype(np.int8))


# ---------------------------------------------------------------- the records -------------

_CONV_ARGS = ("params", "quant", "in_dims", "input", "filter_dims", "filter", "bias",
              "out_dims", "output")
_WINDOW_SIZE = ("in_dims", "filter_dims", "out_dims")
_POOL_ARGS = ("params", "in_dims", "input", "filter_dims", "out_dims", "output")
_UNARY_ARGS = ("params", "in_dims", "input", "output")


def _conv_reference(fn: Callable) -> Callable[[KernelCall], np.ndarray]:
    """The three convolutions' references share one argument list."""
    return lambda c: fn(c.input, c.filter, c.bias, c.multiplier, c.shift, c.params, c.out_hw)


OPERATORS: tuple[Operator, ...] = (
    Operator(
        "conv", ("conv",), q.ConvParams, _conv_reference(ref.conv_s8),
        buffers.conv_s8_get_buffer_size, _WINDOW_SIZE, _CONV_ARGS,
        cases.CONV_CASES, cases.conv_call, _conv_from_atom),
    Operator(
        "depthwise_conv", ("dw",), q.ConvParams, _conv_reference(ref.depthwise_conv_s8),
        buffers.depthwise_conv_s8_get_buffer_size, _WINDOW_SIZE, _CONV_ARGS,
        cases.DEPTHWISE_CONV_CASES, cases.conv_call, _conv_from_atom),
    Operator(
        "pointwise_conv", ("pw",), q.ConvParams, _conv_reference(ref.pointwise_conv_s8),
        buffers.pointwise_conv_s8_get_buffer_size, _WINDOW_SIZE, _CONV_ARGS,
        cases.POINTWISE_CONV_CASES, cases.conv_call, _conv_from_atom),
    Operator(
        "fully_connected", ("fc",), q.FcParams,
        lambda c: ref.fully_connected_s8(c.input, c.filter, c.bias, c.multiplier, c.shift,
                                         c.params),
        buffers.fully_connected_s8_get_buffer_size, _WINDOW_SIZE, _CONV_ARGS,
        cases.FULLY_CONNECTED_CASES, cases.fully_connected_call, _fc_from_atom),
    Operator(
        "pad", ("pad",), q.PadParams, lambda c: ref.pad_s8(c.input, c.params),
        buffers.no_scratch, ("in_dims", "out_dims"),
        ("params", "in_dims", "input", "out_dims", "output"),
        cases.PAD_CASES, cases.pad_call, _pad_from_atom),
    Operator(
        "add", ("add",), q.AddParams, lambda c: ref.add_s8(c.input, c.input2, c.params),
        buffers.no_scratch, ("in_dims",),
        ("params", "in_dims", "input", "input2", "output"),
        cases.ADD_CASES, cases.add_call, _add_from_atom),
    Operator(
        "mul", ("mul", "mul_bcast"), q.MulParams,
        lambda c: ref.mul_s8(c.input, c.input2, c.params),
        buffers.no_scratch, ("in_dims", "in2_dims"),
        ("params", "in_dims", "input", "in2_dims", "input2", "output"),
        cases.MUL_CASES, cases.mul_call, _mul_from_atom),
    Operator(
        "avgpool", ("avgpool",), q.PoolParams,
        lambda c: ref.avgpool_s8(c.input, c.kernel_hw, c.params, c.out_hw),
        buffers.no_scratch, ("out_dims",), _POOL_ARGS,
        cases.AVGPOOL_CASES, cases.pool_call, _pool_from_atom),
    Operator(
        "maxpool", ("maxpool",), q.PoolParams,
        lambda c: ref.maxpool_s8(c.input, c.kernel_hw, c.params, c.out_hw),
        buffers.no_scratch, ("out_dims",), _POOL_ARGS,
        cases.MAXPOOL_CASES, cases.pool_call, _pool_from_atom),
    Operator(
        "global_avgpool", ("global_avgpool",), q.GlobalPoolParams,
        lambda c: ref.global_avgpool_s8(c.input, c.params.act_min, c.params.act_max),
        buffers.no_scratch, ("in_dims",),
        ("*params", "in_dims", "input", "output"),
        cases.GLOBAL_AVGPOOL_CASES, cases.global_avgpool_call, _global_pool_from_atom),
    Operator(
        "relu", ("relu", "relu6"), q.ReluParams, lambda c: ref.relu_s8(c.input, c.params),
        buffers.no_scratch, ("in_dims",), _UNARY_ARGS,
        cases.RELU_CASES, cases.relu_call, _relu_from_atom),
    Operator(
        "hard_swish", ("hard_swish",), q.HardSwishParams,
        lambda c: ref.hard_swish_s8(c.input, c.params),
        buffers.no_scratch, ("in_dims",), _UNARY_ARGS,
        cases.HARD_SWISH_CASES, cases.hard_swish_call, _hard_swish_from_atom),
    Operator(
        "hard_sigmoid", ("hard_sigmoid",), None,
        lambda c: ref.hard_sigmoid_s8(c.input, c.filter),
        buffers.no_scratch, ("in_dims",),
        ("filter", "in_dims", "input", "output"),
        cases.HARD_SIGMOID_CASES, cases.hard_sigmoid_call, _hard_sigmoid_from_atom),
)

_BY_NAME = {op.name: op for op in OPERATORS}
_BY_ATOM_TYPE = {t: op for op in OPERATORS for t in op.atom_types}


def operator(name: str) -> Operator:
    """The operator called ``name``; a ConfigError listing the known ones otherwise."""
    if name not in _BY_NAME:
        raise ConfigError(f"no operator {name!r}; operators: {', '.join(_BY_NAME)}")
    return _BY_NAME[name]


def for_atom_type(atom_type: str) -> Operator:
    """The operator that serves an atom type."""
    if atom_type not in _BY_ATOM_TYPE:
        raise ConfigError(f"no kernel for atom type {atom_type!r}")
    return _BY_ATOM_TYPE[atom_type]


def call_for_atom(atom: Atom, seed: int | None = None) -> KernelCall:
    """A concrete, deterministic kernel call for an atom (random data seeded by its key)."""
    op = for_atom_type(atom.type)
    key = hashlib.sha256(atom.key.encode()).digest()[:8]
    rng = np.random.default_rng(int.from_bytes(key, "little") if seed is None else seed)
    x = _tensor(rng, atom.c_in, atom.h_in, atom.w_in)
    act_min, act_max = q.activation_range(atom.activation, OUT_SCALE, OUT_ZP)
    inputs = AtomInputs(rng, x, (1, atom.h_in, atom.w_in, atom.c_in),
                        (1, atom.h_out, atom.w_out, atom.c_out), act_min, act_max)
    return op.from_atom(op.name, atom, inputs)


def expected_output(call: KernelCall) -> np.ndarray:
    """The integer-exact numpy reference output of a call."""
    return operator(call.op).reference(call)


def scratch_bytes(call: KernelCall, variant: str) -> int:
    """The call's scratch need under a kernel variant (the mirror of its get_buffer_size)."""
    op = operator(call.op)
    return op.scratch(*(getattr(call, f) for f in op.scratch_args), variant=variant)


# ---------------------------------------------------------------- test plan ---------------

@dataclass
class Instance:
    """A shape case made concrete: the call and its numpy expectation."""

    case: ShapeCase
    call: KernelCall
    expected: np.ndarray


PLAN: tuple[ShapeCase, ...] = tuple(c for op in OPERATORS for c in op.shape_cases())


def make_instance(case: ShapeCase, seed: int) -> Instance:
    """Concrete inputs, parameters and numpy expectation for ``case`` with ``seed``."""
    call = operator(case.op).make_call(case, np.random.default_rng(seed))
    expected = expected_output(call)
    if tuple(expected.shape) != tuple(call.out_dims):
        raise ConfigError(f"{case.id}: reference output {expected.shape} differs from the "
                          f"call's out_dims {call.out_dims}")
    return Instance(case, call, expected)
