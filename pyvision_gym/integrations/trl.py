"""TRL adapter: a PyVision environment behind ``GRPOTrainer(environment_factory=...)``.

TRL (>= 1.16) drives multi-turn tool use itself: it renders the environment's public methods
as tools in the prompt, parses the model's JSON tool calls with the chat template's response
parser, runs them, appends the results as ``tool`` messages (masked out of the loss) and
generates again until a reply holds no tool call. This module maps a PyVision episode onto that
protocol:

- :class:`PyVisionToolEnv` wraps ``gym.make(env_id, **env_kwargs)``. ``reset(**row)`` starts the
  episode named by a dataset row (``seed``, and optionally ``family``, ``difficulty`` or
  ``index``) and returns the task prompt, rewritten for tool calls, plus the task image for
  image tasks. Its one tool, ``python(code)``, sends the code to the environment as a code turn
  and returns the printed output (or the trimmed traceback) followed by the images it showed.
- :func:`pyvision_reward` is the reward function: it sends each rollout's final reply (no tool
  call, ending with ``<answer>\\boxed{...}</answer>``) to the environment as the answer turn and
  returns the environment's episode reward (accuracy + the accumulative tool bonus by default).
  The final answer goes through a reward function rather than TRL's ``get_reward`` hook because
  ``get_reward()`` takes no argument and so never sees the final reply.
- :func:`make_environment_factory` builds the zero-argument factory TRL wants,
  :func:`build_dataset` a seeded TRL dataset of tasks, and :func:`use_tool_chat_template` puts a
  tool-calling chat template on a Qwen2.5-VL processor (Qwen2.5-VL's own template renders no tools).

Limits (also in the README): tool calls are JSON through a tool-calling chat template, not the
``<code>`` blocks PyVision-RL trains on; TRL has no oversampling/filtering/ranking of groups, so
the trainer's batch filtering is absent; every tool call and the answer each use one of the
environment's ``max_turns``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
from PIL import Image

from ..envs import family_names
from ..envs.experts import code_action
from ..parsing import parse_action

__all__ = [
    "TOOL_FORMAT",
    "PyVisionToolEnv",
    "build_dataset",
    "final_reply",
    "make_environment_factory",
    "pyvision_reward",
    "tool_prompt",
    "use_tool_chat_template",
]

TOOL_FORMAT = """\
You answer a question about {what} by running Python code with the `python` tool and then giving a final answer.
Call the `python` tool with your program as its `code` argument. It runs in a persistent Python session: \
variables, imports and figures carry over between calls. What it prints and the images it shows come back \
as the tool's result. Print values with print(); show images with display(img) (PIL images, numpy arrays, \
figures) or plt.show().
When you know the answer, reply WITHOUT a tool call and end that reply with the final answer in this form:
<answer>\\boxed{{your answer}}</answer>
"""

# The environment's own format section (pyvision_gym/prompts.py FORMAT): its first line names
# what the question is about; it ends with the answer example.
_CODE_FORMAT_RE = re.compile(
    r"\AYou answer a question about (?P<what>.+?) by writing Python code.*?"
    r"<answer>\\boxed\{your answer\}</answer>\n",
    re.DOTALL,
)
_FENCE_RE = re.compile(r"\A```[ \t]*(?:python3?|py)?[ \t]*\n(?P<body>.*?)\n?```\s*\Z", re.DOTALL | re.IGNORECASE)
_ROW_OPTIONS = ("family", "difficulty", "index")
NO_ANSWER = "NO_ANSWER"


def tool_prompt(prompt: str) -> str:
    """The environment's prompt with its code-block format replaced by :data:`TOOL_FORMAT`
    (prepended instead when the prompt does not start with the usual format section)."""
    match = _CODE_FORMAT_RE.match(prompt)
    if match is None:
        return TOOL_FORMAT.format(what="the task below") + "\n" + prompt
    return TOOL_FORMAT.format(what=match.group("what")) + prompt[match.end() :]


def _strip_fence(code: str) -> str:
    """The body of ``code`` when the whole argument is one fenced block (models often add one)."""
    match = _FENCE_RE.match(code.strip())
    return match.group("body") if match else code


def _text(text: str) -> dict[str, str]:
    return {"type": "text", "text": text}


class PyVisionToolEnv:
    """One PyVision episode at a time, shaped for TRL's ``environment_factory``.

    TRL exposes every public method except ``reset`` (and ``get_reward``, not defined here) as a
    tool, so the only public method besides ``reset`` is the ``python`` tool; the state is read
    through properties (``env``, ``info``, ``reward``, ``ended``), which TRL does not expose.
    """

    def __init__(self, env_id: str = "PyVisionImage-v0", **env_kwargs: Any) -> None:
        self._env_id = env_id
        self._env = gym.make(env_id, **env_kwargs)
        self._info: dict[str, Any] = {}
        self._reward: float | None = None
        self._ended_reward = 0.0
        self._end_reason: str | None = None

    # ------------------------------------------------------------------ state (not tools)
    @property
    def env(self) -> Any:
        """The wrapped PyVision environment (unwrapped: transcript, task, counters)."""
        return self._env.unwrapped

    @property
    def info(self) -> dict[str, Any]:
        """The environment's ``info`` after the last reset or step."""
        return self._info

    @property
    def ended(self) -> bool:
        """Whether the episode is over (answered, truncated, ended by an error, or scored)."""
        return self._end_reason is not None

    @property
    def end_reason(self) -> str | None:
        """The environment's end reason, ``"NO_ANSWER"`` when scored without an answer, or None."""
        return self._end_reason

    @property
    def reward(self) -> float | None:
        """The episode's reward once :func:`pyvision_reward` has scored it, else None."""
        return self._reward

    # ------------------------------------------------------------------ TRL protocol
    def reset(self, **row: Any) -> str | list[dict[str, Any]]:
        """Start the episode a dataset row names; returns the prompt TRL appends to the user turn.

        Read from the row: ``seed`` (int or None), ``family``, ``difficulty`` and ``index`` (the
        environment's reset options; None or absent means the environment's own choice). Other
        columns (``prompt``...) are ignored. Image tasks return ``[image blocks..., text block]``,
        video tasks the text alone.
        """
        seed = row.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"the row's 'seed' must be an int or None, got {seed!r}")
        options = {k: row[k] for k in _ROW_OPTIONS if row.get(k) is not None}
        obs, info = self._env.reset(seed=seed, options=options or None)
        self._info, self._reward, self._ended_reward, self._end_reason = info, None, 0.0, None
        text = tool_prompt(obs["text"])
        if not obs["images"]:
            return text
        return [*({"type": "image", "image": Image.fromarray(a)} for a in obs["images"]), _text(text)]

    def python(self, code: str) -> list:
        """Run Python code in the task's persistent session and see what it printed and showed.

        Args:
            code: The Python program to run. The task's inputs (image or video) and numpy as np, matplotlib.pyplot as plt and PIL's Image are preloaded; variables persist between calls.

        Returns:
            The printed output (or the error) as text, followed by the images the code showed.
        """
        if not self._info:
            raise RuntimeError("python() was called before reset(): TRL resets every environment before generating")
        if self.ended:
            return [_text(f"The episode is over ({self._end_reason}); nothing was run.")]
        if not isinstance(code, str) or not code.strip():
            return [_text("Error: the `code` argument is empty; nothing was run.")]
        turn = code_action(_strip_fence(code))
        if parse_action(turn).kind != "code":
            return [_text("Error: this code cannot be sent as one code turn (it holds <answer> or <code> tags); "
                          "nothing was run.")]
        obs, reward, _terminated, _truncated, info = self._env.step(turn)
        self._info = info
        text = obs["text"]
        if info["end_reason"] is not None:  # truncated, or a failed turn with terminate_on_error
            self._end_reason, self._ended_reward = info["end_reason"], float(reward)
            text += f"\n\nThe episode has ended ({self._end_reason}); no further code runs and no answer is accepted."
        return [_text(text), *({"type": "image", "image": Image.fromarray(a)} for a in obs["images"])]

    # ------------------------------------------------------------------ scoring (used by pyvision_reward)
    def _score(self, final: str | None) -> float:
        """Send the final reply as the answer turn (once) and return the episode's reward.

        A reply without a complete ``<answer>`` is not sent (its code would run as a turn): the
        episode ends with ``NO_ANSWER`` and reward 0, as an unanswered episode gets in the env.
        """
        if self._reward is not None:
            return self._reward
        if not self._info:
            raise RuntimeError("this environment was never reset: nothing to score")
        if not self.ended and final is not None and parse_action(final).kind == "answer":
            _obs, reward, _terminated, _truncated, info = self._env.step(final)
            self._info, self._end_reason, self._reward = info, info["end_reason"], float(reward)
            return self._reward
        if self.ended:  # ended during a code turn: the env's reward for that end (0 with the defaults)
            self._reward = self._ended_reward
        else:
            self._end_reason, self._reward = NO_ANSWER, 0.0
        return self._reward


def make_environment_factory(env_id: str = "PyVisionImage-v0", **env_kwargs: Any) -> Callable[[], PyVisionToolEnv]:
    """The zero-argument factory ``GRPOTrainer(environment_factory=...)`` calls once per rollout slot.

    ``env_kwargs`` go to ``gym.make(env_id, ...)`` (``families``, ``difficulty``, ``max_turns``,
    ``tool_reward_per_turn``, ``toolbox``...). The environment is built once here, so a bad id
    or keyword fails at once rather than inside the trainer.
    """
    PyVisionToolEnv(env_id, **env_kwargs)._env.close()

    def factory() -> PyVisionToolEnv:
        return PyVisionToolEnv(env_id, **env_kwargs)

    factory.__doc__ = f"A PyVisionToolEnv on {env_id} with {env_kwargs or 'default settings'}."
    return factory


def final_reply(completion: Any) -> str | None:
    """The text of a rollout's last assistant reply, or None when the rollout ended on a tool
    message (the tool loop was cut off). Accepts TRL's conversational completions (a list of
    messages) and plain strings."""
    if isinstance(completion, str):
        return completion
    if not completion or completion[-1].get("role") != "assistant":
        return None
    content = completion[-1].get("content")
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if isinstance(part, dict))


def pyvision_reward(completions: Sequence[Any], environments: Sequence[Any] | None = None,
                    log_metric: Callable[[str, float], None] | None = None, **kwargs: Any) -> list[float | None]:
    """TRL reward function: each rollout's final reply is the answer turn; the reward is the env's.

    ``environments`` is what TRL passes when ``environment_factory`` is set. Rollouts of other
    environment classes (a multi-environment run) get None, which TRL skips. With ``log_metric``
    (TRL passes it) the batch's accuracy, tool calls, and answered share are logged under
    ``pyvision/...``.
    """
    if environments is None:
        raise ValueError("pyvision_reward needs the trainer's environments: pass "
                         "environment_factory=make_environment_factory(...) to GRPOTrainer")
    if len(environments) != len(completions):
        raise ValueError(f"{len(completions)} completions but {len(environments)} environments")
    rewards: list[float | None] = []
    scored: list[PyVisionToolEnv] = []
    for completion, env in zip(completions, environments, strict=True):
        if not isinstance(env, PyVisionToolEnv):
            rewards.append(None)
            continue
        rewards.append(env._score(final_reply(completion)))
        scored.append(env)
    if log_metric is not None and scored:
        n = len(scored)
        log_metric("pyvision/accuracy", sum(float(e.info.get("accuracy", 0.0)) for e in scored) / n)
        log_metric("pyvision/tool_calls", sum(int(e.info.get("tool_calls", 0)) for e in scored) / n)
        log_metric("pyvision/answered", sum(e.end_reason == "DONE" for e in scored) / n)
    return rewards


def build_dataset(num_rows: int, *, first_seed: int = 0, families: str | Sequence[str] | None = None,
                  difficulty: int | Sequence[int] | None = None, system_prompt: str | None = None) -> Any:
    """A ``datasets.Dataset`` of tasks for :class:`PyVisionToolEnv`: row ``i`` has seed
    ``first_seed + i``; ``families`` and ``difficulty`` (a value or a list, cycled over the rows)
    pin each row's family and difficulty, None leaves them to the environment (drawn from the
    seed). The ``prompt`` column is the conversation ``reset`` appends the task to."""
    from datasets import Dataset

    if isinstance(num_rows, bool) or not isinstance(num_rows, int) or num_rows < 1:
        raise ValueError(f"num_rows must be a positive int, got {num_rows!r}")
    fams = [families] if isinstance(families, str) else list(families) if families is not None else []
    unknown = sorted(set(fams) - set(family_names()))
    if unknown:
        raise ValueError(f"unknown families {unknown}; known: {family_names()}")
    diffs = [difficulty] if isinstance(difficulty, int) else list(difficulty) if difficulty is not None else []
    if families is not None and not fams or difficulty is not None and not diffs:
        raise ValueError("families and difficulty must be None, a value, or a non-empty list")
    prompt = ([{"role": "system", "content": system_prompt}] if system_prompt else []) + [
        {"role": "user", "content": ""}]
    columns: dict[str, list[Any]] = {
        "prompt": [prompt] * num_rows,
        "seed": [first_seed + i for i in range(num_rows)],
    }
    if fams:
        columns["family"] = [fams[i % len(fams)] for i in range(num_rows)]
    if diffs:
        columns["difficulty"] = [int(diffs[i % len(diffs)]) for i in range(num_rows)]
    return Dataset.from_dict(columns)


_QWEN_TOKENS = ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>", "<|vision_end|>")


def use_tool_chat_template(processing_class: Any) -> Any:
    """Put a tool-calling chat template on a Qwen-VL processor (in place; returned).

    Qwen2.5-VL's own template renders no tools, and TRL refuses one that cannot render a
    ``user -> assistant(tool_calls) -> tool`` exchange. This sets TRL's copy of the Qwen3-VL
    template: the same control tokens as Qwen2.5-VL, tools listed in the system turn, calls as
    ``<tool_call>{"name": ..., "arguments": ...}</tool_call>`` JSON (Qwen2.5's format) and
    results as ``<tool_response>`` blocks that may hold images. TRL recognises it, so it
    installs the matching response parser and training template itself.
    """
    from trl.chat_template_utils import qwen3_vl_chat_template

    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    vocab = tokenizer.get_vocab()
    missing = [t for t in _QWEN_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"use_tool_chat_template needs a Qwen-VL tokenizer; this one lacks {missing}")
    processing_class.chat_template = qwen3_vl_chat_template
    if tokenizer is not processing_class:
        tokenizer.chat_template = qwen3_vl_chat_template
    return processing_class
