"""Lowering blocks to atoms: shapes and counts per block, and published MAC counts."""

import itertools
import json
from pathlib import Path

import pytest

from atomsim.core.errors import ConfigError
from atomsim.nn.atoms import CONV_TYPES
from atomsim.nn.frontends.mcunet import load_proxyless_json
from atomsim.nn.lowering import (
    NetworkConfig,
    StageConfig,
    Tensor,
    lower_convnext,
    lower_head,
    lower_mbconv,
    lower_network,
    lower_se,
    lower_sep,
    lower_stem,
    make_divisible,
    network_macs,
)

pytestmark = pytest.mark.unit

CONFIGS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mcunet-configs"
needs_configs = pytest.mark.skipif(not CONFIGS.is_dir(), reason=f"shared data absent: {CONFIGS}")

# Published MAC counts quoted in shared/data/README.md (millions, one decimal).
PUBLISHED_MMACS = {
    "mbv2-w0.35-r144_imagenet": 23.5,
    "proxyless-w0.3-r176_imagenet": 38.3,
    "mcunet-256kb-1mb_imagenet": 67.3,
    "mcunet-512kb-2mb_imagenet": 125.9,
    "mcunet-10fps_imagenet": 6.4,
    "mcunet-5fps_imagenet": 12.8,
}


def shape(atom):
    return (atom.type, atom.c_in, atom.h_in, atom.c_out, atom.h_out, atom.stride)


def test_stem_is_pad_then_stride_two_conv():
    atoms, out = lower_stem(Tensor(3, 96, 96), 16)
    assert [shape(a) for a in atoms] == [("pad", 3, 96, 3, 98, 0), ("conv", 3, 98, 16, 48, 2)]
    assert atoms[1].padding == (0, 0, 0, 0) and atoms[1].activation == "relu6"
    assert out == Tensor(16, 48, 48)


def test_sep_with_equal_shapes_gets_a_residual_add():
    atoms, out = lower_sep(Tensor(16, 48, 48), 16)
    assert [shape(a) for a in atoms] == [
        ("pad", 16, 48, 16, 50, 0), ("dw", 16, 50, 16, 48, 1), ("pw", 16, 48, 16, 48, 1),
        ("add", 16, 48, 16, 48, 0)]
    assert out == Tensor(16, 48, 48)


def test_sep_stride_two_odd_map_rounds_up_and_has_no_add():
    atoms, out = lower_sep(Tensor(16, 23, 23), 32, stride=2)
    assert [a.type for a in atoms] == ["pad", "dw", "pw"]
    assert out == Tensor(32, 12, 12)


def test_se_reduces_to_a_quarter_rounded_to_eight():
    atoms = lower_se(Tensor(80, 6, 6))
    assert [a.type for a in atoms] == ["global_avgpool", "pw", "pw", "hard_sigmoid", "mul_bcast"]
    assert (atoms[1].c_in, atoms[1].c_out, atoms[1].h_in, atoms[1].activation) == (
        80, make_divisible(20), 1, "relu")
    assert make_divisible(20) == 24 and make_divisible(12) == 16
    assert (atoms[2].c_out, atoms[4].c_in, atoms[4].h_in) == (80, 80, 6)


def test_mbconv_expands_depthwise_projects_and_adds():
    atoms, out = lower_mbconv(Tensor(24, 20, 20), 24, expansion=6, se=True)
    assert [a.type for a in atoms] == [
        "pw", "pad", "dw", "global_avgpool", "pw", "pw", "hard_sigmoid", "mul_bcast", "pw",
        "add"]
    expand, dw, project = atoms[0], atoms[2], atoms[8]
    assert (expand.c_out, dw.c_in, dw.groups, project.c_in, project.c_out) == (
        144, 144, 144, 144, 24)
    assert project.activation == "none" and expand.activation == "relu6"
    assert out == Tensor(24, 20, 20)


def test_mbconv_expansion_one_has_no_expand_pw():
    atoms, _ = lower_mbconv(Tensor(16, 20, 20), 24, expansion=1, stride=2, k=5)
    assert [shape(a) for a in atoms] == [
        ("pad", 16, 20, 16, 24, 0), ("dw", 16, 24, 16, 10, 2), ("pw", 16, 10, 24, 10, 1)]


def test_convnext_is_depthwise_first_with_se_on_the_input_width():
    atoms, out = lower_convnext(Tensor(48, 12, 12), 64, expansion=6, stride=2, se=True)
    assert [a.type for a in atoms] == [
        "pad", "dw", "global_avgpool", "pw", "pw", "hard_sigmoid", "mul_bcast", "pw", "pw"]
    assert (atoms[1].c_in, atoms[1].h_out, atoms[6].c_in) == (48, 6, 48)
    assert (atoms[7].c_in, atoms[7].c_out, atoms[8].c_in, atoms[8].c_out) == (48, 288, 288, 64)
    assert out == Tensor(64, 6, 6)
    same, _ = lower_convnext(Tensor(64, 6, 6), 64, expansion=6)
    assert same[-1].type == "add"


def test_head_pools_then_classifies():
    atoms = lower_head(Tensor(160, 3, 3), 1000)
    assert [shape(a) for a in atoms] == [("global_avgpool", 160, 3, 160, 1, 0),
                                         ("fc", 160, 1, 1000, 1, 0)]


def test_network_atoms_chain_shape_to_shape():
    net = NetworkConfig(resolution=64, num_classes=10, stages=(
        StageConfig("conv", 16, stride=2), StageConfig("sep", 16),
        StageConfig("convnext", 32, depth=2, expansion=3, se=True, stride=2)))
    atoms = lower_network(net)
    # The main path: leave out residual Adds and the SE branch (1x1 vectors that rejoin the
    # map in mul_bcast); the head's global pool (second to last) stays.
    se_branch = {"hard_sigmoid", "global_avgpool"}
    flow = [a for i, a in enumerate(atoms) if a.type != "add"
            and not (a.type in se_branch and i != len(atoms) - 2)
            and not (a.type == "pw" and a.h_in == 1)]
    assert len(flow) > len(atoms) / 2
    for before, after in itertools.pairwise(flow):
        assert (before.c_out, before.h_out, before.w_out) == (after.c_in, after.h_in,
                                                              after.w_in), (before, after)
    assert sum(a.type == "add" for a in atoms) == 2  # sep 16->16 and the second convnext
    assert atoms[-1].c_out == 10


@needs_configs
@pytest.mark.parametrize("name", sorted(PUBLISHED_MMACS))
def test_model_zoo_macs_reproduce_published_counts(name):
    net = load_proxyless_json(CONFIGS / f"{name}.json")
    atoms = lower_network(net)
    published = network_macs(net, "published")
    assert round(published / 1e6, 1) == PUBLISHED_MMACS[name]
    # The paper's convention adds biases, pooling and elementwise ops on top, never less.
    extra = sum(a.c_out for a in atoms if a.type in (*CONV_TYPES, "fc"))
    extra += sum(a.macs for a in atoms if a.type not in (*CONV_TYPES, "fc"))
    assert network_macs(net, "paper") == published + extra
    assert 0 < extra < 0.01 * published


@needs_configs
def test_zero_layers_and_shortcuts_follow_the_json():
    net = load_proxyless_json(CONFIGS / "proxyless-w0.3-r176_imagenet.json")
    spec = json.loads((CONFIGS / "proxyless-w0.3-r176_imagenet.json").read_text())
    blocks = [b for b in spec["blocks"] if b["mobile_inverted_conv"]["name"] != "ZeroLayer"]
    assert len(net.stages) == 1 + len(blocks)
    adds = sum(a.type == "add" for a in lower_network(net))
    assert adds == sum(b["shortcut"] is not None for b in blocks)
    assert net.feature_mix == spec["feature_mix_layer"]["out_channels"]


def test_bad_model_config_is_a_config_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"first_conv": {"out_channels": 8}}))
    with pytest.raises(ConfigError, match="not a ProxylessNAS model config"):
        load_proxyless_json(path)
    with pytest.raises(ConfigError, match="unknown block"):
        StageConfig("resnet", 16)


def test_table2_space_is_deterministic_deduplicated_and_complete():
    from atomsim.nn.spaces import TABLE2_RESOLUTIONS, get_space, table2_atoms

    first, second = table2_atoms(), get_space("table2")
    keys = [a.key for a in first]
    assert keys == [a.key for a in second]
    assert len(keys) == len(set(keys))
    # Every stem (5 widths x 9 resolutions) and every head (7 widths x 9 resolutions) is there.
    stems = {(a.c_out, a.h_in) for a in first if a.type == "conv"}
    assert stems == {(w, r + 2) for w in (16, 24, 32, 48, 64) for r in TABLE2_RESOLUTIONS}
    fcs = {a.c_in for a in first if a.type == "fc"}
    assert fcs == {64, 80, 96, 112, 128, 144, 160}
    # Stage 5's first ConvNext expands any stage-4 width by 6 at 1/16 of the resolution.
    expands = {(a.c_in, a.c_out, a.h_in) for a in first if a.type == "pw"}
    assert all((c, 6 * c, 8) in expands for c in (48, 64, 80, 96, 112, 128))
    # Every k>1 convolution reads an input that a Pad atom produced.
    pads = {(a.c_out, a.h_out, a.w_out) for a in first if a.type == "pad"}
    assert all((a.c_in, a.h_in, a.w_in) in pads for a in first if a.type in ("conv", "dw"))
    smaller = table2_atoms(max_activation_bytes=256 * 1024)
    assert 0 < len(smaller) < len(first)
    assert all(a.input_bytes + a.output_bytes <= 256 * 1024 for a in smaller)


def test_unknown_space_lists_the_known_ones():
    from atomsim.nn.spaces import get_space

    with pytest.raises(ConfigError, match="known: table2, worked-examples"):
        get_space("table3")
