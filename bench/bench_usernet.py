"""Guest->host TCP throughput through the ``user`` router, against plain host loopback TCP.

``usernet.tcp_upload_mb_per_s``: a guest-side TCP engine (proto/tcp, in this process, as the
guest's stack would run it) connects to 10.0.2.2:PORT through :class:`UserBackend`, which
terminates the connection with its own engine and pipes the bytes to a trio socket on the host's
127.0.0.1:PORT, where a sink counts them. Every frame is encoded, decoded and handled by both
engines, so this is the cost of the whole emulated path short of the NIC model. The baseline,
``loopback_tcp``, sends the same bytes from a trio socket straight to the same kind of sink: what
the host does with no emulation at all. The ratio is far below 1 by nature and recorded to follow
regressions (no target).

Run: ``.venv/bin/python -m bench.bench_usernet``.
"""

from __future__ import annotations

import math
import secrets
import time

import trio

from bench.common import record
from machine.netdev.user import GATEWAY, GATEWAY_MAC, GUEST, UserBackend
from proto.tcp import CLOSED, ESTABLISHED, TcpConnection
from proto.wire.frame import build_tcp_frame, decode_frame

GUEST_MAC = "52:54:00:12:34:56"
TOTAL = 8 << 20
CHUNK = 64 << 10
ROUNDS = 3


async def sink(listener: trio.socket.SocketType, total: int, done: trio.Event) -> None:
    """Accept one connection and read ``total`` bytes from it."""
    sock, _ = await listener.accept()
    with sock:
        got = 0
        while got < total:
            data = await sock.recv(1 << 20)
            if not data:
                break
            got += len(data)
    assert got == total, f"sink got {got} of {total} bytes"
    done.set()


class GuestSender:
    """The guest's side: one TCP engine on the router's wire, timers at its deadlines."""

    def __init__(self, router: UserBackend, port: int) -> None:
        self.router = router
        self.conn = TcpConnection((GUEST, 40000), (GATEWAY, port), iss=secrets.randbits(32), ack_delay=0.04)
        self.changed = trio.Event()

    def deliver(self, raw: bytes) -> None:
        f = decode_frame(raw)
        if f.tcp is not None:
            self.conn.segment_received(f.tcp, trio.current_time())
            self.flush()

    def flush(self) -> None:
        conn = self.conn
        for seg in conn.segments_to_send(trio.current_time()):
            self.router.send(build_tcp_frame(GUEST_MAC, GATEWAY_MAC, GUEST, GATEWAY, seg))
        ev, self.changed = self.changed, trio.Event()
        ev.set()

    async def timers(self) -> None:
        conn = self.conn
        while conn.state != CLOSED:
            deadline = conn.next_deadline()
            with trio.move_on_at(math.inf if deadline is None else deadline):
                await self.changed.wait()
            now = trio.current_time()
            deadline = conn.next_deadline()
            if deadline is not None and now >= deadline:
                conn.poll_timers(now)
                self.flush()

    async def upload(self, data: bytes) -> None:
        conn = self.conn
        conn.connect(trio.current_time())
        self.flush()
        while conn.state != ESTABLISHED:
            await self.changed.wait()
        view = memoryview(data)
        while view:
            space = conn.send_space
            if not space:
                await self.changed.wait()
                continue
            n = conn.send(bytes(view[: min(space, CHUNK)]))
            view = view[n:]
            self.flush()


async def through_router(data: bytes) -> float:
    """Seconds to move ``data`` guest->host through the router."""
    router = UserBackend()
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    done = trio.Event()
    guest = GuestSender(router, listener.getsockname()[1])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(router.run, guest.deliver)
        nursery.start_soon(sink, listener, len(data), done)
        nursery.start_soon(guest.timers)
        t0 = time.perf_counter()
        await guest.upload(data)
        await done.wait()
        elapsed = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    router.close()
    listener.close()
    return elapsed


async def over_loopback(data: bytes) -> float:
    """Seconds to move ``data`` over a host loopback TCP connection (trio on both ends)."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    done = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink, listener, len(data), done)
        t0 = time.perf_counter()
        stream = await trio.open_tcp_stream("127.0.0.1", listener.getsockname()[1])
        view = memoryview(data)
        for i in range(0, len(data), CHUNK):
            await stream.send_all(view[i : i + CHUNK])
        await done.wait()
        elapsed = time.perf_counter() - t0
        await stream.aclose()
    listener.close()
    return elapsed


async def measure() -> tuple[float, float]:
    data = secrets.token_bytes(TOTAL)
    routed = min([await through_router(data) for _ in range(ROUNDS)])
    direct = min([await over_loopback(data) for _ in range(ROUNDS)])
    return TOTAL / routed / 1e6, TOTAL / direct / 1e6


def main() -> int:
    routed, direct = trio.run(measure)
    record("usernet.tcp_upload_mb_per_s", routed, "MB/s", "loopback_tcp", direct, routed / direct)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
