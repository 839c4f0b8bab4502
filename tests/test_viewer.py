"""The episode viewer: content of the static page, escaping, and the page rendered by headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fixtures_runs import (
    HOSTILE,
    chromium,
    has_colour,
    keep_screenshot,
    parse_dom,
    pixel_stats,
    select,
    write_run,
)

from pyvision_gym.evaluation.viewer import CodeBlock, error_lines, main, split_action, write_viewer


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "episodes.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def image_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Seven image episodes, one of each turn kind; the first carries script-injection text."""
    return write_run(tmp_path_factory.mktemp("runs") / "img-run", agent="vllm:Qwen2.5-VL-7B", hostile=True, seed=3, episodes=7)


@pytest.fixture(scope="module")
def video_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(
        tmp_path_factory.mktemp("runs") / "vid-run",
        agent="scripted:oracle",
        modality="video",
        suite_name="video-mini",
        episodes=3,
        kinds=("tool", "error_then_fix"),
    )


# ----------------------------------------------------------------------------- helpers


def test_split_action_removes_code_and_keeps_answer() -> None:
    action = "Zoom in first.\n<code>\n```python\ncrop = image.crop((0, 0, 9, 9))\ndisplay(crop)\n```\n</code>\n"
    segments, blocks = split_action(action)
    assert segments == [("text", "Zoom in first.")]
    assert blocks == [CodeBlock("crop = image.crop((0, 0, 9, 9))\ndisplay(crop)", True)]
    # the answer wins: the code is shown as not run
    segments, blocks = split_action("Sure.\n```python\nprint(1)\n```\n<answer>\\boxed{B}</answer>")
    assert segments == [("text", "Sure."), ("answer", "\\boxed{B}")]
    assert [(b.code, b.ran) for b in blocks] == [("print(1)", False)] and "answer" in blocks[0].note
    # two blocks: only the last one ran; the reasoning between them is kept
    segments, blocks = split_action("A\n```python\nx = 1\n```\nB\n<code>\n```python\ny = 2\n```\n</code>")
    assert segments == [("text", "A\n\nB")]
    assert [(b.code, b.ran) for b in blocks] == [("x = 1", False), ("y = 2", True)]
    # a fence cut off mid-code never ran and stays visible as text
    segments, blocks = split_action("Look:\n```python\nfor i in range(")
    assert blocks == [] and "for i in range(" in segments[0][1]
    assert split_action("") == ([], [])


def test_error_lines_marks_traceback() -> None:
    obs = 'before\nTraceback (most recent call last):\n  File "<agent>", line 2, in <module>\n    x()\nNameError: name \'x\' is not defined'
    flagged, err = error_lines(obs)
    assert err
    assert [f for _, f in flagged] == [False, True, True, False, True]
    assert error_lines("(640, 480)\nok")[1] is False
    assert error_lines("Error: no Python code or final answer found in your response.")[1]
    assert error_lines("TimeoutError: the code did not finish within 30 s")[1]


# ----------------------------------------------------------------------------- content


def test_viewer_content(image_run: Path) -> None:
    out = write_viewer(image_run / "episodes.jsonl")
    assert out == image_run / "viewer.html"
    html = out.read_text()
    rows = _rows(image_run)
    # one section per episode, with its verdict
    assert html.count('class="card episode') == len(rows)
    assert html.count('data-verdict="correct"') == sum(r["correct"] for r in rows)
    assert html.count('data-verdict="wrong"') == sum(not r["correct"] for r in rows)
    assert "✓ correct" in html or "✗ wrong" in html
    # agent text is escaped: the only <script> element is the page's own
    assert HOSTILE not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert html.count("<script") == 1
    # highlighted code, reasoning without the code, marked errors, not-run code
    assert '<div class="hl">' in html and "crop" in html
    assert "Let me zoom into the centre." in html
    assert "<span class=\"err\">NameError: name &#39;crops&#39; is not defined" in html
    assert "not run: the turn also gave an answer" in html
    assert "tool_bonus" in html and "EXCEED_MAX_TURNS" in html
    assert "episode error: <span class=\"mono\">agent failed: TimeoutError" in html  # AGENT_ERROR row
    # images: relative to the run folder and present; unsafe or missing ones are placeholders
    for rel in {p for r in rows for t in r["transcript"] for p in t["images"] if p.startswith("images/ep")}:
        assert f'src="{rel}"' in html and (image_run / rel).is_file()
    assert "outside the run folder" in html and "not a relative path" in html and "file not found" in html
    assert 'src="javascript' not in html and 'src="../../../etc/passwd"' not in html
    # index table and filter bar
    assert html.count("<tr data-family=") == len(rows)
    for fam in {r["family"] for r in rows}:
        assert f'<option value="{fam}">' in html


def test_viewer_options(image_run: Path, tmp_path: Path) -> None:
    # elsewhere: image paths stay relative, now to the output file's folder
    out = write_viewer(image_run / "episodes.jsonl", tmp_path / "pages" / "v.html", max_episodes=2)
    html = out.read_text()
    assert html.count('class="card episode') == 2 and "first 2 of 7 episodes" in html
    srcs = re.findall(r'<img src="([^"]+ep001_t0_0.png)"', html)
    assert srcs and srcs[0].startswith("../")
    assert (out.parent / srcs[0]).resolve() == (image_run / "images" / "ep001_t0_0.png").resolve()
    # embedded: one portable file
    html = write_viewer(image_run, tmp_path / "embedded.html", embed_images=True).read_text()
    assert 'src="images/' not in html and html.count('src="data:image/png;base64,') >= 6
    # a run folder can be given instead of the file; the CLI works
    assert main([str(image_run), "--out", str(tmp_path / "cli.html")]) == 0
    assert (tmp_path / "cli.html").is_file()
    with pytest.raises(FileNotFoundError):
        write_viewer(tmp_path / "nope" / "episodes.jsonl")


def test_viewer_tolerates_partial_runs(tmp_path: Path, image_run: Path) -> None:
    """A run still being written: truncated last line, missing fields, no summary.json."""
    lines = (image_run / "episodes.jsonl").read_text().splitlines()
    sparse = {"task_id": "t-1", "family": "counting", "correct": False, "transcript": [{"turn": 0, "action": "", "observation": "hi"}]}
    (tmp_path / "episodes.jsonl").write_text(lines[1] + "\n" + json.dumps(sparse) + "\n" + lines[2][:40])
    html = write_viewer(tmp_path / "episodes.jsonl").read_text()
    assert html.count('class="card episode') == 2
    assert "line 3: not valid JSON" in html


# ----------------------------------------------------------------------------- browser


def test_viewer_renders_in_chromium(image_run: Path, video_run: Path, tmp_path: Path) -> None:
    out = write_viewer(image_run / "episodes.jsonl", tmp_path / "v" / "viewer.html")
    rows = _rows(image_run)
    # an image that goes missing after the page was written is marked by the page's script
    gone = image_run / "images" / "ep001_t2_1.png"
    backup = gone.read_bytes()
    gone.unlink()
    try:
        dom = chromium(out.as_uri() + "#correct=wrong", tmp_path)
    finally:
        gone.write_bytes(backup)
    els = parse_dom(dom)
    # the filter script ran: the hash selected wrong answers only
    n_wrong = sum(not r["correct"] for r in rows)
    count = next(e for e in els if e.attrs.get("id") == "shown-count").text
    assert count.startswith(f"{n_wrong} of {len(rows)} episodes shown"), count
    sections = select(els, "section", "episode")
    assert len(sections) == len(rows)
    for sec in sections:
        assert ("hidden" in sec.attrs) == (sec.attrs["data-correct"] == "1")
    index_rows = [e for e in select(els, "tr") if "data-family" in e.attrs]
    assert sum("hidden" not in e.attrs for e in index_rows) == n_wrong
    # verdicts, turns, code, images
    verdicts = [e for e in els if "verdict" in e.classes and "big" in e.classes]
    assert len(verdicts) == len(rows)
    assert {e.text.strip()[0] for e in verdicts} <= {"✓", "✗"}
    assert len([e for e in els if "turn" in e.classes]) == sum(len(r["transcript"]) for r in rows)
    thumbs = [e for e in els if e.tag == "img" and e.attrs.get("src", "").startswith("../")]
    assert len(thumbs) == sum(1 for r in rows for t in r["transcript"] for p in t["images"] if p.startswith("images/ep"))
    broken = [e for e in select(els, "a", "thumb") if "broken" in e.classes]
    assert [e.attrs["data-caption"].split()[0] for e in broken] == ["images/ep001_t2_1.png"]
    # agent text stayed text: no injected element ran or exists
    assert len(select(els, "script")) == 1
    assert select(els, "title")[0].text != "pwned"
    assert not [e for e in select(els, "img") if e.attrs.get("src") == "x"]
    first = next(s for s in sections if s.attrs["id"] == "ep-1")
    assert HOSTILE in first.text and "document.title='pwned'" in first.text

    # a screenshot of the video run's page: not blank, verdict colours drawn
    page = write_viewer(video_run / "episodes.jsonl", embed_images=True)
    png = tmp_path / "viewer.png"
    chromium(page.as_uri(), tmp_path, screenshot=png)
    keep_screenshot(png, "viewer.png")
    std, colours = pixel_stats(png)
    assert std > 10 and colours > 50, (std, colours)
    assert has_colour(png, (207, 34, 46), tol=25) or has_colour(png, (26, 127, 55), tol=25)
