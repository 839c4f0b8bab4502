"""Trajectories -> one right-padded model batch.

The pixels of every image are rebuilt here, from ``Trajectory.images`` through the codec, in
the order their placeholders appear (trajectory by trajectory), so the learner always sees the
images the sampler saw. Qwen2.5-VL's 3-D (mRoPE) positions are left to the model: the batch
carries ``image_grid_thw`` and ``mm_token_type_ids`` (1 on image placeholders), from which the
model computes them per sequence, ignoring the right padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .trajectory import Trajectory, TrajectoryError

PER_TOKEN_KEYS = ("old_logp", "ref_logp")  # optional per-token arrays a trajectory's info may carry


@dataclass
class Batch:
    """Model inputs plus per-token training arrays, all [B, T] (right-padded)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    loss_mask: torch.Tensor  # float32, 1 on generated tokens
    mm_token_type_ids: torch.Tensor
    advantages: torch.Tensor  # float32, the trajectory's advantage on every position
    sampler_logp: torch.Tensor
    vision: dict[str, torch.Tensor] = field(default_factory=dict)  # pixel_values, image_grid_thw, ...
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # old_logp / ref_logp when present
    lengths: list[int] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        """Generated (loss) tokens in the batch."""
        return int(self.loss_mask.sum().item())

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments of the model's forward."""
        return {
            "input_ids": self.input_ids,
            "attention_mask": self.attention_mask,
            "mm_token_type_ids": self.mm_token_type_ids,
            **self.vision,
        }


def _pad(rows: Sequence[np.ndarray], length: int, value: float, dtype: torch.dtype) -> torch.Tensor:
    out = torch.full((len(rows), length), value, dtype=dtype)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.as_tensor(np.asarray(row), dtype=dtype)
    return out


def _advantage(traj: Trajectory) -> float:
    return float(traj.info.get("advantage", 0.0))


def vision_batch(trajs: Sequence[Trajectory], codec: Any) -> dict[str, torch.Tensor]:
    """The codec's vision inputs for all images of ``trajs`` in order; the grids must match
    the ones the trajectories were encoded with."""
    images = [im for t in trajs for im in t.images]
    if not images:
        return {}
    vision = {k: v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)) for k, v in codec.vision_inputs(images).items()}
    want = np.concatenate([np.asarray(t.image_grid_thw, np.int64).reshape(-1, 3) for t in trajs])
    got = vision.get("image_grid_thw")
    if got is None or not np.array_equal(got.cpu().numpy().reshape(-1, 3), want):
        grids = None if got is None else got.tolist()
        raise TrajectoryError(f"the codec's image grids {grids} differ from the trajectories' {want.tolist()}")
    return vision


def collate(trajs: Sequence[Trajectory], codec: Any, device: torch.device | str = "cpu") -> Batch:
    """Right-pad ``trajs`` into a :class:`Batch` on ``device`` (each trajectory validated)."""
    if not trajs:
        raise ValueError("collate needs at least one trajectory")
    for t in trajs:
        t.validate(codec.image_token_id, codec.merge_size)
    length = max(t.length for t in trajs)
    ids = _pad([t.ids for t in trajs], length, codec.pad_token_id, torch.long)
    attention = _pad([np.ones(t.length, np.int64) for t in trajs], length, 0, torch.long)
    extra = {
        key: _pad([t.info[key] for t in trajs], length, 0.0, torch.float32).to(device)
        for key in PER_TOKEN_KEYS
        if all(key in t.info for t in trajs)
    }
    return Batch(
        input_ids=ids.to(device),
        attention_mask=attention.to(device),
        loss_mask=_pad([t.loss_mask for t in trajs], length, 0.0, torch.float32).to(device),
        mm_token_type_ids=((ids == codec.image_token_id) & (attention > 0)).to(torch.int32).to(device),
        advantages=_pad([np.full(t.length, _advantage(t), np.float32) for t in trajs], length, 0.0, torch.float32).to(device),
        sampler_logp=_pad([t.sampler_logp for t in trajs], length, 0.0, torch.float32).to(device),
        vision={k: v.to(device) for k, v in vision_batch(trajs, codec).items()},
        extra=extra,
        lengths=[t.length for t in trajs],
    )
