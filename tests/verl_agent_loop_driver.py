"""Drives the verl agent loop in verl's own venv (``make verl``) against a fake server manager.

Run by ``tests/test_integration_verl.py`` as ``VERL_PYTHON tests/verl_agent_loop_driver.py
MODEL_DIR CACHE_DIR OUT_DIR``. The agent loop is built the way verl's ``AgentLoopWorker``
builds it (``hydra.utils.instantiate`` of the recipe's ``agent_loop.yaml`` entry, with a real
tokenizer and processor); only the LLM server is scripted, as verl's own ``*_on_cpu`` tests do.
The model "writes" three turns: code that sets a variable and shows a crop, code that reads the
variable (ending its turn with ``<|im_end|>`` itself), and the correct answer. Each turn's ids
are a deliberately non-canonical tokenisation (one character at a time), so any decode and
re-encode of generated text would change them. The output then goes through verl's own
post-processing (padding, ``multi_modal_inputs`` from the processor, ``rm_scores``), and the
same actions are replayed on a fresh environment for the expected reward and images.

Writes ``OUT_DIR/result.json`` and ``OUT_DIR/images.npz``; the test asserts on them.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import verl
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopWorker, DictConfigWrap, ToolListWrap
from verl.utils.config import omega_conf_to_dataclass
from verl.utils.dataset.rl_dataset import RLHFDataset
from verl.workers.rollout.replica import TokenOutput

from pyvision_gym.integrations.verl import (
    AGENT_NAME,
    PyVisionAgentLoop,
    VerlLoopError,
    load_codec,
    task_spec,
)
from pyvision_gym.integrations.verl_data import task_rows, write_rows
from pyvision_gym.train.config import EnvConfig
from pyvision_gym.train.rollout import env_factory

RECIPE_DIR = Path(__file__).resolve().parents[1] / "pyvision_gym" / "integrations" / "verl_recipe"
RECIPE = RECIPE_DIR / "agent_loop.yaml"
LAUNCH = RECIPE_DIR / "run_qwen2.5-vl-7b.sh"
TASK = {"seed": 3, "split": "train", "family": "counting", "difficulty": 0}  # the dataset row's task
ENV = {"id": "PyVisionImage-v0", "max_turns": 5, "tool_reward_per_turn": 0.1, "kwargs": {"families": "counting", "difficulty": 0}}
LENGTHS = {"prompt_length": 2048, "response_length": 2048}
TURNS = (
    "Let me look.\n<code>\n```python\nsecret = 41\ndisplay(image.crop((0, 0, 40, 30)))\nprint('stored')\n```\n</code>",
    "<code>\n```python\nprint(secret + 1)\n```\n</code>",
    "<answer>\\boxed{ANSWER}</answer>",
)


class ScriptedServer:
    """Stands in for verl's ``LLMServerClient``: returns the scripted turns' ids and records calls."""

    def __init__(self, turns: list[list[int]]) -> None:
        self.turns, self.calls = turns, []

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any],
                       image_data: list[Any] | None = None, **kwargs: Any) -> TokenOutput:  # fmt: skip
        k = len(self.calls)
        images = [np.asarray(im).shape for im in image_data or []]
        self.calls.append({"request_id": request_id, "prompt_ids": list(prompt_ids), "sampling_params": dict(sampling_params), "images": images})
        ids = self.turns[k]
        return TokenOutput(token_ids=ids, log_probs=[-0.5 - k] * len(ids))


def _char_ids(tokenizer: Any, text: str) -> list[int]:
    """``text`` one character at a time: valid ids for the text, but not the tokenizer's own."""
    ids = [i for ch in text for i in tokenizer.encode(ch, add_special_tokens=False)]
    assert tokenizer.decode(ids) == text and ids != tokenizer.encode(text, add_special_tokens=False)
    return ids


def _replay(cache: str, actions: list[str]) -> dict[str, Any]:
    """The same actions on a fresh environment: its reward, info and observation images."""
    env = env_factory(EnvConfig(**{**ENV, "cache_dir": cache}), TASK["split"])()
    obs, _ = env.reset(seed=TASK["seed"], options={"family": TASK["family"], "difficulty": TASK["difficulty"]})
    images, reward, info = list(obs["images"]), 0.0, {}
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        images += list(obs["images"])
        if terminated or truncated:
            break
    env.close()
    return {"reward": float(reward), "info": {k: info.get(k) for k in ("accuracy", "tool_calls", "reward_terms", "end_reason")}, "images": images}


def _answer(cache: str) -> str:
    env = env_factory(EnvConfig(**{**ENV, "cache_dir": cache}), TASK["split"])()
    env.reset(seed=TASK["seed"], options={"family": TASK["family"], "difficulty": TASK["difficulty"]})
    answer = str(env.unwrapped.task.answer)
    env.close()
    return answer


def _config(model: str) -> Any:
    rollout = {**LENGTHS, "agent": {"agent_loop_config_path": str(RECIPE)}}
    return OmegaConf.create({"actor_rollout_ref": {"rollout": rollout, "model": {"path": model}}, "data": {}})


def _worker(config: Any, loop: PyVisionAgentLoop) -> AgentLoopWorker:
    """verl's worker, for its post-processing only (no Ray, no servers)."""
    worker = object.__new__(AgentLoopWorker)
    worker.config, worker.rollout_config = config, config.actor_rollout_ref.rollout
    worker.tokenizer, worker.processor = loop.tokenizer, loop.processor
    worker.reward_loop_worker_handles, worker.distillation_enabled, worker.mm_processor_kwargs = None, False, {}
    return worker


def _recipe() -> dict[str, Any]:
    """The launch script's hydra overrides composed onto verl's own ``ppo_trainer`` config (an
    unknown key or a bad value fails here) and the settings the paper fixes."""
    body = LAUNCH.read_text().split("-m verl.trainer.main_ppo", 1)[1].split('"$@"', 1)[0]
    values = {"DATA": "/data", "MODEL": "/model", "HERE": str(RECIPE_DIR), "NGPUS": "8", "NNODES": "1", "EXPERIMENT": "x", "AGENT": AGENT_NAME}
    overrides = []
    for line in body.splitlines():
        line = line.strip().rstrip("\\").strip()
        if line:
            line = re.sub(r"\$(\w+)", lambda m: values[m.group(1)], line)
            overrides.append(line.replace('"', "").replace("'", ""))
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        cfg = compose(config_name="ppo_trainer", overrides=overrides)
    actor, rollout = cfg.actor_rollout_ref.actor, omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    omega_conf_to_dataclass(actor), omega_conf_to_dataclass(cfg.algorithm)  # verl's own type checks
    return {
        "overrides": len(overrides), "lr": actor.optim.lr, "lr_scheduler": actor.optim.lr_scheduler_type,
        "warmup": actor.optim.lr_warmup_steps_ratio, "n": rollout.n, "temperature": rollout.temperature,
        "val_temperature": rollout.val_kwargs.temperature, "train_batch": cfg.data.train_batch_size,
        "gen_batch": cfg.data.gen_batch_size, "adv": cfg.algorithm.adv_estimator, "norm_by_std": cfg.algorithm.norm_adv_by_std_in_grpo,
        "loss_agg": actor.loss_agg_mode, "clip": [actor.clip_ratio_low, actor.clip_ratio_high, actor.clip_ratio_c],
        "kl": [actor.use_kl_loss, cfg.algorithm.use_kl_in_reward], "entropy": actor.entropy_coeff,
        "freeze_vision": actor.freeze_vision_tower, "filter": dict(cfg.algorithm.filter_groups),
        "agent_loop_path": rollout.agent.agent_loop_config_path, "default_agent_loop": rollout.agent.default_agent_loop,
        "response_length": rollout.response_length, "prompt_length": rollout.prompt_length, "max_model_len": rollout.max_model_len,
    }  # fmt: skip


def _row(model: str, out: Path) -> dict[str, Any]:
    """The task's row as verl's ``RLHFDataset`` serves it (written by ``verl_data``)."""
    path = write_rows(task_rows(TASK["split"], 1, [TASK["family"]], TASK["difficulty"], first_seed=TASK["seed"]), out / "train.parquet")
    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 512, "filter_overlong_prompts": False})
    row = RLHFDataset(data_files=[str(path)], tokenizer=load_codec(model).tokenizer, config=config, processor=None)[0]
    row.pop("dummy_tensor")
    return row


def _loop(entry: Any, config: Any, server: Any, codec: Any) -> PyVisionAgentLoop:
    """The loop as verl's ``AgentLoopWorker`` builds one per trajectory (hydra ``instantiate``)."""
    return hydra.utils.instantiate(
        entry, trainer_config=DictConfigWrap(config), server_manager=server, tokenizer=codec.tokenizer,
        processor=codec.processor, hf_model_type="qwen2_5_vl", dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(config.data), tools=ToolListWrap([]),
    )  # fmt: skip


def _errors(entry: Any, config: Any, codec: Any) -> dict[str, str]:
    """The messages of a row without a task and of a misspelt environment key."""
    found = {}
    try:
        task_spec({"family": "counting"})
    except VerlLoopError as exc:
        found["no_task"] = str(exc)
    try:
        _loop(OmegaConf.merge(entry, {"env": {"max_turn": 3}}), config, None, codec)
    except Exception as exc:  # hydra wraps the loop's error in its InstantiationException
        found["bad_key"] = f"{type(exc).__name__}: {exc}"
    return found


async def _main(model: str, cache: str, out: Path) -> None:
    config = _config(model)
    entry = next(e for e in OmegaConf.load(RECIPE) if e.name == AGENT_NAME)
    entry = OmegaConf.merge(entry, {"env": {**ENV, "cache_dir": cache}, "max_turn_tokens": 256})
    entry.codec_kwargs = {}  # the tiny model folder's own pixel cap
    codec = load_codec(model)  # the instance the loop will share (one per process)
    texts = [t.replace("ANSWER", _answer(cache)) for t in TURNS]
    im_end = codec.eos_token_ids[0]
    turns = [_char_ids(codec.tokenizer, texts[0]), _char_ids(codec.tokenizer, texts[1]) + [im_end], _char_ids(codec.tokenizer, texts[2]) + [im_end]]
    server = ScriptedServer(turns)
    loop = _loop(entry, config, server, codec)
    assert type(loop) is PyVisionAgentLoop and loop.codec is codec
    sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}
    row = _row(model, out)
    output = await loop.run(dict(sampling), **row)
    worker = _worker(config, loop)
    internal = await worker._agent_loop_postprocess(output.model_copy(deep=True), validate=False, **row)
    batch = worker._postprocess([internal])
    mm = batch.non_tensor_batch["multi_modal_inputs"][0]
    replay = _replay(cache, texts)
    # A response budget the first observation does not fit: the episode ends OVER_LENGTH.
    short = OmegaConf.merge(config, {"actor_rollout_ref": {"rollout": {"response_length": len(turns[0]) + 8}}})
    cut = await _loop(entry, short, ScriptedServer(turns), codec).run(dict(sampling), **row)
    result = {
        "row": {k: row[k] for k in ("extra_info", "agent_name", "index")},
        "turn_ids": turns, "texts": texts, "calls": server.calls, "eos": codec.eos_token_ids, "image_token_id": codec.image_token_id,
        "merge_size": codec.merge_size, "max_turn_tokens": 256, "stop_strings": list(codec.stop_strings), "max_pixels": codec.max_pixels,
        "prompt_ids": output.prompt_ids, "response_ids": output.response_ids, "response_mask": output.response_mask,
        "response_logprobs": output.response_logprobs, "reward_score": output.reward_score, "num_turns": output.num_turns,
        "extra_fields": output.extra_fields, "decoded_response": codec.decode(output.response_ids),
        "rm_scores": batch.batch["rm_scores"][0].tolist(), "v1_rm_scores": output.as_dict()["rm_scores"].tolist(), "verl_response_mask": batch.batch["response_mask"][0].tolist(),
        "verl_image_grid_thw": mm["image_grid_thw"].tolist(), "verl_pixel_rows": int(mm["pixel_values"].shape[0]),
        "replay": {"reward": replay["reward"], "info": replay["info"]},
        "over_length": {"response_ids": cut.response_ids, "response_mask": cut.response_mask, "reward_score": cut.reward_score,
                        "extra_fields": cut.extra_fields, "response_length": len(turns[0]) + 8},
        "errors": _errors(entry, config, codec), "recipe": _recipe(),
    }  # fmt: skip
    (out / "result.json").write_text(json.dumps(result, default=str))
    np.savez(out / "images.npz", **{f"loop_{i}": np.asarray(im) for i, im in enumerate(output.multi_modal_data["images"])},
             **{f"env_{i}": np.asarray(im) for i, im in enumerate(replay["images"])})  # fmt: skip


if __name__ == "__main__":
    out_dir = Path(sys.argv[3])
    out_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(_main(sys.argv[1], sys.argv[2], out_dir))
