"""Shared helpers for benchmarks: timing loops and the results file.

Every benchmark measures its subject *and* a baseline in the same run and reports the ratio,
so figures stay comparable across machines (absolute timings on a shared 2-core box are noise).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(os.environ.get("EURALIOS_BENCH_RESULTS", Path(__file__).with_name("results.json")))


def best_rate(fn: Callable[[int], None], n: int, repeats: int = 5) -> float:
    """Operations per second of ``fn(n)`` (which performs n operations), best of ``repeats``.

    The best run is the least disturbed by other load; that is the figure we compare."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        best = min(best, dt)
    return n / best


def record(
    name: str,
    value: float,
    unit: str,
    baseline: str,
    baseline_value: float,
    ratio: float,
    target: str = "",
    met: bool | None = None,
) -> dict:
    """Print one result line and merge it (by name) into bench/results.json."""
    rec = {
        "name": name,
        "value": float(f"{value:.6g}"),
        "unit": unit,
        "baseline": baseline,
        "baseline_value": float(f"{baseline_value:.6g}"),
        "ratio": float(f"{ratio:.4g}"),
        "target": target,
        "met": met,
    }
    try:
        data = json.loads(RESULTS.read_text())
        if not isinstance(data, list):
            data = []
    except (OSError, ValueError):
        data = []
    data = [r for r in data if r.get("name") != name] + [rec]
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")
    flag = "" if met is None else ("  met" if met else "  NOT MET")
    print(
        f"{name:40s} {value:14.6g} {unit:10s} baseline {baseline}={baseline_value:.6g} "
        f"ratio {ratio:.4g} {target}{flag}"
    )
    return rec
