"""The trainer's chat codec for Qwen2.5-VL: the VLM agent's prompts as token ids.

:class:`QwenChatCodec` implements :class:`pyvision_gym.train.codec.ChatCodec` (the trainer
names it as ``"pyvision_gym.agents.codec:QwenChatCodec"``). Every text it encodes comes from
the agent's own message builder (:func:`~pyvision_gym.agents.vlm.build_messages`,
:func:`~pyvision_gym.agents.vlm.tool_output_content`) rendered with the model folder's chat
template (:func:`~pyvision_gym.agents.backends.processor.render_chat`), so a training prompt
is exactly the prompt the agent sends at evaluation:

- :meth:`QwenChatCodec.prompt` renders system + first user turn + assistant header, once;
- :meth:`QwenChatCodec.observation` renders only what follows a generated action: the end
  of the assistant turn, the tool output as a user turn and the next assistant header. It is
  the text difference between a chat with and without the new turn (the action is a
  sentinel: its tokens come from the sampler and are never re-encoded).

Image placeholders are expanded to one ``<|image_pad|>`` per merged patch (t·h·w / merge²
of the image processor's ``image_grid_thw``), exactly as the processor expands them. Images
are resized the way the agent resizes them (:func:`~pyvision_gym.agents.chat.to_pil` with
``max_pixels``) and kept in that size, so the learner rebuilds the same pixels. At start-up
the codec checks that the template is append-only (each turn's rendering extends the
previous one's) and refuses to work otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pyvision_gym.agents.backends.processor import load_processor, read_max_pixels, render_chat
from pyvision_gym.agents.chat import STOP_STRINGS, Message, message_images, text_part, to_pil
from pyvision_gym.agents.vlm import SYSTEM_PROMPT, build_messages, tool_output_content
from pyvision_gym.rollout.agent import Episode, Observation
from pyvision_gym.train.codec import Encoded

__all__ = ["VISION_TOKENS", "QwenChatCodec"]

VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
"""Qwen-VL's vision markup: it must only come from the codec, never from sampling."""
TURN_END = "<|im_end|>"
_SENTINEL = "ACTION"  # stands for a generated action when rendering observation deltas


class TemplateError(ValueError):
    """A chat template whose renderings are not append-only (token-in-token-out impossible)."""


class QwenChatCodec:
    """Token-in-token-out encoding of the VLM agent's chat for a Qwen2.5-VL model folder.

    ``max_pixels`` caps each image (default: the folder's image processor's cap, the value
    the agent uses); ``system_prompt`` is the agent's.
    """

    def __init__(self, model_path: str | Path, max_pixels: int | None = None, system_prompt: str | None = SYSTEM_PROMPT) -> None:
        self.model_path = Path(model_path)
        self.processor = load_processor(self.model_path)
        self.tokenizer = self.processor.tokenizer
        self.chat_template = self.processor.chat_template or getattr(self.tokenizer, "chat_template", None)
        self.system_prompt = system_prompt
        self.max_pixels = max_pixels if max_pixels is not None else read_max_pixels(self.model_path)
        self.merge_size = int(self.processor.image_processor.merge_size)
        self.image_token = self.processor.image_token
        self.image_token_id = self._token_id(self.image_token)
        eos = [self._token_id(TURN_END)]
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos:
            eos.append(int(self.tokenizer.eos_token_id))
        self.eos_token_ids: list[int] = eos
        pad = self.tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else eos[0])
        self.stop_strings: list[str] = list(STOP_STRINGS)
        self.suppress_token_ids: list[int] = [self._token_id(t) for t in VISION_TOKENS if t in self.tokenizer.get_vocab()]
        """Vision markup ids, suppressed during sampling (only the codec may place them)."""
        self._base = build_messages(Episode("codec", "image", Observation("")), self.system_prompt, self.max_pixels)
        self.check_append_only()

    def _token_id(self, token: str) -> int:
        tid = self.tokenizer.convert_tokens_to_ids(token)
        if tid is None or tid == self.tokenizer.unk_token_id:
            raise ValueError(f"{self.model_path}: the tokenizer has no {token!r} token")
        return int(tid)

    # ------------------------------------------------------------------ rendering
    def render(self, messages: Sequence[Message]) -> str:
        """The agent's prompt text for ``messages`` (one placeholder per image, not expanded)."""
        return render_chat(messages, self.tokenizer, self.chat_template)

    def _delta_text(self, turn: Message) -> str:
        """The text a user ``turn`` adds after an action: turn end, the turn, assistant header."""
        before = self.render(self._base) + _SENTINEL
        after = self.render([*self._base, {"role": "assistant", "content": [text_part(_SENTINEL)]}, turn])
        if not after.startswith(before):
            raise TemplateError(f"{self.model_path}: the chat template is not append-only after an assistant turn")
        return after[len(before) :]

    def _encode(self, text: str, images: Sequence[Image.Image]) -> Encoded:
        """``text`` with each image placeholder expanded to its patch count, as token ids."""
        pieces = text.split(self.image_token)
        if len(pieces) != len(images) + 1:
            raise ValueError(f"{len(pieces) - 1} image placeholders for {len(images)} images")
        grids = self._grids(images)
        expanded = pieces[0]
        for (t, h, w), piece in zip(grids, pieces[1:], strict=True):
            expanded += self.image_token * (t * h * w // self.merge_size**2) + piece
        ids = self.tokenizer.encode(expanded, add_special_tokens=False)
        return Encoded(ids=list(ids), images=[np.asarray(im, dtype=np.uint8) for im in images], image_grid_thw=grids)

    def _grids(self, images: Sequence[Image.Image]) -> list[tuple[int, int, int]]:
        if not images:
            return []
        grid = self.processor.image_processor(images=list(images), return_tensors="np")["image_grid_thw"]
        return [(int(t), int(h), int(w)) for t, h, w in grid]

    # ------------------------------------------------------------------ the ChatCodec protocol
    def prompt(self, text: str, images: Sequence[np.ndarray]) -> Encoded:
        """System + the first user turn (images, then ``text``) + the assistant header."""
        messages = build_messages(Episode("prompt", "image", Observation(text, tuple(images))), self.system_prompt, self.max_pixels)
        return self._encode(self.render(messages), message_images(messages))

    def observation(self, text: str, images: Sequence[np.ndarray], first_image_index: int) -> Encoded:
        """The turn end, the tool output (``<interpreter>`` ..., images numbered from
        ``first_image_index``) as a user turn, and the next assistant header."""
        content = tool_output_content(Observation(text, tuple(images)), first_image_index, self.max_pixels)
        turn: Message = {"role": "user", "content": content}
        return self._encode(self._delta_text(turn), message_images([turn]))

    def vision_inputs(self, images: Sequence[np.ndarray]) -> dict[str, Any]:
        """``pixel_values`` and ``image_grid_thw`` (torch tensors) of ``images``; {} for none."""
        if not len(images):
            return {}
        pils = [to_pil(im, self.max_pixels) for im in images]
        out = self.processor.image_processor(images=pils, return_tensors="pt")
        return {"pixel_values": out["pixel_values"], "image_grid_thw": out["image_grid_thw"]}

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``, special tokens kept."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    # ------------------------------------------------------------------ start-up check
    def check_append_only(self) -> None:
        """Raise :class:`TemplateError` unless rendering a sample episode turn by turn only
        ever appends: chat(k+1 turns) = chat(k turns) + action + the codec's observation delta."""
        image = np.full((56, 84, 3), 128, np.uint8)
        episode = Episode("check", "image", Observation("Question?", (image,)))
        turns = [("<code>\nprint(1)\n</code>", Observation("1", ())), ("<code>\nshow()\n</code>", Observation("", (image,)))]
        clue = 1
        for action, obs in turns:
            before = self.render(build_messages(episode, self.system_prompt, self.max_pixels))
            episode.turns.append((action, obs))
            after = self.render(build_messages(episode, self.system_prompt, self.max_pixels))
            turn: Message = {"role": "user", "content": tool_output_content(obs, clue, self.max_pixels)}
            if after != before + action + self._delta_text(turn):
                raise TemplateError(f"{self.model_path}: the chat template is not append-only (turn {len(episode.turns)})")
            clue += len(obs.images)
