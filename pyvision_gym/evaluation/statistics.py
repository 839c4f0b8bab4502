"""Summary statistics of a run: accuracy with Wilson intervals, per family and difficulty, tool
use, visual tokens, end reasons, time."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from pyvision_gym.rollout.records import ERROR_END_REASONS

from .provenance import versions
from .suites import suite_field

__all__ = ["normalize_summary", "summarize", "wilson_interval"]

Row = dict[str, Any]


def wilson_interval(successes: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (``successes`` may be fractional: MRA)."""
    if n <= 0:
        return (0.0, 1.0)
    p = min(max(successes / n, 0.0), 1.0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, round(centre - half, 12)), min(1.0, round(centre + half, 12)))


def _acc_block(rows: Sequence[Row | None]) -> dict[str, Any]:
    """Accuracy over ``rows`` where ``None`` is a task without a row (wrong)."""
    n = len(rows)
    acc = sum(float(r["accuracy"]) for r in rows if r)
    correct = sum(bool(r["correct"]) for r in rows if r)
    lo, hi = wilson_interval(acc, n)
    return {"n": n, "correct": correct, "accuracy": acc / n if n else 0.0, "ci95": [lo, hi]}


def _mean(xs: Sequence[float]) -> float | None:
    return float(sum(xs) / len(xs)) if xs else None


def _group(tasks: Sequence[dict[str, Any]], per_task: Sequence[Row | None], key: str) -> dict[str, Any]:
    """Accuracy, mean turns, tool calls and visual tokens per value of the task entries' ``key``."""
    groups: dict[str, list[Row | None]] = {}
    for t, r in zip(tasks, per_task, strict=True):
        groups.setdefault(str(t.get(key)), []).append(r)
    out = {}
    for name, rows in groups.items():
        block = _acc_block(rows)
        got = [r for r in rows if r]
        block["mean_turns"] = _mean([r["turns"] for r in got])
        block["mean_tool_calls"] = _mean([r["tool_calls"] for r in got])
        block["mean_visual_tokens"] = _mean([r["visual_tokens"] for r in got])
        out[name] = block
    return out


def _visual_tokens(done: Sequence[Row]) -> dict[str, Any]:
    tokens = [int(r["visual_tokens"]) for r in done]
    full = [int(r["visual_tokens_full_video"]) for r in done if r.get("visual_tokens_full_video") is not None]
    out: dict[str, Any] = {"mean": _mean(tokens), "total": sum(tokens)}
    if full:
        ratio = (sum(tokens) / sum(full)) if sum(full) else None
        out.update(full_video_mean=_mean(full), full_video_total=sum(full), ratio_to_full_video=ratio)
    return out


def _suite_block(suite: Any) -> dict[str, Any]:
    return {
        "name": suite_field(suite, "name"), "version": suite_field(suite, "version"),
        "modality": suite_field(suite, "modality"), "hash": suite_field(suite, "hash"),
        "tasks_in_suite": len(suite_field(suite, "tasks") or []),
    }


def summarize(
    rows: Iterable[Row],
    suite: Any,
    episodes: int | None = None,
    agent: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of a run: accuracy (Wilson 95%) overall, per family and per difficulty,
    turns, tool use, visual tokens, end reasons, wall time, identity and versions.

    The denominator is every selected task of ``suite`` (the first ``episodes``); a task
    without a row counts as wrong, and rows of other tasks are ignored. Later rows of a
    task replace earlier ones. ``accuracy`` is the mean per-episode accuracy (partial
    credit for MRA-scored answers; the fraction correct otherwise).
    """
    tasks = list(suite_field(suite, "tasks") or [])[: episodes if episodes is not None else None]
    latest: dict[str, Row] = {}
    for r in rows:
        latest[r["task_id"]] = r
    per_task = [latest.get(t["task_id"]) for t in tasks]
    done = [r for r in per_task if r is not None]
    summary: dict[str, Any] = {
        "suite": _suite_block(suite),
        "agent": agent,
        "episodes": len(tasks),
        "completed": len(done),
        "missing": len(tasks) - len(done),
        "unfinished": len(tasks) - len(done) + sum(r["end_reason"] in ERROR_END_REASONS for r in done),
        "accuracy": _acc_block(per_task),
        "per_family": _group(tasks, per_task, "family"),
        "per_difficulty": _group(tasks, per_task, "difficulty"),
        "mean_reward": _mean([float(r["reward"]) for r in done]),
        "mean_turns": _mean([r["turns"] for r in done]),
        "mean_tool_calls": _mean([r["tool_calls"] for r in done]),
        "mean_tool_errors": _mean([r["tool_errors"] for r in done]),
        "zero_tool_call_share": _mean([float(r["tool_calls"] == 0) for r in done]),
        "visual_tokens": _visual_tokens(done),
        "end_reasons": dict(sorted(Counter(r["end_reason"] for r in done).items())),
        "wall_s": {
            "episodes_total": float(sum(float(r["wall_s"]) for r in done)),
            "episode_mean": _mean([float(r["wall_s"]) for r in done]),
        },
        "versions": versions(),
    }
    if run:
        summary["run"] = run
    return summary


# ---------------------------------------------------------------------- reading summaries
def _num_or_none(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) else None


def _acc_stats(block: Any) -> dict[str, Any] | None:
    """``{"mean", "ci95", "n"}`` from an accuracy block that says ``mean`` or ``accuracy``."""
    if not isinstance(block, dict):
        return None
    mean = _num_or_none(block.get("mean"))
    if mean is None:
        mean = _num_or_none(block.get("accuracy"))
    if mean is None:
        return None
    ci = block.get("ci95")
    ok = isinstance(ci, list | tuple) and len(ci) == 2 and all(_num_or_none(v) is not None for v in ci)
    return {"mean": mean, "ci95": [float(ci[0]), float(ci[1])] if ok else None, "n": block.get("n")}


def normalize_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a ``summary.json`` in one shape, whichever layout it uses.

    Reads both the documented layout (``accuracy.overall`` / ``accuracy.per_family`` with
    ``mean``, ``visual_tokens_full_video.mean``, ``wall_s`` a number) and the runner's
    (:func:`summarize`: ``accuracy`` with ``accuracy``, top-level
    ``per_family``, ``visual_tokens.full_video_mean``, ``wall_s`` a dict). Returns ``overall``
    and each ``per_family`` value as ``{"mean", "ci95", "n"}`` (or None), ``mean_turns``,
    ``mean_tool_calls``, ``zero_tool_call_share``, ``visual_tokens``, ``full_video_tokens``,
    ``wall_s``, ``episodes``, ``missing`` (tasks without a finished episode),
    ``package_version`` and ``end_reasons``; absent numbers are None.
    """
    acc = summary.get("accuracy")
    overall = _acc_stats(acc.get("overall") if isinstance(acc, dict) and "overall" in acc else acc)
    fams = acc.get("per_family") if isinstance(acc, dict) and isinstance(acc.get("per_family"), dict) else summary.get("per_family")
    per_family = {}
    for name, block in (fams or {}).items() if isinstance(fams, dict) else ():
        st = _acc_stats(block)
        if st is not None:
            per_family[str(name)] = st
    vt = summary.get("visual_tokens") if isinstance(summary.get("visual_tokens"), dict) else {}
    fv = summary.get("visual_tokens_full_video")
    full = _num_or_none(fv.get("mean")) if isinstance(fv, dict) else _num_or_none(fv)
    if full is None:
        full = _num_or_none(vt.get("full_video_mean"))
    wall = summary.get("wall_s")
    versions = summary.get("versions") if isinstance(summary.get("versions"), dict) else {}
    missing = _num_or_none(summary.get("unfinished"))
    if missing is None:
        missing = _num_or_none(summary.get("missing"))
    return {
        "overall": overall,
        "per_family": per_family,
        "mean_turns": _num_or_none(summary.get("mean_turns")),
        "mean_tool_calls": _num_or_none(summary.get("mean_tool_calls")),
        "zero_tool_call_share": _num_or_none(summary.get("zero_tool_call_share")),
        "visual_tokens": _num_or_none(vt.get("mean")),
        "full_video_tokens": full,
        "wall_s": _num_or_none(wall.get("episodes_total")) if isinstance(wall, dict) else _num_or_none(wall),
        "episodes": summary.get("episodes"),
        "missing": int(missing or 0),
        "package_version": summary.get("package_version") or versions.get("pyvision_gym"),
        "end_reasons": summary.get("end_reasons") if isinstance(summary.get("end_reasons"), dict) else {},
    }
