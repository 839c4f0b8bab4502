"""Expert success per task family, measured through the real environments and runtime.

    python -m benchmarks.expert_success [--seeds 20] [--json benchmarks/results/expert_success.json]

For every family and difficulty, runs the family's scripted expert as an agent would act
(code turns through ``env.step``, then ``<answer>`` with the last printed line) on the
``test`` split, and prints a Markdown table with an example question per family, the success
rate, turns, visual tokens and seconds per episode.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
from tqdm import tqdm

import pyvision_gym
from pyvision_gym.env import default_cache_dir
from pyvision_gym.envs import all_families


def run_family(name: str, difficulty: int, seeds: int, cache: Path) -> dict:
    fam = all_families()[name]
    env = gym.make(pyvision_gym.family_env_id(fam.modality, name), split="test", difficulty=difficulty, cache_dir=cache, max_turns=8)
    solved, tokens, full, turns, seconds, example = 0, [], [], [], [], None
    try:
        for seed in range(seeds):
            t0 = time.perf_counter()
            obs, info = env.reset(seed=seed)
            task = env.unwrapped.task
            example = example or task.question.strip().splitlines()[0]
            for src in fam.expert(task):
                obs, _, terminated, truncated, info = env.step(f"<code>\n```python\n{src}\n```\n</code>")
                if terminated or truncated:
                    break
            if info["end_reason"] is None:
                lines = obs["text"].strip().splitlines() or [""]
                obs, _, _, _, info = env.step(f"<answer>\\boxed{{{lines[-1]}}}</answer>")
            solved += bool(info.get("correct"))
            tokens.append(info["visual_tokens"])
            full.append(info.get("visual_tokens_full_video", 0))
            turns.append(info["turn"])
            seconds.append(time.perf_counter() - t0)
    finally:
        env.close()
    n = max(seeds, 1)
    return {
        "family": name, "modality": fam.modality, "difficulty": difficulty, "episodes": seeds,
        "success": solved / n, "mean_turns": sum(turns) / n, "mean_visual_tokens": sum(tokens) / n,
        "mean_full_video_tokens": sum(full) / n, "seconds_per_episode": sum(seconds) / n, "example": example,
    }


def markdown(rows: list[dict]) -> str:
    by_family: dict[str, list[dict]] = {}
    for r in rows:
        by_family.setdefault(r["family"], []).append(r)
    lines = [
        "| family | modality | example question | expert success d0 / d1 / d2 | mean visual tokens (d0-d2) | full-video tokens |",
        "|---|---|---|---|---|---|",
    ]
    for name, rs in by_family.items():
        rs = sorted(rs, key=lambda r: r["difficulty"])
        succ = " / ".join(f"{r['success']:.0%}" for r in rs)
        tok = sum(r["mean_visual_tokens"] for r in rs) / len(rs)
        fullv = sum(r["mean_full_video_tokens"] for r in rs) / len(rs)
        ex = rs[0]["example"].replace("|", "\\|")
        if len(ex) > 90:
            ex = ex[:87] + "..."
        lines.append(f"| `{name}` | {rs[0]['modality']} | {ex} | {succ} | {tok:,.0f} | {fullv:,.0f} |" if fullv else f"| `{name}` | {rs[0]['modality']} | {ex} | {succ} | {tok:,.0f} | - |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="episodes per family and difficulty")
    ap.add_argument("--families", nargs="*", default=None)
    ap.add_argument("--cache", type=Path, default=default_cache_dir() / "expert-success")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/expert_success.json"))
    args = ap.parse_args()
    fams = all_families()
    names = args.families or list(fams)
    jobs = [(n, d) for n in names for d in fams[n].difficulties]
    rows = []
    for name, diff in tqdm(jobs, desc="families x difficulties"):
        rows.append(run_family(name, diff, args.seeds, args.cache))
    table = markdown(rows)
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"seeds": args.seeds, "rows": rows, "markdown": table}, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
