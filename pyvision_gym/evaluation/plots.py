"""The leaderboard's plots, as base64 PNG: accuracy per family, accuracy against visual tokens."""

from __future__ import annotations

import base64
import io
import textwrap
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .board import SuiteBoard, ci_bounds

__all__ = ["family_plot", "token_plot"]


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _short(label: str, n: int = 40) -> str:
    """``label`` cut in the middle to ``n`` characters (model specs differ at both ends)."""
    if len(label) <= n:
        return label
    head = (n - 1) // 3
    return label[:head] + "…" + label[len(label) - (n - 1 - head) :]


def family_plot(board: SuiteBoard) -> str:
    """Grouped bars: accuracy per family (and overall) per agent, CI whiskers where known."""
    groups = ["overall", *board.families]
    n_agents = len(board.runs)
    width = 0.8 / max(n_agents, 1)
    fig = Figure(figsize=(max(6.5, 1.0 + len(groups) * (0.35 + 0.16 * n_agents)), 3.9))
    ax = fig.subplots()
    for i, r in enumerate(board.runs):
        xs, ys, lo, hi = [], [], [], []
        for g, name in enumerate(groups):
            stats = r.overall if name == "overall" else r.family(name)
            if not stats:
                continue
            mean = float(stats["mean"])
            ci = ci_bounds(stats)
            xs.append(g - 0.4 + width * (i + 0.5))
            ys.append(mean * 100)
            lo.append(max(0.0, mean - ci[0]) * 100 if ci else 0.0)
            hi.append(max(0.0, ci[1] - mean) * 100 if ci else 0.0)
        ax.bar(xs, ys, width * 0.92, color=r.color, label=_short(r.label), zorder=2)
        if any(lo) or any(hi):
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="#333333", elinewidth=0.9, capsize=2.5, zorder=3)
    ticks = [textwrap.fill(g.replace("_", " "), 14) for g in groups]
    lines = max(t.count("\n") + 1 for t in ticks)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(ticks, fontsize=8.5)
    ax.set_ylim(0, 105)
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy per family (95% CI)", fontsize=11)
    ax.grid(axis="y", color="#e3e6ea", zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    ax.axvline(0.5, color="#c9ced4", lw=0.8, ls=":")
    ax.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.06 - 0.055 * lines), ncol=min(3, n_agents))
    return _png(fig)


def _tick(x: float, _pos: int | None = None) -> str:
    """Axis label for a token count: 200, 5k, 1.5M."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:g}{suffix}"
    return f"{x:g}"


def token_plot(board: SuiteBoard) -> str:
    """Scatter: overall accuracy against mean visual tokens (log x), one labelled point per agent."""
    fig = Figure(figsize=(6.5, 3.9))
    ax = fig.subplots()
    xs = []
    zero = False
    for r in board.runs:
        tokens = r.number("visual_tokens")
        if tokens is None:
            continue
        x = tokens if tokens > 0 else 1.0
        zero = zero or tokens <= 0
        xs.append(x)
        y = r.accuracy * 100
        ci = ci_bounds(r.overall)
        yerr = [[max(0.0, r.accuracy - ci[0]) * 100], [max(0.0, ci[1] - r.accuracy) * 100]] if ci else None
        ax.errorbar([x], [y], yerr=yerr, fmt="o", color=r.color, ms=8, mec="white", mew=1.2, elinewidth=1, capsize=3, zorder=3)
        ax.annotate(
            _short(r.label, 32) + (" (0 tokens)" if tokens <= 0 else ""),
            (x, y),
            xytext=(7, 5),
            textcoords="offset points",
            fontsize=8.5,
            color="#24292f",
        )
    full = [v for r in board.runs if (v := r.number("full_video_tokens")) is not None and v > 0]
    if full:
        ref = sorted(full)[len(full) // 2]
        xs.append(ref)
        ax.axvline(ref, color="#8c959f", ls="--", lw=1)
        ax.annotate("whole video (2 fps)", (ref, 3), xytext=(-4, 0), textcoords="offset points", rotation=90, ha="right", va="bottom", fontsize=8, color="#59636e")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    ax.xaxis.set_major_formatter(FuncFormatter(_tick))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if xs:
        lo, hi = min(xs), max(xs)
        ax.set_xlim(lo / 2.5, hi * 4)
    ax.set_ylim(0, 105)
    ax.set_xlabel("mean visual tokens per episode (log)" + ("; 0 plotted at 1" if zero else ""))
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy vs visual tokens", fontsize=11)
    ax.grid(color="#e3e6ea", which="major", zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)
