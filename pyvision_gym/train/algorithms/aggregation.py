"""Reducing a per-token loss [B, T] to the scalar the learner backpropagates.

A mini-batch (one optimiser step) is split into micro-batches (gradient accumulation) and
across data-parallel ranks. The normalisers must be those of the whole mini-batch, or the
split changes the gradient: the learner counts them once and passes them in.

- ``token_mean``: sum of the masked token losses / ``global_tokens``, the mini-batch's masked
  token count. Summing the micro-batches' values gives exactly the mini-batch token mean.
- ``seq_mean_token_mean``: each sequence's token mean, summed, / ``num_sequences``, the
  mini-batch's sequence count. Every sequence weighs the same whatever its length; one with
  no generated token adds nothing (and, by default, is not counted).
- ``token_mean_legacy``: the micro-batch's own token mean (PyVision-RL / verl's ``token-mean``
  at the paper's time). The learner divides it by the number of micro-batches, so the step
  is a mean of per-micro-batch means: tokens in a short micro-batch weigh more, and the
  gradient depends on how the batch was split. Kept to reproduce the authors' runs.

With several ranks whose gradients DDP/FSDP *average*, pass the counts summed over all ranks
and multiply the loss by the world size (as verl's ``agg_loss`` does).
When a count is not given, the micro-batch's own is used (the plain mean of this tensor).
"""

from __future__ import annotations

import torch

AGG_MODES = ("token_mean", "seq_mean_token_mean", "token_mean_legacy")


def aggregate(
    loss_mat: torch.Tensor,
    mask: torch.Tensor,
    mode: str,
    global_tokens: int | float | None = None,
    num_sequences: int | float | None = None,
) -> torch.Tensor:
    """The scalar loss of ``loss_mat`` [B, T] over the tokens where ``mask`` [B, T] is 1."""
    mask = mask.to(loss_mat.dtype)
    masked = loss_mat * mask
    if mode == "token_mean":
        tokens = mask.sum() if global_tokens is None else global_tokens
        return masked.sum() / max(float(tokens), 1.0)
    if mode == "seq_mean_token_mean":
        seq_tokens = mask.sum(dim=-1)
        seq_means = masked.sum(dim=-1) / seq_tokens.clamp(min=1)
        seqs = (seq_tokens > 0).sum() if num_sequences is None else num_sequences
        return seq_means.sum() / max(float(seqs), 1.0)
    if mode == "token_mean_legacy":
        return masked.sum() / mask.sum().clamp(min=1)
    raise ValueError(f"unknown loss aggregation {mode!r}; valid: {', '.join(AGG_MODES)}")
