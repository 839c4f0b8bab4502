"""toolbox=True with question_reader=True: the session holds the question and the family's
``read_question(question)``; the experts call it instead of restating the question's words."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import pytest

import pyvision_gym  # noqa: F401 - registers the environments
from pyvision_gym.agents.baselines import ExpertAgent
from pyvision_gym.envs import families_for
from pyvision_gym.envs.experts import ROOT as EXPERTS_ROOT
from pyvision_gym.envs.experts import expert_parameters, expert_source, helpers_preloaded
from pyvision_gym.rollout.agent import Episode, Observation

READ_LINE = re.compile(r"^(.*) = read_question\(question\)$", re.MULTILINE)
READERS = sorted(name for name in families_for("image") if (EXPERTS_ROOT / "image" / "experts" / f"question_{name}.py").is_file())


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pvg-cache")


def test_readers_exist_for_every_family_but_the_chart_and_the_tag():
    assert set(READERS) == set(families_for("image")) - {"chart_reading", "text_reading"}


@pytest.mark.parametrize("family_name", READERS)
def test_reader_returns_what_the_expert_reads_from_the_question(family_name, cache):
    """Run on the host, ``read_question`` gives the parameters the host-side expert derives."""
    family = families_for("image")[family_name]
    namespace: dict = {}
    exec(compile(expert_source("image", f"question_{family_name}"), family_name, "exec"), namespace)  # noqa: S102
    for seed in range(6):
        task = family.generate(seed=seed, difficulty=seed % 3, cache_dir=cache)
        with helpers_preloaded(True, question_reader=True):
            first = family.expert(task)[0]
        names = [n.strip() for n in READ_LINE.search(first).group(1).split(",")]
        params = expert_parameters(family, task)
        assert namespace["read_question"](task.question) == tuple(params[n] for n in names), task.question
        assert not any(re.search(rf"^{n} = ", first, re.MULTILINE) for n in names)  # no constant restates them


@pytest.mark.parametrize("family_name", ["counting", "real_photo_search", "text_reading"])
def test_the_expert_solves_episodes_through_the_reader_in_the_sandbox(family_name, cache):
    env = gym.make("PyVisionImage-v0", families=[family_name], difficulty=[0, 1, 2], toolbox=True,
                   question_reader=True, show_image=False, cache_dir=cache)
    try:
        for seed in range(3):
            obs, info = env.reset(seed=seed)
            task = env.unwrapped.task
            assert info["question_reader"] is True and "`question` (str) holds the question" in obs["text"]
            assert ("read_question(question)" in obs["text"]) == (family_name != "text_reading")
            ep = Episode("e", task.modality, Observation(obs["text"]), task=task, info=info)
            while True:
                action = ExpertAgent().act([ep])[0]
                if ep.turn == 0 and family_name == "counting":
                    assert "read_question(question)" in action and f"'{task.question.split()[2]}'" not in action
                o, _, terminated, truncated, info = env.step(action)
                ep.turns.append((action, Observation(o["text"], tuple(o["images"]))))
                if terminated or truncated:
                    break
            assert info["correct"] and info["tool_calls"] >= 1, ep.turns
    finally:
        env.close()


def test_question_reader_needs_the_toolbox():
    with pytest.raises(ValueError, match="question_reader=True .* needs toolbox=True"):
        gym.make("PyVisionImage-v0", question_reader=True)
