"""Baseline agents and the agent registry: valid turns, determinism, expert success, full-video cost."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pyvision_gym.agents.baselines import (
    DirectAgent,
    ExpertAgent,
    FullVideoAgent,
    RandomAgent,
    answer_turn,
    direct_guess,
    prompt_answer_kind,
    prompt_options,
)
from pyvision_gym.agents.registry import AgentSpecError, make_agent
from pyvision_gym.env import PyVisionEnv
from pyvision_gym.parsing import parse_action
from pyvision_gym.rollout.agent import Agent, Episode, Observation
from pyvision_gym.visual_tokens import VisualTokenCounter, smart_nframes

DEMO = {"image": "demo-image-v0", "video": "demo-video-v0"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


def _suite(modality: str):
    from pyvision_gym.evaluation.suites import load_suite

    return load_suite(DEMO[modality])


def _run_episode(env: PyVisionEnv, agent: Agent, entry: dict, max_steps: int = 10) -> tuple[dict, Episode]:
    """One episode of ``agent`` on a suite entry, through the real environment."""
    obs, info = env.reset(seed=entry["seed"], options={"family": entry["family"], "difficulty": entry["difficulty"]})
    ep = Episode(entry["task_id"], env.modality, Observation(obs["text"], tuple(obs["images"])),
                 task=env.task if agent.privileged else None, info=info)
    for _ in range(max_steps):
        (action,) = agent.act([ep])
        assert parse_action(action).kind in ("code", "answer"), action
        obs, _, terminated, truncated, info = env.step(action)
        ep.turns.append((action, Observation(obs["text"], tuple(obs["images"]))))
        if terminated or truncated:
            break
    return info, ep


@pytest.fixture(scope="module")
def envs(cache: Path):
    made = {m: PyVisionEnv(modality=m, split="test", cache_dir=cache, max_turns=5) for m in ("image", "video")}
    yield made
    for e in made.values():
        e.close()


def _episode(prompt: str, modality: str = "image", turn: int = 0, eid: str = "t") -> Episode:
    ep = Episode(eid, modality, Observation(prompt))
    ep.turns = [("x", Observation("out"))] * turn
    return ep


CHOICE = "Limits: 5 turns, 32 images shown in total.\nQuestion: What colour? (A) red (B) blue (C) green\nAnswer with the letter."
NUMBER = "Limits: 5 turns.\nQuestion: How many circles are there? Answer with a single integer."
TEXT = "Limits: 5 turns.\nQuestion: What code is printed on the tag? Answer with the code exactly as printed."


def test_prompt_reading() -> None:
    assert prompt_options(CHOICE) == ["A", "B", "C"]
    assert [prompt_answer_kind(p) for p in (CHOICE, NUMBER, TEXT)] == ["choice", "number", "string"]
    assert [direct_guess(p) for p in (CHOICE, NUMBER, TEXT)] == ["A", "0", "unknown"]


def test_direct_answers_first_turn() -> None:
    agent = DirectAgent()
    outs = agent.act([_episode(CHOICE), _episode(NUMBER), _episode(TEXT)])
    assert [parse_action(o).answer for o in outs] == ["A", "0", "unknown"]
    assert agent.describe()["spec"] == "direct"


def test_random_is_deterministic_and_valid() -> None:
    eps = [_episode(p, m, t, f"ep{i}") for i, (p, m) in enumerate([(CHOICE, "image"), (NUMBER, "video"), (TEXT, "image")]) for t in range(4)]
    a, b, c = RandomAgent(3).act(eps), RandomAgent(3).act(eps), RandomAgent(4).act(eps)
    assert a == b
    assert a != c
    kinds = [parse_action(x).kind for x in a + c]
    assert set(kinds) <= {"code", "answer"} and "code" in kinds and "answer" in kinds
    # the last allowed turn always answers; guesses are of the right kind
    for p in (CHOICE, NUMBER, TEXT):
        for seed in range(5):
            out = parse_action(RandomAgent(seed, p_code=1.0).act([_episode(p, turn=4)])[0])
            assert out.kind == "answer"
            if p is CHOICE:
                assert out.answer in "ABC"
            elif p is NUMBER:
                assert out.answer.isdigit()


def test_random_code_runs_in_the_runtime(envs: dict[str, PyVisionEnv]) -> None:
    for modality in ("image", "video"):
        for entry in _suite(modality).tasks[:2]:
            info, ep = _run_episode(envs[modality], RandomAgent(7, p_code=1.0), entry)
            assert info["tool_calls"] == 4 and info["tool_errors"] == 0, ep.turns
            assert info["end_reason"] == "DONE"


@pytest.mark.parametrize("modality", ["image", "video"])
def test_expert_solves_demo_suite(envs: dict[str, PyVisionEnv], modality: str) -> None:
    agent = ExpertAgent()
    for entry in _suite(modality).tasks:
        info, _ = _run_episode(envs[modality], agent, entry)
        assert info["correct"], (entry["task_id"], info)


def test_expert_refuses_dataset_and_unprivileged_tasks(envs: dict[str, PyVisionEnv]) -> None:
    from pyvision_gym.envs.base import Task

    task = Task("vstar-1", "vstar_bench", "image", "q", "A", "choice", metadata={"data_source": "vstar_bench"})
    with pytest.raises(ValueError, match="not from a generated task family"):
        ExpertAgent().act([Episode("vstar-1", "image", Observation("q"), task=task)])
    with pytest.raises(ValueError, match="privileged"):
        ExpertAgent().act([_episode(CHOICE)])


def test_full_video_shows_all_frames_and_costs_about_the_full_video(tmp_path: Path, cache: Path) -> None:
    import re

    from pyvision_gym.evaluation.runner import run_eval

    # through the eval runner: it lifts max_images and the runtime's per-call image cap for this agent
    summary = run_eval("full-video", "demo-video-v0", tmp_path, episodes=3, progress=False, batch_size=3, cache_dir=cache)
    assert summary["end_reasons"] == {"DONE": 3}
    for line in (tmp_path / "episodes.jsonl").read_text().splitlines():
        row = json.loads(line)
        frames, fps = re.search(r"Video: (\d+) frames at ([\d.]+) fps", row["transcript"][0]["observation"]).groups()
        n = smart_nframes(int(frames), float(fps))
        assert row["images_shown"] == n == len(row["transcript"][1]["images"]) and n >= 12
        assert row["tool_calls"] == 1 and row["turns"] == 2
        full = row["visual_tokens_full_video"]
        assert 0.8 * full <= row["visual_tokens"] <= 1.2 * full, (row["visual_tokens"], full)
    assert 0.8 <= summary["visual_tokens"]["ratio_to_full_video"] <= 1.2
    # image tasks: like DirectAgent
    assert FullVideoAgent().act([_episode(CHOICE)]) == DirectAgent().act([_episode(CHOICE)])
    assert FullVideoAgent(VisualTokenCounter(sample_fps=1.0)).describe()["sample_fps"] == 1.0


def test_registry_specs() -> None:
    assert isinstance(make_agent("random"), RandomAgent) and make_agent("random").seed == 0
    r = make_agent("random:12")
    assert r.seed == 12 and r.spec == "random:12"
    assert isinstance(make_agent("direct"), DirectAgent)
    assert make_agent("expert").privileged
    assert isinstance(make_agent("full-video"), FullVideoAgent)
    for bad in ("", "nope", "random:x", "random:-1", "direct:3", "vlm", "vlm:tpu:x", "vlm:openai:http://h:8000/v1"):
        with pytest.raises(AgentSpecError, match="Valid forms: random"):
            make_agent(bad)


def test_registry_vlm_is_lazy(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    calls = []
    fake = types.ModuleType("pyvision_gym.agents.vlm")

    def make_vlm_agent(backend: str, target: str, **kw):
        calls.append((backend, target, kw))
        return DirectAgent()

    fake.make_vlm_agent = make_vlm_agent
    monkeypatch.setitem(sys.modules, "pyvision_gym.agents.vlm", fake)
    make_agent("vlm:openai:http://localhost:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct", temperature=0.0)
    make_agent("vlm:hf:/models/qwen")
    assert calls == [
        ("openai", "http://localhost:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct", {"temperature": 0.0}),
        ("hf", "/models/qwen", {}),
    ]
    monkeypatch.setitem(sys.modules, "pyvision_gym.agents.vlm", None)  # import fails: missing module
    with pytest.raises(AgentSpecError, match="needs pyvision_gym.agents.vlm"):
        make_agent("vlm:vllm:/models/qwen")


# ----------------------------------------------------------------------------- user agents (module:Class specs)
class EchoAgent(Agent):
    """A user agent for the registry tests: always answers ``answer``."""

    def __init__(self, answer: str = "A") -> None:
        self.answer = answer

    def act(self, episodes):
        return [answer_turn(self.answer) for _ in episodes]


def make_echo(answer: str = "B") -> EchoAgent:
    return EchoAgent(answer)


class NotAnAgent:
    def act(self, episodes):
        return []


def returns_text() -> str:
    return "not an agent"


NOT_CALLABLE = 3
USER_AGENT = """
from pyvision_gym.rollout.agent import Agent


class Constant(Agent):
    def __init__(self, text="<answer>7</answer>"):
        self.text = text

    def act(self, episodes):
        return [self.text for _ in episodes]
"""


def test_registry_user_agents_by_module_and_name() -> None:
    me = __name__  # this test module: importable, no dot in its name
    agent = make_agent(f"{me}:EchoAgent", answer="C")
    assert isinstance(agent, EchoAgent) and agent.spec == f"{me}:EchoAgent"
    assert agent.act([_episode("Question: pick one. (A) x (B) y")]) == ["<answer>\\boxed{C}</answer>"]
    made = make_agent(f"{me}:make_echo")  # a function returning an Agent
    assert isinstance(made, EchoAgent) and made.answer == "B"


def test_registry_user_agent_in_a_dotted_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "pvg_user_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "my_agents.py").write_text(USER_AGENT)
    monkeypatch.syspath_prepend(str(tmp_path))
    agent = make_agent("pvg_user_pkg.my_agents:Constant")
    assert agent.act([_episode("q"), _episode("q")]) == ["<answer>7</answer>"] * 2
    assert agent.describe() == {"spec": "pvg_user_pkg.my_agents:Constant"}
    assert make_agent("pvg_user_pkg.my_agents:Constant", text="x").act([_episode("q")]) == ["x"]


@pytest.mark.parametrize(
    ("attr", "why"),
    [
        ("NoSuchAgent", "has no attribute 'NoSuchAgent'"),
        ("NotAnAgent", "not a subclass of pyvision_gym.rollout.agent.Agent"),
        ("returns_text", "returned a str, not an Agent"),
        ("NOT_CALLABLE", r"is not an Agent class or a function \(int\)"),
    ],
)
def test_registry_user_agent_errors(attr: str, why: str) -> None:
    with pytest.raises(AgentSpecError, match=why):
        make_agent(f"{__name__}:{attr}")


def test_registry_user_module_errors() -> None:
    with pytest.raises(AgentSpecError, match="cannot import module 'no_such_pkg.agents'"):
        make_agent("no_such_pkg.agents:Agent")
    with pytest.raises(AgentSpecError, match="name the agent after the module"):
        make_agent("no_such_pkg.agents:")
    with pytest.raises(AgentSpecError, match="unknown agent 'no_such_module'"):
        make_agent("no_such_module:Agent")  # no dot and not importable: not a module spec
