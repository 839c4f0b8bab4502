"""What the trainer needs from a model family: turning observations into token ids.

A codec is named in the config (``policy.codec: "package.module:Class"``) and built as
``Codec(model_path, **policy.codec_kwargs)``. The Qwen2.5-VL codec lives with the VLM agent
(``pyvision_gym.agents.codec``) and derives every prompt from the agent's own message builder,
so training and evaluation prompts are the same text. Agent tokens are never re-encoded: the
rollout appends the generated ids as they came and asks the codec only for observation deltas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class Encoded:
    """Token ids plus the images their placeholders stand for (in order) and each one's grid."""

    ids: list[int]
    images: list[np.ndarray] = field(default_factory=list)
    image_grid_thw: list[tuple[int, int, int]] = field(default_factory=list)


class ChatCodec(Protocol):
    """Token-in-token-out encoding of an episode for one model family."""

    image_token_id: int  # the placeholder repeated once per merged patch
    merge_size: int  # patches merged per token along each side (Qwen2.5-VL: 2)
    eos_token_ids: list[int]  # ids that end a generation (e.g. <|im_end|>)
    stop_strings: list[str]  # text that ends a turn (e.g. "</code>", "</answer>")
    pad_token_id: int

    def prompt(self, text: str, images: Sequence[np.ndarray]) -> Encoded:
        """System + first user turn (the reset observation) + the assistant header."""

    def observation(self, text: str, images: Sequence[np.ndarray], first_image_index: int) -> Encoded:
        """What follows a generated action: end of the assistant turn, the tool output as a
        user turn (images expanded to their placeholder tokens), the next assistant header."""

    def vision_inputs(self, images: Sequence[np.ndarray]) -> dict[str, Any]:
        """The model's image tensors for ``images`` (e.g. ``pixel_values``, ``image_grid_thw``)."""

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` (special tokens kept)."""
