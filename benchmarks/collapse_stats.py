"""The collapse experiment's numbers: per-step curves across seeds, start and end values,
paired comparisons between arms (the runs: ``collapse_experiment.py``; the plot and the
report: ``collapse_report.py``).

For every arm and measure, the value at each RL step is averaged over the seeds, with a 95%
Student-t interval (mean +- t(0.975, n-1) * sd / sqrt(n); none with one seed). *Start* and *end*
of a training curve are the means over its first and last ``window`` steps (a quarter of the
steps, at least one) of each seed, so one noisy step does not decide them; for validation they
are the greedy episodes before the first RL step and after the last. Arms are compared on the
end values seed by seed (a seed's arms share their start), with a t-interval of the paired
differences. Intervals of shares are cut to their range ([0, 1], changes [-1, 1]). Only finished
runs enter start, end and comparisons; the curves show every logged step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

MEASURES = (
    ("tools/calls_mean", "tool calls per episode"),
    ("tools/zero_share", "share of zero-call episodes"),
    ("episode/turns_mean", "turns per episode"),
    ("accuracy/mean", "accuracy"),
)
EXTRA = ("reward/mean", "tools/errors_mean", "tools/at_turn_limit_share")  # in the JSON, not plotted
PHASES = ("train", "val")
TOOL_MEASURES = ("tools/calls_mean", "tools/zero_share")  # the measures that define collapse
BOUNDED = ("tools/zero_share", "accuracy/mean", "tools/at_turn_limit_share")  # shares: values in [0, 1]


# ----------------------------------------------------------------------------- statistics
def t_interval(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean and Student-t interval of ``values`` (``low``/``high`` None for fewer than 2)."""
    xs = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(xs.size)
    if n == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    mean = float(xs.mean())
    if n == 1:
        return {"mean": mean, "low": None, "high": None, "n": 1}
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * xs.std(ddof=1) / math.sqrt(n))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n}


def clipped(iv: dict[str, Any], lo: float, hi: float) -> dict[str, Any]:
    """The interval cut to ``[lo, hi]`` (a share's t-interval can cross 0 or 1 with few seeds)."""
    if iv["low"] is None:
        return iv
    return {**iv, "low": max(lo, iv["low"]), "high": min(hi, iv["high"])}


def excludes_zero(iv: dict[str, Any]) -> bool:
    """Whether an interval exists and lies wholly on one side of 0."""
    return iv["low"] is not None and (iv["low"] > 0 or iv["high"] < 0)


def dedupe(rows: list[dict[str, Any]], max_step: int | None = None) -> list[dict[str, Any]]:
    """One row per (phase, step), the last logged (a resumed run re-logs the steps after its
    last checkpoint); steps beyond ``max_step`` left out."""
    last: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        if max_step is None or row["step"] <= max_step:
            last[(row["phase"], int(row["step"]))] = row
    return [last[k] for k in sorted(last, key=lambda k: (k[0], k[1]))]


def series(rows: list[dict[str, Any]], phase: str, key: str) -> dict[int, float]:
    """``{step: value}`` of one measure in one phase."""
    return {int(r["step"]): float(r[key]) for r in rows if r["phase"] == phase and key in r}


def curve(per_seed: dict[int, dict[int, float]]) -> dict[str, Any]:
    """Mean and interval per step over the seeds that logged it; the seeds' own values too."""
    steps = sorted({s for pts in per_seed.values() for s in pts})
    ivs = [t_interval([pts[s] for pts in per_seed.values() if s in pts]) for s in steps]
    return {
        "steps": steps, **{k: [iv[k] for iv in ivs] for k in ("mean", "low", "high", "n")},
        "per_seed": {str(seed): [pts.get(s) for s in steps] for seed, pts in per_seed.items()},
    }  # fmt: skip


def window(steps: int) -> int:
    """Training steps averaged for a curve's start and end."""
    return max(1, steps // 4)


def start_end(points: dict[int, float], phase: str, steps: int) -> tuple[float | None, float | None]:
    """One seed's start and end of a curve (see the module docstring)."""
    if not points:
        return None, None
    if phase == "val":
        return points.get(0, points[min(points)]), points[max(points)]
    w = window(steps)
    first = [points[s] for s in range(1, w + 1) if s in points]
    last = [points[s] for s in range(steps - w + 1, steps + 1) if s in points]
    return (float(np.mean(first)) if first else None), (float(np.mean(last)) if last else None)


# ----------------------------------------------------------------------------- aggregation
def load_rows(run_dir: Path, max_step: int) -> list[dict[str, Any]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return dedupe([r for r in rows if r.get("phase") in PHASES], max_step)


def aggregate_arm(rows_by_seed: dict[int, list[dict[str, Any]]], finished: set[int], steps: int) -> dict[str, Any]:
    """Curves, start/end values and budget totals of one arm."""
    out: dict[str, Any] = {"curves": {}, "start_end": {}, "seeds_finished": sorted(finished)}
    for phase in PHASES:
        out["curves"][phase], out["start_end"][phase] = {}, {}
        for key in (*(m for m, _ in MEASURES), *EXTRA):
            pts = {seed: series(rows, phase, key) for seed, rows in rows_by_seed.items()}
            lo, hi = (0.0, 1.0) if key in BOUNDED else (-math.inf, math.inf)
            c = curve({s: p for s, p in pts.items() if p})
            c["low"] = [None if v is None else max(lo, v) for v in c["low"]]
            c["high"] = [None if v is None else min(hi, v) for v in c["high"]]
            out["curves"][phase][key] = c
            ends = {seed: start_end(pts[seed], phase, steps) for seed in finished if pts.get(seed)}
            out["start_end"][phase][key] = {
                "start": clipped(t_interval([e[0] for e in ends.values()]), lo, hi),
                "end": clipped(t_interval([e[1] for e in ends.values()]), lo, hi),
                "change": clipped(t_interval([e[1] - e[0] for e in ends.values() if None not in e]), lo - hi, hi - lo),
                "per_seed": {str(s): list(e) for s, e in ends.items()},
            }
    totals = {seed: [r for r in rows if r["phase"] == "train"] for seed, rows in rows_by_seed.items() if seed in finished}
    out["budget"] = {
        "generated_episodes": t_interval([sum(r.get("batch/trajectories_drawn", 0.0) for r in t) for t in totals.values()]),
        "trained_trajectories": t_interval([sum(r.get("batch/trajectories_trained", 0.0) for r in t) for t in totals.values()]),
    }
    return out


def compare(arms: dict[str, dict[str, Any]], phase: str = "train") -> list[dict[str, Any]]:
    """Paired end-value differences (later arm minus earlier) for every pair of arms and measure."""
    keys = sorted(arms)
    out = []
    for i, x in enumerate(keys):
        for y in keys[i + 1 :]:
            for key, _ in MEASURES:
                ex = arms[x]["start_end"][phase][key]["per_seed"]
                ey = arms[y]["start_end"][phase][key]["per_seed"]
                diffs = [ey[s][1] - ex[s][1] for s in ex if s in ey and ex[s][1] is not None and ey[s][1] is not None]
                lim = 1.0 if key in BOUNDED else math.inf
                out.append({"arms": [y, x], "phase": phase, "measure": key, "difference": clipped(t_interval(diffs), -lim, lim)})
    return out


def aggregate(setup: dict[str, Any], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The results JSON: per arm its curves, start/end values and budget, and the comparisons."""
    out_dir, steps = Path(setup["out"]), int(setup["steps"])
    arms: dict[str, dict[str, Any]] = {}
    for arm in setup["arms"]:
        rows = {seed: load_rows(out_dir / arm["key"] / f"seed-{seed}", steps) for seed in setup["seeds"]}
        finished = {r["seed"] for r in records if r["arm"] == arm["key"] and r["status"] == "done"}
        seconds = [r["seconds"] for r in records if r["arm"] == arm["key"] and r.get("seconds") is not None]
        arms[arm["key"]] = {"label": arm["label"], "knobs": arm["knobs"], **aggregate_arm(rows, finished, steps),
                            "seconds": t_interval(seconds)}
    return {"setup": setup, "runs": records, "arms": arms,
            "comparisons": {phase: compare(arms, phase) for phase in PHASES}}
