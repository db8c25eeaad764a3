"""``atomsim build EXAMPLE --board B``: build an example firmware; prints the ELF path."""

from __future__ import annotations

from atomsim.cli.options import add_settings, verb_parser
from atomsim.cli.output import print_json
from atomsim.core.settings import BuildSettings


def register(subparsers):
    """Add the ``build`` verb."""
    parser = verb_parser(subparsers, "build", "build an example firmware; prints the ELF path")
    parser.add_argument("example", help="an example under firmware/examples/")
    return add_settings(parser, BuildSettings)


def run(args) -> int:
    """Build the example for the board and print the ELF path."""
    from atomsim.boards import get_board
    from atomsim.target.firmware import build_example

    s: BuildSettings = args.settings
    elf = build_example(args.example, get_board(s.board))
    if args.json:
        print_json({"elf": str(elf), "board": s.board, "example": args.example})
    else:
        print(elf)
    return 0
