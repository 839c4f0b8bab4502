"""One rollout as the learner sees it: token ids, the loss mask, the images, the reward."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


class TrajectoryError(ValueError):
    """A trajectory whose tokens and images disagree (it must never reach the learner)."""


@dataclass
class Trajectory:
    """A whole multi-turn episode, token-in-token-out.

    ``ids`` = prompt + a1 + o1 + a2 + ... ; ``loss_mask`` is 1 exactly on the tokens the policy
    generated (the ``a_i``), 0 on the prompt and on observations. ``sampler_logp`` holds the
    sampling engine's log-prob of each generated token (0 elsewhere). ``images`` are the
    images in the order their placeholders appear in ``ids`` (uint8 H x W x 3), with the
    model's patch grid per image in ``image_grid_thw`` (n x 3), so the learner rebuilds the
    pixel inputs itself. ``reward`` / ``reward_terms`` are the environment's.
    """

    ids: np.ndarray  # int64 [T]
    loss_mask: np.ndarray  # uint8 [T]
    sampler_logp: np.ndarray  # float32 [T]
    images: list[np.ndarray] = field(default_factory=list)
    image_grid_thw: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    reward: float = 0.0
    reward_terms: dict[str, float] = field(default_factory=dict)
    end_reason: str | None = None
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    images_shown: int = 0  # images the environment returned in observations
    accuracy: float = 0.0
    correct: bool = False
    group_id: int = -1  # trajectories of one prompt share it (GRPO group)
    task_id: str = ""
    prompt_len: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(len(self.ids))

    @property
    def response_tokens(self) -> int:
        """Generated tokens (the ones in the loss)."""
        return int(self.loss_mask.sum())

    def validate(self, image_token_id: int, merge_size: int = 2) -> None:
        """Raise :class:`TrajectoryError` unless arrays agree and every image's placeholder
        count equals its patch grid (t * h * w / merge_size**2)."""
        n = len(self.ids)
        if len(self.loss_mask) != n or len(self.sampler_logp) != n:
            raise TrajectoryError(f"{self.task_id}: ids {n}, mask {len(self.loss_mask)}, logp {len(self.sampler_logp)}")
        if len(self.images) != len(self.image_grid_thw):
            raise TrajectoryError(f"{self.task_id}: {len(self.images)} images but {len(self.image_grid_thw)} grids")
        want = int(sum(int(t) * int(h) * int(w) for t, h, w in self.image_grid_thw) // (merge_size**2))
        got = int((self.ids == image_token_id).sum())
        if got != want:
            raise TrajectoryError(f"{self.task_id}: {got} image placeholder tokens for images needing {want}")
