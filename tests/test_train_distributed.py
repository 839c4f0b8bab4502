"""Data-parallel learner: two processes under torch.distributed (gloo, CPU) produce the same
gradients as one process, with DDP and with FSDP2, and checkpoints round-trip under both."""

from __future__ import annotations

import os
import queue
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_train_learner import cache_dir, make_trajs, train_config

from pyvision_gym.train.checkpoint import load_checkpoint, save_checkpoint
from pyvision_gym.train.learner import Learner
from pyvision_gym.train.policy_model import load_policy

WORLD = 2
TIMEOUT_S = 240


def _config(parallel: str):
    cfg = train_config(lr=0.0, weight_decay=0.0, mini_batch_size=8, micro_batch_size=2)
    cfg.optim.parallel = parallel
    return cfg


def _full(tensors: dict[str, Any]) -> dict[str, np.ndarray]:
    """Tensors as numpy arrays (FSDP2 shards gathered: a collective, same order on all ranks)."""
    out = {}
    for name, t in tensors.items():
        if t is not None:
            t = t.full_tensor() if hasattr(t, "full_tensor") else t
            out[name] = t.detach().cpu().numpy().copy()
    return out


def _checkpoint_round_trip(learner: Learner, folder: Path) -> bool:
    """Save, disturb the weights, load: the saved weights and cursor come back on every rank."""
    saved = _full(dict(learner.policy.named_parameters()))
    path = save_checkpoint(folder / "ckpt", learner, cursor={"batch": 3})
    with torch.no_grad():
        for p in learner.policy.parameters():
            p.add_(1.0)
    state = load_checkpoint(path, learner)
    loaded = _full(dict(learner.policy.named_parameters()))
    return state["cursor"] == {"batch": 3} and all(np.array_equal(saved[k], loaded[k]) for k in saved)


def _rank_main(rank: int, port: int, cache: str, parallel: str, folder: str, results: Any) -> None:
    """One rank: the same batch, its share of it, gradients back as numpy (not tensors), then
    a checkpoint round trip."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        cfg = _config(parallel)
        model, codec = load_policy(cfg.policy, cache)
        learner = Learner(model, codec, cfg)
        metrics = learner.update(make_trajs(codec))
        grads = _full({n: p.grad for n, p in model.named_parameters()})
        metrics["checkpoint_ok"] = float(_checkpoint_round_trip(learner, Path(folder)))
        results.put((rank, grads, metrics))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_ranks(cache: Path, parallel: str, folder: Path) -> dict[int, tuple[dict[str, np.ndarray], dict[str, float]]]:
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, port, str(cache), parallel, str(folder), results), daemon=True) for r in range(WORLD)]
    for p in procs:
        p.start()
    out: dict[int, Any] = {}
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(out) < WORLD:
            try:
                rank, grads, metrics = results.get(timeout=1)
                out[rank] = (grads, metrics)
            except queue.Empty:
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    pytest.fail(f"ranks {sorted(set(range(WORLD)) - set(out))} sent nothing (exit codes {[p.exitcode for p in procs]})")
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():  # stuck in teardown
                p.terminate()
                p.join(timeout=5)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp2"])
def test_two_ranks_give_the_gradient_of_one(tmp_path_factory, tmp_path, parallel):
    cache = cache_dir(tmp_path_factory)
    model, codec = load_policy(_config(parallel).policy, cache)
    single = Learner(model, codec, _config(parallel))
    metrics = single.update(make_trajs(codec))
    want = {n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None}
    assert max(float(np.abs(g).max()) for g in want.values()) > 1e-4

    ranks = _run_ranks(cache, parallel, tmp_path)
    for rank, (grads, rank_metrics) in ranks.items():
        assert grads.keys() == want.keys(), rank
        for name, g in grads.items():
            np.testing.assert_allclose(g, want[name], atol=1e-6, rtol=0, err_msg=f"rank {rank} {name}")
        assert rank_metrics["learner/tokens"] == metrics["learner/tokens"]
        assert rank_metrics["checkpoint_ok"] == 1.0, rank
        assert rank_metrics["learner/loss"] == pytest.approx(metrics["learner/loss"], abs=1e-6)
        # a float32 norm summed in another order (FSDP2: per shard, then across ranks)
        assert rank_metrics["learner/grad_norm"] == pytest.approx(metrics["learner/grad_norm"], rel=1e-4)


@pytest.mark.slow
def test_the_whole_loop_under_torchrun(tmp_path: Path) -> None:
    """``torchrun --nproc_per_node 2 pyvision-gym train``: both ranks roll out their share,
    train on the same gathered batch (DDP, gloo) and stay in step; rank 0 alone writes."""
    import json
    import subprocess
    import sys

    from test_train_loop import QUICK

    run = tmp_path / "run"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(WORLD), "--master_port", str(port),
        "-m", "pyvision_gym.cli", "train", "--config", "tiny-cpu", "--no-resume",
        *[a for o in [*QUICK, "steps=1", "save_every=1", f"out_dir={run}", f"env.cache_dir={tmp_path / 'cache'}"] for a in ("--set", o)],
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S * 2, env=env)
    errors = [line for line in done.stderr.splitlines() if "Error" in line and "│" not in line]
    assert done.returncode == 0, "\n".join(errors[-20:]) + done.stderr[-3000:]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    train_rows = [r for r in rows if r["phase"] == "train"]
    assert len(train_rows) == 1 and train_rows[0]["dist/world_size"] == WORLD  # one writer, two ranks
    # the batch was gathered from both ranks' rollouts: every prompt's group is complete
    assert train_rows[0]["batch/trajectories_trained"] == 2 * 2
    assert [r["phase"] for r in rows].count("val") == 3  # start, after SFT, final: once each
    ckpt = run / "step-000001"
    assert (ckpt / "rng-rank0.pt").exists() and (ckpt / "rng-rank1.pt").exists()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 1 and "final@1" in summary["validation"]
