"""Guidelines G1-G3 recomputed from a real AtomDB file (the shared calibration CSV)."""

import csv
import statistics
from pathlib import Path

import pytest

from atomsim.core.errors import ConfigError
from atomsim.db import AtomDB, Measurement
from atomsim.nn.atoms import Atom
from atomsim.reports.guidelines import guidelines, report_guidelines

pytestmark = pytest.mark.unit

CALIBRATION = (Path(__file__).resolve().parents[1].parent / "shared" / "data"
               / "atomdb-h743-calibration.csv")
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def calibrated(tmp_path):
    if not CALIBRATION.is_file():
        pytest.skip(f"shared data absent: {CALIBRATION}")
    path = tmp_path / "cal.db"
    with AtomDB.open(path) as db:
        db.import_file(CALIBRATION, board="stm32h743", source="board")
    return path


def test_guidelines_from_the_h743_calibration(calibrated, tmp_path):
    result = report_guidelines(calibrated, "stm32h743", tmp_path / "report")
    rows = list(csv.DictReader(CALIBRATION.open()))

    g1 = result["g1"]
    assert g1["n"] == {t: sum(r["atom"] == t for r in rows) for t in ("dw", "pw", "conv")}
    assert g1["nc_fit"]["r2"] > 0.99  # NC Flash is linear in c_in·c_out·k²
    assert g1["order"] == ["dw", "pw", "conv"] and g1["holds"]

    def median_efficiency(kind):
        return statistics.median(int(r["MACs"]) / float(r["latency_ms"])
                                 for r in rows if r["atom"] == kind)

    g3 = result["g3"]
    assert g3["per_type"]["pw"]["median_macs_per_ms"] == pytest.approx(median_efficiency("pw"))
    assert g3["pw_over_dw"] == pytest.approx(median_efficiency("pw") / median_efficiency("dw"))
    assert g3["holds"]
    assert result["g2"]["status"] != "ok"  # the calibration sample has no Add/Mul atoms

    for plot in result["plots"].values():
        assert Path(plot).read_bytes()[:8] == PNG
    summary = Path(result["summary"]).read_text()
    assert f"PW / DW efficiency = {g3['pw_over_dw']:.2f}" in summary
    assert "no add/mul measurements" in summary


def test_g2_uses_the_measured_sram_when_present(tmp_path):
    adds = [Atom(type="add", c_in=c, h_in=h, w_in=h, c_out=c, h_out=h, w_out=h)
            for c, h in ((16, 48), (32, 24), (64, 12))]
    gate = Atom(type="mul_bcast", c_in=96, h_in=6, w_in=6, c_out=96, h_out=6, w_out=6)
    scratch = 100

    def fmap(a):
        return a.c_in * a.h_in * a.w_in

    found = [Measurement(atom=a, board="stm32f412", latency_ms=0.5, kernel_variant="reference",
                         sram_bytes=2 * fmap(a) + scratch) for a in adds]
    found.append(Measurement(atom=gate, board="stm32f412", latency_ms=0.1,
                             kernel_variant="reference"))
    with AtomDB.open(tmp_path / "g2.db") as db:
        db.upsert_measurements(found)
        result = guidelines(db, "stm32f412", tmp_path / "out")["g2"]
    assert result["status"] == "ok"
    assert result["add"]["measured_ratio"] == pytest.approx(
        statistics.median(2 + scratch / fmap(a) for a in adds))
    assert result["add"]["model_ratio"] == 3.0  # two operands and the output, no reuse
    assert result["mul_bcast"]["measured_ratio"] is None
    assert result["mul_bcast"]["model_ratio"] == pytest.approx((2 * fmap(gate) + 96) / fmap(gate))


def test_a_board_without_measurements_is_a_config_error(tmp_path):
    with AtomDB.open(tmp_path / "empty.db") as db, \
            pytest.raises(ConfigError, match="no measurements for board 'stm32h743'"):
        guidelines(db, "stm32h743", tmp_path / "out")
