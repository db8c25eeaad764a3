"""Where AtomSim finds its sources and keeps what it builds."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FIRMWARE_DIR = REPO_ROOT / "firmware"
PLATFORMS_DIR = REPO_ROOT / "renode_platforms"


def build_dir() -> Path:
    """The build cache: ``$ATOMSIM_BUILD_DIR`` or ``<repo>/build``; created on demand."""
    path = Path(os.environ.get("ATOMSIM_BUILD_DIR", REPO_ROOT / "build"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path:
    """``../shared/data`` beside the checkout (real data made by others; never copied in)."""
    return REPO_ROOT.parent / "shared" / "data"
