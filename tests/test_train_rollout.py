"""Token-in-token-out rollouts on real environments and the tiny locally built Qwen2.5-VL:
the token stream is the agent's chat, the mask covers exactly the generated tokens, agent text
is never re-encoded, length limits end episodes cleanly, and the transformers engine's
log-probs are the learner's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import gymnasium as gym
import numpy as np
import pytest
import torch

from pyvision_gym.agents.backends.processor import render_chat
from pyvision_gym.agents.chat import message_images
from pyvision_gym.agents.codec import QwenChatCodec
from pyvision_gym.agents.vlm import build_messages
from pyvision_gym.rollout import Episode, TaskSpec
from pyvision_gym.train.config import EnvConfig
from pyvision_gym.train.engines.base import GenerationEngine, GenRequest, GenResult, Sampling
from pyvision_gym.train.engines.hf import HFEngine
from pyvision_gym.train.rollout import RolloutRunner, env_factory, groups

ENV = EnvConfig(kwargs={"families": ["counting"], "difficulty": 0}, max_turns=3)
SHOW = "<code>\n```python\ndisplay(image.resize((112, 84)))\n```\n</code>"
PRINT = "<code>\n```python\nprint(2 + 3)\n```\n</code>"


@pytest.fixture(scope="module")
def codec(tiny_model) -> QwenChatCodec:
    return QwenChatCodec(tiny_model)


@pytest.fixture(scope="module")
def model(tiny_model):
    from transformers import AutoModelForImageTextToText

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # faster than two contended threads on the shared 2-core machine
    yield AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32).eval()
    torch.set_num_threads(threads)


def _answer(seed: int) -> str:
    env = gym.make("PyVisionImage-v0", **ENV.kwargs)
    env.reset(seed=seed)
    answer = env.unwrapped.task.answer
    env.close()
    return str(answer)


class ScriptedEngine(GenerationEngine):
    """A fake engine for unit tests of the rollout: turn k of every episode is ``script[k]``
    (ids encoded once, up front), each token with log-prob -0.5; it honours max_new_tokens."""

    def __init__(self, codec: QwenChatCodec, script: Sequence[str], close_turns: bool = False) -> None:
        self.codec = codec
        close = [codec.eos_token_ids[0]] if close_turns else []  # the model ends each turn with <|im_end|>
        self.script = [codec.tokenizer.encode(a, add_special_tokens=False) + close for a in script]
        self.requests: list[GenRequest] = []

    def generate(self, requests: Sequence[GenRequest], sampling: Sampling) -> list[GenResult]:
        out = []
        for r in requests:
            self.requests.append(r)
            turn = (r.ids.count(self.codec.eos_token_ids[0]) - 2) // 2  # system + user, then 2 per turn
            ids = self.script[turn][: r.max_new_tokens]
            out.append(GenResult(ids, [-0.5] * len(ids), "stop" if len(ids) == len(self.script[turn]) else "length"))
        return out

    def load_weights(self, state_dict) -> None:
        pass


def _scripted(codec: QwenChatCodec, max_length: int = 8192, seed: int = 0, close_turns: bool = False):
    script = [PRINT, SHOW, f"<answer>\\boxed{{{_answer(seed)}}}</answer>"]
    engine = ScriptedEngine(codec, script, close_turns)
    runner = RolloutRunner(env_factory(ENV), engine, codec, Sampling(max_new_tokens=256), max_length=max_length, batch_size=2)
    return runner, engine, script


def _agent_view(episode: Episode, turns: int) -> Episode:
    return replace(episode, turns=episode.turns[:turns])


@pytest.mark.parametrize("close_turns", [False, True])
def test_scripted_three_turn_episode_is_the_agents_chat(codec, close_turns):
    """ids = prompt + a1 + o1 + a2 + o2 + a3, the mask on exactly the a_i, and the text is the
    processor's rendering of the agent's messages plus the final action. When the model closes
    its turns with <|im_end|> (kept, in the loss), the observations do not repeat it."""
    runner, engine, script = _scripted(codec, close_turns=close_turns)
    calls: list[str] = []
    encode = codec.tokenizer.encode
    codec.tokenizer.encode = lambda text, **kw: calls.append(text) or encode(text, **kw)  # a spy
    try:
        (traj,) = runner.collect([TaskSpec("t", seed=0)], n=1, seed=0)
    finally:
        codec.tokenizer.encode = encode
        runner.close()
    episode = runner.records[0].episode
    assert traj.end_reason == "DONE" and traj.correct and traj.turns == 3 and traj.tool_calls == 2
    assert traj.reward == pytest.approx(1.2) and traj.reward_terms == {"accuracy": 1.0, "tool_bonus": pytest.approx(0.2)}
    assert traj.images_shown == 1 and len(traj.images) == 2 and traj.response_tokens == sum(map(len, engine.script))
    # the pieces, in order
    prompt = codec.prompt(episode.first.text, episode.first.images)
    obs = [codec.observation(o.text, o.images, k) for (_, o), k in zip(episode.turns[:2], (1, 1), strict=True)]
    a1, a2, a3 = engine.script
    o1, o2 = (o.ids[1:] if close_turns else o.ids for o in obs)
    pieces = [(prompt.ids, 0), (a1, 1), (o1, 0), (a2, 1), (o2, 0), (a3, 1)]
    assert traj.ids.tolist() == [t for ids, _ in pieces for t in ids]
    assert traj.loss_mask.tolist() == [m for ids, m in pieces for _ in ids]
    assert np.all(traj.sampler_logp[traj.loss_mask == 1] == -0.5) and np.all(traj.sampler_logp[traj.loss_mask == 0] == 0)
    assert traj.prompt_len == len(prompt.ids)
    # the agent's rendering of the same episode (before its last action) + the last action
    messages = build_messages(_agent_view(episode, 2), codec.system_prompt, codec.max_pixels)
    text = render_chat(messages, codec.tokenizer, codec.chat_template) + script[2] + ("<|im_end|>" if close_turns else "")
    assert [a for a, _ in episode.turns] == script  # the env saw the actions without <|im_end|>
    ref = codec.processor(text=[text], images=message_images(messages), return_tensors="pt")
    assert traj.ids.tolist() == ref["input_ids"][0].tolist()
    assert traj.image_grid_thw.tolist() == ref["image_grid_thw"].tolist()
    collapsed = codec.decode(traj.ids)
    while codec.image_token * 2 in collapsed:
        collapsed = collapsed.replace(codec.image_token * 2, codec.image_token)
    assert collapsed == text
    # agent text was never encoded: the prompt and the two observation deltas only
    assert len(calls) == 3 and not any(a in c for c in calls for a in script)


def test_an_observation_that_does_not_fit_ends_the_episode(codec):
    runner, engine, _ = _scripted(codec)

    def run(max_length: int):
        runner.agent.max_length, engine.requests = max_length, []
        return runner.collect([TaskSpec("t", seed=0)], n=1)[0]

    try:
        full = run(8192)
        shown = runner.records[0].episode.turns[1][1]  # o2: the image a2 displayed
        before_a3 = full.length - len(engine.script[2])  # prompt + a1 + o1 + a2 + o2
        cut = run(before_a3)  # o2 fits, but leaves no room to answer
        short = run(before_a3 + 2)  # room for two tokens of a3
        short_requests = engine.requests
        none = run(full.prompt_len)  # not even the prompt leaves room
    finally:
        runner.close()
    o2 = codec.observation(shown.text, shown.images, 1)
    assert cut.end_reason == "OVER_LENGTH" and cut.reward == 0.0 and not cut.correct and cut.turns == 2
    assert cut.ids.tolist() == full.ids[: before_a3 - len(o2.ids)].tolist()  # ends after a2, nothing of o2
    assert cut.loss_mask.tolist() == full.loss_mask[: cut.length].tolist() and cut.loss_mask[-1] == 1
    assert len(cut.images) == 1 and cut.images_shown == 1  # the env showed o2's image; it is not in the ids
    cut.validate(codec.image_token_id, codec.merge_size)
    assert short_requests[-1].max_new_tokens == 2 and short.length == before_a3 + 2
    assert short.info["finish_reasons"] == ["stop", "stop", "length"] and short.loss_mask[-2:].tolist() == [1, 1]
    assert short.end_reason == "EXCEED_MAX_TURNS" and not short.correct  # half an answer is no answer
    assert none.end_reason == "OVER_LENGTH" and none.turns == 0 and engine.requests == []
    assert none.ids.tolist() == full.ids[: full.prompt_len].tolist() and none.response_tokens == 0


def test_hf_engine_rollouts_are_valid_and_seeded(codec, model):
    engine = HFEngine(model, codec)
    runner = RolloutRunner(env_factory(ENV), engine, codec, Sampling(max_new_tokens=12, temperature=1.0), max_length=4096, batch_size=4)
    try:
        specs = [TaskSpec("a", seed=0), TaskSpec("b", seed=1)]
        first = runner.collect(specs, n=2, seed=3, first_group=10)
        again = runner.collect(specs, n=2, seed=3, first_group=10)
        other = runner.collect(specs, n=2, seed=4, first_group=10)
    finally:
        runner.close()
    assert [t.group_id for t in first] == [10, 10, 11, 11] and [len(g) for g in groups(first)] == [2, 2]
    for t in first:
        t.validate(codec.image_token_id, codec.merge_size)
        assert len(t.images) >= 1 and t.images[0].dtype == np.uint8 and 1 <= t.turns <= ENV.max_turns
        assert len(t.info["finish_reasons"]) == t.turns and 0 < t.response_tokens <= 12 * t.turns
        gen = t.sampler_logp[t.loss_mask == 1]
        assert np.all(gen < 0) and np.all(t.sampler_logp[t.loss_mask == 0] == 0)
        assert not np.isin(t.ids[t.loss_mask == 1], codec.suppress_token_ids).any()
    assert all(np.array_equal(x.ids, y.ids) and np.array_equal(x.sampler_logp, y.sampler_logp) for x, y in zip(first, again, strict=True))
    assert not all(np.array_equal(x.ids, y.ids) for x, y in zip(first, other, strict=True))
    assert not np.array_equal(first[0].ids, first[1].ids)  # two rollouts of one prompt differ


def _prompts(codec: QwenChatCodec) -> list[GenRequest]:
    rng = np.random.default_rng(0)
    p1 = codec.prompt("How many?", [rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)])
    p2 = codec.prompt("A longer question about the two pictures?", [rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)] * 2)
    p3 = codec.prompt("Text only.", [])
    return [GenRequest(p.ids, p.images) for p in (p1, p2, p3)]


def test_left_padded_batch_equals_one_at_a_time(codec, model):
    engine, reqs = HFEngine(model, codec), _prompts(codec)
    greedy = Sampling(max_new_tokens=10, temperature=0.0)
    batch = engine.generate(reqs, greedy)
    for req, got in zip(reqs, batch, strict=True):
        (alone,) = engine.generate([req], greedy)
        assert got.ids == alone.ids and got.finish_reason == alone.finish_reason == "length"
        assert np.allclose(got.logprobs, alone.logprobs, atol=1e-5)
    short = engine.generate([replace(reqs[0], max_new_tokens=3), replace(reqs[1], max_new_tokens=0)], greedy)
    assert short[0].ids == batch[0].ids[:3] and short[1].ids == [] and short[1].finish_reason == "length"


def test_stops_suppression_and_seeds(codec, model):
    engine, reqs = HFEngine(model, codec), _prompts(codec)[:1]
    greedy = Sampling(max_new_tokens=10, temperature=0.0)
    (base,) = engine.generate(reqs, greedy)
    # a stop string completed by token 5 ends the turn there (the token kept)
    stop = codec.decode(base.ids[4:5]).strip() or codec.decode(base.ids[4:5])
    k = next(i for i in range(1, 11) if stop in codec.decode(base.ids[:i]))
    (stopped,) = engine.generate(reqs, replace(greedy, stop_strings=(stop,)))
    assert stopped.ids == base.ids[:k] and stopped.finish_reason == "stop"
    # an end-of-turn id ends it too, kept in the ids
    engine.codec = replace_attrs(codec, eos_token_ids=[base.ids[2]])
    (ended,) = engine.generate(reqs, greedy)
    assert ended.ids == base.ids[: base.ids.index(base.ids[2]) + 1] and ended.finish_reason == "stop"
    # a suppressed id is never produced
    engine.codec, engine.suppress_token_ids = codec, [*codec.suppress_token_ids, base.ids[0]]
    (suppressed,) = engine.generate(reqs, greedy)
    assert suppressed.ids[0] != base.ids[0]
    engine.suppress_token_ids = codec.suppress_token_ids
    hot = Sampling(max_new_tokens=10, temperature=1.0, seed=7)
    a, b = engine.generate(reqs, hot), engine.generate(reqs, hot)
    c = engine.generate(reqs, replace(hot, seed=8))
    assert a[0].ids == b[0].ids and a[0].logprobs == b[0].logprobs and a[0].ids != c[0].ids
    state = torch.random.get_rng_state()
    engine.generate(reqs, hot)
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG is untouched


def replace_attrs(codec: QwenChatCodec, **attrs) -> QwenChatCodec:
    """A shallow copy of ``codec`` with some attributes changed."""
    other = object.__new__(QwenChatCodec)
    other.__dict__.update(codec.__dict__, **attrs)
    return other


def test_load_weights_copies_or_shares(codec, model, tiny_model):
    from transformers import AutoModelForImageTextToText

    engine = HFEngine(model, codec)
    engine.load_weights(model.state_dict())  # shared: nothing to copy
    fresh = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32)
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(0.01)
    engine = HFEngine(AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32), codec)
    engine.load_weights(fresh.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(engine.model.state_dict().values(), fresh.state_dict().values(), strict=True))
    with pytest.raises(KeyError, match="does not have"):
        engine.load_weights({"base_model.model.lm_head.weight": torch.zeros(1)})


def engine_learner_gap(engine, codec, model, env, temperature: float) -> float:
    """Two-turn rollouts of two tasks with ``engine``; the largest |engine - learner| log-prob
    over the generated tokens (the learner recomputes under logits / T, images included)."""
    from pyvision_gym.train.collate import collate
    from pyvision_gym.train.logprobs import sequence_logprobs

    sampling = Sampling(max_new_tokens=8, temperature=temperature)
    runner = RolloutRunner(env_factory(env), engine, codec, sampling, max_length=4096, batch_size=2)
    try:
        trajs = runner.collect([TaskSpec("a", seed=0), TaskSpec("b", seed=1)], n=1, seed=1)
    finally:
        runner.close()
    batch = collate(trajs, codec)
    assert batch.vision["pixel_values"].shape[0] > 0
    with torch.no_grad():
        logp = sequence_logprobs(model, batch, temperature=temperature if temperature > 0 else 1.0)
    mask = batch.loss_mask > 0
    assert int(mask.sum()) == sum(t.response_tokens for t in trajs) > 8
    return (logp[mask] - batch.sampler_logp[mask]).abs().max().item()


@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_sampler_logprobs_equal_the_learners(codec, model, temperature):
    """The engine's per-token log-probs equal the learner's recomputation (images included)."""
    gap = engine_learner_gap(HFEngine(model, codec), codec, model, replace(ENV, max_turns=2), temperature)
    assert gap < 1e-4, f"max |engine - learner| log-prob gap {gap:.2e}"
