"""Token-in-token-out episodes over the rollout engine: what the learner trains on.

    runner = RolloutRunner(env_factory(cfg.env), engine, codec, sampling, max_length=cfg.rollout.max_length)
    trajectories = runner.collect(specs, n=cfg.rollout.n, seed=step_seed)   # len(specs) * n

The environments are driven by the evaluation's own lock-step
:class:`~pyvision_gym.rollout.engine.RolloutEngine`; the model side is a
:class:`TokenPolicyAgent` that keeps each episode as token ids:

- the first turn encodes the reset observation once (``codec.prompt``: system + user +
  assistant header, images expanded to their placeholder tokens);
- every later turn encodes only the newest observation (``codec.observation``: turn end,
  the tool output as a user turn, the next assistant header), numbering its images after
  the episode's earlier ones;
- every live episode goes into ONE ``engine.generate`` call per round (stopping at the
  codec's stop strings and end-of-turn ids); the generated ids are
  appended as they came, with the sampler's log-probs, under the loss mask; the action the
  environment sees is their decoded text (a trailing end-of-turn token removed). Generated
  ids are never decoded and re-encoded. When the model ended its turn with an end-of-turn
  id that the observation delta starts with too (``<|im_end|>``), the delta's copy is dropped.

**Length limits.** A turn may generate ``max_new_tokens`` (``sampling.max_new_tokens``) but
never past ``max_length`` in total: the room left is the request's ``max_new_tokens``. An
observation that does not fit (no room left for at least one generated token after it) is
not cut: the agent ends the episode with end reason ``OVER_LENGTH`` (reward 0), the ids
stopping after the last action.

**Determinism.** Round ``r`` of a :meth:`RolloutRunner.collect` call samples with seed
``SeedSequence([seed, r])``, so a fixed seed gives the same trajectories.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np

from pyvision_gym.rollout import Agent, EndEpisode, Episode, EpisodeRecord, RolloutEngine, TaskSpec

from .codec import ChatCodec, Encoded
from .config import EnvConfig
from .engines.base import GenerationEngine, GenRequest, Sampling
from .ray_envs import ray_env_factory
from .trajectory import Trajectory

__all__ = ["OVER_LENGTH", "RolloutError", "RolloutRunner", "TokenPolicyAgent", "TokenState", "env_factory", "groups"]

OVER_LENGTH = "OVER_LENGTH"


class RolloutError(RuntimeError):
    """An episode the trainer cannot learn from because something broke (not the policy)."""


@dataclass
class TokenState:
    """One episode as token ids: ``ids`` = prompt + a1 + o1 + a2 + ...; ``mask`` 1 on the a_i."""

    ids: list[int]
    mask: list[int]
    logp: list[float]
    images: list[np.ndarray]
    grids: list[tuple[int, int, int]]
    prompt_len: int
    turns_encoded: int = 0  # observations (after the first) already in ``ids``
    finish_reasons: list[str] = field(default_factory=list)

    @classmethod
    def from_prompt(cls, enc: Encoded) -> TokenState:
        n = len(enc.ids)
        return cls(list(enc.ids), [0] * n, [0.0] * n, list(enc.images), list(enc.image_grid_thw), prompt_len=n)

    def extended(self, enc: Encoded) -> TokenState:
        """A copy with an observation delta appended (not in the loss)."""
        n = len(enc.ids)
        return replace(
            self, ids=self.ids + list(enc.ids), mask=self.mask + [0] * n, logp=self.logp + [0.0] * n,
            images=self.images + list(enc.images), grids=self.grids + list(enc.image_grid_thw),
            turns_encoded=self.turns_encoded + 1,
        )  # fmt: skip


class TokenPolicyAgent(Agent):
    """An :class:`Agent` whose episodes are token ids (see the module docstring).

    ``states`` maps each episode id to its :class:`TokenState`; :meth:`reset` clears it and
    sets the seed of the next rounds.
    """

    spec = "train:token-policy"

    def __init__(self, engine: GenerationEngine, codec: ChatCodec, sampling: Sampling, max_length: int) -> None:
        self.engine, self.codec = engine, codec
        self.sampling = replace(sampling, stop_strings=tuple(codec.stop_strings))  # the model family's
        self.max_length = int(max_length)
        self.eos = set(codec.eos_token_ids)
        self.states: dict[str, TokenState] = {}
        self.seed: int | None = sampling.seed
        self.rounds = 0

    def reset(self, seed: int | None) -> None:
        """Forget every episode; sample round ``r`` from now on with ``SeedSequence([seed, r])``."""
        self.states, self.seed, self.rounds = {}, seed, 0

    def _round_seed(self) -> int | None:
        if self.seed is None:
            return None
        return int(np.random.SeedSequence([int(self.seed), self.rounds]).generate_state(1)[0])

    def _advance(self, episode: Episode) -> TokenState:
        """The episode's state with every observation it has not encoded yet (not stored)."""
        state = self.states.get(episode.episode_id)
        if state is None:
            state = TokenState.from_prompt(self.codec.prompt(episode.first.text, list(episode.first.images)))
        while state.turns_encoded < episode.turn:
            obs = episode.turns[state.turns_encoded][1]
            delta = self.codec.observation(obs.text, list(obs.images), len(state.images))
            closed = state.mask[-1] == 1 and state.ids[-1] in self.eos
            if closed and delta.ids and delta.ids[0] == state.ids[-1]:
                delta = replace(delta, ids=delta.ids[1:])  # the model already closed its turn
            state = state.extended(delta)
        return state

    def act(self, episodes: Sequence[Episode]) -> list[str | EndEpisode]:
        """One generation round for every live episode; an observation that does not fit
        ends its episode as ``OVER_LENGTH``. Nothing is stored unless generation succeeds."""
        out: list[str | EndEpisode | None] = [None] * len(episodes)
        pending: list[tuple[int, TokenState]] = []
        for i, ep in enumerate(episodes):
            state = self._advance(ep)
            room = self.max_length - len(state.ids)
            if room < 1:
                out[i] = EndEpisode(OVER_LENGTH, f"{len(state.ids)} tokens with the next observation, max_length {self.max_length}")
                if ep.episode_id not in self.states:  # the prompt alone: kept (all masked) for the record
                    self.states[ep.episode_id] = state
                continue
            pending.append((i, state))
        requests = [
            GenRequest(s.ids, s.images, max_new_tokens=min(self.sampling.max_new_tokens, self.max_length - len(s.ids))) for _, s in pending
        ]
        results = self.engine.generate(requests, replace(self.sampling, seed=self._round_seed())) if requests else []
        self.rounds += 1
        for (i, state), res in zip(pending, results, strict=True):
            n = len(res.ids)
            state.ids, state.mask, state.logp = state.ids + list(res.ids), state.mask + [1] * n, state.logp + list(res.logprobs)
            state.finish_reasons.append(res.finish_reason)
            self.states[episodes[i].episode_id] = state
            text_ids = res.ids[:-1] if res.ids and res.ids[-1] in self.eos else res.ids
            out[i] = self.codec.decode(text_ids)
        return [a for a in out if a is not None]


def _observation_images(record: EpisodeRecord) -> int:
    episode = record.episode
    return sum(len(obs.images) for _, obs in episode.turns) if episode is not None else 0


def _trajectory(state: TokenState, record: EpisodeRecord, group_id: int) -> Trajectory:
    return Trajectory(
        ids=np.asarray(state.ids, np.int64), loss_mask=np.asarray(state.mask, np.uint8),
        sampler_logp=np.asarray(state.logp, np.float32), images=list(state.images),
        image_grid_thw=np.asarray(state.grids, np.int64).reshape(-1, 3),
        reward=float(record.reward), reward_terms={k: float(v) for k, v in record.reward_terms.items()},
        end_reason=record.end_reason, turns=record.turns, tool_calls=record.tool_calls, tool_errors=record.tool_errors,
        images_shown=_observation_images(record), accuracy=float(record.accuracy), correct=bool(record.correct),
        group_id=group_id, task_id=record.task_id, prompt_len=state.prompt_len,
        info={"finish_reasons": list(state.finish_reasons), "seed": record.seed, "family": record.family, "error": record.error},
    )  # fmt: skip


class RolloutRunner:
    """Runs task specs ``n`` times each with a :class:`TokenPolicyAgent` and returns
    validated :class:`Trajectory` objects (``batch_size`` episodes run at once)."""

    def __init__(
        self,
        make_env: Callable[[], Any],
        engine: GenerationEngine,
        codec: ChatCodec,
        sampling: Sampling,
        max_length: int,
        batch_size: int = 64,
    ) -> None:
        self.codec = codec
        self.agent = TokenPolicyAgent(engine, codec, sampling, max_length)
        self.rollouts = RolloutEngine(self.agent, make_env, batch_size=batch_size)
        self.records: list[EpisodeRecord] = []
        """The last :meth:`collect`'s episode records (transcripts, observations), in trajectory order."""

    def collect(self, specs: Sequence[TaskSpec], n: int, seed: int | None = None, first_group: int = 0) -> list[Trajectory]:
        """``n`` episodes of every spec; trajectories in spec order, group ids ``first_group + i``.

        ``seed`` (default: the sampling's) seeds this call's generation rounds: pass a new one
        per generation batch (e.g. derived from the step), the same one to replay a batch.

        Raises :class:`RolloutError` when an episode could not start or the agent (the
        engine) raised; an environment that fails mid-episode gives an ``ENV_ERROR``
        trajectory instead (reward 0), which the end-reason filter removes.
        """
        runs = [
            TaskSpec(f"{s.task_id}#{k}", index=i * n + k, family=s.family, difficulty=s.difficulty, seed=s.seed, dataset_row=s.dataset_row)
            for i, s in enumerate(specs)
            for k in range(n)
        ]
        self.agent.reset(self.agent.sampling.seed if seed is None else seed)
        self.records = records = self.rollouts.run(runs)
        trajectories = []
        for run, record in zip(runs, records, strict=True):
            state = self.agent.states.get(run.task_id)
            if state is None or record.end_reason == "AGENT_ERROR":
                raise RolloutError(f"episode {run.task_id} failed ({record.end_reason}): {record.error}")
            traj = _trajectory(state, record, first_group + run.index // n)
            traj.validate(self.codec.image_token_id, self.codec.merge_size)
            trajectories.append(traj)
        self.agent.states = {}
        return trajectories

    def close(self) -> None:
        """Close the environments."""
        self.rollouts.close()


def groups(trajectories: Sequence[Trajectory]) -> list[list[Trajectory]]:
    """Trajectories split into their groups (consecutive runs of one ``group_id``)."""
    out: list[list[Trajectory]] = []
    for t in trajectories:
        if out and out[-1][0].group_id == t.group_id:
            out[-1].append(t)
        else:
            out.append([t])
    return out


def env_factory(cfg: EnvConfig, split: str = "train") -> Callable[[], Any]:
    """Builds the configured environment (``gym.make(cfg.id, ...)``) on ``split``: in this
    process (``cfg.backend: local``) or as a Ray actor (``ray``: see ``ray_envs.py``)."""
    kwargs = dict(
        max_turns=cfg.max_turns, tool_reward_per_turn=cfg.tool_reward_per_turn, reward=cfg.reward,
        terminate_on_error=cfg.terminate_on_error, cache_dir=cfg.cache_dir, split=split, **cfg.kwargs,
    )  # fmt: skip
    if cfg.backend == "ray":
        return ray_env_factory(cfg.id, kwargs, cfg.workers, cfg.ray_options or None)
    if cfg.backend != "local":
        raise ValueError(f"env.backend must be 'local' or 'ray', got {cfg.backend!r}")
    return functools.partial(gym.make, cfg.id, **kwargs)
