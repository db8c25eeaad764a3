"""The host/firmware contract, held to the firmware's own DWARF (atomsim.target.contract).

The harness ELF (built with -g) is the single source of truth: its ``atomsim_job_t`` layout,
its op ids (``ATOMSIM_OP_<NAME>``), its job limit and the kernels' parameter structs and
prototypes. These tests hold the Python side to it: each operator record (atomsim.nn.registry)
has an op id; its ``args`` match its C prototype argument by argument; its parameter record
(atomsim.nn.ops.quant) matches the C struct field by field (names, order, 4-byte ints); and
jobs packed by name land at the DWARF offsets.
"""

from __future__ import annotations

import dataclasses
import struct

import pytest

from atomsim.boards import get_board
from atomsim.core.errors import ConfigError, ToolchainError
from atomsim.nn.ops.cases import KernelCall
from atomsim.nn.registry import OPERATORS, Operator
from atomsim.profiling.profiler import VARIANTS, harness_elf
from atomsim.target.contract import CType, read_contract

pytestmark = pytest.mark.firmware

BOARD = "stm32f412"


@pytest.fixture(scope="module", params=VARIANTS)
def contract(request):
    """The DWARF contract of one harness build per kernel variant."""
    try:
        elf = harness_elf(get_board(BOARD), request.param)
    except ToolchainError as exc:
        pytest.skip(f"no Arm toolchain: {exc}")
    return read_contract(elf)


def _is_int(t: CType, size: int, signed: bool = True) -> bool:
    return t.kind == "int" and t.size == size and t.signed == signed


def _points_to(t: CType, name: str) -> bool:
    return t.kind == "pointer" and t.element is not None and t.element.name == name


def _points_to_int(t: CType, size: int) -> bool:
    return t.kind == "pointer" and t.element is not None and _is_int(t.element, size)


def _check_record(record: type, members, c_name: str) -> None:
    """A record's fields are the C members: same names, same order, int32 each."""
    py = [f.name for f in dataclasses.fields(record)]
    c = [m.name for m in members]
    assert py == c, (f"{record.__name__} fields {py} differ from {c_name} members {c} "
                     "(names and order must match: the host packs the record in field order)")
    for m in members:
        assert _is_int(m.type, 4), f"{c_name}.{m.name} is {m.type.name}, expected int32_t"


def test_op_ids_are_the_registry(contract):
    """Every operator has an ATOMSIM_OP_<NAME> id and the C list has no other: one set."""
    c_ids = {k: v for k, v in contract.enumerators.items() if k.startswith("ATOMSIM_OP_")}
    c_ids.pop("ATOMSIM_OP_NONE", None)
    assert sorted(c_ids) == sorted(op.c_id for op in OPERATORS)
    assert len(set(c_ids.values())) == len(c_ids), f"op ids collide: {c_ids}"
    assert 0 not in c_ids.values(), "op id 0 must stay unused (a zeroed descriptor)"


def test_job_limit_and_magic_come_from_the_firmware(contract):
    """The job limit is the length of atomsim_jobs; the magic is a named constant."""
    jobs = contract.variable("atomsim_jobs")
    assert jobs.kind == "array" and jobs.element.name == "atomsim_job_t"
    assert jobs.count >= 2, "a block needs room for several jobs"
    assert contract.enumerator("ATOMSIM_HARNESS_MAGIC") != 0


def test_job_descriptor_has_every_field_the_host_packs(contract):
    """The profiler packs KernelCall fields by name: each one is a member of atomsim_job_t of a
    kind that can hold it, and params[] holds the largest parameter record."""
    job = contract.type("atomsim_job_t")
    for f in dataclasses.fields(KernelCall):
        if f.name in ("op", "params"):
            continue
        m = job.member(f.name)
        if f.name.endswith("_dims"):
            assert m.type.name == "atomsim_dims", f"{f.name} is {m.type.name}"
        else:
            assert m.type.kind == "pointer", f"{f.name} is {m.type.name}, expected a pointer"
    params = job.member("params").type
    assert params.kind == "array" and _is_int(params.element, 4)
    widest = max(len(dataclasses.fields(op.params)) for op in OPERATORS if op.params)
    assert params.count >= widest
    for name in ("magic", "size", "op", "status", "scratch_size"):
        assert job.member(name).type.kind == "int"


def _c_arguments(contract, op: Operator) -> list:
    """The C arguments after ctx, grouped as Operator.args describes them (a "*params" entry
    takes as many C arguments as its record has fields)."""
    c_params = list(contract.parameters(op.c_function))
    assert c_params and _points_to(c_params[0].type, "atomsim_context"), \
        f"{op.c_function}: the first argument must be the scratch context"
    rest, groups = c_params[1:], []
    for name in op.args:
        n = len(dataclasses.fields(op.params)) if name == "*params" else 1
        groups.append((name, rest[:n]))
        rest = rest[n:]
    assert not rest and all(members for _, members in groups), (
        f"{op.c_function} takes {len(c_params) - 1} arguments after ctx, args {op.args} "
        "describe a different number")
    return groups


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: op.name)
def test_args_match_the_c_prototype(contract, op: Operator):
    """Operator.args (what the host test marshals) is the C signature after ctx, argument by
    argument, by kind of C type."""
    for i, (name, members) in enumerate(_c_arguments(contract, op)):
        t, where = members[0].type, f"{op.c_function} argument {i + 2} ({members[0].name})"
        if name == "*params":
            assert all(_is_int(m.type, 4) for m in members), f"{where}: expected int32_t"
        elif name == "params":
            assert t.kind == "pointer" and t.element.kind == "struct", f"{where}: {t.name}"
        elif name == "quant":
            assert _points_to(t, "atomsim_per_channel_quant_params"), f"{where}: {t.name}"
        elif name.endswith("_dims"):
            assert _points_to(t, "atomsim_dims"), f"{where}: {t.name}"
        elif name == "bias":
            assert _points_to_int(t, 4), f"{where}: {t.name}, expected int32_t *"
        else:  # input, input2, filter (or a table), output: int8 arrays
            assert name in ("input", "input2", "filter", "output"), f"unknown arg {name!r}"
            assert _points_to_int(t, 1), f"{where}: {t.name}, expected int8_t *"
    if "params" not in op.args and "*params" not in op.args:
        assert op.params is None, f"{op.name} has a parameter record its kernel does not take"


@pytest.mark.parametrize("op", [op for op in OPERATORS if op.params], ids=lambda op: op.name)
def test_parameter_record_matches_its_c_struct(contract, op: Operator):
    """The operator's parameter record (atomsim.nn.ops.quant) is the C struct its kernel takes
    (or the int32 arguments it takes), field by field: names, order, int32 each."""
    for name, members in _c_arguments(contract, op):
        if name == "params":
            struct_type = members[0].type.element
            _check_record(op.params, struct_type.members, struct_type.name)
            assert struct_type.size == 4 * len(struct_type.members), \
                f"{struct_type.name} has padding or non-int32 members"
        elif name == "*params":
            _check_record(op.params, members, f"{op.c_function} arguments")


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: op.name)
def test_scratch_args_match_get_buffer_size(contract, op: Operator):
    """Operator.scratch_args are the dims its C get_buffer_size takes, in order."""
    c_params = contract.parameters(f"{op.c_function}_get_buffer_size")
    assert len(c_params) == len(op.scratch_args)
    assert all(_points_to(p.type, "atomsim_dims") for p in c_params)


def test_pack_places_fields_at_the_dwarf_offsets(contract):
    """Packing by name writes each value at its member's DWARF offset; the rest is zero."""
    job = contract.type("atomsim_job_t")
    data = job.pack(magic=0x41544F4D, op=7, in_dims=(1, 2, 3, 4), params=(-5, 6),
                    input=0x20000010, scratch_size=96)
    assert len(data) == job.size

    def at(name, fmt, extra=0):
        return struct.unpack_from(fmt, data, job.member(name).offset + extra)[0]

    assert at("magic", "<I") == 0x41544F4D and at("op", "<I") == 7
    assert [at("in_dims", "<i", 4 * k) for k in range(4)] == [1, 2, 3, 4]
    assert at("params", "<i") == -5 and at("params", "<i", 4) == 6
    assert at("params", "<i", 8) == 0
    assert at("input", "<I") == 0x20000010 and at("scratch_size", "<i") == 96
    assert at("out_dims", "<i") == 0


def test_pack_refuses_unknown_fields_and_bad_values(contract):
    """A field the C struct lacks, or a value that does not fit, is a named error."""
    job = contract.type("atomsim_job_t")
    with pytest.raises(ConfigError, match="no member 'stride'"):
        job.pack(stride=1)
    with pytest.raises(ConfigError, match="does not fit"):
        job.pack(scratch_size=1 << 40)
    with pytest.raises(ConfigError, match="values for"):
        job.pack(in_dims=(1, 2, 3))


def test_contract_is_cached_per_elf(contract):
    """The same ELF content gives the same parsed contract object."""
    elf = harness_elf(get_board(BOARD), VARIANTS[0])
    assert read_contract(elf) is read_contract(elf)
