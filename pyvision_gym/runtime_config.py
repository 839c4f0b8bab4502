"""The runtime's settings and results: ``RuntimeConfig``, ``ExecResult`` and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class RuntimeConfig:
    """Limits and isolation settings of a runtime (all per episode process unless noted)."""

    timeout: float = 30.0  # wall-clock seconds per call; the worker is killed and replaced after
    max_output_chars: int = 10_000  # stdout kept per call; the rest is counted and dropped
    max_error_chars: int = 4_000
    memory_mb: int = 4_096  # address space beyond what the preloaded libraries already map
    cpu_seconds: int = 600  # CPU time of one episode process
    max_file_mb: int = 64  # largest file the code may write in its scratch directory
    max_open_files: int = 128
    max_processes: int = 256  # RLIMIT_NPROC; seccomp already refuses fork / exec
    scratch_mb: int = 512  # size of the private tmpfs (bubblewrap only)
    max_images_per_call: int = 16
    max_display_pixels: int = 4096 * 4096  # larger shown images are downscaled, with a note
    isolation: Literal["auto", "strict", "none"] = "auto"
    seccomp: bool = True
    preload: tuple[str, ...] = ("numpy", "PIL.Image", "PIL.ImageDraw", "matplotlib.pyplot", "RestrictedPython", "decord", "scipy.ndimage", "pyseccomp")
    start_timeout: float = 120.0
    # How input images reach the episode process: a sealed memfd it maps ("memfd"; falls back to
    # "socket" where memfd_create is missing) or message blobs over the socket ("socket").
    input_transport: Literal["memfd", "socket"] = "memfd"


def resolve_runtime_config(config: RuntimeConfig | None, **shortcuts: Any) -> RuntimeConfig:
    """Merge ``runtime_config`` with the environment's shortcut keywords, one source per setting.

    ``shortcuts`` maps ``RuntimeConfig`` field names to values given as separate keywords
    (``gym.make(..., code_timeout=5)`` gives ``timeout=5``); ``None`` means not given. A shortcut
    fills its field when ``config`` left that field at its default; when both set it to
    different values the call is refused instead of one silently winning.
    """
    base = config if config is not None else RuntimeConfig()
    defaults = RuntimeConfig()
    changes: dict[str, Any] = {}
    for name, value in shortcuts.items():
        if value is None:
            continue
        current, default = getattr(base, name), getattr(defaults, name)
        if config is not None and current != default and current != value:
            raise ValueError(
                f"conflicting settings: runtime_config.{name}={current!r} but the keyword for "
                f"the same setting gives {value!r}; set it in one place"
            )
        changes[name] = type(default)(value)
    return replace(base, **changes) if changes else base


@dataclass
class ExecResult:
    """What one call produced."""

    output: str = ""
    error: str | None = None
    error_type: str | None = None  # exception name, or "Timeout" / "WorkerDied"
    images: list[np.ndarray] = field(default_factory=list)
    state_lost: bool = False  # the worker was replaced: earlier variables are gone
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def image_sizes(self) -> list[tuple[int, int]]:
        """(width, height) of each image shown, in order."""
        return [(int(a.shape[1]), int(a.shape[0])) for a in self.images]

    def text(self) -> str:
        """Output and error together, as an agent would read them."""
        parts = [p for p in (self.output.rstrip("\n"), self.error) if p]
        return "\n".join(parts)


class RuntimeInputError(ValueError):
    """An input given to ``reset`` cannot be used (bad name, unreadable or corrupt video, ...)."""


class RuntimeStartError(RuntimeError):
    """The worker process could not be started."""
