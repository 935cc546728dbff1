"""Soak: a booted system with consoles and a chatty workload, watched for flat memory.

`make soak` (not part of `make test`) runs this for SOAK_SECONDS (default 600). The workload:
a root login on F2 running a shell loop of file writes/reads/ps, two processes ping-ponging
messages, one program crashing and being restarted over and over, and a program opening TCP
connections through /tcp -- over the default root-free network (`--net user`, DHCP from its
router) -- to an echo server on the host, 16 KiB each way per connection. Every 30 s it samples host RSS, Python heap, free frames, live
processes, threads and rendezvous; at the end it prints the samples and fails if memory grew
(beyond the first 90 s of warm-up) by more than 5 %, or if no TCP connection got through.
"""

from __future__ import annotations

import gc
import os
import sys
import time
import tracemalloc

import trio

from euralios.std import Message, SyscallError
from euralios.system_boot import boot_full
from machine.board import Machine
from machine.netdev import make_backend

ECHO_BYTES = 16384
net_rounds = [0]
net_errors: list[str] = []

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


async def echo_handler(stream: trio.SocketStream) -> None:
    """The host side: echo everything back until the guest closes."""
    try:
        async for data in stream:
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


def networker(port: int):
    async def main(proc) -> int:
        """The guest side: connect to the host (10.0.2.2, as in QEMU), 16 KiB there and back,
        close; again and again."""
        block = bytes(range(256)) * (ECHO_BYTES // 256)
        while True:
            try:
                conn = await proc.connect("10.0.2.2", port)
            except SyscallError as e:  # DHCP not done yet, or a transient error: try again
                net_errors.append(str(e))
                await proc.sleep(0.5)
                continue
            await conn.write_all(block)
            got = await conn.read_exactly(len(block))
            await conn.close()
            if got != block:
                raise RuntimeError("soak: echo came back different")
            net_rounds[0] += 1
            await proc.sleep(0.05)

    return main


async def crasher(proc):
    await proc.sleep(0.2)
    raise RuntimeError("soak: planned crash")


async def main() -> int:
    backend = make_backend("user")
    try:
        async with trio.open_nursery() as host:
            listeners = await host.start(trio.serve_tcp, echo_handler, 0)
            port = listeners[0].socket.getsockname()[1]
            status = await soak(backend, port)
            host.cancel_scope.cancel()
    finally:
        backend.close()
    return status


async def soak(backend, port: int) -> int:
    async with boot_full(klog_console=True, machine=Machine("64M", nic=backend)) as system:
        await system.wait_for_screen("login: ", 10)
        await system.type("root\n")
        await system.wait_for_screen(r"# ", 10)
        system.spawn(chatter, name="chatter")
        system.spawn(networker(port), name="networker")
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
        print(f"{net_rounds[0]} TCP echo connections ({ECHO_BYTES} bytes each way) through /tcp; "
              f"{len(net_errors)} connect retries" + (f" (last: {net_errors[-1]})" if net_errors else ""))
        print(f"{i} workload rounds; kernel killed {system.kernel.killed_count} crashers; "
              f"last screen line: {system.screen_lines()[-1] if system.screen_lines() else ''!r}")
        system.nursery.cancel_scope.cancel()
    # Warm-up: connections closed by the guest stay in TIME-WAIT for 2*MSL (60 s), so the stack's
    # connection table fills for the first minute and then holds steady; judge after that.
    warm = [s for s in samples if s[0] >= min(90.0, SECONDS / 4)] or samples
    first, last = warm[0], warm[-1]
    growth = (last[1] - first[1]) / first[1]
    heap_growth = (last[2] - first[2]) / max(first[2], 1)
    print(f"RSS {first[1] / 2**20:.1f} -> {last[1] / 2**20:.1f} MiB ({growth:+.1%}); "
          f"heap {first[2] / 2**20:.1f} -> {last[2] / 2**20:.1f} MiB ({heap_growth:+.1%}); "
          f"frames free {first[3]} -> {last[3]}; processes {first[4]} -> {last[4]}")
    ok = growth <= 0.05 and last[3] >= first[3] - 64 and net_rounds[0] > 0
    print("soak:", "flat" if ok else "MEMORY GREW")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(trio.run(main))
