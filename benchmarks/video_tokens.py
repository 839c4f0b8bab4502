"""On-demand video, measured: the visual tokens an agent chooses to spend on a frozen video suite
against what the same model family pays to ingest each whole video.

    python -m pyvision_gym.benchmarks.video_tokens                 # expert, full-video, random, direct
    python -m pyvision_gym.benchmarks.video_tokens --agent expert --agent reference --episodes 20

Each ``--agent SPEC`` (any spec ``pyvision-gym eval`` takes) runs on the suite (default
``pvbench-video-v0``) through the evaluation runner, into ``RUNS_DIR/<spec>`` (an interrupted
run resumes there). From the run folders it reads, per episode: the visual tokens of the frames
the agent showed (the environment's ``visual_tokens``), what Qwen2.5-VL pays to ingest the whole
video (``visual_tokens_full_video``: 2 fps, video pixel limits, two frames per temporal patch),
frames shown, tool calls and the tool-output text read back. Both sides are also priced for the
tiny reference-size model (:data:`TINY_COUNTER`: the same 28-pixel token cell, its image
processor's pixel bounds), which has no video processor here, so its full-video cost is the
2-fps sample shown as images. It prints a table per agent (per family and overall: accuracy
with Wilson 95% intervals, tokens per episode, the ratio to full video), writes JSON (``--out``)
and a plot of accuracy against visual tokens per episode (``--plot``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from pyvision_gym.agents.tiny_model import DEFAULTS as TINY_DEFAULTS
from pyvision_gym.env import SPLIT_OFFSETS
from pyvision_gym.envs import get_family
from pyvision_gym.evaluation.run_folder import read_rows
from pyvision_gym.evaluation.runner import run_eval
from pyvision_gym.evaluation.statistics import wilson_interval
from pyvision_gym.evaluation.suites import Suite, load_suite, suite_tasks
from pyvision_gym.visual_tokens import VisualTokenCounter, smart_nframes

__all__ = [
    "DEFAULT_AGENTS", "QWEN_COUNTER", "TINY_COUNTER", "VideoFacts", "aggregate", "episode_costs",
    "main", "measure", "plot", "render_tables", "to_json", "tool_outputs", "video_facts",
]

DEFAULT_AGENTS = ("expert", "full-video", "random", "direct")
#: Qwen2.5-VL's pricing: the counter every environment uses by default.
QWEN_COUNTER = VisualTokenCounter()
#: The tiny reference-size Qwen2.5-VL (``agents/tiny_model.py``): patch 14 with a 2x2 merge (the
#: same 28-pixel cell), its image processor's pixel bounds.
TINY_COUNTER = VisualTokenCounter(min_pixels=int(TINY_DEFAULTS["min_pixels"]), max_pixels=int(TINY_DEFAULTS["max_pixels"]))
Row = dict[str, Any]


@dataclass(frozen=True)
class VideoFacts:
    """A task's video as the runtime reads it (decord frame count and fps) and its frame size."""

    frames: int
    fps: float
    width: int
    height: int


def video_facts(path: str | os.PathLike[str]) -> VideoFacts:
    """Frame count and average fps from decord (as the runtime reports them), size from the container."""
    import av
    import decord

    reader = decord.VideoReader(str(path))
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        width, height = int(ctx.width), int(ctx.height)
    return VideoFacts(frames=len(reader), fps=float(reader.get_avg_fps()), width=width, height=height)


def suite_videos(suite: Suite, n: int | None = None, cache_dir: str | os.PathLike[str] | None = None) -> dict[str, VideoFacts]:
    """:class:`VideoFacts` of the suite's first ``n`` tasks (all by default), by task id."""
    entries = suite.tasks[:n]
    if suite.dataset:
        tasks = suite_tasks(suite, cache_dir)[: len(entries)]
    else:
        cache = Path(suite.config(cache_dir).cache_dir)
        tasks = [get_family(e["family"]).generate(SPLIT_OFFSETS[suite.split] + int(e["seed"]), int(e["difficulty"]), cache)
                 for e in entries]
    out = {}
    for entry, task in zip(entries, tasks, strict=True):
        if not task.video_path:
            raise ValueError(f"suite {suite.name!r} task {entry['task_id']} has no video: this benchmark needs a video suite")
        out[str(entry["task_id"])] = video_facts(task.video_path)
    return out


# ---------------------------------------------------------------------- per episode
def shown_sizes(row: Row, run_dir: Path) -> list[tuple[int, int]] | None:
    """(width, height) of every image the episode showed, read from the run's PNGs (None if any is missing)."""
    refs = [ref for turn in row.get("transcript") or [] for ref in turn.get("images") or []]
    if len(refs) != int(row.get("images_shown") or 0):
        return None
    sizes = []
    for ref in refs:
        path = run_dir / ref
        if not path.is_file():
            return None
        with Image.open(path) as im:
            sizes.append(im.size)
    return sizes


def tool_outputs(row: Row) -> list[dict[str, Any]]:
    """The turns whose observation the agent read: every reply to its turns except the last
    (the episode ended there, so nothing read it)."""
    replies = [t for t in row.get("transcript") or [] if t.get("action") is not None]
    return replies[:-1] if row.get("end_reason") is not None else replies


def episode_costs(row: Row, run_dir: Path, video: VideoFacts) -> dict[str, Any]:
    """One episode's outcome and costs: tokens of the frames shown and of the whole video, for
    Qwen2.5-VL (the environment's own counts) and for the tiny model (repriced here)."""
    sizes = shown_sizes(row, run_dir)
    sampled = smart_nframes(video.frames, video.fps, sample_fps=TINY_COUNTER.sample_fps,
                            min_frames=TINY_COUNTER.min_frames, max_frames=TINY_COUNTER.max_frames,
                            frame_factor=TINY_COUNTER.frame_factor)
    read_back = sum(len(t.get("observation") or "") for t in tool_outputs(row))
    return {
        "task_id": row["task_id"], "family": row["family"], "difficulty": row.get("difficulty"),
        "correct": bool(row["correct"]), "accuracy": float(row["accuracy"]), "end_reason": row.get("end_reason"),
        "frames_shown": int(row["images_shown"]), "tool_calls": int(row["tool_calls"]), "turns": int(row["turns"]),
        "tool_output_chars": read_back,
        "tokens": int(row["visual_tokens"]),
        "full_video_tokens": int(row["visual_tokens_full_video"]) if row.get("visual_tokens_full_video") is not None else None,
        "tiny_tokens": None if sizes is None else sum(TINY_COUNTER.image(w, h) for w, h in sizes),
        "tiny_full_video_tokens": sampled * TINY_COUNTER.image(video.width, video.height),
    }


def _mean(values: Sequence[float | None]) -> float | None:
    got = [float(v) for v in values if v is not None]
    return sum(got) / len(got) if got and len(got) == len(values) else None


def _ratio(num: Sequence[int | None], den: Sequence[int | None]) -> float | None:
    if not num or any(v is None for v in (*num, *den)) or not sum(den):  # type: ignore[arg-type]
        return None
    return sum(num) / sum(den)  # type: ignore[arg-type]


def aggregate(costs: Sequence[dict[str, Any]], n_tasks: int) -> dict[str, Any]:
    """Accuracy over ``n_tasks`` (a task without an episode counts as wrong, as in the run
    summaries) with its Wilson 95% interval, and per-episode means over the episodes run."""
    acc = sum(c["accuracy"] for c in costs)
    lo, hi = wilson_interval(acc, n_tasks)
    return {
        "episodes": n_tasks, "completed": len(costs), "correct": sum(c["correct"] for c in costs),
        "accuracy": acc / n_tasks if n_tasks else 0.0, "ci95": [lo, hi],
        "tokens_per_episode": _mean([c["tokens"] for c in costs]),
        "full_video_tokens_per_episode": _mean([c["full_video_tokens"] for c in costs]),
        "ratio_to_full_video": _ratio([c["tokens"] for c in costs], [c["full_video_tokens"] for c in costs]),
        "frames_shown_per_episode": _mean([c["frames_shown"] for c in costs]),
        "tool_calls_per_episode": _mean([c["tool_calls"] for c in costs]),
        "tool_output_chars_per_episode": _mean([c["tool_output_chars"] for c in costs]),
        "tiny_tokens_per_episode": _mean([c["tiny_tokens"] for c in costs]),
        "tiny_full_video_tokens_per_episode": _mean([c["tiny_full_video_tokens"] for c in costs]),
        "tiny_ratio_to_full_video": _ratio([c["tiny_tokens"] for c in costs], [c["tiny_full_video_tokens"] for c in costs]),
    }


# ---------------------------------------------------------------------- a whole measurement
def run_dir_name(spec: str) -> str:
    """A folder name for an agent spec (``vlm:hf:/a/b`` -> ``vlm_hf__a_b``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", spec).strip("_") or "agent"


def machine() -> dict[str, Any]:
    """What the measurement ran on: CPU model and count, OS, Python."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "os": f"{platform.system()} {platform.release()}", "python": platform.python_version()}


def _agent_result(spec: str, summary: dict[str, Any], run_dir: Path, suite: Suite, n: int, videos: dict[str, VideoFacts]) -> dict[str, Any]:
    rows = {r["task_id"]: r for r in read_rows(run_dir / "episodes.jsonl")}
    entries = suite.tasks[:n]
    costs = [episode_costs(rows[e["task_id"]], run_dir, videos[e["task_id"]]) for e in entries if e["task_id"] in rows]
    per_family = {}
    for fam in sorted({e["family"] for e in entries}):
        per_family[fam] = aggregate([c for c in costs if c["family"] == fam], sum(e["family"] == fam for e in entries))
    return {
        "spec": spec, "agent": summary.get("agent"), "run_dir": str(run_dir),
        "overall": aggregate(costs, len(entries)), "per_family": per_family, "episodes": costs,
    }


def measure(
    agents: Sequence[str] = DEFAULT_AGENTS,
    suite: str | os.PathLike[str] = "pvbench-video-v0",
    runs_dir: str | os.PathLike[str] = "runs/video_tokens",
    episodes: int | None = None,
    workers: int = 1,
    batch_size: int = 4,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run every agent on the suite's first ``episodes`` tasks (all by default) and measure both sides."""
    if not agents:
        raise ValueError("give at least one agent spec")
    if len(set(agents)) != len(agents):
        raise ValueError(f"agent specs repeat: {list(agents)}")
    loaded = load_suite(suite)
    if loaded.modality != "video":
        raise ValueError(f"suite {loaded.name!r} is a {loaded.modality} suite; this benchmark needs a video suite")
    if episodes is not None and episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    n = min(episodes or len(loaded.tasks), len(loaded.tasks))
    videos = suite_videos(loaded, n, cache_dir)
    started = dt.datetime.now(dt.timezone.utc)
    results = {}
    for spec in agents:
        run_dir = Path(runs_dir) / run_dir_name(spec)
        summary = run_eval(spec, loaded, run_dir, episodes=n, workers=workers, batch_size=batch_size,
                           cache_dir=cache_dir, progress=progress)
        results[spec] = _agent_result(spec, summary, run_dir, loaded, n, videos)
    return {
        "benchmark": "video_tokens",
        "suite": {"name": loaded.name, "version": loaded.version, "hash": loaded.hash, "tasks": n},
        "measured": {"date": started.strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
                     "seconds": round((dt.datetime.now(dt.timezone.utc) - started).total_seconds(), 1)},
        "counters": {"qwen2.5-vl": asdict(QWEN_COUNTER), "tiny": asdict(TINY_COUNTER)},
        "videos": {k: asdict(v) for k, v in videos.items()},
        "agents": results,
    }


# ---------------------------------------------------------------------- output
def _num(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def _acc(block: dict[str, Any]) -> str:
    lo, hi = block["ci95"]
    return f"{block['accuracy']:.1%} [{lo:.1%}, {hi:.1%}]"


def _row(name: str, b: dict[str, Any]) -> str:
    cells = [name, str(b["episodes"]), _acc(b), _num(b["tokens_per_episode"]), _num(b["full_video_tokens_per_episode"]),
             _num(b["ratio_to_full_video"], 2), _num(b["frames_shown_per_episode"], 1), _num(b["tool_calls_per_episode"], 1),
             _num(b["tool_output_chars_per_episode"]), _num(b["tiny_tokens_per_episode"]), _num(b["tiny_full_video_tokens_per_episode"])]
    return "| " + " | ".join(cells) + " |"


_HEADER = ("| {first} | episodes | accuracy [95% CI] | visual tokens / ep (shown) | full-video tokens / ep (Qwen2.5-VL) "
           "| ratio | frames shown / ep | tool calls / ep | tool-output chars / ep | tiny: shown / ep | tiny: full video / ep |\n"
           "|---|---|---|---|---|---|---|---|---|---|---|")


def render_tables(result: dict[str, Any]) -> str:
    """Markdown: one overall row per agent, then each agent's per-family table."""
    agents = result["agents"]
    parts = [_HEADER.format(first="agent"), *(_row(f"`{s}`", a["overall"]) for s, a in agents.items())]
    for spec, a in agents.items():
        parts += ["", f"`{spec}` per family:", "", _HEADER.format(first="family")]
        parts += [_row(f"`{fam}`", b) for fam, b in a["per_family"].items()]
        parts.append(_row("**all**", a["overall"]))
    return "\n".join(parts)


def plot(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Accuracy (Wilson 95% bars) against visual tokens per episode: one point per agent (the
    frames it showed), and the whole-video cost of Qwen2.5-VL and of the tiny model as lines."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from pyvision_gym.evaluation.plot_labels import PointLabel, marker_box, place_labels

    fig = Figure(figsize=(7.5, 4.6), dpi=130)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#7f7f7f", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
    points = []
    for k, (spec, a) in enumerate(result["agents"].items()):
        b = a["overall"]
        x, y = b["tokens_per_episode"] or 0.0, b["accuracy"]
        lo, hi = b["ci95"]
        ax.errorbar([x], [y], yerr=[[y - lo], [hi - y]], fmt="o", ms=7, capsize=4, color=colours[k % len(colours)])
        points.append(PointLabel(x, y, f"{spec}: {x:,.0f} tok, {y:.0%}"))
    fulls = [a["overall"]["full_video_tokens_per_episode"] for a in result["agents"].values()]
    tinies = [a["overall"]["tiny_full_video_tokens_per_episode"] for a in result["agents"].values()]
    lines = [(fulls[0], "-.", "whole video, Qwen2.5-VL video input at 2 fps (accuracy: needs a real VLM)"),
             (tinies[0], ":", "whole video, tiny model (2-fps frames as images)")]
    for xv, style, label in lines:
        if xv is not None:
            ax.axvline(xv, color="black", ls=style, lw=1.2, label=f"{label}: {xv:,.0f} tok/ep")
    xmax = max([p.x for p in points] + [v for v, _, _ in lines if v is not None] + [1.0])
    ax.set_xlim(-0.05 * xmax, 1.12 * xmax)
    ax.set_ylim(-0.05, 1.08)
    ax.set_xlabel("visual tokens per episode (mean)")
    ax.set_ylabel("accuracy (Wilson 95% interval)")
    s = result["suite"]
    ax.set_title(f"{s['name']} ({s['tasks']} tasks): accuracy against visual tokens", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", fontsize=7.5, framealpha=0.9)
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    legend_box = ax.get_legend().get_window_extent(renderer)
    place_labels(ax, renderer, points, obstacles=[legend_box, *(marker_box(ax, p.x, p.y, 5.0) for p in points)])
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pyvision_gym.benchmarks.video_tokens", description=__doc__.splitlines()[0])
    ap.add_argument("--agent", action="append", dest="agents", metavar="SPEC",
                    help=f"an agent spec, repeatable (default: {', '.join(DEFAULT_AGENTS)})")
    ap.add_argument("--suite", default="pvbench-video-v0", help="a frozen video suite: name or file")
    ap.add_argument("--episodes", type=int, default=None, help="only the suite's first N tasks")
    ap.add_argument("--runs-dir", type=Path, default=Path("runs/video_tokens"), help="run folders, one per agent (resumable)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=4, help="concurrent episodes per worker")
    ap.add_argument("--cache-dir", default=None, help="generated media (default: the environment's cache)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/video_tokens.json"))
    ap.add_argument("--plot", type=Path, default=None, help="the PNG (default: --out with .png)")
    ap.add_argument("--no-progress", action="store_true")
    return ap


def to_json(result: dict[str, Any]) -> str:
    """The result as indented JSON, with each episode on one line."""
    shallow = {**result, "agents": {s: {**a, "episodes": f"@@episodes:{s}@@"} for s, a in result["agents"].items()}}
    text = json.dumps(shallow, indent=2)
    for spec, a in result["agents"].items():
        rows = ",\n        ".join(json.dumps(c) for c in a["episodes"])
        text = text.replace(json.dumps(f"@@episodes:{spec}@@"), f"[\n        {rows}\n      ]" if rows else "[]")
    return text + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result = measure(args.agents or DEFAULT_AGENTS, args.suite, args.runs_dir, args.episodes, args.workers,
                     args.batch_size, args.cache_dir, progress=not args.no_progress)
    table = render_tables(result)
    result["markdown"] = table
    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = plot(result, args.plot or args.out.with_suffix(".png"))
    result["plot"] = str(png)
    args.out.write_text(to_json(result))
    print(table)
    print(f"\nwrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
