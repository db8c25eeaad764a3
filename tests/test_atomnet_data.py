"""atomnet.data: IDX reading, Fashion-MNIST preparation and ImageFolder directories."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

pytest.importorskip("torch", reason="torch is not installed (pip install -e .[atomnet])")
Image = pytest.importorskip("PIL.Image", reason="Pillow is not installed")

from atomnet.data import (  # noqa: E402
    FASHION_MNIST_DIR,
    DatasetError,
    fashion_mnist,
    image_folder,
    load_dataset,
    read_idx,
)

pytestmark = pytest.mark.unit


def _idx(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_plain_and_gzipped(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(_idx(a))
    (tmp_path / "a.gz").write_bytes(gzip.compress(_idx(a)))
    assert np.array_equal(read_idx(tmp_path / "a"), a)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)


@pytest.mark.parametrize("content,words", [
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00", "not an unsigned-byte IDX"),
    (_idx(np.zeros((2, 2), np.uint8))[:-1], "header says"),
    (b"\x1f\x8b garbage", "cannot read"),
])
def test_read_idx_rejects_bad_files(tmp_path, content, words):
    (tmp_path / "bad").write_bytes(content)
    with pytest.raises(DatasetError, match=words):
        read_idx(tmp_path / "bad")


def test_missing_fashion_mnist_is_a_named_error(tmp_path):
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        fashion_mnist("train", 32, root=tmp_path)
    with pytest.raises(DatasetError, match="split"):
        fashion_mnist("validation", 32, root=tmp_path)


@pytest.mark.skipif(not FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_is_resized_and_repeated_to_three_channels():
    s = fashion_mnist("test", 48, limit=16)
    assert s.images.shape == (16, 1, 48, 48) and s.images.dtype == np.uint8
    assert s.labels[:4].tolist() == [9, 2, 1, 1]  # the first t10k labels
    x, y = s.batch([0, 3])
    assert tuple(x.shape) == (2, 3, 48, 48) and float(x.max()) <= 1.0
    assert bool((x[:, 0] == x[:, 2]).all())
    q = s.int8_inputs([0, 3])
    assert q.shape == (2, 48, 48, 3) and q.dtype == np.int8
    assert np.array_equal(q.astype(np.int16) + 128, np.rint(x.numpy() * 255).transpose(0, 2, 3, 1))
    assert np.array_equal(fashion_mnist("test", 48, limit=16).images, s.images)  # deterministic


def test_image_folder_reads_class_directories(tmp_path):
    rng = np.random.default_rng(0)
    for cls, size in (("cat", (40, 30)), ("dog", (25, 50))):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "train" / cls / f"{i}.png")
    (tmp_path / "train" / "notes.txt").write_text("not an image")
    s = load_dataset(str(tmp_path), "train", 16)
    assert s.classes == ("cat", "dog") and s.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert s.images.shape == (6, 3, 16, 16)
    assert np.array_equal(image_folder(tmp_path / "train", 16).images, s.images)
    x, _ = s.batch(range(6))
    assert tuple(x.shape) == (6, 3, 16, 16)


def test_image_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match="not a directory"):
        image_folder(tmp_path / "nope", 16)
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        image_folder(tmp_path / "empty", 16)
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read image"):
        image_folder(tmp_path / "broken", 16)
