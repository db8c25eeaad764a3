"""``atomsim run ELF --board B``: run an ELF on an emulated board."""

from __future__ import annotations

from rich.markup import escape

from atomsim.cli.options import add_settings, verb_parser
from atomsim.cli.output import console, err_console, print_json, run_table
from atomsim.core.settings import RunSettings

TAIL_LINES = 200  # a console shows the tail of a UART flood; the whole of it goes to a file


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
            _print_uart(result.uart, args.elf, s.board)
        run_table([(args.elf, result)])
        if result.error is not None:
            err_console.print(f"[red]error:[/red] {escape(str(result.error))}", markup=True,
                              highlight=False)
    return 0 if result.error is None else result.error.exit_code


def _print_uart(text: str, elf: str, board: str) -> None:
    """The UART output, or for a flood its last TAIL_LINES lines and the path of a file that
    holds all of it (rendering megabytes on a terminal took ten times the emulation)."""
    from pathlib import Path

    from atomsim.core.paths import build_dir

    lines = text.splitlines(keepends=True)
    if len(lines) > TAIL_LINES:
        out = build_dir() / "runs" / f"{Path(elf).stem}-{board}.uart.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        err_console.print(f"... {len(lines) - TAIL_LINES} earlier UART lines not shown; all "
                          f"{len(lines)} are in {escape(str(out))}", highlight=False,
                          soft_wrap=True)
        text = "".join(lines[-TAIL_LINES:])
    console.file.write(text if text.endswith("\n") else text + "\n")
    console.file.flush()
