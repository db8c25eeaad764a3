"""Named atom spaces: the distinct atoms a search space can produce, for sweeps to measure.

``table2`` is the hybrid search space of METHOD.md (stem, SEP, SEP, SEP-or-ConvNext,
ConvNext+SE, ConvNext+SE, every kernel 3×3, nine input resolutions, classifier head). A stage's
input width is any width its previous stage allows, so every (c_in, c_out, resolution, block,
expansion) combination the table permits is enumerated; blocks after the first in a stage
(stride 1, c_in == c_out) are identical, so one of them covers every depth > 1.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from atomsim.core.errors import ConfigError
from atomsim.nn.atoms import Atom
from atomsim.nn.lowering import Tensor, lower_block, lower_head

TABLE2_RESOLUTIONS = (256, 224, 192, 160, 128, 92, 80, 64, 48)


@dataclass(frozen=True)
class StageSpace:
    """The choices of one search-space stage (one row of METHOD.md's table)."""

    blocks: tuple[str, ...]
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    expansions: tuple[float, ...]  # only for mbconv / convnext; sep and conv ignore it
    se: bool
    stride: int
    kernel: int = 3


# METHOD.md, "Search space (hybrid pattern fixed; every kernel 3x3)".
TABLE2_STAGES = (
    StageSpace(("conv",), (16, 24, 32, 48, 64), (1,), (1,), False, 2),
    StageSpace(("sep",), (16, 24, 32, 48, 64), (1,), (1,), False, 1),
    StageSpace(("sep",), (32, 48, 64, 80, 96, 112), (1, 2), (1,), False, 2),
    StageSpace(("sep", "convnext"), (48, 64, 80, 96, 112, 128), (1, 2), (1, 3, 6), False, 2),
    StageSpace(("convnext",), (48, 64, 80, 96, 112, 128, 144), (2, 4, 6), (6,), True, 2),
    StageSpace(("convnext",), (64, 80, 96, 112, 128, 144, 160), (1, 2), (6,), True, 2),
)


def enumerate_space(stages: Iterable[StageSpace], resolutions: Iterable[int], *,
                    num_classes: int = 1000, in_channels: int = 3) -> list[Atom]:
    """Distinct atoms (by key, first-seen order) of every network the stage table allows."""
    found: dict[str, Atom] = {}

    def keep(atoms: list[Atom]) -> None:
        for atom in atoms:
            found.setdefault(atom.key, atom)

    stages = tuple(stages)
    for resolution in resolutions:
        inputs = {Tensor(in_channels, resolution, resolution)}
        for stage in stages:
            outputs: set[Tensor] = set()
            for x in sorted(inputs, key=lambda t: (t.c, t.h, t.w)):
                for block in stage.blocks:
                    expansions = stage.expansions if block in ("mbconv", "convnext") else (1,)
                    for width in stage.widths:
                        for expansion in expansions:
                            atoms, y = lower_block(block, x, width, stride=stage.stride,
                                                   kernel=stage.kernel, expansion=expansion,
                                                   se=stage.se)
                            keep(atoms)
                            if max(stage.depths) > 1:
                                repeat, _ = lower_block(block, y, width, stride=1,
                                                        kernel=stage.kernel,
                                                        expansion=expansion, se=stage.se)
                                keep(repeat)
                            outputs.add(y)
            inputs = outputs
        for x in sorted(inputs, key=lambda t: (t.c, t.h, t.w)):
            keep(lower_head(x, num_classes))
    return list(found.values())


def table2_atoms(*, num_classes: int = 1000,
                 resolutions: Iterable[int] = TABLE2_RESOLUTIONS,
                 max_activation_bytes: int | None = None) -> list[Atom]:
    """Every distinct atom of METHOD.md's search space, deduplicated by key, fixed order.

    ``max_activation_bytes`` (e.g. a board's largest contiguous SRAM) drops atoms whose input
    plus output tensors alone exceed it: they cannot run on that board whatever the kernel.
    """
    atoms = enumerate_space(TABLE2_STAGES, resolutions, num_classes=num_classes)
    if max_activation_bytes is not None:
        atoms = [a for a in atoms if a.input_bytes + a.output_bytes <= max_activation_bytes]
    return atoms


def worked_examples() -> list[Atom]:
    """The three worked examples of METHOD.md (Pad, DW 3×3, PW on 32×64×64)."""
    return [
        Atom(type="pad", c_in=32, h_in=64, w_in=64, c_out=32, h_out=66, w_out=66, padding=1),
        Atom(type="dw", groups=32, c_in=32, h_in=66, w_in=66, k1=3, k2=3, c_out=32, h_out=64,
             w_out=64),
        Atom(type="pw", c_in=32, h_in=64, w_in=64, c_out=32, h_out=64, w_out=64),
    ]


SPACES: dict[str, Callable[..., list[Atom]]] = {
    "table2": table2_atoms,
    "worked-examples": worked_examples,
}


def get_space(name: str, **options) -> list[Atom]:
    """The atoms of the space called ``name`` (options go to its builder)."""
    try:
        builder = SPACES[name]
    except KeyError:
        raise ConfigError(f"unknown atom space {name!r}; known: {', '.join(SPACES)}") from None
    return builder(**options)
