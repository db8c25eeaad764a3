"""``atomsim atomnet export``: a file that is not what ``atomnet quantize`` writes is a named
error (``NotAQuantizedModel``, exit 2) that says which file, what export expects and what the
file looks like instead — never a pickle or torch message such as "A load persistent id
instruction was encountered".

The checkpoint and the quantized model are made once by the real ``atomnet train`` and
``atomnet quantize`` (tests/badinput/nn_recipes.py); every case runs the installed ``atomsim``
script in a subprocess and checks that no .tflite was written, no folder was made and the
input kept its bytes.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e .[atomnet])")

from badinput import nn_recipes  # noqa: E402

pytestmark = pytest.mark.training
ATOMSIM = Path(sys.executable).with_name("atomsim")


def export(src: Path, out: Path):
    """``atomsim atomnet export SRC --out OUT --json``."""
    if not ATOMSIM.exists():
        pytest.skip(f"the atomsim console script is not installed at {ATOMSIM}")
    return subprocess.run([str(ATOMSIM), "atomnet", "export", str(src), "--out", str(out),
                           "--json"], capture_output=True, text=True, timeout=300)


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` with its SHA-256 (``dir`` for a folder)."""
    return {str(p.relative_to(folder)): "dir" if p.is_dir()
            else hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A checkpoint and a quantized model from the real CLI, and files derived from them."""
    root = tmp_path_factory.mktemp("made")
    ck, q = root / "last.pt", root / "model.q"
    nn_recipes.make("checkpoint", {}, ck)
    nn_recipes.make("qmodel", {}, q)
    checkpoint = torch.load(ck, map_location="cpu", weights_only=True)
    torch.save(checkpoint["model"], root / "state_dict.pt")
    torch.save(checkpoint["model"], root / "legacy.pt", _use_new_zipfile_serialization=False)
    return {"checkpoint": ck, "qmodel": q, "state_dict": root / "state_dict.pt",
            "legacy": root / "legacy.pt"}


def _lowered(made, path: Path) -> None:
    """A QModel lowered from the checkpoint but never quantized (no int8 weights)."""
    from atomnet.quantize import lower
    from atomnet.train import model_from_checkpoint

    lower(model_from_checkpoint(made["checkpoint"])).save(path)


def _tflite(made, path: Path) -> None:
    """The .tflite that export writes from the good quantized model."""
    proc = export(made["qmodel"], path)
    assert proc.returncode == 0, proc.stderr


def _cut(name: str, fraction: float):
    def make(made, path: Path) -> None:
        data = made[name].read_bytes()
        path.write_bytes(data[:int(len(data) * fraction)])
    return make


# name: (how the input is made, words the message must hold besides the file's name)
CASES = {
    "training-checkpoint": (lambda made, p: p.write_bytes(made["checkpoint"].read_bytes()),
                            ["training checkpoint of atomnet train",
                             "quantize it first: atomsim atomnet quantize"]),
    "state-dict": (lambda made, p: p.write_bytes(made["state_dict"].read_bytes()),
                   ["PyTorch state_dict", "tensors", "without the stage config"]),
    "torch-legacy-format": (lambda made, p: p.write_bytes(made["legacy"].read_bytes()),
                            ["legacy format"]),
    "checkpoint-cut-in-half": (_cut("checkpoint", 0.5), ["zip archive cut short or damaged"]),
    "qmodel-cut-in-half": (_cut("qmodel", 0.5), ["pickle cut short or damaged",
                                                  "partial copy"]),
    "qmodel-cut-at-the-end": (_cut("qmodel", 0.99), ["pickle cut short or damaged"]),
    "empty-file": (lambda made, p: p.write_bytes(b""), ["an empty file"]),
    "text-file": (lambda made, p: p.write_text("weights: see the wiki\n"), ["a text file"]),
    "stage-config": (lambda made, p: p.write_text(json.dumps(nn_recipes.TINY_STAGE_CONFIG)),
                     ["JSON text with keys", "stage config"]),
    "other-pickle": (lambda made, p: p.write_bytes(pickle.dumps({"weights": [1, 2, 3]})),
                     ["pickle of something else", "atomnet.quantize.QModel"]),
    "already-a-tflite": (_tflite, ["a .tflite model", "already exported"]),
    "lowered-not-quantized": (_lowered, ["lowered but never quantized"]),
    "binary-noise": (lambda made, p: p.write_bytes(bytes(range(256)) * 4),
                     ["binary file of 1,024 bytes"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_export_names_what_the_input_is(made, tmp_path, case):
    make, words = CASES[case]
    src = tmp_path / "input.bin"
    make(made, src)
    before = snapshot(tmp_path)
    out = tmp_path / "new-folder" / "model.tflite"  # export makes --out's folder: not now
    proc = export(src, out)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "NotAQuantizedModel", error
    message = error["message"]
    assert "persistent" not in message and "Memo value" not in message, message
    for word in [str(src), "is not an AtomNet quantized model", "atomnet quantize", *words]:
        assert word in message, message
    assert snapshot(tmp_path) == before  # no .tflite, no folder, the input untouched


def test_a_directory_is_named(tmp_path):
    (tmp_path / "model.q").mkdir()
    proc = export(tmp_path / "model.q", tmp_path / "m.tflite")
    assert proc.returncode == 2, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "NotAQuantizedModel" and "a directory" in error["message"]
    assert not (tmp_path / "m.tflite").exists()


def test_the_quantized_model_itself_still_exports(made, tmp_path):
    """The control: the real quantize output is accepted, so the recipes above are what fail."""
    out = tmp_path / "new-folder" / "model.tflite"
    proc = export(made["qmodel"], out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes()[4:8] == b"TFL3"
