"""A static HTML viewer for an eval run's episodes (``episodes.jsonl``).

    python -m pyvision_gym.evaluation.viewer RUN_DIR [--out viewer.html] [--embed] [--max-episodes N]

One self-contained page (CSS and JS inline, no network): a summary of the run (from
``summary.json`` when it sits beside the episodes), a filter bar (family / verdict / end
reason / free text; the state lives in the URL hash, e.g. ``viewer.html#correct=wrong``), an
index table, then every episode: its header (task, question, answer against ground truth and
a ✓/✗ verdict, reward and its terms, end reason, turns, tool calls, visual tokens) and every
turn: the agent's reasoning (the action without its code block), the code it ran
(highlighted by pygments), the observation (error lines marked) and the images it was shown
(thumbnails; a click opens them full size).

Images are referenced relatively from the run folder (the page must stay next to it), or
embedded as base64 with ``embed_images=True`` (one portable file). Everything taken from the
run is escaped: agent text is untrusted.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import re
import textwrap
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from pyvision_gym.parsing import parse_action

from .pages import template_environment
from .statistics import normalize_summary

__all__ = ["CodeBlock", "error_lines", "main", "split_action", "write_viewer"]

# A closed code block: <code> [```python] ... [```] </code>, or a bare ```python fence.
_CODE_BLOCK_RE = re.compile(
    r"<code>\s*(?:```[ \t]*(?:python3?|py)?[ \t]*\r?\n?)?(?P<tag>(?:(?!</?code>).)*?)(?:```[ \t]*)?\s*</code>"
    r"|```[ \t]*(?:python3?|py)\b[^\n]*\n(?P<fence>.*?)```",
    re.DOTALL | re.IGNORECASE,
)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
# Lines of an observation that report an error: a traceback header, its frames, the final
# "SomeError: ..." line, or the env's own "Error: ..." messages.
_ERROR_HEAD_RE = re.compile(
    r"^(Traceback \(most recent call last\):"
    r"|(?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning)\b(?::.*)?"
    r"|Error:.*)\s*$"
)
_FRAME_RE = re.compile(r"^\s+File \".*\", line \d+")
# Every episode field the page reads; missing ones show as "—".
_ROW_FIELDS = (
    "task_id", "family", "modality", "difficulty", "seed", "question", "answer", "ground_truth",
    "correct", "accuracy", "reward", "reward_terms", "turns", "tool_calls", "tool_errors",
    "end_reason", "error", "visual_tokens", "visual_tokens_full_video", "wall_s",
)
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"}


# ----------------------------------------------------------------------------- text helpers


@dataclass(frozen=True)
class CodeBlock:
    """A code block of one turn: its text, whether the env ran it, and why not."""

    code: str
    ran: bool
    note: str = ""


def split_action(action: str) -> tuple[list[tuple[str, str]], list[CodeBlock]]:
    """Split one turn's text into reasoning segments and its code blocks.

    ``segments`` is the action with its closed code blocks removed, as ``("text", s)`` /
    ``("answer", s)`` pieces (``<answer>`` bodies kept apart to be shown as the answer).
    ``blocks`` lists every closed code block in order; the one
    :func:`~pyvision_gym.parsing.parse_action` runs has ``ran=True``, the others say why they
    did not run. An unclosed block (generation cut off) stays in the text: it never ran.
    """
    action = action or ""
    parsed = parse_action(action)
    run_code = parsed.code if parsed.kind == "code" else None
    found: list[str] = []
    pieces: list[str] = []
    pos = 0
    for m in _CODE_BLOCK_RE.finditer(action):
        body = m.group("tag") if m.group("tag") is not None else m.group("fence")
        body = textwrap.dedent(body or "").strip("\r\n").rstrip()
        if body:
            found.append(body)
        pieces.append(action[pos : m.start()])
        pos = m.end()
    pieces.append(action[pos:])
    ran_at = max((i for i, b in enumerate(found) if b == run_code), default=None)
    if parsed.kind == "answer":
        why = "not run: the turn also gave an answer"
    elif run_code is not None:
        why = "not run: only one code block per turn runs"
    else:
        why = "not run: not a block the parser accepts"
    blocks = [CodeBlock(b, i == ran_at, "" if i == ran_at else why) for i, b in enumerate(found)]
    if run_code is not None and ran_at is None:
        blocks.append(CodeBlock(run_code, True))
    text = "".join(pieces)
    segments: list[tuple[str, str]] = []
    pos = 0
    for m in _ANSWER_RE.finditer(text):
        segments.append(("text", text[pos : m.start()]))
        segments.append(("answer", m.group(1).strip()))
        pos = m.end()
    segments.append(("text", text[pos:]))
    cleaned = []
    for kind, seg in segments:
        if kind == "text":
            seg = re.sub(r"\n{3,}", "\n\n", seg).strip()
        if seg or kind == "answer":
            cleaned.append((kind, seg))
    return cleaned, blocks


def error_lines(observation: str) -> tuple[list[tuple[str, bool]], bool]:
    """The observation's lines, each flagged when it reports an error, and whether any does."""
    lines = (observation or "").split("\n")
    flagged: list[tuple[str, bool]] = []
    in_traceback = False
    any_error = False
    for line in lines:
        head = bool(_ERROR_HEAD_RE.match(line))
        if line.startswith("Traceback (most recent call last):"):
            in_traceback = True
        is_err = head or (in_traceback and bool(_FRAME_RE.match(line)))
        if head and not line.startswith("Traceback"):
            in_traceback = False
        any_error = any_error or head
        flagged.append((line, is_err))
    return flagged, any_error


def _fmt_num(x: Any, digits: int = 2) -> str:
    if isinstance(x, bool) or x is None:
        return "—" if x is None else str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isnan(x):
            return "—"
        if x.is_integer() and abs(x) >= 1000:
            return f"{int(x):,}"
        return f"{x:.{digits}f}"
    return str(x)


# ----------------------------------------------------------------------------- view models


@dataclass
class ImageView:
    """One image of a turn, as the page shows it."""

    path: str
    src: str | None
    href: str | None
    size: str = ""
    missing_reason: str = ""


@dataclass
class TurnView:
    """One turn of an episode, as the page shows it."""

    turn: int
    is_prompt: bool
    segments: list[tuple[str, str]]
    code: list[tuple[str, CodeBlock]]
    observation: list[tuple[str, bool]]
    observation_error: bool
    observation_empty: bool
    images: list[ImageView]

    @property
    def has_answer(self) -> bool:
        """Whether the turn gave a final answer."""
        return any(kind == "answer" for kind, _ in self.segments)


@dataclass
class EpisodeView:
    """One episode, as the page shows it."""

    index: int
    anchor: str
    row: dict[str, Any]
    correct: bool
    answered: bool
    turns: list[TurnView] = field(default_factory=list)

    @property
    def search_text(self) -> str:
        """What the free-text filter looks in."""
        r = self.row
        return " ".join(str(r.get(k) or "") for k in ("task_id", "question", "answer", "ground_truth")).lower()


class _ImageResolver:
    """Turns transcript image paths (relative to the run folder) into URLs for the page."""

    def __init__(self, run_dir: Path, out_dir: Path, embed: bool) -> None:
        self.run_dir = run_dir.resolve()
        self.out_dir = out_dir.resolve()
        self.embed = embed

    def __call__(self, rel: Any) -> ImageView:
        rel_s = str(rel)
        if not isinstance(rel, str) or not rel or os.path.isabs(rel_s) or re.match(r"^[a-zA-Z][\w+.-]*:", rel_s):
            return ImageView(rel_s, None, None, missing_reason="not a relative path")
        path = (self.run_dir / rel_s).resolve()
        if not path.is_relative_to(self.run_dir):
            return ImageView(rel_s, None, None, missing_reason="outside the run folder")
        if not path.is_file():
            return ImageView(rel_s, None, None, missing_reason="file not found")
        size = ""
        try:
            with Image.open(path) as im:
                size = f"{im.width}×{im.height}"
        except Exception:  # noqa: BLE001 - a broken image still gets a tile; the browser decides
            size = ""
        if self.embed:
            mime = _MIME.get(path.suffix.lower(), "application/octet-stream")
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            return ImageView(rel_s, f"data:{mime};base64,{data}", None, size)
        url = urllib.parse.quote(Path(os.path.relpath(path, self.out_dir)).as_posix())
        return ImageView(rel_s, url, url, size)


def _highlight(code: str) -> str:
    return highlight(code, PythonLexer(), HtmlFormatter(cssclass="hl", linenos="inline", wrapcode=True))


def _turn_view(t: dict[str, Any], resolve: _ImageResolver) -> TurnView:
    turn = int(t.get("turn") or 0)
    action = str(t.get("action") or "")
    is_prompt = turn == 0 and not action
    segments, blocks = split_action(action)
    obs = str(t.get("observation") or "")
    flagged, obs_err = error_lines(obs)
    images = [resolve(p) for p in (t.get("images") or [])]
    return TurnView(
        turn=turn,
        is_prompt=is_prompt,
        segments=segments,
        code=[(_highlight(b.code), b) for b in blocks],
        observation=flagged,
        observation_error=obs_err and not is_prompt,
        observation_empty=not obs.strip(),
        images=images,
    )


def _read_jsonl(path: Path, limit: int | None) -> tuple[list[dict[str, Any]], list[str], int]:
    """Rows of ``episodes.jsonl`` (up to ``limit``), notes on skipped lines, total row count."""
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    total = 0
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                notes.append(f"line {lineno}: not valid JSON ({exc.msg}); skipped (run still being written?)")
                continue
            if not isinstance(row, dict):
                notes.append(f"line {lineno}: not a JSON object; skipped")
                continue
            total += 1
            if limit is None or len(rows) < limit:
                rows.append(row)
    return rows, notes, total


def _summary_stats(summary: dict[str, Any]) -> list[tuple[str, str]]:
    norm = normalize_summary(summary)
    stats: list[tuple[str, str]] = []
    acc = norm["overall"]
    if acc is not None:
        ci = acc["ci95"]
        ci_s = f" [{ci[0] * 100:.1f}, {ci[1] * 100:.1f}]" if ci else ""
        stats.append((f"{acc['mean'] * 100:.1f}%{ci_s}", f"accuracy (95% CI), n={acc['n'] if acc['n'] is not None else '?'}"))
    for key, label in (("mean_turns", "mean turns"), ("mean_tool_calls", "mean tool calls")):
        if norm[key] is not None:
            stats.append((f"{norm[key]:.2f}", label))
    if norm["zero_tool_call_share"] is not None:
        stats.append((f"{norm['zero_tool_call_share'] * 100:.1f}%", "answered without tools"))
    if norm["visual_tokens"] is not None:
        stats.append((f"{norm['visual_tokens']:,.0f}", "mean visual tokens"))
    if norm["full_video_tokens"] is not None:
        stats.append((f"{norm['full_video_tokens']:,.0f}", "full-video tokens"))
    if norm["wall_s"] is not None:
        stats.append((f"{norm['wall_s']:.0f} s", "wall time"))
    return stats


def _safe_stats(summary: dict[str, Any], notes: list[str]) -> list[tuple[str, str]]:
    """The summary's headline numbers; a summary of an unexpected shape is noted, not fatal."""
    try:
        return _summary_stats(summary)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        notes.append(f"summary.json has an unexpected shape ({exc!r}); headline numbers left out")
        return []


def write_viewer(
    episodes_jsonl: Path,
    out_html: Path | None = None,
    max_episodes: int | None = None,
    *,
    embed_images: bool = False,
) -> Path:
    """Write the HTML viewer for a run's ``episodes.jsonl`` and return its path.

    ``out_html`` defaults to ``viewer.html`` in the run folder. Image paths are made relative
    to ``out_html``'s folder, or embedded as base64 with ``embed_images=True``. ``max_episodes``
    keeps the first N episodes (the page says how many were left out).
    """
    episodes_jsonl = Path(episodes_jsonl)
    if episodes_jsonl.is_dir():
        episodes_jsonl = episodes_jsonl / "episodes.jsonl"
    if not episodes_jsonl.is_file():
        raise FileNotFoundError(f"no episodes file at {episodes_jsonl}")
    run_dir = episodes_jsonl.parent
    out_html = Path(out_html) if out_html is not None else run_dir / "viewer.html"
    out_html.parent.mkdir(parents=True, exist_ok=True)

    rows, notes, total = _read_jsonl(episodes_jsonl, max_episodes)
    summary: dict[str, Any] = {}
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        try:
            loaded = json.loads(summary_path.read_text(encoding="utf-8"))
            summary = loaded if isinstance(loaded, dict) else {}
        except (OSError, json.JSONDecodeError) as exc:
            notes.append(f"summary.json could not be read ({exc}); summary left out")

    resolve = _ImageResolver(run_dir, out_html.parent, embed_images)
    episodes: list[EpisodeView] = []
    for i, row in enumerate(rows):
        transcript = row.get("transcript") if isinstance(row.get("transcript"), list) else []
        ep = EpisodeView(
            index=i + 1,
            anchor=f"ep-{i + 1}",
            row={**dict.fromkeys(_ROW_FIELDS), **row},
            correct=bool(row.get("correct")),
            answered=row.get("answer") is not None,
            turns=[_turn_view(t, resolve) for t in transcript if isinstance(t, dict)],
        )
        episodes.append(ep)

    def options(key: str) -> list[str]:
        return sorted({str(r.get(key)) for r in rows if r.get(key) is not None})

    n_correct = sum(ep.correct for ep in episodes)
    raw_suite = summary.get("suite") if isinstance(summary.get("suite"), dict) else {}
    raw_agent = summary.get("agent") if isinstance(summary.get("agent"), dict) else {}
    suite = {k: None if raw_suite.get(k) is None else str(raw_suite[k]) for k in ("name", "hash", "modality")}
    agent = {"spec": None if raw_agent.get("spec") is None else str(raw_agent["spec"])}
    title_bits = [str(agent.get("spec") or ""), str(suite.get("name") or "")]
    html = template_environment().get_template("viewer.html.j2").render(
        title=" · ".join(b for b in title_bits if b) or run_dir.name,
        run_name=run_dir.name,
        package_version=normalize_summary(summary)["package_version"],
        suite=suite,
        agent=agent,
        stats=_safe_stats(summary, notes),
        episodes=episodes,
        total=total,
        n_correct=n_correct,
        families=options("family"),
        end_reasons=options("end_reason"),
        end_reason_counts=Counter(str(r.get("end_reason")) for r in rows),
        notes=notes,
        embed_images=embed_images,
        pygments_css=HtmlFormatter(cssclass="hl").get_style_defs(".hl"),
        fmt=_fmt_num,
        is_num=lambda x: isinstance(x, int | float) and not isinstance(x, bool),
    )
    out_html.write_text(html, encoding="utf-8")
    return out_html


def main(argv: list[str] | None = None) -> int:
    """Command line: write the viewer for one run folder."""
    ap = argparse.ArgumentParser(prog="python -m pyvision_gym.evaluation.viewer", description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run folder (or its episodes.jsonl)")
    ap.add_argument("--out", type=Path, default=None, help="output HTML (default: RUN/viewer.html)")
    ap.add_argument("--embed", action="store_true", help="embed images as base64 (one portable file)")
    ap.add_argument("--max-episodes", type=int, default=None)
    args = ap.parse_args(argv)
    try:
        path = write_viewer(args.run, args.out, args.max_episodes, embed_images=args.embed)
    except (FileNotFoundError, OSError) as exc:
        ap.exit(2, f"error: {exc}\n")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
