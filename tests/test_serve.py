"""``pyvision-gym serve`` for real: the official ``openai`` client over loopback against the
FastAPI server running a tiny random Qwen2.5-VL built here.

Random weights write gibberish; what is checked is the protocol: plain and image chats,
streaming, ``n``, log-probs, refusals of unsupported fields, the API key, and that a request
whose client goes away is cancelled instead of holding the engine.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pytest

from pyvision_gym.agents.chat import image_data_url, model_fingerprint
from pyvision_gym.agents.serve import API_KEY_ENV, resolve_api_key, start_server
from pyvision_gym.agents.tiny_model import build_tiny_qwen25vl

KEY = "test-key"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-vlm") / "tiny-qwen25vl", seed=0)


@pytest.fixture(scope="module")
def server(tiny_model):
    """The server on one torch thread (a tiny model is fastest that way on shared cores)."""
    import torch

    before = torch.get_num_threads()
    with start_server(tiny_model, port=0, model_name="tiny", api_key=KEY, num_threads=1) as handle:
        yield handle
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    c = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=60)
    yield c
    c.close()


def _get(server, path: str, key: str | None = KEY) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    req = urllib.request.Request(server.url.removesuffix("/v1") + path, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait_for(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# ----------------------------------------------------------------------------- completions
def test_models_plain_and_image_completion(server, client, tiny_model):
    (entry,) = client.models.list().data
    extra = entry.to_dict()
    assert entry.id == "tiny" and extra["model_hash"] == model_fingerprint(tiny_model) and extra["max_pixels"] == 256 * 28 * 28
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=4, temperature=0)
    (choice,) = r.choices
    assert r.object == "chat.completion" and choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length") and 0 < r.usage.completion_tokens <= 4
    image = {"type": "image_url", "image_url": {"url": image_data_url(np.zeros((56, 84, 3), np.uint8))}}
    with_image = [{"role": "user", "content": [image, {"type": "text", "text": "What is this?"}]}]
    r2 = client.chat.completions.create(model="tiny", messages=with_image, max_tokens=4, temperature=0)
    assert r2.usage.prompt_tokens >= r.usage.prompt_tokens + 6  # 56x84 → 2x3 merged image tokens, plus markup
    assert _get(server, "/health", key=None) == (200, {"status": "ok"})


def test_stream_joins_to_the_greedy_text(client):
    whole = client.chat.completions.create(model="tiny", messages=HI, max_tokens=10, temperature=0)
    stream = client.chat.completions.create(
        model="tiny", messages=HI, max_tokens=10, temperature=0, stream=True, stream_options={"include_usage": True}, logprobs=True
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert any(deltas)
    assert "".join(deltas) == whole.choices[0].message.content
    finals = [c.choices[0] for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [f.finish_reason for f in finals] == [whole.choices[0].finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    streamed = [t for c in chunks if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert len(streamed) == whole.usage.completion_tokens
    two = list(client.chat.completions.create(model="tiny", messages=HI, max_tokens=4, temperature=1.0, n=2, stream=True))
    ends = sorted(c.index for chunk in two for c in chunk.choices if c.finish_reason)
    assert ends == [0, 1]


def test_n_choices_and_logprobs(client):
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=6, temperature=1.0, seed=1, n=2)
    assert [c.index for c in r.choices] == [0, 1] and all(isinstance(c.message.content, str) for c in r.choices)
    assert r.usage.completion_tokens <= 12
    g = client.chat.completions.create(model="tiny", messages=HI, max_tokens=6, temperature=0, logprobs=True, top_logprobs=3)
    (choice,) = g.choices
    content = choice.logprobs.content
    assert len(content) == g.usage.completion_tokens == 6
    assert all(math.isfinite(t.logprob) and t.logprob <= 0 for t in content)
    assert "".join(t.token for t in content) == choice.message.content
    for t in content:  # greedy: the chosen token is the most likely one
        assert len(t.top_logprobs) == 3 and t.top_logprobs[0].logprob == pytest.approx(t.logprob)
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob
    both = client.chat.completions.create(model="tiny", messages=HI, max_tokens=3, temperature=1.0, n=2, logprobs=True)
    assert [len(c.logprobs.content) for c in both.choices] == [3, 3]


def test_stream_holds_back_stop_strings(client):
    """A stop string is never streamed, even when it arrives over several tokens."""
    free = client.chat.completions.create(model="tiny", messages=HI, max_tokens=10, temperature=0).choices[0].message.content
    stop = free[4:9]  # spans a token boundary in this model's output
    whole = client.chat.completions.create(model="tiny", messages=HI, max_tokens=10, temperature=0, stop=[stop]).choices[0]
    chunks = list(client.chat.completions.create(model="tiny", messages=HI, max_tokens=10, temperature=0, stop=[stop], stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.message.content == free[: free.find(stop)]
    last = chunks[-1].choices[0]
    assert last.finish_reason == "stop" and last.to_dict()["stop_reason"] == stop


def test_generation_errors_reach_the_client(server, client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(server.service.backend, "generate", broken)
    before = server.stats()["failed"]
    with pytest.raises(openai.InternalServerError, match="simulated out of memory"):
        client.chat.completions.create(model="tiny", messages=HI, max_tokens=2)
    with pytest.raises(openai.APIError, match="simulated out of memory"):
        list(client.chat.completions.create(model="tiny", messages=HI, max_tokens=2, stream=True))
    assert server.stats()["failed"] == before + 2
    monkeypatch.undo()
    assert client.chat.completions.create(model="tiny", messages=HI, max_tokens=2).usage.completion_tokens == 2


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize(
    "field, value",
    [
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ("tool_choice", "auto"),
        ("response_format", {"type": "json_object"}),
        ("functions", [{"name": "f"}]),
        ("logit_bias", {"1": 5}),
        ("modalities", ["text", "audio"]),
        ("frequency_penalty", 0.5),
    ],
)
def test_unsupported_fields_are_refused_by_name(client, field, value):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="tiny", messages=HI, max_tokens=2, **{field: value})
    assert e.value.param == field and f"'{field}'" in e.value.message


def test_bad_requests(server, client):
    bad = {
        "remote image": {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
        "garbage image": {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
        "tool role": {"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]},
        "no messages": {"messages": []},
        "top_logprobs without logprobs": {"messages": HI, "top_logprobs": 2},
        "n too large": {"messages": HI, "n": 99},
    }
    for name, kw in bad.items():
        try:
            client.chat.completions.create(model="tiny", max_tokens=2, **kw)
        except openai.BadRequestError:
            continue
        pytest.fail(f"{name}: accepted")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="other", messages=HI, max_tokens=2)
    # null means "not set" in the OpenAI API: accepted for any field
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=2, extra_body={"tools": None, "logit_bias": None})
    assert r.choices[0].message.content is not None
    req = urllib.request.Request(server.url + "/chat/completions", data=b"{not json", headers={"Authorization": f"Bearer {KEY}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 400 and "message" in json.loads(e.value.read())["error"]
    assert _get(server, "/v1/nope")[0] == 404


def test_api_key_is_required(server, monkeypatch):
    wrong = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="tiny", messages=HI, max_tokens=2)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    for path in ("/v1/models", "/v1/stats"):  # no Authorization header at all
        status, body = _get(server, path, key=None)
        assert status == 401 and body["error"]["code"] == "invalid_api_key"
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert resolve_api_key(None) == "from-env" and resolve_api_key("given") == "given"
    monkeypatch.setenv(API_KEY_ENV, "")
    assert resolve_api_key(None) is None


# ----------------------------------------------------------------------------- cancellation
def test_disconnect_cancels_the_job(server, client):
    """An abandoned request stops generating: the next request does not queue behind it."""
    before = server.stats()["cancelled"]
    t0 = time.perf_counter()
    stream = client.chat.completions.create(model="tiny", messages=HI, max_tokens=20_000, temperature=0, stream=True)
    it = iter(stream)
    next(it)
    assert next(it).choices[0].delta.content  # tokens are flowing
    stream.close()
    r = client.chat.completions.create(model="tiny", messages=HI, max_tokens=3, temperature=0)
    assert r.usage.completion_tokens == 3
    assert time.perf_counter() - t0 < 10  # 20,000 tokens would take over a minute here
    assert _wait_for(lambda: server.stats()["cancelled"] == before + 1)
    status, stats = _get(server, "/v1/stats")
    assert status == 200 and stats["cancelled"] == before + 1 and stats["running"] == 0


def test_client_timeouts_cancel_running_and_queued_jobs(server, client):
    """A non-streamed request whose client times out is stopped; one still queued behind it
    is dropped before it starts."""
    before = server.stats()
    impatient = client.with_options(timeout=1.0, max_retries=0)
    long_kw = {"model": "tiny", "messages": HI, "max_tokens": 20_000}
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(**long_kw, temperature=0)
    assert _wait_for(lambda: server.stats()["cancelled"] == before["cancelled"] + 1)
    assert server.stats()["batches"] == before["batches"] + 1  # it was generating when the client left

    # one job generating (a stream we hold open), a second queued behind it (other sampling)
    stream = client.chat.completions.create(**long_kw, temperature=0, stream=True)
    next(iter(stream))
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(**long_kw, temperature=0.5)
    stream.close()
    assert _wait_for(lambda: server.stats()["cancelled"] == before["cancelled"] + 3)
    after = server.stats()
    assert after["batches"] == before["batches"] + 2  # the queued job never ran
    assert after["completed"] == before["completed"] and after["queued"] == 0 and after["running"] == 0
