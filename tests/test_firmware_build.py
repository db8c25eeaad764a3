"""The firmware build cache: a changed input is a new build, never a stale ELF."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.firmware


def test_a_header_beside_a_source_is_part_of_the_cache_key(tmp_path):
    """A quoted #include finds headers in the source's own folder (the harness's
    harness_jobs.h): editing one must rebuild, as editing an include-path header does."""
    from atomsim.boards import get_board
    from atomsim.target.firmware import build

    board = get_board("stm32f412")
    src = tmp_path / "probe.c"
    src.write_text('#include "probe_value.h"\n'
                   "volatile int atomsim_probe_value = PROBE_VALUE;\n"
                   "int main(void) { return atomsim_probe_value == 0; }\n")
    header = tmp_path / "probe_value.h"
    header.write_text("#define PROBE_VALUE 0x1234567\n")
    first = build("probe", board, [src])
    header.write_text("#define PROBE_VALUE 0x7654321\n")
    second = build("probe", board, [src])
    assert second != first
    assert (0x7654321).to_bytes(4, "little") in second.read_bytes()
    assert (0x7654321).to_bytes(4, "little") not in first.read_bytes()
    assert build("probe", board, [src]) == second  # unchanged inputs: the cached ELF
