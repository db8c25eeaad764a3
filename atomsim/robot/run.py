"""Run AtomSim's Robot suites: ``python -m atomsim.robot.run [robot options] [suites]``.

Builds what the Renode-vocabulary suite gets from outside (``${BIN}``), points
``${RENODEKEYWORDS}`` at AtomSim's stand-in for renode-keywords.robot, and runs Robot
Framework over ``robot/`` (or the suites given), writing to ``build/robot``. The exit status
is Robot's: 0 when every test passed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import robot as robotframework
from atomsim.boards import get_board
from atomsim.core.paths import REPO_ROOT, build_dir
from atomsim.target.firmware import build_example

SUITES_DIR = REPO_ROOT / "robot"
KEYWORDS_RESOURCE = SUITES_DIR / "atomsim-renode-keywords.resource"
RENODE_SUITE_BOARD = "stm32f746"  # the board renode_vocabulary.robot's platform file names


def robot_arguments(extra: Sequence[str] = ()) -> list[str]:
    """Robot's command line: output directory, the variables the suites need, then ``extra``
    (options, and suites; all of robot/ when ``extra`` names no file or directory)."""
    elf = build_example("hello", get_board(RENODE_SUITE_BOARD))
    names_a_suite = any(not a.startswith("-") and Path(a).exists() for a in extra)
    return ["--outputdir", str(build_dir() / "robot"),
            "--variable", f"RENODEKEYWORDS:{KEYWORDS_RESOURCE}",
            "--variable", f"BIN:{elf}",
            *extra, *([] if names_a_suite else [str(SUITES_DIR)])]


def main(argv: Sequence[str] | None = None) -> int:
    """Build, run the suites, return Robot's exit status."""
    args = robot_arguments(sys.argv[1:] if argv is None else argv)
    return robotframework.run_cli(args, exit=False)


if __name__ == "__main__":
    sys.exit(main())
