"""The SB3 plug: macro-action env (spaces, check_env, turns, rewards, seeds), saved models, the agent."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("stable_baselines3", reason="stable-baselines3 is in the 'train' extra")

from gymnasium.utils.env_checker import check_env as gym_check_env  # noqa: E402
from stable_baselines3.common.env_checker import check_env as sb3_check_env  # noqa: E402

from pyvision_gym.agents.registry import make_agent  # noqa: E402
from pyvision_gym.agents.sb3_agent import DEFAULT_MODEL, SB3Agent  # noqa: E402
from pyvision_gym.env import PyVisionEnv  # noqa: E402
from pyvision_gym.envs import families_for  # noqa: E402
from pyvision_gym.envs.experts import answer_action, code_action  # noqa: E402
from pyvision_gym.integrations.sb3 import (  # noqa: E402
    DEFAULT_FAMILIES,
    MacroActionEnv,
    MacroConfig,
    load_model,
    parse_prompt,
    read_model_meta,
    save_model,
)
from pyvision_gym.rollout import RolloutEngine, TaskSpec  # noqa: E402

CHEAP = ("counting", "spatial_relation")  # small canvases: fast resets


@pytest.fixture(scope="module")
def cheap_env(tmp_path_factory: pytest.TempPathFactory):
    env = MacroActionEnv(MacroConfig(families=CHEAP), max_turns=8, cache_dir=tmp_path_factory.mktemp("cache"))
    yield env
    env.close()


def test_check_env_passes_sb3_and_gymnasium(cheap_env: MacroActionEnv) -> None:
    sb3_check_env(cheap_env, warn=True)
    gym_check_env(cheap_env, skip_render_check=True)


@pytest.mark.slow
def test_observations_have_one_shape_across_families(tmp_path) -> None:
    config = MacroConfig(tools=("program", "look"))
    env = MacroActionEnv(config, max_turns=8, cache_dir=tmp_path)
    try:
        for i, family in enumerate(DEFAULT_FAMILIES["image"]):
            obs, info = env.reset(seed=i, options={"family": family})
            assert info["family"] == family
            assert env.observation_space.contains(obs), family
            assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
            assert obs["task"].shape == (config.vector_size,) and obs["task"].dtype == np.float32
            obs, *_ = env.step(1)  # "look": a zoom is shown and becomes the image observation
            assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_prompt_parsing_recovers_question_and_options(cheap_env: MacroActionEnv) -> None:
    for seed in range(6):
        obs, info = cheap_env.env.reset(seed=seed)
        task = cheap_env.env.unwrapped.task
        parsed = parse_prompt(obs["text"], info["family"])
        assert parsed.question == task.question.strip()
        assert list(parsed.options) == list(task.options or [])
        assert parsed.kind == ("choice" if task.options else "count")
        assert parsed.max_turns == 8


@pytest.mark.parametrize("family", CHEAP)
def test_program_macro_runs_the_family_program_and_answer_slot_pays_env_reward(cheap_env: MacroActionEnv, family: str) -> None:
    obs, _ = cheap_env.reset(seed=3, options={"family": family})
    base = cheap_env.env.unwrapped
    task = base.task
    program = [code_action(src) for src in families_for("image")[family].expert(task)]
    obs, reward, term, trunc, info = cheap_env.step(0)
    assert [r.action for r in base.transcript] == program  # the scripted program, built from the prompt
    assert (reward, term, trunc, info["tool_calls"], info["macro"]) == (0.0, False, False, len(program), "tool:program")
    # The program's last line names the answer; the digest one-hot points at that slot.
    slots = cheap_env.config.answer_slots
    truth = "ABCDEFGH".index(task.answer) if task.options else int(task.answer)
    digest = obs["task"][-(slots + 3):-2]
    assert cheap_env.state.digest == truth and digest[truth] == 1.0 and digest.sum() == 1.0
    obs, reward, term, trunc, info = cheap_env.step(len(cheap_env.config.tools) + truth)
    assert base.transcript[-1].action == answer_action(task.answer)
    assert term and info["correct"] and reward == pytest.approx(1.0 + 0.1 * len(program))


def test_wrong_slot_scores_zero_and_spaces_are_guarded(cheap_env: MacroActionEnv) -> None:
    cheap_env.reset(seed=5, options={"family": "spatial_relation"})
    wrong = next(j for j in range(4) if "ABCD"[j] != cheap_env.env.unwrapped.task.answer)
    _, reward, term, _, info = cheap_env.step(1 + wrong)
    assert term and reward == 0.0 and info["answer"] == "ABCD"[wrong] and info["tool_calls"] == 0
    with pytest.raises(RuntimeError, match="reset"):
        cheap_env.step(0)
    cheap_env.reset(seed=5)
    with pytest.raises(ValueError, match="outside Discrete"):
        cheap_env.step(cheap_env.action_space.n)
    with pytest.raises(ValueError, match="families must be"):
        MacroConfig(families=("no_such_family",))
    with pytest.raises(ValueError, match="unknown tools"):
        MacroConfig(tools=("hammer",))


def test_same_seed_same_episode(tmp_path) -> None:
    config = MacroConfig(families=("counting", "chart_reading"))  # chart number questions are redrawn
    runs = []
    for _ in range(2):
        env = MacroActionEnv(config, max_turns=8, cache_dir=tmp_path)
        trace = []
        for seed in (0, 1, 2, 7):
            obs, info = env.reset(seed=seed)
            for action in (0, 3):
                step = env.step(action)
                trace.append((info["task_id"], step[0]["task"].tobytes(), step[0]["image"].tobytes(), step[1]))
                if step[2] or step[3]:
                    break
        env.close()
        runs.append(trace)
    assert runs[0] == runs[1]
    assert len({t[0] for t in runs[0]}) > 1


def _engine_records(agent, tmp_path, specs):
    engine = RolloutEngine(agent, lambda: PyVisionEnv(families=list(CHEAP), max_turns=8, cache_dir=tmp_path), batch_size=2)
    try:
        return engine.run(specs)
    finally:
        engine.close()


def test_agent_sees_what_the_wrapper_saw(tmp_path, monkeypatch) -> None:
    """The agent rebuilds the wrapper's observation from the rollout's episode (scripted choices)."""
    agent = SB3Agent(DEFAULT_MODEL)
    seen: list[dict[str, np.ndarray]] = []

    def scripted(state, answer_only):  # program first, then the slot its output names
        seen.append(state.observation())
        return 0 if state.tool_uses[0] == 0 else len(agent.config.tools) + state.digest

    monkeypatch.setattr(agent, "_choose", scripted)
    records = _engine_records(agent, tmp_path, [TaskSpec("t", seed=4, family="spatial_relation")])
    assert records[0].correct and records[0].tool_calls == 2 and records[0].turns == 3
    env = MacroActionEnv(agent.config, max_turns=8, cache_dir=tmp_path)
    try:
        first, _ = env.reset(seed=4, options={"family": "spatial_relation"})
        after, *_ = env.step(0)
    finally:
        env.close()
    for got, want in zip(seen, (first, after), strict=True):
        np.testing.assert_array_equal(got["task"], want["task"])
        np.testing.assert_array_equal(got["image"], want["image"])


def test_agent_falls_back_to_the_direct_guess(tmp_path) -> None:
    agent = make_agent("sb3")
    engine = RolloutEngine(agent, lambda: PyVisionEnv(families=["measurement"], max_turns=8, cache_dir=tmp_path))
    try:
        record = engine.run([TaskSpec("m", seed=0)])[0]
    finally:
        engine.close()
    assert record.turns == 1 and record.answer == "0" and record.tool_calls == 0
    assert agent.describe()["algorithm"] == "PPO"


def test_eval_path_writes_an_sb3_leaderboard_row(tmp_path) -> None:
    from pyvision_gym.evaluation.runner import run_eval

    summary = run_eval("sb3", "demo-image-v0", tmp_path / "run", episodes=2, progress=False, cache_dir=tmp_path)
    assert summary["completed"] == 2 and summary["agent"]["agent"] == "sb3"
    assert summary["agent"]["model_sha256"] and (tmp_path / "run" / "episodes.jsonl").is_file()


@pytest.mark.slow
def test_short_ppo_learn_saves_loads_and_plays(tmp_path) -> None:
    import torch
    from stable_baselines3 import PPO

    torch.set_num_threads(1)
    config = MacroConfig(families=CHEAP)
    env = MacroActionEnv(config, max_turns=4, cache_dir=tmp_path)
    model = PPO("MultiInputPolicy", env, n_steps=64, batch_size=32, n_epochs=2, seed=0,
                policy_kwargs={"net_arch": [32], "features_extractor_kwargs": {"cnn_output_dim": 8}})
    model.learn(total_timesteps=128)
    env.close()
    assert model.num_timesteps >= 128
    path = save_model(model, tmp_path / "ppo.zip", config, extra={"note": "test"})
    assert read_model_meta(path)["note"] == "test"
    loaded, loaded_config, _ = load_model(path)
    assert loaded_config == config and type(loaded).__name__ == "PPO"
    obs = MacroActionEnv(config, max_turns=4, cache_dir=tmp_path).reset(seed=0)[0]
    assert loaded.predict(obs, deterministic=True)[0] == model.predict(obs, deterministic=True)[0]
    agent = make_agent(f"sb3:{path}")
    assert agent.spec == f"sb3:{path}"
    records = _engine_records(agent, tmp_path, [TaskSpec(f"e{i}", index=i, seed=i) for i in range(3)])
    assert [r.end_reason for r in records] == ["DONE"] * 3  # every episode ends with an answer
    with pytest.raises(ValueError, match="without"):
        model.save(tmp_path / "plain.zip")
        load_model(tmp_path / "plain.zip")
