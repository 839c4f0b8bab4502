"""The transformers backend: ``AutoModelForImageTextToText`` with an image-only Qwen-VL
processor; batched, left-padded generation on CPU or GPU, greedy by default, stop strings.

For the server, :meth:`HFBackend.generate` also takes one :class:`RowControl` per chat: the
tokens (and log-probs) reach it as they are made, for streaming, and setting its
``cancelled`` event ends that row at the next token (the rest of the batch goes on).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyvision_gym.agents.backends.base import Backend
from pyvision_gym.agents.backends.processor import load_processor, render_chat
from pyvision_gym.agents.chat import (
    Generation,
    Message,
    SamplingConfig,
    finish_generation,
    message_images,
    model_fingerprint,
)

__all__ = ["HFBackend", "RowControl"]

MAX_TOP_LOGPROBS = 20
"""Most alternatives per token :meth:`HFBackend.generate` reports (the OpenAI API's limit)."""


@dataclass
class RowControl:
    """Live hooks and record of one row of a batched :meth:`HFBackend.generate`.

    The backend appends each generated token (and its log-prob, when asked) as it is made,
    then calls ``on_token(self)`` from the generating thread. Setting ``cancelled`` ends the
    row at the next token. The end-of-turn token is not recorded.
    """

    cancelled: threading.Event = field(default_factory=threading.Event)
    on_token: Callable[[RowControl], None] | None = None
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)
    """Per token: the ``(token id, log-prob)`` alternatives, most likely first."""
    done: bool = False
    """The row has ended (end-of-turn, stop string, token budget or cancelled)."""


class _StepHook:
    """One batch's per-token hook, passed to ``generate`` twice: as a logits processor it
    keeps the step's scores (before temperature and top-p: the model's own distribution), as a
    stopping criterion it records each row's new token and stops cancelled rows."""

    def __init__(self, controls: Sequence[RowControl], end_ids: set[int], max_new: int, top: int | None) -> None:
        self.controls, self.end_ids, self.max_new, self.top = list(controls), end_ids, max_new, top
        self.scores: Any = None

    def keep_scores(self, input_ids: Any, scores: Any) -> Any:
        if self.top is not None:
            self.scores = scores
        return scores

    def _logprobs(self, tokens: Any) -> tuple[list[float] | None, list[list[tuple[int, float]]] | None]:
        import torch

        if self.top is None or self.scores is None:
            return None, None
        logp = torch.log_softmax(self.scores.float(), dim=-1)
        chosen = logp.gather(1, tokens[:, None]).squeeze(1).tolist()
        if not self.top:
            return chosen, [[] for _ in chosen]
        vals, idx = logp.topk(min(self.top, logp.shape[-1]), dim=-1)
        return chosen, [list(zip(i, v, strict=True)) for i, v in zip(idx.tolist(), vals.tolist(), strict=True)]

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        tokens = input_ids[:, -1]
        chosen, top = self._logprobs(tokens)
        stop = []
        for row, (ctl, tok) in enumerate(zip(self.controls, tokens.tolist(), strict=True)):
            if not ctl.done and (tok in self.end_ids or len(ctl.token_ids) >= self.max_new):
                ctl.done = True
            elif not ctl.done:
                ctl.token_ids.append(tok)
                if chosen is not None and top is not None:
                    ctl.logprobs.append(chosen[row])
                    ctl.top_logprobs.append(top[row])
                if ctl.on_token is not None:
                    ctl.on_token(ctl)
            if ctl.cancelled.is_set():
                ctl.done = True
            stop.append(ctl.cancelled.is_set())
        return torch.tensor(stop, dtype=torch.bool, device=input_ids.device)


def _eos_ids(tokenizer: Any, generation_config: Any) -> list[int]:
    """Every token id that ends a turn (the generation config's and the tokenizer's EOS)."""
    eos = generation_config.eos_token_id
    ids = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


class HFBackend(Backend):
    """``AutoModelForImageTextToText`` + image-only processor; batched left-padded generation."""

    name = "hf"

    def __init__(
        self,
        path: str | Path,
        device: str | None = None,
        dtype: str | None = None,
        max_batch_size: int = 8,
        num_threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"{self.path}: not a model folder (no config.json)")
        import torch
        from transformers import AutoModelForImageTextToText

        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = dtype or ("bfloat16" if self.device.startswith("cuda") else "float32")
        self.processor = load_processor(self.path)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.chat_template = self.processor.chat_template or getattr(self.tokenizer, "chat_template", None)
        model = AutoModelForImageTextToText.from_pretrained(self.path, dtype=getattr(torch, self.dtype))
        self.model = model.to(self.device).eval()
        self.max_batch_size = max(1, int(max_batch_size))
        ip = self.processor.image_processor
        size = getattr(ip, "size", None) or {}
        self.max_pixels = getattr(ip, "max_pixels", None) or (size.get("longest_edge") if hasattr(size, "get") else None)
        text_cfg = getattr(self.model.config, "text_config", self.model.config)
        self.max_positions = int(getattr(text_cfg, "max_position_embeddings", 0) or 0) or None
        self.eos_ids = _eos_ids(self.tokenizer, self.model.generation_config)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0)
        self._fingerprint = model_fingerprint(self.path)
        self._lock = threading.Lock()

    def render(self, conversation: Sequence[Message]) -> str:
        """The prompt text the model sees for ``conversation``."""
        return render_chat(conversation, self.tokenizer, self.chat_template)

    def generate(
        self,
        conversations: Sequence[list[Message]],
        sampling: SamplingConfig,
        controls: Sequence[RowControl] | None = None,
        top_logprobs: int | None = None,
    ) -> list[Generation]:
        """One generation per chat. ``controls`` (one per chat) stream tokens and cancel rows;
        ``top_logprobs`` (0 to :data:`MAX_TOP_LOGPROBS`) asks for each token's log-prob (in
        ``Generation.logprobs``) and that many alternatives (``extra["top_logprobs"]``)."""
        if top_logprobs is not None and not 0 <= top_logprobs <= MAX_TOP_LOGPROBS:
            raise ValueError(f"top_logprobs must be in 0..{MAX_TOP_LOGPROBS}, got {top_logprobs}")
        if controls is not None and len(controls) != len(conversations):
            raise ValueError("need one RowControl per conversation")
        if controls is None and top_logprobs is not None:
            controls = [RowControl() for _ in conversations]
        results: list[Generation] = []
        with self._lock:  # one generate at a time (a backend may be shared by agents / threads)
            for start in range(0, len(conversations), self.max_batch_size):
                stop = start + self.max_batch_size
                rows = controls[start:stop] if controls is not None else None
                results += self._generate_batch(conversations[start:stop], sampling, rows, top_logprobs)
        return results

    def _inputs(self, conversations: Sequence[list[Message]]) -> Any:
        texts = [self.render(c) for c in conversations]
        images = [im for c in conversations for im in message_images(c)]
        return self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")

    def _generate_kwargs(self, sampling: SamplingConfig, hook: _StepHook | None = None) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "max_new_tokens": int(sampling.max_new_tokens),
            "pad_token_id": self.pad_id,
            "eos_token_id": self.eos_ids or None,
        }
        if sampling.stop:
            kw.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        if sampling.temperature > 0:
            kw.update(do_sample=True, temperature=float(sampling.temperature), top_p=float(sampling.top_p), top_k=0)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if hook is not None:
            kw.update(logits_processor=[hook.keep_scores], stopping_criteria=[hook])
        return kw

    def _fitting(self, conversations: Sequence[list[Message]], sampling: SamplingConfig, out: list[Generation | None]) -> tuple[list[int], Any]:
        """The indices of the chats whose prompt leaves room for the turn, and their inputs.

        Chats whose context is full get an empty turn that ends on length, in ``out``.
        """
        keep = list(range(len(conversations)))
        inputs = self._inputs(conversations)
        if not self.max_positions:
            return keep, inputs
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        too_long = [i for i in keep if lengths[i] + sampling.max_new_tokens > self.max_positions]
        for i in too_long:
            out[i] = Generation("", "length", None, int(lengths[i]), 0, {"error": "prompt too long"})
        if not too_long:
            return keep, inputs
        keep = [i for i in keep if i not in too_long]
        return keep, (self._inputs([conversations[i] for i in keep]) if keep else None)

    def _generate_batch(
        self,
        conversations: Sequence[list[Message]],
        sampling: SamplingConfig,
        controls: Sequence[RowControl] | None,
        top_logprobs: int | None,
    ) -> list[Generation]:
        import torch

        out: list[Generation | None] = [None] * len(conversations)
        keep, inputs = self._fitting(conversations, sampling, out)
        if not keep:
            return [g for g in out if g is not None]
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        inputs = inputs.to(self.device)
        stops = set(self.eos_ids) | {self.pad_id}
        rows = [controls[i] for i in keep] if controls is not None else None
        hook = _StepHook(rows, stops, sampling.max_new_tokens, top_logprobs) if rows is not None else None
        if sampling.seed is not None:
            torch.manual_seed(int(sampling.seed))
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **self._generate_kwargs(sampling, hook))
        new_tokens = sequences[:, inputs["input_ids"].shape[1] :].tolist()
        for row, i in enumerate(keep):
            ids = new_tokens[row]
            cut = next((k for k, t in enumerate(ids) if t in stops), None)
            hit_eos = cut is not None
            ids = ids[:cut] if hit_eos else ids
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            gen = finish_generation(text, sampling.stop, hit_eos, int(lengths[row]), len(ids))
            gen.token_ids = ids
            if rows is not None:
                self._fill_from_control(gen, rows[row], top_logprobs)
            out[i] = gen
        return [g for g in out if g is not None]

    @staticmethod
    def _fill_from_control(gen: Generation, ctl: RowControl, top_logprobs: int | None) -> None:
        """Copy a row's log-probs into its generation; mark a cancelled row."""
        ctl.done = True
        n = len(gen.token_ids or [])
        if top_logprobs is not None:
            gen.logprobs = ctl.logprobs[:n]
            gen.extra["top_logprobs"] = ctl.top_logprobs[:n]
        if ctl.cancelled.is_set():
            gen.extra["cancelled"] = True

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": str(self.path), "model_hash": self._fingerprint, "device": self.device, "dtype": self.dtype}

    def close(self) -> None:
        self.model = None
        self.processor = None
