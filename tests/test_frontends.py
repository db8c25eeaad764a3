"""Front ends: stage configs, MCUNet/ProxylessNAS JSON and int8 .tflite all give one Graph."""

import json
from pathlib import Path

import numpy as np
import pytest

from atomsim.core.errors import ConfigError
from atomsim.nn.frontends import load_model, mcunet, stage_config
from atomsim.nn.lowering import build_graph, make_divisible

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CONFIGS = DATA / "mcunet-configs"
TFLITE = DATA / "tflite"
needs_configs = pytest.mark.skipif(not CONFIGS.is_dir(), reason=f"shared data absent: {CONFIGS}")

# Published MAC counts (millions) quoted in shared/data/README.md.
PUBLISHED_MMACS = {
    "mbv2-w0.35-r144_imagenet": 23.5,
    "proxyless-w0.3-r176_imagenet": 38.3,
    "mcunet-256kb-1mb_imagenet": 67.3,
    "mcunet-512kb-2mb_imagenet": 125.9,
    "mcunet-10fps_imagenet": 6.4,
    "mcunet-5fps_imagenet": 12.8,
}

HYBRID = {  # METHOD.md's hybrid pattern: stem, SEP x3, ConvNext+SE x2
    "input_resolution": 64,
    "depth": [1, 1, 2, 1, 2, 1],
    "out_channel": [16, 16, 32, 48, 64, 80],
    "block_type_stage": ["conv", "mobile_one", "mobile_one", "mbconv", "mbconvnext",
                         "mbconvnext"],
    "act_stages": ["relu6", "relu6", "relu", "relu6", "hswish", "hswish"],
    "se_stages": [False, False, False, False, True, True],
    "stride_stages": [2, 1, 2, 2, 2, 2],
    "kernel_size": [3, 3, 3, 5, 3, 5, 3, 3],  # per block (8 blocks)
    "expand_ratio": [1, 1, 1, 3, 6, 6],  # per stage
    "num_classes": 10,
}


def kinds(g):
    return [op.kind for op in g.ops]


# ---------------------------------------------------------------- MCUNet / ProxylessNAS -----

@needs_configs
@pytest.mark.parametrize("name", sorted(PUBLISHED_MMACS))
def test_mcunet_macs_within_one_percent_of_published(name):
    g = load_model(CONFIGS / f"{name}.json", seed=None)
    published = PUBLISHED_MMACS[name] * 1e6
    macs = g.macs("published")
    assert abs(macs - published) / published < 0.01, (name, macs)
    assert round(macs / 1e6, 1) == PUBLISHED_MMACS[name]
    assert g.tensors[g.outputs[0]].shape == (1, 1, 1, 1000)


@needs_configs
def test_mcunet_blocks_follow_the_json():
    path = CONFIGS / "mcunet-512kb-2mb_imagenet.json"
    spec = json.loads(path.read_text())
    g = load_model(path, seed=None)
    blocks = spec["blocks"]
    assert kinds(g).count("add") == sum(b["shortcut"] is not None for b in blocks)
    dws = [op for op in g.ops if op.kind == "dw"]
    assert [g.tensors[op.inputs[1]].shape[1] for op in dws] == [
        b["mobile_inverted_conv"]["kernel_size"] for b in blocks]
    mids = [b["mobile_inverted_conv"]["mid_channels"] for b in blocks[1:]]
    assert [g.tensors[op.inputs[1]].shape[3] for op in dws[1:]] == mids


def test_mcunet_bad_config_is_a_config_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({"first_conv": {"out_channels": 8}, "blocks": []}))
    with pytest.raises(ConfigError, match="not a ProxylessNAS model config"):
        mcunet.load_proxyless_json(path)


# ---------------------------------------------------------------- stage configs -------------

def test_stage_config_builds_the_hybrid_pattern():
    g = build_graph(stage_config.parse(HYBRID, "hybrid"))
    g.validate()
    assert g.tensors[g.inputs[0]].shape == (1, 64, 64, 3)
    assert g.tensors[g.outputs[0]].shape == (1, 1, 1, 10)
    # 64 -> 32 (stem) -> 32 -> 16 -> 8 -> 4 -> 2
    assert g.tensors[g.ops[-2].outputs[0]].shape == (1, 1, 1, 80)
    dws = [op for op in g.ops if op.kind == "dw"]
    assert [g.tensors[op.inputs[1]].shape[1] for op in dws] == [3, 3, 5, 3, 5, 3, 3]
    # mobile_one: no residual (even at stride 1 with equal widths), activation after the PW
    sep2 = g.ops[kinds(g).index("dw") + 1]
    assert sep2.kind == "pw" and sep2.param("activation") == "relu6"
    # hswish stages: the convolutions are linear, a hard_swish atom follows each
    assert kinds(g).count("hard_swish") == 3 * 2  # 3 ConvNext blocks: after DW and PW expand
    assert kinds(g).count("mul_bcast") == 3  # SE in every ConvNext block
    # one Add: the second ConvNext of stage 5 (stride 1, 64 -> 64)
    assert kinds(g).count("add") == 1


def test_stage_config_widths_follow_the_rounding_rules():
    g = build_graph(stage_config.parse(HYBRID, "hybrid"))
    mbconv_expand = next(op for op in g.ops if op.kind == "pw"
                         and g.tensors[op.inputs[0]].shape[3] == 32
                         and g.tensors[op.outputs[0]].shape[3] != 32)
    assert g.tensors[mbconv_expand.outputs[0]].shape[3] == make_divisible(32 * 3) == 96
    se_reduce = [g.tensors[op.outputs[0]].shape[3] for op in g.ops
                 if op.kind == "pw" and g.tensors[op.inputs[0]].shape[1] == 1]
    assert se_reduce[0::2] == [make_divisible(48 / 4), make_divisible(64 / 4),
                               make_divisible(64 / 4)] == [16, 16, 16]
    assert make_divisible(20) == 24 and make_divisible(4) == 8 and make_divisible(44) == 48


def test_stage_config_expansion_one_skips_the_mbconv_expand():
    spec = dict(HYBRID, expand_ratio=[1, 1, 1, 1, 6, 6])
    g = build_graph(stage_config.parse(spec, "e1"))
    dw = [op for op in g.ops if op.kind == "dw"][3]  # the mbconv stage
    before = next(op for op in g.ops if dw.inputs[0] in op.outputs)
    assert before.kind == "pad" and g.tensors[dw.inputs[1]].shape[3] == 32


@pytest.mark.parametrize("change, message", [
    ({"kernel_size": [7] * 6}, "kernel_size must be one of"),
    ({"block_type_stage": ["conv", "resnet"] + HYBRID["block_type_stage"][2:]},
     "'resnet' is not one of"),
    ({"act_stages": ["gelu"] * 6}, "'gelu' is not one of"),
    ({"depth": [1, 1]}, "needs one value per stage"),
    ({"expand_ratio": [1, 2, 3]}, "expand_ratio needs 6 values"),
    ({"colour": "blue"}, "unknown stage-config keys"),
])
def test_stage_config_mistakes_are_named(change, message):
    with pytest.raises(ConfigError, match=message):
        stage_config.parse(dict(HYBRID, **change), "bad")


def test_load_model_tells_formats_apart(tmp_path):
    path = tmp_path / "hybrid.json"
    path.write_text(json.dumps(HYBRID))
    g = load_model(path, seed=1)
    assert g.name == "hybrid" and g.quantized
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(ConfigError, match="neither a stage config"):
        load_model(tmp_path / "other.json")


# ---------------------------------------------------------------- .tflite -------------------

def tflite_model(name):
    path = TFLITE / name
    if not path.is_file():
        pytest.skip(f"shared data absent: {path}")
    return path


def test_tflite_import_of_the_anomaly_detection_autoencoder():
    g = load_model(tflite_model("ad01_int8.tflite"))
    assert kinds(g) == ["fc"] * 10
    widths = [g.tensors[op.outputs[0]].shape[3] for op in g.ops]
    assert widths == [128, 128, 128, 128, 8, 128, 128, 128, 128, 640]
    assert g.tensors[g.inputs[0]].shape == (1, 1, 1, 640)
    assert g.param_count() == 264192 + sum(widths)  # weights + biases
    assert g.macs("published") == 264192
    assert all(op.param("activation") == "relu" for op in g.ops[:-1])


def test_tflite_import_of_the_keyword_spotting_dscnn():
    g = load_model(tflite_model("kws_ref_model.tflite"))
    assert kinds(g) == ["conv"] + ["dw", "pw"] * 4 + ["avgpool", "reshape", "fc", "softmax"]
    conv = g.ops[0]
    # 10x4 kernel, stride 2, SAME on 49x10: TFLite's padding, kept inside the conv
    assert g.tensors[conv.inputs[1]].shape == (64, 10, 4, 1)
    assert conv.param("padding") == (4, 1, 5, 1) and conv.param("stride") == 2
    assert g.tensors[conv.outputs[0]].shape == (1, 25, 5, 64)
    w = g.tensors[conv.inputs[1]]
    assert w.data.dtype == np.int8 and len(w.quant.scale) == 64
    assert g.ops[9].param("kernel") == (25, 5)
    assert g.param_count() == 22604
    assert g.atom(0).macs == 64 * 25 * 5 * 10 * 4 + 64


def test_unsupported_tflite_operator_names_op_index_and_model(tmp_path):
    tflm = pytest.importorskip("tflite_micro", reason="tflite-micro is not installed")
    flatbuffers = pytest.importorskip("flatbuffers")
    from atomsim.nn.frontends.tflite_import import UnsupportedOperator, from_bytes

    tfl = tflm.tensorflow.lite.micro.python.schema_py_generated

    def tensor(name, shape, scale):
        t = tfl.TensorT()
        t.shape, t.type, t.name, t.buffer = list(shape), tfl.TensorType.INT8, name, 0
        qp = tfl.QuantizationParametersT()
        qp.scale, qp.zeroPoint = [scale], [0]
        t.quantization = qp
        return t

    codes, ops = [], []
    for k, builtin in enumerate((tfl.BuiltinOperator.RELU, tfl.BuiltinOperator.TANH)):
        code = tfl.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        codes.append(code)
        op = tfl.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = k, [k], [k + 1]
        ops.append(op)
    graph = tfl.SubGraphT()
    graph.tensors = [tensor(f"t{i}", (1, 2, 2, 3), 0.1) for i in range(3)]
    graph.inputs, graph.outputs, graph.operators = [0], [2], ops
    model = tfl.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, codes, [graph]
    model.buffers = [tfl.BufferT()]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(UnsupportedOperator, match=r"tanh_model.tflite: operator 1 \(TANH\)") as e:
        from_bytes(bytes(builder.Output()), "tanh_model.tflite")
    assert (e.value.index, e.value.op, e.value.model) == (1, "TANH", "tanh_model.tflite")
    assert isinstance(e.value, ConfigError)


def test_a_file_that_is_not_a_model_is_a_config_error(tmp_path):
    path = tmp_path / "junk.tflite"
    path.write_bytes(b"\x00" * 7)
    with pytest.raises(ConfigError, match="junk.tflite"):
        load_model(path)


def test_quantize_and_dequantize_at_the_edges_are_dropped_inside_they_are_refused():
    tflm = pytest.importorskip("tflite_micro", reason="tflite-micro is not installed")
    flatbuffers = pytest.importorskip("flatbuffers")
    from atomsim.nn.frontends.tflite_import import UnsupportedOperator, from_bytes

    tfl = tflm.tensorflow.lite.micro.python.schema_py_generated

    def model(ops_spec, types):
        tensors = []
        for i, dtype in enumerate(types):
            t = tfl.TensorT()
            t.shape, t.type, t.name, t.buffer = [1, 2, 2, 3], dtype, f"t{i}", 0
            if dtype == tfl.TensorType.INT8:
                qp = tfl.QuantizationParametersT()
                qp.scale, qp.zeroPoint = [0.05], [-3]
                t.quantization = qp
            tensors.append(t)
        codes, ops = [], []
        for k, builtin in enumerate(ops_spec):
            code = tfl.OperatorCodeT()
            code.builtinCode = code.deprecatedBuiltinCode = builtin
            code.version = 1
            codes.append(code)
            op = tfl.OperatorT()
            op.opcodeIndex, op.inputs, op.outputs = k, [k], [k + 1]
            ops.append(op)
        graph = tfl.SubGraphT()
        graph.tensors, graph.operators = tensors, ops
        graph.inputs, graph.outputs = [0], [len(types) - 1]
        m = tfl.ModelT()
        m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, codes, [graph], [tfl.BufferT()]
        builder = flatbuffers.Builder(1024)
        builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    q, r, d = (tfl.BuiltinOperator.QUANTIZE, tfl.BuiltinOperator.RELU,
               tfl.BuiltinOperator.DEQUANTIZE)
    f32, i8 = tfl.TensorType.FLOAT32, tfl.TensorType.INT8
    g = from_bytes(model([q, r, d], [f32, i8, i8, f32]), "edges.tflite")
    assert [op.kind for op in g.ops] == ["relu"]
    assert g.tensors[g.inputs[0]].name == "t1" and g.tensors[g.outputs[0]].name == "t2"
    assert g.tensors[g.inputs[0]].quant.per_tensor == (pytest.approx(0.05), -3)
    with pytest.raises(UnsupportedOperator, match=r"operator 1 \(QUANTIZE\).*float graph input"):
        from_bytes(model([r, q], [i8, i8, i8]), "middle.tflite")


@needs_configs
def test_padding_inside_the_convolutions_keeps_macs_and_drops_the_pad_atoms():
    path = CONFIGS / "mcunet-256kb-1mb_imagenet.json"
    padded, fused = load_model(path, seed=None), load_model(path, seed=None, explicit_pad=False)
    assert "pad" in kinds(padded) and "pad" not in kinds(fused)
    assert padded.macs("published") == fused.macs("published")
    assert len(padded.ops) - len(fused.ops) == kinds(padded).count("pad")
    k3 = next(op for op in fused.ops if op.kind == "dw"
              and fused.tensors[op.inputs[1]].shape[1] == 3)
    assert k3.param("padding") == (1, 1, 1, 1)
