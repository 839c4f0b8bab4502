"""Build agents from short spec strings (``pyvision-gym eval --agent SPEC``).

Valid forms::

    random[:SEED]          RandomAgent (seed 0 by default)
    direct                 DirectAgent: answers at once, no tools
    expert                 ExpertAgent: the scripted expert (privileged, generated tasks only)
    full-video             FullVideoAgent: shows the whole video at 2 fps, then answers
    vlm:hf:PATH            a vision-language model through transformers
    vlm:vllm:PATH          ... through vLLM
    vlm:openai:URL#MODEL   ... through an OpenAI-compatible server

VLM specs import ``pyvision_gym.agents.vlm`` lazily and call
``make_vlm_agent(backend, target, **kwargs)`` with ``target`` the text after the backend
(``PATH`` or ``URL#MODEL`` as given).
"""

from __future__ import annotations

from typing import Any

from pyvision_gym.rollout.agent import Agent

__all__ = ["SPEC_FORMS", "VLM_BACKENDS", "AgentSpecError", "make_agent"]

VLM_BACKENDS = ("hf", "vllm", "openai")
SPEC_FORMS = (
    "random[:SEED]",
    "direct",
    "expert",
    "full-video",
    "vlm:hf:PATH",
    "vlm:vllm:PATH",
    "vlm:openai:URL#MODEL",
)


class AgentSpecError(ValueError):
    """An agent spec string that names no agent; the message lists the valid forms."""


def _bad(spec: str, why: str) -> AgentSpecError:
    return AgentSpecError(f"bad agent spec {spec!r}: {why}. Valid forms: {', '.join(SPEC_FORMS)}")


def make_agent(spec: str, **kwargs: Any) -> Agent:
    """The agent named by ``spec`` (see the module docstring); ``kwargs`` go to its constructor."""
    if not isinstance(spec, str) or not spec.strip():
        raise _bad(str(spec), "empty spec")
    spec = spec.strip()
    head, _, rest = spec.partition(":")
    head = head.lower()
    agent: Agent
    if head == "random":
        from .baselines import RandomAgent

        seed = 0
        if rest:
            try:
                seed = int(rest)
            except ValueError:
                raise _bad(spec, f"the seed must be a non-negative integer, got {rest!r}") from None
            if seed < 0:
                raise _bad(spec, f"the seed must be a non-negative integer, got {seed}")
        agent = RandomAgent(seed, **kwargs)
    elif head in ("direct", "expert", "full-video", "full_video", "fullvideo"):
        if rest:
            raise _bad(spec, f"{head!r} takes no argument")
        from .baselines import DirectAgent, ExpertAgent, FullVideoAgent

        cls = {"direct": DirectAgent, "expert": ExpertAgent}.get(head, FullVideoAgent)
        agent = cls(**kwargs)
    elif head == "vlm":
        backend, sep, target = rest.partition(":")
        if not sep or backend not in VLM_BACKENDS or not target:
            raise _bad(spec, f"a VLM spec is vlm:BACKEND:TARGET with BACKEND one of {', '.join(VLM_BACKENDS)}")
        if backend == "openai" and "#" not in target:
            raise _bad(spec, "an openai spec is vlm:openai:URL#MODEL (the model name after '#')")
        try:
            from .vlm import make_vlm_agent
        except ModuleNotFoundError as exc:
            if exc.name not in ("pyvision_gym.agents.vlm", __package__ + ".vlm"):
                raise
            raise AgentSpecError(
                f"agent spec {spec!r} needs pyvision_gym.agents.vlm (agents/vlm.py), which is not installed in this tree"
            ) from None
        agent = make_vlm_agent(backend, target, **kwargs)
    else:
        raise _bad(spec, f"unknown agent {head!r}")
    if not getattr(agent, "spec", ""):
        agent.spec = spec
    return agent
