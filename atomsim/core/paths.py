"""Where AtomSim finds its sources and keeps what it builds."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from atomsim.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"
PLATFORMS_DIR = REPO_ROOT / "renode_platforms"


def build_dir() -> Path:
    """The build cache: ``$ATOMSIM_BUILD_DIR`` or ``<repo>/build``; created on demand.

    A value naming a file, or a directory that cannot be created or written, is a ConfigError
    that names the variable.
    """
    value = os.environ.get("ATOMSIM_BUILD_DIR")
    if value is None:
        return writable_dir(REPO_ROOT / "build", "the build directory")
    if not value.strip():
        raise ConfigError("ATOMSIM_BUILD_DIR is set but empty; unset it or name a directory")
    return writable_dir(Path(value), f"ATOMSIM_BUILD_DIR={value}")


def writable_dir(path: Path, what: str) -> Path:
    """``path`` as a directory we can write in, created if needed; else a ConfigError.

    ``what`` names the setting in the message (``--out reports/``, ``ATOMSIM_BUILD_DIR=...``).
    Writability is tried with a real temporary file: permission bits say nothing for root or
    on a read-only mount.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what}: {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{what}: cannot create directory {path}: "
                          f"{exc.strerror or exc}") from None
    try:
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"{what}: directory {path} is not writable: "
                          f"{exc.strerror or exc}") from None
    return path


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (real data made by others; never copied in)."""
    return REPO_ROOT.parent / "shared" / "data"


def may_write(path: Path) -> bool:
    """Whether ``path`` may be written: its permission bits allow it (honoured even for root,
    whom ``os.access`` alone lets write a read-only file) and the OS agrees; False when it
    cannot be read at all."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(path, os.W_OK)
