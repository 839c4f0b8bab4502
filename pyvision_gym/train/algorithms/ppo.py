"""PPO's clipped surrogate, with clip-higher and dual-clip (the paper: clip 0.2, dual-clip 3).

Per generated token, with r = pi(a|s) / pi_old(a|s) and A the trajectory's advantage:

    loss = max(-A * r, -A * clip(r, 1 - clip_low, 1 + clip_high))        # PPO (Schulman 2017)
    loss = min(loss, -A * clip_c)                           if A < 0      # dual-clip (Ye 2020)

``clip_high > clip_low`` is DAPO's clip-higher (Yu et al. 2025): it lets the probability of
a rare, good token grow further before the clip stops the gradient. Dual-clip bounds the
loss of a negative-advantage token whose ratio has exploded (r > clip_c).
"""

from __future__ import annotations

from typing import Any

import torch

from pyvision_gym.train.algorithms.registry import register_policy_loss
from pyvision_gym.train.algorithms.regularizers import MAX_LOG_RATIO
from pyvision_gym.train.config import AlgorithmConfig


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> float:
    return float((x * mask).sum() / mask.sum().clamp(min=1))


@register_policy_loss("ppo")
def ppo(
    logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor, cfg: AlgorithmConfig
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Per-token clipped-surrogate loss [B, T] (0 where ``mask`` is 0) and its metrics."""
    if cfg.clip_c is not None and cfg.clip_c <= 1.0:
        raise ValueError(f"algorithm.clip_c must be > 1 (or null), got {cfg.clip_c}")
    mask = mask.to(logp.dtype)
    adv = adv.to(logp.dtype)
    if adv.dim() == 1:  # one advantage per sequence, broadcast over its tokens
        adv = adv.unsqueeze(-1)
    # the ratio from the log-ratio, clamped so exp cannot overflow (masked tokens may hold junk)
    log_ratio = (logp - old_logp).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio = torch.exp(log_ratio)

    # --- the algorithm ------------------------------------------------------------------
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    loss = torch.maximum(unclipped, clipped)
    dual_active = torch.zeros_like(loss, dtype=torch.bool)
    if cfg.clip_c is not None:
        bound = -adv * cfg.clip_c
        dual_active = (adv < 0) & (loss > bound)
        loss = torch.where(dual_active, bound.expand_as(loss), loss)
    loss = loss * mask
    # -------------------------------------------------------------------------------------

    with torch.no_grad():
        metrics = {
            "clip_frac": _masked_mean((clipped > unclipped).to(mask.dtype), mask),
            "dual_clip_frac": _masked_mean(dual_active.to(mask.dtype), mask),
            "approx_kl": _masked_mean((ratio - 1.0) - log_ratio, mask),  # k3 of old vs new
            "ratio_mean": _masked_mean(ratio, mask),
        }
    return loss, metrics
