"""The leaderboard: grouping, ranking, suite-hash refusal, Markdown, and the HTML page in headless Chromium."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures_runs import chromium, keep_screenshot, parse_dom, pixel_stats, select, write_run
from PIL import Image

from pyvision_gym.evaluation.leaderboard import (
    LeaderboardError,
    SuiteHashMismatch,
    build_leaderboard,
    main,
)

IMG_SUITE, VID_SUITE = "fixture-image-mini", "fixture-video-mini"
IMG_HASH, VID_HASH = "a1b2c3d4e5f60718", "ffee001122334455"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three image runs and two video runs of different skill and token budgets."""
    root = tmp_path_factory.mktemp("runs")
    img = {"suite_name": IMG_SUITE, "suite_hash": IMG_HASH, "episodes": 24}
    vid = {"suite_name": VID_SUITE, "suite_hash": VID_HASH, "modality": "video", "episodes": 12}
    return {
        "oracle": write_run(root / "img-oracle", agent="scripted:oracle", skill=0.95, seed=1, **img),
        "qwen": write_run(root / "img-qwen", agent="vllm:Qwen/Qwen2.5-VL-7B|t=0", skill=0.6, seed=2, token_scale=3.0, **img),
        "blind": write_run(root / "img-blind", agent="blind-guess", skill=0.3, seed=3, kinds=("direct",), **img),
        "v-oracle": write_run(root / "vid-oracle", agent="scripted:oracle", skill=0.9, seed=4, **vid),
        "v-qwen": write_run(root / "vid-qwen", agent="vllm:Qwen/Qwen2.5-VL-7B|t=0", skill=0.5, seed=5, token_scale=4.0, **vid),
    }


@pytest.fixture()
def suites_dir(tmp_path: Path) -> Path:
    d = tmp_path / "suites"
    d.mkdir()
    return d


def _freeze(suites_dir: Path, name: str, suite_hash: str) -> None:
    (suites_dir / f"{name}.json").write_text(json.dumps({"name": name, "hash": suite_hash, "tasks": []}))


def _summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def _table(markdown: str, suite: str) -> list[list[str]]:
    """The rows (header first) of one suite's Markdown table."""
    section = markdown.split(f"## {suite}\n", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("| ")]
    cells = [[c.strip() for c in re.split(r"(?<!\\)\|", ln)[1:-1]] for ln in lines]
    return [cells[0], *cells[2:]]


# ----------------------------------------------------------------------------- content


def test_markdown_tables(runs: dict[str, Path], suites_dir: Path, tmp_path: Path) -> None:
    _freeze(suites_dir, IMG_SUITE, IMG_HASH)
    _freeze(suites_dir, VID_SUITE, VID_HASH)
    res = build_leaderboard(list(runs.values()), tmp_path / "out", suites_dir=suites_dir)
    assert res.markdown_path.read_text() == res.markdown
    assert res.html_path.is_file()
    assert [b.name for b in res.suites] == [IMG_SUITE, VID_SUITE]

    img = _table(res.markdown, IMG_SUITE)
    head = img[0]
    assert head[:3] == ["Rank", "Agent", "Accuracy % (95% CI)"]
    assert head[3:6] == ["chart_reading", "counting", "visual_search_attribute"]
    assert head[6:] == ["Mean turns", "Mean tool calls", "Zero-tool share", "Mean visual tokens"]
    accs = {name: _summary(runs[name])["accuracy"]["overall"]["mean"] for name in ("oracle", "qwen", "blind")}
    order = sorted(accs, key=lambda k: -accs[k])
    labels = {"oracle": "scripted:oracle", "qwen": "vllm:Qwen/Qwen2.5-VL-7B\\|t=0", "blind": "blind-guess"}
    assert [row[1] for row in img[1:]] == [labels[k] for k in order]
    assert [row[0] for row in img[1:]] == ["1", "2", "3"]
    top = _summary(runs[order[0]])
    lo, hi = top["accuracy"]["overall"]["ci95"]
    assert img[1][2] == f"{top['accuracy']['overall']['mean'] * 100:.1f}% [{lo * 100:.1f}, {hi * 100:.1f}]"
    assert img[1][5] == f"{top['accuracy']['per_family']['visual_search_attribute']['mean'] * 100:.1f}"
    assert img[1][8] == f"{top['zero_tool_call_share'] * 100:.1f}%"
    assert img[1][9] == f"{top['visual_tokens']['mean']:,.0f}"
    blind = next(r for r in img[1:] if r[1] == "blind-guess")
    assert blind[7] == "0.00" and blind[8] == "100.0%"

    vid = _table(res.markdown, VID_SUITE)
    assert vid[0][-1] == "Full-video tokens" and "Full-video tokens" not in img[0]
    assert vid[0][3:5] == ["event_counting", "motion_direction"]
    assert all(row[-1] == "4,608" for row in vid[1:])
    assert f"hash `{IMG_HASH}`" in res.markdown and f"hash `{VID_HASH}`" in res.markdown
    assert "checked against the frozen suite" in res.html_path.read_text()


def test_ties_share_rank_and_duplicate_agents(tmp_path: Path, suites_dir: Path) -> None:
    a = write_run(tmp_path / "a", agent="same-agent", skill=0.5, seed=7, kinds=("direct",))
    b = write_run(tmp_path / "b", agent="same-agent", skill=0.5, seed=7, kinds=("direct",), token_scale=0.5)
    c = write_run(tmp_path / "c", agent="other<script>alert(1)</script>", skill=0.0, seed=8, kinds=("direct",))
    res = build_leaderboard([a, b, c], tmp_path / "out", suites_dir=suites_dir)
    rows = _table(res.markdown, "image-mini")[1:]
    other = "other&lt;script&gt;alert(1)&lt;/script&gt;"
    assert [(r[0], r[1]) for r in rows] == [("1", "same-agent (b)"), ("1", "same-agent (a)"), ("3", other)]
    assert "no frozen suite file" in res.suites[0].hash_source
    html = res.html_path.read_text()
    assert "<script" not in html and other in html


def test_runner_layout_reads_the_same(tmp_path: Path, suites_dir: Path) -> None:
    """A summary in the eval runner's layout gives the same row as the documented layout."""
    kw = {"agent": "a", "suite_name": VID_SUITE, "suite_hash": VID_HASH, "modality": "video", "episodes": 9, "seed": 11}
    doc = write_run(tmp_path / "doc", **kw)
    run = write_run(tmp_path / "runner", layout="runner", **kw)
    assert "overall" not in _summary(run)["accuracy"] and "per_family" in _summary(run)
    md_doc = build_leaderboard([doc], tmp_path / "o1", suites_dir=suites_dir).markdown
    md_run = build_leaderboard([run], tmp_path / "o2", suites_dir=suites_dir).markdown
    assert _table(md_doc, VID_SUITE) == _table(md_run, VID_SUITE)
    assert _table(md_run, VID_SUITE)[1][-1] == "4,608"  # full-video tokens read from visual_tokens
    assert "unfinished or missing" in md_run  # an AGENT_ERROR episode is flagged
    summary = _summary(run)
    summary["suite"]["tasks_in_suite"] = 20
    (run / "summary.json").write_text(json.dumps(summary))
    md_run = build_leaderboard([run], tmp_path / "o3", suites_dir=suites_dir).markdown
    assert "ran 9 of the suite's 20 tasks (a subset)" in md_run


# ----------------------------------------------------------------------------- refusals


def test_refuses_run_on_other_suite_hash(runs: dict[str, Path], suites_dir: Path, tmp_path: Path) -> None:
    _freeze(suites_dir, IMG_SUITE, "0000frozen0000")
    with pytest.raises(SuiteHashMismatch) as err:
        build_leaderboard([runs["oracle"], runs["v-oracle"]], tmp_path / "out", suites_dir=suites_dir)
    msg = str(err.value)
    assert str(runs["oracle"]) in msg and IMG_HASH in msg and "0000frozen0000" in msg
    assert str(suites_dir / f"{IMG_SUITE}.json") in msg
    assert str(runs["v-oracle"]) not in msg  # the video suite has no frozen file: fine
    assert not (tmp_path / "out").exists()
    # explicit expected hashes win over the file
    res = build_leaderboard([runs["oracle"]], tmp_path / "out", {IMG_SUITE: IMG_HASH}, suites_dir=suites_dir)
    assert res.suites[0].hash_source == "expected_hashes"
    with pytest.raises(SuiteHashMismatch, match="expected_hashes"):
        build_leaderboard([runs["oracle"]], tmp_path / "out", {IMG_SUITE: "beef"}, suites_dir=suites_dir)


def test_refuses_mixed_hashes_without_frozen_file(runs: dict[str, Path], suites_dir: Path, tmp_path: Path) -> None:
    other = write_run(tmp_path / "img-regenerated", agent="scripted:oracle", suite_name=IMG_SUITE, suite_hash="9999", seed=1)
    with pytest.raises(SuiteHashMismatch) as err:
        build_leaderboard([runs["oracle"], runs["qwen"], other], tmp_path / "out", suites_dir=suites_dir)
    msg = str(err.value)
    assert "no frozen suite file" in msg and IMG_HASH in msg and "9999" in msg and str(other) in msg


def test_unreadable_runs(tmp_path: Path, runs: dict[str, Path]) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "summary.json").write_text("{not json")
    with pytest.raises(LeaderboardError, match="bad.*cannot read summary.json"):
        build_leaderboard([bad], tmp_path / "out")
    (bad / "summary.json").write_text(json.dumps({"suite": {"name": "x", "hash": "y"}}))
    with pytest.raises(LeaderboardError, match="no overall accuracy"):
        build_leaderboard([bad], tmp_path / "out")
    with pytest.raises(LeaderboardError, match="no such run folder"):
        build_leaderboard([tmp_path / "missing"], tmp_path / "out")


def test_cli(runs: dict[str, Path], suites_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a parent folder expands to the runs below it
    assert main([str(runs["oracle"].parent), "--out", str(tmp_path / "o"), "--suites-dir", str(suites_dir)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("# pyvision-gym leaderboard") and f"## {VID_SUITE}" in out.out
    assert "leaderboard.html" in out.err
    assert main([str(runs["oracle"]), "--out", str(tmp_path / "o"), "--expect", f"{IMG_SUITE}=nope"]) == 2
    err = capsys.readouterr().err
    assert "error: refusing" in err and "nope" in err and IMG_HASH in err
    # the module entry point, as documented, from outside the checkout
    proc = subprocess.run(
        [sys.executable, "-m", "pyvision_gym.evaluation.leaderboard", str(runs["v-qwen"]), "--out", str(tmp_path / "m"), "--suites-dir", str(suites_dir)],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| 1 | vllm:Qwen/Qwen2.5-VL-7B\\|t=0 |" in proc.stdout


# ----------------------------------------------------------------------------- browser


def test_leaderboard_html_in_chromium(runs: dict[str, Path], suites_dir: Path, tmp_path: Path) -> None:
    res = build_leaderboard(list(runs.values()), tmp_path / "out", suites_dir=suites_dir)
    html = res.html_path.read_text()
    # self-contained: no external resources
    assert not re.search(r'(src|href)="(https?:)?//', html) and "<link" not in html
    # the embedded plots are real, non-blank PNGs
    plots = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(plots) == 2 * len(res.suites)
    for b64 in plots:
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            assert im.width > 300 and np.asarray(im.convert("L")).std() > 5

    els = parse_dom(chromium(res.html_path.as_uri(), tmp_path))
    suites = select(els, "section", "suite")
    assert [s.attrs["data-suite"] for s in suites] == [IMG_SUITE, VID_SUITE]
    ranked = [e for e in select(els, "tr") if "data-rank" in e.attrs]
    assert len(ranked) == len(runs)
    assert len([e for e in select(els, "img") if "plot" in (e.attrs.get("class") or "")]) == 4
    headers = [e.text.strip() for e in select(els, "th")]
    assert headers.count("full-video tokens") == 1 and "visual search attribute" in headers
    assert "vllm:Qwen/Qwen2.5-VL-7B|t=0" in [e.text for e in els if "name" in e.classes]

    png = tmp_path / "leaderboard.png"
    chromium(res.html_path.as_uri(), tmp_path, screenshot=png)
    keep_screenshot(png, "leaderboard.png")
    std, colours = pixel_stats(png)
    assert std > 10 and colours > 50, (std, colours)
