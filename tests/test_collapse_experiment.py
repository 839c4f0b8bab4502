"""The interaction-collapse experiment: interval math and start/end windows on hand-made rows, the
report's verdicts derived from the numbers, the arms' configs, and the --quick run end to end
(outputs, the shared SFT start, resuming without redoing finished runs)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from transformers import AutoModelForImageTextToText

from pyvision_gym.benchmarks import collapse_experiment as ce
from pyvision_gym.benchmarks.collapse_report import report_markdown
from pyvision_gym.benchmarks.collapse_stats import (
    MEASURES,
    aggregate,
    aggregate_arm,
    dedupe,
    start_end,
    t_interval,
)

T_975_DF2 = 4.302652729911275  # Student t quantile 0.975 with 2 degrees of freedom (statistical tables)


# ----------------------------------------------------------------------------- interval math
def test_t_interval_by_hand() -> None:
    iv = t_interval([1.0, 2.0, 3.0])  # mean 2, sd 1, n 3
    half = T_975_DF2 / math.sqrt(3)
    assert iv["n"] == 3 and iv["mean"] == pytest.approx(2.0)
    assert (iv["low"], iv["high"]) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    two = t_interval([0.0, 1.0])  # sd 0.7071, t(0.975, 1) = 12.706: a very wide interval
    assert two["low"] == pytest.approx(0.5 - 12.7062047 * math.sqrt(0.5) / math.sqrt(2), rel=1e-6)
    assert t_interval([0.4]) == {"mean": 0.4, "low": None, "high": None, "n": 1}
    assert t_interval([]) == {"mean": None, "low": None, "high": None, "n": 0}
    assert t_interval([1.0, float("nan"), 3.0])["n"] == 2  # non-finite values are left out
    same = t_interval([0.25, 0.25, 0.25])
    assert same["low"] == same["high"] == pytest.approx(0.25)


def test_dedupe_keeps_the_last_row_per_step_and_cuts_extra_steps() -> None:
    rows = [{"phase": "train", "step": 1, "x": 1.0}, {"phase": "train", "step": 2, "x": 2.0},
            {"phase": "train", "step": 2, "x": 5.0}, {"phase": "val", "step": 2, "x": 9.0},
            {"phase": "train", "step": 3, "x": 3.0}]  # fmt: skip
    out = dedupe(rows, max_step=2)
    assert [(r["phase"], r["step"], r["x"]) for r in out] == [("train", 1, 1.0), ("train", 2, 5.0), ("val", 2, 9.0)]


def test_start_end_windows() -> None:
    pts = {s: float(s) for s in range(1, 9)}  # 8 steps: window 2
    assert start_end(pts, "train", 8) == (1.5, 7.5)
    assert start_end({0: 0.2, 4: 0.5, 8: 0.9}, "val", 8) == (0.2, 0.9)
    assert start_end({1: 3.0, 2: 4.0}, "train", 2) == (3.0, 4.0)  # window 1
    assert start_end({}, "train", 4) == (None, None)


def _rows(calls: list[float], zero: list[float], val_calls: tuple[float, float], steps: int) -> list[dict[str, Any]]:
    rows = [{"phase": "val", "step": 0, "tools/calls_mean": val_calls[0]}]
    for s in range(1, steps + 1):
        rows.append({"phase": "train", "step": s, "tools/calls_mean": calls[s - 1], "tools/zero_share": zero[s - 1],
                     "episode/turns_mean": 3.0, "accuracy/mean": 0.5, "batch/trajectories_drawn": 8.0,
                     "batch/trajectories_trained": 4.0})
    rows.append({"phase": "val", "step": steps, "tools/calls_mean": val_calls[1]})
    return rows


def test_aggregate_arm_on_hand_made_rows() -> None:
    by_seed = {0: _rows([2, 2, 1, 1], [0, 0, 0.5, 0.5], (2.0, 1.0), 4),
               1: _rows([2, 2, 2, 0], [0, 0.25, 0.25, 1], (2.0, 0.0), 4),
               2: _rows([3, 1], [0, 0], (2.0, 2.0), 2)}  # seed 2 did not finish: curves only
    arm = aggregate_arm(by_seed, finished={0, 1}, steps=4)
    calls = arm["curves"]["train"]["tools/calls_mean"]
    assert calls["steps"] == [1, 2, 3, 4] and calls["n"] == [3, 3, 2, 2]
    assert calls["mean"][0] == pytest.approx(7 / 3) and calls["per_seed"]["2"] == [3.0, 1.0, None, None]
    se = arm["start_end"]["train"]["tools/calls_mean"]  # window 1: step 1 and step 4
    assert se["per_seed"] == {"0": [2.0, 1.0], "1": [2.0, 0.0]}
    assert se["change"]["mean"] == pytest.approx(-1.5) and se["change"]["n"] == 2
    assert se["change"]["low"] == pytest.approx(-1.5 - 12.7062047 * math.sqrt(0.5) / math.sqrt(2), rel=1e-6)
    assert arm["start_end"]["val"]["tools/calls_mean"]["end"]["mean"] == pytest.approx(0.5)
    assert arm["budget"]["generated_episodes"]["mean"] == 32.0 and arm["budget"]["trained_trajectories"]["mean"] == 16.0


# ----------------------------------------------------------------------------- the report's verdicts
def _fake_experiment(tmp_path: Path, tool_calls: dict[str, list[list[float]]]) -> dict[str, Any]:
    """Run folders with metrics.jsonl for arms a, b, c; ``tool_calls[arm][seed]`` per step."""
    steps = len(tool_calls["a"][0])
    seeds = list(range(len(tool_calls["a"])))
    arms = ce.make_arms(4)
    records = []
    for arm in arms:
        for seed in seeds:
            calls = tool_calls[arm.key][seed]
            rows = [{"phase": ph, "step": s, "tools/calls_mean": c, "tools/zero_share": max(0.0, 1 - c / 2),
                     "episode/turns_mean": 1 + c, "accuracy/mean": 0.4, "tools/errors_mean": 0.3}
                    for s, c in enumerate(calls, start=1) for ph in ("train",)]  # fmt: skip
            rows += [{"phase": "val", "step": 0, "tools/calls_mean": calls[0], "tools/zero_share": 0.0,
                      "episode/turns_mean": 3.0, "accuracy/mean": 0.4, "tools/errors_mean": 0.5}]
            folder = tmp_path / arm.key / f"seed-{seed}"
            folder.mkdir(parents=True)
            (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            records.append({"run": f"arm {arm.key} seed {seed}", "seed": seed, "arm": arm.key, "status": "done", "seconds": 60.0})
    setup = {"out": str(tmp_path), "base": "tiny-cpu", "quick": False, "seeds": seeds, "steps": steps,
             "arms": [{"key": a.key, "label": a.label, "knobs": a.knobs} for a in arms], "task_mix": {"families": ["counting"]},
             "max_turns": 4, "tool_reward_per_turn": 0.1, "train_batch_size": 4, "n": 4, "lr": 1e-4, "max_new_tokens": 128,
             "sft": "SFT", "val_episodes": 16, "val_every": 4, "wall_s": 540.0}  # fmt: skip
    return aggregate(setup, records)


def test_report_calls_a_null_result_when_the_arms_overlap(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    noisy = {k: [list(2 + rng.normal(0, 0.3, 4)) for _ in range(3)] for k in "abc"}
    text = report_markdown(_fake_experiment(tmp_path, noisy))
    assert "**Null result:**" in text and "consistent with the paper" not in text
    assert "| (a) | tool calls per episode |" in text and "3 seeds" in text


def test_report_states_the_collapse_when_the_numbers_show_it(tmp_path: Path) -> None:
    collapse = {"a": [[2.0, 1.5, 0.6, 0.2], [2.1, 1.4, 0.5, 0.1], [1.9, 1.6, 0.4, 0.3]],
                "b": [[2.0, 2.0, 1.9, 2.0], [2.0, 2.1, 2.0, 1.9], [2.1, 2.0, 2.0, 2.1]],
                "c": [[2.0, 2.2, 2.3, 2.4], [2.0, 2.1, 2.4, 2.5], [1.9, 2.2, 2.3, 2.3]]}  # fmt: skip
    results = _fake_experiment(tmp_path, collapse)
    text = report_markdown(results)
    assert "Null result" not in text and "consistent with the paper's claim" in text
    assert "fell beyond the interval in: (a)." in text
    change = results["arms"]["a"]["start_end"]["train"]["tools/calls_mean"]["change"]
    assert change["high"] < 0  # the sentence rests on this interval
    one_seed = report_markdown(_fake_experiment(tmp_path / "one", {k: v[:1] for k, v in collapse.items()}))
    assert "One seed per arm: no intervals" in one_seed and "consistent with" not in one_seed


# ----------------------------------------------------------------------------- the arms' configs
def _design(tmp_path: Path, *extra: str) -> ce.Design:
    return ce.design_from_args(ce.parser().parse_args(["--out", str(tmp_path), *extra]))


def test_arms_differ_exactly_in_their_knobs(tmp_path: Path) -> None:
    design = _design(tmp_path, "--seeds", "2", "--set", "optim.lr=5e-5")
    start = tmp_path / "start-model"
    cfgs = {a.key: ce.arm_config(design, a, 1, start).to_dict() for a in design.arms}
    run_keys = ("name", "out_dir")
    assert ce.config_diff(cfgs["a"], cfgs["b"], run_keys) == ["env.reward"]
    assert set(ce.config_diff(cfgs["b"], cfgs["c"], run_keys)) == set(ce.ARM_KNOBS) - {"env.reward"}
    a, c = cfgs["a"], cfgs["c"]
    assert (a["env"]["reward"], a["batching"]["filters"], a["batching"]["max_gen_batches"]) == ("accuracy", [], 1)
    assert a["rollout"]["gen_batch_size"] == a["batching"]["train_batch_size"] == 4
    assert c["rollout"]["gen_batch_size"] == 8 and c["batching"]["rank_by_std"] is True
    assert c["batching"]["filters"] == ["zero_variance", "image_tokens", "over_length", "end_reason"]
    for cfg in cfgs.values():  # shared: seed, budget, start, task mix, the user's --set
        assert (cfg["seed"], cfg["steps"], cfg["optim"]["lr"], cfg["sft"]["enabled"]) == (1, 16, 5e-5, False)
        assert cfg["policy"]["model_path"] == str(start) and cfg["env"]["kwargs"] == ce.TASK_MIX
    plan = [name for name, _, _ in ce.plan_runs(design)]  # one SFT start, shared by every arm and seed
    assert plan == ["sft seed 0", *(f"arm {a} seed {s}" for s in (0, 1) for a in "abc")]
    assert design.sft_seed(1) == 0
    per_seed = _design(tmp_path, "--seeds", "2", "--first-seed", "3", "--sft-per-seed")
    assert [n for n, _, _ in ce.plan_runs(per_seed)].count("sft seed 4") == 1 and per_seed.sft_seed(4) == 4


def test_bad_settings_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ce.ExperimentError, match="env.reward is what the arms differ in"):
        _design(tmp_path, "--set", "env.reward=accuracy")
    with pytest.raises(ce.ExperimentError, match="batching.filters is what the arms differ in"):
        _design(tmp_path, "--set", "batching={}")
    with pytest.raises(ce.ExperimentError, match="unknown arm"):
        _design(tmp_path, "--arms", "a,d")
    assert ce.main(["--out", str(tmp_path), "--filters", "zero_varience"]) == 2  # a typo in a filter name
    mixed = _design(tmp_path, "--set", "env.kwargs.families=[text_reading]", "--arms", "a,c")
    cfg = ce.arm_config(mixed, mixed.arms[0], 0, None)
    assert cfg.env.kwargs["families"] == ["text_reading"] and cfg.env.kwargs["toolbox"] is True and cfg.sft.enabled
    assert [a.key for a in mixed.arms] == ["a", "c"]


# ----------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_quick_run_end_to_end_and_resume(tmp_path: Path) -> None:
    out = tmp_path / "collapse"
    argv = ["--quick", "--out", str(out), "--set", f"env.cache_dir={tmp_path / 'cache'}"]
    assert ce.main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert sorted(results["arms"]) == ["a", "b", "c"]
    for arm in results["arms"].values():
        for key, _ in MEASURES:
            assert arm["curves"]["train"][key]["steps"] == [1, 2], key
            assert arm["curves"]["val"][key]["steps"] == [0, 2], key
            assert all(v is not None for v in arm["curves"]["train"][key]["mean"])
    assert results["arms"]["c"]["budget"]["generated_episodes"]["mean"] == 2 * results["arms"]["a"]["budget"]["generated_episodes"]["mean"]
    assert (out / "collapse.png").stat().st_size > 20_000
    report = (out / "report.md").read_text()
    assert "--quick" in report and "| (c) | accuracy |" in report and "One seed per arm" in report

    # the configs the trainer actually ran with differ only in the arms' knobs (and the run's name and folder)
    stored = {k: yaml.safe_load((out / k / "seed-0" / "config.yaml").read_text()) for k in "abc"}
    assert ce.config_diff(stored["a"], stored["b"], ("name", "out_dir")) == ["env.reward"]
    assert set(ce.config_diff(stored["b"], stored["c"], ("name", "out_dir"))) == set(ce.ARM_KNOBS) - {"env.reward"}

    # every arm starts from the SFT stage's weights, exported once
    sft = out / "sft" / "seed-0"
    exported = AutoModelForImageTextToText.from_pretrained(sft / "model").state_dict()  # as the arms load it
    trained = torch.load(sft / "step-000000" / "model.pt", map_location="cpu")
    assert set(exported) == set(trained) and all(torch.equal(exported[k], trained[k]) for k in trained)
    assert stored["a"]["policy"]["model_path"] == str(sft / "model") and not stored["a"]["sft"]["enabled"]
    assert sorted(p.name for p in (out / "a" / "seed-0").glob("step-*")) == ["step-000002"]  # older ones pruned

    # a second call redoes nothing; a changed config is refused by name, not silently mixed in
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/seed-0/metrics.jsonl")}
    assert ce.main(argv) == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert len(runs) == 4 and all(r["skipped"] and r["status"] == "done" for r in runs)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/seed-0/metrics.jsonl")} == before
    assert ce.main([*argv, "--set", "optim.lr=0.5"]) == 2


def test_run_state_reads_old_folders_at_the_new_fields_defaults(tmp_path: Path) -> None:
    """A run folder written before a config field existed is the same config (the field at its
    default); a real difference is still an error naming the key."""
    from pyvision_gym.train.config import load_config

    cfg = load_config("tiny-cpu", [f"out_dir={tmp_path}"])
    stored = cfg.to_dict()
    del stored["policy"]["tiny_model_overrides"], stored["sft"]["lr_schedule"]  # fields added later
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    assert ce.run_state(cfg) == "fresh"
    stored["optim"]["lr"] = 1.0
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(stored))
    with pytest.raises(ce.ExperimentError, match=r"differs in: optim\.lr"):
        ce.run_state(cfg)
