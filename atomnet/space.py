"""Search spaces as data: the hybrid pattern of METHOD.md (Table 2) and single-pattern spaces.

A :class:`Space` is a resolution list and one :class:`StageSpace` per stage: the block type(s)
a stage may use, its widths, depths, expansion ratios, kernel sizes, SE and stride. A
:class:`Candidate` is one choice per stage plus a resolution; :meth:`Space.config` turns it into
the stage config JSON that :mod:`atomnet.config` and :mod:`atomsim.nn.frontends.stage_config`
read, so every candidate can be trained (``atomsim atomnet train``) and profiled
(``atomsim profile cand.json``).

Spaces (``SPACES``):

* ``hybrid`` — METHOD.md Table 2: stem conv, SEP, SEP, SEP-or-ConvNext (e 1/3/6), ConvNext+SE
  (e 6), ConvNext+SE (e 6); SEP stages without SE.
* ``sep``, ``convnext``, ``mbconv`` — the same stem, widths, depths, strides and resolutions,
  every later stage one block type. SE where the hybrid pattern has it (stages 5 and 6);
  ConvNext and MBConv stages 2–3 take e ∈ {1, 3}, stage 4 e ∈ {1, 3, 6}, stages 5–6 e = 6; SEP
  always e = 1 (its DW runs on c_in).

``kernels=(3, 5)`` lets every non-stem stage choose kernel 3 or 5 (the paper's space is 3×3
only). Activation: ReLU6 everywhere (fused into the convolutions, so no extra atoms); the
stage configs' ``mobile_one`` has ReLU6 after its PW too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

from atomsim.core.errors import ConfigError

RESOLUTIONS = (256, 224, 192, 160, 128, 92, 80, 64, 48)  # METHOD.md
ACT = "relu6"


@dataclass(frozen=True)
class StageSpace:
    """The choices of one stage (one row of METHOD.md's search-space table)."""

    blocks: tuple[str, ...]  # stage-config block types: conv, mobile_one, mbconvnext, mbconv
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    expansions: tuple[float, ...]  # for mbconvnext / mbconv; mobile_one and conv take 1
    se: bool
    stride: int
    kernels: tuple[int, ...] = (3,)

    def choices(self) -> list[tuple]:
        """Every (block, width, depth, expansion, kernel) this stage allows."""
        out = []
        for block in self.blocks:
            exps = self.expansions if block in ("mbconvnext", "mbconv") else (1,)
            kernels = (3,) if block == "conv" else self.kernels
            for w in self.widths:
                for d in self.depths:
                    for e in exps:
                        for k in kernels:
                            out.append((block, w, d, e, k))
        return out


@dataclass(frozen=True)
class Candidate:
    """A resolution and one choice (block, width, depth, expansion, kernel) per stage."""

    resolution: int
    stages: tuple[tuple, ...]


@dataclass(frozen=True)
class Space:
    """A named search space: resolutions and stage choices; ``num_classes`` for the head."""

    name: str
    stages: tuple[StageSpace, ...]
    resolutions: tuple[int, ...] = RESOLUTIONS
    num_classes: int = 1000

    def stage_choices(self) -> list[list[tuple]]:
        """The choice list of every stage (index = the gene value of a candidate)."""
        return [s.choices() for s in self.stages]

    def size(self) -> int:
        """How many candidates the space holds."""
        n = len(self.resolutions)
        for choices in self.stage_choices():
            n *= len(choices)
        return n

    def sample(self, rng: random.Random) -> Candidate:
        """A uniformly random candidate."""
        return Candidate(rng.choice(self.resolutions),
                         tuple(rng.choice(c) for c in self.stage_choices()))

    def config(self, cand: Candidate) -> dict[str, Any]:
        """The stage config JSON (a dict) of ``cand``."""
        stages = cand.stages
        return {
            "input_resolution": cand.resolution, "num_classes": self.num_classes,
            "depth": [c[2] for c in stages], "out_channel": [c[1] for c in stages],
            "block_type_stage": [c[0] for c in stages], "act_stages": [ACT] * len(stages),
            "se_stages": [bool(s.se and c[0] != "conv") for s, c in zip(self.stages, stages,
                                                                          strict=True)],
            "stride_stages": [s.stride for s in self.stages],
            "kernel_size": [c[4] for c in stages],
            "expand_ratio": [c[3] for c in stages],
        }


# METHOD.md, "Search space (hybrid pattern fixed; every kernel 3x3)".
W1 = (16, 24, 32, 48, 64)
W3 = (32, 48, 64, 80, 96, 112)
W4 = (48, 64, 80, 96, 112, 128)
W5 = (48, 64, 80, 96, 112, 128, 144)
W6 = (64, 80, 96, 112, 128, 144, 160)
STEM = StageSpace(("conv",), W1, (1,), (1,), False, 2)


def hybrid() -> tuple[StageSpace, ...]:
    """METHOD.md Table 2."""
    return (STEM,
            StageSpace(("mobile_one",), W1, (1,), (1,), False, 1),
            StageSpace(("mobile_one",), W3, (1, 2), (1,), False, 2),
            StageSpace(("mobile_one", "mbconvnext"), W4, (1, 2), (1, 3, 6), False, 2),
            StageSpace(("mbconvnext",), W5, (2, 4, 6), (6,), True, 2),
            StageSpace(("mbconvnext",), W6, (1, 2), (6,), True, 2))


def single(block: str) -> tuple[StageSpace, ...]:
    """The hybrid table with every later stage of one block type (see the module doc)."""
    early = (1,) if block == "mobile_one" else (1, 3)
    mid = (1,) if block == "mobile_one" else (1, 3, 6)
    late = (1,) if block == "mobile_one" else (6,)
    return (STEM,
            StageSpace((block,), W1, (1,), early, False, 1),
            StageSpace((block,), W3, (1, 2), early, False, 2),
            StageSpace((block,), W4, (1, 2), mid, False, 2),
            StageSpace((block,), W5, (2, 4, 6), late, True, 2),
            StageSpace((block,), W6, (1, 2), late, True, 2))


SPACES = {"hybrid": hybrid, "sep": lambda: single("mobile_one"),
          "convnext": lambda: single("mbconvnext"), "mbconv": lambda: single("mbconv")}


def get_space(name: str = "hybrid", *, num_classes: int = 1000,
              kernels: tuple[int, ...] = (3,),
              resolutions: tuple[int, ...] | None = None) -> Space:
    """The space called ``name``; ``kernels`` (3 and/or 5) for every non-stem stage."""
    if name not in SPACES:
        raise ConfigError(f"unknown search space {name!r}; known: {', '.join(SPACES)}")
    bad = [k for k in kernels if k not in (3, 5)]
    if not kernels or bad:
        raise ConfigError(f"kernel sizes must be 3 and/or 5, got {list(kernels)}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"num_classes must be an int >= 1, got {num_classes!r}")
    stages = tuple(s if s.blocks == ("conv",) else replace(s, kernels=tuple(kernels))
                   for s in SPACES[name]())
    res = tuple(resolutions) if resolutions is not None else RESOLUTIONS
    if not res or any(isinstance(r, bool) or not isinstance(r, int) or not 8 <= r <= 1024
                      for r in res):
        raise ConfigError(f"resolutions must be ints in [8, 1024], got {list(res)}")
    return Space(name, stages, res, num_classes)


def reduced(space: Space, every: int = 2) -> Space:
    """A coarser grid for exhaustive search: every ``every``-th width (the largest kept)."""
    def thin(values: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(sorted(set(values[::-1][::every])))

    return replace(space, stages=tuple(replace(s, widths=thin(s.widths)) for s in space.stages))
