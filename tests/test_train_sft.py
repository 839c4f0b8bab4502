"""SFT warm start: the scripted experts through the real environments, encoded token-in-token-
out with the loss on the agent's tokens only, lower the NLL of their own trajectories."""

from __future__ import annotations

import numpy as np
import pytest
from test_train_learner import cache_dir, train_config

from pyvision_gym.envs.experts import answer_action, code_action, last_line
from pyvision_gym.train.learner import Learner
from pyvision_gym.train.policy_model import load_policy
from pyvision_gym.train.sft import (
    collect_expert_episodes,
    expert_trajectories,
    mean_nll,
    record_trajectory,
    run_sft,
    sft_warm_start,
    turn_lengths,
)


def sft_config(episodes: int = 3):
    cfg = train_config(micro_batch_size=2)
    cfg.env.kwargs = {"families": ["counting"], "difficulty": 0}
    cfg.env.max_turns, cfg.env.workers = 3, 2
    cfg.sft.episodes, cfg.sft.epochs, cfg.sft.lr, cfg.sft.batch_size = episodes, 3, 2e-3, 4
    return cfg


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return load_policy(sft_config().policy, cache_dir(tmp_path_factory))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of ones."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def test_the_agents_turn_format():
    assert code_action("  print(1)\n") == "<code>\n```python\nprint(1)\n```\n</code>"
    assert answer_action("B") == "<answer>\\boxed{B}</answer>"
    assert last_line("a\n 7 \n\n") == "7" and last_line("") == ""


def test_expert_episodes_encode_with_the_loss_on_agent_tokens_only(policy):
    _, codec = policy
    cfg = sft_config()
    records = collect_expert_episodes(cfg)
    assert len(records) == 3 and all(r.correct and r.end_reason == "DONE" for r in records)
    assert all(r.episode.task is None for r in records)  # the tasks' images are let go as episodes end
    for record in records:
        traj = record_trajectory(codec, record)
        actions = [a for a, _ in record.episode.turns]
        runs = _runs(traj.loss_mask)
        assert [codec.decode(traj.ids[a:b]) for a, b in runs] == actions  # exactly the a_i, in order
        assert traj.prompt_len == runs[0][0] and runs[-1][1] == traj.length  # ends with the answer
        assert actions[-1].startswith("<answer>") and traj.correct and traj.reward == record.reward
        prompt = codec.prompt(record.episode.first.text, record.episode.first.images)
        assert traj.ids[: traj.prompt_len].tolist() == prompt.ids
        gaps = [codec.decode(traj.ids[b:a]) for (_, b), (a, _) in zip(runs, runs[1:], strict=False)]
        assert all(g.startswith("<|im_end|>") and g.endswith("<|im_start|>assistant\n") and "<interpreter>" in g for g in gaps)
        assert int((traj.ids == codec.image_token_id).sum()) > 0  # the prompt image


@pytest.mark.slow
def test_sft_lowers_the_nll_of_expert_trajectories(policy, tmp_path_factory):
    cfg = sft_config()
    model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
    learner = Learner(model, codec, cfg)
    trajs, stats = expert_trajectories(cfg, codec)
    assert stats["sft/episodes"] == stats["sft/correct_episodes"] == len(trajs) == 3
    before = mean_nll(learner, trajs)
    epochs = run_sft(learner, trajs, cfg.sft, seed=0)
    after = mean_nll(learner, trajs)
    assert [m["sft/epoch"] for m in epochs] == [1.0, 2.0, 3.0]
    assert epochs[-1]["sft/loss"] < epochs[0]["sft/loss"]
    assert after < before - 0.5, (before, after)
    assert epochs[0]["sft/tokens"] == sum(t.response_tokens for t in trajs)
    assert learner.step == 0  # SFT steps are not RL steps


def test_sft_warm_start_reports_collection_and_epochs(tmp_path_factory):
    cfg = sft_config(episodes=2)
    cfg.sft.epochs = 2
    cfg.sft.batch_size = 1  # two updates an epoch
    cfg.sft.lr_schedule = "cosine"
    model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
    metrics = sft_warm_start(cfg, Learner(model, codec, cfg))
    assert len(metrics) == 2 and metrics[0]["sft/correct_episodes"] == 2
    assert metrics[0]["sft/loss"] > 0 and metrics[0]["sft/grad_norm"] > 0
    # cosine over the 4 updates: lr/10 + (lr - lr/10) * (1 + cos(pi * t / 4)) / 2 after t = 2, then lr/10
    lr = cfg.sft.lr
    assert metrics[0]["sft/lr"] == pytest.approx(lr / 10 + 0.9 * lr / 2)
    assert metrics[1]["sft/lr"] == pytest.approx(lr / 10)
    cfg.sft.lr_schedule = "linear"
    with pytest.raises(ValueError, match="sft.lr_schedule must be 'constant' or 'cosine', got 'linear'"):
        sft_warm_start(cfg, Learner(model, codec, cfg))


def test_expert_turns_longer_than_max_new_tokens_are_refused(tmp_path_factory):
    """A policy cut off inside the turns it is taught never closes a code block: refuse it."""
    assert turn_lengths(np.array([0, 1, 1, 0, 0, 1, 0, 1, 1, 1], np.uint8)) == [2, 1, 3]
    cfg = sft_config(episodes=2)
    model, codec = load_policy(cfg.policy, cache_dir(tmp_path_factory))
    trajs, stats = expert_trajectories(cfg, codec)
    longest = int(stats["sft/longest_turn_tokens"])
    assert longest == max(n for t in trajs for n in turn_lengths(t.loss_mask)) and longest > 20
    cfg.rollout.max_new_tokens = longest - 1
    with pytest.raises(ValueError, match=rf"up to {longest} tokens but rollout.max_new_tokens is {longest - 1}"):
        expert_trajectories(cfg, codec)


def test_final_turn_weight_weighs_the_answer_turn_only():
    import types

    import torch

    from pyvision_gym.train.sft import final_turn_mask, nll_loss

    mask = torch.tensor([[0, 0, 1, 1, 0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.float32)
    final = final_turn_mask(mask)
    assert final.int().tolist() == [[0, 0, 0, 0, 0, 1, 1, 1, 0, 0], [0, 1, 1, 1, 1, 0, 0, 0, 0, 0]]
    logp = -torch.arange(20, dtype=torch.float32).reshape(2, 10) / 10
    stub = types.SimpleNamespace(reduce=lambda loss, m, counts, mode: (loss * m).sum() / m.sum())  # token mean
    batch = types.SimpleNamespace(loss_mask=mask)
    plain, _ = nll_loss(stub)(batch, logp, None, None)
    weighted, _ = nll_loss(stub, 5.0)(batch, logp, None, None)
    assert torch.isclose(plain, (-logp * mask).sum() / mask.sum())
    assert torch.isclose(weighted, (-logp * (mask + 4 * final)).sum() / mask.sum())


def test_answer_windows_keep_the_answer_turn_and_a_short_context_without_cutting_an_image():
    from pyvision_gym.train.config import SFTConfig
    from pyvision_gym.train.sft import answer_windows, epoch_batches
    from pyvision_gym.train.trajectory import Trajectory

    ids = np.arange(100, 120)
    mask = np.array([0] * 6 + [1] * 4 + [0] * 6 + [1] * 4, np.uint8)  # prompt, code turn, output, answer
    traj = Trajectory(ids=ids, loss_mask=mask, sampler_logp=np.zeros(20, np.float32), prompt_len=6, task_id="t")
    (win,) = answer_windows([traj], window=3, image_token_id=7)  # 3 tokens before the code turn
    assert win.ids.tolist() == list(range(103, 120)) and win.loss_mask.tolist() == [0] * 13 + [1] * 4
    assert win.prompt_len == 13 and win.task_id == "t#answer"
    with_image = Trajectory(ids=np.where(np.arange(20) == 14, 7, ids), loss_mask=mask, sampler_logp=np.zeros(20, np.float32))
    (short,) = answer_windows([with_image], window=8, image_token_id=7)
    assert short.ids.tolist() == [115, 116, 117, 118, 119] and short.loss_mask.sum() == 4  # starts after the image
    cfg = SFTConfig(batch_size=4, answer_window=3, answer_repeats=3, answer_batch_size=5)
    batches = epoch_batches(10, 10, cfg, seed=0, epoch=0)
    assert sorted(j for kind, b in batches if kind == "full" for j in b) == list(range(10))
    assert sorted(j for kind, b in batches if kind == "window" for j in b) == sorted(list(range(10)) * 3)
    assert batches == epoch_batches(10, 10, cfg, seed=0, epoch=0) != epoch_batches(10, 10, cfg, seed=0, epoch=1)
