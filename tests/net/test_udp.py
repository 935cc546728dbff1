"""UDP sockets that bind and serve (issue 15 item 11): /tcp/udp/PORT, recvfrom and sendto.

* the record codec both ends share (euralios.std.protocols.udp), byte for byte;
* over the root-free user network: the OS's echo server (examples/udp_echo.py, a program run
  confined from its image) answering host clients through hostfwd=udp, and a program in the
  OS talking to a host UDP server, bound and connected, with the errors a bound socket gives;
* over a tap in a network namespace (root; run under flock /tmp/euralios-net.lock): the same
  echo server answering a Linux socket, with the address from dnsmasq, then on addresses,
  a MAC, a capture and an impairment of the test's choosing (euralios_tap's options).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import trio

from euralios.boot import System
from euralios.netns import netns_unavailable
from euralios.std import SyscallError, abi
from euralios.std.protocols import udp as U
from euralios.testnet import TapGuest, UserNetGuest, tap_guest

ROOT = Path(__file__).resolve().parents[2]
ECHO = (ROOT / "examples" / "udp_echo.py").read_bytes()


# ---------------------------------------------------------------------------------- the codec

def test_records_round_trip_and_bad_ones_are_value_errors() -> None:
    d = U.Datagram("10.0.2.2", 5353, b"\x00payload")
    raw = U.encode(d)
    assert raw == b"\x08\x14\xe910.0.2.2\x00payload"
    assert U.decode(raw) == d and U.decode(raw).address == ("10.0.2.2", 5353)
    assert U.decode(U.encode(U.Datagram("files.test", 1, b""))).payload == b""
    for bad, text in ((b"\x01", "shorter than its header"), (b"\x00\x00\x07", "empty"),
                      (b"\x09\x00\x07short", "cut short"), (b"\x01\x00\x00x", "port 0"),
                      (b"\x02\x00\x07a b", "printable")):
        with pytest.raises(ValueError, match=text):
            U.decode(bad)
    for host, port in (("", 7), ("x" * 254, 7), ("héte", 7), ("h", 0), ("h", 65536)):
        with pytest.raises(ValueError):
            U.encode(U.Datagram(host, port, b""))


# ---------------------------------------------------------------------------------- user network

async def echo_from_host(port: int, payloads: list[bytes]) -> list[tuple[bytes, tuple[str, int]]]:
    """Each payload from a host socket of its own to 127.0.0.1:port; the answers."""
    answers = []
    for payload in payloads:
        with trio.socket.socket(type=socket.SOCK_DGRAM) as s:
            await s.bind(("127.0.0.1", 0))
            await s.sendto(payload, ("127.0.0.1", port))
            with trio.fail_after(10):
                data, peer = await s.recvfrom(2048)
            answers.append((data, peer))
    return answers


@pytest.mark.parametrize("euralios_usernet", [{"hostfwd": ["udp:127.0.0.1:0-:7"]}], indirect=True)
async def test_echo_server_in_the_os_answers_host_clients_through_hostfwd(euralios_usernet: UserNetGuest) -> None:
    net = euralios_usernet
    assert net.address == "10.0.2.15/24" and await net.system.network_ready() == "10.0.2.15/24"
    net.system.spawn(ECHO, ["udp_echo", "7", "--count", "2"], name="udp_echo")
    await net.system.wait_for_output(r"\[udp_echo\] serving UDP port 7", 20)
    port = net.host_port(7, "udp")
    answers = await echo_from_host(port, [b"hello", b"x" * 1400])
    assert answers == [(b"echo: hello", ("127.0.0.1", port)), (b"echo: " + b"x" * 1400, ("127.0.0.1", port))]
    await net.system.wait_for_output(r"1400 bytes from 10\.0\.2\.2:\d+", 10)


async def test_a_program_sends_to_a_host_udp_server_bound_and_connected(euralios_usernet: UserNetGuest) -> None:
    """recvfrom names the host server; a connected socket talks to it alone; a bad record is
    PARAM with the socket still serving; a taken port EXISTS; a quiet recvfrom times out."""
    system = euralios_usernet.system
    server = trio.socket.socket(type=socket.SOCK_DGRAM)
    await server.bind(("127.0.0.1", 0))
    hport = server.getsockname()[1]
    seen: dict[str, Any] = {}

    async def host_server() -> None:
        while True:
            data, peer = await server.recvfrom(2048)
            await server.sendto(b"host: " + data, peer)

    async def program(proc: Any) -> int:
        sock = await proc.udp_bind(0)
        info = await sock.query()
        seen["port"] = info["port"]
        assert await sock.sendto(b"one", ("10.0.2.2", hport)) == 3
        seen["one"] = await sock.recvfrom(timeout=10)
        with pytest.raises(SyscallError) as e:
            await sock._write_record(b"\x05\x00")
        seen["bad"] = e.value.code
        await sock.sendto("two", ("10.0.2.2", hport))
        seen["two"] = await sock.recvfrom(4, timeout=10)  # cut to 4 bytes
        seen["quiet"] = await sock.recvfrom(timeout=0.2)
        with pytest.raises(SyscallError) as e:
            await proc.udp_bind(info["port"])
        seen["taken"] = e.value.code
        await sock.close()
        conn = await proc.udp_connect("10.0.2.2", hport)
        await conn.send(b"three")
        seen["three"] = await conn.recv()
        await conn.close()
        # Loopback: a server and a client of this very host.
        srv, cli = await proc.udp_bind(9999), await proc.udp_bind(0)
        await cli.sendto(b"ping", ("127.0.0.1", 9999))
        payload, peer = await srv.recvfrom(timeout=5)
        await srv.sendto(payload.upper(), peer)
        seen["loop"] = (await cli.recvfrom(timeout=5), peer[1] == (await cli.query())["port"])
        return 0

    async with trio.open_nursery() as nursery:
        nursery.start_soon(host_server)
        with trio.fail_after(30):
            result = await system.run(program)
        nursery.cancel_scope.cancel()
    server.close()
    assert result == 0, result.output
    assert 49152 <= seen["port"] <= 65535
    assert seen["one"] == (b"host: one", ("10.0.2.2", hport))
    assert seen["bad"] == abi.PARAM
    assert seen["two"] == (b"host", ("10.0.2.2", hport))
    assert seen["quiet"] is None
    assert seen["taken"] == abi.EXISTS
    assert seen["three"] == b"host: three"
    assert seen["loop"] == ((b"PING", ("127.0.0.1", 9999)), True)


# ---------------------------------------------------------------------------------- a real tap

_why = netns_unavailable()
needs_tap = pytest.mark.skipif(_why is not None, reason=f"tap tests: {_why}")


async def serve_and_ask(tap: TapGuest, system: System, payloads: list[bytes], replies: int = 1) -> list[bytes]:
    """The OS's echo server on port 7; a Linux socket in the namespace asks it each payload
    and collects `replies` answers to each."""
    system.spawn(ECHO, ["udp_echo", "7"], name="udp_echo")
    await system.wait_for_output(r"\[udp_echo\] serving UDP port 7", 20)
    s = tap.netns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    ts = trio.socket.from_stdlib_socket(s)
    got = []
    for payload in payloads:
        await ts.sendto(payload, (tap.guest_ip, 7))
        for _ in range(replies):
            with trio.fail_after(10):
                data, peer = await ts.recvfrom(2048)
            assert peer == (tap.guest_ip, 7)
            got.append(data)
    return got


@needs_tap
@pytest.mark.parametrize("euralios_tap", [{"dhcp": True, "mac": "52:54:00:ab:cd:ef"}], indirect=True)
async def test_tap_with_dnsmasq_echo_server_and_a_client_of_a_linux_server(euralios_tap: TapGuest) -> None:
    tap = euralios_tap
    assert await tap.system.network_ready() == "10.0.2.15/24"
    assert tap.dnsmasq_log is not None and "DHCPACK" in tap.dnsmasq_log.read_text()
    assert "52:54:00:ab:cd:ef" in tap.dnsmasq_log.read_text()
    assert await serve_and_ask(tap, tap.system, [b"over a real wire"]) == [b"echo: over a real wire"]
    server = tap.netns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((tap.host_ip, 5300))
    server.setblocking(False)
    tserver = trio.socket.from_stdlib_socket(server)
    got: dict[str, Any] = {}

    async def linux_server() -> None:
        data, peer = await tserver.recvfrom(2048)
        got["peer"] = peer
        await tserver.sendto(data[::-1], peer)

    async def client(proc: Any) -> int:
        sock = await proc.udp_bind(0)
        await sock.sendto(b"stressed", (tap.host_ip, 5300))
        got["answer"] = await sock.recvfrom(timeout=10)
        return 0

    async with trio.open_nursery() as nursery:
        nursery.start_soon(linux_server)
        with trio.fail_after(20):
            assert await tap.system.run(client) == 0
    assert got["answer"] == (b"desserts", (tap.host_ip, 5300))
    assert got["peer"][0] == tap.guest_ip and 49152 <= got["peer"][1] <= 65535


@needs_tap
async def test_tap_options_addresses_capture_and_impairment(tmp_path: Path) -> None:
    """tap_guest (the fixture's engine) on addresses of our own, with every received frame
    duplicated (dup=100, dir=rx): each question reaches the server twice, so two echoes come
    back; the capture holds them."""
    pcap = tmp_path / "wire.pcap"
    async with tap_guest(guest_ip="10.9.8.7", host_ip="10.9.8.1", prefix=24, mac="52:54:00:01:02:03",
                         pcap=str(pcap), impair="dup=100,dir=rx,seed=1") as tap:
        assert await tap.system.network_ready() == "10.9.8.7/24"
        assert tap.host_ip == "10.9.8.1"
        assert await serve_and_ask(tap, tap.system, [b"twice?"], replies=2) == [b"echo: twice?"] * 2
    from scapy.layers.inet import UDP
    from scapy.utils import rdpcap

    frames = rdpcap(str(pcap))
    echoes = [f for f in frames if UDP in f and f[UDP].sport == 7]
    assert len(echoes) == 2 and all(f.src == "52:54:00:01:02:03" for f in echoes)
