"""What the verbs share for printing: consoles, JSON, the run table."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def print_json(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (non-JSON values as strings)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def emit(args, data: Any, text: str) -> None:
    """``data`` as JSON with --json, else ``text`` for a person."""
    if args.json:
        print_json(data)
    else:
        console.print(text, highlight=False)


def run_table(rows) -> None:
    """One row per (name, RunResult): status, counts, latency, memory figures."""
    table = Table()
    for col in ("firmware", "board", "status", "instructions", "cycles", "latency ms",
                "Renode-style ms", "flash B", "static RAM B", "stack B", "peak RAM B"):
        table.add_column(col, justify="right" if col not in ("firmware", "board", "status")
                         else "left")
    for name, r in rows:
        table.add_row(str(name), r.board, r.status, f"{r.instructions:,}", f"{r.cycles:,}",
                      f"{r.latency_ms:.3f}", f"{r.renode_style_ms:.3f}", f"{r.flash_bytes:,}",
                      f"{r.static_ram_bytes:,}", f"{r.stack_bytes:,}", f"{r.peak_ram_bytes:,}")
    console.print(table)
