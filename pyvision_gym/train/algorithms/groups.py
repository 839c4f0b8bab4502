"""Per-group reward statistics, broadcast back to the group's members.

A group is the n rollouts of one prompt (they share a group id). Every estimator and the
batch selection (``train/batching.py``) take their statistics from here, so the std that
ranks groups is the same std that GRPO divides by.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class GroupStats(NamedTuple):
    """One entry per sequence: its group's mean, unbiased std and size."""

    mean: np.ndarray  # float64 [B]
    std: np.ndarray  # float64 [B]; 0 for a group of one (the spread of a single reward)
    size: np.ndarray  # int64 [B]


def group_stats(rewards: np.ndarray, group_ids: np.ndarray) -> GroupStats:
    """Mean, unbiased std (ddof=1, as ``torch.std``) and size of each sequence's group."""
    rewards = np.asarray(rewards, dtype=np.float64)
    group_ids = np.asarray(group_ids)
    if rewards.shape != group_ids.shape or rewards.ndim != 1:
        raise ValueError(f"rewards {rewards.shape} and group_ids {group_ids.shape} must be equal 1-D shapes")
    _, index, size = np.unique(group_ids, return_inverse=True, return_counts=True)
    index = index.reshape(-1)
    total = np.bincount(index, weights=rewards, minlength=len(size))
    mean = total / size
    dev = rewards - mean[index]
    squares = np.bincount(index, weights=dev * dev, minlength=len(size))
    std = np.sqrt(squares / np.maximum(size - 1, 1))
    return GroupStats(mean[index], std[index], size[index].astype(np.int64))
