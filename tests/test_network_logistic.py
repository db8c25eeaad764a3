"""int8 LOGISTIC in the network firmware (firmware/network/network_ops.c): its params, its layer
table entry, and its output on the emulated boards == the numpy interpreter == TFLite Micro,
bit for bit.

* A .tflite of parallel LOGISTIC layers, one per input quantization (saturation on both sides,
  the range radius inside the int8 range on both sides, no saturation at all, the extreme
  scales where the firmware's clamped params stand in for TFLite's), each fed every int8 value:
  one firmware per board covers every case.
* A binary-classifier head (FULLY_CONNECTED -> LOGISTIC) on many random inputs, and its
  ``profile_model`` on all three boards.
Firmware tests need tflite_micro (its schema module builds the .tflite) and skip without it.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from atomsim.boards import get_board
from atomsim.core.errors import ConfigError
from atomsim.nn import interpreter
from atomsim.nn.graph import Graph, Quant
from atomsim.nn.planner import board_banks, plan
from atomsim.profiling.network import (
    build_network,
    generate_model_c,
    logistic_params,
    profile_model,
    run_network,
)

BOARDS = ("stm32f412", "stm32f746", "stm32h743")

# (input scale, zero point, what the case covers); float32 scales, as a .tflite holds them
CASES = (
    (0.1, 0, "radius 120: both edges and saturation on both sides"),
    (0.25, 10, "radius 30: most inputs saturate"),
    (0.1, -128, "radius 120: upper edge only, v = x + 128 in [0, 255]"),
    (0.03, 100, "radius 480 (stored as 256): nothing saturates"),
    (0.004, -100, "small scale: the curve's middle only"),
    (1 / 256, -128, "a logistic output fed to another logistic"),
    (16.0, 0, "shift 32 (stored as 31), radius 0: every input saturates"),
    (2.0 ** -40, 0, "shift -12: the rescale rounds every input to 0"),
)
# TFLite's Prepare shifts by the (negative) shift of the last case: undefined behaviour in C++
# (TFLite Micro's x86 build saturates every input); the interpreter and the firmware follow
# the formula, so that case is compared with the interpreter only.
TFLM_DEFINED = [scale * 2 ** 27 >= 0.5 for scale, _, _ in CASES]


def _f32(x: float) -> float:
    return float(np.float32(x))


# ---------------------------------------------------------------- params (unit) ------------

@pytest.mark.unit
@pytest.mark.parametrize("scale", [2.0 ** -70, 2.0 ** -40, 1e-4, 0.004, 0.03, 0.1, 0.25, 1.0, 3.0, 7.9,
                                   8.0, 16.0, 1e6])
def test_logistic_params_are_tflite_prepare_held_to_int32(scale):
    s = _f32(scale)
    multiplier, shift, radius = interpreter.logistic_params(s)
    # TFLite Prepare(): s * 2^27 (the input in Q4.27) = multiplier * 2^(shift - 31) ...
    assert 1 << 30 <= multiplier < 1 << 31
    assert math.isclose(math.ldexp(multiplier, shift - 31), s * 2 ** 27, rel_tol=2 ** -30)
    # ... and the radius is the largest count of input steps whose rescale stays below 15
    step = Fraction(2) ** shift
    assert radius * step <= 15 << 27 < (radius + 1) * step
    zp, fw_radius, fw_multiplier, fw_shift = logistic_params(s, -7)
    assert (zp, fw_multiplier) == (-7, multiplier)
    assert -31 <= fw_shift <= 31 and 0 <= fw_radius <= 256
    assert fw_radius == min(radius, 256)  # |x - zp| <= 255: radius 256 saturates nothing
    if fw_shift != shift:  # clamped only where the shift cannot change any result
        assert radius == 0 or (shift < -31 and fw_radius == 256)


@pytest.mark.unit
@pytest.mark.parametrize("scale", [0.0, -0.1])
def test_logistic_params_refuse_a_scale_with_no_multiplier(scale):
    with pytest.raises(ConfigError, match="no int32 multiplier"):
        logistic_params(scale, 0)


def _logistic_graph(scale: float, zp: int, out=(1 / 256, -128)) -> Graph:
    g = Graph(name="logistic")
    x = g.add_input((1, 4, 4, 3), quant=Quant.of(scale, zp))
    g.outputs.append(g.add_op("logistic", [x], quant=Quant.of(*out)))
    return g.validate()


@pytest.mark.unit
def test_a_logistic_layer_is_a_network_op_in_the_layer_table():
    g = _logistic_graph(0.1, 3)
    board = get_board("stm32f412")
    mem = plan(g, board_banks(board), variant="cortex_m_dsp")
    text, _ = generate_model_c(g, mem, "cortex_m_dsp", board_banks(board))
    zp, radius, multiplier, shift = logistic_params(_f32(0.1), 3)
    assert (zp, radius, shift) == (3, 120, 24)
    assert ".op = ATOMSIM_OP_LOGISTIC" in text
    assert f".params = {{{zp}, {radius}, {multiplier}, {shift}}}" in text
    assert ".in_dims = {1, 4, 4, 3}" in text
    assert "atomsim_w" not in text  # no constants: the params are all it needs


@pytest.mark.unit
@pytest.mark.parametrize("kind", ["logistic", "softmax"])
def test_a_network_op_with_another_output_quantization_is_refused_before_any_build(kind):
    g = Graph(name="bad")
    x = g.add_input((1, 1, 1, 8), quant=Quant.of(0.1, 0))
    g.outputs.append(g.add_op(kind, [x], quant=Quant.of(1 / 128, 0)))
    board = get_board("stm32f412")
    mem = plan(g.validate(), board_banks(board), variant="cortex_m_dsp")
    with pytest.raises(ConfigError, match=f"op 0 \\({kind}\\): output must be scale 1/256"):
        generate_model_c(g, mem, "cortex_m_dsp", board_banks(board))


# ---------------------------------------------------------------- firmware -----------------

def _tflite():
    pytest.importorskip("tflite_micro", reason="tflite-micro is not installed "
                        "(pip install tflite-micro): its schema module builds the .tflite")
    import tflite_models
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as tfl

    return tflite_models, tfl


def parallel_logistics() -> bytes:
    """One LOGISTIC per case, each on its own (1, 16, 16, 1) input: one model, every case."""
    tm, tfl = _tflite()
    m = tm.TfliteModel()
    ins, outs = [], []
    for scale, zp, _ in CASES:
        ins.append(m.tensor((1, 16, 16, 1), tfl.TensorType.INT8, scale, zp))
        outs.append(m.tensor((1, 16, 16, 1), tfl.TensorType.INT8, 1 / 256, -128))
        m.op(tfl.BuiltinOperator.LOGISTIC, [ins[-1]], [outs[-1]])
    return m.build(ins, outs)


def classifier_head(units: int = 4, features: int = 32, seed: int = 3, s_w: float = 0.003
                    ) -> bytes:
    """FULLY_CONNECTED (features -> units) then LOGISTIC: a binary / multi-label head whose
    logits (scale 0.08, most within ±9) reach the saturation of the logistic on both sides."""
    tm, tfl = _tflite()
    rng = np.random.default_rng(seed)
    s_in = 0.05
    m = tm.TfliteModel()
    x = m.tensor((1, features), tfl.TensorType.INT8, s_in, -3)
    w = m.tensor((units, features), tfl.TensorType.INT8, s_w, 0,
                 rng.integers(-127, 128, (units, features)).astype(np.int8))
    b = m.tensor((units,), tfl.TensorType.INT32, s_in * s_w, 0,
                 rng.integers(-2000, 2000, units).astype(np.int32))
    logits = m.tensor((1, units), tfl.TensorType.INT8, 0.08, 4)
    y = m.tensor((1, units), tfl.TensorType.INT8, 1 / 256, -128)
    opts = tfl.FullyConnectedOptionsT()
    m.op(tfl.BuiltinOperator.FULLY_CONNECTED, [x, w, b], [logits],
         tfl.BuiltinOptions.FullyConnectedOptions, opts)
    m.op(tfl.BuiltinOperator.LOGISTIC, [logits], [y])
    return m.build([x], [y])


def _graph(model: bytes, name: str) -> Graph:
    from atomsim.nn.frontends.tflite_import import from_bytes

    return from_bytes(model, name)


@pytest.mark.firmware
@pytest.mark.parametrize("board", BOARDS)
def test_logistic_layers_match_the_interpreter_and_tflite_micro_on_every_int8_input(board):
    tm, _ = _tflite()
    model = parallel_logistics()
    g = _graph(model, "logistics.tflite")
    assert [op.kind for op in g.ops] == ["logistic"] * len(CASES)
    image = build_network(g, get_board(board), "cortex_m_dsp")
    assert [layer.kind for layer in image.layers] == ["logistic"] * len(CASES)
    rng = np.random.default_rng(11)
    every = np.arange(-128, 128, dtype=np.int8)
    target = fw = None
    for trial in range(2):  # every int8 value in two orders, on one loaded firmware
        xs = [(every if trial == 0 else rng.permutation(every)).reshape(1, 16, 16, 1)
              for _ in CASES]
        if fw is None:
            from atomsim.emulator.machine import Machine

            target = Machine(image.board)
            fw = target.load(image.elf)
        result = run_network(image, xs, target, loaded=fw)
        want = interpreter.run(g, xs)
        tflm = tm.run_tflm(model, *xs, outputs=len(CASES))
        for (scale, zp, what), defined, got, w, t in zip(CASES, TFLM_DEFINED, result.outputs,
                                                         want, tflm, strict=True):
            label = f"{board}: scale {scale} zp {zp} ({what})"
            tm.assert_same(w, got.reshape(w.shape), f"firmware vs numpy, {label}")
            if defined:
                tm.assert_same(t, got.reshape(w.shape), f"firmware vs TFLite Micro, {label}")
    assert all(c > 0 for c in result.layer_cycles)
    # the cases cover what they say: both saturations, the edges, the middle
    by_case = dict(zip([c[:2] for c in CASES], result.outputs, strict=True))
    assert set(np.unique(by_case[(16.0, 0)]).tolist()) == {-128, 127}
    assert set(np.unique(by_case[(2.0 ** -40, 0)]).tolist()) == {0}
    edges = by_case[(0.1, 0)].ravel()[np.argsort(xs[0].ravel())]  # output of x = -128..127
    v = np.arange(-128, 128)
    assert (edges[v <= -120] == -128).all() and (edges[v >= 120] == 127).all()
    assert len(set(by_case[(0.03, 100)].ravel().tolist())) > 100  # nothing saturates


@pytest.mark.firmware
@pytest.mark.parametrize("board", ["stm32f412", "stm32h743"])
def test_a_classifier_head_with_logistic_matches_on_many_inputs(board):
    tm, _ = _tflite()
    model = classifier_head()
    g = _graph(model, "head.tflite")
    assert [op.kind for op in g.ops] == ["fc", "logistic"]
    image = build_network(g, get_board(board), "cortex_m_dsp")
    from atomsim.emulator.machine import Machine

    target = Machine(image.board)
    fw = target.load(image.elf)
    rng = np.random.default_rng(5)
    seen = []
    for _ in range(24):
        x = rng.integers(-128, 128, size=(1, 32)).astype(np.int8)
        got = run_network(image, x, target, loaded=fw).outputs[0]
        want = interpreter.run(g, x)[0]
        tm.assert_same(want, got.reshape(want.shape), f"{board}: head vs numpy")
        tm.assert_same(tm.run_tflm(model, x)[0], got.reshape(want.shape),
                       f"{board}: head vs TFLite Micro")
        seen += got.ravel().tolist()
    assert {-128, 127} <= set(seen) and len(set(seen)) > 20  # saturated and in between


@pytest.mark.firmware
def test_a_logistic_network_profiles_on_every_board():
    g = _graph(classifier_head(), "head.tflite")
    for board in BOARDS:
        p = profile_model(g, get_board(board))
        assert p.status == "ok" and p.exact, f"{board}: {p.status} {p.message}"
        assert [r.kind for r in p.layers] == ["fc", "logistic"]
        assert p.layers[1].macs == 0 and p.layers[1].weight_bytes == 0
        assert p.layers[1].cycles > 0
