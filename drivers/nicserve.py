"""What both network card drivers (drivers/rtl8139.py, drivers/virtio_net.py) do the same way
when serving /dev/nic: the pool of server threads, the checked chunk of a request and the
single frame of a plain WRITE.

Several server threads receive on handle 0, so a client blocked in READ(1) never holds up
another client's WRITE: a server about to block makes sure another one is free first (up to
MAX_SERVERS, after which a blocking READ on an empty FIFO answers EMPTY rather than risk leaving
nobody to serve writes). A blocked reader sleeps on the driver's ``readers`` Wakeup; the
interrupt thread wakes one per queued frame.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from euralios.std import Chunk, Memory, Message, SyscallError, discard

MAX_SERVERS = 8


async def wait_frames(nic: Any, blocking: bool, server: Callable[[Any], Awaitable[None]]) -> bool:
    """Until ``nic.frames`` has a frame (True), or at once False when not blocking (or when
    blocking would leave no server thread free for writes). ``nic`` has frames, idle, servers,
    readers and proc; ``server`` is the driver's serving loop, for a new thread."""
    while not nic.frames:
        if not blocking:
            return False
        if nic.idle == 0:
            if nic.servers >= MAX_SERVERS:
                return False  # never leave nobody to serve writes
            nic.servers += 1
            nic.idle += 1
            await nic.proc.spawn_thread(server, nic)
            continue  # a frame may have come while we waited for the thread: look again
        await nic.readers.sleep()
    return True


async def received(sys: Any, mem: Memory) -> Chunk | None:
    """The chunk a request brought, sized by the kernel (None when it is not a chunk we hold):
    a length the client claims is checked against it, never trusted."""
    try:
        return await Chunk.received(sys, mem)
    except SyscallError:
        return None


async def single_frame(sys: Any, msg: Message, limit: int) -> bytes:
    """The frame a plain WRITE(n, chunk) carries, its chunk freed; b"" when the request is bad
    (no chunk, n of 0 or past ``limit`` or past the chunk: never read past a chunk, a fault)."""
    n, mem = msg.d2, msg.d3
    data = b""
    if isinstance(mem, Memory) and isinstance(n, int):
        chunk = await received(sys, mem)
        if chunk is not None and 0 < n <= min(limit, chunk.size):
            data = chunk.read(0, n)
    await discard(sys, msg)
    return data
