"""The learner on the tiny locally built Qwen2.5-VL: padded batches, images seen, gradient
accumulation invariance, resume, frozen vision and LoRA."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from pyvision_gym.rollout.agent import Observation
from pyvision_gym.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from pyvision_gym.train.collate import collate
from pyvision_gym.train.config import TrainConfig
from pyvision_gym.train.learner import Learner, micro_batches, minibatches
from pyvision_gym.train.logprobs import sequence_logprobs
from pyvision_gym.train.policy_model import (
    PolicyError,
    load_policy,
    load_reference,
    merged_state_dict,
    vision_module,
)
from pyvision_gym.train.sft import encode_episode
from pyvision_gym.train.trajectory import Trajectory


# ----------------------------------------------------------------------------- helpers (shared)
def train_config(**optim) -> TrainConfig:
    """A CPU float32 config for the tiny model with ``optim`` overrides."""
    cfg = TrainConfig()
    cfg.policy.device, cfg.policy.dtype = "cpu", "float32"
    for key, value in {"lr": 1e-3, "grad_clip": 1e9, "mini_batch_size": 4, "micro_batch_size": 4, **optim}.items():
        setattr(cfg.optim, key, value)
    return cfg


def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny-model cache for the whole session (the build is cached and atomic)."""
    return tmp_path_factory.getbasetemp() / "train-cache"


def image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_trajs(codec, n: int = 5, seed: int = 0) -> list[Trajectory]:
    """``n`` trajectories of different lengths and image counts (some without images), two
    per group, with advantages and sampler log-probs set."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        first = Observation(f"Question {i}: how many circles are there?", (image(56 + 14 * (i % 3), 84, seed + i),) if i % 4 != 3 else ())
        shown = (image(56, 56, 100 + i),)
        turns = [(f"<code>\n```python\nprint({i} * {j})\n```\n</code>", Observation(str(i * j), shown if j == 0 else ()))
                 for j in range(i % 3)]
        turns.append((f"<answer>\\boxed{{{i}}}</answer>", Observation("")))
        t = encode_episode(codec, first, turns, group_id=i // 2, task_id=f"t{i}")
        t.info["advantage"] = float(rng.normal())
        t.sampler_logp = np.where(t.loss_mask > 0, -rng.uniform(1, 9, t.length), 0).astype(np.float32)
        out.append(t)
    return out


def grads(model) -> dict[str, np.ndarray]:
    return {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters() if p.grad is not None}


def params(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy(train_config().policy, cache_dir(tmp_path_factory))


@pytest.fixture(scope="module")
def trajs(policy):
    return make_trajs(policy[1])


# ----------------------------------------------------------------------------- tests
def test_padded_batch_equals_single_sequences(policy, trajs):
    model, codec = policy
    batch = collate(trajs, codec)
    assert batch.input_ids.shape == (len(trajs), max(t.length for t in trajs))
    assert int(batch.vision["image_grid_thw"].shape[0]) == sum(len(t.images) for t in trajs)
    assert torch.equal(batch.mm_token_type_ids.bool(), batch.input_ids == codec.image_token_id)
    with torch.no_grad():
        together = sequence_logprobs(model, batch)
        for i, t in enumerate(trajs):
            alone = sequence_logprobs(model, collate([t], codec))[0]
            assert alone.shape == (t.length,)
            assert torch.allclose(together[i, : t.length], alone, atol=1e-5, rtol=0)
            assert float(alone[torch.as_tensor(t.loss_mask > 0)].max()) < 0  # real log-probs where the loss is


def test_logprob_alignment_matches_the_logits(policy, trajs):
    """logp[:, t] is log softmax(logits[:, t-1])[ids[:, t]], computed by hand."""
    model, codec = policy
    batch = collate(trajs[:1], codec)
    with torch.no_grad():
        logits = model(**batch.model_inputs()).logits[0].double()
        got = sequence_logprobs(model, batch, temperature=0.7)[0]
    ids = batch.input_ids[0]
    want = torch.log_softmax(logits[:-1] / 0.7, -1).gather(-1, ids[1:, None])[:, 0]
    assert float(got[0]) == 0.0
    assert torch.allclose(got[1:].double(), want, atol=1e-5)


def test_the_learner_sees_the_images(policy, trajs):
    model, codec = policy
    t = trajs[1]  # prompt image + an observation image
    changed = copy.deepcopy(t)
    changed.images[-1] = 255 - changed.images[-1]
    with torch.no_grad():
        before = sequence_logprobs(model, collate([t], codec))[0]
        after = sequence_logprobs(model, collate([changed], codec))[0]
    pads = np.flatnonzero(t.ids == codec.image_token_id)
    start = int(pads[np.flatnonzero(np.diff(pads) > 1)[-1] + 1])  # the last image's first placeholder
    gen = torch.as_tensor(t.loss_mask > 0)
    assert torch.equal(before[: start + 1], after[: start + 1])  # causal: nothing before the image moves
    assert float((before - after)[gen].abs().max()) > 1e-4  # the answer after the image does


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_mean"])
def test_gradient_accumulation_cannot_change_the_gradient(policy, trajs, mode):
    model, codec = policy
    got = []
    for micro in (1, 4):
        cfg = train_config(lr=0.0, weight_decay=0.0, mini_batch_size=8, micro_batch_size=micro)
        cfg.algorithm.loss_agg = mode
        learner = Learner(model, codec, cfg)
        metrics = learner.update(copy.deepcopy(trajs))
        assert metrics["learner/optimizer_steps"] == 1 and metrics["learner/tokens"] == sum(t.response_tokens for t in trajs)
        got.append(grads(model))
    assert got[0].keys() == got[1].keys() and got[0]
    for name in got[0]:
        np.testing.assert_allclose(got[0][name], got[1][name], atol=1e-6, rtol=0, err_msg=name)
    assert max(float(np.abs(g).max()) for g in got[0].values()) > 1e-4  # a real gradient


def test_minibatches_keep_groups_and_ranks_share_them(trajs):
    mbs = minibatches(trajs, 2)  # groups {0,1},{2,3},{4}: prompts 0-1, then 2
    assert [[t.task_id for t in mb] for mb in mbs] == [["t0", "t1", "t2", "t3"], ["t4"]]
    ranks = [micro_batches(mbs[0], 1, r, 2) for r in range(2)]
    assert [[m[0][0].task_id for m in r] for r in ranks] == [["t0", "t2"], ["t1", "t3"]]
    (idle, weight), = micro_batches(mbs[1], 4, 1, 2)  # an idle rank joins with weight 0
    assert weight == 0.0 and [t.task_id for t in idle] == ["t4"] and "old_logp" in idle[0].info
    uneven = [micro_batches(trajs, 2, r, 2) for r in range(2)]  # 3 + 2 trajectories: same micro count
    assert [[(len(m), w) for m, w in r] for r in uneven] == [[(2, 1.0), (1, 1.0)], [(2, 1.0), (1, 0.0)]]


def test_old_logprobs_give_ratio_one_and_the_gap_metric(policy, trajs):
    model, codec = policy
    learner = Learner(model, codec, train_config(lr=0.0))
    batch = copy.deepcopy(trajs)
    gap = learner.old_logprobs(batch)
    t = batch[0]
    with torch.no_grad():
        fresh = sequence_logprobs(model, collate([t], codec))[0].numpy()
    mask = t.loss_mask > 0
    assert np.abs(t.info["old_logp"][mask] - fresh[mask]).max() < 1e-5
    want = np.mean(np.concatenate([np.abs(x.info["old_logp"] - x.sampler_logp)[x.loss_mask > 0] for x in batch]))
    assert gap["learner/logp_gap_abs_mean"] == pytest.approx(want, rel=1e-5)
    assert 0.0 <= gap["learner/logp_gap_out_share"] <= 1.0
    metrics = learner.update(batch)
    assert metrics["learner/ratio_mean"] == pytest.approx(1.0, abs=1e-6) and metrics["learner/clip_frac"] == 0.0
    assert "old_logp" not in batch[0].info  # dropped after the update


def test_a_single_step_update_takes_old_logprobs_from_its_own_forward(tmp_path_factory, trajs):
    """One epoch, one mini-batch: the fused path (no separate old-log-prob pass) gives the same
    gap metric, ratio 1 and the same new weights as the separate eval-mode pass."""
    results = []
    for separate in (True, False):
        cfg = train_config(lr=1e-2, mini_batch_size=8, micro_batch_size=2)
        model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
        learner, batch = Learner(model, codec, cfg), copy.deepcopy(trajs)
        gap = learner.old_logprobs(batch) if separate else {}
        metrics = {**gap, **learner.update(batch)}
        assert metrics["learner/old_logp_fused"] == float(not separate)
        assert metrics["learner/ratio_mean"] == pytest.approx(1.0, abs=1e-6) and metrics["learner/clip_frac"] == 0.0
        results.append((metrics, params(model)))
    (m_sep, p_sep), (m_fused, p_fused) = results
    assert m_fused["learner/logp_gap_abs_mean"] == pytest.approx(m_sep["learner/logp_gap_abs_mean"], rel=1e-5)
    assert m_fused["learner/loss"] == pytest.approx(m_sep["learner/loss"], rel=1e-5, abs=1e-7)
    for name in p_sep:
        torch.testing.assert_close(p_fused[name], p_sep[name], atol=1e-6, rtol=0, msg=name)
    two_steps = train_config(lr=1e-2, mini_batch_size=1)  # several mini-batches: the separate pass
    model, codec = load_policy(two_steps.policy, cache_dir(tmp_path_factory))
    assert Learner(model, codec, two_steps).update(copy.deepcopy(trajs))["learner/old_logp_fused"] == 0.0


def _run_steps(learner: Learner, data: list[Trajectory], steps: range) -> None:
    for s in steps:
        learner.update(copy.deepcopy(data[s % 2 :: 2] + data[:1]))


def test_resume_two_plus_two_equals_four(tmp_path_factory, tmp_path):
    cfg = train_config(mini_batch_size=1, micro_batch_size=2)
    straight_model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
    data = make_trajs(codec, n=4, seed=3)
    straight = Learner(straight_model, codec, cfg)
    _run_steps(straight, data, range(4))

    first = Learner(load_policy(cfg.policy, cache_dir(tmp_path_factory))[0], codec, cfg)
    _run_steps(first, data, range(2))
    np.random.seed(7)
    ckpt = save_checkpoint(tmp_path / "step-2", first, cursor={"batch": 2}, carry={"buffer": [1, 2]})
    after_save = np.random.rand()
    assert latest_checkpoint(tmp_path) == ckpt

    np.random.seed(99)
    resumed = Learner(load_policy(cfg.policy, cache_dir(tmp_path_factory))[0], codec, cfg)
    state = load_checkpoint(ckpt, resumed)
    assert state == {"step": first.step, "cursor": {"batch": 2}, "carry": {"buffer": [1, 2]}}
    assert np.random.rand() == after_save  # the RNG continues where it was saved
    _run_steps(resumed, data, range(2, 4))
    assert resumed.step == straight.step > 0
    a, b = params(straight.policy), params(resumed.policy)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])][:3]
    assert any(not torch.equal(a[k], v) for k, v in params(first.policy).items())  # the steps did move


def test_frozen_vision_stays_fixed_and_language_moves(tmp_path_factory):
    cfg = train_config(lr=1e-2)
    model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
    vision = {id(p) for p in vision_module(model).parameters()}
    assert vision and all(not p.requires_grad for p in vision_module(model).parameters())
    before = params(model)
    Learner(model, codec, cfg).update(make_trajs(codec, n=4))
    after = params(model)
    for name, p in model.named_parameters():
        if id(p) in vision:
            assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["lm_head.weight"], after["lm_head.weight"])

    cfg.policy.freeze_vision = False
    model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
    assert all(p.requires_grad for p in vision_module(model).parameters())


def test_lora_trains_only_the_adapters(tmp_path_factory):
    cfg = train_config(lr=1e-2)
    cfg.policy.lora.enabled = True
    model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "visual" not in n for n in trainable)
    assert any("language_model" in n and "q_proj" in n for n in trainable)
    before = params(model)
    learner = Learner(model, codec, cfg)
    learner.update(make_trajs(codec, n=4))
    after = params(model)
    moved = {n for n in before if not torch.equal(before[n], after[n])}
    assert moved and moved <= set(trainable)
    merged = learner.state_dict_for_engine()
    base_model, _ = load_policy(train_config().policy, cache_dir(tmp_path_factory))
    assert set(merged) == set(base_model.state_dict())
    assert not torch.equal(merged["model.language_model.layers.0.self_attn.q_proj.weight"],
                           base_model.state_dict()["model.language_model.layers.0.self_attn.q_proj.weight"])
    batch = collate(make_trajs(codec, n=2, seed=5), codec)
    base_model.load_state_dict(merged)
    with torch.no_grad():
        assert torch.allclose(sequence_logprobs(base_model, batch), sequence_logprobs(model, batch), atol=1e-5)
    # pyvision-gym export merges a LoRA checkpoint's adapters into the exported weights
    import yaml
    from transformers import AutoModelForImageTextToText

    from pyvision_gym.train.export import export_model_folder

    run = tmp_path_factory.mktemp("lora-run")
    cfg.env.cache_dir = str(cache_dir(tmp_path_factory))
    (run / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict()))
    save_checkpoint(run / "step-000001", learner)
    exported = AutoModelForImageTextToText.from_pretrained(export_model_folder(run, run / "model"), dtype=torch.float32)
    assert all(torch.equal(exported.state_dict()[k], v) for k, v in merged.items())


def test_tiny_model_overrides_build_their_own_folder(tmp_path):
    import json

    from pyvision_gym.train.policy_model import model_folder

    cfg = train_config()
    cfg.policy.tiny_model_overrides = {"num_hidden_layers": 3}
    folder = model_folder(cfg.policy, tmp_path)
    assert folder.name == "tiny-qwen25vl-seed0-num_hidden_layers3"
    text = json.loads((folder / "config.json").read_text())
    assert text.get("text_config", text)["num_hidden_layers"] == 3
    cfg.policy.tiny_model_overrides = {"num_layers": 3}
    with pytest.raises(TypeError, match="unknown tiny-model parameters"):
        model_folder(cfg.policy, tmp_path)


def test_a_folder_without_config_is_a_clear_error(tmp_path):
    cfg = train_config()
    cfg.policy.model_path = str(tmp_path)
    with pytest.raises(PolicyError, match="not a model folder"):
        load_policy(cfg.policy, tmp_path)


def test_merged_state_dict_of_a_plain_model_is_its_state_dict(policy):
    model, _ = policy
    state = merged_state_dict(model)
    assert set(state) == set(model.state_dict())


def test_gradient_checkpointing_keeps_the_gradient(tmp_path_factory, trajs):
    got = []
    for checkpointing in (False, True):
        cfg = train_config(lr=0.0, weight_decay=0.0)
        cfg.policy.gradient_checkpointing = checkpointing
        model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
        assert model.is_activation_checkpointing is checkpointing
        Learner(model, codec, cfg).update(copy.deepcopy(trajs))
        got.append(grads(model))
    for name in got[0]:
        np.testing.assert_allclose(got[0][name], got[1][name], atol=1e-6, rtol=0, err_msg=name)


def test_kl_to_the_reference_and_the_entropy_bonus(tmp_path_factory, trajs):
    cfg = train_config(lr=1e-2)
    cfg.algorithm.kl_coef, cfg.algorithm.entropy_coef = 0.5, 0.1
    model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
    with pytest.raises(ValueError, match="reference model"):
        Learner(model, codec, cfg)
    learner = Learner(model, codec, cfg, ref_model=load_reference(cfg.policy, cache_dir(tmp_path_factory)))
    first = learner.update(copy.deepcopy(trajs))
    assert first["learner/kl"] == pytest.approx(0.0, abs=1e-9)  # the policy starts as the reference
    second = learner.update(copy.deepcopy(trajs))
    assert second["learner/kl"] > 1e-6 and second["learner/entropy"] > 0

    plain = train_config(lr=0.0, weight_decay=0.0)
    bonus = train_config(lr=0.0, weight_decay=0.0)
    bonus.algorithm.entropy_coef = 0.1
    got = []
    for c in (plain, bonus):
        model, codec = load_policy(c.policy, cache_dir(tmp_path_factory))
        metrics = Learner(model, codec, c).update(copy.deepcopy(trajs))
        got.append((metrics, grads(model)))
    (m0, g0), (m1, g1) = got
    # the bonus subtracts 0.1 x the token-mean entropy from the loss and changes the gradient
    assert m1["learner/loss"] == pytest.approx(m0["learner/loss"] - 0.1 * m0["learner/entropy"], rel=1e-4)
    assert max(float(np.abs(g0[k] - g1[k]).max()) for k in g0) > 1e-5


@pytest.mark.parametrize(("micro", "equivalent"), [(1, "seq_mean_token_mean"), (8, "token_mean")])
def test_legacy_aggregation_is_a_mean_of_micro_batch_means(policy, trajs, micro, equivalent):
    """The authors' per-micro-batch token mean: one sequence per micro-batch makes it the
    sequence mean; one micro-batch for everything makes it the global token mean."""
    model, codec = policy
    got = []
    for mode, size in (("token_mean_legacy", micro), (equivalent, 4)):
        cfg = train_config(lr=0.0, weight_decay=0.0, mini_batch_size=8, micro_batch_size=size)
        cfg.algorithm.loss_agg = mode
        got.append((Learner(model, codec, cfg).update(copy.deepcopy(trajs)), grads(model)))
    (m0, g0), (m1, g1) = got
    assert m0["learner/loss"] == pytest.approx(m1["learner/loss"], abs=1e-6)
    for name in g0:
        np.testing.assert_allclose(g0[name], g1[name], atol=1e-6, rtol=0, err_msg=name)
