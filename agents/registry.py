"""Build agents from short spec strings (``pyvision-gym eval --agent SPEC``).

Valid forms::

    random[:SEED]          RandomAgent (seed 0 by default)
    direct                 DirectAgent: answers at once, no tools
    expert                 ExpertAgent: the scripted expert (privileged, generated tasks only)
    full-video             FullVideoAgent: shows the whole video at 2 fps, then answers
    vlm:hf:PATH            a vision-language model through transformers
    vlm:vllm:PATH          ... through vLLM
    vlm:openai:URL#MODEL   ... through an OpenAI-compatible server
    reference              the shipped reference agent (a tiny Qwen2.5-VL trained by
                           ``pyvision-gym train --config reference``; agents/checkpoints/reference)
    sb3[:PATH]             SB3Agent: a stable-baselines3 macro-action policy (PATH: a model zip
                           saved by pyvision_gym.integrations.sb3.save_model; default: the shipped PPO)
    package.module:Name    your own agent: an Agent subclass, or a function returning an Agent

Every built-in name maps to a ``"module:attribute"`` string in :data:`AGENTS`, loaded on demand
with :func:`pyvision_gym.plugins.load` (so ``vlm`` specs import the model libraries only when
used). VLM specs call ``make_vlm_agent(backend, target, **kwargs)`` with ``target`` the text
after the backend (``PATH`` or ``URL#MODEL`` as given).

A user agent is any spec ``MODULE:NAME`` whose ``MODULE`` is not a built-in name and either
contains a dot or is an importable module; ``NAME`` (which may be dotted) is called with the
keyword arguments and must give an :class:`~pyvision_gym.rollout.agent.Agent`.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from pyvision_gym.agents.backends import BACKENDS
from pyvision_gym.plugins import PluginError, load
from pyvision_gym.rollout.agent import Agent

__all__ = ["AGENTS", "SPEC_FORMS", "VLM_BACKENDS", "AgentSpecError", "make_agent"]

#: Built-in agent names → the ``"module:attribute"`` that builds them.
AGENTS: dict[str, str] = {
    "random": "pyvision_gym.agents.baselines:RandomAgent",
    "direct": "pyvision_gym.agents.baselines:DirectAgent",
    "expert": "pyvision_gym.agents.baselines:ExpertAgent",
    "full-video": "pyvision_gym.agents.baselines:FullVideoAgent",
    "vlm": "pyvision_gym.agents.vlm:make_vlm_agent",
    "sb3": "pyvision_gym.agents.sb3_agent:SB3Agent",
    "reference": "pyvision_gym.agents.reference:make_reference_agent",
}
_ALIASES = {"full_video": "full-video", "fullvideo": "full-video"}
VLM_BACKENDS = tuple(BACKENDS)
SPEC_FORMS = (
    "random[:SEED]",
    "direct",
    "expert",
    "full-video",
    "vlm:hf:PATH",
    "vlm:vllm:PATH",
    "vlm:openai:URL#MODEL",
    "sb3[:PATH]",
    "reference",
    "package.module:AgentClass",
)


class AgentSpecError(ValueError):
    """An agent spec string that names no agent; the message lists the valid forms."""


def _bad(spec: str, why: str) -> AgentSpecError:
    return AgentSpecError(f"bad agent spec {spec!r}: {why}. Valid forms: {', '.join(SPEC_FORMS)}")


def _is_user_module(head: str) -> bool:
    """Whether ``head`` (the text before the first ``:``) names a user module."""
    if head.lower() in AGENTS or head.lower() in _ALIASES:
        return False
    if "." in head:
        return True
    try:
        return importlib.util.find_spec(head) is not None
    except (ImportError, ValueError):
        return False


def _random_seed(spec: str, rest: str) -> int:
    if not rest:
        return 0
    try:
        seed = int(rest)
    except ValueError:
        raise _bad(spec, f"the seed must be a non-negative integer, got {rest!r}") from None
    if seed < 0:
        raise _bad(spec, f"the seed must be a non-negative integer, got {seed}")
    return seed


def _builtin_args(spec: str, head: str, rest: str) -> tuple[Any, ...]:
    """The positional arguments the built-in agent ``head`` takes from the text after ``:``."""
    if head == "random":
        return (_random_seed(spec, rest),)
    if head == "vlm":
        backend, sep, target = rest.partition(":")
        if not sep or backend not in VLM_BACKENDS or not target:
            raise _bad(spec, f"a VLM spec is vlm:BACKEND:TARGET with BACKEND one of {', '.join(VLM_BACKENDS)}")
        if backend == "openai" and "#" not in target:
            raise _bad(spec, "an openai spec is vlm:openai:URL#MODEL (the model name after '#')")
        return (backend, target)
    if head == "sb3":
        return (rest,) if rest else ()
    if rest:
        raise _bad(spec, f"{head!r} takes no argument")
    return ()


def _build(spec: str, target: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Agent:
    """Load ``target`` (``module:attribute``) and call it; the result must be an :class:`Agent`."""
    try:
        factory = load(target)
    except PluginError as exc:
        raise AgentSpecError(f"agent spec {spec!r} needs {target}, which cannot be loaded: {exc}") from None
    if isinstance(factory, type) and not issubclass(factory, Agent):
        raise AgentSpecError(f"agent spec {spec!r}: {target} is a class but not a subclass of pyvision_gym.rollout.agent.Agent")
    if not callable(factory):
        raise AgentSpecError(f"agent spec {spec!r}: {target} is not an Agent class or a function ({type(factory).__name__})")
    agent = factory(*args, **kwargs)
    if not isinstance(agent, Agent):
        raise AgentSpecError(f"agent spec {spec!r}: {target} returned a {type(agent).__name__}, not an Agent")
    return agent


def make_agent(spec: str, **kwargs: Any) -> Agent:
    """The agent named by ``spec`` (see the module docstring); ``kwargs`` go to its constructor."""
    if not isinstance(spec, str) or not spec.strip():
        raise _bad(str(spec), "empty spec")
    spec = spec.strip()
    head, sep, rest = spec.partition(":")
    if sep and _is_user_module(head):
        if not rest:
            raise _bad(spec, f"name the agent after the module ({head}:AgentClass)")
        agent = _build(spec, spec, (), kwargs)
    else:
        name = _ALIASES.get(head.lower(), head.lower())
        if name not in AGENTS:
            raise _bad(spec, f"unknown agent {head!r}")
        agent = _build(spec, AGENTS[name], _builtin_args(spec, name, rest), kwargs)
    if not getattr(agent, "spec", ""):
        agent.spec = spec
    return agent
