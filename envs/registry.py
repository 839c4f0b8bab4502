"""Every task family, by name, as a ``"module:Class"`` string loaded on demand.

This one table feeds the gym ids (``PyVisionImage-<Family>-v0``), ``pyvision-gym families``,
the suites and the tests. Adding a family is one file in ``envs/image/`` or ``envs/video/``
plus one line here. The order is part of the frozen suites (they draw families in this
order): append, never reorder.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from pyvision_gym.plugins import load

if TYPE_CHECKING:
    from .base import TaskFamily

_IMAGE = "pyvision_gym.envs.image"
_VIDEO = "pyvision_gym.envs.video"

FAMILIES: dict[str, dict[str, str]] = {
    "image": {
        "visual_search_attribute": f"{_IMAGE}.visual_search_attribute:VisualSearchAttribute",
        "visual_search_relative_position": f"{_IMAGE}.visual_search_relative_position:VisualSearchRelativePosition",
        "counting": f"{_IMAGE}.counting:Counting",
        "chart_reading": f"{_IMAGE}.chart_reading:ChartReading",
        "text_reading": f"{_IMAGE}.text_reading:TextReading",
        "measurement": f"{_IMAGE}.measurement:Measurement",
        "spatial_relation": f"{_IMAGE}.spatial_relation:SpatialRelation",
        "real_photo_search": f"{_IMAGE}.real_photo_search:RealPhotoSearch",
    },
    "video": {
        "event_onset": f"{_VIDEO}.event_onset:EventOnset",
        "event_counting": f"{_VIDEO}.event_counting:EventCounting",
        "state_at_time": f"{_VIDEO}.state_at_time:StateAtTime",
        "appearance_order": f"{_VIDEO}.appearance_order:AppearanceOrder",
        "motion_direction": f"{_VIDEO}.motion_direction:MotionDirection",
        "object_counting_over_time": f"{_VIDEO}.object_counting_over_time:ObjectCountingOverTime",
        "spatial_scene": f"{_VIDEO}.spatial_scene:SpatialScene",
    },
}
MODALITIES: tuple[str, ...] = tuple(FAMILIES)


def family_names(modality: str | None = None) -> list[str]:
    """Registered family names (one modality, or all: image first, then video)."""
    if modality is not None and modality not in FAMILIES:
        raise KeyError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
    mods = [modality] if modality else list(FAMILIES)
    return [name for m in mods for name in FAMILIES[m]]


def family_entry_point(name: str) -> str:
    for table in FAMILIES.values():
        if name in table:
            return table[name]
    raise KeyError(f"unknown task family {name!r}; known: {', '.join(family_names())}")


@cache
def get_family(name: str) -> TaskFamily:
    """The (shared, stateless) instance of family ``name``."""
    return load(family_entry_point(name))()


def families_for(modality: str) -> dict[str, TaskFamily]:
    """The families of one modality ("image" or "video"), in registry order."""
    return {name: get_family(name) for name in family_names(modality)}


def all_families() -> dict[str, TaskFamily]:
    """Every registered family by name (image families first, then video)."""
    return {name: get_family(name) for name in family_names()}


def family_env_id(modality: str, family: str) -> str:
    """The gym id of one family's environment, e.g. ``PyVisionImage-ChartReading-v0``."""
    camel = "".join(part.capitalize() for part in family.split("_"))
    return f"PyVision{modality.capitalize()}-{camel}-v0"
