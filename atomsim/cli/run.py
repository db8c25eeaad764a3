"""``atomsim run ELF --board B``: run an ELF on an emulated board."""

from __future__ import annotations

from rich.markup import escape

from atomsim.cli.options import add_settings, verb_parser
from atomsim.cli.output import console, err_console, print_json, run_table
from atomsim.core.settings import RunSettings


def register(subparsers):
    """Add the ``run`` verb."""
    parser = verb_parser(subparsers, "run", "run an ELF on an emulated board")
    parser.add_argument("elf", help="the firmware (32-bit ARM ELF)")
    return add_settings(parser, RunSettings)


def run(args) -> int:
    """Run the ELF; exit code 0 only for a clean end, else the error's own exit code."""
    from atomsim.boards import get_board
    from atomsim.emulator.machine import run_elf

    s: RunSettings = args.settings
    result = run_elf(get_board(s.board), args.elf, max_instructions=s.max_instructions)
    if args.json:
        print_json(result.to_dict())
    else:
        if result.uart:
            console.print(result.uart, end="" if result.uart.endswith("\n") else "\n",
                          markup=False, highlight=False)
        run_table([(args.elf, result)])
        if result.error is not None:
            err_console.print(f"[red]error:[/red] {escape(str(result.error))}", markup=True,
                              highlight=False)
    return 0 if result.error is None else result.error.exit_code
