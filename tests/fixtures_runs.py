"""Hand-made eval-run folders (``summary.json``, ``episodes.jsonl``, tiny PNGs) for the report tests,
and a small headless-Chromium helper. Nothing here runs the eval runner or the environments."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

HOSTILE = "<script>alert(1)</script>"
HOSTILE_IMG = "<img src=x onerror=\"document.title='pwned'\">"

PROMPT = (
    "You are given an image, preloaded as `image` (PIL.Image, {w}x{h}).\n"
    "Write Python inside <code>```python ...```</code> to inspect it, or reply with\n"
    "<answer>\\boxed{{...}}</answer> to finish.\n\nQuestion: {q}"
)
VIDEO_PROMPT = (
    "You are given a video, preloaded as `video` (48 frames, 12 fps, 4.0 s, 96x64).\n"
    "Fetch the frames you need with video[i] or video.get_batch(idx).\n\nQuestion: {q}"
)


# ----------------------------------------------------------------------------- media


def tiny_png(path: Path, seed: int, size: tuple[int, int] = (96, 64)) -> None:
    """A small PNG with a gradient and a few shapes (distinct per seed)."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = np.linspace(40, 200, w, dtype=np.uint8)[None, :]
    base[..., 1] = np.linspace(60, 180, h, dtype=np.uint8)[:, None]
    base[..., 2] = int(rng.integers(80, 220))
    im = Image.fromarray(base)
    draw = ImageDraw.Draw(im)
    for _ in range(3):
        x, y = int(rng.integers(0, w - 16)), int(rng.integers(0, h - 16))
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.ellipse((x, y, x + 14, y + 14), fill=color, outline=(0, 0, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)


# ----------------------------------------------------------------------------- episodes


def _code(body: str, reasoning: str) -> str:
    return f"{reasoning}\n<code>\n```python\n{body}\n```\n</code>"


def _answer(ans: str, reasoning: str = "") -> str:
    return f"{reasoning}\n<answer>\\boxed{{{ans}}}</answer>".strip()


def _episode(
    run_dir: Path,
    idx: int,
    *,
    modality: str,
    family: str,
    kind: str,
    correct: bool,
    seed: int,
    hostile: bool = False,
) -> dict[str, Any]:
    """One episode row in the eval runner's format, with its PNGs written under ``images/``."""
    q = {
        "counting": "How many red circles are in the image?",
        "chart_reading": "What is the value of the tallest bar in the chart?",
        "visual_search_attribute": "What colour is the small umbrella near the left edge?",
        "event_counting": "How many times does the white bar cross the centre line?",
        "motion_direction": "In which direction does the bar move? (A) left (B) right",
    }.get(family, "What is shown?")
    gt = {"counting": "4", "chart_reading": "37", "visual_search_attribute": "blue", "event_counting": "3", "motion_direction": "B"}.get(family, "x")
    wrong = {"counting": "5", "chart_reading": "35", "visual_search_attribute": "green", "event_counting": "2", "motion_direction": "A"}.get(family, "y")
    ans = gt if correct else wrong
    if hostile:
        q = f"{q} {HOSTILE}"

    def img(turn: int, k: int, size: tuple[int, int] = (96, 64)) -> str:
        rel = f"images/ep{idx:03d}_t{turn}_{k}.png"
        tiny_png(run_dir / rel, seed * 100 + turn * 10 + k, size)
        return rel

    prompt = VIDEO_PROMPT.format(q=q) if modality == "video" else PROMPT.format(w=640, h=480, q=q)
    transcript: list[dict[str, Any]] = [
        {"turn": 0, "action": "", "observation": prompt, "images": [] if modality == "video" else [img(0, 0, (128, 96))]}
    ]
    tool_calls = tool_errors = 0
    end_reason, answer = "DONE", ans
    tokens = 0 if modality == "video" else 391

    def add(action: str, obs: str, images: list[str]) -> None:
        transcript.append({"turn": len(transcript), "action": action, "observation": obs, "images": images})

    if kind == "tool":
        if modality == "video":
            add(
                _code(
                    "idx = [0, 12, 24, 36]\nframes = video.get_batch(idx)\nfor i, f in zip(idx, frames):\n"
                    "    display(Image.fromarray(f))\nprint(len(video), video.fps)",
                    "I will sample four frames evenly across the clip to see how the bar moves.",
                ),
                "48 12.0",
                [img(1, k) for k in range(4)],
            )
            tokens += 4 * 24
        else:
            add(
                _code(
                    "crop = image.crop((0, 0, 320, 240)).resize((640, 480))\ndisplay(crop)\nprint(crop.size)",
                    "The objects are small, so I will crop the top-left quadrant and zoom in.",
                ),
                "(640, 480)",
                [img(1, 0)],
            )
            tokens += 391
        tool_calls = 1
        add(_answer(ans, f"I can now see the answer clearly: {ans}."), "", [])
    elif kind == "error_then_fix":
        add(
            _code("crop = image.crop((100, 100, 300, 300))\ndisplay(crops)", "Let me zoom into the centre."),
            'Traceback (most recent call last):\n  File "<agent>", line 2, in <module>\n'
            "NameError: name 'crops' is not defined. Did you mean: 'crop'?",
            [],
        )
        add(
            _code(
                "import numpy as np\narr = np.asarray(crop)\nred = (arr[..., 0] > 150) & (arr[..., 1] < 80)\n"
                "print('red pixels:', int(red.sum()))\ndisplay(crop)",
                "Typo: the variable is `crop`. Retry and count the red pixels too.",
            ),
            "red pixels: 1234",
            [img(2, 0), img(2, 1, (64, 64))],
        )
        tool_calls, tool_errors, tokens = 1, 1, tokens + 2 * 64
        add(_answer(ans), "", [])
    elif kind == "direct":
        add(_answer(ans, "The answer is visible in the full image without zooming."), "", [])
    elif kind == "code_and_answer":
        add(_code("print(image.size)", "Checking the size, and I am confident anyway.") + "\n" + _answer(ans), "", [])
    elif kind == "no_format":
        add(
            "I think the answer is probably " + ans + ", but let me reflect.",
            "Error: no Python code or final answer found in your response.\nEach turn must do exactly one of two things.",
            [],
        )
        add(_answer(ans), "", [])
    elif kind == "agent_error":
        # what the runner writes when the agent raised: no transcript, the error kept
        transcript, end_reason, answer, correct, tokens = [], "AGENT_ERROR", None, False, 0
    elif kind == "exceed":
        for t in range(1, 6):
            add(
                _code(f"region = image.crop(({t * 50}, 0, {t * 50 + 100}, 100))\ndisplay(region)", f"Scanning strip {t}."),
                f"shown region {t}",
                [img(t, 0, (48, 48))],
            )
        tool_calls, tokens, end_reason, answer, correct = 5, tokens + 5 * 4, "EXCEED_MAX_TURNS", None, False
    else:
        raise ValueError(kind)
    if hostile and len(transcript) > 1:
        transcript[1]["action"] = f"Thinking... {HOSTILE} and {HOSTILE_IMG}\n" + transcript[1]["action"]
        transcript[1]["observation"] += f"\n{HOSTILE}"
        transcript[1]["images"] = [*transcript[1]["images"], "../../../etc/passwd", "javascript:alert(1)", "images/missing.png"]
    accuracy = 1.0 if correct else 0.0
    bonus = 0.1 * tool_calls if correct else 0.0
    row: dict[str, Any] = {
        "task_id": f"{family}-{seed:05d}" + (f"-{HOSTILE}" if hostile else ""),
        "family": family,
        "modality": modality,
        "difficulty": 1 + idx % 3,
        "seed": seed,
        "question": q,
        "answer": answer,
        "ground_truth": gt,
        "correct": bool(correct),
        "accuracy": accuracy,
        "reward": accuracy + bonus,
        "reward_terms": {"accuracy": accuracy, "tool_bonus": round(bonus, 3)},
        "turns": max(0, len(transcript) - 1),
        "tool_calls": tool_calls,
        "tool_errors": tool_errors,
        "end_reason": end_reason,
        "visual_tokens": tokens,
        "wall_s": 0.4 + 0.3 * len(transcript),
        "transcript": transcript,
    }
    if kind == "agent_error":
        row["error"] = "agent failed: TimeoutError: the model server did not answer within 120 s"
    if modality == "video":
        row["visual_tokens_full_video"] = 4608
    return row


# ----------------------------------------------------------------------------- runs


def wilson(k: int, n: int) -> list[float]:
    """Wilson 95% interval for k successes out of n."""
    if n == 0:
        return [0.0, 1.0]
    z, p = 1.96, k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return [max(0.0, c - h), min(1.0, c + h)]


def summarize(rows: list[dict[str, Any]], suite: dict[str, Any], agent: str, wall_s: float = 12.5) -> dict[str, Any]:
    """``summary.json`` computed from episode rows, in the documented layout (the task brief's)."""
    n = len(rows)
    k = sum(r["correct"] for r in rows)
    fams: dict[str, list[bool]] = {}
    for r in rows:
        fams.setdefault(r["family"], []).append(r["correct"])
    summary: dict[str, Any] = {
        "suite": suite,
        "agent": {"spec": agent, "temperature": 0.0},
        "package_version": "0.1.0",
        "episodes": n,
        "accuracy": {
            "overall": {"mean": k / n, "ci95": wilson(k, n), "n": n},
            "per_family": {f: {"mean": sum(v) / len(v), "ci95": wilson(sum(v), len(v)), "n": len(v)} for f, v in fams.items()},
        },
        "mean_turns": sum(r["turns"] for r in rows) / n,
        "mean_tool_calls": sum(r["tool_calls"] for r in rows) / n,
        "zero_tool_call_share": sum(r["tool_calls"] == 0 for r in rows) / n,
        "visual_tokens": {"mean": sum(r["visual_tokens"] for r in rows) / n, "total": sum(r["visual_tokens"] for r in rows)},
        "end_reasons": dict(Counter(r["end_reason"] for r in rows)),
        "wall_s": wall_s,
        "versions": {"python": "3.11.2", "pyvision_gym": "0.1.0", "numpy": np.__version__},
    }
    if suite.get("modality") == "video":
        summary["visual_tokens_full_video"] = {"mean": sum(r.get("visual_tokens_full_video", 0) for r in rows) / n}
    return summary


def summarize_runner_layout(rows: list[dict[str, Any]], suite: dict[str, Any], agent: str) -> dict[str, Any]:
    """The same numbers in the layout of ``pyvision_gym.evaluation.statistics.summarize`` (hand-written here):
    ``accuracy`` = ``{n, correct, accuracy, ci95}``, top-level ``per_family``, full-video tokens
    inside ``visual_tokens``, ``wall_s`` a dict, the version under ``versions``."""
    doc = summarize(rows, suite, agent)

    def block(st: dict[str, Any], n_correct: int) -> dict[str, Any]:
        return {"n": st["n"], "correct": n_correct, "accuracy": st["mean"], "ci95": st["ci95"]}

    fam_correct = Counter(r["family"] for r in rows if r["correct"])
    vt = dict(doc["visual_tokens"])
    if "visual_tokens_full_video" in doc:
        vt["full_video_mean"] = doc["visual_tokens_full_video"]["mean"]
    unfinished = sum(r["end_reason"] in ("AGENT_ERROR", "ENV_ERROR") for r in rows)
    return {
        "suite": {**suite, "version": 0, "tasks_in_suite": len(rows)},
        "agent": {"spec": agent},
        "episodes": len(rows),
        "completed": len(rows),
        "missing": 0,
        "unfinished": unfinished,
        "accuracy": block(doc["accuracy"]["overall"], sum(r["correct"] for r in rows)),
        "per_family": {f: block(st, fam_correct[f]) for f, st in doc["accuracy"]["per_family"].items()},
        "mean_reward": sum(r["reward"] for r in rows) / len(rows),
        "mean_turns": doc["mean_turns"],
        "mean_tool_calls": doc["mean_tool_calls"],
        "zero_tool_call_share": doc["zero_tool_call_share"],
        "visual_tokens": vt,
        "end_reasons": doc["end_reasons"],
        "wall_s": {"episodes_total": sum(r["wall_s"] for r in rows), "episode_mean": sum(r["wall_s"] for r in rows) / len(rows)},
        "versions": doc["versions"],
    }


IMAGE_FAMILIES = ("counting", "chart_reading", "visual_search_attribute")
VIDEO_FAMILIES = ("event_counting", "motion_direction")
KINDS = ("tool", "error_then_fix", "direct", "code_and_answer", "no_format", "exceed", "agent_error")


def write_run(
    run_dir: Path,
    *,
    agent: str,
    suite_name: str = "image-mini",
    suite_hash: str = "a1b2c3d4e5f60718",
    modality: str = "image",
    skill: float = 0.6,
    episodes: int = 6,
    seed: int = 0,
    hostile: bool = False,
    kinds: tuple[str, ...] = KINDS,
    token_scale: float = 1.0,
    layout: str = "documented",
) -> Path:
    """Write a run folder: ``episodes`` episodes cycling through families and turn kinds.

    ``skill`` is the chance an episode is answered correctly, ``token_scale`` scales the
    visual tokens (agents that look at bigger crops), ``hostile`` puts script-injection text
    into the first episode. ``layout="runner"`` writes ``summary.json`` in the eval runner's
    layout instead of the documented one.
    """
    rng = np.random.default_rng(seed)
    families = VIDEO_FAMILIES if modality == "video" else IMAGE_FAMILIES
    rows = []
    for i in range(episodes):
        kind = kinds[i % len(kinds)]
        rows.append(
            _episode(
                run_dir,
                i,
                modality=modality,
                family=families[i % len(families)],
                kind=kind,
                correct=bool(rng.random() < skill),
                seed=1000 + 7 * i + seed,
                hostile=hostile and i == 0,
            )
        )
    for r in rows:
        r["visual_tokens"] = int(r["visual_tokens"] * token_scale)
    run_dir.mkdir(parents=True, exist_ok=True)
    with (run_dir / "episodes.jsonl").open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    suite = {"name": suite_name, "hash": suite_hash, "modality": modality}
    make = summarize_runner_layout if layout == "runner" else summarize
    (run_dir / "summary.json").write_text(json.dumps(make(rows, suite, agent), indent=2), encoding="utf-8")
    return run_dir


# ----------------------------------------------------------------------------- chromium

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str:
    """Path of a Chromium binary, or skip the test with how to install one."""
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium); browser rendering not checked")


def chromium(url: str, tmp: Path, *, screenshot: Path | None = None, size: tuple[int, int] = (1280, 2000)) -> str:
    """Run headless Chromium on ``url``: the rendered DOM (``--dump-dom``), or write a screenshot."""
    args = [
        chromium_binary(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp / 'chromium-profile'}",
    ]
    if screenshot is not None:
        args += [f"--screenshot={screenshot}", f"--window-size={size[0]},{size[1]}"]
    else:
        args += ["--dump-dom"]
    proc = subprocess.run([*args, url], capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    if screenshot is not None:
        assert screenshot.is_file(), f"no screenshot written: {proc.stderr[-2000:]}"
    return proc.stdout


class _Element:
    """An element of a parsed page: tag, attributes, text content."""

    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())


class _DomParser(HTMLParser):
    """Collects every element with its text (enough to check a dumped DOM)."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[_Element] = []
        self.stack: list[_Element] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = _Element(tag, dict(attrs))
        self.elements.append(el)
        if tag not in self.VOID:
            self.stack.append(el)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        for el in self.stack:
            el.parts.append(data)


def parse_dom(html: str) -> list[_Element]:
    """Every element of a (dumped) page in document order, each with ``tag``, ``attrs``, ``text``."""
    parser = _DomParser()
    parser.feed(html)
    parser.close()
    return parser.elements


def select(elements: list[_Element], tag: str, cls: str | None = None) -> list[_Element]:
    """The elements with this tag (and class)."""
    return [e for e in elements if e.tag == tag and (cls is None or cls in e.classes)]


def keep_screenshot(png: Path, name: str) -> None:
    """Copy a screenshot to ``$PVG_SCREENSHOT_DIR`` when set (to look at it)."""
    target = os.environ.get("PVG_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(target) / name)


def pixel_stats(png: Path) -> tuple[float, int]:
    """(standard deviation of the grey levels, number of distinct colours) of a screenshot."""
    with Image.open(png) as im:
        arr = np.asarray(im.convert("RGB"))
    grey = arr.mean(axis=2)
    colours = len(np.unique(arr.reshape(-1, 3)[:: max(1, arr.shape[0] * arr.shape[1] // 200_000)], axis=0))
    return float(grey.std()), colours


def has_colour(png: Path, rgb: tuple[int, int, int], tol: int = 30, min_pixels: int = 30) -> bool:
    """Whether the screenshot holds at least ``min_pixels`` pixels close to ``rgb``."""
    with Image.open(png) as im:
        arr = np.asarray(im.convert("RGB")).astype(int)
    close = np.abs(arr - np.array(rgb)).max(axis=2) <= tol
    return int(close.sum()) >= min_pixels
