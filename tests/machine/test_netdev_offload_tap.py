"""A 64 KiB TSO frame through a real tap reaches a Linux TCP socket as the right bytes (the kernel
segments it), and what the host queued is delivered by ``pump`` without waiting, in a private
network namespace. Run under ``flock /tmp/euralios-net.lock``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from netns_root import NEED_ROOT

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import json, secrets, socket
    import trio, trio.testing
    from machine.netdev.tap import TapBackend
    from machine.netdev.user.large import gso_header, partial_checksum
    from proto.wire.frame import build_tcp_frame, decode_frame
    from proto.wire.tcp import ACK, PSH, SYN, TcpSegment, build_ipv4_tcp

    GMAC, GIP, HIP = "52:54:00:12:34:56", "10.77.0.2", "10.77.0.1"

    async def main():
        tap = TapBackend("hoff0")
        host_mac = open("/sys/class/net/hoff0/address").read().strip()
        listener = trio.socket.socket()
        await listener.bind((HIP, 7777))
        listener.listen()
        synack = trio.Event()
        got = {}
        def deliver(raw):
            f = decode_frame(raw)
            if f.tcp is not None and f.tcp.flags & SYN:
                got["synack"] = f.tcp
                synack.set()
        data = secrets.token_bytes(60000)
        async with trio.open_nursery() as n:
            n.start_soon(tap.run, deliver)
            await trio.testing.wait_all_tasks_blocked()
            tap.send(build_tcp_frame(GMAC, host_mac, GIP, HIP, TcpSegment(40000, 7777, 1000, 0, SYN, 65535,
                                                                           options=((2, 1460),))))
            with trio.fail_after(5):
                await synack.wait()
            sa = got["synack"]
            ack = (sa.seq + 1) & 0xFFFFFFFF
            tap.send(build_tcp_frame(GMAC, host_mac, GIP, HIP, TcpSegment(40000, 7777, 1001, ack, ACK, 65535)))
            sock, _ = await listener.accept()
            n_bytes = min(len(data), sa.window)
            packet = build_ipv4_tcp(TcpSegment(40000, 7777, 1001, ack, ACK | PSH, 65535, data[:n_bytes]), GIP, HIP)
            eth = bytes.fromhex(host_mac.replace(":", "") + GMAC.replace(":", "")) + b"\\x08\\x00"
            tap.send_gso(gso_header(packet, 1460), eth + partial_checksum(packet))
            received = b""
            with trio.fail_after(5):
                while len(received) < n_bytes:
                    received += await sock.recv(65536)
            n.cancel_scope.cancel()
        tap.close()
        print(json.dumps({"ok": received == data[:n_bytes], "size": n_bytes, "frame": len(packet) + 14,
                          "stats": tap.stats, "hdr_size": tap.hdr_size}))

    trio.run(main)
    """
)



PUMP_CHILD = textwrap.dedent(
    """
    import json, socket
    import trio, trio.testing
    from machine.netdev.tap import TapBackend
    from proto.wire.frame import decode_frame

    async def main():
        tap = TapBackend("hoff0")
        got = []
        def deliver(raw):
            f = decode_frame(raw)
            if f.udp is not None:
                got.append(f.udp.payload)
        tap.pump()  # before run: nobody to deliver to, so nothing is read
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        async with trio.open_nursery() as n:
            n.start_soon(tap.run, deliver)
            await trio.testing.wait_all_tasks_blocked()
            for i in range(3):
                out.sendto(b"queued %d" % i, ("10.77.0.2", 9))
            before = list(got)  # no checkpoint since: run has not looked at the tap
            tap.pump()
            after = list(got)
            tap.pump()  # nothing more queued: returns at once
            n.cancel_scope.cancel()
        tap.close()
        print(json.dumps({"before": len(before), "after": [p.decode() for p in after], "again": len(got)}))

    trio.run(main)
    """
)


def run_in_namespace(child: str) -> dict:  # type: ignore[type-arg]
    """Run ``child`` in a fresh namespace holding tap hoff0 (10.77.0.1; 10.77.0.2 is the guest's
    MAC by a static neighbour entry); its JSON line of output."""
    ns = f"hoff-{uuid.uuid4().hex[:8]}"
    ip = shutil.which("ip") or "ip"
    subprocess.run([ip, "netns", "add", ns], check=True)
    try:
        subprocess.run([ip, "-n", ns, "tuntap", "add", "hoff0", "mode", "tap"], check=True)
        for cmd in (["addr", "add", "10.77.0.1/24", "dev", "hoff0"], ["link", "set", "hoff0", "up"],
                    ["neigh", "replace", "10.77.0.2", "lladdr", "52:54:00:12:34:56", "dev", "hoff0"]):
            subprocess.run([ip, "-n", ns, *cmd], check=True)
        r = subprocess.run([ip, "netns", "exec", ns, sys.executable, "-c", child], cwd=ROOT, capture_output=True,
                           timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr.decode()
        return json.loads(r.stdout)  # type: ignore[no-any-return]
    finally:
        subprocess.run([ip, "netns", "del", ns], check=False)


@NEED_ROOT
def test_a_tso_frame_through_the_tap_reaches_a_linux_socket() -> None:
    result = run_in_namespace(CHILD)
    assert result["hdr_size"] == 12
    assert result["ok"] and result["frame"] > 30000, result  # one frame far above the MTU
    assert "tx_bad_offload" not in result["stats"]


@NEED_ROOT
def test_pump_delivers_what_the_host_queued_without_waiting() -> None:
    """What a card's transmit kick relies on (machine.netdev.Backend.pump): frames the host
    put in the tap are handed over in the call itself, in order, before run's wait sees them."""
    result = run_in_namespace(PUMP_CHILD)
    assert result["before"] == 0
    assert result["after"] == ["queued 0", "queued 1", "queued 2"]
    assert result["again"] == 3
