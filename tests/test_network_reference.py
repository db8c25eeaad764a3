"""Whole networks: the numpy int8 interpreter == TensorFlow Lite Micro's interpreter, bit for bit.

* The two MLPerf Tiny models (../shared/data/tflite) run in tflite_micro and in
  atomsim.nn.interpreter on the graph the .tflite importer built, on random int8 inputs.
* Graphs built from configs (seeded random weights) are written out as .tflite here (with the
  builder of tests/tflite_models.py) with every
  activation as a model output, so every layer is compared, not just the last one.
* Softmax, logistic and MEAN alone (imported single-op models for the latter two): the ops
  the interpreter implements itself after TFLite's reference kernels.
Skipped when tflite_micro is not installed or the shared data is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tflite_micro = pytest.importorskip(
    "tflite_micro", reason="tflite-micro is not installed (pip install tflite-micro)")
flatbuffers = pytest.importorskip("flatbuffers", reason="flatbuffers (tflite-micro dep) missing")

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl  # noqa: E402
from tflite_models import TfliteModel, assert_same, run_tflm  # noqa: E402

from atomsim.nn.frontends import load_model, stage_config  # noqa: E402
from atomsim.nn.frontends.tflite_import import from_bytes  # noqa: E402
from atomsim.nn.graph import INT32, Graph  # noqa: E402
from atomsim.nn.interpreter import run, softmax_s8  # noqa: E402
from atomsim.nn.lowering import build_graph, with_random_weights  # noqa: E402

pytestmark = pytest.mark.unit

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# ---------------------------------------------------------------- MLPerf Tiny models -------

@pytest.mark.parametrize("name", ["ad01_int8", "kws_ref_model"])
def test_mlperf_tiny_model_matches_tflite_micro(name):
    path = DATA / "tflite" / f"{name}.tflite"
    if not path.is_file():
        pytest.skip(f"shared data absent: {path}")
    g = load_model(path)
    model = path.read_bytes()
    rng = np.random.default_rng(7)
    outputs = []
    for _ in range(4):
        x = rng.integers(-128, 128, size=g.tensors[g.inputs[0]].size).astype(np.int8)
        (want,) = run_tflm(model, x)
        got = run(g, x)[0]
        assert_same(want, got, name)
        outputs.append(want.ravel())
    assert len({o.tobytes() for o in outputs}) == 4  # the inputs really reach the output


# ---------------------------------------------------------------- softmax ------------------

@pytest.mark.parametrize("scale", [1 / 16, 0.1, 0.25, 0.8])
def test_softmax_matches_tflite_micro(scale):
    rng = np.random.default_rng(int(scale * 1000))
    x = rng.integers(-128, 128, size=(16, 12)).astype(np.int8)
    x[3] = 5  # a flat row
    x[4, :6] = -128  # far below the maximum: outside diff_min for large scales
    m = TfliteModel()
    t_in = m.tensor(x.shape, tfl.TensorType.INT8, scale, int(rng.integers(-20, 20)))
    t_out = m.tensor(x.shape, tfl.TensorType.INT8, 1 / 256, -128)
    opts = tfl.SoftmaxOptionsT()
    opts.beta = 1.0
    m.op(tfl.BuiltinOperator.SOFTMAX, [t_in], [t_out], tfl.BuiltinOptions.SoftmaxOptions, opts)
    (want,) = run_tflm(m.build([t_in], [t_out]), x)
    assert_same(want, softmax_s8(x, float(np.float32(scale))), f"softmax scale {scale}")


@pytest.mark.parametrize("scale, zero_point", [(0.05, 0), (0.1, -20), (0.5, 5), (0.004, -100)])
def test_imported_logistic_matches_tflite_micro(scale, zero_point):
    x = np.arange(-128, 128).astype(np.int8).reshape(1, 16, 16, 1)  # every input value
    m = TfliteModel()
    t_in = m.tensor(x.shape, tfl.TensorType.INT8, scale, zero_point)
    t_out = m.tensor(x.shape, tfl.TensorType.INT8, 1 / 256, -128)
    m.op(tfl.BuiltinOperator.LOGISTIC, [t_in], [t_out])
    model = m.build([t_in], [t_out])
    g = from_bytes(model, "logistic.tflite")
    assert [op.kind for op in g.ops] == ["logistic"]
    (want,) = run_tflm(model, x)
    assert_same(want, run(g, x)[0], f"logistic {scale} {zero_point}")
    assert len(set(want.ravel().tolist())) > 20


@pytest.mark.parametrize("seed", range(6))
def test_imported_mean_matches_tflite_micro(seed):
    rng = np.random.default_rng(seed)
    h, w, c = (int(v) for v in rng.integers(1, 12, 3))
    x = rng.integers(-128, 128, size=(1, h, w, c + 2)).astype(np.int8)
    s_in, zp_in = float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128))
    s_out, zp_out = ((s_in, zp_in) if seed % 2 else
                     (float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128))))
    m = TfliteModel()
    t_in = m.tensor(x.shape, tfl.TensorType.INT8, s_in, zp_in)
    axes = m.tensor((2,), tfl.TensorType.INT32, data=np.array([1, 2], np.int32))
    t_out = m.tensor((1, 1, 1, c + 2), tfl.TensorType.INT8, s_out, zp_out)
    opts = tfl.ReducerOptionsT()
    opts.keepDims = True
    m.op(tfl.BuiltinOperator.MEAN, [t_in, axes], [t_out], tfl.BuiltinOptions.ReducerOptions,
         opts)
    model = m.build([t_in], [t_out])
    g = from_bytes(model, "mean.tflite")
    assert [op.kind for op in g.ops] == ["mean"]
    assert g.atom(0).type == "global_avgpool"
    (want,) = run_tflm(model, x)
    assert_same(want, run(g, x)[0], f"mean seed {seed}")


# ---------------------------------------------------------------- graphs from configs ------

_ACT = {"none": tfl.ActivationFunctionType.NONE, "relu": tfl.ActivationFunctionType.RELU,
        "relu6": tfl.ActivationFunctionType.RELU6}


def to_tflite(g: Graph) -> tuple[bytes, list[int]]:
    """The graph as a .tflite whose outputs are every activation (returns their graph ids)."""
    m = TfliteModel()
    ids: dict[int, int] = {}

    fc_outputs = {op.outputs[0] for op in g.ops if op.kind == "fc"}

    def tensor(tid: int) -> int:
        if tid not in ids:
            t = g.tensors[tid]
            dtype = tfl.TensorType.INT32 if t.dtype == INT32 else tfl.TensorType.INT8
            shape = (1, t.shape[-1]) if tid in fc_outputs else t.shape  # FC writes (N, C)
            ids[tid] = m.tensor(shape, dtype, t.quant.scale, t.quant.zero_point, t.data,
                                t.quant.axis)
        return ids[tid]

    for op in g.ops:
        ins = [tensor(t) for t in op.inputs]
        out = tensor(op.outputs[0])
        act = _ACT[op.param("activation", "none")]
        if op.kind in ("conv", "pw", "dw"):
            assert op.param("padding", (0, 0, 0, 0)) == (0, 0, 0, 0)  # explicit Pad ops
            if op.kind == "dw":
                opts = tfl.DepthwiseConv2DOptionsT()
                opts.depthMultiplier = 1
                kind = (tfl.BuiltinOperator.DEPTHWISE_CONV_2D,
                        tfl.BuiltinOptions.DepthwiseConv2DOptions)
            else:
                opts = tfl.Conv2DOptionsT()
                kind = (tfl.BuiltinOperator.CONV_2D, tfl.BuiltinOptions.Conv2DOptions)
            opts.padding = tfl.Padding.VALID
            opts.strideH = opts.strideW = op.param("stride", 1)
            opts.fusedActivationFunction = act
            m.op(kind[0], ins, [out], kind[1], opts)
        elif op.kind == "pad":
            pt, pl, pb, pr = op.param("padding")
            pads = m.tensor((4, 2), tfl.TensorType.INT32,
                            data=np.array([[0, 0], [pt, pb], [pl, pr], [0, 0]], np.int32))
            m.op(tfl.BuiltinOperator.PAD, [ins[0], pads], [out],
                 tfl.BuiltinOptions.PadOptions, tfl.PadOptionsT())
        elif op.kind == "global_avgpool":
            _, h, w, _ = g.tensors[op.inputs[0]].shape
            opts = tfl.Pool2DOptionsT()
            opts.padding, opts.strideH, opts.strideW = tfl.Padding.VALID, 1, 1
            opts.filterHeight, opts.filterWidth = h, w
            m.op(tfl.BuiltinOperator.AVERAGE_POOL_2D, ins, [out],
                 tfl.BuiltinOptions.Pool2DOptions, opts)
        elif op.kind == "fc":
            opts = tfl.FullyConnectedOptionsT()
            opts.fusedActivationFunction = act
            m.op(tfl.BuiltinOperator.FULLY_CONNECTED, ins, [out],
                 tfl.BuiltinOptions.FullyConnectedOptions, opts)
        elif op.kind == "add":
            opts = tfl.AddOptionsT()
            opts.fusedActivationFunction = act
            m.op(tfl.BuiltinOperator.ADD, ins, [out], tfl.BuiltinOptions.AddOptions, opts)
        elif op.kind == "hard_swish":
            m.op(tfl.BuiltinOperator.HARD_SWISH, ins, [out])
        else:
            raise AssertionError(f"no TFLite op written for {op.kind}")
    acts = [op.outputs[0] for op in g.ops]
    return m.build([ids[g.inputs[0]]], [ids[t] for t in acts]), acts


NO_SE_HYBRID = {
    "input_resolution": 40, "depth": [1, 1, 2, 2, 2], "out_channel": [16, 16, 24, 32, 48],
    "block_type_stage": ["conv", "mobile_one", "mbconv", "mbconvnext", "mbconvnext"],
    "act_stages": ["relu6", "relu", "relu6", "hswish", "relu6"],
    "se_stages": [0, 0, 0, 0, 0], "stride_stages": [2, 1, 2, 2, 1],
    "kernel_size": [3, 3, 5, 3, 3, 5, 3, 3], "expand_ratio": [1, 1, 3, 4, 6],
    "num_classes": 100,
}


def config_graphs():
    yield "hybrid-stage-config", build_graph(stage_config.parse(NO_SE_HYBRID, "hybrid"))
    path = DATA / "mcunet-configs" / "mcunet-10fps_imagenet.json"
    if path.is_file():
        yield "mcunet-10fps", load_model(path, seed=None)


@pytest.mark.parametrize("seed", [0, 1])
def test_config_graphs_match_tflite_micro_layer_by_layer(seed):
    for name, shape_only in config_graphs():
        g = with_random_weights(shape_only, seed)
        model, acts = to_tflite(g)
        x = np.random.default_rng(seed).integers(
            -128, 128, size=g.tensors[g.inputs[0]].size).astype(np.int8)
        want = run_tflm(model, x, outputs=len(acts))
        got = run(g, x, keep=True)
        for i, (tid, w) in enumerate(zip(acts, want, strict=True)):
            assert_same(w, got[tid], f"{name} seed {seed} op {i} ({g.ops[i].kind})")
        logits = want[-1].ravel()
        assert len(set(logits.tolist())) > 10, f"{name}: degenerate logits {logits[:20]}"
