"""Vector environments by the book (issue 8): async with default arguments, autoreset, spec."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import pyvision_gym  # noqa: F401 - registers the environments

CODE = "<code>\n```python\nprint(image.size); display(image.crop((0, 0, 30, 20)))\n```\n</code>"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["async", "sync"])
def test_make_vec_runs_with_no_extra_arguments(mode, tmp_path):
    envs = gym.make_vec("PyVisionImage-v0", num_envs=3, vectorization_mode=mode,
                        families="counting", difficulty=0, cache_dir=tmp_path)
    try:
        obs, info = envs.reset(seed=0)
        assert len(obs["text"]) == 3 and all("Question" in t for t in obs["text"])
        assert all(len(imgs) == 1 and imgs[0].ndim == 3 for imgs in obs["images"])
        obs, reward, terminated, truncated, info = envs.step([CODE] * 3)
        assert all(t.strip().splitlines()[0].startswith("(") for t in obs["text"])
        assert all(len(imgs) == 1 and imgs[0].shape == (20, 30, 3) for imgs in obs["images"])
        assert list(info["tool_calls"]) == [1, 1, 1]
        obs, reward, terminated, truncated, info = envs.step(["<answer>\\boxed{3}</answer>"] * 3)
        assert terminated.all() and np.isfinite(reward).all()
    finally:
        envs.close()


@pytest.mark.slow
def test_same_step_autoreset_fills_final_info(tmp_path):
    envs = gym.make_vec("PyVisionImage-v0", num_envs=2, vectorization_mode="async",
                        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
                        families="counting", difficulty=0, cache_dir=tmp_path)
    try:
        envs.reset(seed=0)
        obs, reward, terminated, truncated, info = envs.step(["<answer>\\boxed{1}</answer>"] * 2)
        assert terminated.all()
        assert list(info["final_info"]["end_reason"]) == ["DONE", "DONE"]
        assert all("Question" in t for t in obs["text"])  # already the next episode's prompt
    finally:
        envs.close()


def test_spec_max_episode_steps_follows_max_turns(tmp_path):
    env = gym.make("PyVisionImage-Counting-v0", max_turns=3, difficulty=0, cache_dir=tmp_path)
    assert env.spec.max_episode_steps == 3 == env.unwrapped.max_turns
    assert gym.make("PyVisionImage-v0", cache_dir=tmp_path).spec.max_episode_steps == 5
    env.reset(seed=0)
    for turn in range(1, 4):
        *_, terminated, truncated, info = env.step("thinking")
        assert (truncated, info["end_reason"]) == ((True, "EXCEED_MAX_TURNS") if turn == 3 else (False, None))
    env.close()


def test_spaces_have_a_short_repr(tmp_path):
    env = gym.make("PyVisionVideo-v0", cache_dir=tmp_path)
    assert len(repr(env.observation_space)) < 200 and len(repr(env.action_space)) < 100
    assert "UnicodeText(max_length=65536)" == repr(env.action_space)
    env.close()
