"""Generation backends for :class:`~pyvision_gym.agents.vlm.VLMAgent`, one file each.

Every backend takes the same input — a batch of chats built by
``pyvision_gym.agents.vlm.build_messages`` (dict messages whose content parts are text or PIL
images) — and a :class:`~pyvision_gym.agents.chat.SamplingConfig`, and returns one
:class:`~pyvision_gym.agents.chat.Generation` per chat:

- ``hf`` (:mod:`.transformers_backend`): transformers on CPU or GPU;
- ``vllm`` (:mod:`.vllm_backend`): vLLM, in-process or in a separate venv's worker process;
- ``openai`` (:mod:`.openai_backend`): any OpenAI-compatible ``/chat/completions`` endpoint.

:data:`BACKENDS` names each by a ``"module:Class"`` string, loaded on demand with
:func:`pyvision_gym.plugins.load`, so that importing this package imports no model library.
"""

from __future__ import annotations

from pyvision_gym.agents.backends.base import Backend, BackendError

__all__ = ["BACKENDS", "Backend", "BackendError"]

BACKENDS: dict[str, str] = {
    "hf": "pyvision_gym.agents.backends.transformers_backend:HFBackend",
    "vllm": "pyvision_gym.agents.backends.vllm_backend:VLLMBackend",
    "openai": "pyvision_gym.agents.backends.openai_backend:OpenAIBackend",
}
