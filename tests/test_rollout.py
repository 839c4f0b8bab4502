"""The rollout engine: lock-step turns over several environments, records, failures kept per episode."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pyvision_gym.evaluation.suites import load_suite
from pyvision_gym.rollout import (
    ROW_FIELDS,
    Agent,
    EndEpisode,
    Episode,
    EpisodeRecord,
    RolloutEngine,
    TaskSpec,
    TranscriptTurn,
)


@dataclass
class FakeTask:
    """The task fields the engine reads."""

    task_id: str
    family: str
    difficulty: int
    question: str
    answer: str
    modality: str = "image"
    answer_type: str = "number"


class FakeEnv:
    """Seed ``s`` asks for the number ``s``; a turn ``answer N`` ends the episode, ``look`` shows an
    image, ``crash`` raises. Seed 99 cannot be reset."""

    modality = "image"

    def __init__(self, made: list[FakeEnv]) -> None:
        made.append(self)
        self.closed = False
        self.task: FakeTask | None = None

    @property
    def unwrapped(self) -> FakeEnv:
        return self

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        if seed == 99:
            raise RuntimeError("no such task")
        opts = options or {}
        self.task = FakeTask(f"{opts['family']}-s{seed}", opts["family"], opts["difficulty"], f"say {seed}", str(seed))
        self.turn = self.looks = 0
        return {"text": f"say {seed}", "images": (np.zeros((4, 4, 3), np.uint8),)}, self._info(None)

    def _info(self, end: str | None, **extra: Any) -> dict[str, Any]:
        return {"turn": self.turn, "end_reason": end, "tool_calls": self.looks, "images_shown": 1 + self.looks, "visual_tokens": 4 * (1 + self.looks), **extra}

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        assert self.task is not None
        self.turn += 1
        if action == "crash":
            raise RuntimeError("env exploded")
        if action == "look":
            self.looks += 1
            return {"text": "an image", "images": (np.ones((4, 4, 3), np.uint8),)}, 0.0, False, False, self._info(None)
        given = action.removeprefix("answer ")
        ok = given == self.task.answer
        info = self._info("DONE", answer=given, correct=ok, accuracy=float(ok), reward_terms={"accuracy": float(ok)})
        return {"text": "over", "images": ()}, float(ok), True, False, info

    def close(self) -> None:
        self.closed = True


class ScriptedAgent(Agent):
    """Looks once, then answers the number in the prompt (``wrong`` answers 0); records each batch."""

    spec = "scripted"

    def __init__(self, fail_on: str | None = None, crash_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on, self.crash_on = fail_on, crash_on

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        ids = [ep.episode_id for ep in episodes]
        self.batches.append(ids)
        if self.fail_on in ids:
            raise RuntimeError("boom")
        out = []
        for ep in episodes:
            if ep.episode_id == self.crash_on:
                out.append("crash")
            elif ep.turn == 0:
                out.append("look")
            else:
                out.append("answer " + ep.first.text.split()[-1])
        return out


def _spec(i: int, seed: int) -> TaskSpec:
    return TaskSpec(task_id=f"t{i}", index=i, family="fake", difficulty=1, seed=seed)


def _engine(agent: Agent, made: list[FakeEnv], batch_size: int = 2, **kw: Any) -> RolloutEngine:
    return RolloutEngine(agent, lambda: FakeEnv(made), batch_size, **kw)


def test_two_episodes_in_lock_step() -> None:
    made: list[FakeEnv] = []
    agent = ScriptedAgent()
    seen: list[str] = []
    sink = lambda spec, turn, images: [f"{spec.task_id}/{turn}/{k}" for k in range(len(images))]  # noqa: E731
    engine = _engine(agent, made, image_sink=sink, fingerprint=lambda task: "h-" + task.task_id)
    records = engine.run([_spec(1, 7), _spec(0, 3)], on_record=lambda r: seen.append(r.task_id))
    engine.close()
    assert agent.batches == [["t1", "t0"], ["t1", "t0"]]  # one act call per round, both episodes
    assert [r.index for r in records] == [0, 1] and sorted(seen) == ["fake-s3", "fake-s7"]
    for rec, seed in zip(records, (3, 7), strict=True):
        assert rec.task_id == f"fake-s{seed}" and rec.seed == seed and rec.difficulty == 1
        assert rec.correct and rec.reward == 1.0 and rec.accuracy == 1.0 and rec.answer == str(seed)
        assert rec.end_reason == "DONE" and rec.error is None and not rec.failed
        assert rec.turns == 2 and rec.tool_calls == 1 and rec.images_shown == 2 and rec.visual_tokens == 8
        assert rec.task_hash == f"h-fake-s{seed}" and rec.reward_terms == {"accuracy": 1.0}
        assert [(t.turn, t.action) for t in rec.transcript] == [(0, None), (1, "look"), (2, f"answer {seed}")]
        assert rec.transcript[1].images == [f"t{rec.index}/1/0"] and rec.transcript[2].images == []
        assert rec.episode is not None and rec.episode.turn == 2
    assert len(made) == 2 and all(env.closed for env in made)


def test_agent_error_is_isolated() -> None:
    made: list[FakeEnv] = []
    agent = ScriptedAgent(fail_on="t1")
    records = _engine(agent, made, batch_size=3).run([_spec(0, 1), _spec(1, 2), _spec(2, 3)])
    bad, good = records[1], [records[0], records[2]]
    assert bad.end_reason == "AGENT_ERROR" and bad.failed and "boom" in bad.error and bad.error.startswith("agent failed")
    assert not bad.correct and bad.reward == 0.0 and bad.answer is None and bad.task_id == "fake-s2"
    assert [t.turn for t in bad.transcript] == [0]
    assert all(r.correct and r.end_reason == "DONE" for r in good)
    # the batch failed, then each episode alone; the survivors go on together
    assert agent.batches[:4] == [["t0", "t1", "t2"], ["t0"], ["t1"], ["t2"]]
    assert agent.batches[4] == ["t0", "t2"]


def test_env_errors_end_their_episode() -> None:
    made: list[FakeEnv] = []
    agent = ScriptedAgent(crash_on="t1")
    records = _engine(agent, made, batch_size=3).run([_spec(0, 1), _spec(1, 2), _spec(2, 99)])
    crashed, unreset = records[1], records[2]
    assert crashed.end_reason == "ENV_ERROR" and "env exploded" in crashed.error and crashed.error.startswith("step failed")
    assert unreset.end_reason == "ENV_ERROR" and "reset failed" in unreset.error and "no such task" in unreset.error
    assert unreset.task_id == "t2" and unreset.transcript == [] and unreset.question is None and unreset.seed == 99
    assert records[0].correct
    assert sum(env.closed for env in made) == 2  # the broken environments, never reused


def test_batch_size_bounds_concurrency_and_envs_are_reused() -> None:
    made: list[FakeEnv] = []
    agent = ScriptedAgent()
    records = _engine(agent, made, batch_size=2).run([_spec(i, i + 1) for i in range(5)])
    assert max(len(b) for b in agent.batches) == 2 and len(made) == 2
    assert [r.index for r in records] == list(range(5)) and all(r.correct for r in records)


def test_error_row_format() -> None:
    rec = EpisodeRecord(index=3, task_id="x", family="f", modality="video", end_reason="ENV_ERROR", error="e", wall_s=0.5)
    rec.transcript.append(TranscriptTurn(0, None, "prompt", ["a.png"]))
    row = rec.to_row()
    assert tuple(row) == ROW_FIELDS
    assert row == {
        "index": 3, "task_id": "x", "family": "f", "modality": "video", "difficulty": None, "seed": None,
        "question": None, "answer": None, "ground_truth": None, "answer_type": None, "correct": False,
        "accuracy": 0.0, "reward": 0.0, "reward_terms": {}, "turns": 0, "tool_calls": 0, "tool_errors": 0,
        "images_shown": 0, "end_reason": "ENV_ERROR", "error": "e", "visual_tokens": 0,
        "visual_tokens_full_video": None, "wall_s": 0.5, "task_hash": None,
        "transcript": [{"turn": 0, "action": None, "observation": "prompt", "images": ["a.png"]}],
    }


def test_reset_kwargs() -> None:
    assert TaskSpec("a", seed=4, family="f", difficulty=2).reset_kwargs() == {"seed": 4, "options": {"family": "f", "difficulty": 2}}
    assert TaskSpec("a", dataset_row=5, seed=4).reset_kwargs() == {"options": {"index": 5}}
    assert TaskSpec("a").reset_kwargs() == {"seed": None, "options": {}}


class Answer(Agent):
    """Answers at once."""

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        return ["<answer>1</answer>"] * len(episodes)


def test_real_environments(tmp_path: Path) -> None:
    suite = load_suite("demo-image-v0")
    config = suite.config(tmp_path)
    engine = RolloutEngine(Answer(), config.make_env, batch_size=2)
    try:
        records = engine.run(suite.task_specs()[:2])
    finally:
        engine.close()
    assert [r.task_id for r in records] == [t["task_id"] for t in suite.tasks[:2]]
    assert all(r.end_reason == "DONE" and r.turns == 1 and r.modality == "image" for r in records)
    assert all(r.transcript[0].observation and r.ground_truth is not None for r in records)


@pytest.mark.parametrize("bad", [["a", "b", "c"], [1, 2, 3]])
def test_malformed_actions_are_agent_errors(bad: list[Any]) -> None:
    class Bad(Agent):
        def act(self, episodes: Sequence[Episode]) -> list[Any]:
            return bad

    records = _engine(Bad(), [], batch_size=2).run([_spec(0, 1), _spec(1, 2)])
    assert all(r.end_reason == "AGENT_ERROR" and "TypeError" in r.error for r in records)


class EndsLongOnes(ScriptedAgent):
    """Ends the episode of seed 7 before its second turn (as the trainer does at OVER_LENGTH)."""

    def act(self, episodes: Sequence[Episode]) -> list[str | EndEpisode]:
        out: list[str | EndEpisode] = list(super().act(episodes))
        return [EndEpisode("OVER_LENGTH", "no room") if ep.turn == 1 and ep.first.text == "say 7" else a for ep, a in zip(episodes, out, strict=True)]


def test_an_agent_can_end_an_episode() -> None:
    made: list[FakeEnv] = []
    records = _engine(EndsLongOnes(), made, batch_size=2).run([_spec(0, 7), _spec(1, 3)])
    ended, other = records
    assert ended.end_reason == "OVER_LENGTH" and ended.error == "no room" and not ended.failed
    assert ended.reward == 0.0 and not ended.correct and ended.answer is None and ended.reward_terms == {}
    assert ended.turns == 1 and [t.action for t in ended.transcript] == [None, "look"]  # the env was not stepped again
    assert other.correct and other.end_reason == "DONE"
    assert len(made) == 2 and not any(env.closed for env in made)  # an agent-ended env is reused, not broken
    with pytest.raises(ValueError, match="upper-case"):
        EndEpisode("running")
