"""SFT warm start: the task families' scripted experts, in the agent's turn format, as targets.

1. **Collect.** A scripted agent plays each family's expert program through the real
   environments (train split) with the rollout engine: turn t sends the expert's code turn t
   as ``<code>\\n```python\\n...\\n```\\n</code>``; after the last one it answers
   ``<answer>\\boxed{X}</answer>`` with X the last printed line, as the expert baseline agent
   (``agents/baselines.ExpertAgent``) does. Only episodes it answered correctly are kept.
2. **Encode** token-in-token-out, like a rollout: the prompt ids once, each action's text
   encoded once (for SFT the text is the source), each observation as the codec's delta; the
   loss mask covers the action tokens only.
3. **Train** with the mean token negative log-likelihood (the learner's micro-batching and
   data parallelism, a fresh AdamW at ``sft.lr``), ``sft.epochs`` seeded shuffled passes.

The SFT episodes use their own task seeds (:data:`SFT_SEED_OFFSET` and up in the train split),
so they do not replay the RL run's prompts.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pyvision_gym.envs import get_family
from pyvision_gym.envs.experts import expert_action
from pyvision_gym.rollout.agent import Agent, Episode, Observation
from pyvision_gym.rollout.engine import RolloutEngine
from pyvision_gym.rollout.records import EpisodeRecord, TaskSpec

from .collate import Batch, collate
from .config import SFTConfig, TrainConfig
from .learner import Counts, Learner, all_reduce_sum, dist_info
from .logprobs import sequence_logprobs
from .rollout import env_factory
from .trajectory import Trajectory

SFT_SEED_OFFSET = 900_000_000  # SFT task seeds: train split, far above the RL run's seeds


# ----------------------------------------------------------------------------- the expert's turns
class ExpertScriptAgent(Agent):
    """Plays the family's scripted expert (privileged: it reads ``Episode.task``), then answers
    with the last line the code printed."""

    spec = "sft-expert"
    privileged = True

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        out = []
        for ep in episodes:
            if ep.task is None:
                raise ValueError(f"episode {ep.episode_id}: the SFT expert needs Episode.task")
            last = ep.turns[-1][1].text if ep.turns else ""
            out.append(expert_action(get_family(ep.task.family), ep.task, ep.turn, last, bool(ep.info.get("toolbox")),
                                     bool(ep.info.get("question_reader"))))
        return out


def collect_expert_episodes(cfg: TrainConfig, episodes: int | None = None) -> list[EpisodeRecord]:
    """The scripted experts' episodes on ``sft.episodes`` train-split seeds (all of them)."""
    n = cfg.sft.episodes if episodes is None else int(episodes)
    base = SFT_SEED_OFFSET + cfg.seed * 1_000_000
    specs = [TaskSpec(task_id=f"sft-{i}", index=i, seed=base + i) for i in range(n)]
    engine = RolloutEngine(ExpertScriptAgent(), env_factory(cfg.env), batch_size=cfg.env.workers)
    try:
        with tqdm(total=n, desc="expert episodes for SFT", unit="ep", dynamic_ncols=True, disable=dist_info()[0] != 0) as bar:

            def finished(record: EpisodeRecord) -> None:
                # The task's images (up to ~70 MB for a large search canvas) are not needed once
                # the episode is over; 448 kept tasks held 12 GB that the SFT never used.
                if record.episode is not None:
                    record.episode.task = None
                bar.update(1)

            return engine.run(specs, on_record=finished)
    finally:
        engine.close()


# ----------------------------------------------------------------------------- encoding
def encode_text(codec: Any, text: str) -> list[int]:
    """Token ids of an agent action's text (the codec's ``encode_text``, else its tokenizer)."""
    if hasattr(codec, "encode_text"):
        return list(codec.encode_text(text))
    return list(codec.tokenizer.encode(text, add_special_tokens=False))


def encode_episode(codec: Any, first: Observation, turns: Sequence[tuple[str, Observation]], **fields: Any) -> Trajectory:
    """``prompt + a1 + o1 + ... + a_n`` token-in-token-out, the mask on the ``a_i`` (the last
    turn's observation is not part of the sequence). ``fields`` fill the other Trajectory fields."""
    enc = codec.prompt(first.text, first.images)
    ids, mask = list(enc.ids), [0] * len(enc.ids)
    images, grids = list(enc.images), list(enc.image_grid_thw)
    for k, (action, obs) in enumerate(turns):
        action_ids = encode_text(codec, action)
        ids += action_ids
        mask += [1] * len(action_ids)
        if k == len(turns) - 1:
            break
        delta = codec.observation(obs.text, obs.images, len(images))
        ids += delta.ids
        mask += [0] * len(delta.ids)
        images += delta.images
        grids += delta.image_grid_thw
    traj = Trajectory(
        ids=np.asarray(ids, np.int64), loss_mask=np.asarray(mask, np.uint8), sampler_logp=np.zeros(len(ids), np.float32),
        images=images, image_grid_thw=np.asarray(grids, np.int64).reshape(-1, 3), prompt_len=len(enc.ids),
        turns=len(turns), **fields,
    )
    traj.validate(codec.image_token_id, codec.merge_size)
    return traj


def record_trajectory(codec: Any, record: EpisodeRecord) -> Trajectory:
    """The trajectory of a finished episode record (its agent view must be kept)."""
    ep = record.episode
    return encode_episode(
        codec, ep.first, ep.turns, reward=record.reward, reward_terms=dict(record.reward_terms), end_reason=record.end_reason,
        tool_calls=record.tool_calls, tool_errors=record.tool_errors, images_shown=record.images_shown,
        accuracy=record.accuracy, correct=record.correct, task_id=record.task_id,
    )


def expert_trajectories(cfg: TrainConfig, codec: Any) -> tuple[list[Trajectory], dict[str, float]]:
    """The correct expert episodes as trajectories, and collection counts."""
    t0 = time.perf_counter()
    records = collect_expert_episodes(cfg)
    kept = [record_trajectory(codec, r) for r in records if r.correct and r.episode is not None]
    longest = max((n for t in kept for n in turn_lengths(t.loss_mask)), default=0)
    if longest > cfg.rollout.max_new_tokens:
        raise ValueError(
            f"the expert's turns are up to {longest} tokens but rollout.max_new_tokens is {cfg.rollout.max_new_tokens}: "
            f"the policy would be cut off inside the turns it learns; set rollout.max_new_tokens >= {longest}"
        )
    stats = {"sft/episodes": float(len(records)), "sft/correct_episodes": float(len(kept)),
             "sft/longest_turn_tokens": float(longest), "time/sft_collect_s": time.perf_counter() - t0}  # fmt: skip
    return kept, stats


def turn_spans(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) ends of the runs of 1 in a loss mask (the generated turns)."""
    padded = np.concatenate([[0], np.asarray(mask, np.int8), [0]])
    edges = np.flatnonzero(np.diff(padded))
    return edges[::2], edges[1::2]


def turn_lengths(mask: np.ndarray) -> list[int]:
    """Lengths of the runs of 1 in a loss mask (the generated turns)."""
    starts, ends = turn_spans(mask)
    return (ends - starts).tolist()


# ----------------------------------------------------------------------------- training
def final_turn_mask(loss_mask: torch.Tensor) -> torch.Tensor:
    """``[B, T]`` bool: the tokens of each row's last generated turn (its last run of 1s)."""
    mask = loss_mask.bool()
    pos = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last_one = torch.where(mask, pos, -1).max(dim=1, keepdim=True).values
    gap_before = torch.where(~mask & (pos < last_one), pos, -1).max(dim=1, keepdim=True).values
    return mask & (pos > gap_before)


def answer_windows(trajs: Sequence[Trajectory], window: int, image_token_id: int) -> list[Trajectory]:
    """Each trajectory's last two turns (the code that printed the result, and the answer that
    copies it), with ``window`` tokens before them as context and the loss on the answer alone:
    short, cheap examples of copying the printed result, with the earlier tool output in view
    so that the copy is of the latest one. The context starts after the last image, so no image
    is cut in two."""
    out = []
    for traj in trajs:
        mask = np.asarray(traj.loss_mask, np.uint8)
        starts, _ = turn_spans(mask)
        if not len(starts):
            continue
        begin = int(starts[-1])
        start = max(0, int(starts[-2] if len(starts) > 1 else begin) - window)
        pads = np.flatnonzero(traj.ids[:begin] == image_token_id)
        if len(pads):
            start = max(start, int(pads[-1]) + 1)
        keep = np.zeros(len(traj.ids) - start, np.uint8)
        keep[begin - start:] = mask[begin:]
        out.append(Trajectory(
            ids=traj.ids[start:].copy(), loss_mask=keep, sampler_logp=np.zeros(len(keep), np.float32),
            prompt_len=begin - start, turns=1, reward=traj.reward, accuracy=traj.accuracy, correct=traj.correct,
            task_id=f"{traj.task_id}#answer",
        ))
    return out


def nll_loss(learner: Learner, final_turn_weight: float = 1.0) -> Any:
    """The SFT loss for :meth:`Learner.optimizer_step`: mean token NLL over the mini-batch, the
    last turn's tokens (the answer) weighted ``final_turn_weight`` times the others."""

    def loss(batch: Batch, logp: torch.Tensor, entropy: torch.Tensor, counts: Counts) -> tuple[torch.Tensor, dict[str, float]]:
        nll = -logp
        if final_turn_weight != 1.0:
            nll = nll * (1.0 + (final_turn_weight - 1.0) * final_turn_mask(batch.loss_mask).to(nll.dtype))
        return learner.reduce(nll, batch.loss_mask, counts, "token_mean"), {}

    return loss


@torch.no_grad()
def mean_nll(learner: Learner, trajs: Sequence[Trajectory]) -> float:
    """Mean token NLL (temperature 1) of the trajectories' masked tokens, over all ranks."""
    total = np.zeros(2)
    was_training = learner.policy.training
    learner.policy.eval()
    for mb in learner.minibatches(trajs):
        for micro, weight in learner.micro_batches(mb):  # padding micro-batches too (FSDP2)
            batch = collate(micro, learner.codec, learner.device)
            logp = sequence_logprobs(learner.policy, batch, 1.0)
            total += np.array([float(-(logp * batch.loss_mask).sum()), float(batch.loss_mask.sum())]) * weight
    learner.policy.train(was_training)
    nll, tokens = all_reduce_sum(list(total), learner.device)
    return nll / max(tokens, 1.0)


def epoch_batches(n_full: int, n_windows: int, cfg: SFTConfig, seed: int, epoch: int) -> list[tuple[str, list[int]]]:
    """One epoch's batches in a shuffled order: ``("full", indices)`` of ``cfg.batch_size``
    trajectories and ``("window", indices)`` of ``cfg.answer_batch_size`` answer windows, each
    window ``cfg.answer_repeats`` times (short sequences batch together: no padding to episodes)."""
    rng = np.random.default_rng([seed, epoch])
    full, size = rng.permutation(n_full), max(1, cfg.batch_size)
    batches = [("full", full[i : i + size].tolist()) for i in range(0, n_full, size)]
    if n_windows:
        windows = np.concatenate([rng.permutation(n_windows) for _ in range(cfg.answer_repeats)])
        wsize = max(1, cfg.answer_batch_size)
        batches += [("window", windows[i : i + wsize].tolist()) for i in range(0, len(windows), wsize)]
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def run_sft(learner: Learner, trajs: Sequence[Trajectory], cfg: SFTConfig, seed: int = 0) -> list[dict[str, float]]:
    """``cfg.epochs`` shuffled passes of NLL steps (``cfg.batch_size`` trajectories each) at
    ``cfg.lr``, with the answer windows (``cfg.answer_window``) in batches of their own; one
    metrics dict per epoch (``sft/loss``, ``sft/grad_norm``, ...)."""
    if not trajs:
        raise ValueError("SFT needs at least one expert trajectory (none was collected or all were wrong)")
    if cfg.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"sft.lr_schedule must be 'constant' or 'cosine', got {cfg.lr_schedule!r}")
    if cfg.final_turn_weight <= 0:
        raise ValueError(f"sft.final_turn_weight must be > 0, got {cfg.final_turn_weight}")
    if cfg.answer_window < 0 or cfg.answer_repeats < 1 or cfg.answer_batch_size < 1:
        raise ValueError("sft.answer_window must be >= 0, sft.answer_repeats and sft.answer_batch_size >= 1")
    windows = answer_windows(trajs, cfg.answer_window, learner.codec.image_token_id) if cfg.answer_window else []
    optimizer = learner.make_optimizer(cfg.lr)
    total = cfg.epochs * len(epoch_batches(len(trajs), len(windows), cfg, seed, 0))
    if cfg.lr_schedule == "cosine":  # lr -> lr / 10 over the run (torch's scheduler, stepped per update)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total), eta_min=cfg.lr / 10)
    loss = nll_loss(learner, cfg.final_turn_weight)
    out = []
    bar = tqdm(range(cfg.epochs), desc=f"SFT on {len(trajs)} expert episodes", unit="epoch", dynamic_ncols=True, disable=learner.rank != 0)
    for epoch in bar:
        t0 = time.perf_counter()
        totals: dict[str, float] = {}
        steps = 0
        for kind, indices in epoch_batches(len(trajs), len(windows), cfg, seed, epoch):
            batch = [(trajs if kind == "full" else windows)[j] for j in indices]
            for k, v in learner.optimizer_step(batch, loss, optimizer, temperature=1.0).items():
                totals[k] = totals.get(k, 0.0) + v
            steps += 1
            if cfg.lr_schedule == "cosine":
                schedule.step()
        summary = learner.summarize(totals, steps, time.perf_counter() - t0)
        metrics = {k.replace("learner/", "sft/"): v for k, v in summary.items() if k.startswith("learner/")}
        metrics.update({"sft/epoch": float(epoch + 1), "sft/lr": float(optimizer.param_groups[0]["lr"]),
                        "time/sft_epoch_s": summary["time/learner_s"]})
        out.append(metrics)
    return out


def sft_warm_start(cfg: TrainConfig, learner: Learner) -> list[dict[str, float]]:
    """Collect, encode and train on the experts' episodes; the per-epoch metrics (the first
    carries the collection counts)."""
    trajs, stats = expert_trajectories(cfg, learner.codec)
    epochs = run_sft(learner, trajs, cfg.sft, seed=cfg.seed)
    epochs[0].update(stats)
    return epochs
