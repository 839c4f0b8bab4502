"""Runtime performance benchmark: the sandboxed runtime against an in-process floor and a naive design.

    python -m pyvision_gym.benchmarks.runtime_bench [--repeats N] [--naive-repeats M] [--json PATH] [--quick]

Prints a table (median and p99 latency per scenario and design, targets with PASS / MISS) and
writes the JSON report (default ``benchmarks/results/runtime_bench.json``).

Each scenario is timed under three designs, side by side, in one run:

* ``floor``: plain ``compile`` + ``exec`` in a dict namespace in this process, with the same
  image capture as the runtime (``plt.show()`` renders every open figure to an RGB array with
  Agg, ``display(x)`` turns a PIL image / array into an RGB array); no sandbox, no IPC.
* ``runtime``: ``pyvision_gym.runtime.Runtime``, the persistent sandboxed worker.
* ``naive``: a fresh ``python -c`` process per call that imports numpy / PIL / matplotlib, loads
  its inputs from files (the image as raw ``.npy``, the video through decord), runs the code with
  the same capture as the floor and pickles the result back over stdout. It has no sandbox, so it
  is a lower bound on what a design without a persistent worker costs.

Scenarios: (a) a trivial call; (b) crop + zoom + ``plt.show()`` on a 2000x1500 image (one 640x480
figure must come back); (c) ``display(video[k])`` on a real H.264 mp4 (300 frames, 320x240, GOP 12)
with k pseudo-random; (d) a new episode (``rt.reset`` with one image, and with no inputs) against
building a fresh namespace dict (floor) and a cold interpreter that imports the libraries (naive).

Every call's source is unique (a trailing ``# call N`` comment), as agent turns are: the worker's
compile cache never hits. Latencies are wall-clock milliseconds measured around the host-side
call (``rt.run`` / ``rt.reset`` / ``subprocess.run`` / ``exec``) after warm-up calls; every
result is checked (untimed). Floor and runtime calls are interleaved so that both see the same
background load; naive runs fewer calls, after them. (d) is timed back to back (each reset right
after the previous one) and, for the runtime, also after the worker sat idle (``--idle-gap``).
The exit status is 0 even when a target is missed: the table and the JSON say so.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from pyvision_gym.benchmarks.runtime_designs import (
    CROP_ZOOM_SHOW,
    FIGURE_SIZE,
    IMAGE_SIZE,
    VIDEO_FPS,
    VIDEO_FRAMES,
    VIDEO_GOP,
    VIDEO_SIZE,
    BenchError,
    Design,
    FloorDesign,
    Inputs,
    NaiveDesign,
    Outcome,
    RuntimeDesign,
    Scenario,
    Target,
)

DEFAULT_JSON = Path("benchmarks/results/runtime_bench.json")  # relative to the working directory
DESIGNS = ("floor", "runtime", "naive")


# ============================================================================================
# scenarios and targets
# ============================================================================================
def _tagged(source: str) -> Callable[[int], str]:
    return lambda i: f"{source}  # call {i}"


def make_scenarios(frame_indices: np.ndarray) -> list[Scenario]:
    """The benchmark's scenarios; ``frame_indices[i]`` is the frame that call ``i`` of (c) fetches."""
    ks = [int(k) for k in frame_indices]
    trivial = Target("runtime median <= 1 ms", "runtime_median_ms", 1.0)
    episode = Target("runtime median <= 25 ms", "runtime_median_ms", 25.0)
    return [
        Scenario("a_assign", "(a) x = 1", "exec", "none", _tagged("x = 1"), target=trivial),
        Scenario("a_print", "(a) print(1+1)", "exec", "none", _tagged("print(1+1)"), output="2\n", target=trivial),
        Scenario(
            "b_crop_zoom_show", "(b) crop+zoom+show 2000x1500", "exec", "image", _tagged(CROP_ZOOM_SHOW),
            image_sizes=(FIGURE_SIZE,), target=Target("runtime median <= 1.5x floor median", "runtime_over_floor_median", 1.5),
        ),
        Scenario(
            "c_video_frame", "(c) video[k]; display(f)", "exec", "video",
            lambda i: f"f = video[{ks[i % len(ks)]}]; display(f)  # call {i}", image_sizes=(VIDEO_SIZE,),
        ),
        Scenario("d_reset_image", "(d) new episode, 1 image", "reset", "image", target=episode),
        Scenario("d_reset_empty", "(d) new episode, no inputs", "reset", "none", target=episode),
    ]


# ============================================================================================
# inputs
# ============================================================================================
def make_image() -> Image.Image:
    """A deterministic 2000x1500 RGB test image (gradients, shapes, mild noise)."""
    w, h = IMAGE_SIZE
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(0)
    a = np.empty((h, w, 3), np.float32)
    a[..., 0] = 255 * x / w
    a[..., 1] = 255 * y / h
    a[..., 2] = 128 + 100 * np.sin(x / 37.0) * np.cos(y / 23.0)
    a[((x - 1000) ** 2 + (y - 750) ** 2) < 150**2] = (250, 240, 30)
    a += rng.normal(0, 6, size=a.shape).astype(np.float32)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def write_video(path: Path, frames: int = VIDEO_FRAMES) -> Path:
    """A real H.264 mp4 (libx264, yuv420p, GOP 12, no scene-cut keyframes) of moving content."""
    w, h = VIDEO_SIZE
    y, x = np.mgrid[0:h, 0:w]
    rng = np.random.default_rng(1)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.gop_size = VIDEO_GOP
        stream.options = {"g": str(VIDEO_GOP), "keyint_min": str(VIDEO_GOP), "sc_threshold": "0"}
        for i in range(frames):
            a = np.empty((h, w, 3), np.uint8)
            a[..., 0] = (x + 3 * i) % 256
            a[..., 1] = (y * 2 + i) % 256
            a[..., 2] = (5 * i) % 256
            bx = (4 * i) % (w - 40)
            a[100:140, bx : bx + 40] = 255
            a[rng.integers(0, h, 200), rng.integers(0, w, 200)] = 0
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def check(sc: Scenario, design: str, out: Outcome) -> None:
    """Raise ``BenchError`` unless ``out`` is what ``sc`` must produce."""
    where = f"{sc.key} / {design}" + (f" (stderr: {out.detail.strip()})" if out.detail.strip() else "")
    if out.error:
        raise BenchError(f"{where}: the call failed:\n{out.error}")
    if sc.output is not None and out.output != sc.output:
        raise BenchError(f"{where}: expected output {sc.output!r}, got {out.output!r}")
    sizes = tuple((int(a.shape[1]), int(a.shape[0])) for a in out.images)
    if sizes != sc.image_sizes:
        raise BenchError(f"{where}: expected images of sizes {list(sc.image_sizes)}, got {list(sizes)} (output: {out.output!r})")
    for a in out.images:
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise BenchError(f"{where}: an image is not H×W×3 uint8 ({a.dtype}, {a.shape})")
    if out.names is not None and sc.inputs in ("image", "video") and sc.inputs not in out.names:
        raise BenchError(f"{where}: the new namespace lacks '{sc.inputs}' ({out.names})")


def summarize(samples_s: list[float]) -> dict[str, float | int]:
    """Median, p99 (linear interpolation), mean, min, max in ms, and the sample count."""
    a = np.asarray(samples_s) * 1e3
    return {
        "median_ms": float(np.median(a)),
        "p99_ms": float(np.percentile(a, 99)),
        "mean_ms": float(a.mean()),
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "n": int(a.size),
    }


def timed_call(design: Design, sc: Scenario, i: int) -> float:
    """Seconds one call of ``sc`` takes on ``design``; its result is checked afterwards, untimed."""
    t0 = time.perf_counter()
    out = design.call(sc, i)
    elapsed = time.perf_counter() - t0
    check(sc, design.name, out)
    return elapsed


def measure(sc: Scenario, paired: tuple[Design, Design], naive: Design, cfg: argparse.Namespace, bar: tqdm) -> dict[str, dict[str, float | int]]:
    """Time ``sc`` on every design: floor and runtime interleaved call by call, then naive.

    Interleaving (alternating which goes first) exposes both to the same background load;
    the naive calls come after, so their process churn does not disturb the other two.
    """
    samples: dict[str, list[float]] = {d.name: [] for d in (*paired, naive)}
    for d in (*paired, naive):
        d.prepare(sc)
    bar.set_description(f"{sc.key} · floor+runtime")
    for i in range(cfg.warmup + cfg.repeats):
        if i == cfg.warmup:
            gc.collect()
        for d in paired if i % 2 == 0 else paired[::-1]:
            elapsed = timed_call(d, sc, i)
            if i >= cfg.warmup:
                samples[d.name].append(elapsed)
            bar.update(1)
    bar.set_description(f"{sc.key} · naive")
    for i in range(cfg.naive_warmup + cfg.naive_repeats):
        elapsed = timed_call(naive, sc, i)
        if i >= cfg.naive_warmup:
            samples[naive.name].append(elapsed)
        bar.update(1)
    return {name: summarize(v) for name, v in samples.items()}


def measure_after_idle(runtime: Design, sc: Scenario, cfg: argparse.Namespace, bar: tqdm) -> dict[str, float | int]:
    """Reset latency when the worker was idle for ``cfg.idle_gap`` s first, as between real episodes.

    Back-to-back resets (the main measurement) also pay for the spare episode process that the
    previous reset started forking; after a pause that spare is ready and waiting.
    """
    bar.set_description(f"{sc.key} · runtime after idle")
    samples = []
    for i in range(cfg.idle_repeats):
        time.sleep(cfg.idle_gap)
        samples.append(timed_call(runtime, sc, i))
        bar.update(1)
    return {**summarize(samples), "idle_s": cfg.idle_gap}


def evaluate(target: Target, stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The target's measured value and verdict."""
    rt_median = float(stats["runtime"]["median_ms"])
    if target.metric == "runtime_median_ms":
        value = rt_median
    else:
        value = rt_median / float(stats["floor"]["median_ms"])
    return {"text": target.text, "metric": target.metric, "threshold": target.threshold, "value": value, "pass": value <= target.threshold}


# ============================================================================================
# machine information and the table
# ============================================================================================
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info(rt: RuntimeDesign) -> dict[str, Any]:
    """Where the numbers come from: CPUs, Python, libraries, the runtime's isolation."""
    report = rt.rt.report
    return {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": _mem_total_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "libraries": {d: _version(d) for d in ("numpy", "pillow", "matplotlib", "RestrictedPython", "decord", "av")},
        "isolation_method": report.method,
        "isolation": report.describe(),
        "isolation_problems": list(report.problems),
        "runtime_warnings": rt.warnings,
        "runtime_cold_start_ms": rt.cold_start_ms,
    }


def _fmt(ms: float) -> str:
    if ms < 1:
        return f"{ms:.3f}"
    if ms < 10:
        return f"{ms:.2f}"
    if ms < 100:
        return f"{ms:.1f}"
    return f"{ms:.0f}"


def render_table(result: dict[str, Any]) -> str:
    """The printed report: header with the machine, then one row per scenario."""
    meta = result["meta"]
    cfg = result["config"]
    lines = [
        f"pyvision-gym runtime benchmark  {meta['date_utc']}",
        f"machine: {meta['cpus_available']} CPUs ({meta['cpu_model']}), {meta['memory_gb']} GiB, {meta['platform']}",
        f"python {meta['python']}; isolation: {meta['isolation_method']} [{meta['isolation']}]",
        f"load average (1/5/15 min) at start {meta['loadavg_start']}, at end {meta['loadavg_end']}",
        f"runtime cold start (zygote start + first episode): {_fmt(meta['runtime_cold_start_ms'])} ms",
        f"calls timed per scenario: floor {cfg['repeats']} and runtime {cfg['repeats']} (interleaved, after {cfg['warmup']} warm-up each), "
        f"naive {cfg['naive_repeats']} (after {cfg['naive_warmup']} warm-up; fewer because each call is a fresh process, so its p99 is ~ its max)",
        "latency in ms, median / p99",
        "",
    ]
    head = ("scenario", "floor", "runtime", "naive", "rt/floor", "target (runtime)", "")
    rows = [head]
    for s in result["scenarios"].values():
        d = s["designs"]
        cells = [f"{_fmt(d[n]['median_ms'])} / {_fmt(d[n]['p99_ms'])}" for n in DESIGNS]
        ratio = d["runtime"]["median_ms"] / d["floor"]["median_ms"]
        t = s["target"]
        if t is None:
            tgt, verdict = "-", ""
        else:
            shown = f"{t['value']:.2f}x" if t["metric"] == "runtime_over_floor_median" else f"{_fmt(t['value'])} ms"
            tgt, verdict = f"{t['text']}: {shown}", "PASS" if t["pass"] else "MISS"
        rows.append((s["label"], *cells, f"{ratio:.1f}x" if ratio < 100 else f"{ratio:.0f}x", tgt, verdict))
    widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
    for n, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) if c in (0, 5, 6) else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths, strict=True))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    idle = [(s["label"], s["runtime_after_idle"]) for s in result["scenarios"].values() if "runtime_after_idle" in s]
    if idle:
        lines += ["", "(d) rows time back-to-back resets; the same resets after the worker sat idle (as between real episodes):"]
        for label, st in idle:
            lines.append(f"  {label}: runtime {_fmt(st['median_ms'])} / {_fmt(st['p99_ms'])} ms (median / p99, {st['n']} resets, each after {st['idle_s']:g} s idle)")
    met = sum(t["pass"] for t in result["targets"])
    lines += ["", f"targets met: {met} / {len(result['targets'])}"]
    return "\n".join(lines)


# ============================================================================================
# the command
# ============================================================================================
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pyvision_gym.benchmarks.runtime_bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=300, help="timed calls per scenario for floor and runtime (default 300)")
    p.add_argument("--naive-repeats", type=int, default=None, help="timed calls per scenario for naive (default: min(repeats, 20); 1 with --quick)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up calls per scenario and design (default 5; naive: 1)")
    p.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write the results (default {DEFAULT_JSON}, from the working directory)")
    p.add_argument("--idle-repeats", type=int, default=None, help="(d) only: extra runtime resets timed after an idle pause (default: min(repeats, 30))")
    p.add_argument("--idle-gap", type=float, default=0.2, help="(d) only: the idle pause in seconds (default 0.2)")
    p.add_argument("--quick", action="store_true", help="smoke run: one naive call per scenario without warm-up, at most 2 warm-up calls elsewhere")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.naive_repeats is None:
        args.naive_repeats = 1 if args.quick else min(args.repeats, 20)
    args.naive_warmup = 0 if args.quick else 1
    if args.idle_repeats is None:
        args.idle_repeats = min(args.repeats, 30)
    if args.quick:
        args.warmup = min(args.warmup, 2)
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run every scenario under every design; return the JSON-ready result."""
    with tempfile.TemporaryDirectory(prefix="pvg-bench-") as tmp:
        image = make_image()
        image_npy = Path(tmp) / "image.npy"
        np.save(image_npy, np.asarray(image))
        video = write_video(Path(tmp) / "clip.mp4")
        inputs = Inputs(image, image_npy, video)
        most = args.warmup + max(args.repeats, args.naive_repeats + args.naive_warmup)
        scenarios = make_scenarios(np.random.default_rng(2).integers(0, VIDEO_FRAMES, size=most))
        load_start = _loadavg()
        runtime = RuntimeDesign(inputs)
        floor, naive = FloorDesign(inputs), NaiveDesign(inputs)
        designs: list[Design] = [floor, runtime, naive]
        total = len(scenarios) * (2 * (args.warmup + args.repeats) + args.naive_warmup + args.naive_repeats)
        total += sum(sc.kind == "reset" for sc in scenarios) * args.idle_repeats
        results: dict[str, Any] = {}
        try:
            with tqdm(total=total, unit="call", file=sys.stderr, dynamic_ncols=True) as bar:
                for sc in scenarios:
                    stats = measure(sc, (floor, runtime), naive, args, bar)
                    idle = measure_after_idle(runtime, sc, args, bar) if sc.kind == "reset" else None
                    if sc.kind == "reset":
                        runtime.verify_reset(sc)
                    results[sc.key] = {
                        "label": sc.label,
                        "code": sc.code(0).rsplit("  # call", 1)[0] if sc.code else None,
                        "designs": stats,
                        "runtime_over_floor": stats["runtime"]["median_ms"] / stats["floor"]["median_ms"],
                        "target": evaluate(sc.target, stats) if sc.target else None,
                    }
                    if idle is not None:
                        results[sc.key]["runtime_after_idle"] = idle
            meta = machine_info(runtime)
            meta["loadavg_start"], meta["loadavg_end"] = load_start, _loadavg()
        finally:
            for d in designs:
                d.close()
    targets = [{"scenario": k, **v["target"]} for k, v in results.items() if v["target"]]
    return {
        "meta": meta,
        "config": {
            "repeats": args.repeats, "warmup": args.warmup, "naive_repeats": args.naive_repeats,
            "naive_warmup": args.naive_warmup, "idle_repeats": args.idle_repeats, "idle_gap_s": args.idle_gap, "quick": args.quick,
            "image_size": list(IMAGE_SIZE), "figure_size": list(FIGURE_SIZE),
            "video": {"frames": VIDEO_FRAMES, "size": list(VIDEO_SIZE), "fps": VIDEO_FPS, "gop": VIDEO_GOP, "codec": "libx264 yuv420p"},
            "unique_source_per_call": True,
        },
        "designs": {
            "floor": "in-process compile+exec in a dict namespace, Agg plt.show()/display() capture; no sandbox, no IPC",
            "runtime": "pyvision_gym.runtime.Runtime (persistent sandboxed zygote + episode worker)",
            "naive": "fresh `python -c` per call: imports numpy/PIL/matplotlib, loads inputs (.npy image / mp4), runs the code unrestricted, pickles the result over stdout",
        },
        "scenarios": results,
        "targets": targets,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; exit status 0 even if a target is missed."""
    args = parse_args(argv)
    result = run(args)
    print(render_table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
