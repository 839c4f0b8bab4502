"""Chat-completion reply bodies (whole and streamed) in the OpenAI format.

Stop strings follow the OpenAI API: the text stops before the stop string, which is not
included (unless the request sets vLLM's ``include_stop_str_in_output``); like vLLM, each
choice carries ``stop_reason`` (the stop string that matched), so clients can restore it.
Log-probs are per generated token, under the model's own distribution (before temperature
and top-p), in ``choices[].logprobs.content[]``.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from typing import Any

from pyvision_gym.agents.chat import Generation, truncate_at_stop

__all__ = ["LOGPROB_FLOOR", "Completion", "StreamText", "visible_text"]

LOGPROB_FLOOR = -9999.0
"""Stands in for a log-prob of minus infinity (JSON has no infinities)."""


def visible_text(gen: Generation, include_stop: bool = False) -> str:
    """The text a client sees: without the matched stop string unless ``include_stop``."""
    text = gen.text
    if gen.stop_reason and not include_stop and text.endswith(gen.stop_reason):
        return text[: -len(gen.stop_reason)]
    return text


def _finite(x: float) -> float:
    return x if math.isfinite(x) else LOGPROB_FLOOR


class Completion:
    """Builds the bodies of one request's reply: ids, timestamps and token decoding shared by
    the whole reply and every streamed chunk."""

    def __init__(self, model: str, tokenizer: Any, include_stop: bool = False, top_logprobs: int | None = None) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model, self.tokenizer = model, tokenizer
        self.include_stop, self.top_logprobs = include_stop, top_logprobs

    # -------------------------------------------------------------- log-probs
    def _token(self, token_id: int, logprob: float) -> dict[str, Any]:
        # ``bytes`` are those of the token decoded alone: a token holding part of a multi-byte
        # character decodes to U+FFFD, so its bytes are approximate.
        text = self.tokenizer.decode([token_id])
        return {"token": text, "logprob": _finite(logprob), "bytes": list(text.encode("utf-8"))}

    def logprobs(self, ids: Sequence[int], logprobs: Sequence[float], top: Sequence[Sequence[tuple[int, float]]]) -> dict[str, Any] | None:
        """``{"content": [...]}`` for the given tokens (``None`` when log-probs were not asked)."""
        if self.top_logprobs is None:
            return None
        k = self.top_logprobs
        content = []
        for tid, lp, alts in zip(ids, logprobs, top, strict=False):
            entry = self._token(tid, lp)
            entry["top_logprobs"] = [self._token(a, alp) for a, alp in list(alts)[:k]]
            content.append(entry)
        return {"content": content}

    def _gen_logprobs(self, gen: Generation) -> dict[str, Any] | None:
        ids = gen.token_ids or []
        return self.logprobs(ids, gen.logprobs or [], gen.extra.get("top_logprobs") or [[] for _ in ids])

    # -------------------------------------------------------------- whole replies
    @staticmethod
    def usage(gens: Sequence[Generation]) -> dict[str, int]:
        """Token usage: the prompt once, the completions of every choice."""
        prompt = gens[0].prompt_tokens if gens else 0
        completion = sum(g.completion_tokens for g in gens)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def body(self, gens: Sequence[Generation]) -> dict[str, Any]:
        """The ``chat.completion`` object: one choice per generation."""
        choices = [
            {
                "index": i,
                "message": {"role": "assistant", "content": visible_text(g, self.include_stop)},
                "finish_reason": g.finish_reason,
                "stop_reason": g.stop_reason,
                "logprobs": self._gen_logprobs(g),
            }
            for i, g in enumerate(gens)
        ]
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": self.usage(gens),
        }

    # -------------------------------------------------------------- streamed replies
    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> dict[str, Any]:
        """A ``chat.completion.chunk`` object."""
        out = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model, "choices": choices}
        if usage is not None:
            out["usage"] = usage
        return out

    @staticmethod
    def delta(index: int, delta: dict[str, Any], logprobs: dict[str, Any] | None = None, gen: Generation | None = None) -> dict[str, Any]:
        """One streamed choice; with ``gen`` it is the last one (finish and stop reasons)."""
        return {
            "index": index,
            "delta": delta,
            "logprobs": logprobs,
            "finish_reason": gen.finish_reason if gen else None,
            **({"stop_reason": gen.stop_reason} if gen else {}),
        }


class StreamText:
    """Turns a growing list of token ids into text deltas that join to :func:`visible_text`.

    Text is held back while it could still be the start of a stop string (a stop string is
    never streamed unless ``include_stop``) or ends in an incomplete UTF-8 character.
    """

    def __init__(self, tokenizer: Any, stops: Sequence[str], include_stop: bool = False) -> None:
        self.tokenizer, self.stops, self.include_stop = tokenizer, tuple(s for s in stops if s), include_stop
        self.sent = ""
        self.tokens_sent = 0
        """How many tokens' log-probs have been streamed."""

    def _safe(self, text: str) -> str:
        cut, hit = truncate_at_stop(text, self.stops)
        if hit is not None:
            return cut if self.include_stop else cut[: -len(hit)]
        hold = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        return text[: len(text) - hold].rstrip("\ufffd")

    def update(self, ids: Sequence[int]) -> str:
        """The new text after the tokens ``ids`` (all of them so far)."""
        safe = self._safe(self.tokenizer.decode(list(ids), skip_special_tokens=True))
        if len(safe) <= len(self.sent) or not safe.startswith(self.sent):
            return ""
        delta, self.sent = safe[len(self.sent) :], safe
        return delta

    def finish(self, gen: Generation) -> str:
        """The rest of the final text (an empty string when all of it was sent)."""
        final = visible_text(gen, self.include_stop)
        delta = final[len(self.sent) :] if final.startswith(self.sent) else ""
        self.sent += delta
        return delta
