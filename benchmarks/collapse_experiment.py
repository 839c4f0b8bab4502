"""The interaction-collapse experiment: three arms trained from one base config, same seeds and budget.

    python -m pyvision_gym.benchmarks.collapse_experiment [--base tiny-cpu] [--seeds 3] [--steps 16]
        [--quick] [--out runs/collapse] [--set key=value ...]

PyVision-RL's central claim (method.md) is that RL on an agentic VLM drifts toward fewer tool
calls and shorter episodes unless the accumulative tool reward and oversampling-filtering-ranking
hold tool use up. The arms:

- **(a) accuracy-only**: ``env.reward: accuracy``; every drawn group trains (no filters, no ranking).
- **(b) tool reward**: ``env.reward: accumulative`` (+``env.tool_reward_per_turn`` per successful
  tool turn when the answer is right); batching as in (a).
- **(c) tool reward + oversampling-filtering-ranking**: as (b), and each step draws ``--oversample``
  times the train batch's prompts per generation batch (refilling up to ``--max-gen-batches``),
  filters (``--filters``, default zero_variance, image_tokens, over_length, end_reason) and keeps the
  ``train_batch_size`` groups with the largest reward std.

The arms differ in exactly those knobs (``ARM_KNOBS``); ``--set`` may not touch them.

**How the budget is matched.** Every arm makes the same number of RL steps, each one policy
update on the same number of groups (``batching.train_batch_size`` prompts x ``rollout.n``
rollouts), with the same learner settings, validation seeds and starting policy. Arms (a) and (b)
generate exactly the groups they train on; arm (c) *generates more* (at least ``--oversample``
times as many episodes) within the same steps: that is what oversampling costs, and the report
shows each arm's generated episodes and wall time beside its curves. This is the paper's
comparison (equal updates), not an equal-compute one.

**One SFT start.** As in the paper, where every arm starts from one SFT checkpoint, the base
recipe's SFT warm start runs once (a trainer run with ``steps: 0`` and the first seed), its
weights are exported as a model folder (``sft/seed-S/model``), and every arm and seed starts
from it (``policy.model_path`` set to it, ``sft.enabled: false``); the seeds then replicate the
RL part (prompts, sampling). ``--sft-per-seed`` runs one SFT per seed instead (the seeds then
replicate SFT too, at the cost of one SFT each). Seeds are paired across arms (same seed: same
start, same validation tasks, and in (a)/(b) the same prompts).

**Runs.** Sequential (one heavy job at a time), each in its own folder (``<out>/<arm>/seed-S``)
that is kept; a finished run is not redone, an interrupted one resumes from its last
checkpoint, and a folder made with a different config is an error naming the keys that differ.
A run that fails (e.g. arm (c) cannot fill a batch because every group has equal rewards) is
recorded with its error and the others go on; a failed run is retried on the next call. A
finished run keeps only its last checkpoint (``--keep-checkpoints`` keeps all). Then
``collapse_stats.py`` aggregates the runs and ``collapse_report.py`` writes ``results.json``,
``collapse.png`` and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pyvision_gym.train.batching import BatchingError, check_filters
from pyvision_gym.train.config import ConfigError, TrainConfig, load_config, parse_override

from .collapse_report import write_outputs

# The task mix. counting at difficulty 0 with the toolbox and without the image in the prompt:
# - a direct guess sometimes pays: the answer is a count from 1 to 6, so a guess is right about
#   1 time in 6, and an episode that answers at once costs nothing and never fails;
# - careful tool use pays more: the two short toolbox turns (label the blobs, count the asked
#   ones) solve every task (the expert scores 100%), and the model cannot see the image any other
#   way (show_image: false);
# - early tool code often fails: a tiny model after the base recipe's short SFT still breaks
#   some of its programs (a failed turn costs one of the 4); the report's first observation
#   (failed tool turns per episode at the start) says how often. If it rarely fails, weaken the
#   start with --set sft.epochs=N. (A much shorter SFT than the recipe's leaves a model that
#   writes no working code at all: 16 optimiser steps gave 0% accuracy and no tool call in a
#   probe, and then no arm has anything to learn from.)
# Accuracy-only RL can then learn that answering early is the safer bet, which is the collapse
# the experiment looks for; the tool bonus and the spread-ranked batches push the other way.
# Swap in another mix without code changes: --set env.kwargs.families=[text_reading] or
# --task-mix base (the base config's own env.kwargs).
TASK_MIX: dict[str, Any] = {"families": ["counting"], "difficulty": 0, "toolbox": True, "show_image": False}

# The RL budget on top of the base config (each overridable with --set): 16 steps of 4 prompts x 4
# rollouts; the SFT is the base recipe's, run once. Estimated, not measured end to end: RL about
# 20-40 minutes for 3 seeds x 3 arms on 2 quiet cores (a tiny-cpu RL step takes 12-19 s there),
# plus tiny-cpu's SFT (128 episodes x 14 epochs: ~4.5 min on quiet cores). Over an hour? Fewer
# --steps. Turns may be up to 256 tokens: the expert's longest is ~180 (SFT refuses less).
EXPERIMENT: dict[str, Any] = {
    "steps": 16, "val_every": 4, "val_episodes": 16, "save_every": 4,
    "env.max_turns": 4, "env.tool_reward_per_turn": 0.1,
    "rollout.n": 4, "rollout.max_new_tokens": 256, "batching.train_batch_size": 4,
    "optim.mini_batch_size": 4, "sft.enabled": True,
}
DEFAULT_SEEDS = 3

# --quick (CI): a plumbing check, not a measurement. One rollout per prompt: the barely trained
# model scores 0 everywhere, and zero_variance keeps groups of one, so arm (c) can still fill its
# batch (with n >= 2 every group would have equal rewards and the step would fail). Three turns:
# the expert's two code turns and its answer (SFT keeps only the episodes it answered right).
QUICK: dict[str, Any] = {
    "steps": 2, "val_every": 2, "val_episodes": 2, "save_every": 1,
    "env.max_turns": 3, "env.workers": 2, "rollout.n": 1, "rollout.max_new_tokens": 80,
    "env.kwargs.families": ["text_reading"],  # expert turns of ~60 tokens: short untrained turns
    "batching.train_batch_size": 2, "optim.mini_batch_size": 2, "optim.micro_batch_size": 2,
    "sft.episodes": 4, "sft.epochs": 1, "sft.batch_size": 4,
}
QUICK_SEEDS = 1

ARM_C_FILTERS = ["zero_variance", "image_tokens", "over_length", "end_reason"]  # has_image: no
# episode of the default mix shows an image (the prompt has none, the counting programs print),
# so it would drop every trajectory; add it with --filters when the mix shows images.
ARM_KNOBS = ("env.reward", "batching.filters", "batching.rank_by_std", "rollout.gen_batch_size", "batching.max_gen_batches")
RUN_MARKER = "collapse_run.json"  # the harness's record of a run (status, error, seconds)
IGNORED_ON_RESUME = ("steps",)  # a finished run with more steps is reused; fewer are continued


class ExperimentError(ValueError):
    """A setting or a run folder that does not fit the experiment."""


@dataclass(frozen=True)
class Arm:
    """One arm: a key, its label and its values of ``ARM_KNOBS``."""

    key: str
    label: str
    knobs: dict[str, Any]


@dataclass
class Design:
    """Everything that decides the runs: base config, overrides, arms and seeds."""

    base: str
    overrides: list[str]  # experiment budget, task mix, then the user's --set, as key=value
    arms: list[Arm]
    seeds: list[int]
    out: Path
    quick: bool = False
    keep_checkpoints: bool = False
    sft_per_seed: bool = False

    def sft_seed(self, seed: int) -> int:
        """The seed of the SFT stage that run seed ``seed`` starts from."""
        return seed if self.sft_per_seed else self.seeds[0]


def _override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"  # JSON is YAML: parse_override reads it back exactly


def make_arms(train_batch_size: int, oversample: int = 2, max_gen_batches: int = 6,
              filters: list[str] | None = None) -> list[Arm]:
    """The three arms' knob values for a train batch of ``train_batch_size`` groups."""
    if oversample < 1 or max_gen_batches < 1:
        raise ExperimentError(f"--oversample ({oversample}) and --max-gen-batches ({max_gen_batches}) must be >= 1")
    try:
        filters_c = list(check_filters(ARM_C_FILTERS if filters is None else filters))
    except BatchingError as exc:
        raise ExperimentError(f"--filters: {exc}") from None
    plain = {"batching.filters": [], "batching.rank_by_std": False, "rollout.gen_batch_size": train_batch_size,
             "batching.max_gen_batches": 1}
    return [
        Arm("a", "(a) accuracy-only reward", {"env.reward": "accuracy", **plain}),
        Arm("b", "(b) accumulative tool reward", {"env.reward": "accumulative", **plain}),
        Arm("c", "(c) tool reward + oversampling-filtering-ranking", {
            "env.reward": "accumulative", "batching.filters": filters_c, "batching.rank_by_std": True,
            "rollout.gen_batch_size": oversample * train_batch_size, "batching.max_gen_batches": max_gen_batches}),
    ]  # fmt: skip


def _check_user_sets(sets: list[str]) -> None:
    for text in sets:
        key = text.partition("=")[0].strip()
        for knob in ARM_KNOBS:
            if key == knob or knob.startswith(key + ".") or key.startswith(knob + "."):
                raise ExperimentError(
                    f"--set {text!r}: {knob} is what the arms differ in; use --oversample, --max-gen-batches "
                    "or --filters (arm c), or edit make_arms()")
        parse_override(text)  # malformed text fails here, before any run


def design_from_args(args: argparse.Namespace) -> Design:
    """The experiment's design from the command line (nothing runs)."""
    _check_user_sets(args.set)
    budget = {**EXPERIMENT, **(QUICK if args.quick else {})}
    if args.steps is not None:
        budget["steps"] = args.steps
    mix = [] if args.task_mix == "base" else [_override("env.kwargs", TASK_MIX)]
    overrides = [*mix, *(_override(k, v) for k, v in budget.items()), *args.set]
    probe = load_config(args.base, overrides)  # fails early on a bad base or --set
    if probe.steps < 1:
        raise ExperimentError(f"steps must be >= 1, got {probe.steps}")
    n_seeds = args.seeds if args.seeds is not None else (QUICK_SEEDS if args.quick else DEFAULT_SEEDS)
    if n_seeds < 1:
        raise ExperimentError(f"--seeds must be >= 1, got {n_seeds}")
    filters = args.filters.split(",") if args.filters else None
    arms = make_arms(probe.batching.train_batch_size, args.oversample, args.max_gen_batches, filters)
    wanted = args.arms.split(",") if args.arms else [a.key for a in arms]
    unknown = sorted(set(wanted) - {a.key for a in arms})
    if unknown:
        raise ExperimentError(f"--arms: unknown arm(s) {', '.join(unknown)} (valid: a, b, c)")
    seeds = [args.first_seed + i for i in range(n_seeds)]
    return Design(args.base, overrides, [a for a in arms if a.key in wanted], seeds, Path(args.out), args.quick,
                  args.keep_checkpoints, args.sft_per_seed)


# ----------------------------------------------------------------------------- configs
def sft_config(design: Design, seed: int) -> TrainConfig:
    """The seed's SFT stage: the shared settings, no RL step."""
    out = design.out / "sft" / f"seed-{seed}"
    return load_config(design.base, [*design.overrides, f"seed={seed}", "steps=0", f"name=collapse-sft-seed{seed}",
                                     f"out_dir={json.dumps(str(out))}"])


def arm_config(design: Design, arm: Arm, seed: int, start_model: Path | None) -> TrainConfig:
    """One run's config: the shared settings, the arm's knobs, its seed, folder and start."""
    out = design.out / arm.key / f"seed-{seed}"
    sets = [*design.overrides, *(_override(k, v) for k, v in arm.knobs.items()), f"seed={seed}",
            f"name=collapse-{arm.key}-seed{seed}", f"out_dir={json.dumps(str(out))}"]
    if start_model is not None:
        sets += [f"policy.model_path={json.dumps(str(start_model))}", "sft.enabled=false"]
    return load_config(design.base, sets)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` as ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_diff(a: dict[str, Any], b: dict[str, Any], ignore: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ between two config dicts (``ignore`` left out)."""
    fa, fb = flatten(a), flatten(b)
    return sorted(k for k in set(fa) | set(fb) if k not in ignore and fa.get(k) != fb.get(k))


# ----------------------------------------------------------------------------- running
def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_state(cfg: TrainConfig) -> str:
    """``done`` (finished with at least ``cfg.steps`` steps), ``resume`` (a checkpoint to continue
    from) or ``fresh``; a folder made with another config is an ExperimentError."""
    out = Path(cfg.out_dir)
    stored = out / "config.yaml"
    if stored.is_file():
        # read through the config class: a field added since the run was made counts at its default
        diff = config_diff(load_config(stored).to_dict(), cfg.to_dict(), IGNORED_ON_RESUME)
        if diff:
            raise ExperimentError(f"{out} was made with a different config (differs in: {', '.join(diff)}); "
                                  "use another --out or delete that folder")
    summary = _read_json(out / "summary.json")
    if summary is not None and int(summary.get("steps", -1)) >= cfg.steps:
        return "done"
    return "resume" if (out / "latest").is_file() else "fresh"


def train_run(cfg: TrainConfig, keep_checkpoints: bool = False) -> dict[str, Any]:
    """Train one run unless it is done; returns its record (status, seconds, error)."""
    from pyvision_gym.train.trainer import train  # torch and transformers load only when training

    out = Path(cfg.out_dir)
    state = run_state(cfg)
    if state == "done":
        record = _read_json(out / RUN_MARKER) or {}
        return {**record, "status": "done", "skipped": True}
    if state == "fresh":  # logs of an attempt that died before its first checkpoint
        for name in ("metrics.jsonl", "validation.jsonl", RUN_MARKER):
            (out / name).unlink(missing_ok=True)
    t0 = time.perf_counter()
    try:
        summary = train(cfg, resume=state == "resume")
    except Exception as exc:  # a failed run is recorded; the others still run
        out.mkdir(parents=True, exist_ok=True)
        (out / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        record = {"status": "failed", "error": f"{type(exc).__name__}: {exc}", "seconds": time.perf_counter() - t0}
    else:
        record = {"status": "done", "seconds": float(summary["seconds"]), "steps": summary["steps"]}
        if not keep_checkpoints:
            prune_checkpoints(out)
    (out / RUN_MARKER).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return {**record, "skipped": False}


def prune_checkpoints(run_dir: Path) -> list[str]:
    """Delete a finished run's checkpoints except the one ``latest`` names (resuming needs only
    that one; a tiny-model checkpoint with its optimiser is ~17 MB). Returns the deleted names."""
    latest = (run_dir / "latest").read_text(encoding="utf-8").strip() if (run_dir / "latest").is_file() else None
    if latest is None:
        return []
    old = sorted(p for p in run_dir.glob("step-*") if p.is_dir() and p.name != latest and p.name[5:].isdigit())
    for path in old:
        shutil.rmtree(path)
    return [p.name for p in old]


def export_sft_model(cfg: TrainConfig, dest: Path) -> Path:
    """The SFT run's last checkpoint as a model folder (``pyvision-gym export``), made once."""
    from pyvision_gym.train.export import MARKER, export_model_folder

    if cfg.policy.lora.enabled:
        raise ExperimentError("the shared SFT start needs full weights; policy.lora.enabled is not supported here")
    marker = _read_json(dest / MARKER)
    run = Path(cfg.out_dir)
    checkpoint = (run / "latest").read_text(encoding="utf-8").strip()
    if marker is not None and marker.get("checkpoint") == checkpoint and marker.get("run") == str(run.resolve()):
        return dest
    return export_model_folder(run, dest)


def plan_runs(design: Design) -> list[tuple[str, int, Arm | None]]:
    """(name, seed, arm) in run order: per seed, its SFT stage if it has its own (arm None; the
    shared one comes first), then each arm."""
    sft_on = load_config(design.base, design.overrides).sft.enabled
    plan: list[tuple[str, int, Arm | None]] = []
    for seed in design.seeds:
        if sft_on and design.sft_seed(seed) == seed:
            plan.append((f"sft seed {seed}", seed, None))
        plan += [(f"arm {arm.key} seed {seed}", seed, arm) for arm in design.arms]
    return plan


def run_all(design: Design) -> list[dict[str, Any]]:
    """Every planned run, one after the other; one record per run."""
    plan = plan_runs(design)
    records: list[dict[str, Any]] = []
    starts: dict[int, Path | None] = {}
    with tqdm(total=len(plan), desc="collapse experiment", unit="run", dynamic_ncols=True, position=0) as bar:
        for name, seed, arm in plan:
            bar.set_postfix_str(name)
            record: dict[str, Any] = {"run": name, "seed": seed, "arm": arm.key if arm else "sft"}
            if arm is None:
                cfg = sft_config(design, seed)
                record |= train_run(cfg, design.keep_checkpoints)
                starts[seed] = export_sft_model(cfg, Path(cfg.out_dir) / "model") if record["status"] == "done" else None
            elif design.sft_seed(seed) in starts and starts[design.sft_seed(seed)] is None:
                record |= {"status": "failed", "error": "its SFT stage failed", "skipped": False}
            else:
                cfg = arm_config(design, arm, seed, starts.get(design.sft_seed(seed)))
                record |= {"out": cfg.out_dir, **train_run(cfg, design.keep_checkpoints)}
            records.append(record)
            tqdm.write(f"{name}: {record['status']}{' (already finished)' if record.get('skipped') else ''}"
                       f"{': ' + record['error'] if record.get('error') else ''}")
            bar.update(1)
    return records


# ----------------------------------------------------------------------------- command line
def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pyvision_gym.benchmarks.collapse_experiment",
                                 description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="tiny-cpu", help="base training config: a shipped name or a YAML file")
    ap.add_argument("--seeds", type=int, default=None, help=f"seeds per arm (default {DEFAULT_SEEDS}; --quick: {QUICK_SEEDS})")
    ap.add_argument("--first-seed", type=int, default=0, help="seeds are first-seed, first-seed + 1, ...")
    ap.add_argument("--steps", type=int, default=None, help=f"RL steps per run (default {EXPERIMENT['steps']})")
    ap.add_argument("--quick", action="store_true", help="a minutes-long plumbing check (CI), not a measurement")
    ap.add_argument("--out", default="runs/collapse", help="experiment folder (runs, results.json, collapse.png, report.md)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field for every arm")
    ap.add_argument("--task-mix", choices=("experiment", "base"), default="experiment",
                    help="experiment: this module's TASK_MIX; base: the base config's env.kwargs")
    ap.add_argument("--arms", default=None, help="a subset of the arms, e.g. a,c (default: all three)")
    ap.add_argument("--oversample", type=int, default=2, help="arm c: prompts per generation batch, in train batches")
    ap.add_argument("--max-gen-batches", type=int, default=6,
                    help="arm c: generation batches a step may draw before the run fails (a low-accuracy policy "
                         "has many equal-reward groups)")
    ap.add_argument("--filters", default=None, help=f"arm c's filters, comma-separated (default {','.join(ARM_C_FILTERS)})")
    ap.add_argument("--sft-per-seed", action="store_true",
                    help="one SFT start per seed (default: one, shared by every arm and seed, as in the paper)")
    ap.add_argument("--keep-checkpoints", action="store_true",
                    help="keep every checkpoint of a finished run (default: only the last, which resuming needs)")
    ap.add_argument("--plan", action="store_true", help="print the arms' configs and the runs, train nothing")
    return ap


def describe(design: Design) -> str:
    """The runs and what each arm sets, as text."""
    lines = [f"base {design.base}; seeds {design.seeds}; out {design.out}", "shared overrides:"]
    lines += [f"  {o}" for o in design.overrides]
    for arm in design.arms:
        lines.append(f"{arm.label}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in arm.knobs.items()))
    lines.append("runs: " + ", ".join(name for name, _, _ in plan_runs(design)))
    return "\n".join(lines)


def setup_record(design: Design) -> dict[str, Any]:
    """What the report states about the design (from arm a's config: the arms share all of it)."""
    cfg = arm_config(design, design.arms[0], design.seeds[0], None)
    shared = "once per seed, shared by its arms" if design.sft_per_seed else "once, shared by every arm and seed"
    sft = (f"SFT on {cfg.sft.episodes} expert episodes x {cfg.sft.epochs} epochs (lr {cfg.sft.lr}), {shared}"
           if cfg.sft.enabled else "the base policy (no SFT)")
    return {
        "out": str(design.out), "base": design.base, "quick": design.quick, "seeds": design.seeds,
        "overrides": design.overrides, "arms": [{"key": a.key, "label": a.label, "knobs": a.knobs} for a in design.arms],
        "steps": cfg.steps, "task_mix": cfg.env.kwargs, "env_id": cfg.env.id, "max_turns": cfg.env.max_turns,
        "tool_reward_per_turn": cfg.env.tool_reward_per_turn, "train_batch_size": cfg.batching.train_batch_size,
        "n": cfg.rollout.n, "lr": cfg.optim.lr, "max_new_tokens": cfg.rollout.max_new_tokens, "sft": sft,
        "val_episodes": cfg.val_episodes, "val_every": cfg.val_every,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        design = design_from_args(args)
    except (ExperimentError, ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(describe(design))
    if args.plan:
        return 0
    design.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        records = run_all(design)
    except ExperimentError as exc:  # a run folder made with another config
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = write_outputs(setup_record(design), records, time.perf_counter() - t0)
    print("\n" + paths["report"].read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 1 if any(r["status"] != "done" for r in records) else 0


if __name__ == "__main__":
    raise SystemExit(main())
