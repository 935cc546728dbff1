"""TCP bulk throughput of the guest's stack over a tap, each way, against Linux's own TCP.

``tcp.guest_to_linux_mb_per_s``: a guest program (a booted small system: pci, rtl8139, the
TCP/IP stack at /tcp) connects to a peer in a private network namespace over a tap and writes
TOTAL bytes; the peer times them from the first byte to the end of the stream.
``tcp.linux_to_guest_mb_per_s``: the peer writes TOTAL bytes to the guest, which times its
reads from connect to the end of the stream. The peer (bench/tcp_peer.py) is a process of its
own, as iperf beside QEMU: in the emulator's process it took the guest's CPU. ``tcp.virtio_*``:
the same with the virtio-net card (its offloads negotiated, a 1 MiB window), against the
RTL8139's figure of the same run (target >= 4x each way), and then with one feature withdrawn
at a time (``--nic virtio,csum=off`` ...), against the full card: what each feature buys.
Everything real is on the path: the guest's syscalls and IPC, /tcp, the NIC driver's port I/O
and DMA, the card's model, the tap and the namespace's kernel TCP. The baseline,
``linux_loopback_tcp``, moves the same bytes between two trio sockets over 127.0.0.1 in the
same process and run. The ratios are far below 1 by nature (an emulated PC in Python against
the host kernel) and are recorded to follow regressions.

Needs root (a namespace and a tap): otherwise it prints why and records nothing.
Run: ``.venv/bin/python -m bench.bench_tcp``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import trio

from bench.common import record
from euralios.boot import boot
from euralios.pytest_plugin import Netns, netns_unavailable

TOTAL = 4 << 20
CHUNK = 256 << 10  # the program's reads and writes: the most /tcp takes or answers in one request
ROUNDS = 3
PAYLOAD = bytes(range(256)) * (CHUNK // 256)
GUEST, HOST, PORT = "10.0.2.15", "10.0.2.2", 5001


async def loopback(direction_bytes: int) -> float:
    """MB/s of trio TCP over 127.0.0.1 in this process (the baseline)."""
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    result: dict[str, float] = {}

    async def sink() -> None:
        conn, _ = await listener.accept()
        with conn:
            got, t0 = 0, 0.0
            while True:
                data = await conn.recv(1 << 20)
                if not data:
                    break
                if not got:
                    t0 = time.perf_counter()
                got += len(data)
            result["rate"] = got / (time.perf_counter() - t0) / 1e6

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink)
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            sent = 0
            while sent < direction_bytes:
                await stream.send_all(PAYLOAD)
                sent += len(PAYLOAD)
    listener.close()
    return result["rate"]


async def guest_rates(backend: Any, lsock: socket.socket, card: str = "rtl8139",
                      stack_args: tuple[str, ...] = ()) -> tuple[float, float]:
    """(guest->Linux, Linux->guest) best MB/s over ROUNDS, with the guest's `card` on `backend`
    and the Linux side listening on `lsock` (reached from the guest as HOST:PORT), served by
    bench/tcp_peer.py in a process of its own (why: its docstring)."""
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.listen()
    fd = lsock.fileno()
    peer = subprocess.Popen([sys.executable, "-m", "bench.tcp_peer", str(fd), str(TOTAL), str(CHUNK)],
                            pass_fds=(fd,), stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    down: list[float] = []

    async def guest(proc: Any) -> int:
        for _ in range(ROUNDS):
            s = await proc.connect(HOST, PORT)
            await s.write_all(b"U")
            sent = 0
            while sent < TOTAL:
                await s.write_all(PAYLOAD)
                sent += len(PAYLOAD)
            await s.close()
            s = await proc.connect(HOST, PORT)
            await s.write_all(b"D")
            t0, got = proc.now(), 0
            while chunk := await s.read(CHUNK):
                got += len(chunk)
            down.append(got / (proc.now() - t0) / 1e6)
            await s.close()
            await proc.sleep(0.2)  # let the last upload's receiver finish its timing
        return 0

    try:
        async with boot(nic=backend, card=card, watchdog=0) as system:
            system.start_network(["--static", f"{GUEST}/24,gw={HOST}", *stack_args])
            await system.wait_for_output(r"\[tcp\] static", 15)
            with trio.fail_after(300):
                status = await system.run(guest)
            assert status == 0, system.output()
    finally:
        peer.terminate()
        out, _ = peer.communicate()
    up = [float(line) for line in out.split()]
    assert len(up) == ROUNDS, f"the peer timed {len(up)} of {ROUNDS} uploads (exit {peer.returncode})"
    return max(up), max(down)


#: The virtio card's window and send buffer: its receive queue holds 256 buffers of up to 64 KiB
#: (GUEST_TSO4), so the stack may advertise far more than the RTL8139's 64 KiB ring allows.
VIRTIO_STACK = ("--rcvbuf", str(1 << 20), "--sndbuf", str(1 << 20))
#: What each feature buys (docs/PERFORMANCE.md): the card with one feature withdrawn at a time.
WITHOUT = ("csum", "host_tso4", "guest_tso4", "mrg_rxbuf", "event_idx")


async def tap_rates(card: str, stack_args: tuple[str, ...] = ()) -> tuple[float, float]:
    with Netns() as ns:
        lsock = ns.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.bind((HOST, PORT))
        return await guest_rates(ns.backend(), lsock, card, stack_args)


async def run(tap: bool) -> None:
    up = down = v_up = v_down = 0.0
    without: dict[str, tuple[float, float]] = {}
    if tap:
        up, down = await tap_rates("rtl8139")
        v_up, v_down = await tap_rates("virtio-net-pci", VIRTIO_STACK)
        for prop in WITHOUT:
            without[prop] = await tap_rates(f"virtio-net-pci,{prop}=off", VIRTIO_STACK)
    # The root-free user network: the router relays 10.0.2.2:PORT to the host's 127.0.0.1:PORT.
    from machine.netdev import make_backend

    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a previous run's TIME-WAIT
    lsock.bind(("127.0.0.1", PORT))
    user_nic = make_backend("user")
    try:
        u_up, u_down = await guest_rates(user_nic, lsock)
    finally:
        user_nic.close()
    base = max([await loopback(TOTAL) for _ in range(ROUNDS)])
    if tap:
        record("tcp.guest_to_linux_mb_per_s", up, "MB/s", "linux_loopback_tcp", base, up / base, ">= 20 MB/s", up >= 20)
        record("tcp.linux_to_guest_mb_per_s", down, "MB/s", "linux_loopback_tcp", base, down / base)
        record("tcp.virtio_guest_to_linux_mb_per_s", v_up, "MB/s", "rtl8139_guest_to_linux", up,
               v_up / up, ">= 4x (issue 16)", v_up >= 4 * up)
        record("tcp.virtio_linux_to_guest_mb_per_s", v_down, "MB/s", "rtl8139_linux_to_guest", down,
               v_down / down, ">= 4x (issue 16)", v_down >= 4 * down)
        for prop, (w_up, w_down) in without.items():
            record(f"tcp.virtio_{prop}_off_guest_to_linux_mb_per_s", w_up, "MB/s", "virtio_guest_to_linux", v_up,
                   w_up / v_up if v_up else 0.0)
            record(f"tcp.virtio_{prop}_off_linux_to_guest_mb_per_s", w_down, "MB/s", "virtio_linux_to_guest", v_down,
                   w_down / v_down if v_down else 0.0)
        record("usernet.guest_to_host_vs_tap", u_up, "MB/s", "tap_guest_to_linux", up, u_up / up if up else 0.0)
    else:
        record("usernet.guest_to_host_mb_per_s", u_up, "MB/s", "linux_loopback_tcp", base, u_up / base)
    record("usernet.host_to_guest_mb_per_s", u_down, "MB/s", "linux_loopback_tcp", base, u_down / base)


def main() -> int:
    why = netns_unavailable() or (None if os.geteuid() == 0 else "needs root (a network namespace and a tap)")
    if why is not None:
        print(f"bench_tcp: tap figures skipped: {why}; measuring the user network only")
    trio.run(run, why is None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
