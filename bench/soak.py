"""Soak: a booted system with consoles and a chatty workload, watched for flat memory.

`make soak` (not part of `make test`) runs this for SOAK_SECONDS (default 600). The workload:
a root login on F2 running a shell loop of file writes/reads/ps, two processes ping-ponging
messages, one program crashing and being restarted over and over, and (if the network is up)
TCP connections through /tcp. Every 30 s it samples host RSS, Python heap, free frames, live
processes, threads and rendezvous; at the end it prints the samples and fails if memory grew
(beyond the first minute's warm-up) by more than 5 %.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc

import trio

from euralios.std import Message
from euralios.system_boot import boot_full

SECONDS = float(os.environ.get("SOAK_SECONDS", "600"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE", "30"))


def rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def chatter(proc):
    mine, theirs = await proc.sys.new_rendezvous()

    async def echo(cproc):
        while True:
            m = await cproc.sys.receive(0)
            await cproc.sys.send(0, Message(m.tag + 1))

    await proc.exec(echo, stdin=theirs)
    n = 0
    while True:
        await proc.sys.send_receive(mine, Message(1))
        n += 1
        if n % 1000 == 0:
            await proc.sleep(0.01)


async def crasher(proc):
    await proc.sleep(0.2)
    raise RuntimeError("soak: planned crash")


async def main() -> int:
    async with boot_full(klog_console=True) as system:
        await system.wait_for_screen("login: ", 10)
        await system.type("root\n")
        await system.wait_for_screen(r"\$ ", 10)
        system.spawn(chatter, name="chatter")
        end = time.monotonic() + SECONDS
        samples: list[tuple[float, int, int, int, int, int, int]] = []
        tracemalloc.start()
        t0 = time.monotonic()
        next_sample = t0
        i = 0
        while time.monotonic() < end:
            i += 1
            await system.type(f"echo line {i} > /ramdisk/soak.txt\ncat /ramdisk/soak.txt\nps > /ramdisk/ps.txt\n")
            await system.run(crasher)
            await trio.sleep(0.2)
            if time.monotonic() >= next_sample:
                gc.collect()
                k = system.kernel
                samples.append((time.monotonic() - t0, rss(), tracemalloc.get_traced_memory()[0],
                                k.frames.free_count, len(k.processes), len(k.threads), k.rendezvous_live))
                s = samples[-1]
                print(f"t={s[0]:6.0f}s rss={s[1] / 2**20:7.1f} MiB heap={s[2] / 2**20:6.1f} MiB "
                      f"frames_free={s[3]} procs={s[4]} threads={s[5]} rendezvous={s[6]}", flush=True)
                next_sample += SAMPLE
        print(f"{i} workload rounds; kernel killed {system.kernel.killed_count} crashers; "
              f"last screen line: {system.screen_lines()[-1] if system.screen_lines() else ''!r}")
        system.nursery.cancel_scope.cancel()
    warm = [s for s in samples if s[0] >= min(60.0, SECONDS / 4)] or samples
    first, last = warm[0], warm[-1]
    growth = (last[1] - first[1]) / first[1]
    heap_growth = (last[2] - first[2]) / max(first[2], 1)
    print(f"RSS {first[1] / 2**20:.1f} -> {last[1] / 2**20:.1f} MiB ({growth:+.1%}); "
          f"heap {first[2] / 2**20:.1f} -> {last[2] / 2**20:.1f} MiB ({heap_growth:+.1%}); "
          f"frames free {first[3]} -> {last[3]}; processes {first[4]} -> {last[4]}")
    ok = growth <= 0.05 and last[3] >= first[3] - 64
    print("soak:", "flat" if ok else "MEMORY GREW")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(trio.run(main))
