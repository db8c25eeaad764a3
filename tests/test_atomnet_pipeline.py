"""Train -> quantize -> export on real Fashion-MNIST at 32 x 32, in well under three minutes.

- int8 (host, integer-only, AtomSim's reference kernels) accuracy within 2 points of float;
- the exported .tflite runs in TensorFlow Lite Micro's interpreter with outputs bit-identical
  to the host int8 forward pass, and AtomSim's own .tflite importer + numpy interpreter agree;
- fake quantization predicts the int8 network; quantization-aware fine-tuning keeps the
  tensor quantization and does not lose accuracy;
- the same seed gives the same weights (and another seed other weights);
- a run stopped after epoch 1 (in process, and by SIGKILL of the CLI) and resumed ends with
  exactly the weights of an uninterrupted run;
- the CLI's quantize / export verbs work, and bad inputs are named errors.

The config has every op the blocks use: stem conv, SEP (mobile_one), MBConv with SE and
hard-swish, ConvNeXt with SE and k=5, residual Adds, stride-2 convs on even maps (PAD in the
.tflite), head. Skips without torch or the Debian dataset-fashion-mnist files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e .[atomnet])")

from atomnet.config import StageConfig  # noqa: E402
from atomnet.data import FASHION_MNIST_DIR, fashion_mnist  # noqa: E402
from atomnet.export_tflite import to_tflite  # noqa: E402
from atomnet.quantize import evaluate_int8, lower, post_training_quantize, run_float, run_int8  # noqa: E402
from atomnet.train import TrainConfig, evaluate, load_checkpoint, train  # noqa: E402

pytestmark = [
    pytest.mark.training,
    pytest.mark.skipif(not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists()
                       and not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte").exists(),
                       reason=f"Fashion-MNIST not under {FASHION_MNIST_DIR} "
                              "(apt-get install dataset-fashion-mnist)"),
]

SPEC = {"input_resolution": 32, "num_classes": 10,
        "depth": [1, 1, 2, 2], "out_channel": [16, 16, 24, 32],
        "block_type_stage": ["conv", "mobile_one", "mbconv", "mbconvnext"],
        "act_stages": ["relu6", "relu6", "hswish", "relu"], "se_stages": [False, False, True, True],
        "stride_stages": [2, 1, 2, 2], "kernel_size": [3, 3, 3, 5], "expand_ratio": [1, 1, 3, 3]}
CONFIG = StageConfig.from_dict(SPEC)
RECIPE = TrainConfig(epochs=3, batch_size=64, base_lr=1.6, seed=0)  # lr 0.1 at batch 64
# A tiny network for the determinism and resume checks (what they check does not need size).
TINY = StageConfig.from_dict({
    "input_resolution": 32, "num_classes": 10, "depth": [1, 1, 1], "out_channel": [8, 8, 16],
    "block_type_stage": ["conv", "mobile_one", "mbconvnext"], "act_stages": ["relu"] * 3,
    "se_stages": [False, False, True], "stride_stages": [2, 1, 2], "kernel_size": [3, 3, 3],
    "expand_ratio": [1, 1, 2]})
SMALL = TrainConfig(epochs=2, batch_size=64, base_lr=1.6, seed=0, device="cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine two threads spin-wait on each other (about
    6x slower under load); the CLI run below is given the same count, so weights can match."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def data():
    return (fashion_mnist("train", 32, limit=3000), fashion_mnist("test", 32, limit=1000))


@pytest.fixture(scope="module")
def trained(data):
    train_set, test_set = data
    result = train(CONFIG, train_set, RECIPE)
    q = post_training_quantize(result.model, train_set, count=256)
    return result.model, q


def test_folded_float_graph_equals_the_model(trained, data):
    model, q = trained
    x, _ = data[1].batch(range(32))
    with torch.no_grad():
        assert torch.allclose(run_float(lower(model), x), model(x), atol=1e-4)


def test_int8_accuracy_within_two_points_of_float(trained, data):
    model, q = trained
    test_set = data[1]
    f_acc, q_acc = evaluate(model, test_set), evaluate_int8(q, test_set)
    print(f"float {100 * f_acc:.2f} %, int8 {100 * q_acc:.2f} % on {len(test_set)} images")
    assert f_acc > 0.70, "the network did not learn Fashion-MNIST"
    assert abs(f_acc - q_acc) <= 0.02


def test_tflite_is_bit_exact_under_tflite_micro(trained, data):
    tflite_micro = pytest.importorskip("tflite_micro", reason="tflite-micro is not installed")
    import tflite

    _, q = trained
    buf = to_tflite(q)
    model = tflite.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.Subgraphs(0)
    ops = {names[model.OperatorCodes(graph.Operators(i).OpcodeIndex()).BuiltinCode()]
           for i in range(graph.OperatorsLength())}
    assert ops == {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "MUL",
                   "AVERAGE_POOL_2D", "HARD_SWISH", "PAD"}

    x = data[1].int8_inputs(range(200))
    want = run_int8(q, x)
    interp = tflite_micro.runtime.Interpreter.from_bytes(buf, arena_size=1 << 20)
    got = np.empty_like(want)
    for i in range(len(x)):
        interp.set_input(x[i:i + 1], 0)
        interp.invoke()
        got[i] = np.array(interp.get_output(0), copy=True).reshape(-1)
    del interp
    bad = np.argwhere(got != want)
    assert bad.size == 0, (f"{len(bad)} of {want.size} logits differ; first at image "
                           f"{bad[0][0]}: TFLM {got[tuple(bad[0])]}, host {want[tuple(bad[0])]}")
    assert len(np.unique(want.argmax(1))) > 3  # real, varied predictions


def test_atomsim_reads_the_tflite_and_computes_the_same(trained, data):
    tflite_import = pytest.importorskip("atomsim.nn.frontends.tflite_import")
    interpreter = pytest.importorskip("atomsim.nn.interpreter")
    _, q = trained
    graph = tflite_import.from_bytes(to_tflite(q), name="atomnet.tflite")
    x = data[1].int8_inputs(range(20))
    want = run_int8(q, x)
    for i in range(len(x)):
        got = np.asarray(interpreter.run(graph, x[i:i + 1])[0]).reshape(-1)
        assert np.array_equal(got, want[i]), f"image {i}"


@pytest.fixture(scope="module")
def uninterrupted(data):
    """Weights of a plain 2-epoch run of the tiny network on 512 images."""
    return train(TINY, data[0].subset(512), SMALL).model.state_dict()


def test_fake_quantization_predicts_the_int8_network(trained, data):
    from atomnet.qat import fake_quant_forward

    model, q = trained
    x, _ = data[1].batch(range(200))
    with torch.no_grad():
        fake = fake_quant_forward(q, x).argmax(1).numpy()
    real = run_int8(q, data[1].int8_inputs(range(200))).argmax(1)
    assert (fake == real).mean() >= 0.95


def test_quantization_aware_finetuning_keeps_the_structure(trained, data):
    from atomnet.qat import finetune

    _, q = trained
    tuned = finetune(q, data[0].subset(1024), epochs=1, lr=0.002)
    assert [(t.scale, t.zero_point) for t in tuned.tensors] == [
        (t.scale, t.zero_point) for t in q.tensors]
    assert any(not np.array_equal(a.qweight, b.qweight)
               for a, b in zip(tuned.ops, q.ops, strict=True) if a.qweight is not None)
    test = data[1].subset(500)
    assert evaluate_int8(tuned, test) >= evaluate_int8(q, test) - 0.01


def test_same_seed_same_weights_other_seed_other_weights(data, uninterrupted):
    small = data[0].subset(512)
    again = train(TINY, small, SMALL).model.state_dict()
    other = train(TINY, small, TrainConfig(**{**SMALL.__dict__, "seed": 1})).model.state_dict()
    assert same_weights(uninterrupted, again)
    assert not same_weights(uninterrupted, other)


def test_resume_after_stop_equals_uninterrupted(data, uninterrupted, tmp_path):
    small = data[0].subset(512)
    whole = uninterrupted
    first = train(TINY, small, SMALL, checkpoint_dir=tmp_path, stop_after_epochs=1)
    assert len(first.history) == 1 and load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    assert not same_weights(first.model.state_dict(), whole)
    resumed = train(TINY, small, SMALL, checkpoint_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert same_weights(resumed.model.state_dict(), whole)


def _epoch_of(path: Path) -> int:
    try:
        return int(load_checkpoint(path)["epoch"])
    except Exception:  # noqa: BLE001 - not written yet
        return 0


def test_cli_training_killed_with_sigkill_resumes_exactly(data, tmp_path):
    cfg_file = tmp_path / "net.json"
    cfg_file.write_text(TINY.to_json())
    ck = tmp_path / "ck"
    recipe = TrainConfig(epochs=8, batch_size=64, base_lr=1.6, seed=3, device="cpu")
    cmd = [sys.executable, "-m", "atomsim.cli", "atomnet", "train", str(cfg_file),
           "--limit", "512", "--test-limit", "10", "--epochs", "8", "--batch-size", "64",
           "--base-lr", "1.6", "--seed", "3", "--device", "cpu", "--threads", "1",
           "--checkpoint-dir", str(ck),
           "--json"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while _epoch_of(ck / "last.pt") < 1:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint after 120 s"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _epoch_of(ck / "last.pt")
    assert 1 <= killed_at < 8, "the run finished before it could be killed"
    done = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, env=env,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    resumed = load_checkpoint(ck / "last.pt")
    assert resumed["epoch"] == 8
    whole = train(TINY, data[0].subset(512), recipe).model.state_dict()
    assert same_weights(resumed["model"], whole)


def test_training_throughput_benchmark_runs():
    """benchmarks/training_throughput.py keeps working (its figures are not asserted)."""
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "training_throughput.py"
    proc = subprocess.run([sys.executable, str(script), "--images", "128", "--trials", "1",
                           "--int8-images", "2", "--threads", "1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| training (fwd + bwd + SGD) |" in proc.stdout


def test_cli_quantize_and_export(data, tmp_path, capsys):
    import json

    from atomnet.quantize import QModel
    from atomsim.cli import main

    ck = tmp_path / "ck"
    train(TINY, data[0].subset(512), SMALL, checkpoint_dir=ck)
    qfile, tfile = tmp_path / "tiny.q", tmp_path / "tiny.tflite"
    assert main(["atomnet", "quantize", str(ck / "last.pt"), "--calibration-images", "128",
                 "--test-limit", "100", "--out", str(qfile), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["test_images"] == 100 and 0 <= report["int8_accuracy"] <= 1
    assert main(["atomnet", "export", str(qfile), "--out", str(tfile), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] == tfile.stat().st_size
    assert tfile.read_bytes()[4:8] == b"TFL3"
    assert QModel.load(qfile).num_classes == 10


def test_cli_bad_inputs_are_named_errors(tmp_path, capsys):
    from atomsim.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text('{"input_resolution": 32}')
    assert main(["atomnet", "train", str(bad)]) == 2
    assert "missing key" in capsys.readouterr().err
    assert main(["atomnet", "quantize", str(tmp_path / "none.pt"), "--out",
                 str(tmp_path / "q")]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert main(["atomnet", "export", str(bad), "--out", str(tmp_path / "m.tflite")]) == 2
    assert "is not an AtomNet quantized model" in capsys.readouterr().err


def test_cli_summary_totals_match_the_model(tmp_path, capsys):
    import json

    from atomnet.model import AtomNet, summarize, total_macs
    from atomsim.cli import main

    f = tmp_path / "net.json"
    f.write_text(CONFIG.to_json())
    assert main(["atomnet", "summary", str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["macs"] == total_macs(summarize(AtomNet(CONFIG))) == 1_010_386
    assert len(out["layers"]) == 43
