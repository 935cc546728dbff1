"""The virtio-net card with one feature withdrawn (``--nic virtio-net-pci,PROP=off``) still
carries TCP byte for byte, both ways, through the root-free user router.

Each withdrawn feature changes what the driver and the card must do (virtio 1.2 §5.1.6): without
GUEST_TSO4 the card must not pass on the router's large segments (they are cut to frames);
without MRG_RXBUF the driver must post receive buffers that hold a whole 64 KiB segment; without
EVENT_IDX both sides fall back to the ring flags. A mistake in any of these loses every large
frame, retransmissions too, so a transfer hangs: each test moves 1 MiB each way under a
deadline and compares the bytes.
"""

from __future__ import annotations

import random
import socket

import pytest
import trio

from euralios.boot import boot
from machine.netdev import make_backend

WITHOUT = ("csum", "host_tso4", "guest_tso4", "mrg_rxbuf", "event_idx")
SIZE = 1 << 20
UP = random.Random(16).randbytes(SIZE)
DOWN = random.Random(61).randbytes(SIZE)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def recv_exactly(conn: trio.socket.SocketType, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        part = await conn.recv(min(1 << 16, n - got))
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


@pytest.mark.parametrize("prop", WITHOUT)
async def test_one_mib_each_way_byte_exact_with_a_feature_withdrawn(prop: str) -> None:
    port = free_port()
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", port))
    listener.listen()
    seen: dict[str, bytes] = {}

    async def host_peer() -> None:
        conn, _ = await listener.accept()
        with conn:
            seen["host"] = await recv_exactly(conn, SIZE)
            view = memoryview(DOWN)
            while view:
                view = view[await conn.send(view):]

    async def guest(proc):  # type: ignore[no-untyped-def]
        stream = await proc.connect("10.0.2.2", port)
        await stream.write_all(UP)
        parts, got = [], 0
        while got < SIZE:
            part = await stream.read(1 << 16)
            if not part:
                break
            parts.append(part)
            got += len(part)
        seen["guest"] = b"".join(parts)
        await stream.close()
        return 0

    nic = make_backend("user")
    try:
        async with boot(nic=nic, card=f"virtio-net-pci,{prop}=off") as system, trio.open_nursery() as nursery:
            nursery.start_soon(host_peer)
            system.start_network()
            await system.wait_for_output(r"\[tcp\] DHCP: 10\.0\.2\.15/24", 20)
            with trio.fail_after(90):
                assert await system.run(guest) == 0, system.output()
            counters = system.machine.nic.stats()  # type: ignore[union-attr]
            negotiated = system.machine.nic.negotiated()  # type: ignore[union-attr]
            nursery.cancel_scope.cancel()
    finally:
        nic.close()
        listener.close()
    assert seen["host"] == UP
    assert seen["guest"] == DOWN
    assert prop.upper() not in negotiated
    assert counters["rx_offload_refused"] == 0 and counters["tx_offload_refused"] == 0
    assert counters["needs_reset"] == 0
