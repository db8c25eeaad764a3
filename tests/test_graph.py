"""The network graph: real tensors on residual and SE inputs, validation, lifetimes, weights."""

import hashlib

import numpy as np
import pytest

from atomsim.core.errors import ConfigError
from atomsim.nn.graph import Graph, GraphError, Quant
from atomsim.nn.lowering import (
    GraphBuilder,
    NetworkConfig,
    StageConfig,
    Tensor,
    build_graph,
    lower_convnext,
    lower_mbconv,
    with_random_weights,
)

pytestmark = pytest.mark.unit

# table2's distinct atom keys as the lowering produced them before it built graphs
# (2797 keys, sha256 of the keys joined by newlines): the graph lowering must not change them.
TABLE2_KEYS = (2797, "c53a5c2b57e19938bcb92cf8f9e9040dea472b20de2ce87ea53fb4f842c51b71")


def producer(g: Graph, t: int):
    return next(op for op in g.ops if t in op.outputs)


def test_residual_add_reads_the_block_input_and_the_projection():
    b = GraphBuilder()
    x = b.input(Tensor(24, 20, 20))
    out = b.mbconv(x, 24, expansion=6)
    g = b.graph
    add = producer(g, out)
    assert add.kind == "add"
    first, second = add.inputs
    assert first == x  # the block input itself, not a copy or a random tensor
    projection = producer(g, second)
    assert projection.kind == "pw" and g.tensors[second].shape == (1, 20, 20, 24)
    assert g.tensors[projection.inputs[1]].shape == (24, 1, 1, 144)


def test_se_mul_reads_the_feature_map_and_the_hard_sigmoid_gate():
    b = GraphBuilder()
    x = b.input(Tensor(48, 12, 12))
    b.convnext(x, 64, expansion=6, stride=2, se=True)
    g = b.graph
    mul = next(op for op in g.ops if op.kind == "mul_bcast")
    fmap, gate = mul.inputs
    assert producer(g, gate).kind == "hard_sigmoid"
    assert producer(g, fmap).kind == "dw"  # SE sits on the depthwise output
    pool = producer(g, producer(g, producer(g, producer(g, gate).inputs[0]).inputs[0]).inputs[0])
    assert pool.kind == "global_avgpool" and pool.inputs == (fmap,)
    assert g.tensors[gate].shape == (1, 1, 1, 48)


def test_atom_lists_come_from_the_graph():
    atoms, out = lower_mbconv(Tensor(24, 20, 20), 24, expansion=6, se=True)
    b = GraphBuilder()
    b.mbconv(b.input(Tensor(24, 20, 20)), 24, expansion=6, se=True)
    assert [a.key for a in atoms] == [a.key for a in b.graph.atoms()]
    assert out == Tensor(24, 20, 20)
    atoms, _ = lower_convnext(Tensor(32, 12, 12), 32, expansion=3, se=True)
    assert atoms[-1].type == "add"


def test_table2_atom_keys_are_unchanged():
    from atomsim.nn.spaces import table2_atoms

    keys = [a.key for a in table2_atoms()]
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()
    assert (len(keys), digest) == TABLE2_KEYS


def test_shape_errors_name_the_op():
    g = Graph()
    x = g.add_input((1, 8, 8, 16))
    w = g.add_tensor((8, 3, 3, 12), const=True)
    with pytest.raises(GraphError, match=r"op 0 \(conv\).*takes 12 channels, input has 16") as e:
        g.add_op("conv", [x, w])
    assert e.value.op_index == 0
    assert isinstance(e.value, ConfigError)
    with pytest.raises(GraphError, match="op 0 .*tensor 99 does not exist"):
        g.add_op("relu", [99])


def test_validate_catches_order_and_shape_mistakes():
    g = Graph()
    x = g.add_input((1, 4, 4, 8))
    y = g.add_op("relu", [x])
    z = g.add_op("add", [x, y])
    g.outputs.append(z)
    g.validate()
    g.ops.reverse()  # add now reads y before relu writes it
    with pytest.raises(GraphError, match=r"op 0 \(add .*reads tensor 1 .* before any op") as e:
        g.validate()
    assert (e.value.op_index, e.value.tensor_id) == (0, 1)
    g.ops.reverse()
    g.replace_tensor(z, shape=(1, 4, 4, 9))
    with pytest.raises(GraphError, match=r"op 1 \(add .*has shape \(1, 4, 4, 9\)"):
        g.validate()


def test_lifetimes_span_first_write_to_last_read():
    b = GraphBuilder()
    x = b.input(Tensor(16, 8, 8))
    out = b.sep(x, 16)  # pad, dw, pw, add(x, pw)
    b.graph.outputs.append(out)
    life = b.graph.lifetimes()
    kinds = [op.kind for op in b.graph.ops]
    assert kinds == ["pad", "dw", "pw", "add"]
    assert life[x] == (-1, 3)  # the input stays live until the residual Add
    assert life[out] == (3, 4)  # a graph output lives to the end
    pad_out = b.graph.ops[0].outputs[0]
    assert life[pad_out] == (0, 1)


def test_network_graph_counts_follow_the_atoms():
    net = NetworkConfig(resolution=32, num_classes=10, stages=(
        StageConfig("conv", 8, stride=2), StageConfig("mbconv", 16, expansion=3, stride=2),
        StageConfig("convnext", 16, depth=2, expansion=2, se=True)))
    g = build_graph(net)
    atoms = g.atoms()
    assert g.macs() == sum(a.macs for a in atoms)
    assert g.weight_bytes() == sum(a.flash_bytes for a in atoms)
    consts = [t for t in g.tensors if t.const]
    assert g.param_count() == sum(t.size for t in consts)
    assert g.tensors[g.outputs[0]].shape == (1, 1, 1, 10)


def test_seeded_weights_are_deterministic_and_quantized():
    net = NetworkConfig(resolution=16, num_classes=5, stages=(
        StageConfig("conv", 8, stride=2), StageConfig("sep", 8, se=True)))
    shape_only = build_graph(net)
    assert not shape_only.quantized
    a, b, c = (with_random_weights(shape_only, s) for s in (3, 3, 4))
    assert a.quantized
    for ta, tb in zip(a.tensors, b.tensors, strict=True):
        assert ta.quant == tb.quant
        if ta.const:
            assert np.array_equal(ta.data, tb.data)
    assert any(not np.array_equal(ta.data, tc.data) for ta, tc in zip(a.tensors, c.tensors,
                                                                       strict=True) if ta.const)
    conv = next(op for op in a.ops if op.kind == "conv")
    w = a.tensors[conv.inputs[1]]
    assert w.data.dtype == np.int8 and len(w.quant.scale) == 8  # per output channel
    bias = a.tensors[conv.inputs[2]]
    assert bias.data.dtype == np.int32
    assert Quant.of(0.5).per_tensor == (0.5, 0)
