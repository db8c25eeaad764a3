"""``atomsim boards``: the boards and their memories."""

from __future__ import annotations

from rich.table import Table

from atomsim.boards import load_boards
from atomsim.cli.options import verb_parser
from atomsim.cli.output import console, print_json


def register(subparsers):
    """Add the ``boards`` verb."""
    return verb_parser(subparsers, "boards", "list boards and their memories")


def run(args) -> int:
    """Table of boards and their memories."""
    boards = load_boards()
    if args.json:
        print_json([{
            "id": b.id, "name": b.name, "board": b.board, "core": b.core, "clock_hz": b.clock_hz,
            "flash_wait_states": b.flash_wait_states, "sram_budget_bytes": b.sram_budget_bytes,
            "memories": [{"name": m.name, "addresses": list(m.addresses), "size": m.size}
                         for m in b.platform().memories],
            "regions": {r.name: {"address": r.address, "size": r.size}
                        for r in (b.flash, b.ram, b.stack)},
        } for b in boards.values()])
        return 0
    table = Table(title="AtomSim boards")
    for col in ("board", "chip", "core", "clock", "flash WS", "memories (datasheet sizes)"):
        table.add_column(col)
    for b in boards.values():
        mems = ", ".join(f"{m.name} {m.size // 1024} KB @0x{m.addresses[0]:08X}"
                         for m in b.platform().memories)
        table.add_row(b.id, f"{b.name} ({b.board})", b.core, f"{b.clock_hz / 1e6:g} MHz",
                      str(b.flash_wait_states), mems)
    console.print(table)
    return 0
