"""The training loop behind ``pyvision-gym train``: an SFT warm start, then RL steps.

One RL step (PyVision-RL's recipe, method.md):

1. **Oversample.** Draw a generation batch of ``rollout.gen_batch_size`` prompts (train-split
   seeds from a cursor that only moves forward) and roll each out ``rollout.n`` times,
   token-in-token-out (``rollout.py``), seeded by (seed, step, batch index).
2. **Score, filter, rank** (``batching.py``): advantages over whole groups, then the switchable
   filters; repeat 1 until ``batching.train_batch_size`` groups survive; keep the groups with
   the largest reward spread.
3. **Learn** (``learner.py``): old log-probs recomputed by the learner, clipped policy-gradient
   steps; the generation engine takes the new weights.

Validation runs greedy episodes on the same val-split seeds each time (paired), before
training, after SFT, every ``val_every`` steps and at the end. Checkpoints (model, optimiser,
RNGs, cursor) every ``save_every`` steps let an interrupted run continue where it stopped.
Under ``torchrun`` every rank runs this loop on its share of the prompts (``distributed.py``).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from tqdm import tqdm

from pyvision_gym.env import default_cache_dir
from pyvision_gym.evaluation.statistics import wilson_interval
from pyvision_gym.rollout.records import TaskSpec

from . import batching
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .distributed import gather_rollouts, init_distributed, rank_zero_first, shutdown_distributed
from .engines.base import GenerationEngine, GenRequest, GenResult, Sampling
from .engines.hf import HFEngine
from .learner import Learner
from .metrics import MetricsLog, episode_metrics, plot_curves
from .policy_model import load_policy, load_reference
from .rollout import RolloutRunner, env_factory, groups
from .sft import sft_warm_start
from .trajectory import Trajectory

VAL_SEED_BASE = 0  # validation prompts are val-split seeds 0 .. val_episodes - 1
TRAIN_SEED_STRIDE = 1_000_000  # train prompts of run seed s: train-split seeds s * stride + cursor


class TimedEngine(GenerationEngine):
    """Counts the seconds spent generating, so rollout time splits into generation and environment."""

    def __init__(self, engine: GenerationEngine) -> None:
        self.engine, self.seconds, self.tokens = engine, 0.0, 0

    def generate(self, requests: list[GenRequest], sampling: Sampling) -> list[GenResult]:
        t0 = time.perf_counter()
        out = self.engine.generate(requests, sampling)
        self.seconds += time.perf_counter() - t0
        self.tokens += sum(len(r.ids) for r in out)
        return out

    def load_weights(self, state_dict: dict[str, Any]) -> None:
        self.engine.load_weights(state_dict)

    def close(self) -> None:
        self.engine.close()

    def take(self) -> tuple[float, int]:
        out, self.seconds, self.tokens = (self.seconds, self.tokens), 0.0, 0
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_engine(cfg: TrainConfig, model: torch.nn.Module, codec: Any) -> GenerationEngine:
    """The configured generation engine (``hf`` shares the learner's model on one device)."""
    if cfg.rollout.engine == "hf":
        return HFEngine(model, codec, max_batch_size=max(1, cfg.rollout.gen_batch_size * cfg.rollout.n))
    if cfg.rollout.engine == "vllm":
        # vLLM is optional: GPU machines, or the CPU build in its own venv
        from .engines.vllm import VLLMEngine

        return VLLMEngine(cfg, codec)
    raise ValueError(f"rollout.engine must be 'hf' or 'vllm', got {cfg.rollout.engine!r}")


@dataclass
class Run:
    """Everything one training run holds."""

    cfg: TrainConfig
    out: Path
    learner: Learner
    engine: TimedEngine
    codec: Any
    train_runner: RolloutRunner
    val_runner: RolloutRunner
    log: MetricsLog | None  # rank 0 only
    cursor: int = 0  # train prompts drawn so far
    step: int = 0
    rank: int = 0
    world: int = 1
    started_dist: bool = False  # this run joined the process group (and leaves it at the end)

    def collect(self, runner: RolloutRunner, specs: list[TaskSpec], n: int, seed: int | None, first_group: int = 0) -> list[Trajectory]:
        """``runner.collect`` shared out over the ranks (all of it on one process)."""
        return gather_rollouts(runner.collect, specs, n, seed, first_group, self.rank, self.world)

    def log_metrics(self, step: int, metrics: dict[str, float], phase: str = "train") -> None:
        if self.log is not None:
            self.log.log(step, metrics, phase=phase)


def setup(cfg: TrainConfig, resume: bool) -> tuple[Run, bool]:
    """Build the run (model, codec, learner, engine, environments, logs); restore the last
    checkpoint when ``resume`` and one exists. Returns the run and whether it resumed."""
    rank, world, started = init_distributed(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        (out / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    seed_everything(cfg.seed)
    cache = Path(cfg.env.cache_dir) if cfg.env.cache_dir else default_cache_dir()
    with rank_zero_first(rank, world):  # rank 0 builds or reads the folder alone, then the others
        model, codec = load_policy(cfg.policy, cache / "models")
        ref = load_reference(cfg.policy, cache / "models") if cfg.algorithm.kl_coef > 0 else None
    learner = Learner(model, codec, cfg, ref_model=ref)
    engine = TimedEngine(make_engine(cfg, model, codec))
    r = cfg.rollout
    train_sampling = Sampling(max_new_tokens=r.max_new_tokens, temperature=r.temperature, top_p=r.top_p, seed=cfg.seed)
    val_sampling = Sampling(max_new_tokens=r.max_new_tokens, temperature=r.val_temperature, top_p=1.0, seed=cfg.seed)
    workers = max(1, cfg.env.workers)
    run = Run(
        cfg, out, learner, engine, codec,
        RolloutRunner(env_factory(cfg.env, "train"), engine, codec, train_sampling, r.max_length, batch_size=workers),
        RolloutRunner(env_factory(cfg.env, "val"), engine, codec, val_sampling, r.max_length, batch_size=workers),
        MetricsLog(out, resume=resume) if rank == 0 else None, rank=rank, world=world, started_dist=started,
    )  # fmt: skip
    checkpoint = latest_checkpoint(out) if resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, learner)
        run.step, run.cursor = int(state["carry"].get("rl_step", 0)), int(state["cursor"] or 0)
        engine.load_weights(learner.state_dict_for_engine())
        if rank == 0:
            tqdm.write(f"resumed {checkpoint} at step {run.step}")
    return run, checkpoint is not None


def validate(run: Run, tag: str) -> dict[str, float]:
    """Greedy episodes on the paired val-split seeds; accuracy with its 95% Wilson interval."""
    cfg = run.cfg
    specs = [TaskSpec(f"val-{i}", index=i, seed=VAL_SEED_BASE + i) for i in range(cfg.val_episodes)]
    t0 = time.perf_counter()
    trajs = run.collect(run.val_runner, specs, 1, cfg.seed)
    metrics = episode_metrics(trajs, cfg.env.max_turns)
    correct = sum(t.correct for t in trajs)
    lo, hi = wilson_interval(sum(t.accuracy for t in trajs), len(trajs))
    metrics.update({"accuracy/ci95_low": lo, "accuracy/ci95_high": hi, "accuracy/correct": float(correct),
                    "time/val_s": time.perf_counter() - t0})
    run.log_metrics(run.step, metrics, phase="val")
    if run.rank == 0:
        _append_json(run.out / "validation.jsonl", {"tag": tag, "step": run.step, **metrics})
    return metrics


def _append_json(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def rl_step(run: Run) -> dict[str, float]:
    """One RL step: oversample, filter and rank into a batch, then update the policy."""
    cfg, t0 = run.cfg, time.perf_counter()
    drawn: list[Trajectory] = []

    def draw(i: int) -> list[list[Trajectory]]:
        seeds = range(run.cursor, run.cursor + cfg.rollout.gen_batch_size)
        run.cursor += cfg.rollout.gen_batch_size
        specs = [TaskSpec(f"train-{s}", index=k, seed=cfg.seed * TRAIN_SEED_STRIDE + s) for k, s in enumerate(seeds)]
        seed = int(np.random.SeedSequence([cfg.seed, run.step, i]).generate_state(1)[0])
        trajs = run.collect(run.train_runner, specs, cfg.rollout.n, seed, first_group=i * len(specs))
        drawn.extend(trajs)
        return groups(trajs)

    batch, batch_metrics = batching.collect(
        draw, cfg.batching, cfg.algorithm, image_token_id=run.codec.image_token_id,
        merge_size=run.codec.merge_size, max_length=cfg.rollout.max_length,
    )  # fmt: skip
    rollout_s = time.perf_counter() - t0
    gen_s, gen_tokens = run.engine.take()
    metrics = {**episode_metrics(drawn, cfg.env.max_turns), **batch_metrics}
    metrics.update(run.learner.update(batch))
    run.engine.load_weights(run.learner.state_dict_for_engine())
    metrics.update({
        "time/rollout_s": rollout_s, "time/generation_s": gen_s, "time/environment_s": max(rollout_s - gen_s, 0.0),
        "time/step_s": time.perf_counter() - t0, "perf/generated_tokens_per_s": gen_tokens / max(gen_s, 1e-9),
        "batch/trajectories_trained": float(len(batch)), "dist/world_size": float(run.world),
    })  # fmt: skip
    return metrics


def save(run: Run) -> None:
    save_checkpoint(run.out / f"step-{run.step:06d}", run.learner, cursor=run.cursor, carry={"rl_step": run.step})


def train(cfg: TrainConfig, resume: bool = True) -> dict[str, Any]:
    """Run SFT (unless resumed past it) and ``cfg.steps`` RL steps; returns the run summary."""
    t_start = time.perf_counter()
    run, resumed = setup(cfg, resume)
    try:
        if not resumed:
            validate(run, "start")
            if cfg.sft.enabled:
                for metrics in sft_warm_start(cfg, run.learner):
                    run.log_metrics(run.step, metrics, phase="sft")
                run.engine.load_weights(run.learner.state_dict_for_engine())
                validate(run, "after_sft")
            save(run)
        bar_args = {"desc": f"RL {cfg.name}", "unit": "step", "dynamic_ncols": True, "disable": run.rank != 0}
        with tqdm(total=cfg.steps, initial=run.step, **bar_args) as bar:
            while run.step < cfg.steps:
                run.step += 1
                run.log_metrics(run.step, rl_step(run))
                if run.step % cfg.val_every == 0 or run.step == cfg.steps:
                    validate(run, "final" if run.step == cfg.steps else f"step-{run.step}")
                if run.step % cfg.save_every == 0 or run.step == cfg.steps:
                    save(run)
                bar.update(1)
    finally:
        run.train_runner.close()
        run.val_runner.close()
        run.engine.close()
        if run.log is not None:
            run.log.close()
        shutdown_distributed(run.started_dist)
    return finish(run, time.perf_counter() - t_start)


def finish(run: Run, seconds: float) -> dict[str, Any]:
    """The plot and ``summary.json``: validation accuracy at each stage, with intervals (rank 0
    writes them; other ranks return only the step count and time)."""
    if run.log is None:
        return {"config": run.cfg.name, "steps": run.step, "seconds": round(seconds, 1), "rank": run.rank}
    plot = plot_curves(run.log.read(), run.out / "curves.png")
    stages = [json.loads(line) for line in (run.out / "validation.jsonl").read_text().splitlines() if line.strip()]
    keep = ("accuracy/mean", "accuracy/ci95_low", "accuracy/ci95_high", "tools/calls_mean", "tools/zero_share", "reward/mean")
    summary = {
        "config": run.cfg.name, "steps": run.step, "seconds": round(seconds, 1), "plot": str(plot),
        "validation": {f"{s['tag']}@{s['step']}": {k: s[k] for k in keep if k in s} for s in stages},
    }  # fmt: skip
    (run.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary
