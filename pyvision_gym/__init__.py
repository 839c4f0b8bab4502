"""pyvision-gym: agentic vision RL (PyVision-RL) as Gymnasium environments.

Importing the package registers the environments::

    import gymnasium as gym, pyvision_gym
    env = gym.make("PyVisionVideo-v0")
"""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

__version__ = "0.1.0"

ENTRY_POINT = "pyvision_gym.env:PyVisionEnv"
# Per-family ids: PyVisionImage-<Family>-v0 / PyVisionVideo-<Family>-v0 (CamelCase family names).
IMAGE_FAMILY_NAMES = (
    "visual_search_attribute", "visual_search_relative_position", "counting", "chart_reading",
    "text_reading", "measurement", "spatial_relation", "real_photo_search",
)
VIDEO_FAMILY_NAMES = (
    "event_onset", "event_counting", "state_at_time", "appearance_order", "motion_direction",
    "object_counting_over_time", "spatial_scene",
)


def family_env_id(modality: str, family: str) -> str:
    camel = "".join(part.capitalize() for part in family.split("_"))
    return f"PyVision{modality.capitalize()}-{camel}-v0"


def _register_all() -> None:
    specs = {
        "PyVisionImage-v0": {"modality": "image"},
        "PyVisionVideo-v0": {"modality": "video"},
    }
    for name in IMAGE_FAMILY_NAMES:
        specs[family_env_id("image", name)] = {"modality": "image", "families": name}
    for name in VIDEO_FAMILY_NAMES:
        specs[family_env_id("video", name)] = {"modality": "video", "families": name}
    for env_id, kwargs in specs.items():
        if env_id not in registry:
            register(id=env_id, entry_point=ENTRY_POINT, kwargs=kwargs)


_register_all()

from .runtime import ExecResult, Runtime, RuntimeConfig  # noqa: E402

__all__ = ["Runtime", "RuntimeConfig", "ExecResult", "family_env_id", "__version__"]
