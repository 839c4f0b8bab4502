"""Leaderboard data: run summaries loaded, checked against the frozen suites' hashes, grouped
per suite and ranked."""

from __future__ import annotations

import colorsys
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .statistics import normalize_summary

__all__ = [
    "LeaderboardError",
    "RunEntry",
    "SuiteBoard",
    "SuiteHashMismatch",
    "agent_colors",
    "ci_bounds",
    "is_num",
    "load_runs",
    "make_boards",
]

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# Qualitative palette (data table): matplotlib's tab10, then tab20's lighter partners of the same hues.
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
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
    color: str = "#1f77b4"

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


# ----------------------------------------------------------------------------- numbers and colours


def is_num(x: Any) -> bool:
    """A finite number (not a bool)."""
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def ci_bounds(stats: dict[str, Any] | None) -> tuple[float, float] | None:
    """The ``ci95`` bounds of an accuracy block, when it has them."""
    ci = (stats or {}).get("ci95")
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(is_num(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def agent_colors(labels: Sequence[str]) -> dict[str, str]:
    """One colour per agent label, the same whatever suite it appears on.

    The distinct labels, sorted, take the palette in order (tab10, then tab20's lighter
    hues); past 20 agents, further hues are spread by the golden ratio. Deterministic: the
    same set of labels always gets the same colours.
    """
    colors = {}
    for i, label in enumerate(sorted(set(labels))):
        if i < len(_PALETTE):
            colors[label] = _PALETTE[i]
        else:
            r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.8)
            colors[label] = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
    return colors


# ----------------------------------------------------------------------------- loading and ranking


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


def make_boards(runs: list[RunEntry], expected_hashes: dict[str, str] | None, suites_dir: Path) -> list[SuiteBoard]:
    """The runs grouped per suite (sorted by name), hash-checked and ranked; each run's
    ``color`` comes from one :func:`agent_colors` map over every run of every suite."""
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
        families = sorted({f for r in ranked for f in r.stats["per_family"]})
        modalities = sorted({r.modality for r in ranked if r.modality})
        notes = []
        episodes = {r.label: r.stats["episodes"] for r in ranked}
        if len({str(v) for v in episodes.values()}) > 1:
            notes.append("Runs cover different numbers of episodes: " + ", ".join(f"{k}: {v}" for k, v in episodes.items()))
        for r in ranked:
            total = r.summary["suite"].get("tasks_in_suite")
            if is_num(total) and is_num(r.stats["episodes"]) and r.stats["episodes"] < total:
                notes.append(f"{r.label}: ran {r.stats['episodes']} of the suite's {total} tasks (a subset)")
            overrides = r.summary["agent"].get("env_overrides") if isinstance(r.summary.get("agent"), dict) else None
            if overrides:
                shown = ", ".join(f"{k}={v!r}" for k, v in sorted(overrides.items()))
                notes.append(f"{r.label}: ran with environment settings of its own over the suite's ({shown})")
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
    colors = agent_colors([r.label for b in boards for r in b.runs])
    for b in boards:
        for r in b.runs:
            r.color = colors[r.label]
    return boards
