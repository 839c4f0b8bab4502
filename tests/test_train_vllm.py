"""The vLLM generation engine on the tiny locally built Qwen2.5-VL (float32): it generates what
the transformers engine generates, its log-probs are the learner's, it stops, suppresses and
seeds like the transformers engine, and it takes new weights.

vLLM runs in this interpreter when ``import vllm`` works, else in the vLLM venv (``make vllm``;
CI builds it). Without either, every test here but the last skips and says why. One engine is
started per module (~15 s, plus ~9 s of warm-up on the first request)."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_rollout import engine_learner_gap

from pyvision_gym.agents.codec import QwenChatCodec
from pyvision_gym.train.config import EnvConfig, PolicyConfig, RolloutConfig, TrainConfig
from pyvision_gym.train.engines import vllm as vllm_engine
from pyvision_gym.train.engines.base import GenRequest, Sampling
from pyvision_gym.train.engines.hf import HFEngine
from pyvision_gym.train.engines.vllm import VLLMEngine, VLLMError, collapse_image_runs

ENV = EnvConfig(kwargs={"families": ["counting"], "difficulty": 0}, max_turns=2)
LEARNER_ATOL = 1e-4  # the bound; measured max |engine - learner| on this model: see the test
GREEDY = Sampling(max_new_tokens=10, temperature=0.0)


def _no_vllm_reason() -> str | None:
    if importlib.util.find_spec("vllm") is not None or vllm_engine.vllm_python() is not None:
        return None
    return (
        "vLLM not installed: `import vllm` fails here and there is no vLLM venv "
        f"(PYVISION_VLLM_PYTHON or {vllm_engine.DEFAULT_VLLM_PYTHON}; `make vllm` builds it)"
    )


needs_vllm = pytest.mark.skipif(_no_vllm_reason() is not None, reason=_no_vllm_reason() or "")


def _config(model: Path) -> TrainConfig:
    return TrainConfig(
        policy=PolicyConfig(model_path=str(model), device="cpu", dtype="float32"), rollout=RolloutConfig(engine="vllm", max_length=4096)
    )


@pytest.fixture(scope="module")
def codec(tiny_model) -> QwenChatCodec:
    return QwenChatCodec(tiny_model)


@pytest.fixture(scope="module")
def model(tiny_model):
    from transformers import AutoModelForImageTextToText

    return AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def engine(tiny_model, codec):
    if _no_vllm_reason():
        pytest.skip(_no_vllm_reason())
    engine = VLLMEngine(_config(tiny_model), codec)
    yield engine
    engine.close()


def _prompts(codec: QwenChatCodec) -> list[GenRequest]:
    """Text + one image, text + two images, text only."""
    rng = np.random.default_rng(0)
    p1 = codec.prompt("How many?", [rng.integers(0, 256, (100, 150, 3), dtype=np.uint8)])
    p2 = codec.prompt("A longer question about the two pictures?", [rng.integers(0, 256, (60, 60, 3), dtype=np.uint8)] * 2)
    p3 = codec.prompt("Text only.", [])
    return [GenRequest(p.ids, p.images) for p in (p1, p2, p3)]


def test_collapse_image_runs():
    assert collapse_image_runs([1, 6, 6, 6, 2, 6, 6, 3], 6, 2) == [1, 6, 2, 6, 3]
    assert collapse_image_runs([1, 2], 6, 0) == [1, 2]
    with pytest.raises(ValueError, match="1 image-placeholder runs for 2 images"):
        collapse_image_runs([1, 6, 6, 2], 6, 2)


@pytest.mark.slow
@needs_vllm
def test_generation_matches_the_transformers_engine(engine, codec, model):
    """Right shapes; greedy ids equal HFEngine's and log-probs agree (float32 on CPU)."""
    reqs = _prompts(codec)
    got = engine.generate([*reqs, replace(reqs[0], max_new_tokens=0), replace(reqs[1], max_new_tokens=3)], GREEDY)
    ref = HFEngine(model, codec).generate(reqs, GREEDY)
    for g, r in zip(got, ref, strict=False):
        assert len(g.ids) == len(g.logprobs) == 10 and g.finish_reason == "length"
        assert g.ids == r.ids  # the whole 10 tokens, images included
        assert np.allclose(g.logprobs, r.logprobs, atol=1e-4) and all(lp < 0 for lp in g.logprobs)
    assert got[3].ids == [] and got[3].logprobs == [] and got[3].finish_reason == "length"
    assert got[4].ids == got[1].ids[:3] and got[4].finish_reason == "length"
    assert engine.mode in ("in-process", "worker") and engine.vllm_version
    assert engine.engine_kwargs["logprobs_mode"] == "raw_logprobs" and engine.engine_kwargs["dtype"] == "float32"


@pytest.mark.slow
@needs_vllm
def test_stops_suppression_and_seeds(engine, codec):
    reqs = _prompts(codec)[:1]
    (base,) = engine.generate(reqs, GREEDY)
    # a stop string completed by token 5 ends the turn there (the token kept)
    stop = codec.decode(base.ids[4:5]).strip() or codec.decode(base.ids[4:5])
    k = next(i for i in range(1, 11) if stop in codec.decode(base.ids[:i]))
    (stopped,) = engine.generate(reqs, replace(GREEDY, stop_strings=(stop,)))
    assert stopped.ids == base.ids[:k] and stopped.finish_reason == "stop" and len(stopped.logprobs) == k
    # an end-of-turn id ends it too, kept in the ids
    eos = base.ids[2]
    engine.codec = _with(codec, eos_token_ids=[eos])
    try:
        (ended,) = engine.generate(reqs, GREEDY)
    finally:
        engine.codec = codec
    assert ended.ids == base.ids[: base.ids.index(eos) + 1] and ended.finish_reason == "stop"
    # a suppressed id is never produced (here: the greedy first token, banned on top of the vision ids)
    engine.suppress_token_ids = [*codec.suppress_token_ids, base.ids[0]]
    try:
        (suppressed,) = engine.generate(reqs, GREEDY)
    finally:
        engine.suppress_token_ids = list(codec.suppress_token_ids)
    assert suppressed.ids[0] != base.ids[0]
    # seeds: the same seed repeats, another differs, and copies of one prompt in a call differ
    hot = Sampling(max_new_tokens=24, temperature=1.0, seed=7)
    a, b = engine.generate(reqs * 2, hot), engine.generate(reqs * 2, hot)
    c = engine.generate(reqs, replace(hot, seed=8))
    assert [r.ids for r in a] == [r.ids for r in b] and [r.logprobs for r in a] == [r.logprobs for r in b]
    assert a[0].ids != a[1].ids and a[0].ids != c[0].ids
    assert not np.isin(np.concatenate([r.ids for r in a + c]), codec.suppress_token_ids).any()


def _with(codec: QwenChatCodec, **attrs) -> QwenChatCodec:
    """A shallow copy of ``codec`` with some attributes changed."""
    other = object.__new__(QwenChatCodec)
    other.__dict__.update(codec.__dict__, **attrs)
    return other


@pytest.mark.slow
@needs_vllm
@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_sampler_logprobs_equal_the_learners(engine, codec, model, temperature):
    """Two-turn rollouts on real environments: the engine's log-probs are the learner's
    recomputation under logits / T (images included)."""
    gap = engine_learner_gap(engine, codec, model, ENV, temperature)
    assert gap < LEARNER_ATOL, f"max |engine - learner| log-prob gap {gap:.2e}"


@pytest.mark.slow
@needs_vllm
def test_load_weights_changes_outputs_and_restores_them(engine, codec, model, tiny_model):
    """New weights give the transformers model's new greedy ids; the old weights give back
    exactly the old outputs; weights the model does not have are an error that leaves the
    engine usable."""
    from transformers import AutoModelForImageTextToText

    reqs = _prompts(codec)[:2]
    before = engine.generate(reqs, GREEDY)
    changed = AutoModelForImageTextToText.from_pretrained(tiny_model, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in changed.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    engine.load_weights(changed.state_dict())
    after = engine.generate(reqs, GREEDY)
    expected = HFEngine(changed, codec).generate(reqs, GREEDY)
    engine.load_weights(model.state_dict())
    again = engine.generate(reqs, GREEDY)
    assert all(a.ids != b.ids for a, b in zip(after, before, strict=True))
    assert [a.ids for a in after] == [e.ids for e in expected]  # the vision tower's weights included
    assert [(a.ids, a.logprobs) for a in again] == [(b.ids, b.logprobs) for b in before]
    # names or shapes the model does not have: refused before vLLM is touched
    with pytest.raises(KeyError, match="does not have"):
        engine.load_weights({"base_model.model.lm_head.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="missing"):
        engine.load_weights({"lm_head.weight": changed.lm_head.weight})
    with pytest.raises(ValueError, match="wrong shape"):
        engine.load_weights({**changed.state_dict(), "lm_head.weight": torch.zeros(3, 3)})
    # weights vLLM itself refuses: an error, and the checkpoint's weights are back in place
    engine.load_weights(changed.state_dict())
    with pytest.raises(VLLMError, match="checkpoint's weights again"):
        engine._vllm.load_weights({"no.such.weight": torch.zeros(1)})
    assert [(a.ids, a.logprobs) for a in engine.generate(reqs, GREEDY)] == [(b.ids, b.logprobs) for b in before]


def test_missing_vllm_is_a_clear_error(tiny_model, codec, monkeypatch, tmp_path):
    """No vLLM here and no venv: an error that says how to get one (no crash, no hang)."""
    monkeypatch.setenv("PYVISION_VLLM_PYTHON", str(tmp_path / "missing" / "python"))
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(VLLMError, match="make vllm"):
            VLLMEngine(_config(tiny_model), codec)
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'no vllm in this interpreter' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(VLLMError, match=r"(?s)exited \(code 3\).*no vllm in this interpreter"):
        VLLMEngine(_config(tiny_model), codec, python=fake, startup_timeout=30)
    with pytest.raises(VLLMError, match="cannot start the vLLM worker"):
        VLLMEngine(_config(tiny_model), codec, python=tmp_path / "missing" / "python")
