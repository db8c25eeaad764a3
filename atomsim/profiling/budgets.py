"""Budgets for CI: latency, SRAM and Flash limits checked against a network's profile.

A budget string is ``latency_ms=…,sram_kb=…,flash_kb=…`` (any subset; KB = 1024 bytes), from
``--budget`` or ``atomsim.toml``. Each (budget, board) pair is one check; a failed one names the
budget, the value and the limit. :func:`write_junit` writes one JUnit test case per check (the
junit-xml package), so CI systems show them; a board where the network does not fit fails
every budget with the OOM message.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from atomsim.core.errors import AtomSimError, ConfigError, DoesNotFit
from atomsim.profiling.network import BoardProfile

BUDGETS = {"latency_ms": "ms", "sram_kb": "KB", "flash_kb": "KB"}


class BudgetExceeded(AtomSimError):
    """At least one budget failed (the CLI exits with this code after reporting)."""

    exit_code = 20
    status = "budget-exceeded"


class ModelDoesNotFit(DoesNotFit):
    """The network fits none of the boards asked for: nothing was measured (exit code 4)."""

    def __init__(self, message: str):
        AtomSimError.__init__(self, message)


@dataclass(frozen=True)
class BudgetCheck:
    """One budget on one board."""

    budget: str
    board: str
    model: str
    limit: float
    value: float | None  # None: the network does not fit the board
    message: str = ""

    @property
    def passed(self) -> bool:
        """Within the limit."""
        return self.value is not None and self.value <= self.limit

    def describe(self) -> str:
        """One line for people."""
        unit = BUDGETS[self.budget]
        if self.value is None:
            return f"{self.model} on {self.board}: {self.budget} budget {self.limit:g} {unit} " \
                   f"failed: {self.message}"
        verdict = "ok" if self.passed else "FAILED"
        return (f"{self.model} on {self.board}: {self.budget} = {self.value:.3f} {unit}, "
                f"limit {self.limit:g} {unit}: {verdict}")


def parse_budgets(text: str | None) -> dict[str, float]:
    """``latency_ms=500,sram_kb=320`` as a dict; unknown names and bad numbers are errors."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if not sep or name not in BUDGETS:
            raise ConfigError(f"budget {part.strip()!r}: expected NAME=VALUE with NAME one of "
                              f"{', '.join(BUDGETS)}")
        if name in out:
            raise ConfigError(f"budget {name} is given twice; give each budget once")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"budget {name}: {value.strip()!r} is not a number") from None
        if not math.isfinite(number) or number <= 0:
            raise ConfigError(f"budget {name}: the limit must be a positive number, got "
                              f"{value.strip()!r}")
        out[name] = number
    return out


def check_budgets(profiles: list[BoardProfile], budgets: dict[str, float]) -> list[BudgetCheck]:
    """One check per budget and board."""
    checks = []
    for p in profiles:
        for name, limit in budgets.items():
            if p.status != "ok":
                checks.append(BudgetCheck(name, p.board, p.model, limit, None,
                                          f"does not fit the board: {p.message}"))
                continue
            value = {"latency_ms": p.latency_ms, "sram_kb": p.sram["peak"] / 1024,
                     "flash_kb": p.flash["total"] / 1024}[name]
            checks.append(BudgetCheck(name, p.board, p.model, limit, value))
    return checks


def write_junit(checks: list[BudgetCheck], path: str | Path, suite: str = "atomsim budgets"
                ) -> None:
    """One JUnit test case per check; failures carry the value and the limit."""
    from junit_xml import TestCase, TestSuite, to_xml_report_string

    cases = []
    for c in checks:
        case = TestCase(f"{c.budget} on {c.board}", classname=f"atomsim.{c.model}",
                        stdout=c.describe())
        if not c.passed:
            case.add_failure_info(message=c.describe(), failure_type="budget")
        cases.append(case)
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    try:  # whole or not at all: a full disk leaves the old report (or none), never half a file
        partial.write_text(to_xml_report_string([TestSuite(suite, cases)]))
        partial.replace(path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"--junit {path}: cannot write the report: {exc}") from None
