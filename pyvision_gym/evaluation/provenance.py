"""Provenance: the versions and source state behind a result, collected in one place.

Run summaries store :func:`versions` as ``"versions"``; frozen suites store it, with the
time of freezing, as ``"frozen_with"``.
"""

from __future__ import annotations

import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import av
import gymnasium
import numpy as np
import PIL

from pyvision_gym import __version__

__all__ = ["git_state", "now", "versions"]

# The folder above the package: a source checkout when it holds .git (an editable install).
_CHECKOUT = Path(__file__).resolve().parents[2]


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(_CHECKOUT), *args], capture_output=True, text=True, timeout=10)


def git_state() -> dict[str, Any]:
    """``git_commit`` and ``git_dirty`` of the checkout the package runs from (None when installed)."""
    out: dict[str, Any] = {"git_commit": None, "git_dirty": None}
    if not (_CHECKOUT / ".git").exists():
        return out
    try:
        head = _git("rev-parse", "HEAD")
        if head.returncode == 0:
            out["git_commit"] = head.stdout.strip()
            status = _git("status", "--porcelain", "--untracked-files=no")
            out["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def versions() -> dict[str, Any]:
    """Package, interpreter and library versions (those that shape tasks and media), and the
    git commit when running from a checkout."""
    return {
        "pyvision_gym": __version__, "python": platform.python_version(), "gymnasium": gymnasium.__version__,
        "numpy": np.__version__, "pillow": PIL.__version__, "av": av.__version__, **git_state(),
    }
