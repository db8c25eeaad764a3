"""Stage configs (JSON, the hybrid-pattern format of METHOD.md) to a graph.

Keys: ``input_resolution``; per stage ``depth``, ``out_channel``, ``block_type_stage``
(``conv``, ``mobile_one``, ``mbconv``, ``mbconvnext``), ``act_stages`` (``relu``, ``relu6``,
``hswish``), ``se_stages``, ``stride_stages``; ``kernel_size`` and ``expand_ratio`` per stage,
or per block when the list is as long as the blocks in all; optional ``num_classes`` (1000)
and ``name``. Unknown keys and wrong types are errors.

Block types map onto :mod:`atomsim.nn.lowering` (METHOD.md, "Network-level conventions"):
``conv`` → ``conv``; ``mobile_one`` → ``sep`` with the activation after the PW too and no
residual; ``mbconv`` → ``mbconv``; ``mbconvnext`` → ``convnext``. The first stage reads the
3-channel image. Head: global average pool → FC to ``num_classes``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atomsim.core.errors import ConfigError
from atomsim.nn.graph import Graph
from atomsim.nn.lowering import NetworkConfig, StageConfig, build_graph

BLOCKS = {"conv": "conv", "mobile_one": "sep", "mbconv": "mbconv", "mbconvnext": "convnext"}
ACTS = {"relu": "relu", "relu6": "relu6", "hswish": "hswish"}
KERNELS = (3, 5)
STAGE_KEYS = ("depth", "out_channel", "block_type_stage", "act_stages", "se_stages",
              "stride_stages")
PER_BLOCK_KEYS = ("kernel_size", "expand_ratio")
KEYS = ("input_resolution", *STAGE_KEYS, *PER_BLOCK_KEYS, "num_classes", "name")


def looks_like(spec: Any) -> bool:
    """True when ``spec`` (parsed JSON) is a stage config."""
    return isinstance(spec, dict) and "block_type_stage" in spec


def _ints(name: str, values: Any, *, low: int = 1) -> list[int]:
    if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= low for v in values):
        raise ConfigError(f"stage config: {name} must be a list of ints >= {low}, got {values!r}")
    return values


def parse(spec: dict[str, Any], name: str = "network") -> NetworkConfig:
    """A :class:`NetworkConfig` from a parsed stage config (see the module docstring)."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{name}: a stage config is a JSON object")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ConfigError(f"{name}: unknown stage-config keys {unknown}; known: {list(KEYS)}")
    missing = [k for k in ("input_resolution", *STAGE_KEYS, *PER_BLOCK_KEYS) if k not in spec]
    if missing:
        raise ConfigError(f"{name}: stage config lacks {missing}")
    depth = _ints("depth", spec["depth"])
    n = len(depth)
    if n == 0:
        raise ConfigError(f"{name}: a stage config needs at least one stage (depth is empty)")
    widths = _ints("out_channel", spec["out_channel"])
    strides = _ints("stride_stages", spec["stride_stages"])
    blocks, acts, ses = spec["block_type_stage"], spec["act_stages"], spec["se_stages"]
    for key in STAGE_KEYS:
        if not isinstance(spec[key], list) or len(spec[key]) != n:
            raise ConfigError(f"{name}: {key} needs one value per stage ({n}), got "
                              f"{spec[key]!r}")
    total = sum(depth)

    def per_block(key: str, check) -> list[list[Any]]:
        values = spec[key]
        if not isinstance(values, list) or len(values) not in (n, total):
            raise ConfigError(f"{name}: {key} needs {n} values (per stage) or {total} (per "
                              f"block), got {values!r}")
        for v in values:
            check(v)
        if len(values) == total and total != n:
            out, i = [], 0
            for d in depth:
                out.append(values[i:i + d])
                i += d
            return out
        if len(values) == total:  # n == total: depth 1 everywhere, same either way
            return [[v] for v in values]
        return [[v] * d for v, d in zip(values, depth, strict=True)]

    def check_kernel(k: Any) -> None:
        if k not in KERNELS or isinstance(k, bool):
            raise ConfigError(f"{name}: kernel_size must be one of {KERNELS}, got {k!r}")

    def check_expand(e: Any) -> None:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or e <= 0:
            raise ConfigError(f"{name}: expand_ratio must be a number > 0, got {e!r}")

    kernels = per_block("kernel_size", check_kernel)
    expands = per_block("expand_ratio", check_expand)
    resolution = spec["input_resolution"]
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
        raise ConfigError(f"{name}: input_resolution must be an int >= 1, got {resolution!r}")
    num_classes = spec.get("num_classes", 1000)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"{name}: num_classes must be an int >= 1, got {num_classes!r}")
    stages = []
    for i in range(n):
        if not isinstance(blocks[i], str) or blocks[i] not in BLOCKS:
            raise ConfigError(f"{name}: stage {i}: block_type_stage {blocks[i]!r} is not one "
                              f"of {list(BLOCKS)}")
        if not isinstance(acts[i], str) or acts[i] not in ACTS:
            raise ConfigError(f"{name}: stage {i}: act_stages {acts[i]!r} is not one of "
                              f"{list(ACTS)}")
        if not isinstance(ses[i], (bool, int)) or ses[i] not in (0, 1):
            raise ConfigError(f"{name}: stage {i}: se_stages must be true/false or 0/1, got "
                              f"{ses[i]!r}")
        block = BLOCKS[blocks[i]]
        stages.append(StageConfig(
            block=block, width=widths[i], depth=depth[i], stride=strides[i],
            se=bool(ses[i]), kernel=kernels[i][0], expansion=expands[i][0],
            kernels=tuple(kernels[i]), expansions=tuple(float(e) for e in expands[i]),
            residual=False if blocks[i] == "mobile_one" else None,
            activation=ACTS[acts[i]], pw_activation=blocks[i] == "mobile_one"))
    return NetworkConfig(resolution=resolution, stages=tuple(stages), num_classes=num_classes,
                         name=str(spec.get("name", name)), activation=ACTS[acts[-1]])


def load(path: str | Path) -> NetworkConfig:
    """Read a stage config file."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read stage config: {exc}") from exc
    return parse(spec, name=path.stem)


def load_graph(path: str | Path) -> Graph:
    """The shape-only graph of a stage config file."""
    return build_graph(load(path))
