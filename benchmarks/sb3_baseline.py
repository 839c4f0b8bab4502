"""The classic-RL baseline: stable-baselines3 PPO on macro actions, trained, saved and evaluated.

    python -m pyvision_gym.benchmarks.sb3_baseline --timesteps 3072 --out runs/sb3

Trains PPO (SB3's own ``MultiInputPolicy``) on
:class:`~pyvision_gym.integrations.sb3.MacroActionEnv` over the image families whose answers
fit the answer slots (train split), saves ``OUT/model.zip`` (the macro config inside), writes
the training curve to ``OUT/training.json``, then evaluates the saved model through the agent
spec ``sb3:OUT/model.zip`` and the ``direct`` baseline on a frozen suite (``--suite``,
default ``pvbench-image-v0``; ``--suite none`` skips it) and prints both with 95% intervals.
``--ship PATH`` also copies the model there (the repository's copy is
``agents/checkpoints/sb3-ppo-image.zip``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

from pyvision_gym.integrations.sb3 import (
    DEFAULT_FAMILIES,
    TOOLS,
    MacroActionEnv,
    MacroConfig,
    save_model,
)

PPO_SETTINGS: dict[str, Any] = {
    "n_steps": 128, "batch_size": 64, "n_epochs": 8, "learning_rate": 1e-3,
    "gamma": 0.99, "gae_lambda": 0.95, "ent_coef": 0.01,
}
#: The default training mix: every image family with multiple-choice questions.
CHOICE_FAMILIES = tuple(f for f in DEFAULT_FAMILIES["image"] if f != "counting")
POLICY_KWARGS: dict[str, Any] = {"net_arch": [64, 64], "features_extractor_kwargs": {"cnn_output_dim": 16}}


def make_callback(log: list[dict[str, Any]]) -> Any:
    """An SB3 callback that appends one row per rollout: finished episodes' reward, accuracy, tool calls."""
    from stable_baselines3.common.callbacks import BaseCallback

    class CurveCallback(BaseCallback):
        def _on_training_start(self) -> None:
            self.ended: list[dict[str, Any]] = []
            self.t0 = time.perf_counter()

        def _on_step(self) -> bool:
            for info, done, reward in zip(self.locals["infos"], self.locals["dones"], self.locals["rewards"], strict=True):
                if done:
                    self.ended.append({"reward": float(reward), "correct": bool(info.get("correct")),
                                       "tool_calls": int(info.get("tool_calls", 0))})
            return True

        def _on_rollout_end(self) -> None:
            n = len(self.ended)
            if n:
                log.append({"timesteps": int(self.num_timesteps), "episodes": n,
                            "wall_s": round(time.perf_counter() - self.t0, 1),
                            "reward": round(sum(e["reward"] for e in self.ended) / n, 4),
                            "accuracy": round(sum(e["correct"] for e in self.ended) / n, 4),
                            "tool_calls": round(sum(e["tool_calls"] for e in self.ended) / n, 3)})
                print(f"[sb3] {log[-1]}", flush=True)
            self.ended = []

    return CurveCallback()


def train(config: MacroConfig, timesteps: int, seed: int, n_envs: int, out: Path,
          difficulty: int | None = None, max_turns: int = 8) -> tuple[Path, dict[str, Any]]:
    """Train PPO on ``config``'s macro env; returns the saved model's path and the run's notes."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    torch.set_num_threads(1)  # the policy is tiny; the environments need the cores
    env_kwargs = {"config": config, "split": "train", "difficulty": difficulty, "max_turns": max_turns}
    venv = make_vec_env(MacroActionEnv, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    model = PPO("MultiInputPolicy", venv, seed=seed, policy_kwargs=POLICY_KWARGS, verbose=0, **PPO_SETTINGS)
    curve: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        model.learn(total_timesteps=timesteps, callback=make_callback(curve))
    finally:
        venv.close()
    wall = round(time.perf_counter() - t0, 1)
    notes = {"timesteps": int(model.num_timesteps), "train_wall_s": wall, "seed": seed, "n_envs": n_envs,
             "difficulty": difficulty, "max_turns": max_turns, "ppo": PPO_SETTINGS, "policy_kwargs": POLICY_KWARGS}
    path = save_model(model, out / "model.zip", config, extra={"training": notes})
    (out / "training.json").write_text(json.dumps({**notes, "curve": curve}, indent=1))
    return path, notes


def evaluate(model_path: Path, suite: str, out: Path, episodes: int | None = None) -> dict[str, dict[str, Any]]:
    """Run ``sb3:MODEL`` and ``direct`` on ``suite``; their summaries by spec."""
    from pyvision_gym.evaluation.runner import run_eval

    results = {}
    for spec in (f"sb3:{model_path}", "direct"):
        run_dir = out / suite / ("sb3" if spec.startswith("sb3") else spec)
        results[spec] = run_eval(spec, suite, run_dir, episodes=episodes, progress=False)
    return results


def report(results: dict[str, dict[str, Any]]) -> str:
    """One Markdown row per agent: accuracy with its 95% interval, tool calls, turns."""
    lines = ["| agent | accuracy (95% CI) | tool calls / episode | turns / episode |", "|---|---|---|---|"]
    for spec, s in results.items():
        acc = s["accuracy"]
        lo, hi = acc["ci95"]
        lines.append(f"| `{spec}` | {acc['accuracy']:.1%} ({lo:.1%}–{hi:.1%}), {acc['correct']}/{acc['n']} | "
                     f"{s['mean_tool_calls']:.2f} | {s['mean_turns']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--timesteps", type=int, default=3072, help="PPO environment steps (macro actions).")
    p.add_argument("--out", type=Path, default=Path("runs/sb3"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-envs", type=int, default=2)
    p.add_argument("--difficulty", type=int, default=None, help="Train on one difficulty (default: mixed).")
    p.add_argument("--families", nargs="+", default=list(CHOICE_FAMILIES),
                   help="Image families to train on (default: the multiple-choice ones).")
    p.add_argument("--answer-slots", type=int, default=4,
                   help="Answer actions (4 holds every option letter; 16 adds counts up to 15 for 'counting').")
    p.add_argument("--tools", nargs="+", default=["program"], choices=list(TOOLS))
    p.add_argument("--suite", default="pvbench-image-v0", help="Frozen suite to evaluate on ('none' to skip).")
    p.add_argument("--episodes", type=int, default=None, help="Evaluate on the suite's first N tasks only.")
    p.add_argument("--ship", type=Path, default=None, help="Also copy the trained model here.")
    a = p.parse_args(argv)
    if a.timesteps < 1:
        p.error("--timesteps must be positive")
    config = MacroConfig(modality="image", families=tuple(a.families), tools=tuple(a.tools), answer_slots=a.answer_slots)
    path, notes = train(config, a.timesteps, a.seed, a.n_envs, a.out, a.difficulty)
    print(f"[sb3] trained {notes['timesteps']} steps in {notes['train_wall_s']} s -> {path}")
    if a.ship is not None:
        a.ship.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, a.ship)
        print(f"[sb3] copied to {a.ship}")
    out: dict[str, Any] = {"model": str(path), "training": notes}
    if a.suite.lower() != "none":
        results = evaluate(path, a.suite, a.out, a.episodes)
        table = report(results)
        print(table)
        out["eval"] = {spec: {k: s[k] for k in ("accuracy", "mean_reward", "mean_tool_calls", "mean_turns")}
                       for spec, s in results.items()}
        (a.out / "report.md").write_text(table + "\n")
    (a.out / "result.json").write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
