"""Deploy on the emulated board: a trained, int8-quantized AtomNet (a hybrid-pattern config at
32 px, Fashion-MNIST, 10 classes) runs as network firmware on the emulated STM32H743; its logits
equal the host int8 reference and TensorFlow Lite Micro bit for bit on every test image, and the
accuracy measured on the board equals the host int8 accuracy. The search's figures for the same
config (from a small AtomDB filled on demand) sit beside the measured ones: the default export
pads with explicit PAD ops as the costed graph's Pad atoms do, so the deployed network is the
costed one but for the SE gate folded into its conv: SRAM and Flash at or under the prediction,
latency within 3 % of it. The ``--pad-in-conv`` export (TFLite-converter style) deploys bit-exact
too, and is the slower one (the kernels' border path).

Skips without torch or the Debian dataset-fashion-mnist files.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e .[atomnet])")

from atomnet.config import StageConfig  # noqa: E402
from atomnet.data import FASHION_MNIST_DIR, fashion_mnist  # noqa: E402
from atomnet.deploy import NotBitExact, check, comparison_rows, deploy  # noqa: E402
from atomnet.export_tflite import to_tflite  # noqa: E402
from atomnet.quantize import evaluate_int8, post_training_quantize, run_int8  # noqa: E402
from atomnet.search import predict  # noqa: E402
from atomnet.train import TrainConfig, train  # noqa: E402

pytestmark = [
    pytest.mark.training,
    pytest.mark.firmware,
    pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists()
                       and not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte").exists(),
                       reason=f"Fashion-MNIST not under {FASHION_MNIST_DIR} "
                              "(apt-get install dataset-fashion-mnist)"),
]

BOARD = "stm32h743"
SPEC = {"input_resolution": 32, "num_classes": 10, "depth": [1, 1, 1, 1, 2, 1],
        "out_channel": [8, 16, 24, 32, 32, 48],
        "block_type_stage": ["conv", "mobile_one", "mobile_one", "mbconvnext", "mbconvnext",
                             "mbconvnext"],
        "act_stages": ["relu6"] * 6, "se_stages": [False, False, False, False, True, True],
        "stride_stages": [2, 1, 2, 2, 2, 2], "kernel_size": [3] * 6,
        "expand_ratio": [1, 1, 1, 3, 6, 6]}
IMAGES = 12


@pytest.fixture(scope="module")
def quantized():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_set = fashion_mnist("train", 32, limit=2000)
        test_set = fashion_mnist("test", 32, limit=200)
        model = train(StageConfig.from_dict(SPEC), train_set,
                      TrainConfig(epochs=1, batch_size=64, base_lr=1.6, seed=0,
                                  device="cpu")).model
        q = post_training_quantize(model, train_set, count=128)
    finally:
        torch.set_num_threads(before)
    return q, test_set


@pytest.fixture(scope="module")
def deployed(quantized, tmp_path_factory):
    q, test_set = quantized
    x = test_set.int8_inputs(range(IMAGES))
    result = deploy(BOARD, x, test_set.labels[:IMAGES], qmodel=q, log=lambda _m: None)
    db = tmp_path_factory.mktemp("deploy") / "atoms.db"
    result.predicted, _ = predict(SPEC, BOARD, db, log=lambda _m: None)
    return result


@pytest.fixture(scope="module")
def deployed_pad_in_conv(quantized, deployed):
    q, test_set = quantized
    x = test_set.int8_inputs(range(IMAGES))
    result = deploy(BOARD, x, test_set.labels[:IMAGES], qmodel=q,
                    tflite=to_tflite(q, pad_in_conv=True), log=lambda _m: None)
    result.predicted = deployed.predicted
    return result


def test_board_logits_equal_host_int8_and_tflite_micro(deployed, quantized):
    q, test_set = quantized
    assert deployed.host_exact is True
    want = run_int8(q, test_set.int8_inputs(range(IMAGES)))
    assert np.array_equal(deployed.board_logits, want)
    if deployed.tflm_exact is None:
        pytest.skip("tflite_micro is not installed: the TFLM half is not checked")
    assert deployed.tflm_exact is True
    check(deployed)  # no NotBitExact
    assert len(np.unique(deployed.board_logits.argmax(1))) > 2  # real, varied predictions


def test_board_accuracy_equals_host_int8_accuracy(deployed, quantized):
    q, test_set = quantized
    host = evaluate_int8(q, test_set.subset(IMAGES))
    assert deployed.board_accuracy == deployed.host_accuracy == host
    assert deployed.board_accuracy > 0.3  # it learned something in one short epoch


def test_measured_figures_beside_the_search_prediction(deployed):
    """The deployed .tflite graph is the costed stage-config graph (a Pad atom before every
    k > 1 convolution) but for the SE gate: no hard-sigmoid atom, folded into its conv."""
    p = deployed.predicted
    rows = {r[0]: r for r in comparison_rows(deployed)}
    assert set(rows) == {"MACs", "peak SRAM", "Flash", "latency"}
    assert all("%" in r[3] for r in rows.values())  # a difference for every figure
    print("\n".join(" | ".join(r) for r in rows.values()))
    assert deployed.ops.get("hard_sigmoid", 0) == 0  # the SE gate folded into its conv
    assert deployed.ops.get("mul_bcast", 0) + deployed.ops.get("mul", 0) == 3  # 3 SE blocks
    k3 = sum(1 for n in SPEC["depth"] for _ in range(n))  # one 3x3 conv / dw per block
    assert deployed.ops["pad"] == k3  # stride-1 convolutions have their Pad too
    # The folded gate leaves out a buffer and a kernel: SRAM and Flash at or under the
    # search's figures, and the latency the sum of the same atoms.
    assert p.sram_bytes * 0.97 <= deployed.sram["peak"] <= p.sram_bytes
    assert p.flash_bytes * 0.96 <= deployed.flash["total"] <= p.flash_bytes
    assert abs(deployed.latency_ms - p.latency_ms) <= 0.03 * p.latency_ms


def test_pad_in_conv_export_deploys_bit_exact_and_slower(deployed_pad_in_conv, deployed,
                                                         quantized):
    """TFLite-converter-style padding (SAME inside stride-1 convolutions) computes the same
    logits; the DSP kernels' border path makes it slower than the Pad atoms costed, and its
    SRAM lower (no padded copy of a stride-1 conv's input is live)."""
    r = deployed_pad_in_conv
    print("\n".join(" | ".join(row) for row in comparison_rows(r)))
    assert r.host_exact is True
    assert np.array_equal(r.board_logits, deployed.board_logits)
    if r.tflm_exact is not None:
        assert r.tflm_exact is True
    check(r)
    assert r.ops["pad"] < deployed.ops["pad"]
    assert r.cycles > deployed.cycles
    assert r.sram["peak"] <= deployed.sram["peak"]


def test_a_changed_logit_is_named(deployed):
    import copy

    bad = copy.copy(deployed)
    bad.board_logits = deployed.board_logits.copy()
    bad.board_logits[3, 7] ^= 1
    with pytest.raises(NotBitExact, match="image 3, class 7"):
        check(bad)


def test_cli_deploy_runs_the_tflite(quantized, tmp_path, capsys):
    from atomsim.cli import main

    q, _ = quantized
    qpath, tpath = tmp_path / "m.q", tmp_path / "m.tflite"
    q.save(qpath)
    tpath.write_bytes(to_tflite(q))
    rc = main(["atomnet", "deploy", str(tpath), "--qmodel", str(qpath), "--board", BOARD,
               "--images", "4", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert rc == 0 and data["host_exact"] is True and data["images"] == 4
    assert data["board_accuracy"] == data["host_accuracy"]
    assert main(["atomnet", "deploy", str(qpath), "--board", BOARD, "--images", "0",
                 "--json"]) == 2
