"""The zero-cost search: spaces as stage configs, a Pareto front that is one, limits met per
AtomDB and the real memory planner, and the chosen network confirmed on the emulated board.

A small space (Table 2's pattern with two widths per stage, 32 px, 10 classes) keeps the
one-time AtomDB fill (atoms profiled on demand through the sweep machinery, real firmware on
the emulator) to tens of seconds; it is filled once per session into a real SQLite file.
Search speed is measured in benchmarks/search_speed.py, not here.
"""

from __future__ import annotations

import math
import random
import sqlite3

import pytest

from atomnet.config import StageConfig
from atomnet.search import (
    Archive,
    Evaluator,
    Limits,
    SearchError,
    pareto,
    search,
)
from atomnet.space import SPACES, Candidate, Space, StageSpace, get_space, reduced
from atomsim.boards import get_board
from atomsim.core.errors import ConfigError
from atomsim.db import AtomDB
from atomsim.nn.frontends.stage_config import parse
from atomsim.nn.lowering import build_graph, with_random_weights
from atomsim.nn.planner import board_banks, plan

BOARD = "stm32h743"
SMALL = Space("small", (
    StageSpace(("conv",), (8, 16), (1,), (1,), False, 2),
    StageSpace(("mobile_one",), (16,), (1,), (1,), False, 1),
    StageSpace(("mobile_one",), (16, 24), (1, 2), (1,), False, 2),
    StageSpace(("mobile_one", "mbconvnext"), (24, 32), (1,), (1, 3), False, 2),
    StageSpace(("mbconvnext",), (32, 48), (2,), (6,), True, 2),
    StageSpace(("mbconvnext",), (48,), (1,), (6,), True, 2),
), resolutions=(32,), num_classes=10)


@pytest.fixture(scope="session")
def filled(tmp_path_factory):
    """One AtomDB file with the small space's atoms on the H743 (profiled on demand)."""
    db = tmp_path_factory.mktemp("atomnet-search") / "atoms.db"
    ev = Evaluator(SMALL, BOARD, db, log=lambda _m: None)
    ev.prepare()
    return db, ev


def limits_for(ev: Evaluator) -> Limits:
    """Limits that cut the small space roughly in half: median latency, generous memories."""
    rng = random.Random(0)
    lat = sorted(ev.evaluate(SMALL.sample(rng)).latency_ms for _ in range(64))
    return Limits(lat[len(lat) // 2], 256 * 1024, 1024 * 1024)


# -- spaces ---------------------------------------------------------------------------------------

@pytest.mark.unit
@pytest.mark.parametrize("name", sorted(SPACES))
def test_candidates_are_stage_configs_both_readers_take(name):
    space = get_space(name, num_classes=10, kernels=(3, 5))
    rng = random.Random(1)
    for _ in range(20):
        spec = space.config(space.sample(rng))
        StageConfig.from_dict(spec)  # atomnet's reader (training)
        graph = build_graph(parse(spec, "cand"))  # atomsim's reader (profile)
        assert graph.tensors[graph.outputs[0]].shape == (1, 1, 1, 10)


@pytest.mark.unit
def test_hybrid_space_is_table2():
    space = get_space("hybrid")
    blocks = [s.blocks for s in space.stages]
    assert blocks == [("conv",), ("mobile_one",), ("mobile_one",), ("mobile_one", "mbconvnext"),
                      ("mbconvnext",), ("mbconvnext",)]
    assert [s.se for s in space.stages] == [False, False, False, False, True, True]
    assert [s.stride for s in space.stages] == [2, 1, 2, 2, 2, 2]
    assert space.stages[4].depths == (2, 4, 6) and space.stages[3].expansions == (1, 3, 6)
    assert space.resolutions == (256, 224, 192, 160, 128, 92, 80, 64, 48)
    # 9 res x 5 x 5 x (6 widths x 2 depths) x (6 x 2 x (1 SEP + 3 ConvNext e)) x 21 x 14
    assert space.size() == 9 * 5 * 5 * 12 * 48 * 21 * 14
    assert all(s.kernels == (3,) for s in space.stages)
    assert get_space("hybrid", kernels=(3, 5)).stages[1].kernels == (3, 5)
    assert reduced(space).size() < space.size()


@pytest.mark.unit
def test_bad_space_inputs_are_named_errors():
    with pytest.raises(ConfigError, match="unknown search space"):
        get_space("resnet")
    with pytest.raises(ConfigError, match="kernel sizes"):
        get_space("hybrid", kernels=(7,))
    with pytest.raises(ConfigError, match="num_classes"):
        get_space("hybrid", num_classes=0)
    with pytest.raises(SearchError, match="latency_ms"):
        Limits(-1, 1, 1)


# -- the front ---------------------------------------------------------------------------------

@pytest.mark.unit
def test_pareto_keeps_exactly_the_non_dominated_points():
    rng = random.Random(3)
    pts = [(rng.uniform(0, 100), rng.randrange(1000), i) for i in range(500)]
    front = pareto(pts)
    for lat, macs, _ in front:  # nothing on the front is dominated
        assert not any(l2 <= lat and m2 >= macs and (l2, m2) != (lat, macs) for l2, m2, _ in pts)
    kept = {p[2] for p in front}
    for lat, macs, i in pts:  # everything left out is dominated (or a duplicate)
        if i not in kept:
            assert any(l2 <= lat and m2 >= macs for l2, m2, j in front)


@pytest.mark.unit
def test_archive_keeps_the_best_per_latency_bin():
    from atomnet.search import Metrics

    arch = Archive(100.0, bins=10, keep=2)
    for i in range(50):
        m = Metrics(i, (i % 10) * 10 + 0.5, 0, 0, 0, 0)  # bin 0: MACs 0, 10, 20, 30, 40
        arch.add(Candidate(32, (i,)), m)
    macs_bin0 = sorted(p[1] for p in arch.points() if p[0] < 10)
    assert macs_bin0 == [30, 40] and len(arch) == 20


@pytest.mark.firmware
def test_missing_atoms_are_profiled_once_and_cached(filled):
    db, ev = filled
    assert ev.profiled > 0  # the fresh file had none of them
    again = Evaluator(SMALL, BOARD, db, log=lambda _m: None)
    again.prepare()
    assert again.profiled == 0
    cand = SMALL.sample(random.Random(5))
    assert again.evaluate(cand) == ev.evaluate(cand)  # deterministic, from the same rows
    assert "no calibration" in ev.latency.describe()
    con = sqlite3.connect(db)  # the runtime costs are cached in the same SQLite file
    assert con.execute("SELECT count(*) FROM atomnet_runtime WHERE board = ?",
                       (BOARD,)).fetchone()[0] == 1
    con.close()


@pytest.fixture(scope="session")
def result(filled):
    db, ev = filled
    return search(SMALL, BOARD, limits_for(ev), db, strategy="exhaustive", full_grid=True,
                  evaluator=ev, log=lambda _m: None)


@pytest.mark.firmware
def test_front_is_pareto_and_every_point_meets_the_limits(filled, result):
    db, ev = filled
    lim = result.limits
    pts = [(p.metrics.latency_ms, p.metrics.macs) for p in result.front]
    assert pts == sorted(pts) and len({m for _, m in pts}) == len(pts)
    assert all(m1 < m2 for (_, m1), (_, m2) in zip(pts, pts[1:], strict=False))
    board = get_board(BOARD)
    with AtomDB.open(db, readonly=True) as adb:
        for p in result.front:
            graph = build_graph(parse(p.config, "cand"))
            # latency from AtomDB summed over the graph's own atoms (not the block cache)
            total = adb.sum_atoms(BOARD, graph.atoms(), variant=ev.variant, source="emulator")
            assert math.isclose(total.latency_ms, p.metrics.latency_ms, rel_tol=1e-9)
            assert total.macs == p.metrics.macs
            assert p.metrics.latency_ms <= lim.latency_ms
            # SRAM from the real planner on the whole graph
            mem = plan(graph, board_banks(board), variant=ev.variant)
            arena = max(pl.offset + pl.size for pl in mem.placements)
            rt = ev.runtime
            assert p.planned_sram_bytes == ((arena + 7) & ~7) + rt.static_bytes + rt.stack_bytes
            assert p.planned_sram_bytes <= lim.sram_bytes
            assert p.metrics.flash_bytes <= lim.flash_bytes


@pytest.mark.firmware
def test_exhaustive_finds_the_best_candidate_and_the_others_do_no_better(filled, result):
    db, ev = filled
    lim = result.limits
    best = 0
    choices = SMALL.stage_choices()
    import itertools

    for picks in itertools.product(*choices):
        cand = Candidate(32, picks)
        m = ev.evaluate(cand)
        if m.fits(lim, ev.board):
            sram, _ = ev.verify(cand)
            if sram is not None and sram <= lim.sram_bytes:
                best = max(best, m.macs)
    assert result.chosen.metrics.macs == best
    for strategy in ("random", "evolution"):
        other = search(SMALL, BOARD, lim, db, strategy=strategy, budget=2000, evaluator=ev,
                       log=lambda _m: None)
        assert other.chosen.metrics.macs <= best


@pytest.mark.firmware
def test_chosen_network_fits_on_the_emulated_board(filled, result):
    """The network firmware of the chosen config (seeded weights) runs on the emulated H743
    within all three limits, and the search's figures match the measured ones."""
    from atomsim.profiling.network import profile_model

    db, ev = filled
    p = result.chosen
    graph = with_random_weights(build_graph(parse(p.config, "chosen")), seed=0)
    prof = profile_model(graph, get_board(BOARD), ev.variant)
    lim = result.limits
    assert prof.status == "ok" and prof.exact
    assert prof.latency_ms <= lim.latency_ms
    assert prof.sram["peak"] <= lim.sram_bytes
    assert prof.flash["total"] <= lim.flash_bytes
    assert abs(prof.flash["total"] - p.metrics.flash_bytes) <= 64  # weights + table + code
    assert prof.sram["arena"] + prof.sram["scratch"] + prof.sram["static"] \
        + ev.runtime.stack_bytes == p.planned_sram_bytes
    assert abs(prof.latency_ms - p.metrics.latency_ms) <= 0.03 * p.metrics.latency_ms


@pytest.mark.firmware
def test_calibrated_latency_upper_end_is_used_when_a_calibration_exists(filled, tmp_path):
    """A calibration row (the calibration package's tables) raises latencies to the upper end
    of the interval; atoms it has no value for keep the raw emulated latency."""
    import shutil

    from calibration import store

    db, ev = filled
    copy = tmp_path / "calibrated.db"
    shutil.copy(db, copy)
    keys = sorted({a for b in ev.blocks.values() for a in b.atoms})
    half = keys[: len(keys) // 2]
    with AtomDB.open(copy) as adb:
        store.ensure(adb)
        con = store.connection(adb)
        with adb.transaction():
            con.execute("INSERT INTO calibrations (id, board, kernel_variant, source_kind, "
                        "source, n_points, repeats, model_json, cv_error_json, created_at) "
                        "VALUES ('cal-test', ?, ?, 'csv', 'test', 1, 1, '{}', '{}', "
                        "'2026-01-01T00:00:00+00:00')", (BOARD, ev.variant))
            for k in half:
                raw = ev.latency.ms[k]
                con.execute("INSERT INTO calibrated_latency (calibration_id, board, atom_key, "
                            "class, status, emulated_ms, calibrated_ms, interval_low_ms, "
                            "interval_high_ms) VALUES ('cal-test', ?, ?, 'x', 'ok', ?, ?, ?, ?)",
                            (BOARD, k, raw, 1.5 * raw, 1.2 * raw, 2 * raw))
    cal = Evaluator(SMALL, BOARD, copy, log=lambda _m: None)
    cal.prepare()
    assert cal.latency.calibration_id == "cal-test"
    assert cal.latency.calibrated_atoms == len(half)
    assert all(cal.latency.ms[k] == pytest.approx(2 * ev.latency.ms[k]) for k in half)
    assert all(cal.latency.ms[k] == ev.latency.ms[k] for k in keys[len(half):])
    mid = Evaluator(SMALL, BOARD, copy, calibrated="mid", log=lambda _m: None)
    mid.prepare()
    assert all(mid.latency.ms[k] == pytest.approx(1.5 * ev.latency.ms[k]) for k in half)
    assert "calibration cal-test" in cal.latency.describe()


@pytest.mark.firmware
def test_impossible_limits_are_a_named_error(filled):
    db, ev = filled
    with pytest.raises(SearchError, match="no candidate"):
        search(SMALL, BOARD, Limits(0.001, 256 * 1024, 1024 * 1024), db, strategy="random",
               budget=500, evaluator=ev, log=lambda _m: None)


@pytest.mark.unit
@pytest.mark.parametrize("bad, message", [
    (["--space", "resnet"], "unknown search space"),
    (["--strategy", "annealing"], "unknown strategy"),
    (["--kernels", "3,x"], "--kernels"),
    (["--sram-kb", "-5"], "sram_bytes"),
])
def test_cli_search_bad_inputs(tmp_path, capsys, bad, message):
    from atomsim.cli import main

    args = ["atomnet", "search", "--board", BOARD, "--latency-ms", "10", "--sram-kb", "256",
            "--flash-kb", "1024", "--db", str(tmp_path / "x.db"), "--out",
            str(tmp_path / "o.json"), "--json"]
    for i in range(0, len(bad), 2):
        if bad[i] in args:
            args[args.index(bad[i]) + 1] = bad[i + 1]
        else:
            args += bad[i:i + 2]
    assert main(args) == 2
    assert message in capsys.readouterr().out
    assert not (tmp_path / "x.db").exists()  # nothing written before the inputs are checked
