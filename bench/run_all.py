"""Run every benchmark module in bench/ (files named bench_*.py), each in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).parent
    failed = 0
    for path in sorted(here.glob("bench_*.py")):
        print(f"== {path.stem}", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"bench.{path.stem}"], cwd=here.parent)
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
