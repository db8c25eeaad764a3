"""MCUNet / ProxylessNAS model-zoo JSON (``../shared/data/mcunet-configs``) to a graph.

The format: ``first_conv`` (ConvLayer), ``blocks`` of MobileInvertedResidualBlock (a
``mobile_inverted_conv`` with ``kernel_size``, ``expand_ratio``, ``mid_channels``, ``stride``,
``act_func``, ``use_se``, and a ``shortcut`` that is an IdentityLayer or null), an optional
``feature_mix_layer`` (1×1 ConvLayer), ``classifier`` (LinearLayer) and ``resolution``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from atomsim.core.errors import ConfigError
from atomsim.nn.graph import Graph
from atomsim.nn.lowering import NetworkConfig, StageConfig, build_graph


def looks_like(spec: Any) -> bool:
    """True when ``spec`` (parsed JSON) is in the ProxylessNAS format."""
    return isinstance(spec, dict) and "first_conv" in spec and "blocks" in spec


def parse(spec: dict[str, Any], name: str = "network") -> NetworkConfig:
    """A :class:`NetworkConfig` from a parsed ProxylessNAS config.

    Each MobileInvertedResidualBlock becomes a depth-1 ``mbconv`` stage with its own kernel,
    expansion, explicit ``mid_channels`` and its ``shortcut`` (Add) as written; ZeroLayer
    blocks (skipped layers: identity through the shortcut) lower to nothing.
    """
    try:
        first = spec["first_conv"]
        act = first.get("act_func") or "relu6"
        stages = [StageConfig(block="conv", width=first["out_channels"],
                              stride=first["stride"], kernel=first["kernel_size"],
                              activation=act)]
        c = first["out_channels"]
        for n, block in enumerate(spec["blocks"]):
            conv = block["mobile_inverted_conv"]
            if conv["name"] == "ZeroLayer":
                continue
            if conv["name"] != "MBInvertedConvLayer":
                raise ConfigError(f"{name}: block {n}: unsupported layer {conv['name']!r}")
            if conv["in_channels"] != c:
                raise ConfigError(f"{name}: block {n} expects {conv['in_channels']} channels, "
                                  f"previous block gives {c}")
            expansion = conv["expand_ratio"]
            mid = conv.get("mid_channels")
            if mid is not None and (not isinstance(mid, int) or isinstance(mid, bool) or mid < 1):
                raise ConfigError(f"{name}: block {n}: mid_channels must be an int >= 1, got "
                                  f"{mid!r}")
            stages.append(StageConfig(
                block="mbconv", width=conv["out_channels"], expansion=expansion,
                se=bool(conv.get("use_se")), stride=conv["stride"], kernel=conv["kernel_size"],
                mid_channels=mid if mid is not None else round(c * expansion),
                residual=block.get("shortcut") is not None,
                activation=conv.get("act_func") or act))
            c = conv["out_channels"]
        mix = spec.get("feature_mix_layer")
        classifier = spec["classifier"]
        return NetworkConfig(
            resolution=spec["resolution"], stages=tuple(stages),
            num_classes=classifier["out_features"], in_channels=first["in_channels"],
            feature_mix=mix["out_channels"] if mix else None, name=name, activation=act)
    except (KeyError, TypeError, AttributeError) as exc:  # a missing key, a list for a dict...
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ConfigError(f"{name}: not a ProxylessNAS model config ({what})") from exc


def _read(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read model config: {exc}") from exc


def load_proxyless_json(path: str | Path) -> NetworkConfig:
    """Read a ProxylessNAS-format model config (MCUNet model zoo) as a NetworkConfig."""
    path = Path(path)
    return parse(_read(path), name=path.stem)


def load_graph(path: str | Path) -> Graph:
    """The shape-only graph of a ProxylessNAS-format config."""
    return build_graph(load_proxyless_json(path))
