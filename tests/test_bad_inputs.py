"""Issue 11: the bad-input corpus. Every case of tests/badinput/cases.toml, through the real
``atomsim`` console script in a subprocess, under a timeout.

Each case: files made by named recipes (tests/badinput/runner.py, nn_recipes.py), the command
line (or a one-test Robot suite), and the expected outcome: exit code, the error's name (read
from the ``--json`` output, or the Robot failure's prefix), words the output must contain, and
what the database and files hold afterwards (unchanged bytes, absent, a row count, failure
rows, sources). Fault cases (``fault = ...``) kill or interrupt a running sweep
and check that its workers are gone and what it measured is kept. No case may print a Python
traceback or hang. The corpus size and the outcome counts are printed by the last test and
written to docs/reliability.md by ``tests/badinput/list_cases.py``.
"""

from __future__ import annotations

import pytest
from badinput.runner import CASES, check, run_cases, summary

pytestmark = pytest.mark.firmware  # builds and runs firmware (hello, the harness)


@pytest.fixture(scope="session")
def outcomes(request, tmp_path_factory):
    """Run the selected cases (several at a time) once per session."""
    selected = [item.callspec.params["name"] for item in request.session.items
                if item.originalname == "test_case" and hasattr(item, "callspec")]
    return run_cases([c for c in CASES if c["name"] in selected],
                     tmp_path_factory.mktemp("badinput"))


@pytest.mark.parametrize("name", [c["name"] for c in CASES])
def test_case(outcomes, name):
    if outcomes[name].skipped:
        pytest.skip(outcomes[name].skipped)
    problems = check(outcomes[name])
    assert not problems, f"{name}: " + "; ".join(problems) + "\n" + outcomes[name].transcript()


def test_the_corpus_covers_every_verb_and_fault():
    verbs = {c["verb"] for c in CASES}
    assert {"run", "build", "sweep", "db stats", "db query", "db export", "db import",
            "report", "cli", "profile", "calibrate", "atomnet train", "atomnet quantize",
            "atomnet export", "atomnet summary", "atomnet search", "atomnet deploy",
            "robot"} <= verbs
    faults = {c.get("fault") for c in CASES} - {None}
    assert {"kill-main", "kill-worker", "sigint"} <= faults
    setups = {spec["recipe"] for c in CASES for spec in c.get("files", {}).values()}
    assert {"atomdb", "foreign_sqlite", "text", "dir", "import_csv", "atoms_csv",
            "silent_server", "tflite", "stage_config", "mcunet", "images", "checkpoint",
            "qmodel"} <= setups
    assert any(c.get("lock") for c in CASES) and any(c.get("file_size_limit") for c in CASES)
    assert len(CASES) >= 80 and len({c["name"] for c in CASES}) == len(CASES)


def test_zz_corpus_summary(outcomes, capsys):
    """Print the corpus size and the counts per outcome (after every case has run)."""
    text = summary(outcomes)
    with capsys.disabled():
        print("\n" + text)
    assert text.startswith(f"bad-input corpus: {len(outcomes)} case(s)")
