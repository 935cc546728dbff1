"""Boot to the login prompt, headless, vs the interpreter's own start-up in the same run.

Target (issue 8): at most 0.5 s beyond `python -c pass`. Both are whole processes started the
same way, best of several runs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.common import record

ROOT = Path(__file__).resolve().parent.parent


def best_wall(cmd: list[str], runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, timeout=60)
        dt = time.perf_counter() - t0
        if r.returncode != 0:
            raise SystemExit(f"{cmd} failed: {r.stderr.decode()[-500:]}")
        best = min(best, dt)
    return best


def main() -> None:
    base = best_wall([sys.executable, "-c", "pass"])
    boot = best_wall([sys.executable, "-m", "euralios.cli", "--headless", "--net", "none", "--expect", "login: ",
                      "--timeout", "20"])
    extra = boot - base
    record("boot.headless_to_login", boot, "s", "python_c_pass", base, boot / base,
           "<= 0.5 s beyond interpreter start", extra <= 0.5)
    print(f"  boot costs {extra:.3f} s beyond the interpreter's own start-up")


if __name__ == "__main__":
    main()
