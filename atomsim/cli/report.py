"""``atomsim report guidelines``: the method's guidelines from AtomDB, with plots."""

from __future__ import annotations

from atomsim.cli.options import add_common, add_settings, verb_parser
from atomsim.cli.output import console, print_json
from atomsim.core.paths import writable_dir
from atomsim.core.settings import ReportGuidelinesSettings


def register(subparsers):
    """Add the ``report`` verb and its sub-verbs."""
    parser = verb_parser(subparsers, "report", "reports from AtomDB")
    sub = parser.add_subparsers(dest="report_verb", required=True)
    g = sub.add_parser("guidelines", help="the method's guidelines G1-G3 with plots")
    add_common(g)
    add_settings(g, ReportGuidelinesSettings)
    return parser


def run(args) -> int:
    """Write the report into --out (checked to be a writable directory first)."""
    from atomsim.reports.guidelines import report_guidelines

    s: ReportGuidelinesSettings = args.settings
    writable_dir(s.out, f"--out {s.out}")
    result = report_guidelines(s.db, s.board, s.out)
    if args.json:
        print_json(result)
    else:
        summary = result.get("summary_path") or result.get("summary")
        console.print(f"guidelines for {s.board} written to {s.out}"
                      + (f" ({summary})" if summary else ""))
    return 0
