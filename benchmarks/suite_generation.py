"""How long a task suite takes to generate: cold (empty media cache) against warm (cached).

    python -m benchmarks.suite_generation [--tasks 200] [--json benchmarks/results/suite_generation.json]

Tasks cycle through every family and difficulty (image and video alike), seeds from the
``test`` split. Target: a 200-task suite generates in a few minutes at most.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from pyvision_gym.env import SPLIT_OFFSETS
from pyvision_gym.envs import all_families

TARGET_SECONDS = 300.0


def plan(n: int) -> list[tuple[str, int, int]]:
    fams = all_families()
    combos = [(name, d) for name, fam in fams.items() for d in fam.difficulties]
    return [(combos[i % len(combos)][0], combos[i % len(combos)][1], SPLIT_OFFSETS["test"] + i) for i in range(n)]


def generate(jobs: list[tuple[str, int, int]], cache: Path, label: str) -> dict[str, list[float]]:
    fams = all_families()
    times: dict[str, list[float]] = {}
    for name, diff, seed in tqdm(jobs, desc=label):
        t0 = time.perf_counter()
        fams[name].generate(seed, diff, cache)
        times.setdefault(name, []).append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/suite_generation.json"))
    args = ap.parse_args()
    jobs = plan(args.tasks)
    with tempfile.TemporaryDirectory(prefix="pvg-suite-") as tmp:
        cache = Path(tmp)
        t0 = time.perf_counter()
        cold = generate(jobs, cache, "cold (empty cache)")
        cold_total = time.perf_counter() - t0
        t0 = time.perf_counter()
        warm = generate(jobs, cache, "warm (cached media)")
        warm_total = time.perf_counter() - t0
        media_mb = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 1e6
    rows = [
        {"family": f, "tasks": len(cold[f]), "cold_mean_s": statistics.mean(cold[f]), "warm_mean_s": statistics.mean(warm[f])}
        for f in cold
    ]
    print(f"\n{args.tasks} tasks, {len(rows)} families, python {platform.python_version()}")
    print(f"{'family':34s} {'tasks':>5s} {'cold s/task':>12s} {'warm s/task':>12s}")
    for r in rows:
        print(f"{r['family']:34s} {r['tasks']:5d} {r['cold_mean_s']:12.3f} {r['warm_mean_s']:12.3f}")
    verdict = "PASS" if cold_total <= TARGET_SECONDS else "MISS"
    print(f"{'TOTAL':34s} {args.tasks:5d} {cold_total:11.1f}s {warm_total:11.1f}s   target cold <= {TARGET_SECONDS:.0f} s: {verdict}")
    print(f"media written: {media_mb:.1f} MB")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({
        "tasks": args.tasks, "cold_total_s": cold_total, "warm_total_s": warm_total, "media_mb": media_mb,
        "target_cold_s": TARGET_SECONDS, "verdict": verdict, "families": rows,
    }, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
