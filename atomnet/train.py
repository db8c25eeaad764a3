"""Training with the paper's recipe: SGD momentum 0.9, lr 0.4 at batch 1024 (scaled linearly
with the batch), weight decay 3e-4, cosine decay per step; optional label smoothing.

Deterministic: the model is initialised from ``seed``, epoch ``e`` visits the images in the
order of ``randperm`` seeded with ``(seed, e)``, and ``torch.use_deterministic_algorithms`` is
on, so the same seed, data and device give the same weights. A checkpoint (model, optimizer,
epoch, step) is written atomically after every epoch; ``resume=True`` continues from it and
ends with the weights an uninterrupted run would have.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from atomnet.config import StageConfig
from atomnet.data import ImageSet
from atomnet.model import AtomNet
from atomsim.core.errors import AtomSimError, ConfigError

CHECKPOINT = "last.pt"


class CheckpointError(AtomSimError):
    """A checkpoint that cannot be read or belongs to another model / recipe."""

    exit_code = 2
    status = "bad-checkpoint"


@dataclass(frozen=True)
class TrainConfig:
    """The recipe. Defaults are the paper's ImageNet recipe except epochs and batch."""

    epochs: int = 10
    batch_size: int = 128
    base_lr: float = 0.4  # at batch 1024; the lr used is base_lr * batch_size / 1024
    momentum: float = 0.9
    weight_decay: float = 3e-4
    label_smoothing: float = 0.0
    seed: int = 0
    device: str = "auto"  # auto: CUDA when present, else CPU

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError(f"epochs and batch_size must be >= 1, got {self.epochs}, "
                              f"{self.batch_size}")
        if not (self.base_lr > 0 and 0 <= self.momentum < 1 and self.weight_decay >= 0
                and 0 <= self.label_smoothing < 1):
            raise ConfigError(f"bad recipe values: {self}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")

    @property
    def lr(self) -> float:
        """Initial learning rate after linear batch scaling."""
        return self.base_lr * self.batch_size / 1024


@dataclass
class TrainResult:
    """What a run produced: the trained model (on the CPU) and one record per epoch."""

    model: AtomNet
    history: list[dict] = field(default_factory=list)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device cuda asked for, but torch sees no CUDA device")
    return torch.device(name)


def deterministic(seed: int) -> None:
    """Seed torch and force deterministic kernels (CUDA needs a fixed cuBLAS workspace)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def build_model(config: StageConfig, seed: int = 0) -> AtomNet:
    """The model of ``config`` with weights initialised from ``seed``."""
    deterministic(seed)
    return AtomNet(config)


def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def _lr_at(cfg: TrainConfig, step: int, total: int) -> float:
    return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))  # cosine to 0


def _atomic_save(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint intact


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint written by :func:`train`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc}") from exc


def model_from_checkpoint(path: Path) -> AtomNet:
    """The model saved in a checkpoint (its stage config is stored with it)."""
    ckpt = load_checkpoint(path)
    try:
        model = AtomNet(StageConfig.from_dict(ckpt["stage_config"]))
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: not an AtomNet checkpoint: {exc}") from exc
    return model.eval()


def init_from(model: AtomNet, path: Path) -> list[str]:
    """Fine-tuning: copy matching weights from a checkpoint; returns the names not copied
    (a head with another class count, for example)."""
    source = load_checkpoint(path).get("model", {})
    own = model.state_dict()
    skipped = [k for k in own if k not in source or source[k].shape != own[k].shape]
    model.load_state_dict({k: v for k, v in source.items()
                           if k in own and v.shape == own[k].shape}, strict=False)
    return skipped


@torch.no_grad()
def evaluate(model: torch.nn.Module, data: ImageSet, batch_size: int = 256,
             device: str = "cpu") -> float:
    """Top-1 accuracy (0..1) of ``model`` on ``data``."""
    model.eval()
    dev = resolve_device(device)
    model.to(dev)
    correct = 0
    for start in range(0, len(data), batch_size):
        x, y = data.batch(range(start, min(start + batch_size, len(data))))
        correct += int((model(x.to(dev)).argmax(1).cpu() == y).sum())
    model.cpu()
    return correct / max(1, len(data))


def _progress(enabled: bool):
    if not enabled:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[status]}"), transient=True)


def train(config: StageConfig, data: ImageSet, cfg: TrainConfig, *,
          checkpoint_dir: Path | None = None, resume: bool = False,
          stop_after_epochs: int | None = None, init: Path | None = None,
          progress: bool = False) -> TrainResult:
    """Train a model of ``config`` on ``data``; see the module docstring.

    ``stop_after_epochs`` ends the run early (as a kill after that epoch would), leaving the
    checkpoint for ``resume``. ``init`` copies weights from another checkpoint (fine-tuning).
    """
    if len(data) < cfg.batch_size:
        raise ConfigError(f"the training set has {len(data)} images, fewer than one batch "
                          f"({cfg.batch_size})")
    if data.resolution != config.input_resolution:
        raise ConfigError(f"images are {data.resolution} px, the model takes "
                          f"{config.input_resolution}")
    device = resolve_device(cfg.device)
    model = build_model(config, cfg.seed)
    if init is not None:
        init_from(model, Path(init))
    model.to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    steps_per_epoch = len(data) // cfg.batch_size  # the last partial batch is dropped
    total = cfg.epochs * steps_per_epoch
    start_epoch, step, history = 0, 0, []
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT if checkpoint_dir is not None else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        if ckpt.get("stage_config") != config.to_dict() or ckpt.get("train_config") != asdict(
                cfg) or ckpt.get("num_images") != len(data):
            raise CheckpointError(f"{ckpt_path}: written for another config, recipe or "
                                  "dataset; use another --checkpoint-dir or drop --resume")
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        start_epoch, step, history = ckpt["epoch"], ckpt["step"], ckpt["history"]
    end_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, stop_after_epochs)
    bar = _progress(progress)
    if bar is not None:
        bar.start()
    try:
        for epoch in range(start_epoch, end_epoch):
            model.train()
            order = _epoch_order(len(data), cfg.seed, epoch)
            task = bar.add_task(f"epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch,
                                status="") if bar is not None else None
            t0, loss_sum, correct = time.perf_counter(), 0.0, 0
            for i in range(steps_per_epoch):
                idx = order[i * cfg.batch_size:(i + 1) * cfg.batch_size]
                x, y = data.batch(idx.numpy())
                x, y = x.to(device), y.to(device)
                for group in opt.param_groups:
                    group["lr"] = _lr_at(cfg, step, total)
                logits = model(x)  # (B, num_classes)
                loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                loss_sum += float(loss.detach())
                correct += int((logits.argmax(1) == y).sum())
                if bar is not None:
                    bar.update(task, advance=1, status=f"loss {loss_sum / (i + 1):.3f}")
            seconds = time.perf_counter() - t0
            seen = steps_per_epoch * cfg.batch_size
            history.append({"epoch": epoch + 1, "loss": loss_sum / steps_per_epoch,
                            "train_acc": correct / seen, "lr_end": _lr_at(cfg, step, total),
                            "seconds": seconds, "images_per_s": seen / seconds})
            if bar is not None:
                bar.remove_task(task)
                bar.console.print(f"epoch {epoch + 1}/{cfg.epochs}: loss "
                                  f"{history[-1]['loss']:.4f}, train acc "
                                  f"{100 * history[-1]['train_acc']:.2f} %, "
                                  f"{history[-1]['images_per_s']:.0f} images/s")
            if ckpt_path is not None:
                ckpt_path.parent.mkdir(parents=True, exist_ok=True)
                _atomic_save({"model": {k: v.cpu() for k, v in model.state_dict().items()},
                              "optimizer": opt.state_dict(), "epoch": epoch + 1, "step": step,
                              "history": history, "stage_config": config.to_dict(),
                              "train_config": asdict(cfg), "num_images": len(data)},
                             ckpt_path)
    finally:
        if bar is not None:
            bar.stop()
    return TrainResult(model.cpu().eval(), history)
