"""Confined workers (merriwig.confine): how fast one starts and ends, and what an idle one costs.

``confine.worker_spawn``: spawn a fully confined worker from the zygote (fork, every layer applied
and verified, the verdict read by the trio client), let its entry return at once, and see it
reaped; against ``python -c pass`` run as a host subprocess (what a worker would cost without a
zygote). Best mean over alternating rounds, so both see the same load. Target <= 0.25x.

``confine.worker_memory_kib``: the unique memory (USS: Private_Clean + Private_Dirty from
/proc/PID/smaps_rollup) of a confined worker idle on its channel, against the USS of an idle
``python -c`` interpreter started from scratch. Target <= 4096 KiB. The zygote preloads what a
user program may import (euralios.std, proto, vfs.protocol/server and the stdlib modules programs
use), as the kernel's will; not trio, which no user program imports (it would add 10 MiB to the
zygote and a millisecond to every fork: the worker side of the channel should not need it).

Run: ``.venv/bin/python -m bench.bench_confine`` (needs user namespaces, Landlock and seccomp).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.common import record
from merriwig.confine.mechanism import Limits

ROOT = Path(__file__).resolve().parent.parent
PRELOAD = ["euralios.std", "proto", "vfs.protocol", "vfs.server", "json", "re", "random", "struct", "hashlib",
           "shlex", "ipaddress", "bench.bench_confine"]
LIMITS = Limits(memory_bytes=64 << 20)
ROUNDS = 7
SPAWNS = 30
BASELINE_RUNS = 5
IDLE = "import sys; sys.stdin.read()"


def exit_now(channel: socket.socket) -> None:
    """Worker entry: nothing to do."""


def idle(channel: socket.socket) -> None:
    """Worker entry: wait on the channel until the kernel closes it."""
    channel.recv(1)


def uss_kib(pid: int) -> int:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        fields[name.rstrip(":")] = int(value)
    return fields["Private_Clean"] + fields["Private_Dirty"] + fields.get("Private_Hugetlb", 0)


def python_c_pass() -> float:
    t0 = time.perf_counter()
    for _ in range(BASELINE_RUNS):
        subprocess.run([sys.executable, "-c", "pass"], cwd=ROOT, check=True)
    return (time.perf_counter() - t0) / BASELINE_RUNS


def idle_interpreter_uss() -> int:
    with subprocess.Popen([sys.executable, "-c", IDLE], stdin=subprocess.PIPE) as proc:
        time.sleep(0.5)
        kib = uss_kib(proc.pid)
        assert proc.stdin is not None
        proc.stdin.close()
    return kib


async def main() -> int:
    # imported here, not at the top: the zygote imports this module for its entries (exit_now,
    # idle) and must not pay for the kernel side's trio
    import trio

    from merriwig.confine.client import open_zygote

    async with open_zygote(preload=PRELOAD, import_path=[str(ROOT), *sys.path]) as zygote:
        if not zygote.probe.ok:
            print(zygote.probe.line())
            return 1

        async def spawns() -> float:
            t0 = time.perf_counter()
            for _ in range(SPAWNS):
                worker = await zygote.spawn("bench.bench_confine:exit_now", LIMITS)
                await worker.wait()
                worker.channel.close()
            return (time.perf_counter() - t0) / SPAWNS

        await spawns()  # warm: the zygote's first fork pays for its own page-table copy-on-write
        best_spawn = best_base = float("inf")
        for _ in range(ROUNDS):
            best_base = min(best_base, python_c_pass())
            best_spawn = min(best_spawn, await spawns())
        ratio = best_spawn / best_base
        record("confine.worker_spawn", best_spawn * 1e3, "ms", "python_c_pass", best_base * 1e3, ratio,
               target="<= 0.25x", met=ratio <= 0.25)

        workers = [await zygote.spawn("bench.bench_confine:idle", LIMITS) for _ in range(3)]
        await trio.sleep(0.5)
        worker_kib = min(uss_kib(w.pid) for w in workers)
        for w in workers:
            await w.aclose()
    base_kib = idle_interpreter_uss()
    record("confine.worker_memory_kib", worker_kib, "KiB", "python_c_idle_uss", base_kib, worker_kib / base_kib,
           target="<= 4096 KiB", met=worker_kib <= 4096)
    return 0


if __name__ == "__main__":
    import trio

    raise SystemExit(trio.run(main))
