"""``atomsim db stats|query|export|import``: AtomDB from the command line."""

from __future__ import annotations

import sys

from atomsim.cli.options import add_common, add_settings, verb_parser
from atomsim.cli.output import console, emit
from atomsim.core.errors import ConfigError
from atomsim.core.paths import writable_dir
from atomsim.core.settings import (
    DbExportSettings,
    DbImportSettings,
    DbQuerySettings,
    DbStatsSettings,
)

_SUB = {"stats": (DbStatsSettings, "counts per board, source, kernel variant and atom type"),
        "query": (DbQuerySettings, "measurements as a table (the export layout)"),
        "export": (DbExportSettings, "write measurements as CSV or Parquet"),
        "import": (DbImportSettings, "read measurements from CSV or Parquet")}


def register(subparsers):
    """Add the ``db`` verb and its sub-verbs."""
    parser = verb_parser(subparsers, "db", "AtomDB: stats, query, export, import")
    sub = parser.add_subparsers(dest="db_verb", required=True, metavar="{stats,query,...}")
    for name, (cls, help_) in _SUB.items():
        sp = sub.add_parser(name, help=help_, description=help_)
        add_common(sp)
        if name == "import":
            sp.add_argument("file", help="a CSV or Parquet file in the export layout")
        add_settings(sp, cls)
    return parser


def run(args) -> int:
    """Run the chosen sub-verb."""
    from atomsim.db import commands as dbc

    s = args.settings
    if args.db_verb == "stats":
        stats = dbc.db_stats(s.db, board=s.board)
        emit(args, stats, dbc.format_stats(stats))
    elif args.db_verb == "query":
        frame = dbc.db_query(s.db, board=s.board, atom_type=s.type, variant=s.variant,
                             source=s.source, limit=s.limit or None)
        if args.json:
            sys.stdout.write(frame.to_json(orient="records", indent=2) + "\n")
        else:
            console.print(frame.to_string(index=False), highlight=False)
    elif args.db_verb == "export":
        out = s.out
        if s.format and out.suffix != "." + s.format:
            raise ConfigError(f"--out {out} does not end in .{s.format}")
        if out.is_dir():
            raise ConfigError(f"--out {out} is a directory; name a .csv or .parquet file")
        writable_dir(out.parent, f"--out {out}")
        n = dbc.db_export(s.db, out, board=s.board)
        emit(args, {"rows": n, "out": str(out)}, f"{n} rows -> {out}")
    elif args.db_verb == "import":
        n = dbc.db_import(s.db, args.file, board=s.board, source=s.source)
        emit(args, {"rows": n}, f"{n} rows imported into {s.db}")
    return 0
