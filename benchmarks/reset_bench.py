"""New-episode latency: input images by sealed memfd (today) against the socket path it replaced.

    python -m pyvision_gym.benchmarks.reset_bench [--repeats 40] [--env-seeds 40] [--json PATH]

Both transports run in one process, interleaved call by call, on the same inputs:

* ``runtime``: ``Runtime.reset(images={"image": ...})`` with a 2000x1500 and a 7277x4313 RGB
  image (the largest the mixed image env draws), timed alone and together with the first
  trivial ``run`` (an image-only memfd episode does not wait for the worker to load its image:
  the first call does, so "reset + first call" is the honest end-to-end figure).
* ``env``: ``env.reset(seed=s)`` on ``PyVisionImage-v0`` (every image family, mixed
  difficulties), the same seeds for both, after one untimed pass so the media are generated.

``socket`` is ``RuntimeConfig(input_transport="socket")``: the pixels cross the episode's socket
as message blobs and the reset waits for the worker (the design before the memfd change).
Prints a table (median / p90 in ms) and writes JSON (default
``benchmarks/results/reset_bench.json`` under the working directory).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

import pyvision_gym  # noqa: F401 - registers the environments
from pyvision_gym.evaluation.provenance import versions
from pyvision_gym.runtime import Runtime
from pyvision_gym.runtime_config import RuntimeConfig

TRANSPORTS = ("socket", "memfd")
SIZES = {"2000x1500": (2000, 1500), "7277x4313": (7277, 4313)}
TARGETS = {("runtime 2000x1500", "reset"): 25.0, ("env PyVisionImage-v0", "reset"): 40.0}


def _stats(samples: list[float]) -> dict[str, float]:
    ms = sorted(s * 1e3 for s in samples)
    return {"median": statistics.median(ms), "p90": ms[int(0.9 * (len(ms) - 1))], "n": len(ms)}


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_runtime(size: tuple[int, int], repeats: int, bar: tqdm) -> dict[str, dict[str, Any]]:
    """Interleaved resets (alone, and with the first call) on both transports."""
    pixels = np.random.default_rng(0).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    runtimes = {t: Runtime(RuntimeConfig(input_transport=t)) for t in TRANSPORTS}
    samples: dict[str, dict[str, list[float]]] = {t: {"reset": [], "reset + first call": []} for t in TRANSPORTS}
    try:
        for rt in runtimes.values():  # warm: zygote started, first episode served
            rt.reset(images={"image": pixels})
            rt.run("pass")
        for _ in range(repeats):
            for t, rt in runtimes.items():
                samples[t]["reset"].append(_timed(lambda rt=rt: rt.reset(images={"image": pixels})))
                rt.run("pass")
                samples[t]["reset + first call"].append(
                    _timed(lambda rt=rt: (rt.reset(images={"image": pixels}), rt.run("pass"))))
            bar.update(1)
        for rt in runtimes.values():  # checked, untimed: the image arrived intact
            out = rt.run("a = np.asarray(image); print(a.shape, int(a[::97, ::89].astype(np.int64).sum()))").output
            want = f"{pixels.shape} {int(pixels[::97, ::89].astype(np.int64).sum())}"
            if out.strip() != want:
                raise RuntimeError(f"the image did not arrive intact: {out!r} != {want!r}")
    finally:
        for rt in runtimes.values():
            rt.close()
    return {t: {k: _stats(v) for k, v in s.items()} for t, s in samples.items()}


def bench_env(seeds: int, bar: tqdm, cache: str | None) -> dict[str, dict[str, Any]]:
    """``env.reset`` on the mixed image env, same seeds, both transports interleaved."""
    envs = {t: gym.make("PyVisionImage-v0", runtime_config=RuntimeConfig(input_transport=t),
                        **({"cache_dir": cache} if cache else {})) for t in TRANSPORTS}
    samples: dict[str, list[float]] = {t: [] for t in TRANSPORTS}
    try:
        for s in range(seeds):  # untimed pass: generates every task once
            for env in envs.values():
                env.reset(seed=s)
        for s in range(seeds):
            for t, env in envs.items():
                samples[t].append(_timed(lambda env=env, s=s: env.reset(seed=s)))
            bar.update(1)
    finally:
        for env in envs.values():
            env.close()
    return {t: {"reset": _stats(v)} for t, v in samples.items()}


def render(results: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = ["| case | measure | socket (before) | memfd (now) | speed-up | target |", "|---|---|---|---|---|---|"]
    for case, by_transport in results.items():
        for measure in by_transport["memfd"]:
            old, new = by_transport["socket"][measure], by_transport["memfd"][measure]
            target = TARGETS.get((case, measure))
            verdict = "" if target is None else f"median ≤ {target:g} ms: {'PASS' if new['median'] <= target else 'MISS'}"
            lines.append(f"| {case} | {measure} | {old['median']:.1f} / {old['p90']:.1f} | {new['median']:.1f} / "
                         f"{new['p90']:.1f} | {old['median'] / new['median']:.1f}× | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyvision_gym.benchmarks.reset_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=40, help="timed resets per transport and image size")
    ap.add_argument("--env-seeds", type=int, default=40, help="seeds of the mixed image env")
    ap.add_argument("--cache", default=None, help="media cache for the env (default: the env's)")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/reset_bench.json"))
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    with tqdm(total=args.repeats * len(SIZES) + args.env_seeds, desc="reset bench", unit="round") as bar:
        for label, size in SIZES.items():
            results[f"runtime {label}"] = bench_runtime(size, args.repeats, bar)
        results["env PyVisionImage-v0"] = bench_env(args.env_seeds, bar, args.cache)
    table = render(results)
    print("\nlatency in ms, median / p90\n" + table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"results": results, "table": table, "versions": versions(),
                                     "args": {k: str(v) for k, v in vars(args).items()}}, indent=1) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
