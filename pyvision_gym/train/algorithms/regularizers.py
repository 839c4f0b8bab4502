"""Optional per-token terms the learner adds to the policy loss (both off in the paper).

    loss_token = policy_loss + kl_coef * kl_k3(logp, ref_logp) - entropy_coef * entropy(logits)

Both return [B, T]; the learner masks and aggregates them like the policy loss.
"""

from __future__ import annotations

import torch

MAX_LOG_RATIO = 20.0  # exp(20) ~ 5e8: beyond it a ratio is clipped anyway, and stays finite


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || pi_ref) per sampled token, always >= 0 and unbiased:

        k3 = exp(ref - logp) - (ref - logp) - 1

    The log-ratio is clamped to +-20 so the exponential stays finite.
    """
    log_ratio = (ref_logp - logp).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return torch.exp(log_ratio) - log_ratio - 1.0


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """The policy's entropy at each position, from logits [B, T, V] (already divided by the
    sampling temperature): H = logsumexp(z) - sum softmax(z) * z, in float32 at least."""
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    probs = torch.softmax(z, dim=-1)
    return torch.logsumexp(z, dim=-1) - (probs * z).sum(dim=-1)
