"""The TRL adapter: reset/python against the real sandbox, the reward function, the dataset
helper, the tool chat template, and one real ``GRPOTrainer`` step on the tiny Qwen2.5-VL with
the model's turns scripted (TRL's own tool tests patch ``generate`` the same way)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from unittest.mock import patch

import pytest
import torch

from pyvision_gym.integrations.trl import (
    NO_ANSWER,
    TOOL_FORMAT,
    PyVisionToolEnv,
    build_dataset,
    final_reply,
    make_environment_factory,
    pyvision_reward,
    tool_prompt,
    use_tool_chat_template,
)

pytest.importorskip("trl", reason="TRL is in the `train` extra: pip install -e '.[train]'")

COUNTING = {"families": "counting", "difficulty": 0}
SEED = 3


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pvg-trl-cache")


@pytest.fixture
def image_env(cache: Path):
    env = PyVisionToolEnv("PyVisionImage-v0", cache_dir=cache, **COUNTING)
    yield env
    env.env.close()


def _reply(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def test_reset_and_python_tool_run_in_the_real_sandbox(image_env: PyVisionToolEnv):
    blocks = image_env.reset(seed=SEED, prompt=[{"role": "user", "content": ""}])
    assert [b["type"] for b in blocks] == ["image", "text"]
    assert blocks[0]["image"].size == image_env.env.task.images["image"].size
    text = blocks[1]["text"]
    assert "`python` tool" in text and "<code>" not in text  # the code-block format is replaced
    assert image_env.env.task.question.strip() in text

    out = image_env.python("print(image.size)\ndisplay(image.crop((0, 0, 40, 30)))")
    assert out[0] == {"type": "text", "text": f"{image_env.env.task.images['image'].size}"}
    assert [b["type"] for b in out[1:]] == ["image"] and out[1]["image"].size == (40, 30)
    assert image_env.info["tool_calls"] == 1 and not image_env.ended

    # A fenced block as the argument runs as its body; a failing program returns the traceback.
    assert image_env.python("```python\nx = 6 * 7\nprint(x)\n```")[0]["text"] == "42"
    err = image_env.python("print(undefined_name)")[0]["text"]
    assert "NameError" in err and image_env.info["tool_errors"] == 1
    # Code holding an <answer> tag would end the episode if sent as a turn: refused, nothing runs.
    turns = image_env.info["turn"]
    refused = image_env.python('print("<answer>5</answer>")')[0]["text"]
    assert "nothing was run" in refused and image_env.info["turn"] == turns

    truth = image_env.env.task.answer
    assert pyvision_reward([_reply(f"Done.\n<answer>\\boxed{{{truth}}}</answer>")], [image_env]) == [
        pytest.approx(1.0 + 0.1 * 2)]  # accuracy + 0.1 per successful tool call (2 ran without error)
    assert image_env.end_reason == "DONE" and image_env.info["reward_terms"]["tool_bonus"] == pytest.approx(0.2)
    # Scoring is once per episode; the tool refuses to run after the end.
    assert pyvision_reward([_reply("<answer>\\boxed{999}</answer>")], [image_env]) == [pytest.approx(1.2)]
    assert "episode is over" in image_env.python("print(1)")[0]["text"]


def test_wrong_missing_and_truncated_answers_score_zero(cache: Path):
    env = PyVisionToolEnv("PyVisionImage-v0", cache_dir=cache, max_turns=2, **COUNTING)
    env.reset(seed=SEED)
    env.python("print(1)")
    assert pyvision_reward([_reply("<answer>\\boxed{-7}</answer>")], [env]) == [0.0]  # wrong: no tool bonus
    env.reset(seed=SEED)
    env.python("print(1)")
    # A final reply with code and no answer is not sent (the code would run): no answer, reward 0.
    assert pyvision_reward([_reply("<code>\n```python\nprint(2)\n```\n</code>")], [env]) == [0.0]
    assert env.end_reason == NO_ANSWER and env.info["turn"] == 1
    env.reset(seed=SEED)
    env.python("print(1)")
    last = env.python("print(2)")[0]["text"]
    assert "EXCEED_MAX_TURNS" in last and env.ended
    assert pyvision_reward([_reply(f"<answer>\\boxed{{{env.env.task.answer}}}</answer>")], [env]) == [0.0]
    # A rollout cut off on a tool message has no final reply.
    assert final_reply([*_reply("x"), {"role": "tool", "name": "python", "content": "1"}]) is None
    env.env.close()


def test_video_reset_is_text_and_the_tool_shows_frames(cache: Path):
    env = PyVisionToolEnv("PyVisionVideo-v0", cache_dir=cache, families="state_at_time", difficulty=0)
    prompt = env.reset(seed=1)
    assert isinstance(prompt, str) and "`python` tool" in prompt
    out = env.python("print(len(video))\ndisplay(video[0])")
    assert int(out[0]["text"]) == env.info["video"]["frames"]
    assert out[1]["image"].size == (env.info["video"]["width"], env.info["video"]["height"])
    env.env.close()


def test_reward_function_needs_environments_and_skips_others(image_env: PyVisionToolEnv):
    with pytest.raises(ValueError, match="environment_factory"):
        pyvision_reward([_reply("<answer>1</answer>")])
    image_env.reset(seed=SEED)
    assert pyvision_reward([_reply("a"), _reply("b")], [object(), image_env]) == [None, 0.0]
    with pytest.raises(TypeError, match="seed"):
        image_env.reset(seed="3")


def test_tool_prompt_replaces_the_code_format_or_prepends_the_tool_format():
    replaced = tool_prompt(
        "You answer a question about a video by writing Python code and then giving a final answer.\n"
        "<code>\n```python\n# your code\n```\n</code>\n<answer>\\boxed{your answer}</answer>\nQuestion: q?\n")
    assert replaced == TOOL_FORMAT.format(what="a video") + "Question: q?\n"
    other = "Reply with <code> blocks.\nQuestion: q?\n"  # a prompt in another style: kept, the tool format first
    assert tool_prompt(other) == TOOL_FORMAT.format(what="the task below") + "\n" + other


def test_build_dataset_is_seeded_and_checked():
    ds = build_dataset(5, first_seed=10, families=["counting", "chart_reading"], difficulty=[0, 1])
    assert ds["seed"] == [10, 11, 12, 13, 14]
    assert ds["family"] == ["counting", "chart_reading"] * 2 + ["counting"]
    assert ds["difficulty"] == [0, 1, 0, 1, 0]
    assert ds[0]["prompt"] == [{"role": "user", "content": ""}]
    assert build_dataset(5, first_seed=10, families=["counting", "chart_reading"], difficulty=[0, 1])[:] == ds[:]
    assert build_dataset(2).column_names == ["prompt", "seed"]
    with pytest.raises(ValueError, match="unknown families"):
        build_dataset(2, families="no_such_family")
    with pytest.raises(ValueError, match="positive"):
        build_dataset(0)


def test_factory_checks_its_arguments_at_once(cache: Path):
    factory = make_environment_factory("PyVisionImage-v0", cache_dir=cache, **COUNTING)
    env = factory()
    assert isinstance(env, PyVisionToolEnv) and env is not factory()
    with pytest.raises(Exception, match="NoSuchEnv"):
        make_environment_factory("NoSuchEnv-v0")


def _trainer(tiny_model: Path, cache: Path, out: Path):
    from transformers import Qwen2_5_VLForConditionalGeneration
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import supports_tool_calling

    from pyvision_gym.agents.backends.processor import load_processor

    processor = load_processor(tiny_model)
    assert not supports_tool_calling(processor)  # the tiny model's own (Qwen2.5-VL-like) template
    use_tool_chat_template(processor)
    assert supports_tool_calling(processor)
    args = GRPOConfig(output_dir=str(out), per_device_train_batch_size=2, num_generations=2, max_completion_length=512,
                      max_steps=1, learning_rate=0.1, report_to="none", logging_steps=1, save_strategy="no",
                      use_cpu=True, seed=0)
    return GRPOTrainer(
        model=Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model, dtype=torch.float32),
        reward_funcs=pyvision_reward, args=args, processing_class=processor,
        train_dataset=build_dataset(1, first_seed=SEED, **COUNTING),
        environment_factory=make_environment_factory("PyVisionImage-v0", cache_dir=cache, **COUNTING),
    )


@pytest.mark.slow
@patch.dict(os.environ, {"TRL_EXPERIMENTAL_SILENCE": "1"})
def test_grpo_trainer_step_masks_tool_output_and_gets_the_env_reward(tiny_model: Path, cache: Path, tmp_path: Path):
    ref = PyVisionToolEnv("PyVisionImage-v0", cache_dir=cache, **COUNTING)
    ref.reset(seed=SEED)
    truth = ref.env.task.answer
    ref.env.close()
    trainer = _trainer(tiny_model, cache, tmp_path)
    tok = trainer.processing_class.tokenizer

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    code = "print(image.size)\ndisplay(image.crop((0, 0, 40, 30)))"
    call = ids("<tool_call>\n" + json.dumps({"name": "python", "arguments": {"code": code}}) + "\n</tool_call><|im_end|>")
    wrong = ids("<answer>\\boxed{-1}</answer><|im_end|>")
    right = ids(f"I have looked.\n<answer>\\boxed{{{truth}}}</answer><|im_end|>")
    calls: list[int] = []

    def fake_generate(input_ids: torch.Tensor, **kwargs) -> torch.Tensor:
        calls.append(input_ids.shape[0])
        if len(calls) == 1:  # rollout 0 calls the tool, rollout 1 answers wrongly at once
            width = max(len(call), len(wrong))
            rows = [r + [tok.pad_token_id] * (width - len(r)) for r in (call, wrong)]
        else:  # rollout 0 again, after the tool result
            rows = [right]
        return torch.cat([input_ids, torch.tensor(rows, device=input_ids.device)], dim=-1)

    batches = []
    original = trainer._generate_and_score_completions

    def capture(inputs):
        batches.append(original(inputs))
        return batches[-1]

    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if "lm_head" in n or "embed" in n}
    with (patch.object(trainer.model, "generate", side_effect=fake_generate),
          patch.object(trainer, "_generate_and_score_completions", side_effect=capture)):
        trainer.train()

    assert calls == [2, 1]
    batch = batches[0]
    completion_ids, completion_mask, tool_mask = batch["completion_ids"], batch["completion_mask"], batch["tool_mask"]
    loss_mask = (completion_mask * tool_mask).bool()
    # Rollout 0: the tokens in the loss are exactly the model's (the call, then the answer); the
    # tool result (its text and the shown image's tokens) is in the sequence but out of the loss.
    assert completion_ids[0][loss_mask[0]].tolist() == call + right
    masked = tok.decode(completion_ids[0][completion_mask[0].bool() & ~tool_mask[0].bool()])
    assert "<tool_response>" in masked and str(ref.env.task.images["image"].size) in masked
    assert "<|image_pad|>" in masked
    # Rollout 1 had no tool call: everything it generated is in the loss.
    assert completion_ids[1][loss_mask[1]].tolist() == wrong
    assert tool_mask[1][completion_mask[1].bool()].all()
    # The learner saw the task image in both prompts and the shown crop in rollout 0.
    assert list(batch["num_images"]) == [2, 1]

    # The env's reward reached the trainer: 1 + 0.1 (one tool call) for rollout 0, 0 for rollout 1.
    logged = trainer.state.log_history[0]
    assert logged["rewards/pyvision_reward/mean"] == pytest.approx((1.1 + 0.0) / 2)
    assert logged["pyvision/accuracy"] == pytest.approx(0.5) and logged["tools/call_frequency"] == pytest.approx(0.5)
    assert [(e.end_reason, e.reward) for e in trainer.environments] == [("DONE", pytest.approx(1.1)), ("DONE", 0.0)]
    assert any(not torch.equal(p, trainer.model.get_parameter(n)) for n, p in before.items())
