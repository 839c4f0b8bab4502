"""Shared checks for the task-family tests: run an expert, judge it, and check its source
against the runtime's own policy (one source of truth for what expert code may use)."""

from __future__ import annotations

import ast
import contextlib
import io
from typing import Any

from pyvision_gym.envs.base import Task
from pyvision_gym.sandbox.policy import ALLOWED_MODULES, BLOCKED_ATTRIBUTES, compile_agent_code
from pyvision_gym.scoring import score_answer

BLOCKED_NAMES = {"eval", "exec", "globals", "vars", "getattr", "setattr", "compile", "open", "__import__", "decord"}


def run_expert(namespace: dict[str, Any], turns: list[str]) -> str:
    """Execute the turns in one namespace; the last non-empty output line of the last turn."""
    output = ""
    for turn in turns:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(turn, "<expert>", "exec"), namespace)
        output = buffer.getvalue()
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def is_correct(task: Task, prediction: str) -> bool:
    """Full marks from the environment's own scorer (for MRA: within 5% of the truth)."""
    score = score_answer(prediction, task.answer, task.answer_type, options=task.options, tolerance=task.tolerance)
    return score.accuracy == 1.0


def restricted_compile(source: str) -> None:
    """Compile under the runtime's policy; raises SyntaxError naming any violation."""
    compile_agent_code(source, "<expert>")


def policy_problems(source: str) -> list[str]:
    """Imports outside the runtime's allowlist, blocked attributes and names, type() with 3 args."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            problems += [f"import {a.name}" for a in node.names if a.name not in ALLOWED_MODULES]
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if node.module not in ALLOWED_MODULES or (alias.name[:1].isupper() and full not in ALLOWED_MODULES and node.module in {"PIL"}):
                    problems.append(f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Attribute) and (node.attr in BLOCKED_ATTRIBUTES or node.attr.startswith("_")):
            problems.append(f"attribute .{node.attr}")
        elif isinstance(node, ast.Name) and (node.id in BLOCKED_NAMES or node.id.startswith("_")):
            problems.append(f"name {node.id}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "type" and len(node.args) != 1:
            problems.append("type() with more than one argument")
    return problems
