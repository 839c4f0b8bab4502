"""Point labels that never overlap, for the leaderboard's scatter plot.

Each label is tried at candidate spots around its point (right, left, farther out, stacked
above and below with a thin leader line) and measured as rendered: its text box in display
pixels, from the figure's renderer. A spot is allowed only when that box lies inside the axes,
clear of every marker, fixed text and earlier label, and when its leader line crosses no
earlier label (nor an earlier leader line its box). Among the allowed spots the cheapest wins:
near and to the right is cheap; covering an error bar (soft obstacles: the label has a white
backing, so it stays readable) or crossing another leader line costs extra. Points that coincide
on screen share one label, one agent per line. A label with no allowed spot is left out; the
plot's legend still names its agent by colour.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backend_bases import RendererBase
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

__all__ = ["LABEL_GID", "PointLabel", "marker_box", "merge_coincident", "place_labels"]

LABEL_GID = "agent-label"
_PAD_PX = 2.0  # clearance kept around every box
_LEADER_PT = 11.0  # offsets farther than this get a leader line
_DY_STEP_PT = 5.0
_DY_MAX_PT = 120.0
# (dx in points, preference cost): right of the point first, then left, centred, farther out.
_DX_CHOICES = ((8.0, 0.0), (-8.0, 2.0), (0.0, 6.0), (24.0, 16.0), (-24.0, 18.0), (60.0, 40.0), (-60.0, 42.0))
_SOFT_COST = 30.0  # per error bar a label covers
_CROSS_COST = 25.0  # per leader line crossing another

Segment = tuple[tuple[float, float], tuple[float, float]]


@dataclass(frozen=True)
class PointLabel:
    """A label for the point ``(x, y)`` (data coordinates)."""

    x: float
    y: float
    text: str


def _pt_to_px(ax: Axes, pt: float) -> float:
    return pt * ax.figure.dpi / 72.0


def marker_box(ax: Axes, x: float, y: float, radius_pt: float) -> Bbox:
    """The display box of a round marker of ``radius_pt`` points at data ``(x, y)``."""
    px, py = ax.transData.transform((x, y))
    r = _pt_to_px(ax, radius_pt)
    return Bbox.from_extents(px - r, py - r, px + r, py + r)


def merge_coincident(ax: Axes, labels: Sequence[PointLabel], tol_px: float = 3.0) -> list[PointLabel]:
    """Labels of points that fall within ``tol_px`` of each other on screen joined into one
    (one text per line, in the given order), at the first point's place."""
    groups: list[tuple[tuple[float, float], PointLabel, list[str]]] = []
    for lab in labels:
        pos = tuple(ax.transData.transform((lab.x, lab.y)))
        for gpos, _first, texts in groups:
            if math.dist(gpos, pos) <= tol_px:
                texts.append(lab.text)
                break
        else:
            groups.append((pos, lab, [lab.text]))
    return [PointLabel(first.x, first.y, "\n".join(texts)) for _pos, first, texts in groups]


def _candidates() -> list[tuple[float, float, float]]:
    """Label offsets ``(cost, dx, dy)`` in points, cheapest first."""
    steps = int(_DY_MAX_PT / _DY_STEP_PT)
    offsets = [(cost + abs(k) * _DY_STEP_PT, dx, k * _DY_STEP_PT) for dx, cost in _DX_CHOICES for k in range(-steps, steps + 1)]
    return sorted(offsets, key=lambda c: (c[0], -c[2]))


def _inside(box: Bbox, bounds: Bbox) -> bool:
    return box.x0 >= bounds.x0 and box.x1 <= bounds.x1 and box.y0 >= bounds.y0 and box.y1 <= bounds.y1


def _hits(box: Bbox, others: Sequence[Bbox]) -> int:
    grown = box.padded(_PAD_PX)
    return sum(grown.overlaps(o) for o in others)


def _crosses(seg: Segment, box: Bbox, samples: int = 24) -> bool:
    """Whether the segment passes through ``box`` (sampled along its length)."""
    (x0, y0), (x1, y1) = seg
    return any(box.contains(x0 + (x1 - x0) * i / samples, y0 + (y1 - y0) * i / samples) for i in range(samples + 1))


def _segments_cross(a: Segment, b: Segment) -> bool:
    """Whether two segments properly intersect."""

    def side(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    return side(*a, b[0]) * side(*a, b[1]) < 0 and side(*b, a[0]) * side(*b, a[1]) < 0


def _candidate_box(anchor: tuple[float, float], offset_px: tuple[float, float], size: tuple[float, float]) -> Bbox:
    """The text box of a label anchored at ``anchor`` + ``offset_px``: left-aligned when the offset
    points right, right-aligned when it points left, centred when straight up or down."""
    (ax_, ay), (dx, dy), (w, h) = anchor, offset_px, size
    x0 = ax_ + dx if dx > 0 else (ax_ + dx - w if dx < 0 else ax_ - w / 2)
    return Bbox.from_extents(x0, ay + dy - h / 2, x0 + w, ay + dy + h / 2)


def _leader(anchor: tuple[float, float], box: Bbox, dx: float) -> Segment:
    """The leader line from the label's near edge to its point."""
    if dx == 0:
        edge = (anchor[0], box.y0 if box.y0 > anchor[1] else box.y1)
    else:
        edge = (box.x0 if dx > 0 else box.x1, (box.y0 + box.y1) / 2)
    return edge, anchor


def _annotate(ax: Axes, lab: PointLabel, offset: tuple[float, float], leader: bool, fontsize: float) -> Annotation:
    arrow = {"arrowstyle": "-", "color": "#8c959f", "lw": 0.6, "shrinkA": 1, "shrinkB": 4} if leader else None
    return ax.annotate(
        lab.text,
        (lab.x, lab.y),
        xytext=offset,
        textcoords="offset points",
        ha="left" if offset[0] > 0 else ("right" if offset[0] < 0 else "center"),
        va="center",
        fontsize=fontsize,
        color="#24292f",
        arrowprops=arrow,
        bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.85},
        gid=LABEL_GID,
        annotation_clip=False,
        zorder=4,
    )


@dataclass
class _Layout:
    """What the labels placed so far take up."""

    bounds: Bbox
    hard: list[Bbox]
    soft: list[Bbox]
    placed: list[Bbox]
    leaders: list[Segment]

    def cost(self, box: Bbox, seg: Segment | None) -> float | None:
        """The extra cost of a label box with its leader line, or None when it is not allowed."""
        if not _inside(box, self.bounds) or _hits(box, self.hard):
            return None
        if seg is not None and any(_crosses(seg, p.padded(_PAD_PX)) for p in self.placed):
            return None
        if any(_crosses(s, box.padded(_PAD_PX)) for s in self.leaders):
            return None
        crossings = sum(_segments_cross(seg, s) for s in self.leaders) if seg is not None else 0
        return _SOFT_COST * _hits(box, self.soft) + _CROSS_COST * crossings

    def take(self, box: Bbox, seg: Segment | None) -> None:
        self.hard.append(box)
        self.placed.append(box)
        if seg is not None:
            self.leaders.append(seg)


def _best_spot(ax: Axes, layout: _Layout, anchor: tuple[float, float], size: tuple[float, float]) -> tuple[float, float, Bbox, Segment | None] | None:
    """The cheapest allowed ``(dx, dy, box, leader)`` for a label of ``size`` pixels at ``anchor``."""
    best: tuple[float, float, float, Bbox, Segment | None] | None = None
    for base, dx, dy in _candidates():
        if best is not None and best[0] <= base:
            break  # candidates come cheapest first: nothing later can win
        box = _candidate_box(anchor, (_pt_to_px(ax, dx), _pt_to_px(ax, dy)), size)
        seg = _leader(anchor, box, dx) if math.hypot(dx, dy) > _LEADER_PT else None
        extra = layout.cost(box, seg)
        if extra is not None and (best is None or base + extra < best[0]):
            best = (base + extra, dx, dy, box, seg)
    return None if best is None else best[1:]


def place_labels(
    ax: Axes,
    renderer: RendererBase,
    labels: Sequence[PointLabel],
    obstacles: Sequence[Bbox] = (),
    soft: Sequence[Bbox] = (),
    fontsize: float = 8.5,
) -> list[str]:
    """Annotate each point (in the given order, so earlier ones get the better spots) at its
    cheapest allowed spot; return the texts of labels that found none. ``obstacles`` may not be
    covered, ``soft`` ones (error bars) only at a cost. The figure's layout must be final."""
    layout = _Layout(ax.get_window_extent(renderer).padded(-_PAD_PX), list(obstacles), list(soft), [], [])
    left_out = []
    for lab in labels:
        probe = _annotate(ax, lab, (0.0, 0.0), False, fontsize)
        ext = Text.get_window_extent(probe, renderer)
        probe.remove()
        anchor = tuple(ax.transData.transform((lab.x, lab.y)))
        spot = _best_spot(ax, layout, anchor, (ext.width, ext.height))
        if spot is None:
            left_out.append(lab.text)
            continue
        dx, dy, box, seg = spot
        _annotate(ax, lab, (dx, dy), seg is not None, fontsize)
        layout.take(box, seg)
    return left_out
