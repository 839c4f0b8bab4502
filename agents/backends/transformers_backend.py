"""The transformers backend: ``AutoModelForImageTextToText`` with an image-only Qwen-VL
processor; batched, left-padded generation on CPU or GPU, greedy by default, stop strings."""

from __future__ import annotations

import threading
from collections.abc import Sequence
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

__all__ = ["HFBackend"]


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

    def generate(self, conversations: Sequence[list[Message]], sampling: SamplingConfig) -> list[Generation]:
        results: list[Generation] = []
        with self._lock:  # one generate at a time (a backend may be shared by agents / threads)
            for start in range(0, len(conversations), self.max_batch_size):
                results += self._generate_batch(conversations[start : start + self.max_batch_size], sampling)
        return results

    def _inputs(self, conversations: Sequence[list[Message]]) -> Any:
        texts = [self.render(c) for c in conversations]
        images = [im for c in conversations for im in message_images(c)]
        return self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")

    def _generate_kwargs(self, sampling: SamplingConfig) -> dict[str, Any]:
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

    def _generate_batch(self, conversations: Sequence[list[Message]], sampling: SamplingConfig) -> list[Generation]:
        import torch

        out: list[Generation | None] = [None] * len(conversations)
        keep, inputs = self._fitting(conversations, sampling, out)
        if not keep:
            return [g for g in out if g is not None]
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        inputs = inputs.to(self.device)
        if sampling.seed is not None:
            torch.manual_seed(int(sampling.seed))
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **self._generate_kwargs(sampling))
        new_tokens = sequences[:, inputs["input_ids"].shape[1] :].tolist()
        stops = set(self.eos_ids) | {self.pad_id}
        for row, i in enumerate(keep):
            ids = new_tokens[row]
            cut = next((k for k, t in enumerate(ids) if t in stops), None)
            hit_eos = cut is not None
            ids = ids[:cut] if hit_eos else ids
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            out[i] = finish_generation(text, sampling.stop, hit_eos, int(lengths[row]), len(ids))
        return [g for g in out if g is not None]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": str(self.path), "model_hash": self._fingerprint, "device": self.device, "dtype": self.dtype}

    def close(self) -> None:
        self.model = None
        self.processor = None
