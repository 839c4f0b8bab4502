"""The Gymnasium environments: registration, episode contract, rewards, spaces, vector envs, datasets."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

import pyvision_gym
from pyvision_gym import RuntimeConfig
from pyvision_gym.datasets import DatasetError
from pyvision_gym.envs import all_families, families_for
from pyvision_gym.envs.registry import FAMILIES

IMAGE_KW = {"families": "measurement", "difficulty": 0}
VIDEO_KW = {"families": "event_counting", "difficulty": 0}


def code(src: str) -> str:
    return f"Let me look.\n<code>\n```python\n{src}\n```\n</code>"


def answer(a: str) -> str:
    return f"<answer>\\boxed{{{a}}}</answer>"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pvg-cache")


@pytest.fixture(scope="module")
def image_env(cache):
    env = gym.make("PyVisionImage-v0", cache_dir=cache, **IMAGE_KW)
    yield env
    env.close()


def run_expert(env, obs) -> tuple[float, dict]:
    unwrapped = env.unwrapped
    family = all_families()[unwrapped.task.family]
    for src in family.expert(unwrapped.task):
        obs, reward, terminated, truncated, info = env.step(code(src))
        assert not (terminated or truncated), obs["text"]
    last = obs["text"].strip().splitlines()[-1]
    obs, reward, terminated, truncated, info = env.step(answer(last))
    assert terminated and not truncated
    return reward, info


# ----------------------------------------------------------------------------- registration
def test_registered_ids_match_families():
    fams = all_families()
    assert list(FAMILIES["image"]) == list(families_for("image"))
    assert list(FAMILIES["video"]) == list(families_for("video"))
    for name, fam in fams.items():
        assert fam.name == name and fam.modality in FAMILIES and name in FAMILIES[fam.modality]
    assert len(families_for("image")) >= 6 and len(families_for("video")) >= 6
    for name, fam in fams.items():
        assert pyvision_gym.family_env_id(fam.modality, name) in gym.registry


@pytest.mark.slow
@pytest.mark.parametrize("env_id", sorted(i for i in gym.registry if i.startswith("PyVision")))
def test_check_env_passes(env_id, cache):
    kw = {} if "-" in env_id.removeprefix("PyVisionImage-").removeprefix("PyVisionVideo-") else {"difficulty": 0}
    env = gym.make(env_id, cache_dir=cache, **kw)
    try:
        check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


# ----------------------------------------------------------------------------- contract
def test_reset_observation_and_info(image_env):
    obs, info = image_env.reset(seed=3)
    assert image_env.observation_space.contains(obs)
    text = obs["text"]
    assert "<code>" in text and "<answer>" in text and "`image`" in text and "Question:" in text
    w, h = image_env.unwrapped.task.images["image"].size
    assert f"{w}x{h}" in text
    assert len(obs["images"]) == 1 and obs["images"][0].shape == (h, w, 3)
    assert info["turn"] == 0 and info["end_reason"] is None and info["tool_calls"] == 0
    assert info["visual_tokens"] == image_env.unwrapped.tokens.image(w, h) > 0


def test_same_seed_same_task_and_episode(cache):
    runs = []
    for _ in range(2):
        env = gym.make("PyVisionImage-v0", cache_dir=cache, **IMAGE_KW)
        obs, _ = env.reset(seed=11)
        o2, r, *_rest, info = env.step(code("print(image.size, np.asarray(image)[::97, ::89].sum())\nplt.imshow(np.asarray(image)); plt.show()"))
        runs.append((obs["text"], obs["images"][0].tobytes(), o2["text"], o2["images"][0].tobytes(), info["visual_tokens"]))
        env.close()
    assert runs[0] == runs[1]
    env = gym.make("PyVisionImage-v0", cache_dir=cache, **IMAGE_KW)
    other, _ = env.reset(seed=12)
    env.close()
    assert other["text"] != runs[0][0]


def test_splits_use_disjoint_seeds(cache):
    tasks = {}
    for split in ("train", "val", "test"):
        env = gym.make("PyVisionImage-v0", cache_dir=cache, split=split, **IMAGE_KW)
        env.reset(seed=5)
        tasks[split] = (env.unwrapped.task.seed, env.unwrapped.task.question)
        env.close()
    assert len({s for s, _ in tasks.values()}) == 3
    assert len({q for _, q in tasks.values()}) == 3


def test_expert_episode_reward_and_info(image_env):
    obs, info = image_env.reset(seed=1)
    reward, info = run_expert(image_env, obs)
    k = info["tool_calls"]
    assert k >= 1 and info["end_reason"] == "DONE" and info["correct"]
    assert reward == pytest.approx(1.0 + 0.1 * k)
    assert info["reward_terms"] == {"accuracy": 1.0, "tool_bonus": pytest.approx(0.1 * k)}
    assert info["answer"] is not None and info["ground_truth"] == image_env.unwrapped.task.answer


def test_wrong_answer_gets_no_bonus(image_env):
    image_env.reset(seed=1)
    image_env.step(code("print(1)"))
    obs, reward, terminated, truncated, info = image_env.step(answer("-12345"))
    assert terminated and reward == 0.0 and info["accuracy"] == 0.0 and not info["correct"]
    assert info["reward_terms"]["tool_bonus"] == 0.0


def test_answer_and_code_in_one_turn_does_not_run_code(image_env):
    image_env.reset(seed=2)
    obs, reward, terminated, truncated, info = image_env.step(code("print('ran')") + "\n" + answer("1"))
    assert terminated and info["tool_calls"] == 0 and "not run" in obs["text"]
    assert image_env.unwrapped.transcript[-1].ignored_code


def test_no_code_no_answer_explains_format(image_env):
    image_env.reset(seed=2)
    obs, reward, terminated, truncated, info = image_env.step("I think it is big.")
    assert not terminated and not truncated and reward == 0.0
    assert "<answer>" in obs["text"] and "```python" in obs["text"]


def test_errors_shown_by_default_and_counted(image_env):
    image_env.reset(seed=2)
    obs, _, terminated, _, info = image_env.step(code("x = 1\n1 / 0"))
    assert not terminated and "ZeroDivisionError" in obs["text"] and "line 2" in obs["text"]
    assert info["tool_errors"] == 1 and info["tool_calls"] == 0


def test_terminate_on_error(cache):
    env = gym.make("PyVisionImage-v0", cache_dir=cache, terminate_on_error=True, **IMAGE_KW)
    env.reset(seed=2)
    obs, reward, terminated, truncated, info = env.step(code("1 / 0"))
    assert terminated and not truncated and info["end_reason"] == "ERROR_IN_ACTION" and reward == 0.0
    env.close()


def test_max_turns_truncates(cache):
    env = gym.make("PyVisionImage-v0", cache_dir=cache, max_turns=2, **IMAGE_KW)
    env.reset(seed=2)
    _, _, terminated, truncated, info = env.step(code("a = 1"))
    assert not terminated and not truncated
    _, reward, terminated, truncated, info = env.step(code("a += 1"))
    assert truncated and not terminated and info["end_reason"] == "EXCEED_MAX_TURNS" and reward == 0.0
    assert info["accuracy"] == 0.0 and info["answer"] is None
    with pytest.raises(RuntimeError, match="ended"):
        env.step(answer("1"))
    env.close()


def test_max_images_truncates(cache):
    env = gym.make("PyVisionImage-v0", cache_dir=cache, max_images=3, show_image=False, **IMAGE_KW)
    obs, info = env.reset(seed=2)
    assert obs["images"] == () and "NOT attached" in obs["text"] and info["images_shown"] == 0
    obs, _, _, truncated, info = env.step(code("for i in range(2):\n    display(image.crop((0, 0, 56, 56)))"))
    assert not truncated and info["images_shown"] == 2 and len(obs["images"]) == 2
    assert info["visual_tokens"] == 2 * env.unwrapped.tokens.image(56, 56)
    _, _, _, truncated, info = env.step(code("display(image.crop((0, 0, 56, 56)))\ndisplay(image.crop((0, 0, 56, 56)))"))
    assert truncated and info["end_reason"] == "EXCEED_MAX_IMAGES"
    env.close()


def test_accuracy_only_reward(cache):
    env = gym.make("PyVisionImage-v0", cache_dir=cache, reward="accuracy", **IMAGE_KW)
    obs, _ = env.reset(seed=1)
    reward, info = run_expert(env, obs)
    assert reward == 1.0 and info["reward_terms"] == {"accuracy": 1.0}
    env.close()


def test_render_modes(cache):
    env = gym.make("PyVisionImage-v0", cache_dir=cache, render_mode="rgb_array", **IMAGE_KW)
    env.reset(seed=1)
    env.step(code("print('hello render')\ndisplay(image.crop((0, 0, 100, 80)))"))
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[1] == 960
    env.close()
    env = gym.make("PyVisionImage-v0", cache_dir=cache, render_mode="ansi", **IMAGE_KW)
    env.reset(seed=1)
    env.step(code("print('hello transcript')"))
    text = env.render()
    assert "hello transcript" in text and "turn 1" in text
    env.close()


def test_episodes_do_not_share_state(image_env):
    image_env.reset(seed=1)
    image_env.step(code("leak = 42"))
    image_env.reset(seed=1)
    obs, *_ = image_env.step(code("print(leak)"))
    assert "NameError" in obs["text"]


# ----------------------------------------------------------------------------- video
def test_video_prompt_and_tokens(cache):
    env = gym.make("PyVisionVideo-v0", cache_dir=cache, **VIDEO_KW)
    obs, info = env.reset(seed=0)
    task = env.unwrapped.task
    assert obs["images"] == ()
    assert "`video`" in obs["text"] and "frames at" in obs["text"] and "fps" in obs["text"]
    assert Path(task.video_path).suffix == ".mp4"
    assert info["visual_tokens"] == 0 and info["visual_tokens_full_video"] > 0
    obs, *_rest, info = env.step(code("f = video[len(video) // 2]\nprint(f.shape, f.dtype)\ndisplay(f)"))
    assert "uint8" in obs["text"] and len(obs["images"]) == 1
    assert 0 < info["visual_tokens"] < info["visual_tokens_full_video"]
    env.close()


# ----------------------------------------------------------------------------- vector envs
def test_sync_and_async_vector_envs(cache):
    kw = dict(cache_dir=cache, **IMAGE_KW)
    results = {}
    for name, cls, extra in [("sync", gym.vector.SyncVectorEnv, {}), ("async", gym.vector.AsyncVectorEnv, {"shared_memory": False})]:
        envs = cls([lambda: gym.make("PyVisionImage-v0", **kw) for _ in range(2)], **extra)
        obs, infos = envs.reset(seed=[4, 5])
        obs2, rewards, terms, truncs, infos2 = envs.step([code("print(image.size)"), answer("0")])
        results[name] = (tuple(obs["text"]), tuple(obs2["text"]), tuple(rewards), tuple(terms))
        texts = envs.call("transcript_text")
        assert "print(image.size)" in texts[0]
        envs.close()
        assert all("Question:" in t for t in obs["text"])
        assert "(" in obs2["text"][0] and terms[1] and not terms[0]
    assert results["sync"] == results["async"]


# ----------------------------------------------------------------------------- datasets
def _png(path: Path, color=(200, 30, 30)) -> str:
    Image.new("RGB", (64, 48), color).save(path)
    return path.name


def test_dataset_file_runs(tmp_path, test_video):
    shutil.copy(test_video, tmp_path / "clip.mp4")  # media stay inside the dataset's folder
    rows = [
        {"id": "q1", "question": "What colour is the image? (A) red (B) blue", "answer": "A", "ability": "color", "data_source": "vstar", "image_path": _png(tmp_path / "a.png")},
        {"id": "q2", "question": "How many pixels wide is it?", "answer": "64", "ability": "size", "data_source": "chart", "image_path": "a.png"},
        {"id": "v1", "question": "How many frames?", "answer": "48", "ability": "count", "data_source": "vsi_numerical", "video_path": "clip.mp4"},
    ]
    path = tmp_path / "data.json"
    path.write_text(json.dumps(rows))
    env = gym.make("PyVisionImage-v0", dataset=path)
    obs, info = env.reset(options={"index": 0})
    assert info["task_id"] == "q1" and "What colour" in obs["text"]
    _, reward, *_rest, info = env.step(answer("A"))
    assert reward == 1.0
    env.reset(options={"index": 1})
    _, reward, *_rest, info = env.step(answer("64 px"))
    assert reward == 1.0
    env.close()
    env = gym.make("PyVisionVideo-v0", dataset=path)
    obs, info = env.reset(seed=0)
    assert "48 frames" in obs["text"]
    _, reward, *_rest, info = env.step(answer("44"))  # MRA-scored: partial credit
    assert 0 < info["accuracy"] < 1 and reward == pytest.approx(info["accuracy"])
    env.close()


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ([{"id": "x", "answer": "A", "image_path": "a.png"}], "row 0 (id='x'): missing field 'question'"),
        ([{"id": "x", "question": "q", "answer": "A"}], "row 0 (id='x'): needs exactly one of 'image_path' or 'video_path'"),
        ([{"id": "x", "question": "q", "answer": "A", "image_path": "a.png"}, {"id": "y", "question": "q", "answer": "B", "image_path": "nope.png"}], "row 1 (id='y'): field 'image_path': file not found"),
        ([{"id": "x", "question": "q", "answer": "A", "image_path": "a.png", "options": "AB"}], "field 'options' must be a list"),
        ("{not json", "not valid JSON"),
        ([], "no rows"),
    ],
)
def test_dataset_errors_name_row_and_field(tmp_path, rows, needle):
    _png(tmp_path / "a.png")
    path = tmp_path / "bad.json"
    path.write_text(rows if isinstance(rows, str) else json.dumps(rows))
    with pytest.raises(DatasetError, match=None) as err:
        gym.make("PyVisionImage-v0", dataset=path)
    assert needle in str(err.value)


def test_dataset_missing_file_and_corrupt_image(tmp_path):
    with pytest.raises(DatasetError, match="dataset file not found"):
        gym.make("PyVisionImage-v0", dataset=tmp_path / "missing.json")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"id": "z", "question": "q", "answer": "A", "image_path": "bad.png"}]))
    # media are checked when the dataset is loaded, not in the middle of a run
    with pytest.raises(DatasetError, match="row 0 \\(id='z'\\): field 'image_path': cannot read image"):
        gym.make("PyVisionImage-v0", dataset=path)


# ----------------------------------------------------------------------------- one source per setting
def test_runtime_config_timeout_is_not_overridden_by_default_keyword(cache):
    env = gym.make("PyVisionImage-Counting-v0", runtime_config=RuntimeConfig(timeout=5), cache_dir=cache)
    try:
        assert env.unwrapped.runtime_config.timeout == 5
        assert env.unwrapped.runtime_config.max_output_chars == RuntimeConfig().max_output_chars
        env.reset(seed=0)
        t0 = time.monotonic()
        obs, *_ = env.step(code("while True:\n    pass"))
        elapsed = time.monotonic() - t0
        assert 4 < elapsed < 20, elapsed  # the 5 s limit, not the 30 s default
        assert "5" in obs["text"] or "time" in obs["text"].lower()
    finally:
        env.close()


def test_runtime_config_and_keyword_agree_or_refuse(cache):
    env = gym.make("PyVisionImage-Counting-v0", code_timeout=7, max_output_chars=500, cache_dir=cache)
    assert (env.unwrapped.runtime_config.timeout, env.unwrapped.runtime_config.max_output_chars) == (7, 500)
    env.close()
    same = gym.make("PyVisionImage-Counting-v0", runtime_config=RuntimeConfig(timeout=5), code_timeout=5, cache_dir=cache)
    assert same.unwrapped.runtime_config.timeout == 5
    same.close()
    with pytest.raises(ValueError, match=r"runtime_config\.timeout=5.*12"):
        gym.make("PyVisionImage-Counting-v0", runtime_config=RuntimeConfig(timeout=5), code_timeout=12, cache_dir=cache)
    kept = gym.make("PyVisionImage-Counting-v0", runtime_config=RuntimeConfig(memory_mb=2048), code_timeout=9, cache_dir=cache)
    assert (kept.unwrapped.runtime_config.memory_mb, kept.unwrapped.runtime_config.timeout) == (2048, 9)
    kept.close()


# ----------------------------------------------------------------------------- toolbox
@pytest.mark.parametrize("env_id", ["PyVisionImage-TextReading-v0", "PyVisionImage-Counting-v0", "PyVisionVideo-EventCounting-v0"])
def test_toolbox_preloads_the_experts_helpers(env_id, cache):
    from pyvision_gym.agents.baselines import ExpertAgent
    from pyvision_gym.envs.experts import toolbox_helpers
    from pyvision_gym.rollout.agent import Episode, Observation

    env = gym.make(env_id, toolbox=True, difficulty=0, cache_dir=cache)
    plain = gym.make(env_id, difficulty=0, cache_dir=cache)
    try:
        obs, info = env.reset(seed=4)
        plain_obs, _ = plain.reset(seed=4)
        task = env.unwrapped.task
        assert info["toolbox"] is True and toolbox_helpers(env.unwrapped.families[task.family], task)
        assert "These helper functions are already defined" in obs["text"]
        assert "helper functions" not in plain_obs["text"]
        ep = Episode("e", task.modality, Observation(obs["text"]), task=task, info=info)
        full = ExpertAgent().act([Episode("e", task.modality, Observation(plain_obs["text"]), task=task, info={})])[0]
        while True:
            action = ExpertAgent().act([ep])[0]
            if ep.turn == 0:
                assert len(action) < len(full) / 3  # the helpers are not written again
            o, reward, terminated, truncated, info = env.step(action)
            ep.turns.append((action, Observation(o["text"], tuple(o["images"]))))
            if terminated or truncated:
                break
        assert info["correct"] and info["end_reason"] == "DONE" and info["tool_calls"] >= 1
    finally:
        env.close()
        plain.close()


def test_toolbox_signatures_parse_safely_from_many_threads() -> None:
    """CPython 3.11's AST constructor fails ("recursion depth mismatch") when threads parse at
    once; the trainer's environment threads reset together, so the toolbox parses under a lock.
    A garbage-collector callback that yields makes threads switch inside the parser (without the
    lock this fails every time)."""
    import gc
    import time
    from concurrent.futures import ThreadPoolExecutor

    from pyvision_gym.envs.experts import toolbox_signatures

    def parse(i: int) -> list[str]:
        body = "".join(f"    if x > {k}:\n        x = [x, {{'k': (x, {k})}}]\n" for k in range(30))
        return toolbox_signatures(f"def f{i}(x, y):\n{body}    return x\n\n\ndef g{i}():\n    pass\n")

    def switch(*_: object) -> None:
        time.sleep(0.0001)

    threshold = gc.get_threshold()
    gc.set_threshold(5)
    gc.callbacks.append(switch)
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(parse, range(300)))
    finally:
        gc.callbacks.remove(switch)
        gc.set_threshold(*threshold)
    assert results == [[f"f{i}(x, y)", f"g{i}()"] for i in range(300)]
