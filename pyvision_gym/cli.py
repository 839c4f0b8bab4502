"""The ``pyvision-gym`` command line: demo, eval, leaderboard, view, serve, families, isolation."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="pyvision-gym: agentic vision RL environments.")

DEMO_AGENTS = ("random", "direct", "expert", "full-video")
DEMO_SUITES = ("demo-image-v0", "demo-video-v0")


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Where the demo's runs, leaderboard and viewers go."),
    runtime_only: bool = typer.Option(False, "--runtime-only", help="Only walk through the sandboxed runtime."),
) -> None:
    """Run the baseline agents on the embedded demo suites and print the leaderboard."""
    from .demo import run_demo

    run_demo(timeout=3.0)
    if runtime_only:
        return
    from .evaluation.leaderboard import build_leaderboard
    from .evaluation.runner import run_eval
    from .evaluation.viewer import write_viewer

    run_dirs = []
    for suite in DEMO_SUITES:
        for spec in DEMO_AGENTS:
            run_dir = out / suite / spec.replace(":", "_")
            typer.echo(f"\n>>> pyvision-gym eval --agent {spec} --suite {suite} --out {run_dir}")
            run_eval(spec, suite, run_dir)
            write_viewer(run_dir / "episodes.jsonl")
            run_dirs.append(run_dir)
    result = build_leaderboard(run_dirs, out / "leaderboard")
    typer.echo("\n" + result.markdown)
    typer.echo(f"\nleaderboard page: {result.html_path}")
    typer.echo(f"trajectory viewers: {out}/<suite>/<agent>/viewer.html")


@app.command("eval")
def eval_(
    agent: str = typer.Option(..., "--agent", help="random[:SEED] | direct | expert | full-video | vlm:hf:PATH | vlm:vllm:PATH | vlm:openai:URL#MODEL"),
    suite: str = typer.Option(..., "--suite", help="A frozen suite name (pvbench-image-v0, pvbench-video-v0, demo-*) or a suite / dataset file."),
    episodes: int | None = typer.Option(None, help="Only the first N tasks of the suite."),
    workers: int = typer.Option(1, help="Worker processes (or Ray actors with --ray)."),
    ray: bool = typer.Option(False, "--ray", help="Fan episodes out to Ray actors (local, or the cluster at RAY_ADDRESS)."),
    out: Path | None = typer.Option(None, help="Run folder (default runs/<suite>/<agent>). An interrupted run resumes."),
    view: bool = typer.Option(True, help="Also write the trajectory viewer (viewer.html)."),
) -> None:
    """Evaluate an agent on a suite: episodes.jsonl, summary.json (and viewer.html)."""
    from .evaluation.runner import run_eval

    run_dir = out or Path("runs") / Path(suite).stem / agent.replace(":", "_").replace("/", "_").replace("#", "_")
    summary = run_eval(agent, suite, run_dir, episodes=episodes, workers=workers, use_ray=ray)
    acc = summary["accuracy"]
    lo, hi = acc["ci95"]
    typer.echo(
        f"{summary['suite']['name']}: accuracy {acc['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] over {acc['n']} tasks, "
        f"mean tool calls {summary['mean_tool_calls']:.2f}, mean visual tokens {summary['visual_tokens']['mean']:,.0f}"
    )
    typer.echo(f"wrote {run_dir / 'episodes.jsonl'} and {run_dir / 'summary.json'}")
    if view:
        from .evaluation.viewer import write_viewer

        typer.echo(f"viewer: {write_viewer(run_dir / 'episodes.jsonl')}")


@app.command()
def leaderboard(
    runs: list[Path] = typer.Argument(..., help="Run folders (or folders of runs)."),
    out: Path = typer.Option(Path("runs/leaderboard"), help="Output folder for leaderboard.md / leaderboard.html."),
) -> None:
    """Build the Markdown and HTML leaderboard; refuses runs on a different suite hash."""
    from .evaluation.leaderboard import LeaderboardError, build_leaderboard

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
    from .evaluation.viewer import write_viewer

    typer.echo(str(write_viewer(results, out, max_episodes=max_episodes, embed_images=embed)))


@app.command()
def serve(
    path: Path = typer.Argument(..., help="A model folder (transformers format)."),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
) -> None:
    """Serve a checkpoint as an OpenAI-compatible chat endpoint (transformers backend)."""
    from .agents.serve import serve as run_server

    run_server(str(path), host=host, port=port)


@app.command()
def families() -> None:
    """List the embedded task families with their environment ids."""
    from . import family_env_id
    from .envs import all_families

    for name, fam in all_families().items():
        typer.echo(f"{family_env_id(fam.modality, name):48s} {fam.description}")


@app.command()
def isolation() -> None:
    """Report which isolation layers the runtime gets on this machine."""
    from .runtime import Runtime

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
