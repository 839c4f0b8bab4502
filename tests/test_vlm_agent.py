"""The VLM agent's prompt format: messages, images, interpreter formatting, stop strings, pinning.

No model is needed here (see test_vlm_backends.py for generation through the backends).
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import pyvision_gym.agents as agents
import pyvision_gym.agents.chat as chat
from pyvision_gym.agents.backends import Backend
from pyvision_gym.agents.chat import (
    MAX_ASPECT,
    STOP_STRINGS,
    Generation,
    SamplingConfig,
    finish_generation,
    infer_stop,
    message_images,
    messages_to_text,
    model_fingerprint,
    scrub_text,
    to_pil,
    truncate_at_stop,
)
from pyvision_gym.agents.vlm import SYSTEM_PROMPT, VLMAgent, build_messages, make_vlm_agent
from pyvision_gym.env import PyVisionEnv
from pyvision_gym.rollout.agent import Episode, Observation


def img(h: int, w: int, value: int = 0) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


def code(src: str) -> str:
    return f"Let me look.\n<code>\n```python\n{src}\n```\n</code>"


def texts(content: list[dict]) -> str:
    return "".join(p["text"] for p in content if p["type"] == "text")


def n_images(content: list[dict]) -> int:
    return sum(p["type"] == "image" for p in content)


# ----------------------------------------------------------------------------- messages
def test_messages_roles_order_and_images():
    ep = Episode(
        "e",
        "image",
        first=Observation("What is the angle?", (img(60, 80, 10),)),
        turns=[
            (code("print(1)"), Observation("1", ())),
            (code("display(image)"), Observation("", (img(30, 40, 20), img(50, 20, 30)))),
            ("no code here", Observation("Error: no Python code or final answer found.", ())),
        ],
    )
    msgs = build_messages(ep)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert texts(msgs[0]["content"]) == SYSTEM_PROMPT
    # first user turn: the prompt image (as image_clue_0) then the text
    first = msgs[1]["content"]
    assert [p["type"] for p in first] == ["text", "image", "text"]
    assert first[0]["text"] == "<image_clue_0>"
    assert first[2]["text"] == "</image_clue_0>\nWhat is the angle?"
    assert first[1]["image"].size == (80, 60) and first[1]["image"].getpixel((0, 0)) == (10, 10, 10)
    # assistant turns are the actions, verbatim
    assert [texts(m["content"]) for m in msgs[2::2]] == [code("print(1)"), code("display(image)"), "no code here"]
    # tool outputs: interpreter formatting, images on the turn that showed them, clue numbers continue
    assert texts(msgs[3]["content"]) == "<interpreter>\nText Result:\n1\n</interpreter>"
    assert n_images(msgs[3]["content"]) == 0
    second = msgs[5]["content"]
    assert n_images(second) == 2
    assert texts(second) == (
        "<interpreter>\nText Result:\n\nImage Result:\n<image_clue_1></image_clue_1>\n<image_clue_2></image_clue_2>\n</interpreter>"
    )
    shown = [p["image"] for p in second if p["type"] == "image"]
    assert [s.size for s in shown] == [(40, 30), (20, 50)]
    assert [s.getpixel((0, 0))[0] for s in shown] == [20, 30]
    assert texts(msgs[7]["content"]).startswith("<interpreter>\nText Result:\nError: no Python code")
    assert len(message_images(msgs)) == 3
    # no system prompt when asked
    assert [m["role"] for m in build_messages(ep, system_prompt=None)][:2] == ["user", "assistant"]


def test_messages_dump_is_readable():
    ep = Episode("e", "video", first=Observation("Count the events.", ()), turns=[(code("x"), Observation("ok", (img(28, 56),)))])
    dump = messages_to_text(build_messages(ep))
    assert dump.splitlines()[0] == "<system>"
    assert "<user>\nCount the events." in dump
    assert "Image Result:\n<image_clue_0>[image 56x28]</image_clue_0>" in dump


def test_messages_of_a_real_env_episode(tmp_path):
    """The transcript of a real PyVisionEnv episode, turn by turn, as the model will see it."""
    env = PyVisionEnv(modality="image", families="measurement", difficulty=0, max_turns=5, cache_dir=tmp_path)
    try:
        obs, info = env.reset(seed=3)
        ep = Episode("real", "image", first=Observation(obs["text"], tuple(obs["images"])))
        actions = [
            code("print(image.size)\ncrop = image.crop((0, 0, 100, 80))\ndisplay(crop)\ndisplay(np.asarray(image)[:40, :60])"),
            "I am not sure what to do.",
            code("print(undefined_name)"),
            "<answer>\\boxed{45}</answer>",
        ]
        for a in actions:
            obs, reward, terminated, truncated, info = env.step(a)
            ep.turns.append((a, Observation(obs["text"], tuple(obs["images"]))))
            if terminated or truncated:
                break
        assert info["end_reason"] == "DONE"
        msgs = build_messages(ep, max_pixels=None)
        assert [m["role"] for m in msgs] == ["system", "user"] + ["assistant", "user"] * len(ep.turns)
        # the prompt: its text and its one image (the full-size task image)
        assert texts(msgs[1]["content"]).endswith(env.prompt)
        w, h = env.task.images["image"].size
        assert [p["image"].size for p in msgs[1]["content"] if p["type"] == "image"] == [(w, h)]
        for k, record in enumerate(env.transcript):
            assistant, user = msgs[2 + 2 * k], msgs[3 + 2 * k]
            assert texts(assistant["content"]) == record.action
            body = texts(user["content"])
            assert body.startswith(f"<interpreter>\nText Result:\n{record.observation}\n") and body.endswith("</interpreter>")
            assert n_images(user["content"]) == len(record.images)
            got = [np.asarray(p["image"]) for p in user["content"] if p["type"] == "image"]
            for a, b in zip(got, record.images, strict=True):
                assert a.shape == b.shape and np.array_equal(a, b)
        # turn 1 showed two images: clues 1 and 2 (clue 0 is the prompt image)
        assert n_images(msgs[3]["content"]) == 2 and "<image_clue_1>" in texts(msgs[3]["content"])
        assert "<image_clue_2>" in texts(msgs[3]["content"])
        assert "NameError" in texts(msgs[7]["content"])
        # a pixel cap shrinks every image the same way
        capped = message_images(build_messages(ep, max_pixels=64 * 28 * 28))
        assert all(im.size[0] * im.size[1] <= 64 * 28 * 28 for im in capped)
    finally:
        env.close()


# ----------------------------------------------------------------------------- images
def test_to_pil_conversions_and_caps():
    assert to_pil(img(10, 20, 7)).size == (20, 10)
    gray = to_pil(np.arange(200, dtype=np.uint8).reshape(10, 20))
    assert gray.mode == "RGB" and gray.getpixel((3, 0)) == (3, 3, 3)
    rgba = to_pil(np.full((4, 4, 4), 200, np.uint8))
    assert rgba.mode == "RGB"
    floats = to_pil(np.full((8, 8, 3), 0.5))
    assert floats.getpixel((0, 0)) == (127, 127, 127)
    big = to_pil(img(1000, 2000), max_pixels=200_000)
    assert big.size[0] * big.size[1] <= 200_000 and abs(big.size[0] / big.size[1] - 2) < 0.02
    strip = to_pil(img(2, 900, 255))  # too thin for Qwen-VL processors: padded, content kept at the top-left
    assert max(strip.size) / min(strip.size) <= MAX_ASPECT and strip.getpixel((0, 0)) == (255, 255, 255)
    assert to_pil(Image.new("L", (5, 6))).size == (5, 6)
    with pytest.raises(ValueError):
        to_pil(np.zeros((0, 5, 3), np.uint8))


# ----------------------------------------------------------------------------- stop strings
def test_truncate_at_stop():
    t = "look\n<code>\n```python\nprint(1)\n```\n</code> and more <answer>x</answer>"
    cut, hit = truncate_at_stop(t)
    assert cut.endswith("</code>") and hit == "</code>" and "more" not in cut
    assert truncate_at_stop("<answer>\\boxed{3}</answer></code>") == ("<answer>\\boxed{3}</answer>", "</answer>")
    assert truncate_at_stop("no stop") == ("no stop", None)
    assert truncate_at_stop("abcd", ("cd", "abc")) == ("abc", "abc")  # the earliest end wins
    assert truncate_at_stop("x", ()) == ("x", None)


def test_infer_stop_for_endpoints_that_drop_it():
    assert infer_stop("I will run\n<code>\n```python\nprint(1)\n```\n") == "</code>"
    assert infer_stop("<answer>\\boxed{4}") == "</answer>"
    assert infer_stop("<code>x</code> then <answer>\\boxed{4}") == "</answer>"
    assert infer_stop("plain text, ended by EOS") is None
    assert infer_stop("<code>closed</code>") is None


def test_finish_generation_classifies_the_end():
    g = finish_generation("ok <code>x</code> more", STOP_STRINGS, ended=False, prompt_tokens=3, completion_tokens=4)
    assert (g.text, g.finish_reason, g.stop_reason, g.prompt_tokens, g.completion_tokens) == ("ok <code>x</code>", "stop", "</code>", 3, 4)
    assert finish_generation("eos", STOP_STRINGS, ended=True).finish_reason == "stop"
    assert finish_generation("cut", STOP_STRINGS, ended=False).finish_reason == "length"
    assert g.token_ids is None and g.logprobs is None and g.prompt_token_ids is None  # filled by backends that report them


def test_scrub_control_tokens():
    assert scrub_text("a <|image_pad|> b <|im_end|>") == "a <| image_pad|> b <| im_end|>"
    assert scrub_text("no markup <| here") == "no markup <| here"


# ----------------------------------------------------------------------------- the agent
class EchoBackend(Backend):
    """Returns a fixed continuation; records what it was given."""

    name = "echo"
    max_pixels = 1000

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls: list[tuple[list, SamplingConfig]] = []

    def generate(self, conversations, sampling):
        self.calls.append((list(conversations), sampling))
        return [Generation(self.reply) for _ in conversations]

    def describe(self):
        return {"backend": self.name, "model": "echo", "model_hash": "0" * 16}


def test_agent_truncates_batches_and_describes():
    be = EchoBackend("<code>\n```python\nprint(2)\n```\n</code> trailing junk")
    agent = VLMAgent(be, spec="vlm:echo", max_new_tokens=7, temperature=0.5)
    eps = [Episode(str(i), "image", first=Observation(f"q{i}", (img(100, 100),))) for i in range(3)]
    out = agent.act(eps)
    assert out == ["<code>\n```python\nprint(2)\n```\n</code>"] * 3
    (convs, sampling), = be.calls
    assert len(convs) == 3 and sampling.max_new_tokens == 7 and sampling.temperature == 0.5
    assert sampling.stop == STOP_STRINGS
    assert all(im.size[0] * im.size[1] <= 1000 for im in message_images(convs[0]))  # the backend's pixel cap
    assert agent.act([]) == []
    d = agent.describe()
    assert d["spec"] == "vlm:echo" and d["model_hash"] == "0" * 16 and d["sampling"]["max_new_tokens"] == 7


def test_make_vlm_agent_rejects_bad_specs(tmp_path):
    with pytest.raises(ValueError, match="unknown VLM backend"):
        make_vlm_agent("tgi", str(tmp_path))
    with pytest.raises(ValueError, match="URL#MODEL"):
        make_vlm_agent("openai", "http://127.0.0.1:1/v1")
    with pytest.raises(FileNotFoundError):
        make_vlm_agent("hf", str(tmp_path / "missing"))


def test_model_fingerprint_pins_config_and_weights(tmp_path):
    (tmp_path / "config.json").write_text('{"hidden_size": 128}')
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 100)
    a = model_fingerprint(tmp_path)
    assert a == model_fingerprint(tmp_path) and len(a) == 16
    (tmp_path / "model.safetensors").write_bytes(b"\1" * 100)  # same name and size: weights are listed, not read
    assert model_fingerprint(tmp_path) == a
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 101)
    b = model_fingerprint(tmp_path)
    assert b != a
    (tmp_path / "config.json").write_text('{"hidden_size": 256}')
    assert model_fingerprint(tmp_path) not in (a, b)


# ----------------------------------------------------------------------------- module layout
def test_chat_module_imports_nothing_else_from_agents():
    """chat.py is the shared leaf of the agents package (no import cycles through it)."""
    tree = ast.parse(pathlib.Path(chat.__file__).read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    names += [("." * n.level) + (n.module or "") for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.startswith(".") or n.startswith("pyvision_gym.agents")]


def test_agents_import_no_model_library():
    """The registry, the VLM agent and the server load model libraries only when a backend is built."""
    code = (
        "import sys, pyvision_gym.agents.registry, pyvision_gym.agents.vlm, pyvision_gym.agents.serve\n"
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_agents_package_has_one_module_name():
    init = pathlib.Path(agents.__file__)
    spec = importlib.util.spec_from_file_location("agents", init, submodule_search_locations=[str(init.parent)])
    with pytest.raises(ImportError, match="import this package as pyvision_gym.agents"):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
