"""The verl agent loop (``pyvision_gym.integrations.verl``) against a scripted server manager.

verl pins an older transformers, so it lives in its own venv (``make verl`` builds
``.cache/verl-venv``; CI does, before ``make test``). The loop runs there, in a subprocess
(``tests/verl_agent_loop_driver.py``): built by hydra from the recipe's ``agent_loop.yaml`` as
verl's worker builds it, fed a dataset row written by ``verl_data`` and read by verl's
``RLHFDataset``, with the tiny Qwen2.5-VL's real tokenizer and processor and the real sandbox;
only the LLM server is scripted (code turn, code turn, answer), as in verl's own CPU tests. Its
output then goes through verl's own post-processing. Without the venv these tests skip and say
why. The dataset-row helper needs no verl and is tested here directly.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from pyvision_gym.agents.chat import to_pil
from pyvision_gym.integrations.verl_data import AGENT_NAME, task_rows, write_rows
from pyvision_gym.train.config import EnvConfig

REPO = Path(__file__).resolve().parents[1]
DRIVER = REPO / "tests" / "verl_agent_loop_driver.py"
VERL_PYTHON = Path(os.environ.get("PYVISION_VERL_PYTHON") or REPO / ".cache" / "verl-venv" / "bin" / "python")
NO_VERL = None if VERL_PYTHON.exists() else f"no verl venv at {VERL_PYTHON} (`make verl` builds it; or set PYVISION_VERL_PYTHON)"
needs_verl = pytest.mark.skipif(NO_VERL is not None, reason=NO_VERL or "")


@pytest.fixture(scope="module")
def run(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The driver's result (``result.json``) plus the images (``images.npz``)."""
    if NO_VERL:
        pytest.skip(NO_VERL)
    out = tmp_path_factory.mktemp("verl-loop")
    env = {**os.environ, "HF_HOME": str(out / "hf"), "PYVISION_GYM_CACHE": str(out / "media"), "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(
        [str(VERL_PYTHON), str(DRIVER), str(tiny_model), str(out / "media"), str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((out / "result.json").read_text())
    with np.load(out / "images.npz") as images:
        result["images"] = {k: images[k] for k in images.files}
    return result


def _runs(mask: list[int]) -> list[tuple[int, int, int]]:
    """(value, start, end) of each run of equal values in ``mask``."""
    runs, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            runs.append((mask[start], start, i))
            start = i
    return runs


@pytest.mark.slow
@needs_verl
def test_token_in_token_out_with_generated_ids_kept_as_they_came(run):
    calls, turns, prompt = run["calls"], run["turn_ids"], run["prompt_ids"]
    assert len(calls) == 3 and calls[0]["prompt_ids"] == prompt
    # Each request continues the previous one: its prompt + the ids generated + the observation.
    for k in range(2):
        before, after = calls[k]["prompt_ids"], calls[k + 1]["prompt_ids"]
        assert after[: len(before) + len(turns[k])] == before + turns[k]
    assert prompt + run["response_ids"] == calls[2]["prompt_ids"] + turns[2]
    # The scripted ids are a non-canonical tokenisation: a decode/re-encode would have changed them.
    generated = [run["response_ids"][s:e] for v, s, e in _runs(run["response_mask"]) if v == 1]
    assert generated == turns
    assert len({c["request_id"] for c in calls}) == 1  # one sticky session per trajectory


@pytest.mark.slow
@needs_verl
def test_mask_is_one_on_generated_tokens_and_zero_on_observations(run, tiny_model):
    from transformers import AutoTokenizer

    mask, response = run["response_mask"], run["response_ids"]
    runs = _runs(mask)
    assert [v for v, _, _ in runs] == [1, 0, 1, 0, 1]
    assert sum(mask) == sum(len(t) for t in run["turn_ids"])
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    observations = [tokenizer.decode(response[s:e]) for v, s, e in runs if v == 0]
    # Each observation is the user <interpreter> turn between two assistant turns. Turn 1 stopped
    # at </code>, so its observation closes the turn; turn 2 closed it itself (<|im_end|>), so
    # its observation does not repeat that.
    assert observations[0].startswith("<|im_end|>\n<|im_start|>user\n<interpreter>")
    assert observations[1].startswith("\n<|im_start|>user\n<interpreter>")
    assert all(o.endswith("<|im_start|>assistant\n") for o in observations)
    assert observations[0].count("<|image_pad|>") > 0 and "<|image_pad|>" not in observations[1]
    # Log-probs: the server's on generated tokens (turn k: -0.5 - k), 0 on observation tokens.
    logp = run["response_logprobs"]
    assert len(logp) == len(response)
    ones = [(s, e) for v, s, e in runs if v == 1]
    for k, (s, e) in enumerate(ones):
        assert logp[s:e] == [-0.5 - k] * (e - s)
    assert all(logp[i] == 0.0 for v, s, e in runs if v == 0 for i in range(s, e))
    # verl's padded response mask is ours, then zeros.
    verl_mask = run["verl_response_mask"]
    assert verl_mask[: len(mask)] == mask and not any(verl_mask[len(mask) :])


@pytest.mark.slow
@needs_verl
def test_requests_stop_at_the_codec_stop_strings_within_the_turn_budget(run):
    for call in run["calls"]:
        params = call["sampling_params"]
        assert params["stop"] == run["stop_strings"] == ["</code>", "</answer>"]
        assert params["include_stop_str_in_output"] is True
        assert params["max_tokens"] == run["max_turn_tokens"]
        assert params["temperature"] == 1.0 and params["logprobs"] is True  # verl's own settings pass through


@pytest.mark.slow
@needs_verl
def test_the_runtime_persists_across_turns(run):
    text = run["decoded_response"]
    second_obs = text.split("print(secret + 1)", 1)[1]
    assert "<interpreter>" in second_obs and "\n42\n" in second_obs
    assert "NameError" not in text and "Traceback" not in text


@pytest.mark.slow
@needs_verl
def test_observation_images_are_carried_to_the_server_and_to_verl(run):
    images = run["images"]
    loop = [images[k] for k in sorted(k for k in images if k.startswith("loop_"))]
    env = [images[k] for k in sorted(k for k in images if k.startswith("env_"))]
    assert len(loop) == len(env) == 2  # the prompt's image and the crop the first turn showed
    # Each image as the agent sends it: the prompt image within the model's pixel cap, the crop as shown.
    np.testing.assert_array_equal(loop[0], np.asarray(to_pil(env[0], run["max_pixels"])))
    np.testing.assert_array_equal(loop[1], env[1])
    assert loop[1].shape == (30, 40, 3)
    # The server got every image so far with each request.
    assert [len(c["images"]) for c in run["calls"]] == [1, 2, 2]
    assert run["calls"][1]["images"][1] == [30, 40, 3]
    # verl's processor rebuilt both images, with one placeholder per merged patch in our ids.
    grids = run["verl_image_grid_thw"]
    assert len(grids) == 2 and run["verl_pixel_rows"] == sum(t * h * w for t, h, w in grids)
    pads = (run["prompt_ids"] + run["response_ids"]).count(run["image_token_id"])
    assert pads == sum(t * h * w for t, h, w in grids) // run["merge_size"] ** 2
    assert run["extra_fields"]["reward_extra_info"]["observation_images"] == 1.0


@pytest.mark.slow
@needs_verl
def test_reward_is_the_environments_with_the_tool_bonus(run):
    replay = run["replay"]
    info = replay["info"]
    assert info["end_reason"] == "DONE" and info["accuracy"] == 1.0 and info["tool_calls"] == 2
    assert run["reward_score"] == pytest.approx(replay["reward"])
    assert run["reward_score"] == pytest.approx(info["accuracy"] + 0.1 * info["tool_calls"])
    assert run["extra_fields"]["reward_terms"] == pytest.approx({"accuracy": 1.0, "tool_bonus": 0.2})
    assert run["extra_fields"]["end_reason"] == "DONE"
    assert run["extra_fields"]["reward_extra_info"]["acc"] == 1.0
    # verl puts the trajectory's reward on its last response token (rm_scores), nowhere else.
    # (both verl's batch post-processing and the v1 trainer's ``as_dict``).
    last = len(run["response_ids"]) - 1
    for scores in (run["rm_scores"], run["v1_rm_scores"]):
        assert scores[last] == pytest.approx(run["reward_score"])
        assert sum(abs(x) for i, x in enumerate(scores) if i != last) == 0
    assert run["num_turns"] == 1 + 3 + 2  # the prompt, three generations, two observations


@pytest.mark.slow
@needs_verl
def test_an_observation_that_does_not_fit_ends_the_episode_over_length(run):
    cut = run["over_length"]
    first = run["turn_ids"][0]
    assert cut["extra_fields"]["end_reason"] == "OVER_LENGTH" and cut["reward_score"] == 0.0
    assert cut["response_ids"] == first and cut["response_mask"] == [1] * len(first)  # never a cut observation
    assert len(cut["response_ids"]) <= cut["response_length"]


@pytest.mark.slow
@needs_verl
def test_bad_rows_and_settings_are_named(run):
    errors = run["errors"]
    assert "extra_info.seed" in errors["no_task"] and "verl_data" in errors["no_task"]
    assert "unknown env key 'max_turn'" in errors["bad_key"] and "did you mean 'max_turns'" in errors["bad_key"]
    assert run["row"]["agent_name"] == AGENT_NAME and run["row"]["extra_info"]["seed"] == 3


@pytest.mark.slow
@needs_verl
def test_the_recipe_composes_onto_verls_config_with_the_papers_hyperparameters(run):
    """method.md: lr 1e-6 constant, 8 rollouts, train batch 64, generation batch 32, GRPO without
    the std division, token-mean, clip 0.2 with dual clip 3, no KL, no entropy, temperature 1
    (greedy validation), frozen vision encoder; plus verl's group filter on the env reward."""
    r = run["recipe"]
    assert r["overrides"] > 50
    assert (r["lr"], r["lr_scheduler"], r["warmup"]) == (1e-6, "constant", 0.0)
    assert (r["n"], r["train_batch"], r["gen_batch"]) == (8, 64, 32)
    assert (r["adv"], r["norm_by_std"], r["loss_agg"]) == ("grpo", False, "token-mean")
    assert r["clip"] == [0.2, 0.2, 3.0] and r["kl"] == [False, False] and r["entropy"] == 0
    assert (r["temperature"], r["val_temperature"], r["freeze_vision"]) == (1.0, 0, True)
    assert r["filter"]["enable"] is True and r["filter"]["metric"] == "reward"
    assert Path(r["agent_loop_path"]) == REPO / "pyvision_gym" / "integrations" / "verl_recipe" / "agent_loop.yaml"
    assert r["default_agent_loop"] == AGENT_NAME
    assert r["max_model_len"] == r["prompt_length"] + r["response_length"]


def test_recipe_agent_loops_name_the_loop_class_and_trainer_env_keys():
    entries = yaml.safe_load((REPO / "pyvision_gym" / "integrations" / "verl_recipe" / "agent_loop.yaml").read_text())
    assert [e["name"] for e in entries] == [AGENT_NAME, "pyvision_video_agent"]
    env_keys = set(EnvConfig.__dataclass_fields__)
    for entry in entries:
        assert entry["_target_"] == "pyvision_gym.integrations.verl.PyVisionAgentLoop"
        assert set(entry["env"]) <= env_keys and entry["env"]["max_turns"] == 5 and entry["env"]["tool_reward_per_turn"] == 0.1
        assert entry["max_turn_tokens"] == 10240
    assert [e["env"]["id"] for e in entries] == ["PyVisionImage-v0", "PyVisionVideo-v0"]


def test_task_rows_name_seeds_families_and_splits(tmp_path: Path):
    rows = task_rows("val", 5, ["counting", "chart_reading"], difficulty=1, first_seed=10)
    assert [r["extra_info"]["seed"] for r in rows] == [10, 11, 12, 13, 14]
    assert [r["extra_info"]["family"] for r in rows] == ["counting", "chart_reading"] * 2 + ["counting"]
    assert {r["extra_info"]["split"] for r in rows} == {"val"} and {r["extra_info"]["difficulty"] for r in rows} == {1}
    assert {r["agent_name"] for r in rows} == {AGENT_NAME}
    assert all(r["prompt"][0]["role"] == "user" for r in rows)
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow (verl's venv and the train extra have it) writes the files")
    path = write_rows(rows, tmp_path / "sub" / "val.parquet")
    assert pq.read_table(path).to_pylist() == rows
    with pytest.raises(ValueError, match="split must be one of"):
        task_rows("dev", 1)
    assert task_rows("train", 2)[1]["extra_info"]["family"] is None  # the environment picks
    assert task_rows("train", 1, agent_name="pyvision_video_agent")[0]["agent_name"] == "pyvision_video_agent"
