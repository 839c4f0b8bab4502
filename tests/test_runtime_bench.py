"""Smoke test of the runtime benchmark: it runs end to end and writes a complete JSON report.

Timing values are not asserted (they depend on the machine); only that every scenario was
measured under every design and that every target carries its fields.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCENARIOS = {"a_assign", "a_print", "b_crop_zoom_show", "c_video_frame", "d_reset_image", "d_reset_empty"}
DESIGNS = {"floor", "runtime", "naive"}
TARGETED = {"a_assign", "a_print", "b_crop_zoom_show", "d_reset_image", "d_reset_empty"}


@pytest.mark.slow
def test_runtime_bench_quick_writes_complete_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pyvision_gym.benchmarks.runtime_bench", "--quick", "--repeats", "3", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "targets met" in proc.stdout

    data = json.loads(out.read_text())
    assert set(data["scenarios"]) == SCENARIOS
    for key, scenario in data["scenarios"].items():
        assert set(scenario["designs"]) == DESIGNS, key
        for design, stats in scenario["designs"].items():
            for field in ("median_ms", "p99_ms", "mean_ms", "min_ms", "max_ms"):
                assert stats[field] > 0, (key, design, field)
            assert stats["p99_ms"] >= stats["median_ms"], (key, design)
            assert stats["n"] == (1 if design == "naive" else 3), (key, design)
        if key.startswith("d_"):
            idle = scenario["runtime_after_idle"]
            assert idle["median_ms"] > 0 and idle["p99_ms"] > 0 and idle["n"] == 3, key
        target = scenario["target"]
        if key in TARGETED:
            assert set(target) >= {"text", "metric", "threshold", "value", "pass"}, key
            assert isinstance(target["pass"], bool) and target["value"] > 0
        else:
            assert target is None

    assert {t["scenario"] for t in data["targets"]} == TARGETED
    meta = data["meta"]
    for field in ("cpu_count", "python", "isolation_method", "isolation", "date_utc"):
        assert meta[field], field


@pytest.mark.slow
def test_reset_bench_compares_both_transports(tmp_path: Path) -> None:
    out = tmp_path / "reset.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pyvision_gym.benchmarks.reset_bench", "--repeats", "2", "--env-seeds", "2",
         "--cache", str(tmp_path / "media"), "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"runtime 2000x1500", "runtime 7277x4313", "env PyVisionImage-v0"}
    for case in results.values():
        assert set(case) == {"socket", "memfd"}
        for measures in case.values():
            assert all(m["median"] > 0 and m["n"] == 2 for m in measures.values())
    assert "socket (before)" in proc.stdout and "memfd (now)" in proc.stdout


def test_parsing_bench_times_both_parsers(tmp_path: Path) -> None:
    out = tmp_path / "parsing.json"
    proc = subprocess.run(
        [sys.executable, "-m", "pyvision_gym.benchmarks.parsing_bench", "--max-chars", "4000", "--json", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert {r["chars"] for r in data["rows"]} <= {996, 1000, 1011, 1014, 3996, 4000, 4014}
    assert all(r["linear_ms"] > 0 and r["lazy_regex_ms"] is not None for r in data["rows"])
    assert data["worst_ms"] > 0 and "worst case" in proc.stdout
