"""Run every benchmark module in bench/ (files named bench_*.py), each in its own process, then
print the table of results (name, value, unit, baseline, ratio, target, met?) from
bench/results.json. The file is started afresh so it holds this run's figures only."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.common import RESULTS


def table(records: list[dict]) -> str:
    rows = [("benchmark", "value", "unit", "baseline", "ratio", "target", "met?")]
    for r in records:
        met = "" if r.get("met") is None else ("yes" if r["met"] else "NO")
        rows.append((r["name"], f"{r['value']:.4g}", r["unit"], f"{r['baseline']} = {r['baseline_value']:.4g}",
                     f"{r['ratio']:.4g}", r.get("target", ""), met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main() -> int:
    here = Path(__file__).parent
    RESULTS.write_text("[]\n")
    failed = []
    t0 = time.perf_counter()
    for path in sorted(here.glob("bench_*.py")):
        print(f"== {path.stem}", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"bench.{path.stem}"], cwd=here.parent)
        if rc != 0:
            failed.append(path.stem)
    records = json.loads(RESULTS.read_text())
    print()
    print(table(records))
    print(f"\n{len(records)} results in {time.perf_counter() - t0:.0f} s; written to {RESULTS}")
    if failed:
        print(f"benchmarks that failed to run: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
