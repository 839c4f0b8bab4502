"""Leaderboard over eval runs: one ranked table per frozen suite, as Markdown and static HTML.

    python -m benchmarks.leaderboard RUN_DIR... [--out DIR] [--suites-dir DIR] [--expect NAME=HASH]

Each RUN_DIR is an eval-run folder holding ``summary.json`` (or a folder of such folders).
Runs are grouped by suite name. A run whose suite hash differs from the frozen suite's
(``benchmarks/suites/<suite name>.json``, field ``"hash"``, or ``--expect`` /
``expected_hashes``) is refused with an error naming the run, its hash and the expected one;
without a frozen suite file, two runs of one suite name with different hashes are refused.
Agents are ranked by overall accuracy (ties share a rank; fewer visual tokens lists first).

Writes ``leaderboard.md`` (printed too) and ``leaderboard.html`` (self-contained: inline CSS,
plots as embedded PNG): per suite, the table plus accuracy per family (grouped bars with 95%
CI whiskers) and accuracy against mean visual tokens (log x).
"""

from __future__ import annotations

import argparse
import base64
import datetime as _dt
import io
import json
import math
import re
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyvision_gym.viewer import normalize_summary, template_environment

__all__ = [
    "DEFAULT_SUITES_DIR",
    "LeaderboardError",
    "LeaderboardResult",
    "RunEntry",
    "SuiteBoard",
    "SuiteHashMismatch",
    "build_leaderboard",
    "load_runs",
    "main",
    "render_markdown",
]

DEFAULT_SUITES_DIR = Path(__file__).with_name("suites")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PALETTE = (
    "#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860",
    "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd", "#1b9e77", "#7570b3",
)


class LeaderboardError(ValueError):
    """A run cannot be put on the leaderboard (unreadable summary, missing field, ...)."""


class SuiteHashMismatch(LeaderboardError):
    """A run was computed on a different version of its suite than the frozen one."""


@dataclass
class RunEntry:
    """One run's summary, with what the leaderboard shows of it (``stats``: normalised numbers)."""

    run_dir: Path
    summary: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    rank: int = 0
    color: str = "#4c72b0"

    def __post_init__(self) -> None:
        if not self.stats:
            self.stats = normalize_summary(self.summary)

    @property
    def suite_name(self) -> str:
        """The suite's name."""
        return str(self.summary["suite"]["name"])

    @property
    def suite_hash(self) -> str:
        """The hash of the suite the run was computed on."""
        return str(self.summary["suite"]["hash"])

    @property
    def modality(self) -> str:
        """``image`` or ``video``."""
        return str(self.summary["suite"].get("modality") or "")

    @property
    def agent(self) -> str:
        """The agent spec."""
        agent = self.summary.get("agent")
        spec = agent.get("spec") if isinstance(agent, dict) else agent
        return str(spec or "?")

    @property
    def overall(self) -> dict[str, Any]:
        """Overall accuracy: ``mean``, ``ci95`` (or None), ``n``."""
        return self.stats["overall"]

    @property
    def accuracy(self) -> float:
        """Overall mean accuracy."""
        return float(self.overall["mean"])

    def family(self, name: str) -> dict[str, Any] | None:
        """Per-family accuracy (``mean``, ``ci95``, ``n``), or None when the run has none."""
        return self.stats["per_family"].get(name)

    def number(self, key: str) -> float | None:
        """A normalised number: ``mean_turns``, ``visual_tokens``, ``full_video_tokens``, ..."""
        return self.stats.get(key)


@dataclass
class SuiteBoard:
    """The ranked runs of one suite."""

    name: str
    hash: str
    modality: str
    hash_source: str
    runs: list[RunEntry]
    families: list[str]
    notes: list[str] = field(default_factory=list)
    family_plot: str = ""
    token_plot: str = ""

    @property
    def is_video(self) -> bool:
        """Whether the suite is a video suite (adds the full-video token column)."""
        return self.modality == "video" or any(r.number("full_video_tokens") is not None for r in self.runs)


@dataclass
class LeaderboardResult:
    """What :func:`build_leaderboard` produced."""

    markdown: str
    markdown_path: Path
    html_path: Path
    suites: list[SuiteBoard]


# ----------------------------------------------------------------------------- loading


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _expand(paths: Sequence[Path]) -> list[Path]:
    """Run folders from the arguments: a run folder, its summary.json, or a folder of runs."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file() and p.name == "summary.json":
            out.append(p.parent)
        elif (p / "summary.json").is_file():
            out.append(p)
        elif p.is_dir():
            found = sorted(s.parent for s in p.rglob("summary.json"))
            if not found:
                raise LeaderboardError(f"{p}: no summary.json in this folder or below it")
            out.extend(found)
        else:
            raise LeaderboardError(f"{p}: no such run folder (expected a folder with summary.json)")
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def load_runs(run_dirs: Sequence[Path]) -> list[RunEntry]:
    """Read and check the summaries of the given runs (folders of runs are searched)."""
    runs = []
    for run_dir in _expand(run_dirs):
        path = run_dir / "summary.json"
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LeaderboardError(f"run {run_dir}: cannot read summary.json ({exc})") from exc
        if not isinstance(summary, dict):
            raise LeaderboardError(f"run {run_dir}: summary.json is not a JSON object")
        suite = summary.get("suite")
        if not isinstance(suite, dict) or not suite.get("name") or not suite.get("hash"):
            raise LeaderboardError(f"run {run_dir}: summary.json has no suite name and hash (suite.name, suite.hash)")
        entry = RunEntry(run_dir=run_dir, summary=summary)
        if entry.stats["overall"] is None:
            raise LeaderboardError(
                f"run {run_dir}: summary.json has no overall accuracy (accuracy.overall.mean or accuracy.accuracy)"
            )
        runs.append(entry)
    return runs


def _frozen_hash(name: str, suites_dir: Path) -> tuple[str | None, str]:
    """The frozen suite's hash from ``suites_dir/<name>.json`` and where it came from."""
    if not _SAFE_NAME.match(name):
        return None, "runs (suite name is not a file name)"
    path = suites_dir / f"{name}.json"
    if not path.is_file():
        return None, f"runs (no frozen suite file {path})"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LeaderboardError(f"frozen suite file {path} cannot be read ({exc})") from exc
    if not isinstance(data, dict) or not data.get("hash"):
        raise LeaderboardError(f"frozen suite file {path} has no \"hash\" field")
    return str(data["hash"]), f"frozen suite file {path}"


def _check_hashes(
    groups: dict[str, list[RunEntry]],
    expected_hashes: dict[str, str] | None,
    suites_dir: Path,
) -> dict[str, tuple[str, str]]:
    """The hash each suite must have and its source; raise on any run that differs."""
    problems: list[str] = []
    result: dict[str, tuple[str, str]] = {}
    for name, runs in groups.items():
        if expected_hashes and name in expected_hashes:
            expected, source = str(expected_hashes[name]), "expected_hashes"
        else:
            expected, source = _frozen_hash(name, suites_dir)
        if expected is not None:
            for r in runs:
                if r.suite_hash != expected:
                    problems.append(
                        f"run {r.run_dir} (agent {r.agent}) was computed on suite {name!r} with hash "
                        f"{r.suite_hash}, but the frozen suite's hash is {expected} (from {source})"
                    )
            result[name] = (expected, source)
            continue
        hashes: dict[str, list[RunEntry]] = {}
        for r in runs:
            hashes.setdefault(r.suite_hash, []).append(r)
        if len(hashes) > 1:
            listing = "; ".join(f"hash {h}: " + ", ".join(str(r.run_dir) for r in rs) for h, rs in hashes.items())
            problems.append(
                f"suite {name!r} has no frozen suite file ({suites_dir / (name + '.json')}) and its runs "
                f"were computed on different suite hashes, which cannot be compared: {listing}"
            )
            continue
        result[name] = (runs[0].suite_hash, source)
    if problems:
        raise SuiteHashMismatch("refusing to build the leaderboard:\n  - " + "\n  - ".join(problems))
    return result


def _rank(runs: list[RunEntry]) -> list[RunEntry]:
    """Sort by accuracy (desc), then visual tokens (asc), then agent; ties in accuracy share a rank."""
    def key(r: RunEntry) -> tuple[float, float, str]:
        tokens = r.number("visual_tokens")
        return (-r.accuracy, tokens if tokens is not None else math.inf, r.label)

    ordered = sorted(runs, key=key)
    for i, r in enumerate(ordered):
        if i and math.isclose(r.accuracy, ordered[i - 1].accuracy, abs_tol=1e-12):
            r.rank = ordered[i - 1].rank
        else:
            r.rank = i + 1
    return ordered


def _boards(runs: list[RunEntry], expected_hashes: dict[str, str] | None, suites_dir: Path) -> list[SuiteBoard]:
    groups: dict[str, list[RunEntry]] = {}
    for r in runs:
        groups.setdefault(r.suite_name, []).append(r)
    hashes = _check_hashes(groups, expected_hashes, suites_dir)
    boards = []
    for name in sorted(groups):
        members = groups[name]
        counts: dict[str, int] = {}
        for r in members:
            counts[r.agent] = counts.get(r.agent, 0) + 1
        for r in members:
            r.label = r.agent if counts[r.agent] == 1 else f"{r.agent} ({r.run_dir.name})"
        ranked = _rank(members)
        for i, r in enumerate(ranked):
            r.color = _PALETTE[i % len(_PALETTE)]
        families = sorted({f for r in ranked for f in r.stats["per_family"]})
        modalities = sorted({r.modality for r in ranked if r.modality})
        notes = []
        episodes = {r.label: r.stats["episodes"] for r in ranked}
        if len({str(v) for v in episodes.values()}) > 1:
            notes.append("Runs cover different numbers of episodes: " + ", ".join(f"{k}: {v}" for k, v in episodes.items()))
        for r in ranked:
            total = r.summary["suite"].get("tasks_in_suite")
            if _is_num(total) and _is_num(r.stats["episodes"]) and r.stats["episodes"] < total:
                notes.append(f"{r.label}: ran {r.stats['episodes']} of the suite's {total} tasks (a subset)")
            if r.stats["missing"]:
                notes.append(
                    f"{r.label}: {r.stats['missing']} of {r.stats['episodes']} episodes unfinished or missing "
                    "(counted as wrong); the run can be resumed"
                )
        if len(modalities) > 1:
            notes.append(f"Runs disagree on the suite's modality: {', '.join(modalities)}")
        boards.append(
            SuiteBoard(
                name=name,
                hash=hashes[name][0],
                modality=modalities[0] if modalities else "",
                hash_source=hashes[name][1],
                runs=ranked,
                families=families,
                notes=notes,
            )
        )
    return boards


# ----------------------------------------------------------------------------- formatting


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f}"


def _ci(stats: dict[str, Any] | None) -> tuple[float, float] | None:
    ci = (stats or {}).get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(_is_num(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def _acc_cell(stats: dict[str, Any]) -> str:
    ci = _ci(stats)
    s = f"{_pct(stats.get('mean'))}%"
    return f"{s} [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else s


def _num(x: float | None, digits: int = 2) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _tokens(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f}"


def _md_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def _columns(board: SuiteBoard) -> list[str]:
    cols = ["Rank", "Agent", "Accuracy % (95% CI)", *board.families, "Mean turns", "Mean tool calls", "Zero-tool share", "Mean visual tokens"]
    if board.is_video:
        cols.append("Full-video tokens")
    return cols


def _md_row(board: SuiteBoard, r: RunEntry) -> list[str]:
    fam = [_pct(st["mean"]) if (st := r.family(f)) else "—" for f in board.families]
    share = r.number("zero_tool_call_share")
    row = [
        str(r.rank),
        _md_escape(r.label),
        _acc_cell(r.overall),
        *fam,
        _num(r.number("mean_turns")),
        _num(r.number("mean_tool_calls")),
        "—" if share is None else f"{share * 100:.1f}%",
        _tokens(r.number("visual_tokens")),
    ]
    if board.is_video:
        row.append(_tokens(r.number("full_video_tokens")))
    return row


def render_markdown(boards: Sequence[SuiteBoard]) -> str:
    """The leaderboard as Markdown: one table per suite."""
    lines = ["# pyvision-gym leaderboard", ""]
    if not boards:
        lines.append("_No runs._")
    for b in boards:
        n_runs = len(b.runs)
        lines += [
            f"## {_md_escape(b.name)}",
            "",
            f"{b.modality or 'unknown'} suite · hash `{b.hash}` · {n_runs} run{'s' if n_runs != 1 else ''} · "
            "accuracy and per-family columns in %, ranked by overall accuracy",
            "",
        ]
        cols = _columns(b)
        lines.append("| " + " | ".join(_md_escape(c) for c in cols) + " |")
        align = ["---:", ":---", "---:"] + ["---:"] * (len(cols) - 3)
        lines.append("| " + " | ".join(align) + " |")
        for r in b.runs:
            lines.append("| " + " | ".join(_md_row(b, r)) + " |")
        lines.append("")
        for note in b.notes:
            lines += [f"> Note: {_md_escape(note)}", ""]
        lines.append("Runs: " + ", ".join(f"{_md_escape(r.label)} → `{r.run_dir}`" for r in b.runs))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------- plots


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


def _family_plot(board: SuiteBoard) -> str:
    """Grouped bars: accuracy per family (and overall) per agent, CI whiskers where known."""
    from matplotlib.figure import Figure

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
            ci = _ci(stats)
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


def _token_plot(board: SuiteBoard) -> str:
    """Scatter: overall accuracy against mean visual tokens (log x), one labelled point per agent."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

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
        ci = _ci(r.overall)
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


# ----------------------------------------------------------------------------- html


def _html_rows(board: SuiteBoard) -> list[dict[str, Any]]:
    rows = []
    for r in board.runs:
        ci = _ci(r.overall)
        fams = []
        for f in board.families:
            st = r.family(f)
            if st is None:
                fams.append(None)
                continue
            fci = _ci(st)
            fams.append(
                {
                    "mean": _pct(st["mean"]),
                    "ci": f"{_pct(fci[0], 0)}–{_pct(fci[1], 0)}" if fci else "",
                    "n": st.get("n", ""),
                    "alpha": round(0.06 + 0.34 * max(0.0, min(1.0, float(st["mean"]))), 3),
                }
            )
        share = r.number("zero_tool_call_share")
        rows.append(
            {
                "rank": r.rank,
                "label": r.label,
                "agent": r.agent,
                "color": r.color,
                "run": str(r.run_dir),
                "run_name": r.run_dir.name,
                "acc": _pct(r.accuracy),
                "acc_ci": f"{_pct(ci[0])}–{_pct(ci[1])}" if ci else "",
                "bar": {"mean": round(r.accuracy * 100, 2), "lo": round(ci[0] * 100, 2) if ci else None, "hi": round(ci[1] * 100, 2) if ci else None},
                "n": r.overall["n"] if r.overall["n"] is not None else r.stats["episodes"],
                "families": fams,
                "turns": _num(r.number("mean_turns")),
                "tools": _num(r.number("mean_tool_calls")),
                "zero": "—" if share is None else f"{share * 100:.1f}%",
                "tokens": _tokens(r.number("visual_tokens")),
                "full": _tokens(r.number("full_video_tokens")),
                "episodes": r.stats["episodes"] if r.stats["episodes"] is not None else "—",
                "version": r.stats["package_version"] or "—",
                "wall": _num(r.number("wall_s"), 0),
                "end_reasons": sorted((str(k), v) for k, v in r.stats["end_reasons"].items()),
                "versions": json.dumps(r.summary.get("versions") or {}, sort_keys=True),
            }
        )
    return rows


def _render_html(boards: Sequence[SuiteBoard]) -> str:
    return template_environment().get_template("leaderboard.html.j2").render(
        boards=[{"board": b, "rows": _html_rows(b)} for b in boards],
        n_runs=sum(len(b.runs) for b in boards),
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


# ----------------------------------------------------------------------------- entry points


def build_leaderboard(
    run_dirs: list[Path],
    out_dir: Path,
    expected_hashes: dict[str, str] | None = None,
    *,
    suites_dir: Path | None = None,
) -> LeaderboardResult:
    """Build ``leaderboard.md`` and ``leaderboard.html`` in ``out_dir`` from the given runs.

    ``expected_hashes`` maps suite name to the hash runs must have (it takes precedence over
    the frozen suite file ``suites_dir/<name>.json``, default ``benchmarks/suites``). Raises
    :class:`SuiteHashMismatch` naming every offending run, :class:`LeaderboardError` for an
    unreadable run. Nothing is written when it raises.
    """
    runs = load_runs(run_dirs)
    if not runs:
        raise LeaderboardError("no runs given")
    boards = _boards(runs, expected_hashes, Path(suites_dir) if suites_dir is not None else DEFAULT_SUITES_DIR)
    for b in boards:
        b.family_plot = _family_plot(b)
        b.token_plot = _token_plot(b)
    markdown = render_markdown(boards)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path, html_path = out_dir / "leaderboard.md", out_dir / "leaderboard.html"
    md_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(_render_html(boards), encoding="utf-8")
    return LeaderboardResult(markdown=markdown, markdown_path=md_path, html_path=html_path, suites=boards)


def _parse_expect(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise argparse.ArgumentTypeError(f"--expect wants NAME=HASH, got {item!r}")
        out[name] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; prints the Markdown, returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m benchmarks.leaderboard", description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run folder(s) with summary.json, or folders of runs")
    ap.add_argument("--out", type=Path, default=Path("runs/leaderboard"), help="output folder (default: runs/leaderboard)")
    ap.add_argument("--suites-dir", type=Path, default=None, help=f"frozen suite files (default: {DEFAULT_SUITES_DIR})")
    ap.add_argument("--expect", action="append", default=[], metavar="NAME=HASH", help="required hash for a suite (repeatable)")
    args = ap.parse_args(argv)
    try:
        result = build_leaderboard(args.runs, args.out, _parse_expect(args.expect) or None, suites_dir=args.suites_dir)
    except (LeaderboardError, argparse.ArgumentTypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.markdown, end="")
    print(f"wrote {result.markdown_path} and {result.html_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
