"""One RL training step of the ``tiny-cpu`` config, profiled by phase, and the learner against
a plain forward + backward of the same tokens.

    python -m pyvision_gym.benchmarks.train_bench [--steps 3] [--json PATH]

Runs ``--steps`` RL steps (after one untimed warm-up step) with the filters off, so every
generation batch trains (the profile is about time, not learning), and reports per step:

* rollout time split into generation (the engine's ``generate`` calls) and environment
  (everything else in the rollout: resets, parsing, the sandbox, scoring), and the
  environment's share of it (target <= 5%);
* the learner: its update (old log-probs recomputed, then the clipped policy-gradient steps)
  in sequence tokens per second, against the floor: one plain forward and backward pass over
  the same collated micro-batches with a summed log-likelihood loss and no optimiser, timed in
  the same process right after (target: learner >= 70% of the floor's tokens per second).

Prints a table and writes JSON (default ``benchmarks/results/train_bench.json``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from pyvision_gym.evaluation.provenance import versions
from pyvision_gym.train.collate import collate
from pyvision_gym.train.config import load_config
from pyvision_gym.train.logprobs import sequence_logprobs
from pyvision_gym.train.trainer import Run, rl_step, setup
from pyvision_gym.train.trajectory import Trajectory

TARGET_ENV_SHARE = 0.05
TARGET_LEARNER_VS_FLOOR = 0.70


def floor_seconds(run: Run, trajs: list[Trajectory]) -> float:
    """One forward + backward over the learner's micro-batches of ``trajs``, nothing else."""
    learner = run.learner
    model = learner.policy
    model.train()
    t0 = time.perf_counter()
    for minibatch in learner.minibatches(trajs):
        for micro, weight in learner.micro_batches(minibatch):
            if not weight:
                continue
            batch = collate(micro, run.codec, learner.device)
            logp = sequence_logprobs(model, batch, 1.0)
            (-(logp * batch.loss_mask).sum()).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - t0


def profile_step(run: Run) -> dict[str, float]:
    """One RL step's phases, then the floor on the step's own training batch."""
    captured: list[Trajectory] = []
    update = run.learner.update

    def spy(trajs: list[Trajectory]) -> dict[str, float]:
        captured.extend(trajs)
        return update(trajs)

    run.learner.update = spy  # type: ignore[method-assign]
    try:
        metrics = rl_step(run)
    finally:
        run.learner.update = update  # type: ignore[method-assign]
    tokens = sum(t.length for t in captured)
    floor = floor_seconds(run, captured)
    learner_s = metrics["time/learner_s"]
    return {
        "rollout_s": metrics["time/rollout_s"], "generation_s": metrics["time/generation_s"],
        "environment_s": metrics["time/environment_s"],
        "environment_share": metrics["time/environment_s"] / max(metrics["time/rollout_s"], 1e-9),
        "learner_s": learner_s, "floor_s": floor, "sequence_tokens": float(tokens),
        "learner_tokens_per_s": tokens / learner_s, "floor_tokens_per_s": tokens / floor,
        "learner_vs_floor": (tokens / learner_s) / (tokens / floor), "step_s": metrics["time/step_s"],
        "trajectories": float(len(captured)),
    }  # fmt: skip


def render(rows: list[dict[str, float]]) -> str:
    med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    env_ok = "PASS" if med["environment_share"] <= TARGET_ENV_SHARE else "MISS"
    ln_ok = "PASS" if med["learner_vs_floor"] >= TARGET_LEARNER_VS_FLOOR else "MISS"
    return "\n".join([
        "| measure (median over steps) | value | target |", "|---|---|---|",
        f"| step | {med['step_s']:.1f} s | |",
        f"| rollout: generation | {med['generation_s']:.1f} s | |",
        f"| rollout: environment | {med['environment_s']:.2f} s ({med['environment_share']:.1%} of rollout) | ≤ 5%: {env_ok} |",
        f"| learner update (old log-probs + steps) | {med['learner_s']:.2f} s, {med['learner_tokens_per_s']:,.0f} tok/s | |",
        f"| floor: forward + backward of the same tokens | {med['floor_s']:.2f} s, {med['floor_tokens_per_s']:,.0f} tok/s | |",
        f"| learner / floor (tokens per second) | {med['learner_vs_floor']:.0%} | ≥ 70%: {ln_ok} |",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyvision_gym.benchmarks.train_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=3, help="timed RL steps (after one warm-up step)")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/train_bench.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="train-bench-") as tmp:
        cfg = load_config("tiny-cpu", [f"out_dir={tmp}", "sft.enabled=false", "batching.filters=[]",
                                       f"steps={args.steps + 1}"])
        run, _ = setup(cfg, resume=False)
        try:
            rows: list[dict[str, Any]] = []
            for i in tqdm(range(args.steps + 1), desc="train bench", unit="step"):
                run.step = i + 1
                row = profile_step(run)
                if i:  # the first step warms caches and the allocator
                    rows.append(row)
        finally:
            run.train_runner.close()
            run.val_runner.close()
            run.log.close()
    table = render(rows)
    print("\n" + table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"steps": rows, "table": table, "threads": torch.get_num_threads(),
                                     "versions": versions()}, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
