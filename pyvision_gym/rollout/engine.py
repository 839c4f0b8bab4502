"""The rollout engine: one agent drives many environments in lock-step.

    engine = RolloutEngine(agent, lambda: PyVisionEnv(modality="image"), batch_size=4)
    records = engine.run([TaskSpec("t0", seed=0), TaskSpec("t1", index=1, seed=1)])
    engine.close()

Each round the engine resets idle environments onto the next tasks (up to ``batch_size``
episodes at once), calls ``agent.act`` once with every episode that needs a turn, and steps
every environment with its action; resets and steps run on a thread per environment. An
episode ends when its environment terminates or truncates it, and becomes an
:class:`~pyvision_gym.rollout.records.EpisodeRecord`.

Failures stay inside their episode: when ``agent.act`` raises (or returns something other
than one string per episode) the batch is retried one episode at a time and the failing ones
end as ``AGENT_ERROR``; an environment that raises ends its episode as ``ENV_ERROR`` and is
closed and replaced. The other episodes go on. An agent may end an episode itself by
returning :class:`~pyvision_gym.rollout.agent.EndEpisode` for it: the environment is not
stepped and the record carries the agent's end reason (reward 0).

The engine writes no files and knows nothing of suites: callers pass an ``image_sink`` that
turns a turn's images into references (file names, say) and a ``fingerprint`` of each task.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .agent import Agent, EndEpisode, Episode, Observation
from .records import EpisodeRecord, TaskSpec, TranscriptTurn

__all__ = ["EnvFactory", "ImageSink", "RolloutEngine"]

EnvFactory = Callable[[], Any]
"""Builds one environment (a ``PyVisionEnv`` or anything with its reset/step/close/task)."""
ImageSink = Callable[[TaskSpec, int, Sequence[np.ndarray]], list[str]]
"""``(task, turn, images) -> references``: what a transcript turn lists for its images."""
RecordCallback = Callable[[EpisodeRecord], None]
ERROR_TEXT_CHARS = 4000


def error_text(exc: BaseException) -> str:
    """The exception's traceback, its last :data:`ERROR_TEXT_CHARS` characters."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-ERROR_TEXT_CHARS:]


@dataclass
class _Running:
    """One running episode: its environment, the agent's view, what the record needs."""

    spec: TaskSpec
    env: Any
    episode: Episode
    task: Any
    t0: float
    task_hash: str | None
    transcript: list[TranscriptTurn]
    info: dict[str, Any]
    reward: float = 0.0


class RolloutEngine:
    """Runs tasks with one agent and a pool of environments, up to ``batch_size`` at once.

    ``make_env`` builds an environment when the pool has no idle one. ``image_sink`` (default:
    no references) names each turn's images; ``fingerprint`` maps a task to the string stored
    as ``EpisodeRecord.task_hash``. The engine owns its environments (:meth:`close` closes
    them), not the agent.
    """

    def __init__(
        self,
        agent: Agent,
        make_env: EnvFactory,
        batch_size: int = 4,
        *,
        image_sink: ImageSink | None = None,
        fingerprint: Callable[[Any], str] | None = None,
    ) -> None:
        self.agent = agent
        self.make_env = make_env
        self.batch_size = max(1, int(batch_size))
        self.image_sink = image_sink
        self.fingerprint = fingerprint
        self._idle: list[Any] = []
        self._pool: ThreadPoolExecutor | None = None

    # -------------------------------------------------------------- environments
    def _take_env(self) -> Any:
        return self._idle.pop() if self._idle else self.make_env()

    def _give_env(self, env: Any, broken: bool = False) -> None:
        if not broken:
            self._idle.append(env)
            return
        try:
            env.close()
        except Exception:  # noqa: BLE001 - a broken environment may fail to close
            pass

    def close(self) -> None:
        """Close the idle environments (their runtimes) and the worker threads."""
        for env in self._idle:
            env.close()
        self._idle = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` on the engine's threads (each item owns its environment)."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.batch_size, thread_name_prefix="pvg-env")
        return list(self._pool.map(fn, items))

    # -------------------------------------------------------------- one episode
    def _refs(self, spec: TaskSpec, turn: int, images: Sequence[np.ndarray]) -> list[str]:
        return self.image_sink(spec, turn, images) if self.image_sink is not None else []

    def _start(self, spec: TaskSpec, env: Any) -> _Running | EpisodeRecord:
        """Reset ``env`` onto ``spec`` (thread-safe: touches only ``env``); a failure is a record."""
        t0 = time.perf_counter()
        modality = env.unwrapped.modality
        try:
            obs, info = env.reset(**spec.reset_kwargs())
            task = env.unwrapped.task
            task_hash = self.fingerprint(task) if self.fingerprint is not None else None
        except Exception as exc:  # noqa: BLE001 - a task that cannot start is an unfinished episode
            return EpisodeRecord(
                index=spec.index, task_id=spec.task_id, family=spec.family, modality=modality,
                difficulty=spec.difficulty, seed=spec.seed, end_reason="ENV_ERROR",
                error=f"reset failed: {error_text(exc)}", wall_s=round(time.perf_counter() - t0, 4),
            )
        episode = Episode(
            episode_id=spec.task_id, modality=modality, first=Observation(obs["text"], tuple(obs["images"])),
            task=task if getattr(self.agent, "privileged", False) else None, info=dict(info),
        )
        first = TranscriptTurn(0, None, obs["text"], self._refs(spec, 0, obs["images"]))
        return _Running(spec, env, episode, task, t0, task_hash, [first], dict(info))

    def _step(self, run: _Running, action: str) -> bool:
        """Apply one action; True when the episode ended."""
        obs, reward, terminated, truncated, info = run.env.step(action)
        turn = int(info["turn"])
        run.transcript.append(TranscriptTurn(turn, action, obs["text"], self._refs(run.spec, turn, obs["images"])))
        run.episode.turns.append((action, Observation(obs["text"], tuple(obs["images"]))))
        run.episode.info = dict(info)
        run.info, run.reward = dict(info), float(reward)
        return bool(terminated or truncated)

    def _apply(self, run: _Running, action: str | EndEpisode | BaseException) -> tuple[str, str | None]:
        """Step one episode: ("running" | "ended" | "AGENT_ERROR" | "ENV_ERROR" | the agent's
        end reason, error text)."""
        if isinstance(action, BaseException):
            return "AGENT_ERROR", f"agent failed: {error_text(action)}"
        if isinstance(action, EndEpisode):
            return action.reason, action.detail
        try:
            return ("ended" if self._step(run, action) else "running"), None
        except Exception as exc:  # noqa: BLE001 - env failures become ENV_ERROR episodes
            return "ENV_ERROR", f"step failed: {error_text(exc)}"

    @staticmethod
    def _record(run: _Running, failure: str | None = None, error: str | None = None) -> EpisodeRecord:
        """The record of an episode the env ended (``failure`` None), one that failed or one
        the agent ended (``failure`` is then the end reason)."""
        info, task, ended = run.info, run.task, failure is None
        return EpisodeRecord(
            index=run.spec.index, task_id=task.task_id, family=task.family, modality=task.modality,
            difficulty=run.spec.difficulty if run.spec.difficulty is not None else task.difficulty,
            seed=run.spec.seed, question=task.question,
            answer=info.get("answer") if ended else None, ground_truth=task.answer, answer_type=task.answer_type,
            correct=bool(info.get("correct", False)) if ended else False,
            accuracy=float(info.get("accuracy", 0.0)) if ended else 0.0,
            reward=run.reward if ended else 0.0,
            reward_terms=dict(info.get("reward_terms") or {}) if ended else {},
            turns=int(info.get("turn", 0)), tool_calls=int(info.get("tool_calls", 0)),
            tool_errors=int(info.get("tool_errors", 0)), images_shown=int(info.get("images_shown", 0)),
            end_reason=info.get("end_reason") if ended else failure, error=error,
            visual_tokens=int(info.get("visual_tokens", 0)), visual_tokens_full_video=info.get("visual_tokens_full_video"),
            wall_s=round(time.perf_counter() - run.t0, 4), task_hash=run.task_hash,
            transcript=run.transcript, episode=run.episode,
        )

    # -------------------------------------------------------------- the lock-step loop
    def _act(self, runs: Sequence[_Running]) -> list[str | EndEpisode | BaseException]:
        """``agent.act`` on the batch; on failure, one episode at a time to isolate the culprit."""
        episodes = [r.episode for r in runs]
        try:
            out = self.agent.act(episodes)
            if not isinstance(out, (list, tuple)) or len(out) != len(episodes):
                got = len(out) if hasattr(out, "__len__") else "?"
                raise TypeError(f"agent.act returned {type(out).__name__} of length {got} for {len(episodes)} episodes")
            bad = [type(a).__name__ for a in out if not isinstance(a, (str, EndEpisode))]
            if bad:
                raise TypeError(f"agent.act must return strings (or EndEpisode), got {bad[0]}")
            return list(out)
        except Exception as exc:  # noqa: BLE001 - agent failures become AGENT_ERROR episodes
            if len(runs) == 1:
                return [exc]
            return [self._act([r])[0] for r in runs]

    def _fill(self, pending: deque[TaskSpec], active: list[_Running], done: RecordCallback) -> None:
        """Start tasks from ``pending`` until ``batch_size`` episodes run."""
        new = []
        while pending and len(active) + len(new) < self.batch_size:
            new.append((pending.popleft(), self._take_env()))
        for started, (_, env) in zip(self._map(lambda a: self._start(*a), new), new, strict=True):
            if isinstance(started, _Running):
                active.append(started)
            else:
                self._give_env(env, broken=True)
                done(started)

    def _turn(self, active: list[_Running], done: RecordCallback) -> list[_Running]:
        """One lock-step round: act on every episode, step them; returns those still running."""
        actions = self._act(active)
        outcomes = self._map(lambda ra: self._apply(*ra), list(zip(active, actions, strict=True)))
        still: list[_Running] = []
        for run, (state, err) in zip(active, outcomes, strict=True):
            if state == "running":
                still.append(run)
                continue
            self._give_env(run.env, broken=state == "ENV_ERROR")
            done(self._record(run, None if state == "ended" else state, err))
        return still

    def run(self, tasks: Sequence[TaskSpec], on_record: RecordCallback | None = None) -> list[EpisodeRecord]:
        """Run every task; returns the records sorted by ``TaskSpec.index``.

        ``on_record`` is called with each record as its episode ends (in the calling thread).
        """
        pending = deque(tasks)
        active: list[_Running] = []
        records: list[EpisodeRecord] = []

        def done(record: EpisodeRecord) -> None:
            records.append(record)
            if on_record is not None:
                on_record(record)

        while pending or active:
            self._fill(pending, active, done)
            if active:
                active = self._turn(active, done)
        records.sort(key=lambda r: r.index)
        return records
