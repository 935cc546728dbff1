"""Kernel benchmarks: IPC round trip, chunk move, exec+exit, memory per idle process.

Each figure is measured next to a baseline in the same run:
* send_receive round trip between two processes vs trio's zero-buffer memory channel ping-pong
  (the same two-task switch, with none of the kernel's work);
* moving a 4 KiB chunk between address spaces vs copying 4 KiB of bytes;
* exec+exit of a trivial program vs spawning and finishing a trio task;
* host memory per idle process (tracemalloc) vs the 50 KiB target.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc

import trio

from bench.common import record
from euralios.boot import boot
from euralios.std import Message
from machine.memory import PhysicalMemory
from machine.mmu import MMU
from merriwig.memory.frames import FrameAllocator
from merriwig.memory.space import AddressSpace, MemoryContext

N_IPC = 20_000


async def trio_pingpong(n: int) -> float:
    s1, r1 = trio.open_memory_channel(0)
    s2, r2 = trio.open_memory_channel(0)

    async def server() -> None:
        for _ in range(n):
            v = await r1.receive()
            await s2.send(v + 1)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server)
        v = 0
        for _ in range(n):
            await s1.send(v)
            v = await r2.receive()
    return time.perf_counter() - t0


async def euralios_pingpong(n: int) -> float:
    result: list[float] = []

    async def server(proc):
        while True:
            msg = await proc.sys.receive(0)
            await proc.sys.send(0, Message(msg.tag, msg.d2 + 1))
            if msg.tag == 0:
                return 0

    async def client(proc):
        mine, theirs = await proc.sys.new_rendezvous()
        child = await proc.exec(server, stdin=theirs)
        sr = proc.sys.send_receive
        msg = Message(1, 0)
        await sr(mine, msg)
        t0 = time.perf_counter()
        for _ in range(n):
            await sr(mine, msg)
        result.append(time.perf_counter() - t0)
        await sr(mine, Message(0, 0))
        await child.wait()
        return 0

    async with boot(watchdog=0) as system:
        await system.run(client)
    return result[0]


async def exec_exit(n: int) -> float:
    result: list[float] = []

    async def trivial(proc):
        return 0

    async def main(proc):
        t0 = time.perf_counter()
        for _ in range(n):
            await (await proc.exec(trivial)).wait()
        result.append(time.perf_counter() - t0)
        return 0

    async with boot(watchdog=0) as system:
        await system.run(main)
    return result[0]


async def trio_spawn(n: int) -> float:
    async def nothing() -> None:
        pass

    t0 = time.perf_counter()
    for _ in range(n):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(nothing)
    return time.perf_counter() - t0


async def idle_process_memory(count: int) -> float:
    async def idle(proc):
        await proc.sys.receive(0)  # parks forever (until the benchmark ends)
        return 0

    async with boot(watchdog=0) as system:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        rss0 = _rss()
        procs = [system.spawn(idle, name="idle") for _ in range(count)]
        await trio.sleep(0.2)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        rss1 = _rss()
        tracemalloc.stop()
        frames = sum(p.space.frames_owned for p in procs)
        per_python = (after - before) / count
        per_frames = frames * 4096 / count
        print(f"  {count} idle processes: python objects {per_python / 1024:.1f} KiB each, "
              f"emulated RAM {per_frames / 1024:.1f} KiB each, host RSS growth {(rss1 - rss0) / count / 1024:.1f} KiB each")
        system.nursery.cancel_scope.cancel()
        return per_python + per_frames


def _rss() -> int:
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def chunk_move_vs_copy() -> None:
    mem = PhysicalMemory(64 << 20)
    frames = FrameAllocator(1 << 20, (mem.size - (1 << 20)) // 4096)
    info = frames.allocate()
    ctx = MemoryContext(mem, MMU(mem), frames, info)
    a, b = AddressSpace(ctx), AddressSpace(ctx)
    v, _ = a.malloc(1)
    a.write(v, b"x" * 4096)
    n = 20_000
    t0 = time.perf_counter()
    for _ in range(n // 2):
        v = b.attach(a.detach(v))
        v = a.attach(b.detach(v))
    move = (time.perf_counter() - t0) / n
    src = bytearray(4096)
    t0 = time.perf_counter()
    for _ in range(n):
        bytes(src)
    copy = (time.perf_counter() - t0) / n
    record("kernel.chunk_move_4k", move * 1e6, "us", "bytes_copy_4k", copy * 1e6, move / copy)
    # A move costs the same whatever the size; a copy grows with it.
    big, _ = a.malloc(256)
    a.write(big, b"y" * (1 << 20))
    n = 2000
    t0 = time.perf_counter()
    for _ in range(n // 2):
        big = b.attach(a.detach(big))
        big = a.attach(b.detach(big))
    move = (time.perf_counter() - t0) / n
    src = bytearray(1 << 20)
    t0 = time.perf_counter()
    for _ in range(n):
        bytes(src)
    copy = (time.perf_counter() - t0) / n
    record("kernel.chunk_move_1m", move * 1e6, "us", "bytes_copy_1m", copy * 1e6, move / copy)


async def main() -> None:
    chunk_move_vs_copy()
    base = min([await trio_pingpong(N_IPC) for _ in range(3)])
    ours = min([await euralios_pingpong(N_IPC) for _ in range(3)])
    ratio = ours / base
    record("ipc.send_receive_roundtrip", ours / N_IPC * 1e6, "us", "trio_channel_pingpong",
           base / N_IPC * 1e6, ratio, "<= 2.0x (issue 3), <= 1.5x (issue 8)", ratio <= 2.0)
    n = 2000
    t_exec = min([await exec_exit(n) for _ in range(2)])
    t_trio = min([await trio_spawn(n) for _ in range(2)])
    ratio = t_exec / t_trio
    record("kernel.exec_exit", n / t_exec, "ops/s", "trio_task_spawn_exit", n / t_trio, ratio, "<= 20x", ratio <= 20)
    per = await idle_process_memory(1000)
    record("kernel.idle_process_memory", per / 1024, "KiB", "target_50KiB", 50.0, per / 1024 / 50,
           "<= 50 KiB", per <= 50 * 1024)


if __name__ == "__main__":
    trio.run(main)
