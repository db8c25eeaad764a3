"""Atom: METHOD.md conventions, validation, and the calibration CSV's own Flash/MACs columns."""

import csv
from pathlib import Path

import pytest

from atomsim.core.errors import ConfigError
from atomsim.nn.atoms import ATOM_TYPES, Atom, parse_padding

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CALIBRATION = DATA / "atomdb-h743-calibration.csv"

# METHOD.md worked examples, in the paper's columns ("-" cells left out).
WORKED = [
    ({"type": "Pad", "c_in": 32, "h_in": 64, "w_in": 64, "c_out": 32, "h_out": 66,
      "w_out": 66}, 0, 0),
    ({"type": "Conv2d", "groups": 32, "c_in": 32, "h_in": 66, "w_in": 66, "k1": 3, "k2": 3,
      "c_out": 32, "h_out": 64, "w_out": 64}, 416, 1_179_680),
    ({"type": "Conv2d", "groups": 1, "c_in": 32, "h_in": 64, "w_in": 64, "k1": 1, "k2": 1,
      "c_out": 32, "h_out": 64, "w_out": 64}, 1152, 4_194_336),
]


@pytest.mark.parametrize(("row", "flash", "macs"), WORKED, ids=["pad", "dw3x3", "pw"])
def test_worked_examples_match_method_exactly(row, flash, macs):
    atom = Atom.from_row(row)
    assert (atom.flash_bytes, atom.macs) == (flash, macs)


def test_worked_examples_infer_kind_stride_and_padding():
    pad, dw, pw = (Atom.from_row(r) for r, _, _ in WORKED)
    assert (pad.type, pad.padding) == ("pad", (1, 1, 1, 1))
    assert (dw.type, dw.stride, dw.padding) == ("dw", 1, (0, 0, 0, 0))
    assert (pw.type, pw.stride) == ("pw", 1)


def test_stride_two_is_inferred_with_floor_division():
    # 67 padded rows, 3x3, stride 2 -> 33 rows: (67 - 3) // 2 + 1
    atom = Atom.from_row({"type": "conv2d", "groups": 1, "c_in": 8, "h_in": 67, "w_in": 67,
                          "k1": 3, "k2": 3, "c_out": 16, "h_out": 33, "w_out": 33})
    assert (atom.type, atom.stride) == ("conv", 2)


def test_odd_pad_puts_the_extra_row_bottom_right():
    atom = Atom.from_row({"type": "pad", "c_in": 8, "h_in": 10, "w_in": 10, "c_out": 8,
                          "h_out": 13, "w_out": 11})
    assert atom.padding == (1, 0, 2, 1)


@pytest.mark.parametrize(("fields", "message"), [
    ({"type": "dw", "c_in": 8, "h_in": 10, "w_in": 10, "k1": 3, "k2": 3, "c_out": 8,
      "h_out": 9, "w_out": 8}, "h_out 9 != 8"),
    ({"type": "pw", "c_in": 8, "h_in": 4, "w_in": 4, "k1": 3, "k2": 3, "c_out": 8,
      "h_out": 2, "w_out": 2}, "pw kernel is 3x3"),
    ({"type": "pad", "c_in": 8, "h_in": 4, "w_in": 4, "c_out": 8, "h_out": 6, "w_out": 6,
      "padding": 2}, "h_out 6 != h_in 4 + pad 2+2"),
    ({"type": "add", "c_in": 8, "h_in": 4, "w_in": 4, "c_out": 16, "h_out": 4, "w_out": 4},
     "output 16x4x4 != input 8x4x4"),
    ({"type": "dw", "groups": 4, "c_in": 8, "h_in": 4, "w_in": 4, "k1": 3, "k2": 3,
      "c_out": 8, "h_out": 2, "w_out": 2}, "dw needs groups == c_in == c_out"),
    ({"type": "fc", "c_in": 8, "h_in": 2, "c_out": 4}, "fc works on vectors"),
    ({"type": "pad", "k1": 3, "c_in": 8, "c_out": 8}, "k1 does not apply"),
    ({"type": "relu", "c_in": 8, "c_out": 8, "activation": "relu"},
     "cannot carry a fused activation"),
    ({"type": "swish", "c_in": 8, "c_out": 8}, "unknown atom type"),
    ({"type": "conv", "c_in": 8, "c_out": 8, "k2": 3}, "k1 is required"),
])
def test_inconsistent_atoms_are_config_errors_saying_what(fields, message):
    with pytest.raises(ConfigError, match=message.replace("+", r"\+")):
        Atom(**fields)


def test_non_number_cell_names_the_column():
    with pytest.raises(ConfigError, match="column 'h_in'"):
        Atom.from_row({"type": "pw", "c_in": 8, "h_in": "eight", "w_in": 8, "k1": 1, "k2": 1,
                       "c_out": 8, "h_out": 8, "w_out": 8})


def test_mac_and_flash_conventions_of_the_other_types():
    fc = Atom(type="fc", c_in=192, c_out=1000)
    assert (fc.macs, fc.published_macs, fc.flash_bytes) == (
        192 * 1000 + 1000, 192 * 1000, 192 * 1000 + 4 * 1000)
    add = Atom(type="add", c_in=16, h_in=8, w_in=8, c_out=16, h_out=8, w_out=8)
    assert (add.macs, add.published_macs, add.flash_bytes) == (16 * 64, 0, 0)
    assert (add.input_bytes, add.output_bytes) == (2 * 16 * 64, 16 * 64)
    gate = Atom(type="mul_bcast", c_in=16, h_in=8, w_in=8, c_out=16, h_out=8, w_out=8)
    assert gate.input_bytes == 16 * 64 + 16
    pool = Atom(type="maxpool", c_in=4, h_in=8, w_in=8, k1=2, k2=2, stride=2, c_out=4,
                h_out=4, w_out=4)
    assert pool.macs == 4 * 4 * 4 * 2 * 2
    gap = Atom(type="global_avgpool", c_in=32, h_in=5, w_in=5, c_out=32)
    assert (gap.macs, gap.published_macs) == (32 * 25, 0)
    with pytest.raises(ConfigError, match="unknown MAC convention"):
        gap.count_macs("flops")


def test_key_is_stable_and_distinguishes_every_field():
    base = Atom(type="dw", c_in=16, h_in=10, w_in=10, k1=3, k2=3, c_out=16, h_out=8, w_out=8)
    again = Atom.from_row({"type": "conv2d", "groups": "16", "c_in": "16", "h_in": "10",
                           "w_in": "10", "k1": "3", "k2": "3", "c_out": "16", "h_out": "8",
                           "w_out": "8", "stride": "", "padding": ""})
    assert again == base and again.key == base.key
    variants = [base.with_(activation="relu6"), base.with_(stride=2, h_out=4, w_out=4),
                base.with_(padding=1, h_out=10, w_out=10)]
    assert len({base.key, *(v.key for v in variants)}) == 4


def test_padding_forms():
    assert parse_padding(2) == (2, 2, 2, 2)
    assert parse_padding("1,0,2,1") == (1, 0, 2, 1)
    assert parse_padding([0, 1, 0, 1]) == (0, 1, 0, 1)
    with pytest.raises(ConfigError, match="4 values"):
        parse_padding("1,2")


def test_every_type_constructs():
    for t in ATOM_TYPES:
        kernel = {"k1": 1, "k2": 1} if t in ("conv", "dw", "avgpool", "maxpool") else {}
        Atom(type=t, c_in=4, c_out=4, **kernel)


@pytest.mark.skipif(not CALIBRATION.is_file(), reason=f"shared data absent: {CALIBRATION}")
def test_calibration_csv_flash_macs_and_stride_follow_the_conventions():
    rows = list(csv.DictReader(CALIBRATION.open()))
    assert len(rows) == 485
    atoms = [Atom.from_row(r) for r in rows]
    for row, atom in zip(rows, atoms, strict=True):
        assert atom.type == row["atom"]
        assert atom.flash_bytes == int(row["Flash"]), row
        assert atom.macs == int(row["MACs"]), row
        if row["stride"]:
            assert atom.stride == int(row["stride"]), row
    assert len({a.key for a in atoms}) == 485
