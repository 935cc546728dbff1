"""TCP at scale: 200 concurrent connections through the guest's stack, over a tap.

A guest program opens N (200) connections at once to a trio server in a private network
namespace and uploads PER_CONN bytes on every one of them, all interleaved: one /tcp/mux session
(euralios.std.net.Mux: non-blocking sends, ``poll`` for the sockets that can take more), since a
/tcp/HOST:PORT session costs the stack a thread each and a process has 64. Then the same for a
download: the server writes PER_CONN bytes to each connection. Everything real is on the path
(syscalls and IPC, /tcp, the NIC driver's port I/O and DMA, the RTL8139 model, the tap, Linux).

Reported:

* ``tcp_scale.upload_mb_per_s`` / ``download_mb_per_s``: all bytes over the time from the first
  byte to the last connection's end, against N trio connections moving the same bytes over
  127.0.0.1 in this process (``linux_loopback_tcp_n``, the same run);
* ``tcp_scale.heap_per_connection_kib``: Python heap (tracemalloc) per connection once all N are
  established and idle, everything included: the stack's TCP state, the mux bookkeeping, the
  frames and messages they cost; ``tcp_scale.rss_per_connection_kib``: host RSS growth per
  connection at the peak of the upload (send buffers full: up to 128 KiB each);
* ``tcp_scale.cpu_per_mb_ms``: CPU time of this process per MB moved (the whole emulated PC
  and the namespace's side run in it; Linux's own TCP runs in the kernel) and the share of the
  guest's CPU each process used.

Needs root (a namespace and a tap): otherwise it prints why and records nothing.
Run: ``.venv/bin/python -m bench.bench_tcp_scale``.
"""

from __future__ import annotations

import gc
import os
import socket
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import trio

from bench.common import record
from euralios.boot import boot
from euralios.pytest_plugin import Netns, netns_unavailable

N = 200
PER_CONN = 256 << 10
CHUNK = 32 << 10
PAYLOAD = bytes(range(256)) * (CHUNK // 256)
GUEST, HOST, PORT = "10.0.2.15", "10.0.2.2", 5002


def rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def loopback(n: int, per_conn: int) -> float:
    """MB/s of n concurrent trio TCP connections over 127.0.0.1 (the baseline), upload-shaped."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen(n)
    port = listener.getsockname()[1]
    times: list[float] = []

    async def sink(conn: Any) -> None:
        with conn:
            while await conn.recv(1 << 20):
                pass
        times.append(time.perf_counter())

    async def source() -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            sent = 0
            while sent < per_conn:
                await stream.send_all(PAYLOAD)
                sent += len(PAYLOAD)

    async with trio.open_nursery() as nursery:
        async def acceptor() -> None:
            for _ in range(n):
                conn, _ = await listener.accept()
                nursery.start_soon(sink, conn)

        nursery.start_soon(acceptor)
        t0 = time.perf_counter()
        async with trio.open_nursery() as clients:
            for _ in range(n):
                clients.start_soon(source)
    listener.close()
    return n * per_conn / (max(times) - t0) / 1e6


class LinuxSide:
    """The namespace's server: 'U' connections are read to the end, 'D' ones get PER_CONN bytes."""

    def __init__(self, lsock: socket.socket) -> None:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.listen(N)
        lsock.setblocking(False)
        self.listener = trio.socket.from_stdlib_socket(lsock)
        self.received = 0
        self.first = 0.0
        self.last = 0.0
        self.done = 0

    async def serve(self) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                conn, _ = await self.listener.accept()
                nursery.start_soon(self.connection, conn)

    async def connection(self, conn: Any) -> None:
        stream = trio.SocketStream(conn)
        mode = await stream.receive_some(1)
        if mode == b"U":
            while data := await stream.receive_some(1 << 20):
                if not self.first:
                    self.first = time.perf_counter()
                self.received += len(data)
        elif mode == b"D":
            sent = 0
            while sent < PER_CONN:
                await stream.send_all(PAYLOAD)
                sent += len(PAYLOAD)
        self.last = time.perf_counter()
        self.done += 1
        await stream.aclose()


async def guest_run(proc: Any, mode: bytes, results: dict[str, Any], hook: Callable[[str], None]) -> int:
    """N connections on one mux, uploading or downloading PER_CONN bytes each, driven by poll."""
    from euralios.std.net import ERROR, READABLE, WRITABLE

    mux = await proc.mux()
    socks = [await mux.connect(HOST, PORT) for _ in range(N)]
    # Wait until every handshake is done (a connection polls WRITABLE once established).
    established: set[int] = set()
    while len(established) < N:
        for sid, ev in await mux.poll(10):
            if ev & ERROR:
                raise RuntimeError(f"connection {sid} failed")
            if ev & WRITABLE and sid not in established:
                established.add(sid)
                await mux.watch(sid, 0)
    hook("established")
    sent = dict.fromkeys(socks, 0)
    got = dict.fromkeys(socks, 0)
    for sid in socks:
        await mux.send(sid, mode)
        await mux.watch(sid, (WRITABLE if mode == b"U" else READABLE) | ERROR)
    open_ = set(socks)
    t0 = proc.now()
    while open_:
        for sid, ev in await mux.poll(10):
            if ev & ERROR:
                raise RuntimeError(f"connection {sid} failed")
            if mode == b"U" and ev & WRITABLE:
                n = await mux.send(sid, PAYLOAD[: min(CHUNK, PER_CONN - sent[sid])])
                sent[sid] += n
                if sent[sid] >= PER_CONN:
                    await mux.shut(sid)
                    open_.discard(sid)
            elif ev & READABLE:
                while (data := await mux.recv(sid)) is not None:
                    if not data:
                        await mux.shut(sid)
                        open_.discard(sid)
                        break
                    got[sid] += len(data)
        if mode == b"U" and len(open_) < N // 2:
            hook("peak")
    results["guest_seconds"] = proc.now() - t0
    results["got"] = sum(got.values())
    hook("sent")
    await mux.close()
    return 0


async def measure(backend: Any, lsock: socket.socket) -> dict[str, Any]:
    side = LinuxSide(lsock)
    out: dict[str, Any] = {}
    async with boot(nic=backend, watchdog=0) as system:
        system.start_network(["--static", f"{GUEST}/24,gw={HOST}"])
        await system.wait_for_output(r"\[tcp\] static", 15)
        system.nursery.start_soon(side.serve)
        kernel = system.kernel

        def cpu_by_process() -> dict[str, float]:
            return {p.name: sum(t.cpu for t in p.threads.values()) for p in kernel.processes.values()}

        # Phase 1: memory. Heap per connection once all N are established and idle.
        gc.collect()
        tracemalloc.start()
        heap0 = tracemalloc.get_traced_memory()[0]
        state: dict[str, Any] = {}

        def hook_memory(event: str) -> None:
            if event == "established" and "heap" not in state:
                gc.collect()
                state["heap"] = tracemalloc.get_traced_memory()[0] - heap0

        res: dict[str, Any] = {}

        async def connect_only(proc: Any) -> int:
            from euralios.std.net import WRITABLE

            mux = await proc.mux()
            socks = [await mux.connect(HOST, PORT) for _ in range(N)]
            up: set[int] = set()
            while len(up) < N:
                for sid, ev in await mux.poll(10):
                    if ev & WRITABLE:
                        up.add(sid)
                        await mux.watch(sid, 0)
            hook_memory("established")
            for sid in socks:
                await mux.shut(sid)
            await mux.close()
            return 0

        with trio.fail_after(120):
            assert await system.run(connect_only) == 0, system.output()
        tracemalloc.stop()
        out["heap_per_conn"] = state["heap"] / N
        await trio.sleep(0.5)

        # Phase 2: upload, then download, timed; RSS at the upload's peak; CPU.
        for mode in (b"U", b"D"):
            side.received = side.done = 0
            side.first = side.last = 0.0
            gc.collect()
            rss0 = rss()
            peak = [rss0]

            at_end: dict[str, float] = {}

            def hook(event: str, peak: list[int] = peak, at_end: dict[str, float] = at_end) -> None:
                if event in ("established", "peak"):
                    peak.append(rss())
                elif event == "sent":
                    at_end.update(cpu_by_process())  # while the guest program still exists

            cpu0, wall0 = time.process_time(), time.perf_counter()
            procs0 = cpu_by_process()

            async def program(proc: Any, mode: bytes = mode, hook: Callable[[str], None] = hook) -> int:
                return await guest_run(proc, mode, res, hook)

            with trio.fail_after(300):
                status = await system.run(program)
            assert status == 0, system.output()
            with trio.fail_after(30):
                while side.done < N:
                    await trio.sleep(0.01)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            procs = {k: v - procs0.get(k, 0.0) for k, v in at_end.items()}
            total = N * PER_CONN
            if mode == b"U":
                assert side.received == total, (side.received, total)
                out["up"] = total / (side.last - side.first) / 1e6
                out["rss_per_conn"] = max(0, max(peak) - rss0) / N
                out["up_cpu_per_mb"] = cpu / (total / 1e6)
                out["up_procs"] = procs
            else:
                assert res["got"] == total, (res["got"], total)
                out["down"] = total / res["guest_seconds"] / 1e6
                out["down_cpu_per_mb"] = cpu / (total / 1e6)
                out["down_procs"] = procs
            out[f"{mode.decode()}_wall"] = wall
            await trio.sleep(0.5)
    return out


def shares(procs: dict[str, float]) -> str:
    total = sum(procs.values()) or 1.0
    top = sorted(procs.items(), key=lambda kv: -kv[1])[:4]
    return ", ".join(f"{name} {100 * v / total:.0f} %" for name, v in top)


async def run() -> None:
    with Netns() as ns:
        lsock = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind((HOST, PORT))
        r = await measure(ns.backend(), lsock)
    base = max([await loopback(N, PER_CONN) for _ in range(2)])
    print(f"  {N} connections x {PER_CONN >> 10} KiB each way; guest CPU by process: upload {shares(r['up_procs'])}; "
          f"download {shares(r['down_procs'])}")
    record("tcp_scale.upload_mb_per_s", r["up"], "MB/s", f"linux_loopback_tcp_{N}", base, r["up"] / base)
    record("tcp_scale.download_mb_per_s", r["down"], "MB/s", f"linux_loopback_tcp_{N}", base, r["down"] / base)
    record("tcp_scale.heap_per_connection_kib", r["heap_per_conn"] / 1024, "KiB", "none", 0.0, 0.0)
    record("tcp_scale.rss_per_connection_kib", r["rss_per_conn"] / 1024, "KiB", "none", 0.0, 0.0)
    record("tcp_scale.cpu_per_mb_ms", 1000 * (r["up_cpu_per_mb"] + r["down_cpu_per_mb"]) / 2, "ms/MB", "none",
           0.0, 0.0)


def main() -> int:
    why = netns_unavailable() or (None if os.geteuid() == 0 else "needs root (a network namespace and a tap)")
    if why is not None:
        print(f"bench_tcp_scale: skipped: {why}")
        return 0
    trio.run(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
