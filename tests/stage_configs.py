"""A small stage config with every block type (stem, SEP, MBConv, ConvNext+SE; kernels 3 and
5), and variations of it, for the atomnet tests."""

from __future__ import annotations

import copy

BASE = {"input_resolution": 32, "num_classes": 10,
        "depth": [1, 1, 2, 2], "out_channel": [16, 16, 24, 32],
        "block_type_stage": ["conv", "mobile_one", "mbconv", "mbconvnext"],
        "act_stages": ["relu6", "relu6", "hswish", "relu"], "se_stages": [False, False, True, True],
        "stride_stages": [2, 1, 2, 2], "kernel_size": [3, 3, 3, 5], "expand_ratio": [1, 1, 3, 3]}


def varied(**changes) -> dict:
    """BASE with some keys replaced (a deep copy: BASE itself never changes)."""
    s = copy.deepcopy(BASE)
    s.update(changes)
    return s
