"""The learner: old log-probs, then clipped policy-gradient steps on a batch of trajectories.

One call of :meth:`Learner.update` on a training batch:

1. **Old log-probs.** The learner recomputes every generated token's log-prob under the
   current weights (float32, logits / the sampling temperature, the same micro-batches as the
   update), so the first ratio of every token is exactly 1 whatever the sampler's numerics.
   The gap to the sampler's own log-probs is logged (mean |delta| and the share of ratios
   outside [0.9, 1.1]). When the update is a single optimiser step (one epoch, one
   mini-batch: the paper's setting), the weights cannot change before the last use of the old
   log-probs, so they are taken from the update's own forward (detached) instead of a separate
   pass: the same numbers, one forward fewer (``learner/old_logp_fused`` = 1).
2. **Mini-batches.** ``optim.mini_batch_size`` prompts' trajectories (whole groups) per
   optimiser step, ``optim.epochs`` passes over the batch.
3. **Micro-batches and ranks.** Each mini-batch is shared out over the data-parallel ranks
   (trajectory i goes to rank i mod world) and cut into micro-batches of
   ``optim.micro_batch_size`` trajectories whose gradients accumulate. Every micro-batch's
   loss is normalised by counts of the WHOLE mini-batch summed over all ranks (and scaled by
   the world size, since DDP averages gradients), so neither the micro-batch size nor the
   number of ranks can change the gradient (except ``token_mean_legacy``, by design).
4. **The loss.** The registered policy loss (``algorithm.policy_loss``) per token, plus
   ``kl_coef`` x k3-KL to the reference model and minus ``entropy_coef`` x entropy, reduced
   with ``algorithm.loss_agg``; AdamW, gradient-norm clip, constant learning rate.

Under ``torchrun`` (``torch.distributed`` initialised: gloo on CPU, nccl on GPU) the model is
wrapped in DDP, or sharded with FSDP2 ``fully_shard`` when ``optim.parallel`` is ``fsdp2``
(for models that do not fit one device). Every rank must call ``update`` with the same batch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

from .algorithms import aggregate, get_policy_loss, kl_k3
from .collate import Batch, collate
from .config import TrainConfig
from .logprobs import autocast_context, sequence_logprobs, token_entropy, token_logprobs
from .policy_model import merged_state_dict, unwrap, vision_module
from .trajectory import Trajectory

GAP_BAND = (0.9, 1.1)  # sampler/learner ratios outside this band are counted
Micro = tuple[list[Trajectory], float]  # trajectories of one micro-batch and their weight (0: padding)
LossFn = Callable[[Batch, torch.Tensor, torch.Tensor, "Counts"], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class Counts:
    """Normalisers of one mini-batch, summed over all ranks."""

    tokens: float  # generated (loss) tokens
    sequences: float  # trajectories with at least one generated token
    micro_batches: float  # micro-batches holding real trajectories (not padding)


def dist_info() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(values: Sequence[float], device: torch.device) -> list[float]:
    """``values`` summed over all ranks (float64)."""
    if dist_info()[1] == 1:
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def group_order(trajs: Sequence[Trajectory]) -> list[list[Trajectory]]:
    """Trajectories grouped by ``group_id`` in order of first appearance (id < 0: alone)."""
    groups: dict[Any, list[Trajectory]] = {}
    for i, t in enumerate(trajs):
        groups.setdefault(t.group_id if t.group_id >= 0 else ("alone", i), []).append(t)
    return list(groups.values())


def minibatches(trajs: Sequence[Trajectory], prompts: int) -> list[list[Trajectory]]:
    """Consecutive runs of ``prompts`` whole groups."""
    groups = group_order(trajs)
    step = max(1, int(prompts))
    return [[t for g in groups[i : i + step] for t in g] for i in range(0, len(groups), step)]


def micro_batches(minibatch: Sequence[Trajectory], size: int, rank: int, world: int) -> list[Micro]:
    """This rank's share of ``minibatch`` (every world-th trajectory) in chunks of ``size``.

    Every rank gets the same number of micro-batches (FSDP2 needs every rank to run the same
    forwards): a rank with fewer trajectories is padded with zero-weight micro-batches (a
    copy of the mini-batch's first trajectory whose loss is multiplied by 0)."""
    step = max(1, int(size))
    local = list(minibatch[rank::world])
    count = math.ceil(math.ceil(len(minibatch) / world) / step)
    chunks: list[Micro] = [(local[i : i + step], 1.0) for i in range(0, len(local), step)]
    return chunks + [([_filler(minibatch[0])], 0.0) for _ in range(count - len(chunks))]


def has_dropout(model: nn.Module) -> bool:
    """Whether a forward in train mode is random (a dropout layer or attention dropout > 0):
    then train- and eval-mode log-probs differ and old log-probs need their own (eval) pass."""
    cfgs = [getattr(model, "config", None)] + [getattr(getattr(model, "config", None), k, None) for k in ("text_config", "vision_config")]
    if any(float(getattr(c, "attention_dropout", 0.0) or 0.0) > 0 for c in cfgs if c is not None):
        return True
    return any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())


def _filler(traj: Trajectory) -> Trajectory:
    """A stand-in for a padding micro-batch: ``traj`` with zero (finite) old/ref log-probs."""
    zeros = np.zeros(traj.length, np.float32)
    return dataclasses.replace(traj, info={**traj.info, "old_logp": zeros, "ref_logp": zeros})


class Learner:
    """Policy-gradient updates of ``model`` on trajectories (see the module docstring)."""

    def __init__(self, model: nn.Module, codec: Any, cfg: TrainConfig, ref_model: nn.Module | None = None) -> None:
        if cfg.algorithm.kl_coef > 0 and ref_model is None:
            raise ValueError("algorithm.kl_coef > 0 needs a reference model (policy_model.load_reference)")
        self.cfg, self.codec = cfg, codec
        self.rank, self.world = dist_info()
        first = next(p for p in model.parameters() if p.is_floating_point())
        self.device, self.dtype = first.device, first.dtype
        self.ref_model = ref_model if cfg.algorithm.kl_coef > 0 else None
        self.temperature = float(cfg.rollout.temperature) if cfg.rollout.temperature > 0 else 1.0
        self.policy = model  # the plain module (checkpoints, weights for the engine)
        self.model = self._wrap(model)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = self.make_optimizer(cfg.optim.lr)
        self.loss_fn = get_policy_loss(cfg.algorithm.policy_loss)
        self.step = 0  # RL optimiser steps taken (SFT steps are not counted)
        self.random_forward = has_dropout(model)  # train-mode forwards differ from eval-mode ones
        self._fused_gap: np.ndarray | None = None  # gap sums while old log-probs come from the update's forward

    # ------------------------------------------------------------------ set-up
    def _wrap(self, model: nn.Module) -> nn.Module:
        """DDP (or FSDP2) around ``model`` when several ranks run; the model itself otherwise."""
        if self.world == 1:
            return model
        if self.cfg.optim.parallel == "fsdp2":
            # one shard group per decoder layer; the vision tower stays in the root group, since
            # a rank whose micro-batch has no image never calls it
            for module in model.modules():
                if type(module).__name__.endswith("DecoderLayer"):
                    fully_shard(module)
            return fully_shard(model)
        if self.cfg.optim.parallel != "ddp":
            raise ValueError(f"optim.parallel must be 'ddp' or 'fsdp2', got {self.cfg.optim.parallel!r}")
        vision_trains = any(p.requires_grad for p in vision_module(model).parameters())
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=vision_trains)

    def make_optimizer(self, lr: float) -> torch.optim.Optimizer:
        """AdamW over the trainable parameters (``optim.weight_decay``)."""
        return torch.optim.AdamW(self.params, lr=lr, weight_decay=self.cfg.optim.weight_decay)

    def _sync(self, last: bool) -> Any:
        """Skip the gradient all-reduce on all but the last micro-batch of a step."""
        if self.world == 1 or last:
            if hasattr(self.model, "set_requires_gradient_sync"):
                self.model.set_requires_gradient_sync(True)
            return contextlib.nullcontext()
        if hasattr(self.model, "no_sync"):
            return self.model.no_sync()
        self.model.set_requires_gradient_sync(False)
        return contextlib.nullcontext()

    def _autocast(self) -> Any:
        return autocast_context(self.device, self.dtype)

    def minibatches(self, trajs: Sequence[Trajectory]) -> list[list[Trajectory]]:
        """The optimiser steps' trajectories: ``optim.mini_batch_size`` prompts each."""
        return minibatches(trajs, self.cfg.optim.mini_batch_size)

    def micro_batches(self, minibatch: Sequence[Trajectory], size: int | None = None) -> list[Micro]:
        """This rank's micro-batches of ``minibatch``."""
        return micro_batches(minibatch, size or self.cfg.optim.micro_batch_size, self.rank, self.world)

    def local_trajectories(self, trajs: Sequence[Trajectory]) -> Iterator[Trajectory]:
        """The trajectories this rank computes on, in order."""
        for mb in self.minibatches(trajs):
            for micro, weight in self.micro_batches(mb):
                if weight:
                    yield from micro

    # ------------------------------------------------------------------ old log-probs
    @torch.no_grad()
    def old_logprobs(self, trajs: Sequence[Trajectory]) -> dict[str, float]:
        """Store this rank's learner log-probs as ``info["old_logp"]`` (and the reference
        model's as ``info["ref_logp"]``); return the sampler/learner gap over all ranks."""
        t0 = time.perf_counter()
        was_training = self.policy.training
        self.policy.eval()
        gap = np.zeros(3)  # sum |delta|, ratios outside the band, tokens
        try:
            for mb in self.minibatches(trajs):
                for micro, weight in self.micro_batches(mb):
                    gap += self._old_logprobs_micro(micro, store=bool(weight)) * weight
        finally:
            self.policy.train(was_training)
        return self._gap_metrics(gap, time.perf_counter() - t0)

    def _gap_metrics(self, gap: np.ndarray, seconds: float) -> dict[str, float]:
        """The sampler/learner gap over all ranks from this rank's sums, and the pass's time."""
        total_abs, outside, tokens = all_reduce_sum(list(gap), self.device)
        return {
            "learner/logp_gap_abs_mean": total_abs / max(tokens, 1.0),
            "learner/logp_gap_out_share": outside / max(tokens, 1.0),
            "time/old_logp_s": seconds,
        }

    @staticmethod
    def _gap_sums(logp: torch.Tensor, batch: Batch) -> np.ndarray:
        """Sum of |learner - sampler| log-prob, ratios outside the band, and tokens."""
        mask = batch.loss_mask
        delta = (logp - batch.sampler_logp) * mask
        ratio = torch.exp(delta)
        outside = ((ratio < GAP_BAND[0]) | (ratio > GAP_BAND[1])).float() * mask
        return np.array([float(delta.abs().sum()), float(outside.sum()), float(mask.sum())])

    def _old_logprobs_micro(self, micro: list[Trajectory], store: bool = True) -> np.ndarray:
        """One micro-batch's log-probs (stored on the trajectories when ``store``: padding
        micro-batches only keep the ranks in step) and its gap sums."""
        batch = collate(micro, self.codec, self.device)
        with self._autocast():
            logp = sequence_logprobs(self.policy, batch, self.temperature)
            ref = sequence_logprobs(self.ref_model, batch, self.temperature) if self.ref_model is not None else None
        for i, t in enumerate(micro if store else []):
            t.info["old_logp"] = logp[i, : t.length].cpu().numpy().astype(np.float32)
            if ref is not None:
                t.info["ref_logp"] = ref[i, : t.length].cpu().numpy().astype(np.float32)
        return self._gap_sums(logp, batch)

    # ------------------------------------------------------------------ the update
    def update(self, trajs: Sequence[Trajectory]) -> dict[str, float]:
        """``optim.epochs`` passes of policy-gradient steps over ``trajs`` (each carrying
        ``info["advantage"]``). Old log-probs are computed first unless :meth:`old_logprobs`
        was just called on them; they are dropped at the end."""
        if not trajs:
            raise ValueError("Learner.update needs at least one trajectory")
        t0 = time.perf_counter()
        metrics: dict[str, float] = {}
        missing = sum("old_logp" not in t.info for t in self.local_trajectories(trajs))
        need_old = all_reduce_sum([missing], self.device)[0] > 0
        single_step = self.cfg.optim.epochs == 1 and len(self.minibatches(trajs)) == 1 and not self.random_forward
        fused = need_old and single_step
        if need_old and not fused:
            metrics.update(self.old_logprobs(trajs))
        totals: dict[str, float] = defaultdict(float)
        steps = 0
        self._fused_gap = np.zeros(3) if fused else None
        try:
            for _ in range(self.cfg.optim.epochs):
                for mb in self.minibatches(trajs):
                    for k, v in self.optimizer_step(mb, self._rl_loss, self.optimizer).items():
                        totals[k] += v
                    steps += 1
            if fused:
                metrics.update(self._gap_metrics(self._fused_gap, 0.0))
        finally:
            self._fused_gap = None
        metrics["learner/old_logp_fused"] = float(fused)
        self.step += steps
        for t in trajs:  # old log-probs belong to this update: a reused trajectory gets fresh ones
            t.info.pop("old_logp", None)
            t.info.pop("ref_logp", None)
        metrics.update(self.summarize(totals, steps, time.perf_counter() - t0))
        metrics["learner/lr"] = float(self.optimizer.param_groups[0]["lr"])
        return metrics

    def counts(self, micros: Sequence[Micro]) -> Counts:
        """The mini-batch's loss tokens and sequences, summed over ranks."""
        tokens = sum(w * t.response_tokens for m, w in micros for t in m)
        seqs = sum(w * (t.response_tokens > 0) for m, w in micros for t in m)
        real = sum(w for _, w in micros)
        return Counts(*all_reduce_sum([tokens, seqs, real], self.device))

    def reduce(self, loss_mat: torch.Tensor, mask: torch.Tensor, counts: Counts, mode: str) -> torch.Tensor:
        """The micro-batch's share of the mini-batch loss (see ``algorithms/aggregation.py``),
        times the world size since the ranks' gradients are averaged. ``token_mean_legacy``:
        the micro-batch's token mean / the number of micro-batches over all ranks."""
        if mode == "token_mean_legacy":
            return aggregate(loss_mat, mask, mode) * self.world / max(counts.micro_batches, 1.0)
        return aggregate(loss_mat, mask, mode, global_tokens=counts.tokens, num_sequences=counts.sequences) * self.world

    def _rl_loss(self, batch: Batch, logp: torch.Tensor, entropy: torch.Tensor, counts: Counts) -> tuple[torch.Tensor, dict[str, float]]:
        """Policy loss (+ KL, - entropy bonus) of one micro-batch, and its per-token metrics."""
        alg, mask = self.cfg.algorithm, batch.loss_mask
        if "old_logp" not in batch.extra:
            if self._fused_gap is None:
                raise ValueError("trajectories lack info['old_logp']: call Learner.old_logprobs first")
            self._fused_old_logprobs(batch, logp)
        loss_mat, metrics = self.loss_fn(logp, batch.extra["old_logp"], batch.advantages, mask, alg)
        metrics = {k: float(v) for k, v in metrics.items()}
        if alg.kl_coef > 0:
            kl = kl_k3(logp, batch.extra["ref_logp"])
            loss_mat = loss_mat + alg.kl_coef * kl
            metrics["kl"] = float((kl.detach() * mask).sum() / mask.sum().clamp(min=1))
        if alg.entropy_coef > 0:
            loss_mat = loss_mat - alg.entropy_coef * entropy
        return self.reduce(loss_mat, mask, counts, alg.loss_agg), metrics

    def _fused_old_logprobs(self, batch: Batch, logp: torch.Tensor) -> None:
        """Old (and reference) log-probs of a single-step update: this forward's, detached."""
        old = logp.detach()
        batch.extra["old_logp"] = old
        self._fused_gap += self._gap_sums(old, batch)
        if self.ref_model is not None:
            with torch.no_grad(), self._autocast():
                batch.extra["ref_logp"] = sequence_logprobs(self.ref_model, batch, self.temperature)

    def optimizer_step(
        self, minibatch: Sequence[Trajectory], loss_fn: LossFn, optimizer: torch.optim.Optimizer, temperature: float | None = None
    ) -> dict[str, float]:
        """One optimiser step on ``minibatch`` (this rank's share, in micro-batches) with
        ``loss_fn`` (log-probs at ``temperature``, default the sampling one). Returns this
        rank's sums (token-weighted metrics, tokens, loss share) and the gradient norm."""
        micros = self.micro_batches(minibatch)
        counts = self.counts(micros)
        optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = defaultdict(float)
        need_entropy_grad = self.cfg.algorithm.entropy_coef > 0
        temp = self.temperature if temperature is None else temperature
        for i, (micro, weight) in enumerate(micros):
            with self._sync(i == len(micros) - 1):
                batch = collate(micro, self.codec, self.device)
                with self._autocast():
                    logits = self.model(**batch.model_inputs(), use_cache=False).logits
                logp = token_logprobs(logits, batch.input_ids, temp)
                with torch.set_grad_enabled(need_entropy_grad and torch.is_grad_enabled()):
                    entropy = token_entropy(logits if need_entropy_grad else logits.detach(), temp)
                loss, metrics = loss_fn(batch, logp, entropy, counts)
                (loss * weight).backward()
            tokens = float(batch.loss_mask.sum()) * weight
            sums["loss"] += float(loss.detach()) * weight / self.world
            sums["entropy"] += float((entropy.detach() * batch.loss_mask).sum()) * weight
            sums["tokens"] += tokens
            sums["seq_tokens"] += sum(batch.lengths) * weight
            for k, v in metrics.items():
                sums[k] += v * tokens
        sums["grad_norm"] = self.clip_and_step(optimizer)
        return sums

    def clip_and_step(self, optimizer: torch.optim.Optimizer) -> float:
        """Clip the gradient norm to ``optim.grad_clip``, step; the norm before clipping."""
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip)
        if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor
            norm = norm.full_tensor()
        optimizer.step()
        return float(norm)

    def summarize(self, totals: dict[str, float], steps: int, seconds: float) -> dict[str, float]:
        """Metrics over all ranks from the summed per-step numbers of :meth:`optimizer_step`."""
        keys = sorted(k for k in totals if k != "grad_norm")  # the norm is the same on every rank
        summed = dict(zip(keys, all_reduce_sum([totals[k] for k in keys], self.device), strict=True))
        tokens = max(summed.get("tokens", 0.0), 1.0)
        out = {
            "learner/loss": summed["loss"] / max(steps, 1),
            "learner/grad_norm": totals["grad_norm"] / max(steps, 1),
            "learner/tokens": summed["tokens"],
            "learner/seq_tokens": summed["seq_tokens"],
            # every token of the sequences (prompt and observations too) per second of the
            # whole update (old log-probs included), all ranks together
            "learner/tokens_per_s": summed["seq_tokens"] / max(seconds, 1e-9),
            "learner/optimizer_steps": float(steps),
            "time/learner_s": seconds,
        }
        for k in keys:
            if k not in ("loss", "tokens", "seq_tokens"):
                out[f"learner/{k}"] = summed[k] / tokens
        return out

    # ------------------------------------------------------------------ weights out
    def state_dict_for_engine(self) -> dict[str, torch.Tensor]:
        """The policy's full weights (LoRA merged) for :meth:`GenerationEngine.load_weights`."""
        if self.cfg.optim.parallel == "fsdp2" and self.world > 1:
            return get_model_state_dict(self.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return merged_state_dict(unwrap(self.model))
