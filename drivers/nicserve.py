"""What both network card drivers (drivers/rtl8139.py, drivers/virtio_net.py) do the same way
when serving /dev/nic: the pool of server threads, the checked chunk of a request, the
single frame of a plain WRITE and the answers to the requests that are not about frames.

Several server threads receive on handle 0, so a client blocked in READ(1) never holds up
another client's WRITE: a server about to block makes sure another one is free first (up to
MAX_SERVERS, after which a blocking READ on an empty FIFO answers EMPTY rather than risk leaving
nobody to serve writes). A blocked reader sleeps on the driver's ``readers`` Wakeup; the
interrupt thread wakes one per queued frame.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from euralios.std import Chunk, Memory, Message, SyscallError, abi, discard
from euralios.std.protocols.nic import BLOCKING, FEATURES, GET_FEATURES, GET_MAC_ADDRESS, MAC_ADDRESS

MAX_SERVERS = 8


async def wait_frames(nic: Any, blocking: bool, server: Callable[[Any], Awaitable[None]]) -> bool:
    """Until ``nic.frames`` has a frame (True), or at once False when not blocking (or when
    blocking would leave no server thread free for writes). ``nic`` has frames, idle, servers,
    readers and proc, and may have ``before_wait``: awaited whenever no frame is queued, before
    answering that or sleeping, so that frames left in a ring are seen and a frame will wake a
    sleeper (the virtio driver turns its receive interrupts back on there; True: it queued
    some); ``server`` is the driver's serving loop, for a new thread."""
    before_wait = getattr(nic, "before_wait", None)
    while not nic.frames:
        if before_wait is not None and await before_wait():
            continue  # it found frames
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


async def answer_other(nic: Any, msg: Message, *, mac: bytes, features: int,
                       read: Callable[[Any, bool], Awaitable[Message]],
                       query: Callable[[Any], Awaitable[Message]]) -> Message:
    """Every request but the frame batches and WRITE, as both drivers answer it: READ (one
    frame, through the driver's ``read``), the MAC address, the features (0: plain batches
    only), QUERY (the driver's ``query``), CLOSE; anything else is unknown (a chunk it brought
    is freed)."""
    if msg.is_long:
        await discard(nic.sys, msg)
        return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
    tag = msg.tag
    if tag == abi.READ:
        return await read(nic, msg.d2 == BLOCKING)
    if tag == GET_MAC_ADDRESS:
        return Message(MAC_ADDRESS, int.from_bytes(mac, "little"), 0)
    if tag == GET_FEATURES:
        return Message(FEATURES, features, 0)
    if tag == abi.QUERY:
        return await query(nic)
    if tag == abi.CLOSE_TAG:
        # A client closing politely: nothing to end. Answered OK when it waits (unanswered,
        # it would wait for ever and our next receive would fail with RECV_BLOCKING).
        return Message(abi.OK, 0, 0)
    return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
