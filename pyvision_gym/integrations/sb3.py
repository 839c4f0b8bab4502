"""Stable-Baselines3 as a plug: a PyVision environment as fixed-shape observations and macro actions.

:class:`MacroActionEnv` wraps a :class:`~pyvision_gym.env.PyVisionEnv` so that any SB3
algorithm (PPO, A2C, DQN, ...) trains on it unchanged:

- **observation**: ``{"image": H×W×3 uint8, "task": float32 vector}`` — the last image the
  agent saw (the task image, then whatever a tool displayed), resized; and a task encoding
  (family one-hot, answer kind, valid answer slots, hashed question words, tool use so far,
  the last tool output's conclusion as a one-hot over the answer slots, an error flag, the turn
  fraction).
- **action**: ``Discrete(len(tools) + answer_slots)``. A tool macro runs a program through
  ordinary env turns (``"program"``: the family's scripted program, all its code turns;
  ``"look"``: show a 2× zoom of the image centre, or the middle video frame); answer slot ``j``
  sends ``<answer>\\boxed{X}</answer>`` with ``X`` the ``j``-th option letter for multiple
  choice, the integer ``j`` for count questions.

Everything goes through the real environment: the sandboxed runtime runs the code, and the
reward is the environment's own (the accumulative tool reward by default), summed over a
macro's turns. The programs are built from the prompt's question and options and the family
name in ``info`` — what every agent sees — never from the answer. The observation encoding
lives in :class:`MacroState` so that an agent replaying a trained policy through the rollout
engine (``pyvision_gym.agents.sb3_agent``) sees exactly what the policy saw in training.
"""

from __future__ import annotations

import importlib
import json
import re
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from PIL import Image

from pyvision_gym.envs import families_for
from pyvision_gym.envs.base import Task
from pyvision_gym.envs.experts import answer_action, code_action, helpers_preloaded, last_line

__all__ = [
    "COUNT_FAMILIES",
    "DEFAULT_FAMILIES",
    "TOOLS",
    "MacroActionEnv",
    "MacroConfig",
    "MacroState",
    "PromptTask",
    "load_model",
    "parse_prompt",
    "read_model_meta",
    "save_model",
]

SLOT_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Families whose number questions are small counts (answered with the integer slots).
COUNT_FAMILIES = ("counting", "event_counting", "object_counting_over_time")
#: Families with multiple-choice or count questions (others have free text or real numbers).
DEFAULT_FAMILIES = {
    "image": ("visual_search_attribute", "visual_search_relative_position", "counting",
              "chart_reading", "spatial_relation", "real_photo_search"),
    "video": ("event_counting", "state_at_time", "appearance_order", "motion_direction",
              "object_counting_over_time", "spatial_scene"),
}
#: The generic tool programs (the family's own program is ``"program"``).
LOOK = {
    "image": ("w, h = image.size\n"
              "crop = image.crop((w // 4, h // 4, w - w // 4, h - h // 4)).resize((w, h))\n"
              "display(crop)\n"
              'print("zoomed 2x on the centre", crop.size)'),
    "video": ("i = len(video) // 2\n"
              "display(video[i])\n"
              'print("frame", i, "of", len(video))'),
}
TOOLS = ("program", "look")
_OPTION_RE = re.compile(r"\(([A-Z])\)\s*")
_TURNS_RE = re.compile(r"Limits:\s*(\d+)\s+turns")
_NUMBER_RE = re.compile(r"\b(how many|integer|number)\b", re.IGNORECASE)


@dataclass(frozen=True)
class MacroConfig:
    """What fixes the spaces and the meaning of each action (saved beside a trained model)."""

    modality: str = "image"
    families: tuple[str, ...] = DEFAULT_FAMILIES["image"]
    tools: tuple[str, ...] = ("program",)
    answer_slots: int = 16
    image_size: int = 64
    question_buckets: int = 16

    def __post_init__(self) -> None:
        if self.modality not in DEFAULT_FAMILIES:
            raise ValueError(f"modality must be 'image' or 'video', got {self.modality!r}")
        known = list(families_for(self.modality))
        bad = [f for f in self.families if f not in known]
        if bad or not self.families:
            raise ValueError(f"families must be a non-empty subset of the {self.modality} families {known}, got {list(self.families)}")
        bad_tools = [t for t in self.tools if t not in TOOLS]
        if bad_tools:
            raise ValueError(f"unknown tools {bad_tools}; known: {list(TOOLS)}")
        if not 2 <= self.answer_slots <= len(SLOT_LETTERS):
            raise ValueError(f"answer_slots must be in 2..{len(SLOT_LETTERS)}, got {self.answer_slots}")
        if self.image_size < 36:
            raise ValueError(f"image_size must be at least 36 (SB3's CNN needs it), got {self.image_size}")
        if self.question_buckets < 1:
            raise ValueError(f"question_buckets must be positive, got {self.question_buckets}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MacroConfig:
        """The config written by :meth:`to_dict` (lists back to tuples)."""
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown MacroConfig fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @property
    def all_families(self) -> list[str]:
        """Every family of the modality, in registry order (the one-hot's positions)."""
        return list(families_for(self.modality))

    @property
    def num_actions(self) -> int:
        return len(self.tools) + self.answer_slots

    def action_names(self) -> list[str]:
        return [f"tool:{t}" for t in self.tools] + [f"answer:{j}" for j in range(self.answer_slots)]

    @property
    def vector_size(self) -> int:
        s = self.answer_slots
        return len(self.all_families) + 2 + s + self.question_buckets + len(self.tools) + (s + 1) + 2


@dataclass(frozen=True)
class PromptTask:
    """What the prompt says about the task: question, options, answer kind, turn limit."""

    question: str
    options: tuple[str, ...]
    kind: str | None  # "choice" | "count" | None (not answerable with the slots)
    max_turns: int | None


def parse_prompt(prompt: str, family: str, answer_slots: int = 16) -> PromptTask:
    """Read the question (after the last ``Question:``), its ``Options:`` line and the turn limit."""
    i = prompt.rfind("Question:")
    question = prompt[i + len("Question:"):].strip() if i >= 0 else ""
    options: list[str] = []
    for line in question.splitlines():
        if line.startswith("Options:"):
            parts = _OPTION_RE.split(line[len("Options:"):])
            options = [parts[k + 1].strip() for k in range(1, len(parts) - 1, 2)]
    kind: str | None = None
    if options and len(options) <= answer_slots:
        kind = "choice"
    elif not options and family in COUNT_FAMILIES and _NUMBER_RE.search(question):
        kind = "count"
    m = _TURNS_RE.search(prompt)
    return PromptTask(question, tuple(options), kind if question else None, int(m.group(1)) if m else None)


def _resize(image: np.ndarray | None, size: int) -> np.ndarray:
    if image is None:
        return np.zeros((size, size, 3), dtype=np.uint8)
    arr = np.asarray(image, dtype=np.uint8)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    step_y, step_x = max(1, arr.shape[0] // (4 * size)), max(1, arr.shape[1] // (4 * size))
    small = np.ascontiguousarray(arr[::step_y, ::step_x, :3])  # a strided thinning keeps big images cheap
    return np.asarray(Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)


@dataclass
class MacroState:
    """One episode as the macro policy sees it; :meth:`observation` is the fixed-shape encoding."""

    config: MacroConfig
    family: str
    task: PromptTask
    toolbox: bool = False
    image: np.ndarray | None = None
    turn: int = 0
    tool_uses: list[int] = field(default_factory=list)
    digest: int | None = None  # answer slot the last tool output concluded, if any
    last_error: bool = False
    tool_errors: int = 0  # the env's failed code turns so far

    @classmethod
    def start(cls, config: MacroConfig, prompt: str, family: str, images: tuple[np.ndarray, ...] = (),
              toolbox: bool = False) -> MacroState:
        state = cls(config, family, parse_prompt(prompt, family, config.answer_slots), bool(toolbox))
        state.tool_uses = [0] * len(config.tools)
        state.image = _resize(images[-1] if images else None, config.image_size)
        return state

    @property
    def supported(self) -> bool:
        """Whether the policy can play this task (its family and an answer the slots hold)."""
        return self.family in self.config.families and self.task.kind is not None

    def slot_answer(self, slot: int) -> str:
        """The answer text of slot ``slot``: an option letter, or the integer."""
        return SLOT_LETTERS[slot] if self.task.kind == "choice" else str(slot)

    def conclusion(self, text: str) -> int | None:
        """The answer slot a tool output's last line names (a lone option letter or integer)."""
        line = last_line(text)
        if self.task.kind == "choice" and len(line) == 1 and line in SLOT_LETTERS[: len(self.task.options)]:
            return SLOT_LETTERS.index(line)
        if self.task.kind == "count" and line.isdigit() and int(line) < self.config.answer_slots:
            return int(line)
        return None

    def tool_turns(self, tool: str) -> list[str]:
        """The env turns (agent text) of one tool macro."""
        if tool == "look":
            return [code_action(LOOK[self.config.modality])]
        family = families_for(self.config.modality)[self.family]
        t = self.task
        task = Task(task_id="from-prompt", family=self.family, modality=self.config.modality,
                    question=t.question, answer="", answer_type="choice" if t.kind == "choice" else "number",
                    options=list(t.options) or None)
        with helpers_preloaded(self.toolbox):
            return [code_action(src) for src in family.expert(task)]

    def record(self, tool: int, text: str, images: tuple[np.ndarray, ...], info: dict[str, Any]) -> None:
        """Fold a finished tool macro into the state: its last output text, every image it showed
        and the env's ``info`` after its last turn (a failed code turn marks the macro failed)."""
        errors = int(info.get("tool_errors", 0))
        errored = errors > self.tool_errors
        self.tool_uses[tool] += 1
        self.digest = None if errored else self.conclusion(text)
        self.last_error, self.tool_errors = errored, errors
        self.turn = int(info.get("turn", self.turn))
        if images:
            self.image = _resize(images[-1], self.config.image_size)

    def observation(self) -> dict[str, np.ndarray]:
        c, t = self.config, self.task
        s = c.answer_slots
        fam = np.zeros(len(c.all_families), np.float32)
        if self.family in c.all_families:
            fam[c.all_families.index(self.family)] = 1.0
        kind = np.array([t.kind == "choice", t.kind == "count"], np.float32)
        valid = np.zeros(s, np.float32)
        valid[: (len(t.options) if t.kind == "choice" else s if t.kind == "count" else 0)] = 1.0
        words = np.zeros(c.question_buckets, np.float32)
        for w in re.findall(r"[a-z]+", t.question.lower()):
            words[zlib.crc32(w.encode()) % c.question_buckets] = 1.0
        uses = np.minimum(np.asarray(self.tool_uses, np.float32), 3.0) / 3.0
        digest = np.zeros(s + 1, np.float32)
        digest[s if self.digest is None else self.digest] = 1.0
        limit = t.max_turns or 1
        tail = np.array([self.last_error, min(self.turn / limit, 1.0)], np.float32)
        vector = np.concatenate([fam, kind, valid, words, uses, digest, tail])
        return {"image": self.image.copy(), "task": vector}


def observation_space(config: MacroConfig) -> gym.spaces.Dict:
    """The fixed observation space of :class:`MacroActionEnv` under ``config``."""
    n = config.image_size
    return gym.spaces.Dict({
        "image": gym.spaces.Box(0, 255, (n, n, 3), np.uint8),
        "task": gym.spaces.Box(0.0, 1.0, (config.vector_size,), np.float32),
    })


class MacroActionEnv(gym.Env[dict[str, np.ndarray], np.int64]):
    """A PyVision environment with fixed-shape observations and discrete macro actions.

    ``MacroActionEnv(config, **env_kwargs)`` builds the ``PyVisionEnv`` (``env_kwargs`` go to it:
    ``split``, ``difficulty``, ``max_turns``, ``reward``, ...) on ``config.families``; or pass a
    ready one as ``env=``. Reset draws until the task is one the slots can answer (a family's
    free-text or large-number questions are skipped, at most ``max_redraws`` times),
    deterministically from the seed.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, config: MacroConfig | None = None, *, env: gym.Env | None = None,
                 max_redraws: int = 64, render_mode: str | None = None, **env_kwargs: Any) -> None:
        self.config = config or MacroConfig()
        if env is None:
            from pyvision_gym.env import PyVisionEnv

            env = PyVisionEnv(modality=self.config.modality, families=list(self.config.families), **env_kwargs)
        elif env_kwargs:
            raise ValueError("give either env= or keyword arguments for a new PyVisionEnv, not both")
        if env.unwrapped.modality != self.config.modality:
            raise ValueError(f"a {env.unwrapped.modality} environment under a {self.config.modality} MacroConfig")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.env = env
        self.render_mode = render_mode
        self.max_redraws = int(max_redraws)
        self.observation_space = observation_space(self.config)
        self.action_space = gym.spaces.Discrete(self.config.num_actions)
        self.state: MacroState | None = None
        self._done = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self.env.reset(seed=seed, options=options)
        for _ in range(self.max_redraws):
            self.state = MacroState.start(self.config, obs["text"], info["family"], tuple(obs["images"]),
                                          bool(info.get("toolbox")))
            if self.state.supported:
                break
            obs, info = self.env.reset(options=options)  # the env's seeded generator: deterministic
        else:
            raise RuntimeError(f"no task the answer slots can hold in {self.max_redraws} draws from "
                               f"families {list(self.config.families)}")
        self._done = False
        return self.state.observation(), dict(info, macro=None)

    def step(self, action: Any):
        if self.state is None or self._done:
            raise RuntimeError("call reset() before step() (and after an episode ends)")
        a = int(action)
        if not 0 <= a < self.config.num_actions:
            raise ValueError(f"action {action!r} is outside Discrete({self.config.num_actions})")
        names = self.config.action_names()
        if a >= len(self.config.tools):
            obs, reward, term, trunc, info = self.env.step(answer_action(self.state.slot_answer(a - len(self.config.tools))))
            self.state.turn = int(info["turn"])
        else:
            reward, term, trunc, info = self._run_tool(a)
        self._done = bool(term or trunc)
        return self.state.observation(), float(reward), bool(term), bool(trunc), dict(info, macro=names[a])

    def _run_tool(self, tool: int) -> tuple[float, bool, bool, dict[str, Any]]:
        """Each code turn of the tool macro through the env, until the macro ends or the episode does."""
        total, term, trunc, info, text, shown = 0.0, False, False, {}, "", []
        for turn in self.state.tool_turns(self.config.tools[tool]):
            obs, reward, term, trunc, info = self.env.step(turn)
            total += float(reward)
            text = obs["text"]
            shown.extend(obs["images"])
            if term or trunc:
                break
        self.state.record(tool, text, tuple(shown), info)
        return total, term, trunc, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.env.unwrapped.transcript_text()
        return None

    def close(self) -> None:
        self.env.close()
        super().close()



# ----------------------------------------------------------------------------- saved models
MODEL_META = "pyvision_gym_macro.json"


def save_model(model: Any, path: str | Path, config: MacroConfig, extra: dict[str, Any] | None = None,
               keep_optimizer: bool = False) -> Path:
    """Save an SB3 model with the :class:`MacroConfig` (and ``extra`` notes) inside its zip.

    Without ``keep_optimizer`` the optimizer's running moments are dropped first (a fresh
    optimizer of the same kind is saved): the file is a third of the size and still loads,
    predicts and trains on.
    """
    path = Path(path)
    if path.suffix != ".zip":
        raise ValueError(f"an SB3 model file ends in .zip, got {path}")
    policy = model.policy
    if not keep_optimizer and getattr(policy, "optimizer", None) is not None:
        lr = policy.optimizer.param_groups[0]["lr"]
        policy.optimizer = policy.optimizer_class(policy.parameters(), lr=lr, **policy.optimizer_kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    meta = {"format": "pyvision-gym-sb3/1", "algorithm": type(model).__name__,
            "algorithm_module": type(model).__module__, "config": config.to_dict(), **(extra or {})}
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(MODEL_META, json.dumps(meta, indent=1, sort_keys=True))
    return path


def read_model_meta(path: str | Path) -> dict[str, Any]:
    """The metadata :func:`save_model` stored in ``path`` (clear errors for other files)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no SB3 model file {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            if MODEL_META not in zf.namelist():
                raise ValueError(f"{path} is an SB3 zip without {MODEL_META}: save it with "
                                 "pyvision_gym.integrations.sb3.save_model so the action meaning travels with it")
            return json.loads(zf.read(MODEL_META))
    except zipfile.BadZipFile:
        raise ValueError(f"{path} is not an SB3 model zip") from None


def load_model(path: str | Path, device: str = "cpu") -> tuple[Any, MacroConfig, dict[str, Any]]:
    """``(model, config, meta)`` from a file written by :func:`save_model` (any SB3 algorithm)."""
    meta = read_model_meta(path)
    module = importlib.import_module(meta["algorithm_module"])
    algorithm = getattr(module, meta["algorithm"])
    model = algorithm.load(str(path), device=device)
    return model, MacroConfig.from_dict(meta["config"]), meta
