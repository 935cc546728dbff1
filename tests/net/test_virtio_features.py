"""The virtio-net card with one feature withdrawn (``--nic virtio-net-pci,PROP=off``) still
carries TCP byte for byte, both ways, through the root-free user router.

Each withdrawn feature changes what the driver and the card must do (virtio 1.2 §5.1.6): without
GUEST_TSO4 the card must not pass on the router's large segments (they are cut to frames);
without MRG_RXBUF the driver must post receive buffers that hold a whole 64 KiB segment; without
EVENT_IDX both sides fall back to the ring flags. A mistake in any of these loses every large
frame, retransmissions too, so a transfer hangs: each test moves 1 MiB each way under a
deadline and compares the bytes. The same over a tap to Linux's TCP (root only), the path
where both hangs were first seen.
"""

from __future__ import annotations

import random
import socket

import pytest
import trio

from euralios.boot import boot
from euralios.pytest_plugin import Netns, netns_unavailable
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


async def host_peer_on(listener: trio.socket.SocketType, seen: dict[str, bytes]) -> None:
    """Take SIZE bytes from the guest, then send it DOWN."""
    conn, _ = await listener.accept()
    with conn:
        seen["host"] = await recv_exactly(conn, SIZE)
        view = memoryview(DOWN)
        while view:
            view = view[await conn.send(view):]


async def guest_transfer(proc, host: str, port: int, seen: dict[str, bytes]) -> int:  # type: ignore[no-untyped-def]
    """Send UP to host:port and read SIZE bytes back."""
    stream = await proc.connect(host, port)
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


@pytest.mark.parametrize("prop", WITHOUT)
async def test_one_mib_each_way_byte_exact_with_a_feature_withdrawn(prop: str) -> None:
    port = free_port()
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", port))
    listener.listen()
    seen: dict[str, bytes] = {}

    nic = make_backend("user")
    try:
        async with boot(nic=nic, card=f"virtio-net-pci,{prop}=off") as system, trio.open_nursery() as nursery:
            nursery.start_soon(host_peer_on, listener, seen)
            system.start_network()
            await system.wait_for_output(r"\[tcp\] DHCP: 10\.0\.2\.15/24", 20)
            with trio.fail_after(90):
                status = await system.run(lambda proc: guest_transfer(proc, "10.0.2.2", port, seen))
            assert status == 0, system.output()
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


@pytest.mark.skipif(netns_unavailable() is not None, reason=f"tap tests: {netns_unavailable()}")
@pytest.mark.parametrize("prop", ("guest_tso4", "mrg_rxbuf"))
async def test_one_mib_each_way_over_a_tap_with_a_feature_withdrawn(prop: str) -> None:
    """Linux's TCP behind the tap sends 64 KiB GRO/TSO frames to a card that said it cannot take
    them whole (guest_tso4=off) or has no buffer that holds one (mrg_rxbuf=off)."""
    seen: dict[str, bytes] = {}
    with Netns() as ns:
        lsock = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind(("10.0.2.2", 5001))
        lsock.listen()
        lsock.setblocking(False)
        listener = trio.socket.from_stdlib_socket(lsock)
        async with boot(nic=ns.backend(), card=f"virtio-net-pci,{prop}=off") as system:
            system.start_network(["--static", "10.0.2.15/24,gw=10.0.2.2"])
            await system.wait_for_output(r"\[tcp\] static", 15)
            system.nursery.start_soon(host_peer_on, listener, seen)
            with trio.fail_after(90):
                status = await system.run(lambda proc: guest_transfer(proc, "10.0.2.2", 5001, seen))
            assert status == 0, system.output()
            counters = system.machine.nic.stats()  # type: ignore[union-attr]
    assert seen["host"] == UP
    assert seen["guest"] == DOWN
    assert counters["rx_offload_refused"] == 0 and counters["needs_reset"] == 0
