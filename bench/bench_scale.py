"""Scale: 1000 processes passing a token around a ring of rendezvous, with memory and CPU figures.

Each process receives on its stdin and sends to the next one's; the token goes round the ring
several times. Reported: messages per second vs the same ring built from 1000 trio tasks and
zero-buffer memory channels (same-run baseline), plus host memory per process and emulated frames.
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import trio

from bench.common import record
from euralios.boot import boot
from euralios.std import Message

N = 1000
LAPS = 5


async def trio_ring() -> float:
    chans = [trio.open_memory_channel(0) for _ in range(N)]
    done = trio.Event()

    async def node(i: int) -> None:
        recv = chans[i][1]
        send = chans[(i + 1) % N][0]
        while True:
            v = await recv.receive()
            if v >= N * LAPS:
                done.set()
                return
            await send.send(v + 1)

    async with trio.open_nursery() as nursery:
        for i in range(N):
            nursery.start_soon(node, i)
        t0 = time.perf_counter()
        await chans[0][0].send(0)
        await done.wait()
        dt = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    return dt


async def euralios_ring() -> tuple[float, float, float]:
    result: list[float] = []

    async def node(proc):
        nxt = (await proc.sys.receive(0)).d2.number  # the handle to the next node
        while True:
            v = (await proc.sys.receive(0)).tag
            if v >= N * LAPS:
                result.append(time.perf_counter())
                return 0
            await proc.sys.send(nxt, Message(v + 1))

    async def main(proc):
        from euralios.std import Handle

        ends = [await proc.sys.new_rendezvous() for _ in range(N)]
        for i in range(N):
            await proc.exec(node, stdin=ends[i][1])
        for i in range(N):
            nxt = await proc.sys.copy_rendezvous(ends[(i + 1) % N][0])
            await proc.sys.send(ends[i][0], Message(6, Handle(nxt)))
        result.append(time.perf_counter())
        await proc.sys.send(ends[0][0], Message(0))
        while len(result) < 2:
            await proc.sleep(0.01)
        return 0

    async with boot(watchdog=0) as system:
        gc.collect()
        tracemalloc.start()
        m0 = tracemalloc.get_traced_memory()[0]
        f0 = system.kernel.frames.used_count
        p = system.spawn(main)
        while len(system.kernel.processes) < N:
            await trio.sleep(0.05)
        await trio.sleep(0.2)
        per_mem = (tracemalloc.get_traced_memory()[0] - m0) / N
        per_frames = (system.kernel.frames.used_count - f0) / N
        tracemalloc.stop()
        await p.ended.wait()
        system.nursery.cancel_scope.cancel()
    return result[1] - result[0], per_mem, per_frames


async def main() -> None:
    base = await trio_ring()
    ours, per_mem, per_frames = await euralios_ring()
    msgs = N * LAPS
    record("scale.ring_1000_processes", msgs / ours, "msgs/s", "trio_ring_1000_tasks", msgs / base, base / ours, "")
    print(f"  {N} processes in the ring: {per_mem / 1024:.1f} KiB of Python objects and "
          f"{per_frames:.1f} frames ({per_frames * 4:.0f} KiB emulated RAM) each")


if __name__ == "__main__":
    trio.run(main)
