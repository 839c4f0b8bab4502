"""Frozen suites (``suites/*.json``) and performance benchmarks (imported as ``pyvision_gym.benchmarks``).

Run a benchmark as ``python -m pyvision_gym.benchmarks.<name>``; its table goes to the
terminal and its JSON to ``benchmarks/results/`` (see ``README.md`` beside this file).
"""

if not __name__.startswith("pyvision_gym."):  # one module name per file
    raise ImportError(
        f"import this package as pyvision_gym.benchmarks, not {__name__!r} "
        "(e.g. python -m pyvision_gym.benchmarks.runtime_bench)"
    )
