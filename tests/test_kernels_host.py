"""Host tier for the int8 atom kernels: C (built with the host cc) == numpy, bit for bit.

Both implementations are built for the host: ``reference/`` as it is, and the Cortex-M DSP
variant as the firmware build would assemble it (``cortex_m_dsp/X.c`` where it exists, else
``reference/X.c``), its SIMD instructions replaced by exact C models (atomsim_dsp.h). Every
operator's shape cases (atomsim.nn.registry) run with several seeds against its numpy reference;
every ``*_get_buffer_size`` is checked against its Python mirror. Nothing here names an
operator: the C function is ``Operator.c_function`` and its arguments are marshalled from
``Operator.args``. The DSP sources are also cross-compiled for Cortex-M4 and Cortex-M7 to
prove they build with the real intrinsics.
"""

from __future__ import annotations

import ctypes
import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from atomsim.nn import registry
from atomsim.nn.atoms import ATOM_TYPES
from atomsim.nn.ops import buffers, quant
from atomsim.nn.registry import OPERATORS, PLAN, Instance, ShapeCase, make_instance

pytestmark = pytest.mark.unit

KERNELS = Path(__file__).resolve().parents[1] / "firmware" / "kernels"
INCLUDE = KERNELS / "include"
VARIANTS = buffers.VARIANTS
SEEDS = tuple(range(6))
GUARD = 16  # bytes after every output buffer that must stay untouched
GUARD_BYTE = 0x5A


def variant_sources(variant: str) -> list[Path]:
    """The translation units a build of ``variant`` compiles (the folder fallback rule)."""
    chosen = {p.name: p for p in sorted((KERNELS / "reference").glob("*.c"))}
    if variant != "reference":
        chosen.update({p.name: p for p in sorted((KERNELS / variant).glob("*.c"))})
    return list(chosen.values())


@pytest.fixture(scope="session")
def libs(tmp_path_factory) -> dict[str, ctypes.CDLL]:
    """Each variant built once per session as a host shared library."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no host C compiler (cc) on PATH")
    out = tmp_path_factory.mktemp("kernels")
    built = {}
    for variant in VARIANTS:
        lib = out / f"libatomsim_nn_{variant}.so"
        includes = [f"-I{INCLUDE}", f"-I{KERNELS / variant}"]
        cmd = [cc, "-std=c11", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror",
               *includes, *map(str, variant_sources(variant)), "-o", str(lib)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, f"host build of {variant} failed:\n{result.stderr}"
        built[variant] = ctypes.CDLL(str(lib))
    return built


# ---------------------------------------------------------------- ctypes mirrors ----------

class Dims(ctypes.Structure):
    """atomsim_dims."""

    _fields_ = [(name, ctypes.c_int32) for name in ("n", "h", "w", "c")]


class Context(ctypes.Structure):
    """atomsim_context."""

    _fields_ = [("buf", ctypes.c_void_p), ("size", ctypes.c_int32)]


class PerChannel(ctypes.Structure):
    """atomsim_per_channel_quant_params."""

    _fields_ = [("multiplier", ctypes.POINTER(ctypes.c_int32)),
                ("shift", ctypes.POINTER(ctypes.c_int32))]


def c_struct(record) -> ctypes.Structure:
    """A ctypes struct of int32 fields in the record's field order (== the C struct's, which
    tests/test_contract.py checks against the firmware's DWARF)."""
    fields = dataclasses.fields(record)
    cls = type(type(record).__name__ + "C", (ctypes.Structure,),
               {"_fields_": [(f.name, ctypes.c_int32) for f in fields]})
    return cls(*(int(getattr(record, f.name)) for f in fields))


_CTYPES = {np.dtype(np.int8): ctypes.c_int8, np.dtype(np.int32): ctypes.c_int32}


def ptr(a: np.ndarray):
    """Pointer to a C-contiguous int8 or int32 array."""
    assert a.flags["C_CONTIGUOUS"]
    return a.ctypes.data_as(ctypes.POINTER(_CTYPES[a.dtype]))


class Call:
    """One prepared kernel call: arguments, output buffer with a guard zone, scratch.

    The arguments come from the operator's record: ``Operator.args`` names the KernelCall
    fields the C function takes after its scratch context, ``Operator.scratch_args`` those of
    its get_buffer_size.
    """

    def __init__(self, lib: ctypes.CDLL, inst: Instance, variant: str):
        self.lib, self.inst, self.variant = lib, inst, variant
        self.op = registry.operator(inst.call.op)
        self.keep: list = []  # arrays and structs that must outlive the call
        n_out = inst.expected.size
        self.out_buf = np.full(n_out + GUARD, GUARD_BYTE, dtype=np.uint8)
        self.out = self.out_buf[:n_out].view(np.int8)
        self.args = [a for name in self.op.args for a in self._marshal(name)]
        self.size_refs = [a for name in self.op.scratch_args for a in self._marshal(name)]

    def _ref(self, struct):
        self.keep.append(struct)
        return ctypes.byref(struct)

    def _array(self, a: np.ndarray):
        a = np.ascontiguousarray(a)
        self.keep.append(a)
        return ptr(a)

    def _marshal(self, name: str) -> list:
        """The ctypes argument(s) for one entry of Operator.args."""
        call = self.inst.call
        if name == "params":
            return [self._ref(c_struct(call.params))]
        if name == "*params":  # the record's fields as separate int32 arguments
            return [ctypes.c_int32(int(v)) for v in dataclasses.astuple(call.params)]
        if name == "quant":
            return [self._ref(PerChannel(self._array(call.multiplier),
                                         self._array(call.shift)))]
        if name == "output":
            return [ptr(self.out)]
        if name.endswith("_dims"):
            return [self._ref(Dims(*(int(d) for d in getattr(call, name))))]
        return [self._array(getattr(call, name))]

    def buffer_size(self) -> int:
        """The C get_buffer_size for this call's shapes."""
        fn = getattr(self.lib, f"{self.op.c_function}_get_buffer_size")
        fn.restype = ctypes.c_int32
        return fn(*self.size_refs)

    def mirror_size(self) -> int:
        """The Python mirror's answer for the same shapes."""
        return registry.scratch_bytes(self.inst.call, self.variant)

    def run(self, scratch_bytes: int | None = None) -> int:
        """Call the kernel with a scratch buffer of the size it asks for (or the one given)."""
        size = self.buffer_size() if scratch_bytes is None else scratch_bytes
        scratch = np.zeros((size + 3) // 4 + 1, dtype=np.int32)  # 4-byte aligned
        ctx = Context(scratch.ctypes.data_as(ctypes.c_void_p) if size else None, size)
        fn = getattr(self.lib, self.op.c_function)
        fn.restype = ctypes.c_int
        return fn(ctypes.byref(ctx), *self.args)

    def guard_intact(self) -> bool:
        """True when nothing was written past the output."""
        return bool(np.all(self.out_buf[self.out.size:] == GUARD_BYTE))


def assert_bit_exact(actual: np.ndarray, expected: np.ndarray, what: str) -> None:
    """Equal arrays, or a message naming the first mismatches (index, actual, expected)."""
    actual = actual.reshape(expected.shape)
    bad = np.argwhere(actual != expected)
    if bad.size:
        rows = [f"  at {tuple(int(i) for i in idx)}: actual {int(actual[tuple(idx)])}, "
                f"expected {int(expected[tuple(idx)])}" for idx in bad[:8]]
        pytest.fail(f"{what}: {len(bad)} of {expected.size} values differ "
                    f"(shape {expected.shape}):\n" + "\n".join(rows))


# ---------------------------------------------------------------- tests -------------------

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", PLAN, ids=lambda c: c.id)
def test_kernel_matches_numpy(libs, variant: str, case: ShapeCase):
    """C output == numpy reference for every seed; nothing written past the output."""
    for seed in SEEDS:
        inst = make_instance(case, seed)
        call = Call(libs[variant], inst, variant)
        status = call.run()
        assert status == 0, f"{case.id} seed {seed}: status {status}, expected ATOMSIM_OK"
        assert_bit_exact(call.out, inst.expected, f"{variant} {case.id} seed {seed}")
        assert call.guard_intact(), f"{variant} {case.id} seed {seed}: wrote past the output"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("case", PLAN, ids=lambda c: c.id)
def test_buffer_size_mirror(libs, variant: str, case: ShapeCase):
    """Python get_buffer_size mirror == C, per variant."""
    call = Call(libs[variant], make_instance(case, 0), variant)
    assert call.mirror_size() == call.buffer_size()


SCRATCH_CASES = [c for c in PLAN
                 if registry.scratch_bytes(make_instance(c, 0).call, "cortex_m_dsp") > 0]


def test_scratch_cases_exist():
    """The short-scratch test below has cases to run (the DSP GEMM kernels use scratch)."""
    assert len({c.op for c in SCRATCH_CASES}) >= 4


@pytest.mark.parametrize("case", SCRATCH_CASES, ids=lambda c: c.id)
def test_dsp_rejects_short_scratch(libs, case: ShapeCase):
    """A DSP kernel given less scratch than it asks for refuses and leaves the output alone."""
    call = Call(libs["cortex_m_dsp"], make_instance(case, 0), "cortex_m_dsp")
    need = call.buffer_size()
    assert need > 0
    assert call.run(scratch_bytes=need - 1) == -1
    assert np.all(call.out_buf == GUARD_BYTE)


BAD_PARAMS = [
    ("conv", dict(h=5, w=5, c=3, co=4, k=3, pt=1, pl=1, pb=1, pr=1), dict(dilation_h=2)),
    ("conv", dict(h=5, w=5, c=3, co=4, k=3, pt=1, pl=1, pb=1, pr=1), dict(pad_h=3)),
    ("conv", dict(h=5, w=5, c=3, co=4, k=3, pt=1, pl=1, pb=1, pr=1), dict(stride_w=0)),
    ("conv", dict(h=5, w=5, c=3, co=4, k=3, pt=1, pl=1, pb=1, pr=1), dict(act_min=10,
                                                                          act_max=9)),
    ("depthwise_conv", dict(h=5, w=5, c=4, k=3), dict(input_offset=-128)),
    ("pointwise_conv", dict(h=3, w=3, c=4, co=4), dict(pad_w=1)),
    ("avgpool", dict(h=4, w=4, c=2, k=2, s=2), dict(stride_h=5)),
    ("maxpool", dict(h=4, w=4, c=2, k=2, s=2), dict(pad_w=2)),
]


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("op,shape,changes", BAD_PARAMS)
def test_rejects_bad_params(libs, variant: str, op: str, shape: dict, changes: dict):
    """A contract violation returns ATOMSIM_ARG_ERROR and leaves the output untouched."""
    inst = make_instance(ShapeCase(op, "bad", shape), 0)
    inst.call.params = dataclasses.replace(inst.call.params, **changes)
    call = Call(libs[variant], inst, variant)
    assert call.run() == -1
    assert np.all(call.out_buf == GUARD_BYTE)


@pytest.mark.parametrize("variant", VARIANTS)
def test_rejects_bad_shift(libs, variant: str):
    """A per-channel shift outside [-31, 30] is an argument error."""
    inst = make_instance(ShapeCase("pointwise_conv", "bad", dict(h=2, w=2, c=4, co=3)), 0)
    inst.call.shift = inst.call.shift.copy()
    inst.call.shift[1] = 31
    call = Call(libs[variant], inst, variant)
    assert call.run() == -1


# ---------------------------------------------------------------- arithmetic --------------

def _gemmlowp_srdhm(a: int, b: int) -> int:
    """gemmlowp's definition, literally (sign-dependent nudge, truncating division)."""
    if a == b == quant.INT32_MIN:
        return quant.INT32_MAX
    ab = a * b
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    q = abs(ab + nudge) // (1 << 31)
    return q if ab + nudge >= 0 else -q


def _exact_rdbpot(x: int, e: int) -> int:
    """x / 2^e rounded half away from zero, with exact rationals."""
    if e == 0:
        return x
    q, r = divmod(abs(x), 1 << e)
    q += 1 if 2 * r >= (1 << e) else 0
    return q if x >= 0 else -q


def test_fixed_point_primitives_match_their_definitions():
    """srdhm / rdbpot (vectorised) == gemmlowp's literal definitions on edge and random values."""
    rng = np.random.default_rng(1)
    edges = [quant.INT32_MIN, quant.INT32_MIN + 1, -(1 << 30), -3, -2, -1, 0, 1, 2, 3,
             1 << 30, quant.INT32_MAX]
    a = np.array(edges + list(rng.integers(quant.INT32_MIN, quant.INT32_MAX, 200)), np.int64)
    b = np.array(edges[::-1] + list(rng.integers(0, quant.INT32_MAX, 200)), np.int64)
    got = quant.srdhm(a, b)
    want = [_gemmlowp_srdhm(int(x), int(y)) for x, y in zip(a, b, strict=True)]
    assert got.tolist() == want
    e = rng.integers(0, 32, a.size)
    assert quant.rdbpot(a, e).tolist() == [_exact_rdbpot(int(x), int(s)) for x, s in zip(a, e, strict=True)]


@pytest.mark.parametrize("real,expected", [
    (0.0, (0, 0)), (0.5, (1 << 30, 0)), (1.0, (1 << 30, 1)), (0.25, (1 << 30, -1)),
    (0.75, (3 << 29, 0)), (2.0 ** -40, (0, 0)), (1.0 - 2.0 ** -40, (1 << 30, 1)),
])
def test_quantize_multiplier_known_values(real: float, expected: tuple[int, int]):
    """TFLite QuantizeMultiplier: normalisation, rounding up to 2^31, flush of tiny values."""
    assert quant.quantize_multiplier(real) == expected


def test_quantize_multiplier_round_trips():
    """multiplier * 2^(shift - 31) reproduces the real to 31 bits."""
    for real in np.geomspace(1e-6, 100.0, 50):
        m, s = quant.quantize_multiplier(float(real))
        assert (1 << 30) <= m < (1 << 31)
        assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0 ** -30


# ---------------------------------------------------------------- contract ----------------

def test_every_kernel_has_one_operator_record():
    """The header's kernels, the reference/*.c files and the registry's operators are the same
    set; every atom type has one operator; an operator serving atoms can build their calls."""
    header = (INCLUDE / "atomsim_nn.h").read_text()
    kernels = re.findall(r"^atomsim_status (atomsim_\w+)\(", header, re.M)
    sources = {p.stem for p in (KERNELS / "reference").glob("*.c")}
    assert sorted(kernels) == sorted(sources) == sorted(op.c_function for op in OPERATORS)
    for op in OPERATORS:
        assert f"int32_t {op.c_function}_get_buffer_size(" in header
        assert op.from_atom is not None or not op.atom_types, op.name
    for p in (KERNELS / "cortex_m_dsp").glob("*.c"):
        assert p.stem in sources, f"{p.name} has no reference counterpart"
    served = [t for op in OPERATORS for t in op.atom_types]
    assert sorted(served) == sorted(ATOM_TYPES), "each atom type is served by one operator"
    assert all(op.shape_cases() for op in OPERATORS), "every operator has shape cases"


ARM_CPUS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"],
}


@pytest.mark.parametrize("cpu", ARM_CPUS)
def test_dsp_variant_cross_compiles(tmp_path, cpu: str):
    """Every source of the DSP build compiles warning-free for the MCU; the GEMM kernels use
    SMLAD and the depthwise kernel SMLABB/SMLATT (the SIMD path is really taken)."""
    gcc = shutil.which("arm-none-eabi-gcc")
    objdump = shutil.which("arm-none-eabi-objdump")
    if gcc is None or objdump is None:
        pytest.skip("arm-none-eabi-gcc / objdump not on PATH")
    wanted = {"atomsim_pointwise_conv_s8": "smlad", "atomsim_conv_s8": "smlad",
              "atomsim_fully_connected_s8": "smlad", "atomsim_depthwise_conv_s8": "smlabb"}
    for src in variant_sources("cortex_m_dsp"):
        obj = tmp_path / f"{src.stem}.o"
        cmd = [gcc, "-std=c11", *ARM_CPUS[cpu], "-O2", "-Wall", "-Wextra", "-Werror",
               f"-I{INCLUDE}", f"-I{KERNELS / 'cortex_m_dsp'}", "-c", str(src), "-o", str(obj)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 0, f"{src.name} for {cpu}:\n{result.stderr}"
        if src.stem in wanted:
            text = subprocess.run([objdump, "-d", str(obj)], capture_output=True,
                                  text=True).stdout
            assert wanted[src.stem] in text, f"{src.name}: no {wanted[src.stem]} for {cpu}"


# ---------------------------------------------------------------- DSP add identity --------

ADD_TIE_MULTIPLIERS = [0, 1, 2, 3, (1 << 31) - 1, *(1 << k for k in range(31)),
                       *(3 << k for k in range(29)), *((1 << 30) + (1 << k) for k in range(30))]


def _add_fast_term(v: np.ndarray, left_shift: int, m: int, e: int) -> np.ndarray:
    """cortex_m_dsp/atomsim_add_s8.c's fast term: hi32(A * m + 2^31 + s * 2^(31 - e)),
    A = v * 2^(L + 1 - e), s = -1 for v < 0 else +1 (no sign term when e == 0)."""
    a = v << (left_shift + 1 - e)
    d = 0 if e == 0 else 1 << (31 - e)
    low = (1 << 31) + np.where(a < 0, -d, d)  # c_pos - (a < 0 ? c_neg : 0)
    return (a * m + low) >> 32  # |a * m| < 2^60: exact in int64


def test_dsp_add_fast_term_identity():
    """The identity behind the DSP add kernel's fast path equals TFLite's MBQM for every
    x + offset in [-255, 255] (every int8 input with every allowed offset), every left shift
    0..20, every input shift the fast path accepts (-(L + 1)..0), and multipliers that include
    every power of two (the tie makers: MBQM's sign-dependent rounding decides there)."""
    v = np.arange(-255, 256, dtype=np.int64)
    rng = np.random.default_rng(7)
    mults = ADD_TIE_MULTIPLIERS + [int(m) for m in rng.integers(1 << 30, 1 << 31, 24)]
    ties = 0
    for left_shift in range(21):
        for e in range(min(31, left_shift + 1) + 1):
            for m in mults:
                want = quant.multiply_by_quantized_multiplier(v << left_shift, m, -e)
                got = _add_fast_term(v, left_shift, m, e)
                bad = np.flatnonzero(got != want)
                assert bad.size == 0, (
                    f"L={left_shift} shift={-e} m={m}: x + off = {int(v[bad[0]])} gives "
                    f"{int(got[bad[0]])}, MBQM {int(want[bad[0]])} ({bad.size} differ)")
                if e >= 1:  # exact halves before RoundingDivideByPOT
                    prod = quant.srdhm(quant.wrap_int32(v << left_shift), m)
                    ties += int(np.count_nonzero((prod & ((1 << e) - 1)) == 1 << (e - 1)))
    assert ties > 10_000, f"only {ties} rounding ties exercised"


def test_global_avgpool_reciprocal_division_is_exact():
    """cortex_m_dsp/atomsim_global_avgpool_s8.c divides n in [0, 256 * d) by d as
    hi32(n * M), M = floor((2^32 - 1) / d) + 1, for 2 <= d <= 4096. hi32(n * M) never falls
    below floor(n / d) (M * d >= 2^32) and grows with n, so checking the largest n of every
    quotient (n = q * d + d - 1) proves every n."""
    d = np.arange(2, 4097, dtype=np.uint64)[:, None]
    q = np.arange(256, dtype=np.uint64)[None, :]
    m = (np.uint64(0xFFFFFFFF) // d) + np.uint64(1)
    n = q * d + d - np.uint64(1)  # < 2^20; n * m < 2^51
    got = (n * m) >> np.uint64(32)
    bad = np.argwhere(got != q)
    assert bad.size == 0, f"d={int(d[bad[0][0], 0])}, n={int(n[tuple(bad[0])])}"
    assert np.all(((q * d) * m) >> np.uint64(32) == q)  # the low end of each quotient
