"""The ``pyvision-gym`` command line: demo, eval, leaderboard, view, suites, serve, families,
tiny-model, isolation.

Agents and the model server live in ``pyvision_gym.agents``, which the core does not import:
they are reached through ``"module:attribute"`` strings (:func:`pyvision_gym.plugins.load`).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import typer

from .authors_format import PROMPT_STYLES, check_prompt_style
from .demo import run_demo
from .envs.registry import all_families, family_env_id
from .evaluation.leaderboard import LeaderboardError, build_leaderboard
from .evaluation.runner import read_rows, run_eval
from .evaluation.suites import (
    BUILTIN_SUITES,
    DEFAULT_ENV_KWARGS,
    SuiteError,
    SuiteMismatchError,
    available_suites,
    freeze,
    freeze_dataset,
    load_suite,
    verify_suite,
)
from .evaluation.viewer import write_viewer
from .plugins import PluginError, load
from .rollout.records import ERROR_END_REASONS
from .runtime import Runtime
from .train.config import ConfigError, load_config

app = typer.Typer(add_completion=False, no_args_is_help=True, help="pyvision-gym: agentic vision RL environments.")
suites_app = typer.Typer(no_args_is_help=True, help="List, freeze and verify evaluation suites.")
app.add_typer(suites_app, name="suites")

DEMO_AGENTS = ("random", "direct", "expert", "full-video")
# The agents each demo suite is played by: the baselines, and on images the shipped trained
# agents (the classic-RL SB3 macro policy and the reference VLM agent, both image-only).
DEMO_RUNS = {
    "demo-image-v0": ("random", "direct", "expert", "sb3", "reference"),
    "demo-video-v0": ("random", "direct", "expert", "full-video"),
}
SERVE = "pyvision_gym.agents.serve:serve"
TRAIN = "pyvision_gym.train.trainer:train"
EXPORT = "pyvision_gym.train.export:export_model_folder"  # loaded on use: torch and transformers are slow to import
BUILD_TINY_MODEL = "pyvision_gym.agents.tiny_model:build_tiny_qwen25vl"
AGENT_HELP = (
    "random[:SEED] | direct | expert | full-video | vlm:hf:PATH | vlm:vllm:PATH | "
    "vlm:openai:URL#MODEL | sb3[:PATH] | reference | package.module:AgentClass (or a function returning an Agent)"
)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Where the demo's runs, leaderboard and viewers go."),
    runtime_only: bool = typer.Option(False, "--runtime-only", help="Only walk through the sandboxed runtime."),
) -> None:
    """Run the baselines, the shipped SB3 policy and the reference agent on the embedded demo suites and print the leaderboard."""
    run_demo(timeout=3.0)
    if runtime_only:
        return
    run_dirs = []
    for suite, specs in DEMO_RUNS.items():
        for spec in specs:
            run_dir = out / suite / spec.replace(":", "_")
            typer.echo(f"\n>>> pyvision-gym eval --agent {spec} --suite {suite} --out {run_dir}")
            run_eval(spec, suite, run_dir)
            write_viewer(run_dir / "episodes.jsonl")
            run_dirs.append(run_dir)
    result = build_leaderboard(run_dirs, out / "leaderboard")
    typer.echo("\n" + result.markdown)
    typer.echo(f"\nleaderboard page: {result.html_path}")
    typer.echo(f"trajectory viewers: {out}/<suite>/<agent>/viewer.html")


def _agent_options(**given: Any) -> dict[str, Any]:
    """The agent options given on the command line (those left unset are not passed)."""
    return {k: v for k, v in given.items() if v is not None}


def _check_prompt_style_option(agent: str, prompt_style: str | None) -> None:
    """``--prompt-style`` must name a style and be given to an agent that takes it (VLM or user agents)."""
    if prompt_style is None:
        return
    check_prompt_style(prompt_style)
    head = agent.strip().split(":", 1)[0].lower()
    if head in DEMO_AGENTS or head in ("full_video", "fullvideo"):
        raise ValueError(f"--prompt-style applies to vlm:... (and your own) agents, not to {agent!r}")


def _summary_line(summary: dict[str, Any]) -> str:
    """The one-line result of an eval run (``--episodes 0`` selects no task: nothing to average)."""
    acc = summary["accuracy"]
    head = f"{summary['suite']['name']} (hash {summary['suite']['hash'][:16]}…)"
    if not acc["n"]:
        return f"{head}: no tasks selected"
    lo, hi = acc["ci95"]
    return (f"{head}: accuracy {acc['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] over {acc['n']} tasks, "
            f"mean tool calls {summary['mean_tool_calls']:.2f}, mean visual tokens {summary['visual_tokens']['mean']:,.0f}")


def _last_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[-1] if lines else "(no message)"


def _report_errors(rows: list[dict[str, Any]], max_error_share: float) -> int:
    """Print the episodes that ended in an agent or environment error; the exit status."""
    failed = [r for r in rows if r.get("end_reason") in ERROR_END_REASONS]
    if not failed:
        return 0
    share = len(failed) / len(rows)
    over = share > max_error_share
    kinds = dict(Counter(r["end_reason"] for r in failed))
    typer.echo(f"{'error' if over else 'warning'}: {len(failed)} of {len(rows)} episodes ended in errors "
               f"{kinds} ({share:.0%}; allowed: {max_error_share:.0%})", err=True)
    for message, n in Counter(_last_line(r.get("error")) for r in failed).most_common(3):
        typer.echo(f"  {n} x {message}", err=True)
    return 1 if over else 0


@app.command("eval")
def eval_(
    agent: str = typer.Option(..., "--agent", help=AGENT_HELP),
    suite: str = typer.Option(..., "--suite", help="A frozen suite name (pvbench-image-v0, pvbench-video-v0, demo-*), a suite file, or a dataset file (frozen on the fly)."),
    episodes: int | None = typer.Option(None, help="Only the first N tasks of the suite."),
    workers: int = typer.Option(1, help="Worker processes (or Ray actors with --ray)."),
    ray: bool = typer.Option(False, "--ray", help="Fan episodes out to Ray actors (local, or the cluster at RAY_ADDRESS)."),
    batch_size: int = typer.Option(4, help="Episodes run at once per worker (one environment each)."),
    out: Path | None = typer.Option(None, help="Run folder (default runs/<suite>/<agent>). An interrupted run resumes."),
    view: bool = typer.Option(True, help="Also write the trajectory viewer (viewer.html)."),
    max_new_tokens: int | None = typer.Option(None, help="VLM agents: tokens generated per turn at most."),
    temperature: float | None = typer.Option(None, help="VLM agents: sampling temperature (0 = greedy)."),
    top_p: float | None = typer.Option(None, help="VLM agents: nucleus sampling."),
    seed: int | None = typer.Option(None, help="VLM agents: sampling seed."),
    timeout: float | None = typer.Option(None, help="vlm:openai agents: seconds per request."),
    concurrency: int | None = typer.Option(None, help="vlm:openai agents: requests in flight at once."),
    prompt_style: str | None = typer.Option(
        None, "--prompt-style",
        help=f"VLM agents: {' | '.join(PROMPT_STYLES)}. 'pyvision' speaks the released PyVision-RL format "
             "(image_clue_0 / video_clue_0, their prompt and tool-output wrapping, stop at </code>) "
             "so the authors' checkpoints run unchanged.",
    ),
    max_error_share: float = typer.Option(0.0, help="Share of episodes allowed to end in agent / environment errors before the command fails."),
) -> None:
    """Evaluate an agent on a suite: episodes.jsonl, summary.json (and viewer.html).

    Exits with status 1 when more than --max-error-share of the episodes end in an agent or
    environment error (a dead endpoint, a crashing agent), after reporting them.
    """
    try:
        _check_prompt_style_option(agent, prompt_style)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    options = _agent_options(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                             seed=seed, timeout=timeout, concurrency=concurrency, prompt_style=prompt_style)
    style_tag = f"_{prompt_style}" if prompt_style not in (None, "default") else ""
    run_dir = out or Path("runs") / Path(suite).stem / (agent.replace(":", "_").replace("/", "_").replace("#", "_") + style_tag)
    try:
        summary = run_eval(agent, suite, run_dir, episodes=episodes, workers=workers, use_ray=ray,
                           batch_size=batch_size, agent_options=options)
    except (SuiteError, SuiteMismatchError, PluginError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(_summary_line(summary))
    typer.echo(f"wrote {run_dir / 'episodes.jsonl'} and {run_dir / 'summary.json'}")
    if view:
        typer.echo(f"viewer: {write_viewer(run_dir / 'episodes.jsonl')}")
    status = _report_errors(read_rows(run_dir / "episodes.jsonl"), max_error_share)
    if status:
        raise typer.Exit(status)


@app.command()
def leaderboard(
    runs: list[Path] = typer.Argument(..., help="Run folders (or folders of runs)."),
    out: Path = typer.Option(Path("runs/leaderboard"), help="Output folder for leaderboard.md / leaderboard.html."),
) -> None:
    """Build the Markdown and HTML leaderboard; refuses runs on a different suite hash."""
    try:
        result = build_leaderboard(runs, out)
    except LeaderboardError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(result.markdown)
    typer.echo(f"\nwrote {result.markdown_path} and {result.html_path}")


@app.command()
def view(
    results: Path = typer.Argument(..., help="A run's episodes.jsonl (or its folder)."),
    out: Path | None = typer.Option(None, help="Output HTML (default: next to the results)."),
    embed: bool = typer.Option(False, help="Embed images (one portable file)."),
    max_episodes: int | None = typer.Option(None),
) -> None:
    """Write the static HTML trajectory viewer for a run."""
    typer.echo(str(write_viewer(results, out, max_episodes=max_episodes, embed_images=embed)))


@suites_app.command("list")
def suites_list() -> None:
    """The shipped suite files: name, modality, task count, hash."""
    for name in available_suites():
        s = load_suite(name, check=False)
        typer.echo(f"{name:24s} {s.modality:5s} {len(s.tasks):4d} tasks  hash {s.hash[:16]}…  {s.description}")


@suites_app.command("freeze")
def suites_freeze(
    name: str = typer.Argument(..., help=f"A built-in suite ({', '.join(BUILTIN_SUITES)}) or, with --dataset, the new suite's name."),
    dataset: Path | None = typer.Option(None, help="Freeze the rows of this PyVision-RL dataset file."),
    modality: str | None = typer.Option(None, help="With --dataset: image or video rows (needed when it has both)."),
    max_turns: int | None = typer.Option(None, help="With --dataset: the episodes' max_turns (default 8)."),
    out: Path | None = typer.Option(None, help="Output file (default ./NAME.json)."),
    force: bool = typer.Option(False, help="Overwrite a frozen file whose hash changed."),
) -> None:
    """Generate a suite and write its frozen file (to the working directory by default)."""
    try:
        if dataset is not None:
            kw = dict(DEFAULT_ENV_KWARGS, **({"max_turns": max_turns} if max_turns else {}))
            typer.echo(freeze_dataset(name, dataset, modality, out, kw, force))
        else:
            typer.echo(freeze(name, out, force))
    except (SuiteError, ValueError, KeyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


@suites_app.command("verify")
def suites_verify(names: list[str] = typer.Argument(..., help="Suite names or files ('all': every shipped suite).")) -> None:
    """Regenerate suites' tasks and compare them with the frozen hashes."""
    status = 0
    for name in available_suites() if names == ["all"] else names:
        try:
            typer.echo(f"{name}: OK ({verify_suite(name, progress=True)[:16]}…)")
        except (SuiteError, SuiteMismatchError) as exc:
            typer.echo(f"{name}: MISMATCH: {exc}", err=True)
            status = 1
    raise typer.Exit(status)


@app.command()
def serve(
    path: Path = typer.Argument(..., help="A model folder (transformers format)."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    api_key: str | None = typer.Option(None, "--api-key", help="Require 'Authorization: Bearer KEY' (default: $PYVISION_API_KEY)."),
) -> None:
    """Serve a checkpoint as an OpenAI-compatible chat endpoint (FastAPI + uvicorn over transformers:
    streaming, n > 1, log-probs, cancellation on disconnect)."""
    load(SERVE)(str(path), host=host, port=port, api_key=api_key)


@app.command("tiny-model")
def tiny_model(
    out: Path = typer.Argument(..., help="Folder to write the model into."),
    seed: int = typer.Option(0, help="Weights and tokenizer seed."),
    force: bool = typer.Option(False, help="Rebuild even if the folder holds this model already."),
) -> None:
    """Write a tiny random-weight Qwen2.5-VL model folder (for CPU tests, demos and the trainer)."""
    typer.echo(str(load(BUILD_TINY_MODEL)(out, seed=seed, force=force)))


@app.command()
def train(
    config: str = typer.Option("tiny-cpu", "--config", help="A shipped config (tiny-cpu, qwen2.5-vl-7b) or a YAML file."),
    overrides: list[str] = typer.Option([], "--set", help="Override a field: --set optim.lr=3e-5 (repeatable)."),
    out: Path | None = typer.Option(None, help="Run folder (default: the config's out_dir)."),
    resume: bool = typer.Option(True, help="Continue from the run folder's last checkpoint when there is one."),
) -> None:
    """Train the policy: SFT warm start on expert trajectories, then RL with the accumulative tool
    reward and oversampling-filtering-ranking. Checkpoints, metrics.jsonl, TensorBoard, a plot."""
    try:
        cfg = load_config(config, [*overrides, *([f"out_dir={out}"] if out else [])])
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    summary = load(TRAIN)(cfg, resume=resume)
    typer.echo(json.dumps(summary.get("validation", {}), indent=1))
    typer.echo(f"run folder: {cfg.out_dir}")


@app.command()
def export(
    run: Path = typer.Argument(..., help="A training run folder (pyvision-gym train's out_dir)."),
    dest: Path = typer.Argument(..., help="The model folder to write (replaced if it exists)."),
    checkpoint: Path | None = typer.Option(None, help="A checkpoint folder of the run (default: its latest)."),
    dtype: str = typer.Option("float32", help="Weights' dtype: float32, bfloat16 or float16."),
) -> None:
    """Write a run's checkpoint as a model folder for ``vlm:hf:DEST``, with the agent settings
    the run trained with (pyvision_agent.json)."""
    from pyvision_gym.train.config import ConfigError
    from pyvision_gym.train.export import ExportError

    try:
        folder = load(EXPORT)(run, dest, checkpoint=checkpoint, dtype=dtype)
    except (ExportError, ConfigError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"model folder: {folder} (evaluate it: pyvision-gym eval --agent vlm:hf:{folder} --suite ...)")


@app.command()
def families() -> None:
    """List the embedded task families with their environment ids."""
    for name, fam in all_families().items():
        typer.echo(f"{family_env_id(fam.modality, name):48s} {fam.description}")


@app.command()
def isolation() -> None:
    """Report which isolation layers the runtime gets on this machine."""
    with Runtime() as rt:
        rt.reset()
        typer.echo(f"method: {rt.report.method}")
        typer.echo(rt.report.describe())
        for p in rt.report.problems:
            typer.echo(f"problem: {p}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
