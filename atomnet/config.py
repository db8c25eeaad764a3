"""Stage configs (JSON) for AtomNet models: one frozen, validated description of a network.

The format (METHOD.md, "Network-level conventions"; the same JSON the networks issue reads):

    {"input_resolution": 48, "num_classes": 10,
     "depth": [1, 1, 2], "out_channel": [16, 24, 32],
     "block_type_stage": ["conv", "mobile_one", "mbconvnext"],
     "act_stages": ["relu6", "relu6", "hswish"], "se_stages": [false, false, true],
     "stride_stages": [2, 1, 2], "kernel_size": [3, 3, 3], "expand_ratio": [1, 1, 3]}

Every per-stage list has one entry per stage. ``kernel_size`` and ``expand_ratio`` have one
entry per stage or one per block (then the list is as long as the blocks in total). The first
block of a stage has the stage's stride, the others stride 1. Unknown keys, wrong types and
impossible values are :class:`StageConfigError` s that name the key and the stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atomsim.core.errors import ConfigError

BLOCK_TYPES = ("conv", "mobile_one", "mbconv", "mbconvnext")
ACTIVATIONS = ("relu", "relu6", "hswish")
KERNEL_SIZES = (3, 5)  # as the networks issue reads them
STAGE_KEYS = ("depth", "out_channel", "block_type_stage", "act_stages", "se_stages",
              "stride_stages")
BLOCK_KEYS = ("kernel_size", "expand_ratio")
KEYS = ("input_resolution", *STAGE_KEYS, *BLOCK_KEYS, "num_classes")
IN_CHANNELS = 3  # RGB (Fashion-MNIST is repeated to 3 channels)


class StageConfigError(ConfigError):
    """A stage config that is malformed: unknown key, wrong type, bad value or length."""

    status = "bad-stage-config"


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to a multiple of ``divisor``: half up, never below 90 %, at least one."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@dataclass(frozen=True)
class BlockSpec:
    """One block as the model builds it: every number resolved (no per-stage lists left)."""

    stage: int  # 0-based stage index
    index: int  # 0-based block index inside the stage
    block_type: str  # one of BLOCK_TYPES
    c_in: int
    c_out: int
    stride: int  # the stage's stride on the first block, 1 after
    kernel_size: int
    expand_ratio: float
    act: str  # one of ACTIVATIONS
    se: bool

    @property
    def mid_channels(self) -> int:
        """Expanded width m of mbconv / mbconvnext (c_in for mbconv at e == 1)."""
        if self.block_type == "mbconv" and self.expand_ratio == 1:
            return self.c_in
        return make_divisible(self.c_in * self.expand_ratio)

    @property
    def residual(self) -> bool:
        """A residual Add: mbconv / mbconvnext with stride 1 and c_in == c_out."""
        return (self.block_type in ("mbconv", "mbconvnext") and self.stride == 1
                and self.c_in == self.c_out)


@dataclass(frozen=True)
class StageConfig:
    """A validated stage config; lists are tuples so the object is hashable and frozen."""

    input_resolution: int
    depth: tuple[int, ...]
    out_channel: tuple[int, ...]
    block_type_stage: tuple[str, ...]
    act_stages: tuple[str, ...]
    se_stages: tuple[bool, ...]
    stride_stages: tuple[int, ...]
    kernel_size: tuple[int, ...]  # per stage or per block
    expand_ratio: tuple[float, ...]  # per stage or per block
    num_classes: int = 1000

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def num_stages(self) -> int:
        """How many stages the config has."""
        return len(self.depth)

    @property
    def num_blocks(self) -> int:
        """How many blocks in total."""
        return sum(self.depth)

    def blocks(self) -> list[BlockSpec]:
        """Every block in execution order, with per-stage / per-block values resolved."""
        out: list[BlockSpec] = []
        c_in, flat = IN_CHANNELS, 0
        for s in range(self.num_stages):
            for i in range(self.depth[s]):
                out.append(BlockSpec(
                    stage=s, index=i, block_type=self.block_type_stage[s], c_in=c_in,
                    c_out=self.out_channel[s], stride=self.stride_stages[s] if i == 0 else 1,
                    kernel_size=self._pick(self.kernel_size, s, flat),
                    expand_ratio=self._pick(self.expand_ratio, s, flat),
                    act=self.act_stages[s], se=self.se_stages[s]))
                c_in, flat = self.out_channel[s], flat + 1
        return out

    def _pick(self, values: tuple, stage: int, flat: int):
        return values[stage] if len(values) == self.num_stages else values[flat]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (lists), as :func:`load_stage_config` reads it."""
        return {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in ((k, getattr(self, k)) for k in KEYS)}

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, spec: Any, where: str = "stage config") -> StageConfig:
        """Build from parsed JSON; unknown keys and wrong types are StageConfigErrors."""
        if not isinstance(spec, dict):
            raise StageConfigError(f"{where}: expected a JSON object, got {type(spec).__name__}")
        unknown = sorted(set(spec) - set(KEYS))
        if unknown:
            raise StageConfigError(f"{where}: unknown key(s) {unknown}; known: {list(KEYS)}")
        missing = [k for k in KEYS if k != "num_classes" and k not in spec]
        if missing:
            raise StageConfigError(f"{where}: missing key(s) {missing}")
        values: dict[str, Any] = {
            "input_resolution": _int(spec["input_resolution"], f"{where}: input_resolution"),
            "num_classes": _int(spec.get("num_classes", 1000), f"{where}: num_classes"),
        }
        kinds = {"depth": _int, "out_channel": _int, "stride_stages": _int,
                 "kernel_size": _int, "block_type_stage": _str, "act_stages": _str,
                 "se_stages": _bool, "expand_ratio": _number}
        for key, conv in kinds.items():
            raw = spec[key]
            if not isinstance(raw, list) or not raw:
                raise StageConfigError(f"{where}: {key} must be a non-empty list, got {raw!r}")
            values[key] = tuple(conv(v, f"{where}: {key}[{i}]") for i, v in enumerate(raw))
        return cls(**values)


def _int(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise StageConfigError(f"{what} must be an integer, got {v!r}")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise StageConfigError(f"{what} must be a string, got {v!r}")
    return v


def _bool(v: Any, what: str) -> bool:
    if not isinstance(v, bool):
        raise StageConfigError(f"{what} must be true or false, got {v!r}")
    return v


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v != v:
        raise StageConfigError(f"{what} must be a number, got {v!r}")
    return float(v) if not float(v).is_integer() else int(v)


def _validate(c: StageConfig) -> None:
    n = len(c.depth)
    if not 8 <= c.input_resolution <= 1024:
        raise StageConfigError(f"input_resolution must be in [8, 1024], got {c.input_resolution}")
    if not 1 <= c.num_classes <= 100_000:
        raise StageConfigError(f"num_classes must be in [1, 100000], got {c.num_classes}")
    for key in STAGE_KEYS:
        if len(getattr(c, key)) != n:
            raise StageConfigError(f"{key} has {len(getattr(c, key))} entries, depth has {n} "
                                   "(one per stage)")
    blocks = sum(c.depth)
    for key in BLOCK_KEYS:
        if len(getattr(c, key)) not in (n, blocks):
            raise StageConfigError(f"{key} has {len(getattr(c, key))} entries: expected {n} "
                                   f"(per stage) or {blocks} (per block)")
    for s in range(n):
        where = f"stage {s}"
        checks = [
            (1 <= c.depth[s] <= 32, f"depth must be in [1, 32], got {c.depth[s]}"),
            (1 <= c.out_channel[s] <= 4096,
             f"out_channel must be in [1, 4096], got {c.out_channel[s]}"),
            (c.block_type_stage[s] in BLOCK_TYPES,
             f"block_type_stage {c.block_type_stage[s]!r} is not one of {list(BLOCK_TYPES)}"),
            (c.act_stages[s] in ACTIVATIONS,
             f"act_stages {c.act_stages[s]!r} is not one of {list(ACTIVATIONS)}"),
            (c.stride_stages[s] in (1, 2), f"stride_stages must be 1 or 2, got "
                                           f"{c.stride_stages[s]}"),
            (not (c.se_stages[s] and c.block_type_stage[s] == "conv"),
             "se_stages: squeeze-excite is defined for mobile_one, mbconv and mbconvnext, "
             "not for a conv stage"),
        ]
        for ok, message in checks:
            if not ok:
                raise StageConfigError(f"{where}: {message}")
    for b in c.blocks():
        where = f"stage {b.stage} block {b.index}"
        if b.kernel_size not in KERNEL_SIZES:
            raise StageConfigError(f"{where}: kernel_size must be one of {list(KERNEL_SIZES)}, "
                                   f"got {b.kernel_size}")
        if not 0 < b.expand_ratio <= 16:
            raise StageConfigError(f"{where}: expand_ratio must be in (0, 16], got "
                                   f"{b.expand_ratio}")
        if b.block_type == "mobile_one" and b.expand_ratio != 1:
            raise StageConfigError(f"{where}: mobile_one (SEP) takes expand_ratio 1 (its DW runs "
                                   f"on c_in channels), got {b.expand_ratio}")


def load_stage_config(path: str | Path) -> StageConfig:
    """Read a stage config JSON file; every problem is a StageConfigError naming the file."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StageConfigError(f"{path}: cannot read stage config: {exc}") from exc
    return StageConfig.from_dict(spec, where=str(path))
