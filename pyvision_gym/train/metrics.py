"""Training metrics: per-step numbers to the console, ``metrics.jsonl`` and TensorBoard, and a
plot of reward, accuracy and tool calls per step at the end."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from .trajectory import Trajectory

CONSOLE_KEYS = ("reward/mean", "accuracy/mean", "tools/calls_mean", "tools/zero_share", "learner/loss",
                "learner/grad_norm", "time/step_s")


def episode_metrics(trajs: Sequence[Trajectory], max_turns: int, prefix: str = "") -> dict[str, float]:
    """Reward (and its terms), accuracy, tool use, turns, lengths and end reasons of episodes."""
    if not trajs:
        return {}
    rewards = np.array([t.reward for t in trajs], dtype=np.float64)
    calls = np.array([t.tool_calls for t in trajs], dtype=np.float64)
    out: dict[str, float] = {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()),
        "accuracy/mean": float(np.mean([t.accuracy for t in trajs])),
        "accuracy/correct_share": float(np.mean([t.correct for t in trajs])),
        "tools/calls_mean": float(calls.mean()),
        "tools/zero_share": float((calls == 0).mean()),
        "tools/at_turn_limit_share": float(np.mean([t.turns >= max_turns for t in trajs])),
        "tools/errors_mean": float(np.mean([t.tool_errors for t in trajs])),
        "episode/turns_mean": float(np.mean([t.turns for t in trajs])),
        "episode/response_tokens_mean": float(np.mean([t.response_tokens for t in trajs])),
        "episode/length_mean": float(np.mean([t.length for t in trajs])),
        "episode/images_shown_mean": float(np.mean([t.images_shown for t in trajs])),
    }
    terms = Counter[str]()
    for t in trajs:
        terms.update(t.reward_terms)
    out.update({f"reward/{k}": v / len(trajs) for k, v in terms.items()})
    reasons = Counter(str(t.end_reason) for t in trajs)
    out.update({f"end_reason/{k}": n / len(trajs) for k, n in sorted(reasons.items())})
    return {f"{prefix}{k}": v for k, v in out.items()}


class MetricsLog:
    """Writes each step's metrics to ``metrics.jsonl``, TensorBoard (``tensorboard/``) and the console."""

    def __init__(self, out_dir: Path, resume: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / "metrics.jsonl"
        if not resume and self.path.exists():
            self.path.unlink()
        self.writer = SummaryWriter(str(self.out_dir / "tensorboard"))

    def log(self, step: int, metrics: dict[str, Any], phase: str = "train") -> None:
        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(float(v))}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, "phase": phase, **clean}) + "\n")
        for key, value in clean.items():
            self.writer.add_scalar(f"{phase}/{key}", value, step)
        self.writer.flush()
        shown = "  ".join(f"{k.split('/')[-1]}={clean[k]:.3g}" for k in CONSOLE_KEYS if k in clean)
        tqdm.write(f"[{phase} {step:>4}] {shown or ', '.join(f'{k}={v:.3g}' for k, v in list(clean.items())[:6])}")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def close(self) -> None:
        self.writer.close()


PLOTS = (("reward/mean", "reward"), ("accuracy/mean", "accuracy"), ("tools/calls_mean", "tool calls / episode"),
         ("tools/zero_share", "share without tool calls"))


def plot_curves(rows: list[dict[str, Any]], path: Path) -> Path:
    """Reward, accuracy and tool use per step (training rollouts, and validation points)."""
    fig = Figure(figsize=(10, 6.5), constrained_layout=True)
    axes = fig.subplots(2, 2).ravel()
    for ax, (key, title) in zip(axes, PLOTS, strict=True):
        for phase, style in (("train", "-o"), ("val", "s--")):
            pts = [(r["step"], r[key]) for r in rows if r.get("phase") == phase and key in r]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, style, markersize=3, label=phase)
        ax.set_title(title)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
