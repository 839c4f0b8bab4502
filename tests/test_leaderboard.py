"""The leaderboard: grouping, ranking, suite-hash refusal, Markdown, the plots (one colour per agent,
no overlapping texts, the same-tokens note), and the HTML page in headless Chromium."""

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
from fixtures_runs import (
    chromium,
    has_colour,
    keep_screenshot,
    parse_dom,
    pixel_stats,
    select,
    wilson,
    write_run,
)
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox
from PIL import Image

from pyvision_gym.evaluation.board import agent_colors
from pyvision_gym.evaluation.leaderboard import (
    LeaderboardError,
    SuiteHashMismatch,
    build_leaderboard,
    main,
)
from pyvision_gym.evaluation.plot_labels import LABEL_GID
from pyvision_gym.evaluation.plots import (
    NOTE_GID,
    family_figure,
    same_tokens,
    short_label,
    token_figure,
    token_plot,
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


# ----------------------------------------------------------------------------- plots


def _texts(fig: Figure) -> list[tuple[str, Bbox]]:
    """Every visible, non-empty text of a one-axes figure with its rendered box (boxed texts with their box)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    ticks = [t for t in ax.get_xticklabels() if x0 <= t.get_position()[0] <= x1]  # ticks out of view are not drawn
    ticks += [t for t in ax.get_yticklabels() if y0 <= t.get_position()[1] <= y1]
    texts = [ax.title, ax.xaxis.label, ax.yaxis.label, *ticks, *ax.texts]
    texts += [t for legend in fig.legends for t in legend.get_texts()]
    out = []
    for t in texts:
        if not (t.get_visible() and t.get_text().strip()):
            continue
        box = Text.get_window_extent(t, renderer)  # the text alone, without an annotation's leader line
        patch = t.get_bbox_patch()
        out.append((t.get_text(), Bbox.union([box, patch.get_window_extent(renderer)]) if patch else box))
    return out


def _assert_no_overlap(fig: Figure) -> list[tuple[str, Bbox]]:
    texts = _texts(fig)
    inside = fig.bbox.padded(0.5)
    for i, (a, box) in enumerate(texts):
        assert inside.contains(box.x0, box.y0) and inside.contains(box.x1, box.y1), f"{a!r} outside the figure: {box}"
        for b, other in texts[i + 1 :]:
            assert not box.overlaps(other), f"{a!r} overlaps {b!r}"
    return texts


def _labels(fig: Figure) -> list[str]:
    """The names in the scatter's point labels (one per line)."""
    return [line for t in fig.axes[0].texts if t.get_gid() == LABEL_GID for line in t.get_text().splitlines()]


def _note(fig: Figure) -> str | None:
    notes = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == NOTE_GID]
    return notes[0] if notes else None


def _plain_run(root: Path, agent: str, acc: float, tokens: float, families: dict[str, float], full: float | None = None) -> Path:
    """A minimal documented-layout run folder with the given numbers."""
    d = root / re.sub(r"[^A-Za-z0-9]+", "-", agent)
    d.mkdir(parents=True)
    n = 8
    summary = {
        "suite": {"name": "synthetic", "hash": "feed", "modality": "video" if full else "image"},
        "agent": {"spec": agent},
        "episodes": n,
        "accuracy": {
            "overall": {"mean": acc, "ci95": wilson(round(acc * n), n), "n": n},
            "per_family": {f: {"mean": m, "ci95": wilson(round(m * n), n), "n": n} for f, m in families.items()},
        },
        "visual_tokens": {"mean": tokens},
    }
    if full is not None:
        summary["visual_tokens_full_video"] = {"mean": full}
    (d / "summary.json").write_text(json.dumps(summary))
    return d


def test_one_colour_per_agent_across_suites(runs: dict[str, Path], suites_dir: Path, tmp_path: Path) -> None:
    res = build_leaderboard(list(runs.values()), tmp_path / "out", suites_dir=suites_dir)
    expected = agent_colors([r.label for b in res.suites for r in b.runs])
    assert sorted(expected) == ["blind-guess", "scripted:oracle", "vllm:Qwen/Qwen2.5-VL-7B|t=0"]
    assert list(expected.values()) == ["#1f77b4", "#ff7f0e", "#2ca02c"]  # sorted labels take tab10 in order
    for b in res.suites:
        assert {r.label: r.color for r in b.runs} == {r.label: expected[r.label] for r in b.runs}
        for fig in (family_figure(b), token_figure(b)):
            handles = fig.legends[0].legend_handles
            legend = {t.get_text(): to_hex(h.get_facecolor()) for t, h in zip(fig.legends[0].get_texts(), handles, strict=True)}
            assert legend == {r.label: r.color for r in b.runs}
    # the oracle's colour shows in the image suite's and the video suite's plots alike, in the table swatches too
    html = res.html_path.read_text()
    oracle = tuple(int(expected["scripted:oracle"][i : i + 2], 16) for i in (1, 3, 5))
    for i, b64 in enumerate(re.findall(r'src="data:image/png;base64,([^"]+)"', html)):
        png = tmp_path / f"plot{i}.png"
        png.write_bytes(base64.b64decode(b64))
        assert has_colour(png, oracle, tol=8), png
    assert html.count(f'class="swatch" style="background: {expected["scripted:oracle"]}"') == 2
    assert agent_colors(["b", "a", "a"]) == {"a": "#1f77b4", "b": "#ff7f0e"}
    many = agent_colors([f"agent-{i:02d}" for i in range(30)])
    assert len(set(many.values())) == 30


def test_point_labels_never_overlap(tmp_path: Path, suites_dir: Path) -> None:
    """Eight agents, four on the very same spot and two a hair away: every name is shown, no two texts touch."""
    same = {"skill": 0.5, "seed": 7, "episodes": 12}
    dirs = [write_run(tmp_path / f"same{i}", agent=f"agent-{i}", **same) for i in range(4)]
    dirs += [
        write_run(tmp_path / "near-a", agent="near-a", token_scale=1.02, **same),
        write_run(tmp_path / "near-b", agent="near-b", token_scale=0.98, **same),
        write_run(tmp_path / "long", agent="vllm:Qwen/Qwen2.5-VL-72B-Instruct-AWQ|t=0.7|top_p=0.95", skill=0.55, seed=9, episodes=12),
        write_run(tmp_path / "zero", agent="blind", skill=0.5, seed=7, episodes=12, kinds=("direct",)),
    ]
    board = build_leaderboard(dirs, tmp_path / "out", suites_dir=suites_dir).suites[0]
    tokens = [r.number("visual_tokens") for r in board.runs]
    accs = [r.accuracy for r in board.runs]
    assert len(board.runs) == 8 and len(set(zip(tokens, accs, strict=True))) <= 5  # several coincide
    fig = token_figure(board)
    _assert_no_overlap(fig)
    names = _labels(fig)
    shown = {n.removesuffix(" (0 tokens)") for n in names}
    assert len(names) == 8 and shown == {short_label(r.label, 32) for r in board.runs}
    assert _note(fig) is None
    png = tmp_path / "tokens.png"
    png.write_bytes(base64.b64decode(token_plot(board)))
    for r in board.runs:  # coinciding agents are drawn as rings: every colour shows
        assert has_colour(png, tuple(int(r.color[i : i + 2], 16) for i in (1, 3, 5)), tol=8), r.label
    _assert_no_overlap(family_figure(board))


def test_family_ticks_and_legend_fit(tmp_path: Path, suites_dir: Path) -> None:
    """Many long family names and agents: tick labels wrap or slant, the legend wraps into rows."""
    families = {f"family_with_a_rather_long_name_{i}": 0.1 * i for i in range(10)}
    dirs = [_plain_run(tmp_path, f"agent-with-a-long-name-number-{i}", 0.5, 100.0 * (i + 1), families) for i in range(9)]
    board = build_leaderboard(dirs, tmp_path / "out", suites_dir=suites_dir).suites[0]
    fig = family_figure(board)
    texts = _assert_no_overlap(fig)
    assert sum(t.startswith("agent-with") for t, _ in texts) == 9
    _assert_no_overlap(token_figure(board))


def test_token_plot_note_when_all_agents_spend_the_same(tmp_path: Path, suites_dir: Path) -> None:
    """Same tokens for every agent: the plot stays and says so; different tokens: no note."""
    fams = {"counting": 0.5}
    same = [_plain_run(tmp_path / "same", f"a{i}", acc, 3084.0, fams) for i, acc in enumerate((1.0, 0.375, 0.125, 0.125))]
    board = build_leaderboard(same, tmp_path / "o1", suites_dir=suites_dir).suites[0]
    fig = token_figure(board)
    assert _note(fig) == "every agent spent 3,084 visual tokens per episode"
    _assert_no_overlap(fig)
    assert sorted(_labels(fig)) == ["a0", "a1", "a2", "a3"]

    zero = [_plain_run(tmp_path / "zero", f"v{i}", acc, 0.0, fams, full=1200.0) for i, acc in enumerate((1.0, 0.0, 0.0))]
    board = build_leaderboard(zero, tmp_path / "o2", suites_dir=suites_dir).suites[0]
    fig = token_figure(board)
    assert _note(fig) == "every agent spent 0 visual tokens per episode"
    texts = [t for t, _ in _assert_no_overlap(fig)]
    assert "whole video (2 fps)" in texts  # the video suite keeps its full-video reference
    assert "mean visual tokens per episode (log); 0 plotted at 1" in texts

    mixed = [_plain_run(tmp_path / "mixed", f"m{i}", 0.5, tok, fams, full=1200.0) for i, tok in enumerate((0.0, 1080.0, 300.0))]
    board = build_leaderboard(mixed, tmp_path / "o3", suites_dir=suites_dir).suites[0]
    fig = token_figure(board)
    assert _note(fig) is None and same_tokens(board) is None
    texts = [t for t, _ in _assert_no_overlap(fig)]
    assert "whole video (2 fps)" in texts
    one = build_leaderboard(same[:1], tmp_path / "o4", suites_dir=suites_dir).suites[0]
    assert same_tokens(one) is None and _note(token_figure(one)) is None
