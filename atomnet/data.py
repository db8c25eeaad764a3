"""Datasets for AtomNet: Fashion-MNIST from Debian's IDX files, and ImageFolder directories.

Both give uint8 images at the model's resolution; :meth:`batch` turns a list of indices into
``(x, y)`` with ``x`` float32 ``(B, 3, R, R)`` = pixels / 255 (grey images repeated to 3
channels) and ``y`` int64 labels. The int8 model takes ``pixel - 128`` with scale 1/255 and
zero point -128, which is exactly the same input (see ``atomnet.quantize``).

Preparation is deterministic: the same files and resolution give the same bytes.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from atomsim.core.errors import ConfigError

FASHION_MNIST_DIR = Path(os.environ.get("ATOMNET_FASHION_MNIST",
                                        "/usr/share/datasets/fashion-mnist"))
FASHION_MNIST_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal",
                         "shirt", "sneaker", "bag", "ankle boot")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp")


class DatasetError(ConfigError):
    """A dataset that is missing, unreadable or malformed."""

    status = "bad-dataset"


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) as a numpy array (big-endian header)."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path}: cannot read IDX file: {exc}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    start = 4 + 4 * ndim
    if len(raw) - start != int(np.prod(dims)):
        raise DatasetError(f"{path}: IDX header says {dims}, file has {len(raw) - start} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def resize_u8(images: np.ndarray, resolution: int) -> np.ndarray:
    """Bilinear resize of uint8 (N, C, H, W) images to R x R, rounded back to uint8."""
    if images.shape[2:] == (resolution, resolution):
        return images
    x = torch.from_numpy(images.astype(np.float32))
    y = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                      antialias=resolution < images.shape[2])
    return y.round().clamp(0, 255).to(torch.uint8).numpy()


@dataclass(frozen=True)
class ImageSet:
    """Images in memory: uint8 (N, C, R, R) with C 1 (grey) or 3, labels int64 (N,)."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def resolution(self) -> int:
        """Image side R."""
        return int(self.images.shape[-1])

    def batch(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        """Float (B, 3, R, R) in [0, 1] and labels for the given indices."""
        idx = np.asarray(index, dtype=np.int64)
        x = torch.from_numpy(self.images[idx]).float().div_(255.0)
        return x.expand(-1, 3, -1, -1).contiguous(), torch.from_numpy(self.labels[idx])

    def int8_inputs(self, index) -> np.ndarray:
        """int8 NHWC (B, R, R, 3) = pixel - 128: the quantized model's input."""
        idx = np.asarray(index, dtype=np.int64)
        u8 = np.broadcast_to(self.images[idx], (len(idx), 3) + self.images.shape[2:])
        return (u8.astype(np.int16) - 128).astype(np.int8).transpose(0, 2, 3, 1).copy()

    def subset(self, count: int) -> ImageSet:
        """The first ``count`` images (deterministic)."""
        return ImageSet(self.images[:count], self.labels[:count], self.classes)


def fashion_mnist(split: str, resolution: int, limit: int | None = None,
                  root: Path | None = None) -> ImageSet:
    """Fashion-MNIST ``train`` (60000) or ``test`` (10000), resized, first ``limit`` images."""
    root = Path(root) if root is not None else FASHION_MNIST_DIR
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DatasetError(f"Fashion-MNIST split must be 'train' or 'test', got {split!r}")

    def find(stem: str) -> Path:
        for name in (f"{stem}.gz", stem):
            if (root / name).is_file():
                return root / name
        raise DatasetError(f"Fashion-MNIST file {stem}(.gz) not found under {root} "
                           "(install the Debian package dataset-fashion-mnist)")

    images = read_idx(find(f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(find(f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(f"{root}: images {images.shape} and labels {labels.shape} disagree")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageSet(resize_u8(images[:, None], resolution), labels.astype(np.int64),
                    FASHION_MNIST_CLASSES)


def image_folder(root: str | Path, resolution: int, limit: int | None = None) -> ImageSet:
    """An ImageFolder-style directory (one sub-directory per class) loaded into memory.

    Images are converted to RGB, resized so the shorter side is R, and centre-cropped to
    R x R (Pillow, bilinear). Classes are the sorted sub-directory names.
    """
    root = Path(root)
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow ships with matplotlib
        raise DatasetError("reading image folders needs Pillow (pip install pillow)") from exc
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [(f, label) for label, c in enumerate(classes)
             for f in sorted((root / c).rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DatasetError(f"{root}: no images in class sub-directories "
                           f"({', '.join(IMAGE_SUFFIXES)})")
    files = files[:limit] if limit is not None else files
    images = np.empty((len(files), 3, resolution, resolution), dtype=np.uint8)
    for i, (f, _) in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                scale = resolution / min(im.size)
                w, h = max(resolution, round(im.width * scale)), max(resolution,
                                                                     round(im.height * scale))
                im = im.resize((w, h), Image.Resampling.BILINEAR)
                left, top = (w - resolution) // 2, (h - resolution) // 2
                im = im.crop((left, top, left + resolution, top + resolution))
                images[i] = np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
        except OSError as exc:
            raise DatasetError(f"{f}: cannot read image: {exc}") from exc
    labels = np.array([label for _, label in files], dtype=np.int64)
    return ImageSet(images, labels, tuple(classes))


def load_dataset(name: str, split: str, resolution: int, limit: int | None = None) -> ImageSet:
    """``fashion-mnist`` or a directory path (ImageFolder; ``split`` names a sub-directory
    ``train`` / ``val`` / ``test`` when one exists)."""
    if name == "fashion-mnist":
        return fashion_mnist(split, resolution, limit)
    root = Path(name)
    for sub in ((split,) if split != "test" else ("test", "val")):
        if (root / sub).is_dir():
            return image_folder(root / sub, resolution, limit)
    return image_folder(root, resolution, limit)
