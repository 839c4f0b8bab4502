"""The suite configuration an evaluation worker builds its environments from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyvision_gym.env import PyVisionEnv
from pyvision_gym.runtime_config import RuntimeConfig

__all__ = ["SuiteConfig"]


@dataclass(frozen=True)
class SuiteConfig:
    """How every environment of a suite is made (picklable: it travels to worker processes and
    Ray actors). Build it from a loaded suite with :meth:`Suite.config
    <pyvision_gym.evaluation.suites.Suite.config>`."""

    modality: str
    """``"image"`` or ``"video"``."""
    cache_dir: str
    """Folder for generated media (absolute)."""
    split: str = "test"
    """Seed split of generated tasks: ``reset(seed=s)`` uses task seed ``SPLIT_OFFSETS[split] + s``."""
    families: tuple[str, ...] = ()
    """Task families of a generated suite (empty for a dataset suite)."""
    dataset: str | None = None
    """Absolute path of a dataset suite's PyVision-RL dataset file (None for generated suites)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """``PyVisionEnv`` keyword arguments every episode runs with (the suite's frozen settings)."""

    def make_env(self, env_overrides: dict[str, Any] | None = None, runtime_overrides: dict[str, Any] | None = None) -> PyVisionEnv:
        """A new environment for this suite; an agent's ``env_overrides`` replace suite settings,
        its ``runtime_overrides`` make the ``runtime_config``."""
        kw = dict(self.env_kwargs)
        kw.update(env_overrides or {})
        if runtime_overrides:
            kw["runtime_config"] = RuntimeConfig(**runtime_overrides)
        source: dict[str, Any] = {"dataset": self.dataset} if self.dataset else {"families": list(self.families)}
        return PyVisionEnv(modality=self.modality, split=self.split, cache_dir=self.cache_dir, **source, **kw)
