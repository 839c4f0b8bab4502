"""One evaluation worker: an agent, the rollout engine and the suite's environments, giving
``episodes.jsonl`` rows and their image files. It runs in-process, in a worker process or as
a Ray actor (see :mod:`pyvision_gym.evaluation.fanout`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pyvision_gym.env import PyVisionEnv
from pyvision_gym.plugins import load
from pyvision_gym.rollout.agent import Agent
from pyvision_gym.rollout.engine import RolloutEngine
from pyvision_gym.rollout.records import EpisodeRecord, TaskSpec

from .config import SuiteConfig
from .hashing import task_content_hash
from .run_folder import encode_png, image_path

__all__ = ["AGENT_FACTORY", "AgentRef", "EvalWorker", "Result"]

# The agent registry, named rather than imported: the core does not depend on the agents package.
AGENT_FACTORY = "pyvision_gym.agents.registry:make_agent"
Result = tuple[dict[str, Any], dict[str, bytes]]
"""An episode's row and its image files (path relative to the run folder -> PNG bytes)."""


@dataclass(frozen=True)
class AgentRef:
    """An agent named by a spec string plus the options it is built with (``max_new_tokens``,
    ``temperature``, ...): picklable, so each worker process or Ray actor builds its own."""

    spec: str
    options: dict[str, Any] = field(default_factory=dict)


def make_agent(agent: Agent | AgentRef | str) -> Agent:
    """``agent`` itself, or the agent a spec string (``expert``, ``vlm:hf:PATH``, ...) names."""
    if isinstance(agent, AgentRef):
        return load(AGENT_FACTORY)(agent.spec, **agent.options)
    return load(AGENT_FACTORY)(agent) if isinstance(agent, str) else agent


class EvalWorker:
    """Runs suite tasks with one agent and a pool of ``batch_size`` environments.

    ``agent``: a spec string or an agent. With ``save_images`` every turn's images become PNG
    files (``images/<task_id>/tTT_KK.png``) returned with the row; every task is fingerprinted
    with :func:`~pyvision_gym.evaluation.hashing.task_content_hash` (the row's ``task_hash``).
    """

    def __init__(self, agent: Agent | AgentRef | str, config: SuiteConfig, batch_size: int = 4, save_images: bool = True) -> None:
        self.agent = make_agent(agent)
        self.config = config
        self._files: dict[int, dict[str, bytes]] = {}  # per TaskSpec.index
        self.engine = RolloutEngine(
            self.agent, self._make_env, batch_size,
            image_sink=self._save_images if save_images else None, fingerprint=task_content_hash,
        )

    def describe(self) -> dict[str, Any]:
        """The agent's identity for result files."""
        return self.agent.describe()

    def _make_env(self) -> PyVisionEnv:
        agent = self.agent
        return self.config.make_env(getattr(agent, "env_overrides", None), getattr(agent, "runtime_overrides", None))

    def _save_images(self, spec: TaskSpec, turn: int, images: Sequence[np.ndarray]) -> list[str]:
        files = self._files.setdefault(spec.index, {})
        refs = []
        for k, arr in enumerate(images):
            rel = image_path(spec.task_id, turn, k)
            files[rel] = encode_png(arr)
            refs.append(rel)
        return refs

    def run(self, specs: Sequence[TaskSpec], on_row: Callable[[dict[str, Any], dict[str, bytes]], None] | None = None) -> list[Result]:
        """Run the tasks; returns ``(row, files)`` sorted by suite index (``on_row`` gets each
        as its episode ends)."""
        results: list[Result] = []

        def emit(record: EpisodeRecord) -> None:
            result = (record.to_row(), self._files.pop(record.index, {}))
            results.append(result)
            if on_row is not None:
                on_row(*result)

        self.engine.run(specs, on_record=emit)
        results.sort(key=lambda rf: rf[0]["index"])
        return results

    def close(self) -> None:
        """Close every environment (their runtimes) and the agent."""
        self.engine.close()
        self.agent.close()
