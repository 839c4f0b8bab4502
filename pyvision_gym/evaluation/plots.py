"""The leaderboard's plots, as base64 PNG: accuracy per family, accuracy against visual tokens.

Every plot colours an agent with its run's ``color`` (one map over all suites, see
:func:`pyvision_gym.evaluation.board.agent_colors`) and names the colours in a legend below
the axes, so an agent looks the same on the image and the video suites. No two texts overlap:
tick labels are rewrapped or slanted until they fit, the legend takes as many columns as the
figure's width allows, and the scatter's point labels are placed by
:mod:`pyvision_gym.evaluation.plot_labels`. ``family_figure`` and ``token_figure`` return the
laid-out figures (for tests); ``family_plot`` and ``token_plot`` their PNGs.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import Bbox

from .board import RunEntry, SuiteBoard, ci_bounds
from .plot_labels import PointLabel, marker_box, merge_coincident, place_labels

__all__ = ["NOTE_GID", "family_figure", "family_plot", "same_tokens", "short_label", "token_figure", "token_plot"]

DPI = 110
NOTE_GID = "token-note"
_MARKER_RADIUS_PT = 4.6  # ms=8 plus the white edge
_TICK_WRAPS = (14, 10, 7)


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def short_label(label: str, n: int = 40) -> str:
    """``label`` cut in the middle to ``n`` characters (model specs differ at both ends)."""
    if len(label) <= n:
        return label
    head = (n - 1) // 3
    return label[:head] + "…" + label[len(label) - (n - 1 - head) :]


def _new_figure(width: float, height: float) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def _renderer(fig: Figure) -> RendererBase:
    """Lay the figure out and draw it; the renderer to measure its texts with."""
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _any_overlap(boxes: Sequence[Bbox]) -> bool:
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def _agent_legend(fig: Figure, runs: Sequence[RunEntry]) -> None:
    """A legend of the agents' colours below the axes, with as many columns (up to 4) as fit."""
    handles = [Patch(facecolor=r.color, label=short_label(r.label)) for r in runs]
    for ncol in range(min(4, len(handles)), 0, -1):
        legend = fig.legend(handles=handles, loc="outside lower center", ncol=ncol, fontsize=8, frameon=False)
        if ncol == 1 or legend.get_window_extent(_renderer(fig)).width <= fig.bbox.width - 8:
            return
        legend.remove()


def _freeze(fig: Figure) -> RendererBase:
    """Draw the figure once and keep its layout from then on; the renderer."""
    renderer = _renderer(fig)
    fig.set_layout_engine("none")
    return renderer


# ----------------------------------------------------------------------------- accuracy per family


def _fit_ticklabels(fig: Figure, ax: Axes, groups: Sequence[str]) -> None:
    """Wrap the family names narrower, then slant them, until no two tick labels overlap."""
    for width in _TICK_WRAPS:
        ax.set_xticklabels([textwrap.fill(g.replace("_", " "), width) for g in groups], fontsize=8.5)
        renderer = _renderer(fig)
        if not _any_overlap([t.get_window_extent(renderer) for t in ax.get_xticklabels()]):
            return
    ax.set_xticklabels([g.replace("_", " ") for g in groups], fontsize=8.5, rotation=35, ha="right", rotation_mode="anchor")


def family_figure(board: SuiteBoard) -> Figure:
    """Grouped bars: accuracy per family (and overall) per agent, CI whiskers where known."""
    groups = ["overall", *board.families]
    n_agents = len(board.runs)
    width = 0.8 / max(n_agents, 1)
    fig, ax = _new_figure(max(6.5, 1.0 + len(groups) * (0.35 + 0.16 * n_agents)), 3.9 + 0.12 * math.ceil(n_agents / 4))
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
        ax.bar(xs, ys, width * 0.92, color=r.color, zorder=2)
        if any(lo) or any(hi):
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="none", ecolor="#333333", elinewidth=0.9, capsize=2.5, zorder=3)
    ax.set_xticks(range(len(groups)))
    ax.set_ylim(0, 105)
    ax.set_xlim(-0.5, len(groups) - 0.5)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy per family (95% CI)", fontsize=11)
    ax.grid(axis="y", color="#e3e6ea", zorder=0)
    ax.spines[["top", "right"]].set_visible(False)
    ax.axvline(0.5, color="#c9ced4", lw=0.8, ls=":")
    _fit_ticklabels(fig, ax, groups)
    _agent_legend(fig, board.runs)
    _freeze(fig)
    return fig


def family_plot(board: SuiteBoard) -> str:
    """:func:`family_figure` as a base64 PNG."""
    return _png(family_figure(board))


# ----------------------------------------------------------------------------- accuracy against tokens


def _tick(x: float, _pos: int | None = None) -> str:
    """Axis label for a token count: 200, 5k, 1.5M."""
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if x >= div:
            return f"{x / div:g}{suffix}"
    return f"{x:g}"


def same_tokens(board: SuiteBoard) -> float | None:
    """The visual tokens per episode when two or more agents report them and all spent the same
    (the token axis then tells nothing apart), else None."""
    tokens = [t for r in board.runs if (t := r.number("visual_tokens")) is not None]
    if len(tokens) < 2 or any(not math.isclose(t, tokens[0], rel_tol=1e-9, abs_tol=1e-9) for t in tokens):
        return None
    return tokens[0]


@dataclass
class _Point:
    """One agent's point: tokens (0 drawn at 1), accuracy and CI in %, marker size."""

    run: RunEntry
    x: float
    y: float
    ci: tuple[float, float] | None
    zero: bool
    ms: float = 8.0

    @property
    def label(self) -> PointLabel:
        return PointLabel(self.x, self.y, short_label(self.run.label, 32) + (" (0 tokens)" if self.zero else ""))


def _collect_points(runs: Sequence[RunEntry]) -> list[_Point]:
    """The agents that report visual tokens, in rank order. Agents on the very same spot are
    drawn as concentric rings (the better-ranked one outermost) so that every colour shows."""
    points = []
    for r in runs:
        tokens = r.number("visual_tokens")
        if tokens is None:
            continue
        ci = ci_bounds(r.overall)
        points.append(_Point(r, tokens if tokens > 0 else 1.0, r.accuracy * 100, (ci[0] * 100, ci[1] * 100) if ci else None, tokens <= 0))
    for p in points:
        same = [q for q in points if math.isclose(q.x, p.x) and math.isclose(q.y, p.y)]
        p.ms = 8.0 + 4.0 * (len(same) - 1 - same.index(p))
    return points


def _draw_points(ax: Axes, points: Sequence[_Point]) -> None:
    for p in points:
        yerr = [[max(0.0, p.y - p.ci[0])], [max(0.0, p.ci[1] - p.y)]] if p.ci else None
        ax.errorbar([p.x], [p.y], yerr=yerr, fmt="o", color=p.run.color, ms=p.ms, mec="white", mew=1.2, elinewidth=1, capsize=3, zorder=3)


def _whisker_boxes(ax: Axes, points: Sequence[_Point]) -> list[Bbox]:
    """The display boxes the CI whiskers take."""
    boxes = []
    cap = 3.0 * DPI / 72
    for p in points:
        if p.ci:
            (px, lo), (_, hi) = ax.transData.transform([(p.x, p.ci[0]), (p.x, p.ci[1])])
            boxes.append(Bbox.from_extents(px - cap, lo - 1, px + cap, hi + 1))
    return boxes


def _full_video_tokens(runs: Sequence[RunEntry]) -> float | None:
    """The median whole-video token cost over the runs (video suites), or None."""
    full = sorted(v for r in runs if (v := r.number("full_video_tokens")) is not None and v > 0)
    return full[len(full) // 2] if full else None


def _place_caption(ax: Axes, renderer: RendererBase, ref: float, obstacles: list[Bbox], whiskers: Sequence[Bbox]) -> None:
    """Caption the whole-video line on the first side of it (left or right, bottom or top) where
    it meets no marker, whisker or note; its box joins ``obstacles``."""
    bounds = ax.get_window_extent(renderer)
    variants = ((-4, 0.02, "right", "bottom"), (4, 0.02, "left", "bottom"), (-4, 0.98, "right", "top"), (4, 0.98, "left", "top"))
    for i, (dx, y, ha, va) in enumerate(variants):
        text = ax.annotate(
            "whole video (2 fps)", (ref, y), xycoords=("data", "axes fraction"), xytext=(dx, 0), textcoords="offset points",
            rotation=90, ha=ha, va=va, fontsize=8, color="#59636e",
        )
        box = text.get_window_extent(renderer)
        fits = bounds.contains(box.x0, box.y0) and bounds.contains(box.x1, box.y1)
        if (fits and not any(box.overlaps(o) for o in [*obstacles, *whiskers])) or i == len(variants) - 1:
            obstacles.append(box)
            return
        text.remove()


def _same_tokens_note(ax: Axes, tokens: float) -> None:
    """The boxed note across the top of the axes (kept clear of the data by the y limit)."""
    ax.text(
        0.5, 0.975, f"every agent spent {tokens:,.0f} visual tokens per episode", transform=ax.transAxes,
        ha="center", va="top", fontsize=8.5, color="#24292f", gid=NOTE_GID,
        bbox={"boxstyle": "round,pad=0.35", "facecolor": "#fff8c5", "edgecolor": "#d4a72c", "lw": 0.8},
    )


def _set_token_axes(ax: Axes, xs: Sequence[float], zero: bool, note: bool) -> None:
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(1, 10))))
    ax.xaxis.set_major_formatter(FuncFormatter(_tick))
    ax.xaxis.set_minor_formatter(NullFormatter())
    if xs:
        ax.set_xlim(min(xs) / 2.5, max(xs) * 4)
    ax.set_ylim(-4, 118 if note else 105)  # points at 0% show whole
    ax.set_yticks(range(0, 101, 20))
    ax.set_xlabel("mean visual tokens per episode (log)" + ("; 0 plotted at 1" if zero else ""))
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Accuracy vs visual tokens", fontsize=11)
    ax.grid(color="#e3e6ea", which="major", zorder=0)
    ax.spines[["top", "right"]].set_visible(False)


def token_figure(board: SuiteBoard) -> Figure:
    """Scatter: overall accuracy against mean visual tokens (log x), one labelled point per agent;
    on video suites a dashed line marks what ingesting the whole video would cost.

    When every agent spent the same visual tokens (:func:`same_tokens`), the plot is kept, so
    every suite shows the same two plots and a video suite keeps its whole-video reference,
    but it says so in a boxed note across its top ("every agent spent N visual tokens per
    episode"): the points then differ in accuracy only.
    """
    fig, ax = _new_figure(6.5, 3.9 + 0.12 * math.ceil(len(board.runs) / 4))
    points = _collect_points(board.runs)
    _draw_points(ax, points)
    xs = [p.x for p in points]
    ref = _full_video_tokens(board.runs)
    if ref is not None:
        ax.axvline(ref, color="#8c959f", ls="--", lw=1)
        xs.append(ref)
    tokens = same_tokens(board)
    if tokens is not None:
        _same_tokens_note(ax, tokens)
    _set_token_axes(ax, xs, any(p.zero for p in points), tokens is not None)
    _agent_legend(fig, board.runs)
    renderer = _freeze(fig)
    obstacles = [marker_box(ax, p.x, p.y, p.ms / 2 + 0.6) for p in points]
    whiskers = _whisker_boxes(ax, points)
    for t in ax.texts:  # the note, with its box
        patch = t.get_bbox_patch()
        box = t.get_window_extent(renderer)
        obstacles.append(Bbox.union([box, patch.get_window_extent(renderer)]) if patch is not None else box)
    if ref is not None:
        _place_caption(ax, renderer, ref, obstacles, whiskers)
    place_labels(ax, renderer, merge_coincident(ax, [p.label for p in points]), obstacles, whiskers)
    return fig


def token_plot(board: SuiteBoard) -> str:
    """:func:`token_figure` as a base64 PNG."""
    return _png(token_figure(board))
