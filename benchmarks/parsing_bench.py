"""Action parsing on adversarial turns: today's linear parser against the lazy-regex one it replaced.

    python -m pyvision_gym.benchmarks.parsing_bench [--json PATH]

Each adversarial pattern is repeated to 1K, 4K, 16K and 64K characters (64K is the
environment's default ``max_action_chars``; longer turns are refused before parsing). The
baseline is the search strategy of the previous parser, kept here only for comparison: lazy
``(.*?)`` regexes that rescan the rest of the turn from every opening tag, and a brace scan to
the end of the text from every ``\\boxed{``. It is skipped once a size takes over 5 s (its time
grows with the square of the length). Prints a table of milliseconds and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from tqdm import tqdm

from pyvision_gym.evaluation.provenance import versions
from pyvision_gym.parsing import parse_action

PATTERNS = {
    "<answer> repeated": "<answer>",
    "\\boxed{ repeated in an answer": "\\boxed{",
    "<code> repeated": "<code>",
    "```py on one line": "```py",
    "{ after \\boxed": "{",
}
SIZES = (1_000, 4_000, 16_000, 64_000)
BUDGET_S = 5.0

_LAZY_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_LAZY_CODE = re.compile(r"<code>\s*```[ \t]*(?:python3?|py)?[ \t]*\r?\n?((?:(?!</?code>).)*?)(?:```[ \t]*)?\s*</code>",
                        re.DOTALL | re.IGNORECASE)
_LAZY_FENCE = re.compile(r"```[ \t]*(?:python3?|py)\b[^\n]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\s*\{")


def baseline_parse(text: str) -> None:
    """The previous parser's searches (their results are not used: only their cost)."""
    _LAZY_ANSWER.findall(text)
    for m in _BOXED.finditer(text):  # a balanced-brace scan to the end from every \boxed{
        depth = 0
        for ch in text[m.end() - 1 :]:
            depth += (ch == "{") - (ch == "}")
            if depth == 0:
                break
    _LAZY_CODE.findall(text)
    _LAZY_FENCE.findall(text)


def turn(pattern: str, size: int) -> str:
    body = pattern * (size // len(pattern))
    return f"<answer>\\boxed{body}" if pattern == "{" else (f"<answer>{body}</answer>" if "boxed" in pattern else body)


def timed_ms(fn, text: str) -> float:  # noqa: ANN001 - a parser
    t0 = time.perf_counter()
    fn(text)
    return (time.perf_counter() - t0) * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyvision_gym.benchmarks.parsing_bench", description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/parsing_bench.json"))
    ap.add_argument("--max-chars", type=int, default=max(SIZES), help="largest turn to time (a quick run: 4000)")
    args = ap.parse_args(argv)
    rows, worst = [], (0.0, "")
    skipped: set[str] = set()
    for name, pattern in tqdm(PATTERNS.items(), desc="parsing bench", unit="pattern"):
        for size in [s for s in SIZES if s <= args.max_chars]:
            text = turn(pattern, size)
            new = min(timed_ms(parse_action, text) for _ in range(3))
            old = None if name in skipped else timed_ms(baseline_parse, text)
            if old is not None and old > BUDGET_S * 1e3:
                skipped.add(name)
            rows.append({"pattern": name, "chars": len(text), "linear_ms": new, "lazy_regex_ms": old})
            worst = max(worst, (new, f"{name}, {len(text):,} chars"))
    lines = ["| pattern | chars | linear parser (ms) | lazy regexes (ms) |", "|---|---|---|---|"]
    for r in rows:
        old = "skipped (> 5 s at a smaller size)" if r["lazy_regex_ms"] is None else f"{r['lazy_regex_ms']:.1f}"
        lines.append(f"| {r['pattern']} | {r['chars']:,} | {r['linear_ms']:.2f} | {old} |")
    table = "\n".join(lines)
    print("\n" + table + f"\n\nworst case for the linear parser: {worst[0]:.1f} ms ({worst[1]})")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows, "worst_ms": worst[0], "worst_case": worst[1], "table": table,
                                     "versions": versions()}, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
