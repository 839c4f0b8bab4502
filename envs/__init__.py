"""Task families: procedurally generated image and video tasks (imported as ``pyvision_gym.envs``).

One file per family in ``image/`` and ``video/``; the shared base in ``base.py``, option and
colour helpers in ``common.py``, expert programs as Python files in ``<modality>/experts/``
and the table of every family in ``registry.py``.
"""

from __future__ import annotations

if not __name__.startswith("pyvision_gym."):  # one module name per file
    raise ImportError(f"import this package as pyvision_gym.envs, not {__name__!r}")

from .base import Task, TaskFamily  # noqa: E402
from .registry import all_families, families_for, family_names, get_family  # noqa: E402

__all__ = ["Task", "TaskFamily", "all_families", "families_for", "family_names", "get_family"]
