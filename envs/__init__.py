"""Task families: procedurally generated image and video tasks (imported as ``pyvision_gym.envs``)."""

from __future__ import annotations

from .base import Task, TaskFamily

__all__ = ["Task", "TaskFamily", "all_families", "get_family", "families_for"]


def all_families() -> dict[str, TaskFamily]:
    """Every registered family by name (image families first, then video)."""
    from .image_tasks import IMAGE_FAMILIES
    from .video_tasks import VIDEO_FAMILIES

    return {**IMAGE_FAMILIES, **VIDEO_FAMILIES}


def families_for(modality: str) -> dict[str, TaskFamily]:
    """The families of one modality ("image" or "video")."""
    return {n: f for n, f in all_families().items() if f.modality == modality}


def get_family(name: str) -> TaskFamily:
    fams = all_families()
    if name not in fams:
        raise KeyError(f"unknown task family {name!r}; known: {', '.join(sorted(fams))}")
    return fams[name]
