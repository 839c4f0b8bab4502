"""Per-token log-probabilities (and entropies) of a batch under the policy, in float32.

``logp[:, t]`` is the log-probability of ``ids[:, t]`` given ``ids[:, :t]`` under
``softmax(logits / temperature)``, the distribution the sampler drew from; position 0 has no
prefix and is 0. ``entropy[:, t]`` is the entropy of that same predicting distribution. Only
positions under the loss mask are ever used.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from .algorithms import entropy_from_logits
from .collate import Batch


def autocast_context(device: torch.device, dtype: torch.dtype) -> Any:
    """bf16 autocast on CUDA for a bfloat16 policy; nothing elsewhere."""
    if device.type == "cuda" and dtype == torch.bfloat16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _scaled(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """float32 ``logits[:, :-1] / temperature`` (the distributions predicting ids[:, 1:])."""
    scaled = logits[:, :-1].float()
    if temperature > 0 and temperature != 1.0:
        scaled = scaled / temperature
    return scaled


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``logp[B, T]`` of ``ids`` from ``logits[B, T, V]`` (each position predicts the next id)."""
    scaled = _scaled(logits, temperature)
    picked = torch.gather(scaled, -1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    logp = torch.zeros(ids.shape, dtype=torch.float32, device=logits.device)
    logp[:, 1:] = picked - torch.logsumexp(scaled, dim=-1)
    return logp


def token_entropy(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``entropy[B, T]``: the entropy of the distribution that predicted token t (0 at t = 0)."""
    scaled = _scaled(logits, temperature)
    first = torch.zeros(scaled.shape[0], 1, dtype=torch.float32, device=logits.device)
    return torch.cat([first, entropy_from_logits(scaled)], dim=1)


def sequence_logprobs(
    model: nn.Module, batch: Batch, temperature: float = 1.0, with_entropy: bool = False
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each token of ``batch`` given its prefix (``[B, T]``, float32); with
    ``with_entropy`` also the per-token entropy of the predicting distribution."""
    logits = model(**batch.model_inputs(), use_cache=False).logits
    logp = token_logprobs(logits, batch.input_ids, temperature)
    return (logp, token_entropy(logits, temperature)) if with_entropy else logp
