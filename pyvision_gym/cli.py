"""The ``pyvision-gym`` command line."""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, help="pyvision-gym: agentic vision RL environments.")


@app.command()
def demo(timeout: float = typer.Option(30.0, help="Per-call time limit of the runtime, in seconds.")) -> None:
    """Run a short scripted episode through the sandboxed runtime and print every turn."""
    from .demo import run_demo, run_env_demo

    run_demo(timeout=timeout)
    run_env_demo()


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
