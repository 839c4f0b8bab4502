"""The transformers generation engine: token ids and images in, one sampled turn per request out.

    engine = HFEngine(model, codec)                  # model: AutoModelForImageTextToText
    results = engine.generate([GenRequest(ids, images)], Sampling(temperature=1.0, seed=0))

Requests are generated together in left-padded batches of up to ``max_batch_size``. Qwen2.5-VL
computes its 3-D (mRoPE) positions from the attention mask and ``mm_token_type_ids`` (1 on
image placeholders, built here from ``codec.image_token_id``), so left padding leaves every
row's positions as if it were alone: a padded batch gives the same tokens and log-probs as
one request at a time up to float rounding (measured on the tiny model: |Δ log-prob| < 1e-5;
``tests/test_train_rollout.py``). Without ``mm_token_type_ids`` the model would silently fall
back to 1-D positions for images.

Per row, generation stops after an end-of-turn id (``codec.eos_token_ids``, kept in the ids),
once the generated text contains a stop string (``Sampling.stop_strings``; the token that
completes it is kept) or at the row's ``max_new_tokens`` (finish reason ``"length"``). Vision
markup ids (``codec.suppress_token_ids``) are never sampled: only the codec places them.

**Log-probs.** Each generated token's log-prob is ``log_softmax(logits / T)`` over the whole
vocabulary, taken from the model's raw logits before suppression and top-p; that is exactly
what the learner recomputes (``train/logprobs.py``). At temperature 0 (greedy validation)
``T = 1`` is used: the model's own distribution. With ``top_p < 1`` the tokens are drawn from
the nucleus but the reported log-prob is still the untruncated one (keep ``top_p = 1`` for
training, as the config says).

**Seeds.** ``Sampling.seed`` seeds torch's generator inside a forked RNG state, so the same
seed and requests give the same results and the caller's RNG is left untouched.

**Weights.** The engine may hold the learner's own model object (CPU runs): then
:meth:`HFEngine.load_weights` finds every tensor already in place and does nothing.
Otherwise it copies the state dict in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .base import GenerationEngine, GenRequest, GenResult, Sampling

__all__ = ["HFEngine"]

STOP_WINDOW = 16
"""Trailing tokens decoded per step to look for a stop string (each token is >= 1 character)."""


@dataclass
class _Row:
    """One request's generation so far."""

    budget: int
    ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: str | None = None


class _TurnTracker:
    """Both hooks of one batched ``generate``: as a logits processor it keeps each step's
    log-probs (raw logits / T) and masks the suppressed ids; as a stopping criterion it records
    every row's new token and its log-prob and ends rows per their own rules."""

    def __init__(self, rows: list[_Row], codec: Any, sampling: Sampling, suppress: Sequence[int]) -> None:
        self.rows, self.codec = rows, codec
        self.scale = sampling.temperature if sampling.temperature > 0 else 1.0
        self.eos = set(codec.eos_token_ids)
        self.stops = [s for s in sampling.stop_strings if s]
        self.suppress = list(suppress)
        self.logp: torch.Tensor | None = None

    def process(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.logp = torch.log_softmax(scores.float() / self.scale, dim=-1)
        if self.suppress:
            scores = scores.clone()
            scores[:, self.suppress] = -float("inf")
        return scores

    def _ends(self, row: _Row, token: int) -> str | None:
        if token in self.eos:
            return "stop"
        if self.stops:
            tail = self.codec.decode(row.ids[-STOP_WINDOW:])
            if any(s in tail for s in self.stops):
                return "stop"
        return "length" if len(row.ids) >= row.budget else None

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        tokens = input_ids[:, -1].tolist()
        chosen = self.logp.gather(1, input_ids[:, -1:].to(self.logp.device)).squeeze(1).tolist() if self.logp is not None else None
        done = []
        for i, (row, tok) in enumerate(zip(self.rows, tokens, strict=True)):
            if row.finish is None:
                row.ids.append(int(tok))
                row.logprobs.append(float(chosen[i]) if chosen is not None else 0.0)
                row.finish = self._ends(row, int(tok))
            done.append(row.finish is not None)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class HFEngine(GenerationEngine):
    """``model.generate`` over token-id requests (see the module docstring)."""

    def __init__(self, model: nn.Module, codec: Any, max_batch_size: int = 8) -> None:
        self.model = model
        self.codec = codec
        self.max_batch_size = max(1, int(max_batch_size))
        self.suppress_token_ids = list(getattr(codec, "suppress_token_ids", []))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    # ------------------------------------------------------------------ weights
    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Copy ``state_dict`` (all or some of the model's tensors, by the model's own names)
        into the model; a no-op when it already holds these tensors (the engine shares the
        learner's model object). A name the model does not have is an error (e.g. a LoRA-wrapped
        learner's names: merge the adapters first)."""
        own = self.model.state_dict()
        unknown = [k for k in state_dict if k not in own]
        if unknown:
            raise KeyError(f"{len(unknown)} weights the engine's model does not have, e.g. {unknown[:3]}")
        if all(own[k].data_ptr() == v.data_ptr() for k, v in state_dict.items()):
            return
        self.model.load_state_dict(state_dict, strict=False)

    # ------------------------------------------------------------------ generation
    def generate(self, requests: Sequence[GenRequest], sampling: Sampling) -> list[GenResult]:
        """One turn per request, in order (see the module docstring for stops, log-probs, seeds)."""
        results: list[GenResult] = []
        with self._seeded(sampling.seed):
            for start in range(0, len(requests), self.max_batch_size):
                results += self._generate_batch(requests[start : start + self.max_batch_size], sampling)
        return results

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(int(seed))
            yield

    def _inputs(self, requests: Sequence[GenRequest]) -> dict[str, Any]:
        """Left-padded ids, attention mask, image-placeholder types and pixel inputs."""
        width = max(len(r.ids) for r in requests)
        ids = torch.full((len(requests), width), int(self.codec.pad_token_id), dtype=torch.long)
        mask = torch.zeros((len(requests), width), dtype=torch.long)
        for i, r in enumerate(requests):
            ids[i, width - len(r.ids) :] = torch.as_tensor(r.ids, dtype=torch.long)
            mask[i, width - len(r.ids) :] = 1
        inputs: dict[str, Any] = {
            "input_ids": ids,
            "attention_mask": mask,
            "mm_token_type_ids": ((ids == self.codec.image_token_id) & (mask > 0)).to(torch.int32),
        }
        images = [im for r in requests for im in r.images]
        inputs.update(self.codec.vision_inputs(images) if images else {})
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}

    def _generation_config(self, sampling: Sampling, max_new: int) -> Any:
        """A complete generation config: nothing falls back to the checkpoint's defaults
        (real Qwen2.5-VL folders ship top_k=1 and a repetition penalty)."""
        from transformers import GenerationConfig

        kw: dict[str, Any] = {"do_sample": False}
        if sampling.temperature > 0:
            kw = {"do_sample": True, "temperature": float(sampling.temperature), "top_p": float(sampling.top_p), "top_k": 0}
        return GenerationConfig(
            max_new_tokens=int(max_new), num_beams=1, repetition_penalty=1.0, no_repeat_ngram_size=0,
            eos_token_id=list(self.codec.eos_token_ids), pad_token_id=int(self.codec.pad_token_id), use_cache=True, **kw,
        )  # fmt: skip

    @contextlib.contextmanager
    def _own_generation_config(self, config: Any) -> Iterator[None]:
        """Swap the model's default generation config for ``config`` during one call."""
        before = getattr(self.model, "generation_config", None)
        self.model.generation_config = config
        try:
            yield
        finally:
            self.model.generation_config = before

    def _generate_batch(self, requests: Sequence[GenRequest], sampling: Sampling) -> list[GenResult]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        budgets = [sampling.max_new_tokens if r.max_new_tokens is None else int(r.max_new_tokens) for r in requests]
        rows = [_Row(budget=b, finish=None if b > 0 else "length") for b in budgets]
        live = [i for i, row in enumerate(rows) if row.finish is None]
        if live:
            batch = [requests[i] for i in live]
            tracker = _TurnTracker([rows[i] for i in live], self.codec, sampling, self.suppress_token_ids)
            config = self._generation_config(sampling, max(budgets[i] for i in live))
            was_training = self.model.training
            self.model.eval()
            try:
                with self._own_generation_config(config), torch.inference_mode():
                    self.model.generate(
                        **self._inputs(batch), generation_config=config,
                        logits_processor=LogitsProcessorList([tracker.process]),
                        stopping_criteria=StoppingCriteriaList([tracker]),
                    )  # fmt: skip
            finally:
                self.model.train(was_training)
        return [GenResult(ids=row.ids, logprobs=row.logprobs, finish_reason=row.finish or "length") for row in rows]
