"""``atomsim profile``: per-layer table and totals, JSON, budgets with exit codes and JUnit."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from atomsim.cli import main
from atomsim.core.errors import ConfigError
from atomsim.profiling.budgets import BudgetExceeded, parse_budgets

MODEL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tflite" / \
    "ad01_int8.tflite"
needs_model = pytest.mark.skipif(not MODEL.is_file(), reason=f"shared data absent: {MODEL}")


@pytest.mark.firmware
@needs_model
def test_profile_json_has_the_table3_columns_and_their_parts(capsys):
    assert main(["profile", str(MODEL), "--board", "stm32h743", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (p,) = out["profiles"]
    assert p["status"] == "ok" and p["exact"] is True
    assert p["macs"] == 265864 and len(p["layers"]) == 10
    f, s = p["flash"], p["sram"]
    assert f["total"] == f["weights"] + f["graph"] + f["code"]
    assert s["peak"] == s["arena"] + s["scratch"] + s["static"] + s["stack"]
    assert abs(sum(r["share"] for r in p["layers"]) - 1) < 0.01
    assert p["latency_ms"] == pytest.approx(p["cycles"] / 480e6 * 1e3)


@pytest.mark.firmware
@needs_model
def test_failed_budgets_exit_non_zero_and_write_one_junit_case_each(tmp_path, capsys):
    junit = tmp_path / "budgets.xml"
    code = main(["profile", str(MODEL), "--board", "stm32f412,stm32h743", "--budget",
                 "latency_ms=0.5,sram_kb=64,flash_kb=100", "--junit", str(junit)])
    assert code == BudgetExceeded.exit_code
    err = capsys.readouterr().err
    assert "flash_kb" in err and "limit 100 KB" in err
    suite = ET.parse(junit).getroot().find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 6  # 3 budgets x 2 boards
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    # 313 KB of Flash fails on both boards; 0.85 ms (H743) and ~5 ms (F412) both fail 0.5 ms
    assert failed == {"flash_kb on stm32f412", "flash_kb on stm32h743",
                      "latency_ms on stm32f412", "latency_ms on stm32h743"}
    assert int(suite.get("failures")) == 4


@pytest.mark.unit
def test_budget_mistakes_are_named():
    assert parse_budgets("latency_ms=5, sram_kb=320") == {"latency_ms": 5.0, "sram_kb": 320.0}
    with pytest.raises(ConfigError, match="NAME one of latency_ms, sram_kb, flash_kb"):
        parse_budgets("speed=5")
    with pytest.raises(ConfigError, match="not a number"):
        parse_budgets("sram_kb=lots")
    with pytest.raises(ConfigError, match="positive"):
        parse_budgets("flash_kb=-1")


@pytest.mark.unit
def test_unknown_board_is_a_config_error(capsys):
    assert main(["profile", "nothing.tflite", "--board", "stm32xyz"]) == ConfigError.exit_code
    assert "stm32xyz" in capsys.readouterr().err


@pytest.mark.firmware
@needs_model
def test_budgets_come_from_the_project_file_too(tmp_path, capsys):
    toml = tmp_path / "atomsim.toml"
    toml.write_text('[profile]\nboard = "stm32h743"\nbudget = "flash_kb=100"\n')
    code = main(["profile", str(MODEL), "--config", str(toml)])
    assert code == BudgetExceeded.exit_code
    assert "flash_kb" in capsys.readouterr().err
    assert main(["profile", str(MODEL), "--config", str(toml), "--budget", "flash_kb=400"]) == 0


@pytest.mark.firmware
def test_weights_over_the_flash_are_an_oom_row_before_any_build(tmp_path, capsys):
    # A stage config whose seeded weights alone (~1.3 MB) exceed the F412's and F746's 1 MB of
    # flash: those boards show an OOM row naming the flash and the bytes, found before any C
    # is generated (a huge config used to fail only at link time, after minutes); the H743's
    # 2 MB flash takes it.
    cfg = tmp_path / "wide.json"
    cfg.write_text(json.dumps({
        "input_resolution": 8, "depth": [1, 1], "out_channel": [16, 1152],
        "block_type_stage": ["conv", "conv"], "act_stages": ["relu", "relu"],
        "se_stages": [False, False], "stride_stages": [2, 1], "kernel_size": [3, 3],
        "expand_ratio": [1, 1], "num_classes": 1000}))
    code = main(["profile", str(cfg), "--board", "stm32f412,stm32h743", "--json"])
    out = json.loads(capsys.readouterr().out)
    by_board = {p["board"]: p for p in out["profiles"]}
    assert by_board["stm32f412"]["status"] == "oom", by_board["stm32f412"]
    assert "flash" in by_board["stm32f412"]["message"]
    assert by_board["stm32h743"]["status"] == "ok" and code == 0
