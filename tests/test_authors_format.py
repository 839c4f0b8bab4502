"""The released PyVision-RL format (``prompt_style="pyvision"``): the authors' checkpoints run
unchanged. Turns are written exactly as a released model writes them (``<code>`` + fenced python,
``<answer>\\n\\boxed{…}\\n</answer>``, the inputs as ``image_clue_0`` / ``video_clue_0``), run
through ``gym.make`` environments on the real sandbox, and their observations and scores are
checked against the released tools' formats (``../shared/reference/pyvision-rl-code-notes.md``
§1.2–1.8). The default style is checked to be byte-identical to what it was before the option.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

import pyvision_gym  # noqa: F401 - registers the environments
from pyvision_gym.agents.chat import STOP_STRINGS, Generation, message_images
from pyvision_gym.agents.vlm import SYSTEM_PROMPT, VLMAgent, make_vlm_agent
from pyvision_gym.cli import app
from pyvision_gym.rollout.agent import Episode, Observation

IMAGE_KW = {"families": "counting", "difficulty": 0, "prompt_style": "pyvision"}
VIDEO_KW = {"families": "event_counting", "difficulty": 0, "prompt_style": "pyvision"}
TOOL_END = "</interpreter>\n\n</tool_response>"


def released_code(src: str, thought: str = "Let me look at the image more closely.") -> str:
    """A code turn as a released PyVision model writes it (generation stopped at ``</code>``)."""
    return f"{thought}\n\n<code>\n```python\n{src}\n```\n</code>"


def released_answer(answer: str) -> str:
    """A final turn as a released PyVision model writes it (the reward's strict format)."""
    return f"From the analysis, the answer is {answer}.\n\n<answer>\n\\boxed{{'{answer}'}}\n</answer>"


IMAGE_ZOOM = """\
import matplotlib.pyplot as plt
import numpy as np
w, h = image_clue_0.size
print(f"size: {w}x{h}")
crop = image_clue_0.crop((0, 0, w // 2, h // 2))
plt.figure(figsize=(4, 3))
plt.imshow(crop)
plt.axis('off')
plt.show()"""

VIDEO_SAMPLE = """\
import numpy as np
import matplotlib.pyplot as plt
total = len(video_clue_0)
fps = video_clue_0.get_avg_fps()
idx = np.linspace(0, total - 1, 3, dtype=int)
frames = video_clue_0.get_batch(idx).asnumpy()
print(total, round(fps, 2), frames.shape)
for i in idx:
    plt.imshow(video_clue_0[int(i)].asnumpy())
    plt.axis('off')
    plt.show()"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pvg-authors-cache")


def make(env_id: str, cache: Path, **kw):
    return gym.make(env_id, cache_dir=cache, **kw)


# ----------------------------------------------------------------------------- the option
def test_prompt_style_is_validated(cache: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown prompt_style 'qwen'; valid styles: 'default', 'pyvision'"):
        make("PyVisionImage-v0", cache, prompt_style="qwen")
    with pytest.raises(ValueError, match="toolbox=True"):
        make("PyVisionImage-v0", cache, toolbox=True, prompt_style="pyvision")
    with pytest.raises(ValueError, match="valid styles"):
        VLMAgent(ScriptedBackend([]), prompt_style="PyVision")
    with pytest.raises(ValueError, match="valid styles"):  # refused before any model is loaded
        make_vlm_agent("hf", "/no/such/model", prompt_style="authors")


# ----------------------------------------------------------------------------- image episodes
def test_image_prompt_is_the_released_format(cache: Path) -> None:
    env = make("PyVisionImage-v0", cache, **IMAGE_KW)
    try:
        obs, _ = env.reset(seed=5)
        text, (image,) = obs["text"], obs["images"]
        task = env.unwrapped.task
        h, w = image.shape[:2]
        assert text.startswith("<image_clue_0><image></image_clue_0>\n")
        assert text.count("<image>") == len(obs["images"]) == 1
        assert f"*image resolution:*\n\nImage Width: {w}; Image Height: {h}\n" in text
        assert "*user question:*\n" in text and task.question.strip() in text
        assert "`image_clue_i`" in text and "plt.show()" in text and "print()" in text
        assert "`<code>\n```python\ncode snippet\n```\n</code>`" in text
        assert "`<interpreter>output_str</interpreter>`" in text
        assert text.endswith("<answer>\n\\boxed{'your final answer here'}\n</answer>")
        assert "`image`" not in text and "display(" not in text  # nothing of the default prompt
        # The runtime holds the input under the released name, and not under the default one.
        o, *_ = env.step(released_code("print(image_clue_0.mode, image_clue_0.size)"))
        assert o["text"] == f"<tool_response>\n<interpreter>\nText Result:\nRGB {(w, h)}{TOOL_END}"
        o, *_ = env.step(released_code("print(image.size)"))
        assert o["text"].startswith("<tool_response>\n<interpreter>Execution error: ") and "NameError" in o["text"]
    finally:
        env.close()


def test_image_episode_runs_and_scores_in_the_released_format(cache: Path) -> None:
    env = make("PyVisionImage-v0", cache, **IMAGE_KW)
    try:
        obs, _ = env.reset(seed=5)
        h, w = obs["images"][0].shape[:2]
        truth = env.unwrapped.task.answer
        # 1. a zoom: text and one figure, tagged as the first figure after image_clue_0
        o, r, term, trunc, info = env.step(released_code(IMAGE_ZOOM))
        assert o["text"] == (f"<tool_response>\n<interpreter>Text Result:\nsize: {w}x{h}\nImage Result:\n"
                             f"<image_clue_1><image></image_clue_1>{TOOL_END}")
        assert len(o["images"]) == 1 and o["images"][0].shape[2] == 3
        assert env.observation_space.contains(obs) and env.observation_space.contains(o)
        assert (r, term, trunc, info["tool_calls"]) == (0.0, False, False, 1)
        # 2. text only
        o, *_ = env.step(released_code("print(np.asarray(image_clue_0).shape)", "Now check the array."))
        assert o["text"] == f"<tool_response>\n<interpreter>\nText Result:\n({h}, {w}, 3){TOOL_END}" and o["images"] == ()
        # 3. two figures at once, numbered on from the earlier one; bare fences work too
        o, *_ = env.step("Two views.\n```python\nfor k in range(2):\n    plt.imshow(np.asarray(image_clue_0)[:, :, k])\n    plt.show()\n```")
        assert o["text"] == ("<tool_response>\n<interpreter>Text Result:\n\nImage Result:\n<image_clue_2><image></image_clue_2>"
                             f"<image_clue_3><image></image_clue_3>{TOOL_END}")
        assert len(o["images"]) == 2
        # 4. the answer, in the reward's strict format: correct, with the tool bonus
        o, r, term, trunc, info = env.step(released_answer(truth))
        assert term and not trunc and info["end_reason"] == "DONE"
        assert info["answer"] == truth and info["correct"] and info["accuracy"] == 1.0
        assert r == pytest.approx(1.0 + 0.1 * 3)
        # the same episode with a wrong answer scores 0 and gets no bonus
        env.reset(seed=5)
        env.step(released_code(IMAGE_ZOOM))
        wrong = str(int(truth) + 1)
        o, r, term, _, info = env.step(released_answer(wrong))
        assert term and info["answer"] == wrong and not info["correct"] and r == 0.0
    finally:
        env.close()


def test_answer_forms_of_released_models_are_scored(cache: Path) -> None:
    env = make("PyVisionImage-v0", cache, **IMAGE_KW)
    try:
        for form in ("<answer>\n\\boxed{%s}\n</answer>", "<answer>\n\\boxed{'%s'}\n</answer>", "<answer>\\boxed{%s}</answer>"):
            env.reset(seed=8)
            truth = env.unwrapped.task.answer
            _, r, term, _, info = env.step("The count is clear.\n\n" + form % truth)
            assert term and info["answer"] == truth and info["correct"] and r == 1.0, form
    finally:
        env.close()


def test_errors_and_format_slips_are_wrapped_too(cache: Path) -> None:
    env = make("PyVisionImage-v0", cache, **IMAGE_KW)
    try:
        env.reset(seed=5)
        o, r, term, _, info = env.step(released_code("print('half')\nprint(1 / 0)"))
        assert o["text"].startswith("<tool_response>\n<interpreter>Text Result:\nhalf\nExecution error: ")
        assert "ZeroDivisionError" in o["text"] and o["text"].endswith(TOOL_END)
        assert not term and info["tool_errors"] == 1
        o, *_ = env.step("I think I should look again.")  # neither code nor answer
        assert o["text"].startswith("<tool_response>\n<interpreter>Error: no Python code or final answer found")
        assert o["text"].endswith(TOOL_END)
        # a printed "<image>" cannot pose as an image placeholder
        o, *_ = env.step(released_code("print('<image>')\nplt.imshow(np.zeros((8, 8))); plt.show()"))
        assert o["text"].count("<image>") == len(o["images"]) == 1 and "<image >" in o["text"]
    finally:
        env.close()
    # The authors' training behaviour: any error ends the episode.
    env = make("PyVisionImage-v0", cache, terminate_on_error=True, **IMAGE_KW)
    try:
        env.reset(seed=5)
        _, r, term, _, info = env.step(released_code("undefined_name + 1"))
        assert term and info["end_reason"] == "ERROR_IN_ACTION" and r == 0.0
    finally:
        env.close()


# ----------------------------------------------------------------------------- video episodes
def test_video_episode_runs_and_scores_in_the_released_format(cache: Path) -> None:
    env = make("PyVisionVideo-v0", cache, **VIDEO_KW)
    try:
        obs, info = env.reset(seed=2)
        v, text = info["video"], obs["text"]
        assert obs["images"] == () and "<image>" not in text  # no frames in the prompt
        assert ("*Video Information:*\n\n"
                f"Frame Width: {v['width']}; Frame Height: {v['height']};\n"
                f"Video Length: {v['frames']}; Sample FPS: {v['fps']:.2f}\n"
                "The original video has been read into the global variable `video_clue_0`.\n\n*User Question:*\n") in text
        assert env.unwrapped.task.question.strip() in text and "CANNOT see the video" in text
        # frames sampled with the decord reader API; figures start at image_clue_0
        o, *_ = env.step(released_code(VIDEO_SAMPLE, "Let me sample a few frames."))
        shape = (3, v["height"], v["width"], 3)
        clues = "".join(f"<image_clue_{k}><image></image_clue_{k}>" for k in range(3))
        assert o["text"] == (f"<tool_response>\n<interpreter>\nText Result:\n{v['frames']} {round(v['fps'], 2)} {shape}\n"
                             f"Image Result:\n{clues}{TOOL_END}")
        assert len(o["images"]) == 3
        assert env.observation_space.contains(obs) and env.observation_space.contains(o)
        o, *_ = env.step(released_code("print(video_clue_0[0].asnumpy().mean() >= 0)"))
        assert o["text"] == f"<tool_response>\n<interpreter>\nText Result:\nTrue\n{TOOL_END}"
        o, *_ = env.step(released_code("plt.imshow(video_clue_0[-1].asnumpy()); plt.show()"))
        assert "<image_clue_3><image></image_clue_3>" in o["text"]
        truth = env.unwrapped.task.answer
        _, r, term, _, info = env.step(released_answer(truth))
        assert term and info["correct"] and r == pytest.approx(1.0 + 0.1 * 3)
        env.reset(seed=2)
        _, r, term, _, info = env.step(released_answer(str(int(truth) + 2)))
        assert term and not info["correct"] and r == 0.0
    finally:
        env.close()


# ----------------------------------------------------------------------------- the VLM agent
class ScriptedBackend:
    """Returns scripted turns and records the chats it was given (stands in for a model)."""

    name = "scripted"
    max_pixels = 10_000

    def __init__(self, replies: list[str]) -> None:
        self.replies = list(replies)
        self.calls: list = []

    def generate(self, conversations, sampling):
        self.calls.append((list(conversations), sampling))
        return [Generation(self.replies.pop(0)) for _ in conversations]

    def describe(self):
        return {"backend": self.name, "model": "scripted", "model_hash": "0" * 16}

    def close(self) -> None:
        pass


def _texts(content) -> str:
    return "".join(p["text"] if p["type"] == "text" else "[IMG]" for p in content)


def test_agent_settings_of_the_released_format() -> None:
    agent = VLMAgent(ScriptedBackend([]), prompt_style="pyvision")
    assert agent.system_prompt == "You are a helpful assistant."  # Qwen2.5-VL's default system turn
    assert agent.sampling.stop == ("</code>",) and agent.sampling.max_new_tokens == 10_240
    assert agent.sampling.temperature == 0.0  # the authors validate greedily
    assert agent.env_overrides == {"prompt_style": "pyvision"}
    assert agent.describe()["prompt_style"] == "pyvision"
    custom = VLMAgent(ScriptedBackend([]), prompt_style="pyvision", stop=["</code>", "</answer>"], max_new_tokens=64, system_prompt=None)
    assert custom.sampling.stop == ("</code>", "</answer>") and custom.sampling.max_new_tokens == 64 and custom.system_prompt is None
    # The default style is unchanged.
    default = VLMAgent(ScriptedBackend([]))
    assert default.system_prompt == SYSTEM_PROMPT and default.sampling.stop == STOP_STRINGS
    assert default.sampling.max_new_tokens == 1024 and default.env_overrides is None and "prompt_style" not in default.describe()


def test_agent_stops_only_at_code_and_keeps_answers_whole() -> None:
    be = ScriptedBackend(["<code>\n```python\nprint(1)\n```\n</code> and more", "<answer>\n\\boxed{'3'}\n</answer> tail"])
    agent = VLMAgent(be, prompt_style="pyvision")
    ep = Episode("e", "video", first=Observation("Count the balls.", ()))
    assert agent.act([ep]) == ["<code>\n```python\nprint(1)\n```\n</code>"]
    assert agent.act([ep]) == ["<answer>\n\\boxed{'3'}\n</answer> tail"]  # </answer> is not a stop string
    assert be.calls[0][1].stop == ("</code>",)


def test_agent_chat_of_a_real_episode_in_the_released_format(cache: Path) -> None:
    env = make("PyVisionImage-v0", cache, **IMAGE_KW)
    be = ScriptedBackend([released_code(IMAGE_ZOOM), released_code("print('ok')"), "done"])
    agent = VLMAgent(be, prompt_style="pyvision")
    try:
        obs, _ = env.reset(seed=5)
        ep = Episode("real", "image", first=Observation(obs["text"], tuple(obs["images"])))
        for _ in range(3):
            (action,) = agent.act([ep])
            o, *_ = env.step(action)
            ep.turns.append((action, Observation(o["text"], tuple(o["images"]))))
        msgs = agent.messages(ep)
    finally:
        env.close()
    assert [m["role"] for m in msgs] == ["system", "user"] + ["assistant", "user"] * 3
    assert _texts(msgs[0]["content"]) == "You are a helpful assistant."
    first = msgs[1]["content"]
    assert [p["type"] for p in first[:3]] == ["text", "image", "text"]
    assert first[0]["text"] == "<image_clue_0>" and first[2]["text"].startswith("</image_clue_0>\nYou are an agent")
    assert _texts(msgs[3]["content"]).startswith("<tool_response>\n<interpreter>Text Result:\nsize: ")
    assert _texts(msgs[3]["content"]).endswith("Image Result:\n<image_clue_1>[IMG]</image_clue_1></interpreter>\n\n</tool_response>")
    assert _texts(msgs[5]["content"]) == f"<tool_response>\n<interpreter>\nText Result:\nok{TOOL_END}"
    assert _texts(msgs[7]["content"]).startswith("<tool_response>\n<interpreter>Error: no Python code")
    assert len(message_images(msgs)) == 2 and "<image>" not in "".join(_texts(m["content"]) for m in msgs)
    assert all(im.size[0] * im.size[1] <= ScriptedBackend.max_pixels for im in message_images(msgs))
    # A default-style observation (an image without a placeholder) is refused, not silently misplaced.
    bad = Episode("bad", "image", first=Observation("What is it?", (np.zeros((8, 8, 3), np.uint8),)))
    with pytest.raises(ValueError, match="prompt_style='pyvision'"):
        agent.messages(bad)


# ----------------------------------------------------------------------------- the default style
# sha256 over every observation text of the default-style episodes below, computed with the code
# as it was before prompt_style existed (commit ef98284): the default must stay byte-identical.
DEFAULT_STYLE_SHA = "f270eda2b0258cf1750e8ee18849d2a1d16012ef747684570d9ac55402f8eafe"


def test_default_style_is_unchanged(cache: Path) -> None:
    h = hashlib.sha256()
    for env_id, family in (("PyVisionImage-v0", "counting"), ("PyVisionVideo-v0", "event_counting")):
        name = "image" if "Image" in env_id else "video"
        env = make(env_id, cache, families=family, difficulty=0)
        try:
            obs, _ = env.reset(seed=3)
            texts = [obs["text"]]
            for action in (f"<code>\n```python\nprint(type({name}).__name__, len(str({name})) > 0)\n"
                           "plt.imshow(np.zeros((4, 4))); plt.show()\n```\n</code>",
                           "<code>\n```python\nprint(1/0)\n```\n</code>", "no code here",
                           "<code>\n```python\nx = 1\n```\n</code>"):
                o, *_ = env.step(action)
                texts.append(o["text"])
        finally:
            env.close()
        assert "image_clue" not in "".join(texts) and "<tool_response>" not in "".join(texts)
        for t in texts:
            h.update(t.encode() + b"\0")
    assert h.hexdigest() == DEFAULT_STYLE_SHA


# ----------------------------------------------------------------------------- the command line
runner = CliRunner()


def test_eval_option_is_checked_and_documented(tmp_path: Path) -> None:
    res = runner.invoke(app, ["eval", "--help"])
    assert res.exit_code == 0 and "--prompt-style" in res.output
    res = runner.invoke(app, ["eval", "--agent", "vlm:vllm:/models/PyVision-Video-7B", "--suite", "pvbench-video-v0",
                              "--prompt-style", "pyvison", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "valid styles: 'default', 'pyvision'" in res.output
    res = runner.invoke(app, ["eval", "--agent", "expert", "--suite", "demo-image-v0", "--prompt-style", "pyvision",
                              "--out", str(tmp_path / "y")])
    assert res.exit_code == 2 and "--prompt-style applies to vlm:" in res.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _readme_commands() -> list[list[str]]:
    """The ``pyvision-gym eval`` commands of the README's section on released checkpoints."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("### Evaluating a released PyVision checkpoint", 1)[1].split("\n## ", 1)[0]
    return [shlex.split(line)[1:] for line in section.splitlines() if line.startswith("pyvision-gym eval ")]


def test_readme_commands_parse_and_run_dry(tmp_path: Path, monkeypatch) -> None:
    """Each README command, as written, with ``--episodes 0``: parsed, suite loaded, nothing generated."""
    commands = _readme_commands()
    assert len(commands) >= 2 and all(c[-2:] == ["--prompt-style", "pyvision"] for c in commands)
    Image.new("RGB", (32, 32)).save(tmp_path / "im.png")
    (tmp_path / "my_data.json").write_text(json.dumps([{"id": "1", "question": "Q?", "answer": "A", "image_path": "im.png"}]))
    monkeypatch.chdir(tmp_path)
    for i, args in enumerate(commands):
        res = runner.invoke(app, [*args, "--episodes", "0", "--no-view", "--out", str(tmp_path / f"run{i}")])
        assert res.exit_code == 0, (args, res.output)
        assert "no tasks selected" in res.output
        assert json.loads((tmp_path / f"run{i}" / "run.json").read_text())["agent_spec"] == args[args.index("--agent") + 1]


@pytest.mark.slow
def test_eval_a_checkpoint_in_the_released_format(tmp_path: Path, tiny_model: Path, monkeypatch) -> None:
    """The README's command, on the tiny Qwen2.5-VL standing in for a released checkpoint."""
    Image.new("RGB", (56, 56), (30, 120, 200)).save(tmp_path / "blue.png")
    rows = [{"id": "1", "question": "What colour is the image? (A) blue (B) red", "answer": "A",
             "ability": "color", "data_source": "vstar", "image_path": "blue.png"}]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["suites", "freeze", "tiny-pv", "--dataset", "data.json", "--max-turns", "2"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["eval", "--agent", f"vlm:hf:{tiny_model}", "--suite", "tiny-pv.json",
                              "--prompt-style", "pyvision", "--max-new-tokens", "6", "--no-view"])
    assert res.exit_code == 0, res.output
    (run_dir,) = (tmp_path / "runs" / "tiny-pv").iterdir()
    assert run_dir.name.endswith("_pyvision")  # never mixed with a default-style run of the same model
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["agent"]["prompt_style"] == "pyvision" and summary["agent"]["sampling"]["stop"] == ["</code>"]
    (row,) = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    first, *turns = row["transcript"]
    assert first["observation"].startswith("<image_clue_0><image></image_clue_0>\n") and len(first["images"]) == 1
    tool_turns = [t for t in turns if not t["observation"].startswith("Answer received")]
    assert tool_turns and all(t["observation"].startswith("<tool_response>\n<interpreter>") for t in tool_turns)
