"""How fast hostile compose files are refused: prints seconds and peak memory per case.

Run: .venv/bin/python tests/perf/bench_compose_hostile.py
"""

import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from apps.compose import ComposeError  # noqa: E402
from apps.compose.loader import load_compose  # noqa: E402


def billion_laughs(levels: int = 10, width: int = 10) -> str:
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * width)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


CASES = {
    "billion laughs (10^10 nodes)": billion_laughs(),
    "flow nesting 10,000 deep": "[" * 10000 + "]" * 10000,
    "mapping nesting at the size limit": "{a: " * 60000,
    "file over the size limit": "a: " + "x" * (256 * 1024),
}


def measure(text: str) -> tuple[float, int, str]:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        load_compose(text, {})
        outcome = "accepted"
    except ComposeError as exc:
        outcome = str(exc).splitlines()[0][:60]
    elapsed = time.perf_counter() - started
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak, outcome


def main() -> None:
    for name, text in CASES.items():
        best = min(measure(text)[0] for _ in range(3))
        _elapsed, peak, outcome = measure(text)
        print(f"{name:40s} {best * 1000:8.1f} ms  peak {peak / 1024:8.0f} KiB  {outcome}")


if __name__ == "__main__":
    main()
