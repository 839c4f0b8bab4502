"""Leaderboard over eval runs: one ranked table per frozen suite, as Markdown and static HTML.

    python -m pyvision_gym.evaluation.leaderboard RUN_DIR... [--out DIR] [--suites-dir DIR] [--expect NAME=HASH]

Each RUN_DIR is an eval-run folder holding ``summary.json`` (or a folder of such folders).
Runs are grouped by suite name. A run whose suite hash differs from the frozen suite's
(``<suite name>.json`` in the frozen suites folder, field ``"hash"``, or ``--expect`` /
``expected_hashes``) is refused with an error naming the run, its hash and the expected one;
without a frozen suite file, two runs of one suite name with different hashes are refused.
Agents are ranked by overall accuracy (ties share a rank; fewer visual tokens lists first).

Writes ``leaderboard.md`` (printed too) and ``leaderboard.html`` (self-contained: inline CSS,
plots as embedded PNG): per suite, the table plus accuracy per family (grouped bars with 95%
CI whiskers) and accuracy against mean visual tokens (log x; a note says so when every agent
spent the same tokens). An agent has one colour on every suite's table and plots.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .board import (
    LeaderboardError,
    RunEntry,
    SuiteBoard,
    SuiteHashMismatch,
    ci_bounds,
    load_runs,
    make_boards,
)
from .pages import template_environment
from .plots import family_plot, token_plot
from .suites import SUITES_DIR

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

DEFAULT_SUITES_DIR = SUITES_DIR


@dataclass
class LeaderboardResult:
    """What :func:`build_leaderboard` produced."""

    markdown: str
    markdown_path: Path
    html_path: Path
    suites: list[SuiteBoard]


# ----------------------------------------------------------------------------- formatting


def _pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x * 100:.{digits}f}"


def _acc_cell(stats: dict[str, Any]) -> str:
    ci = ci_bounds(stats)
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


# ----------------------------------------------------------------------------- html


def _html_rows(board: SuiteBoard) -> list[dict[str, Any]]:
    rows = []
    for r in board.runs:
        ci = ci_bounds(r.overall)
        fams = []
        for f in board.families:
            st = r.family(f)
            if st is None:
                fams.append(None)
                continue
            fci = ci_bounds(st)
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
    the frozen suite file ``suites_dir/<name>.json``, default :data:`DEFAULT_SUITES_DIR`). Raises
    :class:`SuiteHashMismatch` naming every offending run, :class:`LeaderboardError` for an
    unreadable run. Nothing is written when it raises.
    """
    runs = load_runs(run_dirs)
    if not runs:
        raise LeaderboardError("no runs given")
    boards = make_boards(runs, expected_hashes, Path(suites_dir) if suites_dir is not None else DEFAULT_SUITES_DIR)
    for b in boards:
        b.family_plot = family_plot(b)
        b.token_plot = token_plot(b)
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
    ap = argparse.ArgumentParser(prog="python -m pyvision_gym.evaluation.leaderboard", description=__doc__.splitlines()[0])
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
