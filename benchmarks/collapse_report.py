"""The collapse experiment's plot and ``report.md``, written from the aggregated numbers
(``collapse_stats.py``): every sentence of the observations is derived from them, and a
difference is called a difference only when its 95% interval across seeds excludes zero."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from .collapse_stats import MEASURES, TOOL_MEASURES, aggregate, excludes_zero, window

LABELS = dict(MEASURES)
def plot(results: dict[str, Any], path: Path) -> Path:
    """Four panels (the MEASURES), one colour per arm: training mean with its shaded interval,
    validation as squares with error bars."""
    fig = Figure(figsize=(12, 8), constrained_layout=True)
    axes = fig.subplots(2, 2).ravel()
    n_seeds = len(results["setup"]["seeds"])
    for ax, (key, title) in zip(axes, MEASURES, strict=True):
        for i, (arm_key, arm) in enumerate(sorted(results["arms"].items())):
            colour = f"C{i}"
            tr = arm["curves"]["train"].get(key, {"steps": []})
            if tr["steps"]:
                ax.plot(tr["steps"], tr["mean"], "-o", color=colour, markersize=3, label=f"{arm['label']} (train)")
                lo = [m if v is None else v for v, m in zip(tr["low"], tr["mean"], strict=True)]
                hi = [m if v is None else v for v, m in zip(tr["high"], tr["mean"], strict=True)]
                ax.fill_between(tr["steps"], lo, hi, color=colour, alpha=0.18, linewidth=0)
            va = arm["curves"]["val"].get(key, {"steps": []})
            if va["steps"]:
                err = [[0 if v is None else m - v for v, m in zip(va["low"], va["mean"], strict=True)],
                       [0 if v is None else v - m for v, m in zip(va["high"], va["mean"], strict=True)]]
                ax.errorbar(va["steps"], va["mean"], yerr=err, fmt="s--", color=colour, markersize=4, alpha=0.7,
                            capsize=3, label=f"({arm_key}) validation")
        ax.set_title(title)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(loc="best", fontsize=7)
    band = "95% t-intervals across seeds" if n_seeds > 1 else "one seed: no intervals"
    fig.suptitle(f"Interaction collapse: {n_seeds} seed(s) per arm, {band} "
                 "(lines: training rollouts; squares: greedy validation)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# ----------------------------------------------------------------------------- text
def fmt(iv: dict[str, Any], signed: bool = False) -> str:
    """``mean [low, high]``, the mean alone with one seed, ``-`` with none."""
    if iv["mean"] is None:
        return "-"
    f = "{:+.2f}" if signed else "{:.2f}"
    if iv["low"] is None:
        return f.format(iv["mean"])
    return f"{f.format(iv['mean'])} [{f.format(iv['low'])}, {f.format(iv['high'])}]"


def verdict(iv: dict[str, Any], up: str, down: str, what: str = "change") -> str:
    """What an interval of a change (or a difference) supports."""
    if iv["mean"] is None:
        return "no finished runs"
    if iv["low"] is None:
        return "one seed, no interval"
    if not excludes_zero(iv):
        return f"within the interval (no {what} shown)"
    return up if iv["low"] > 0 else down


def mean(iv: dict[str, Any]) -> str:
    return "-" if iv["mean"] is None else f"{iv['mean']:.2f}"


def setup_section(results: dict[str, Any]) -> list[str]:
    s, arms = results["setup"], results["arms"]
    total = sum(r.get("seconds") or 0.0 for r in results["runs"])
    lines = [
        "## Setup", "",
        f"- Base config `{s['base']}`; task mix `{json.dumps(s['task_mix'])}`, {s['max_turns']} turns per episode, "
        f"tool reward {s['tool_reward_per_turn']} per successful tool turn (arms b and c).",
        f"- Budget, the same in every arm: {s['steps']} RL steps, each one update on {s['train_batch_size']} prompts x "
        f"{s['n']} rollouts; lr {s['lr']}; {s['max_new_tokens']} new tokens per turn. Arm (c) generates more episodes "
        "within the same steps (oversampling); the table shows how many.",
        f"- Start: {s['sft']}. Validation: {s['val_episodes']} greedy episodes on fixed val-split seeds every "
        f"{s['val_every']} steps.",
        f"- Seeds: {', '.join(map(str, s['seeds']))} (paired across arms). Run time: {total / 60:.1f} min over all "
        f"runs; this invocation {s['wall_s'] / 60:.1f} min (finished runs are reused).",
        "", "| arm | reward | filters | prompts per generation batch (max batches) | ranking by reward std | "
        "generated episodes per run | trained trajectories per run | minutes per run |", "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for _, arm in sorted(arms.items()):
        k, b = arm["knobs"], arm["budget"]
        secs = arm["seconds"]
        minutes = {**secs, **{x: None if secs[x] is None else secs[x] / 60 for x in ("mean", "low", "high")}}
        lines.append(
            f"| {arm['label']} | {k['env.reward']} | {', '.join(k['batching.filters']) or 'none'} | "
            f"{k['rollout.gen_batch_size']} ({k['batching.max_gen_batches']}) | {'yes' if k['batching.rank_by_std'] else 'no'} | "
            f"{fmt(b['generated_episodes'])} | {fmt(b['trained_trajectories'])} | {fmt(minutes)} |")
    failed = [r for r in results["runs"] if r["status"] != "done"]
    if failed:
        lines += ["", "**Runs that did not finish** (left out of start, end and comparisons):", ""]
        lines += [f"- {r['run']}: {r.get('error', r['status'])}" for r in failed]
    return lines


def table_section(results: dict[str, Any]) -> list[str]:
    s = results["setup"]
    w = window(int(s["steps"]))
    lines = [
        "## Start vs end", "",
        f"Training rollouts (temperature 1): start = mean of steps 1-{w}, end = mean of the last {w} step(s), per seed. "
        "Validation (greedy): before the first RL step and after the last. Mean across seeds with its 95% "
        "t-interval in brackets (none with one seed).", "",
        "| arm | measure | train start | train end | train change | val start | val end |", "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for key, arm in sorted(results["arms"].items()):
        for m, label in MEASURES:
            tr, va = arm["start_end"]["train"][m], arm["start_end"]["val"][m]
            lines.append(f"| ({key}) | {label} | {fmt(tr['start'])} | {fmt(tr['end'])} | {fmt(tr['change'], True)} | "
                         f"{fmt(va['start'])} | {fmt(va['end'])} |")
    return lines


def arm_sentence(key: str, arm: dict[str, Any]) -> str:
    se = arm["start_end"]["train"]
    parts = [f"{LABELS[m]} went from {mean(se[m]['start'])} to {mean(se[m]['end'])} (change {fmt(se[m]['change'], True)})"
             for m, _ in MEASURES]
    calls = verdict(se["tools/calls_mean"]["change"], "rose beyond the interval", "fell beyond the interval")
    zero = verdict(se["tools/zero_share"]["change"], "rose beyond the interval", "fell beyond the interval")
    return (f"- **{arm['label']}**, training rollouts: " + "; ".join(parts)
            + f". Tool calls per episode: {calls}; zero-call share: {zero}.")


def start_sentence(results: dict[str, Any]) -> str:
    """What the policy did when RL began (the premise: does tool code fail, are there direct answers?)."""
    arms = results["arms"]
    first = arms[sorted(arms)[0]]

    def val(m: str) -> str:
        return mean(first["start_end"]["val"][m]["start"])

    def train(m: str) -> str:
        return mean(first["start_end"]["train"][m]["start"])

    return (f"- At the start (the SFT policy, greedy validation of arm {sorted(arms)[0]}): {val('tools/calls_mean')} tool "
            f"calls and {val('tools/errors_mean')} failed tool turns per episode, zero-call share {val('tools/zero_share')}, "
            f"accuracy {val('accuracy/mean')}. In its first sampled training steps: zero-call share "
            f"{train('tools/zero_share')}, accuracy {train('accuracy/mean')}, {train('tools/errors_mean')} failed tool "
            "turns per episode.")


def comparison_lines(results: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Sentences on the arms' end values, and the tool-use comparisons beyond their intervals."""
    lines, beyond = [], []
    for c in results["comparisons"]["train"]:
        y, x = c["arms"]
        d = c["difference"]
        v = verdict(d, f"({y}) higher beyond the interval", f"({y}) lower beyond the interval", "difference")
        lines.append(f"  - ({y}) - ({x}), {LABELS[c['measure']]}: {fmt(d, True)}: {v}.")
        if c["measure"] in TOOL_MEASURES and excludes_zero(d):
            beyond.append(f"({y}) - ({x}) {LABELS[c['measure']]} {fmt(d, True)}")
    return lines, beyond


def verdict_lines(results: dict[str, Any], beyond: list[str]) -> list[str]:
    arms = results["arms"]
    seeds = min((len(a["seeds_finished"]) for a in arms.values()), default=0)
    if seeds < 2:
        return ["", f"**{'One seed' if seeds == 1 else 'No finished seed'} per arm: no intervals. Every difference above "
                "is one run against another and may be noise; rerun with `--seeds 3` or more before reading an effect "
                "into it.**"]
    changes = {k: a["start_end"]["train"]["tools/calls_mean"]["change"] for k, a in arms.items()}
    fell = [k for k, iv in changes.items() if excludes_zero(iv) and iv["high"] < 0]
    lines = ["", "- Tool calls per episode fell beyond the interval in: "
             + (", ".join(f"({k})" for k in sorted(fell)) if fell else "no arm") + "."]
    if not beyond:
        lines.append(f"\n**Null result:** at this scale and budget ({seeds} seeds per arm), the arms' end-of-training tool "
                     "calls and zero-call shares do not differ beyond the 95% intervals. The experiment neither shows "
                     "the collapse effect nor rules it out.")
        return lines
    lines.append("- Tool-use differences between arms beyond the intervals: " + "; ".join(beyond) + ".")
    more_c = [c for c in results["comparisons"]["train"]
              if c["arms"] == ["c", "a"] and c["measure"] == "tools/calls_mean" and excludes_zero(c["difference"])
              and c["difference"]["low"] > 0]
    lines.append("- " + ("This is consistent with the paper's claim: arm (a) lost tool use and arm (c) ended with more tool "
                         "calls than (a)." if "a" in fell and more_c else "This does not reproduce the paper's full claim "
                         "(arm (a) losing tool use while arm (c) ends with more tool calls than (a), both beyond the "
                         "intervals)."))
    return lines


def report_markdown(results: dict[str, Any]) -> str:
    s = results["setup"]
    n = len(s["seeds"])
    head = [f"# Interaction collapse: {n} seed(s) per arm", ""]
    if s.get("quick"):
        head += ["> **--quick**: a plumbing check with a tiny budget (one rollout per prompt, a few steps). "
                 "The numbers below say nothing about the effect.", ""]
    comp, beyond = comparison_lines(results)
    obs = ["## Observations", "", start_sentence(results)]
    obs += [arm_sentence(k, a) for k, a in sorted(results["arms"].items())]
    obs += ["- At the end of training (paired by seed; end values as in the table):", *comp]
    obs += verdict_lines(results, beyond)
    files = ["## Files", "", "`results.json` (every curve, per seed too), `collapse.png`, and one run folder per arm "
             "and seed (`<arm>/seed-S/`: metrics.jsonl, validation.jsonl, curves.png, checkpoints; the shared SFT start "
             "in `sft/seed-S/`)."]
    return "\n".join([*head, *setup_section(results), "", *table_section(results), "", *obs, "", *files]) + "\n"


def write_outputs(setup: dict[str, Any], records: list[dict[str, Any]], seconds: float) -> dict[str, Path]:
    """Aggregate the runs and write ``results.json``, ``collapse.png`` and ``report.md``."""
    out = Path(setup["out"])
    results = aggregate({**setup, "wall_s": round(seconds, 1)}, records)
    paths = {"json": out / "results.json", "plot": out / "collapse.png", "report": out / "report.md"}
    paths["json"].write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    plot(results, paths["plot"])
    paths["report"].write_text(report_markdown(results), encoding="utf-8")
    return paths
