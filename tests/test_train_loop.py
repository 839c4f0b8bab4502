"""The training loop end to end on the tiny model: SFT, RL steps, checkpoints, metrics, the plot,
resume, and the command line's config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pyvision_gym.cli import app
from pyvision_gym.train.config import ConfigError, load_config
from pyvision_gym.train.trainer import train

# A minute-sized run: text_reading with the toolbox, no image in the prompt, every filter off
# (an untrained model's groups are all zero-reward, so zero_variance would drop them all).
QUICK = [
    "steps=2", "val_every=2", "val_episodes=2", "save_every=1", "env.workers=4",
    "rollout.n=2", "rollout.gen_batch_size=2", "rollout.max_new_tokens=80", "batching.train_batch_size=2",
    "batching.filters=[]", "optim.mini_batch_size=2", "sft.episodes=4", "sft.epochs=1", "sft.batch_size=4",
    "env.kwargs.families=[text_reading]",  # expert turns of ~60 tokens, so the untrained model's turns stay short
]


@pytest.mark.slow
def test_sft_then_rl_writes_every_output_and_resumes(tmp_path: Path) -> None:
    cfg = load_config("tiny-cpu", [*QUICK, f"out_dir={tmp_path / 'run'}", f"env.cache_dir={tmp_path / 'cache'}"])
    summary = train(cfg, resume=False)
    run = tmp_path / "run"
    assert summary["steps"] == 2 and {"start@0", "after_sft@0", "final@2"} <= set(summary["validation"])
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    phases = {r["phase"] for r in rows}
    assert phases == {"val", "sft", "train"}
    step = next(r for r in rows if r["phase"] == "train")
    for key in ("reward/mean", "accuracy/mean", "tools/calls_mean", "tools/zero_share", "tools/at_turn_limit_share",
                "episode/turns_mean", "episode/response_tokens_mean", "learner/grad_norm", "learner/entropy",
                "learner/logp_gap_abs_mean", "time/generation_s", "time/environment_s", "time/learner_s",
                "batch/gen_batches", "perf/generated_tokens_per_s"):
        assert key in step, key
    assert (run / "curves.png").stat().st_size > 10_000 and any((run / "tensorboard").iterdir())
    assert (run / "latest").read_text().strip() == "step-000002"
    # resuming a finished run does nothing more; one more step continues from the checkpoint
    cfg3 = load_config("tiny-cpu", [*QUICK, "steps=3", f"out_dir={run}", f"env.cache_dir={tmp_path / 'cache'}"])
    summary3 = train(cfg3, resume=True)
    assert summary3["steps"] == 3 and (run / "latest").read_text().strip() == "step-000003"
    rows3 = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows3 if r["phase"] == "train"] == [1, 2, 3]
    _export_is_the_checkpoint_with_its_agent_settings(run, tmp_path / "exported")


def _export_is_the_checkpoint_with_its_agent_settings(run: Path, dest: Path) -> None:
    """``pyvision-gym export`` writes the latest checkpoint's weights as a model folder that
    ``vlm:hf:DEST`` loads with the run's agent settings (max_new_tokens, the toolbox)."""
    import torch

    from pyvision_gym.agents.registry import make_agent

    res = CliRunner().invoke(app, ["export", str(run), str(dest)])
    assert res.exit_code == 0, res.output
    overrides = {"toolbox": True, "show_image": False}  # tiny-cpu trains with both
    assert json.loads((dest / "pyvision_agent.json").read_text()) == {"max_new_tokens": 80, "env_overrides": overrides}
    assert json.loads((dest / "exported_from.json").read_text())["step"] == 3
    agent = make_agent(f"vlm:hf:{dest}")
    try:
        assert agent.sampling.max_new_tokens == 80 and agent.env_overrides == overrides
        assert agent.describe()["env_overrides"] == overrides
        saved = torch.load(run / "step-000003" / "model.pt", map_location="cpu")
        loaded = agent.backend.model.state_dict()
        assert all(torch.equal(loaded[k].float(), v.float()) for k, v in saved.items())
    finally:
        agent.close()
    bad = CliRunner().invoke(app, ["export", str(dest), str(dest.with_name("again"))])
    assert bad.exit_code == 2 and "not a training run folder (no config.yaml)" in bad.output


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="unknown config key 'optim.lrr'; did you mean 'lr'"):
        load_config("tiny-cpu", ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="'rollouts'; did you mean 'rollout'"):
        load_config("tiny-cpu", ["rollouts.n=2"])
    with pytest.raises(ConfigError, match="optim.lr: expected a float"):
        load_config("tiny-cpu", ["optim.lr=fast"])
    assert load_config("qwen2.5-vl-7b", ["optim.lr=3e-5"]).optim.lr == pytest.approx(3e-5)
    res = CliRunner().invoke(app, ["train", "--config", "tiny-cup"])
    assert res.exit_code == 2 and "did you mean 'tiny-cpu'" in res.output


def test_shipped_7b_config_has_the_papers_hyperparameters() -> None:
    cfg = load_config("qwen2.5-vl-7b")
    a, o, r, b = cfg.algorithm, cfg.optim, cfg.rollout, cfg.batching
    assert (o.lr, r.n, cfg.env.max_turns, cfg.env.tool_reward_per_turn) == (1e-6, 8, 5, 0.1)
    assert (r.gen_batch_size, b.train_batch_size, a.norm_by_std, a.loss_agg) == (32, 64, False, "token_mean")
    assert (a.clip_low, a.clip_high, a.clip_c, a.kl_coef, a.entropy_coef, r.temperature) == (0.2, 0.2, 3.0, 0.0, 0.0, 1.0)
    assert cfg.policy.freeze_vision and b.end_reason_allowlist == ["DONE", "EXCEED_MAX_TURNS", "ERROR_IN_ACTION"]
