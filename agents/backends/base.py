"""The backend interface: a batch of chats and a :class:`SamplingConfig` in, one
:class:`Generation` per chat out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyvision_gym.agents.chat import Generation, Message, SamplingConfig

__all__ = ["Backend", "BackendError"]


class BackendError(RuntimeError):
    """A backend could not produce a generation (endpoint refused, worker died, ...)."""


class Backend:
    """Interface: ``generate(chats, sampling) -> [Generation]`` plus identity and limits.

    Chats are lists of :data:`~pyvision_gym.agents.chat.Message` dicts whose content parts are
    text or PIL images (see :mod:`pyvision_gym.agents.chat`).
    """

    name = "base"
    #: Per-image pixel cap the agent applies before sending (the model's processor limit).
    max_pixels: int | None = None

    def generate(self, conversations: Sequence[list[Message]], sampling: SamplingConfig) -> list[Generation]:
        """One generation per conversation, in order."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Identity for result files: backend name, model, model hash, ..."""
        return {"backend": self.name}

    def close(self) -> None:
        """Free the model / worker / connections."""
