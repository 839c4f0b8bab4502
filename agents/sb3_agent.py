"""``SB3Agent``: a stable-baselines3 policy trained on macro actions, played through the rollout engine.

The policy was trained on :class:`~pyvision_gym.integrations.sb3.MacroActionEnv`; this agent
rebuilds the same observation from what any agent sees (the prompt, the tool outputs and the
images shown, the family name in ``info``) and turns each chosen macro into the same env turns:
a tool macro's code turns one per ``act`` call, an answer slot as ``<answer>\\boxed{X}</answer>``.

Tasks the policy cannot play — a family it was not trained on, a free-text or large-number
question — get the :class:`~pyvision_gym.agents.baselines.DirectAgent`'s guess (``A`` / ``0`` /
``unknown``) at once. On the last allowed turn it answers with its most probable answer slot
instead of starting a tool.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyvision_gym.agents.baselines import direct_guess
from pyvision_gym.envs.experts import answer_action
from pyvision_gym.integrations.sb3 import MacroState, load_model
from pyvision_gym.rollout.agent import Agent, Episode

__all__ = ["DEFAULT_MODEL", "SB3Agent"]

#: The shipped PPO policy (``python -m pyvision_gym.benchmarks.sb3_baseline`` retrains it).
DEFAULT_MODEL = Path(__file__).resolve().parent / "checkpoints" / "sb3-ppo-image.zip"
_MAX_TRACKED = 1024


@dataclass
class _Play:
    """One episode in play: the policy's view and the tool macro in flight, if any."""

    state: MacroState | None
    tool: int | None = None
    start_turn: int = 0
    pending: list[str] = field(default_factory=list)


class SB3Agent(Agent):
    """Plays a saved SB3 macro policy (``sb3:PATH``; ``sb3`` alone loads :data:`DEFAULT_MODEL`)."""

    spec = "sb3"

    def __init__(self, path: str | Path | None = None, deterministic: bool = True) -> None:
        self.path = Path(path) if path else DEFAULT_MODEL
        self.model, self.config, self.meta = load_model(self.path)
        self.deterministic = bool(deterministic)
        self.spec = f"sb3:{path}" if path else "sb3"
        self._plays: OrderedDict[str, _Play] = OrderedDict()

    def describe(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()
        return {"spec": self.spec, "agent": "sb3", "algorithm": self.meta.get("algorithm"), "model_sha256": digest,
                "families": list(self.config.families), "tools": list(self.config.tools),
                "fallback": "direct guess on tasks outside the policy's families or answer slots"}

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        return [self._one(ep) for ep in episodes]

    def _play(self, ep: Episode) -> _Play:
        play = self._plays.get(ep.episode_id)
        if play is None or ep.turn == 0:
            state = None
            if ep.modality == self.config.modality:
                state = MacroState.start(self.config, ep.first.text, str(ep.info.get("family", "")),
                                         tuple(ep.first.images), bool(ep.info.get("toolbox")))
            play = _Play(state)
            self._plays[ep.episode_id] = play
            while len(self._plays) > _MAX_TRACKED:
                self._plays.popitem(last=False)
        return play

    def _one(self, ep: Episode) -> str:
        play = self._play(ep)
        state = play.state
        if state is None or not state.supported:
            return answer_action(direct_guess(ep.first.text))
        last_turn = state.task.max_turns is not None and ep.turn + 1 >= state.task.max_turns
        if play.pending and not last_turn:
            return play.pending.pop(0)
        if play.tool is not None:  # the macro finished (or is cut short on the last turn)
            shown = tuple(im for _, obs in ep.turns[play.start_turn:] for im in obs.images)
            state.record(play.tool, ep.turns[-1][1].text, shown, ep.info)
            play.tool, play.pending = None, []
        state.turn = ep.turn
        action = self._choose(state, last_turn)
        n_tools = len(self.config.tools)
        if action >= n_tools:
            return answer_action(state.slot_answer(action - n_tools))
        turns = state.tool_turns(self.config.tools[action])
        play.tool, play.start_turn, play.pending = action, ep.turn, turns[1:]
        return turns[0]

    def _choose(self, state: MacroState, answer_only: bool) -> int:
        """The policy's action; with ``answer_only`` its most probable answer slot."""
        obs = state.observation()
        if not answer_only:
            action, _ = self.model.predict(obs, deterministic=self.deterministic)
            return int(action)
        tensor, _ = self.model.policy.obs_to_tensor(obs)
        probs = self.model.policy.get_distribution(tensor).distribution.probs[0].detach().cpu().numpy()
        return len(self.config.tools) + int(np.argmax(probs[len(self.config.tools):]))
