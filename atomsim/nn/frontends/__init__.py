"""Front ends: each turns one model format into the same :class:`~atomsim.nn.graph.Graph`.

``stage_config``  hybrid-pattern stage configs (JSON; METHOD.md "Network-level conventions")
``mcunet``        MCUNet / ProxylessNAS model-zoo JSON
``tflite_import`` int8 .tflite flatbuffers (weights and quantization from the file)

Config front ends give shape-only graphs; :func:`load_model` with ``seed`` adds seeded weights
(:func:`atomsim.nn.lowering.with_random_weights`).
"""

from __future__ import annotations

import json
from pathlib import Path

from atomsim.core.errors import ConfigError
from atomsim.nn.frontends import mcunet, stage_config
from atomsim.nn.graph import Graph
from atomsim.nn.lowering import build_graph, with_random_weights


def load_model(path: str | Path, *, seed: int | None = 0, explicit_pad: bool = True) -> Graph:
    """A graph from a .tflite, a stage config or an MCUNet config (by content).

    Configs carry no weights: with ``seed`` (default 0) they get seeded ones; ``seed=None``
    keeps the graph shape-only. A .tflite keeps its own weights (and its own padding).
    ``explicit_pad=False`` builds configs with the padding inside the convolutions instead of
    a Pad atom before each (see :func:`atomsim.nn.lowering.build_graph`).
    """
    path = Path(path)
    if path.suffix == ".tflite":
        from atomsim.nn.frontends.tflite_import import load_tflite

        return load_tflite(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a .tflite file nor a readable JSON config: {exc}") \
            from exc
    if stage_config.looks_like(spec):
        graph = build_graph(stage_config.parse(spec, name=path.stem), explicit_pad=explicit_pad)
    elif mcunet.looks_like(spec):
        graph = build_graph(mcunet.parse(spec, name=path.stem), explicit_pad=explicit_pad)
    else:
        raise ConfigError(f"{path}: neither a stage config (block_type_stage, ...) nor an "
                          "MCUNet/ProxylessNAS config (first_conv, blocks, ...)")
    return graph if seed is None else with_random_weights(graph, seed)
