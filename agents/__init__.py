"""Agents (imported as ``pyvision_gym.agents``): baselines, the VLM agent and its backends.

- ``registry.py``: ``make_agent(spec)`` for ``--agent`` specs, built-in names and user
  ``module:Class`` agents;
- ``baselines.py``: random, direct, expert and full-video agents (no model needed);
- ``vlm.py``: the VLM agent (the PyVision-RL prompt format) over a backend in ``backends/``
  (transformers, vLLM, OpenAI-compatible), one file each;
- ``chat.py``: what they share (messages, stop strings, sampling settings, generation
  records, image encoding); it imports nothing else from this package;
- ``tiny_model.py``: a tiny random Qwen2.5-VL built locally, for CPU tests, demos and the
  trainer's default policy; ``serve.py``: an OpenAI-compatible server for a model folder.
"""

from __future__ import annotations

if not __name__.startswith("pyvision_gym."):  # one module name per file
    raise ImportError(f"import this package as pyvision_gym.agents, not {__name__!r}")
