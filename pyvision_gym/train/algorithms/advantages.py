"""Outcome advantage estimators: one scalar per trajectory from the rewards of its group.

Each is ``fn(rewards[B], group_ids[B], cfg) -> advantages[B]``. The batcher calls it once per
generation batch with every rollout it drew, *before* filtering, so a group's statistics
always cover all n of its members (PyVision-RL computes advantages before filtering too).
The learner broadcasts each advantage over the trajectory's generated tokens.
"""

from __future__ import annotations

import numpy as np

from pyvision_gym.train.algorithms.groups import group_stats
from pyvision_gym.train.algorithms.registry import register_advantage
from pyvision_gym.train.config import AlgorithmConfig

EPS = 1e-6


@register_advantage("grpo")
def grpo(rewards: np.ndarray, group_ids: np.ndarray, cfg: AlgorithmConfig) -> np.ndarray:
    """GRPO (Shao et al. 2024, arXiv 2402.03300): the reward minus its group's mean.

    With ``cfg.norm_by_std`` the result is divided by the group's unbiased std + 1e-6; without
    it (the paper's setting, as in Dr. GRPO) it is just centred. A group of one has no baseline:
    like verl we take mean 0 and std 1 there, so its advantage is its reward.
    """
    stats = group_stats(rewards, group_ids)
    single = stats.size == 1
    mean = np.where(single, 0.0, stats.mean)
    adv = np.asarray(rewards, dtype=np.float64) - mean
    if cfg.norm_by_std:
        std = np.where(single, 1.0, stats.std)
        adv = adv / (std + EPS)
    return adv


@register_advantage("rloo")
def rloo(rewards: np.ndarray, group_ids: np.ndarray, cfg: AlgorithmConfig) -> np.ndarray:
    """RLOO (Ahmadian et al. 2024, arXiv 2402.14740): the reward minus the mean of the *other*
    members of its group.

    mean_{j != i} R_j = (n * mean - R_i) / (n - 1), so A_i = n / (n - 1) * (R_i - mean). A group
    of one has no other member: its advantage is its reward (verl's convention).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    stats = group_stats(rewards, group_ids)
    n = stats.size.astype(np.float64)
    leave_one_out = (n * stats.mean - rewards) / np.maximum(n - 1, 1)
    return np.where(stats.size == 1, rewards, rewards - leave_one_out)


@register_advantage("reinforce_pp")
def reinforce_pp(rewards: np.ndarray, group_ids: np.ndarray, cfg: AlgorithmConfig) -> np.ndarray:
    """REINFORCE++-baseline (Hu et al. 2025, arXiv 2501.03262, the variant for several
    samples per prompt): subtract the group mean, then whiten over the whole batch.

    1. A_i = R_i - mean(group of i)   (a group of one keeps its reward, as in ``grpo``)
    2. A = (A - mean(A)) / (std(A) + 1e-6) over every trajectory passed in (unbiased std).

    The batch of step 2 is the generation batch the batcher passes (all n of each prompt,
    before filtering), and the whitening is over sequences, one value each; verl whitens over
    tokens, which weights long responses more. A batch of one is only centred.
    """
    stats = group_stats(rewards, group_ids)
    adv = np.asarray(rewards, dtype=np.float64) - np.where(stats.size == 1, 0.0, stats.mean)
    adv = adv - adv.mean()
    if len(adv) > 1:
        adv = adv / (adv.std(ddof=1) + EPS)
    return adv
