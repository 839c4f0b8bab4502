"""The layout rules: no import cycles, the core imports no add-on, small files and functions,
one module name per file, and every package shipped."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
# Source folder -> the package name it is installed under (pyproject's package-dir).
ROOTS = {"pyvision_gym": "pyvision_gym", "envs": "pyvision_gym.envs",
         "agents": "pyvision_gym.agents", "benchmarks": "pyvision_gym.benchmarks"}
CORE_FORBIDDEN = ("pyvision_gym.agents", "pyvision_gym.benchmarks")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 500, 80
LONG_OK = "# layout: long-ok:"  # marker + reason, on the def line or the first lines of a file


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder)
            if "experts" in rel.parts:  # expert programs are sent to the runtime as text
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules ``name`` imports anywhere in the file (inside functions too)."""
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_pkg else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_counting_imports_inside_functions():
    assert len(GRAPH) > 40
    assert _cycles(GRAPH) == []


def test_core_imports_no_agents_or_benchmarks():
    core = {n for n in GRAPH if not n.startswith(("pyvision_gym.agents", "pyvision_gym.benchmarks"))}
    bad = {n: sorted(t for t in GRAPH[n] if t.startswith(CORE_FORBIDDEN)) for n in core}
    assert {n: t for n, t in bad.items() if t} == {}


def _long_ok(lines: list[str], line_no: int) -> bool:
    return any(LONG_OK in line and line.split(LONG_OK, 1)[1].strip() for line in lines[line_no - 1 : line_no + 1])


def test_files_and_functions_are_small():
    too_long = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_FILE_LINES and not any(LONG_OK in x for x in lines[:15]):
            too_long.append(f"{name}: file of {len(lines)} lines")
        for node in ast.walk(ast.parse("\n".join(lines))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = node.end_lineno - node.lineno + 1
                if size > MAX_FUNCTION_LINES and not _long_ok(lines, node.lineno):
                    too_long.append(f"{name}.{node.name}: function of {size} lines")
    assert too_long == []


def test_pyproject_ships_every_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    packages = {n for n, p in MODULES.items() if p.name == "__init__.py"}
    assert packages == listed
    for folder, package in ROOTS.items():
        assert config["package-dir"][package] == folder


@pytest.mark.parametrize("folder", ["envs", "agents", "benchmarks"])
def test_one_module_name_per_file(folder, tmp_path):
    """From the checkout, ``import benchmarks`` must not load a second copy of the package."""
    proc = subprocess.run([sys.executable, "-c", f"import {folder}"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0
    assert f"pyvision_gym.{folder}" in proc.stderr


def test_license_file_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"  # an SPDX expression, not the deprecated table
    assert project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def _readme_commands() -> set[tuple[str, ...]]:
    """The distinct ``pyvision-gym SUB[ SUB]`` and ``python -m MODULE`` commands the README shows."""
    text = (REPO / "README.md").read_text() + (REPO / "benchmarks" / "README.md").read_text()
    found: set[tuple[str, ...]] = set()
    for m in re.finditer(r"python -m ([\w.]+)", text):
        found.add(("-m", m.group(1)))
    for m in re.finditer(r"(?:^|`)pyvision-gym ([a-z-]+)(?: ([a-z]+))?", text, re.MULTILINE):
        sub = m.group(1)
        found.add((sub, m.group(2)) if sub == "suites" and m.group(2) else (sub,))
    return found


def test_readme_commands_work_from_any_directory(tmp_path):
    commands = _readme_commands()
    assert ("-m", "pyvision_gym.benchmarks.runtime_bench") in commands and ("eval",) in commands
    cli = Path(sys.executable).with_name("pyvision-gym")
    failures = []
    for cmd in sorted(commands):
        argv = [sys.executable, "-m", cmd[1]] if cmd[0] == "-m" else [str(cli), *cmd]
        proc = subprocess.run([*argv, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            failures.append(f"{' '.join(cmd)}: {proc.stderr.strip()[-300:]}")
    assert failures == []
