"""The ``user`` router (QEMU slirp-like): driven frame by frame as a guest would, no OS boot.

The guest here is test code: frames built with proto/wire, a guest-side ``TcpConnection`` /
``TcpListener`` engine, net/dhcp's ``DhcpClient`` and net/dns's ``Resolver``. The far side is
the real host: trio sockets on 127.0.0.1.
"""

from __future__ import annotations

import errno
import math
import os
import secrets
import socket

import pytest
import trio
import trio.testing

from euralios.pytest_plugin import wait_until
from machine.netdev import BackendError, make_backend
from machine.netdev.user import (
    DNS_MAC,
    DNS_SERVER,
    GATEWAY,
    GATEWAY_MAC,
    GUEST,
    UserBackend,
    parse_hostfwd,
    parse_hosts,
    parse_user_options,
)
from machine.netdev.user.large import coalesce, gso_header, partial_checksum
from net.dhcp import DhcpClient
from net.dns import DnsError, Resolver
from proto.tcp import CLOSED, ESTABLISHED, TcpConnection, TcpListener, reset_for
from proto.wire import icmp as _icmp
from proto.wire.arp import REPLY, REQUEST
from proto.wire.frame import Frame, build_arp, build_icmp_echo, build_tcp_frame, build_udp_frame, decode_frame
from proto.wire.gso import segment
from proto.wire.tcp import RST, build_ipv4_tcp
from proto.wire.vnet import GsoType, HdrFlags, VnetHdr

GUEST_MAC = "52:54:00:12:34:56"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Guest:
    """A minimal guest stack on the router's wire: ARP answers for itself, TCP via the sans-IO
    engine (timers at its deadlines), everything else collected for the test to look at."""

    def __init__(self, router: UserBackend, ip: str = GUEST, mac: str = GUEST_MAC) -> None:
        self.router = router
        self.ip = ip
        self.mac = mac
        self.frames: list[Frame] = []
        self.conns: dict[tuple[int, str, int], TcpConnection] = {}
        self.listeners: dict[int, TcpListener] = {}
        self._changed = trio.Event()

    # the wire
    def deliver(self, raw: bytes) -> None:
        f = decode_frame(raw)
        assert f.eth.dst in (self.mac, "ff:ff:ff:ff:ff:ff"), f"frame for {f.eth.dst}"
        arp, seg = f.arp, f.tcp
        if arp is not None and arp.op == REQUEST and arp.target_ip == self.ip:
            self.router.send(build_arp(REPLY, self.mac, self.ip, arp.sender_ip, arp.sender_mac))
        elif seg is not None and f.ip is not None and f.ip.dst == self.ip:
            now = trio.current_time()
            conn = self.conns.get((seg.dst_port, f.ip.src, seg.src_port))
            if conn is not None:
                conn.segment_received(seg, now)
                self.flush(conn)
            elif seg.dst_port in self.listeners:
                lst = self.listeners[seg.dst_port]
                new = lst.segment_received(seg, (f.ip.src, seg.src_port), now)
                if new is not None:
                    self.conns[(seg.dst_port, f.ip.src, seg.src_port)] = new
                    self.flush(new)
                for (ip, _port), rst in lst.segments_to_send():
                    self.send_tcp(rst, ip)
            else:
                reply = reset_for(seg)
                if reply is not None:
                    self.send_tcp(reply, f.ip.src)
                self.frames.append(f)
        else:
            self.frames.append(f)
        self.kick()

    def kick(self) -> None:
        ev, self._changed = self._changed, trio.Event()
        ev.set()

    async def wait_for(self, cond, timeout: float = 10.0):  # noqa: ANN001 - any predicate
        with trio.fail_after(timeout):
            while not (result := cond()):
                await self._changed.wait()
        return result

    async def expect(self, pred, timeout: float = 5.0) -> Frame:  # noqa: ANN001
        def find() -> Frame | None:
            for i, f in enumerate(self.frames):
                if pred(f):
                    return self.frames.pop(i)
            return None

        return await self.wait_for(find, timeout)

    def send_tcp(self, seg, dst: str) -> None:  # noqa: ANN001
        self.router.send(build_tcp_frame(self.mac, GATEWAY_MAC, self.ip, dst, seg))

    def flush(self, conn: TcpConnection) -> None:
        for seg in conn.segments_to_send(trio.current_time()):
            self.send_tcp(seg, conn.remote[0])

    async def timers(self) -> None:
        """The guest's TCP timer: sleep until the earliest engine deadline or any change."""
        while True:
            deadlines = [d for c in self.conns.values() if (d := c.next_deadline()) is not None]
            with trio.move_on_at(min(deadlines, default=math.inf)):
                await self._changed.wait()
            now = trio.current_time()
            for conn in list(self.conns.values()):
                d = conn.next_deadline()
                if d is not None and d <= now:
                    conn.poll_timers(now)
                    self.flush(conn)

    # TCP for the test
    def connect(self, dst: str, port: int, sport: int | None = None) -> TcpConnection:
        sport = sport or 40000 + secrets.randbelow(20000)
        conn = TcpConnection((self.ip, sport), (dst, port), iss=secrets.randbits(32))
        conn.connect(trio.current_time())
        self.conns[(sport, dst, port)] = conn
        self.flush(conn)
        return conn

    async def sendall(self, conn: TcpConnection, data: bytes) -> None:
        view = memoryview(data)
        while view:
            await self.wait_for(lambda: conn.send_space or conn.state == CLOSED)
            n = conn.send(bytes(view[: conn.send_space]))
            view = view[n:]
            self.flush(conn)

    async def recv_until_eof(self, conn: TcpConnection, timeout: float = 20.0) -> bytes:
        out = bytearray()

        def more() -> bool:
            if conn.available:
                out.extend(conn.receive())
                self.flush(conn)
            return conn.at_eof or conn.error is not None

        await self.wait_for(more, timeout)
        return bytes(out)


@pytest.fixture
async def net(nursery: trio.Nursery):  # noqa: ANN201
    """A running router and guest; yields a factory so tests can give router options."""
    made: list[UserBackend] = []

    async def start(**options) -> tuple[UserBackend, Guest]:  # noqa: ANN003
        router = UserBackend(**options)
        made.append(router)
        guest = Guest(router)
        nursery.start_soon(router.run, guest.deliver)
        nursery.start_soon(guest.timers)
        await trio.testing.wait_all_tasks_blocked()
        return router, guest

    yield start
    for r in made:
        r.close()


def udp_from_guest(guest: Guest, dst: str, sport: int, dport: int, payload: bytes,
                   src: str | None = None, dst_mac: str = GATEWAY_MAC) -> bytes:
    return build_udp_frame(guest.mac, dst_mac, src or guest.ip, dst, sport, dport, payload)


# ------------------------------------------------------------------------------------ options


def test_parse_hostfwd_and_options() -> None:
    r = parse_hostfwd("tcp:127.0.0.1:7070-:70")
    assert (r.proto, r.host_addr, r.host_port, r.guest_addr, r.guest_port) == ("tcp", "127.0.0.1", 7070, GUEST, 70)
    r = parse_hostfwd("::8080-10.0.2.16:80")  # QEMU: empty protocol is tcp, empty host address any
    assert (r.proto, r.host_addr, r.host_port, r.guest_addr, r.guest_port) == ("tcp", "0.0.0.0", 8080, "10.0.2.16", 80)
    for bad, text in (("tcp:127.0.0.1:7070", "expected"), ("sctp::53-:53", "tcp or udp, not 'sctp'"), ("tcp::x-:70", "bad host port"),
                      ("tcp::70-:0", "bad guest port"), ("tcp:1.2.3:70-:70", "bad host address")):
        with pytest.raises(ValueError, match=text):
            parse_hostfwd(bad)
    r = parse_hostfwd("udp:127.0.0.1:5353-:53")
    assert (r.proto, r.host_port, r.guest_addr, r.guest_port) == ("udp", 5353, GUEST, 53)
    opts = parse_user_options("hostfwd=tcp:127.0.0.1:7070-:70,hostfwd=tcp::7071-:71,hosts=/x,domainname=lab")
    assert [h.host_port for h in opts.hostfwd] == [7070, 7071] and opts.hosts == "/x" and opts.domain == "lab"
    with pytest.raises(ValueError, match="unknown option 'smb'"):
        parse_user_options("smb=/tmp")


def test_parse_hosts() -> None:
    table = parse_hosts("# comment\n10.1.2.3 gopher Gopher.Example.  # trailing\n::1 localhost6\n\n10.1.2.4 gopher\n")
    assert table == {"gopher": ["10.1.2.3", "10.1.2.4"], "gopher.example": ["10.1.2.3"]}
    with pytest.raises(ValueError, match="hosts:1: 'nonsense' is not an IP address"):
        parse_hosts("nonsense name")
    with pytest.raises(ValueError, match="at least one name"):
        parse_hosts("10.0.0.1")


def test_make_backend_user_and_switch_specs(tmp_path) -> None:  # noqa: ANN001
    hosts = tmp_path / "hosts"
    hosts.write_text("10.9.9.9 box\n")
    port = free_port()
    b = make_backend(f"user,hostfwd=tcp:127.0.0.1:{port}-:70,hosts={hosts}")
    try:
        assert isinstance(b, UserBackend) and b.hostfwd_ports == [port] and b.hosts == {"box": ["10.9.9.9"]}
        assert b.spec.startswith("user,hostfwd=")
        # a second router cannot forward the same host port: one clear line, like QEMU's refusal
        with pytest.raises(BackendError, match=rf"^--net user,.*: cannot forward 127.0.0.1:{port}: "):
            make_backend(f"user,hostfwd=tcp:127.0.0.1:{port}-:70")
    finally:
        b.close()
    b = make_backend("user", hosts=str(hosts))
    assert isinstance(b, UserBackend) and "box" in b.hosts
    b.close()
    with pytest.raises(ValueError, match="hosts=/nonexistent/h"):
        make_backend("user,hosts=/nonexistent/h")
    with pytest.raises(ValueError, match="--hosts needs --net user"):
        make_backend("none", hosts=str(hosts))
    with pytest.raises(ValueError, match="needs a switch name"):
        make_backend("switch")


# ------------------------------------------------------------------------------------ ARP, ICMP


async def test_arp_for_gateway_and_dns_only(net) -> None:  # noqa: ANN001
    router, guest = await net()
    for target, mac in ((GATEWAY, GATEWAY_MAC), (DNS_SERVER, DNS_MAC)):
        router.send(build_arp(REQUEST, guest.mac, GUEST, target))
        f = await guest.expect(lambda f: f.arp is not None)
        assert f.arp is not None and f.eth.dst == guest.mac and f.eth.src == mac
        assert (f.arp.op, f.arp.sender_ip, f.arp.sender_mac, f.arp.target_ip, f.arp.target_mac) == (
            REPLY, target, mac, GUEST, guest.mac)
    router.send(build_arp(REQUEST, guest.mac, GUEST, "10.0.2.4"))  # nobody there
    router.send(build_arp(REQUEST, guest.mac, GUEST, GUEST))  # the guest probing its own address
    await trio.testing.wait_all_tasks_blocked()
    assert not guest.frames
    assert router.guest_mac == guest.mac


async def test_ping_the_gateway_and_dns_server(net) -> None:  # noqa: ANN001
    router, guest = await net()
    for n, dst in enumerate((GATEWAY, DNS_SERVER)):
        router.send(build_icmp_echo(guest.mac, GATEWAY_MAC, GUEST, dst, ident=77, seq=n, payload=b"ping" * 14))
        f = await guest.expect(lambda f: f.icmp is not None)
        assert f.ip is not None and f.icmp is not None
        assert (f.ip.src, f.ip.dst) == (dst, GUEST)
        assert (f.icmp.type, f.icmp.ident, f.icmp.seq, f.icmp.payload) == (_icmp.ECHO_REPLY, 77, n, b"ping" * 14)
    assert router.stats["icmp_echo"] == 2


# ------------------------------------------------------------------------------------ DHCP


async def test_dhcp_discover_offer_request_ack(net) -> None:  # noqa: ANN001
    router, guest = await net()
    client = DhcpClient(bytes.fromhex(GUEST_MAC.replace(":", "")), seed=1)
    client.start(trio.current_time())
    seen = []
    for expected in ("offer", "ack"):
        (out,) = client.datagrams_to_send()
        router.send(build_udp_frame(guest.mac, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", 68, 67,
                                    out.payload))
        f = await guest.expect(lambda f: f.udp is not None and f.udp.dst_port == 68)
        assert f.ip is not None and f.udp is not None
        # the client asked for a broadcast reply (it has no address yet)
        assert (f.eth.dst, f.ip.src, f.ip.dst, f.udp.src_port) == ("ff:ff:ff:ff:ff:ff", GATEWAY, "255.255.255.255", 67)
        seen.append(f.udp.payload)
        client.datagram_received(f.udp.payload, trio.current_time())
        assert client.state == ("REQUESTING" if expected == "offer" else "BOUND")
    lease = client.lease
    assert lease is not None
    assert (lease.address, lease.netmask, lease.router, lease.dns, lease.server) == (
        GUEST, "255.255.255.0", GATEWAY, [DNS_SERVER], GATEWAY)
    assert (lease.domain, lease.lease_time, lease.t1, lease.t2) == ("euralios.internal", 86400, 43200, 75600)
    from scapy.layers.dhcp import BOOTP, DHCP

    ack = BOOTP(seen[1])
    names = {o[0] for o in ack[DHCP].options if isinstance(o, tuple)}
    assert {"message-type", "server_id", "lease_time", "renewal_time", "rebinding_time", "subnet_mask", "router",
            "name_server", "domain"} <= names
    # renewing: unicast from the bound address, answered to it
    client.poll(lease.obtained + lease.t1)
    (renew,) = client.datagrams_to_send()
    router.send(build_udp_frame(guest.mac, GATEWAY_MAC, GUEST, GATEWAY, 68, 67, renew.payload))
    f = await guest.expect(lambda f: f.udp is not None and f.udp.dst_port == 68)
    assert f.ip is not None and (f.eth.dst, f.ip.dst) == (guest.mac, GUEST)
    client.datagram_received(f.udp.payload, lease.obtained + lease.t1)  # type: ignore[union-attr]
    assert client.events[-1] == "renewed"
    # asking for another address gets a NAK
    bad = BOOTP(op=1, xid=5, chaddr=bytes.fromhex("525400123456") + bytes(10), flags=0x8000) / DHCP(
        options=[("message-type", "request"), ("requested_addr", "10.0.2.99"), "end"])
    router.send(build_udp_frame(guest.mac, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", 68, 67, bytes(bad)))
    f = await guest.expect(lambda f: f.udp is not None and f.udp.dst_port == 68)
    nak = BOOTP(f.udp.payload)  # type: ignore[union-attr]
    assert ("message-type", 6) in nak[DHCP].options


# ------------------------------------------------------------------------------------ DNS


async def dns_lookup(router: UserBackend, guest: Guest, resolver: Resolver, name: str) -> list[str]:
    qid, query = resolver.query(name)
    sport = 30000 + qid % 1000
    router.send(udp_from_guest(guest, DNS_SERVER, sport, 53, query, dst_mac=DNS_MAC))
    f = await guest.expect(lambda f: f.udp is not None and f.udp.dst_port == sport)
    assert f.ip is not None and f.udp is not None and (f.ip.src, f.udp.src_port, f.eth.src) == (DNS_SERVER, 53, DNS_MAC)
    answer = resolver.answer(f.udp.payload, trio.current_time())
    assert answer is not None
    return answer[1]


async def test_dns_hosts_file_host_resolver_and_nxdomain(net, tmp_path) -> None:  # noqa: ANN001
    hosts = tmp_path / "hosts"
    hosts.write_text("10.1.2.3 gopher gopher.example\n")
    from machine.netdev.user import load_hosts

    router, guest = await net(hosts=load_hosts(str(hosts)))
    resolver = Resolver(seed=3)
    assert await dns_lookup(router, guest, resolver, "gopher") == ["10.1.2.3"]
    assert await dns_lookup(router, guest, resolver, "GOPHER.example.") == ["10.1.2.3"]
    assert await dns_lookup(router, guest, resolver, "gopher.euralios.internal") == ["10.1.2.3"]  # the DHCP domain
    assert await dns_lookup(router, guest, resolver, "localhost") == ["127.0.0.1"]  # the host's resolver
    with pytest.raises(DnsError) as e:
        await dns_lookup(router, guest, resolver, "no-such-host.invalid")
    assert e.value.kind == "nxdomain"
    # a query to another port of the DNS server: port unreachable, not silence
    router.send(udp_from_guest(guest, DNS_SERVER, 999, 54, b"x", dst_mac=DNS_MAC))
    f = await guest.expect(lambda f: f.icmp is not None)
    assert (f.icmp.type, f.icmp.code) == (_icmp.DEST_UNREACHABLE, 3)  # type: ignore[union-attr]


async def test_dns_resolver_trouble_is_servfail(net) -> None:  # noqa: ANN001
    async def broken(name: str) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    router, guest = await net(resolve=broken)
    with pytest.raises(DnsError) as e:
        await dns_lookup(router, guest, Resolver(seed=1), "example.org")
    assert e.value.kind == "servfail"


# ------------------------------------------------------------------------------------ TCP


async def test_tcp_to_host_both_ways_one_mib(net, nursery: trio.Nursery) -> None:  # noqa: ANN001
    router, guest = await net()
    up = secrets.token_bytes(1 << 20)
    down = secrets.token_bytes(1 << 20)
    got_up = bytearray()
    done = trio.Event()
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    async def server() -> None:
        sock, peer = await listener.accept()
        with sock:
            assert peer[0] == "127.0.0.1"
            while data := await sock.recv(65536):
                got_up.extend(data)
            view = memoryview(down)
            while view:
                view = view[await sock.send(view):]
        done.set()

    nursery.start_soon(server)
    conn = guest.connect(GATEWAY, port)
    await guest.wait_for(lambda: conn.state == ESTABLISHED)
    await guest.sendall(conn, up)
    conn.close(trio.current_time())
    guest.flush(conn)
    received = await guest.recv_until_eof(conn)
    with trio.fail_after(5):
        await done.wait()
    assert bytes(got_up) == up
    assert received == down and conn.error is None
    await wait_until(lambda: not router.tcp_flows, timeout=5, what="the router to drop its TCP flows")
    listener.close()


async def test_tcp_to_a_closed_host_port_is_refused(net) -> None:  # noqa: ANN001
    router, guest = await net()
    conn = guest.connect(GATEWAY, free_port())
    await guest.wait_for(lambda: conn.state == CLOSED)
    assert conn.error == "connection refused"
    assert not router.tcp_flows and router.stats["tcp_resets"] == 1


@pytest.mark.parametrize(("failure", "code"), [(errno.ENETUNREACH, 0), (errno.EHOSTUNREACH, 1), (None, 1)])
async def test_tcp_to_an_unreachable_host_is_icmp_unreachable(net, failure: int | None, code: int) -> None:  # noqa: ANN001
    """The host's connect fails with no route (or never completes): the guest hears ICMP
    destination unreachable quoting its SYN. (The host's connect is replaced: whether a real
    address is unreachable depends on the machine the tests run on.)"""

    async def connect(target: tuple[str, int]) -> trio.socket.SocketType:
        assert target == ("192.0.2.1", 80)
        if failure is None:
            await trio.sleep_forever()
        raise OSError(failure, os.strerror(failure))

    router, guest = await net(connect=connect, connect_timeout=0.2)
    conn = guest.connect("192.0.2.1", 80, sport=41000)
    f = await guest.expect(lambda f: f.icmp is not None)
    assert f.ip is not None and f.icmp is not None
    assert (f.ip.src, f.ip.dst, f.icmp.type, f.icmp.code) == (GATEWAY, GUEST, _icmp.DEST_UNREACHABLE, code)
    quoted = f.icmp.payload  # the SYN's IP header and the first 8 bytes of its TCP header
    assert quoted[12:20] == bytes([10, 0, 2, 15, 192, 0, 2, 1]) and quoted[20:24] == bytes.fromhex("a0280050")
    await wait_until(lambda: not router.tcp_flows, timeout=5, what="the router to drop its TCP flows")
    conn.abort(trio.current_time())


async def test_stray_tcp_segment_gets_a_reset(net) -> None:  # noqa: ANN001
    router, guest = await net()
    from proto.wire.tcp import ACK, TcpSegment

    guest.send_tcp(TcpSegment(5555, 80, seq=1, ack=99, flags=ACK), "93.184.216.34")
    f = await guest.expect(lambda f: f.tcp is not None)
    assert f.tcp is not None and f.tcp.flags & RST and f.tcp.seq == 99
    assert f.ip is not None and f.ip.src == "93.184.216.34"


async def test_host_reset_reaches_the_guest(net, nursery: trio.Nursery) -> None:  # noqa: ANN001
    router, guest = await net()
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()

    async def server() -> None:
        sock, _ = await listener.accept()
        await sock.recv(10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        sock.close()  # abortive close: RST

    nursery.start_soon(server)
    conn = guest.connect(GATEWAY, listener.getsockname()[1])
    await guest.sendall(conn, b"hello")
    await guest.wait_for(lambda: conn.state == CLOSED)
    assert conn.error == "connection reset"
    await wait_until(lambda: not router.tcp_flows, timeout=5, what="the router to drop its TCP flows")
    listener.close()


# ------------------------------------------------------------------------------------ UDP


async def test_udp_relay_echo_and_idle_timeout(net) -> None:  # noqa: ANN001
    fds = open_fds()
    router, guest = await net(udp_idle=0.3)
    with trio.socket.socket(type=socket.SOCK_DGRAM) as echo:
        await echo.bind(("127.0.0.1", 0))
        port = echo.getsockname()[1]

        async def server() -> None:
            while True:
                data, addr = await echo.recvfrom(2048)
                await echo.sendto(data.upper(), addr)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            for i in range(3):
                router.send(udp_from_guest(guest, GATEWAY, 5000, port, b"echo %d" % i))
                f = await guest.expect(lambda f: f.udp is not None)
                assert f.ip is not None and f.udp is not None
                assert (f.ip.src, f.udp.src_port, f.ip.dst, f.udp.dst_port, f.udp.payload) == (
                    GATEWAY, port, GUEST, 5000, b"ECHO %d" % i)
            assert len(router.udp_flows) == 1  # one host socket per guest port
            nursery.cancel_scope.cancel()
    await wait_until(lambda: not router.udp_flows, timeout=3,  # idle: the host socket goes away
                     what="the router to drop its idle UDP flow")
    assert open_fds() == fds


# ------------------------------------------------------------------------------------ hostfwd


async def test_hostfwd_reaches_a_guest_listener(net) -> None:  # noqa: ANN001
    router, guest = await net(hostfwd=[parse_hostfwd("tcp:127.0.0.1:0-:70")])
    guest.listeners[70] = TcpListener((GUEST, 70))
    (port,) = router.hostfwd_ports
    host = await trio.open_tcp_stream("127.0.0.1", port)
    # the router does not know the guest's MAC yet: it ARPs, the guest answers, the SYN follows
    conn = await guest.wait_for(lambda: guest.listeners[70].accept())
    assert conn.remote[0] == GATEWAY and conn.remote[1] >= 49152
    payload = secrets.token_bytes(200_000)
    await host.send_all(b"selector\r\n")
    await guest.wait_for(lambda: conn.available >= 10)
    assert conn.receive() == b"selector\r\n"
    await guest.sendall(conn, payload)
    conn.close(trio.current_time())
    guest.flush(conn)
    got = bytearray()
    while data := await host.receive_some(65536):
        got.extend(data)
    assert bytes(got) == payload
    await host.aclose()
    await guest.wait_for(lambda: conn.state == CLOSED or conn.state == "TIME-WAIT")
    await wait_until(lambda: not router.tcp_flows, timeout=5, what="the router to drop its TCP flows")


async def test_hostfwd_udp_reaches_a_guest_server_and_its_answers_reach_each_client(net) -> None:  # noqa: ANN001
    """hostfwd=udp: each host client gets a router port of its own, so the guest answers them
    apart; answers come from the forwarded address; restrict=on lets exactly these through."""
    router, guest = await net(hostfwd=[parse_hostfwd("tcp:127.0.0.1:0-:70"), parse_hostfwd("udp:127.0.0.1:0-:5353")],
                              restrict=True)
    tcp_port, udp_port = router.hostfwd_ports
    assert tcp_port != 0 and udp_port != 0
    a, b = trio.socket.socket(type=socket.SOCK_DGRAM), trio.socket.socket(type=socket.SOCK_DGRAM)
    with a, b:
        await a.bind(("127.0.0.1", 0))
        await b.bind(("127.0.0.1", 0))
        seen = {}
        for client, text in ((a, b"from a"), (b, b"from b")):
            await client.sendto(text, ("127.0.0.1", udp_port))
            f = await guest.expect(lambda f, text=text: f.udp is not None and f.udp.payload == text)
            assert (f.ip.src, f.ip.dst, f.udp.dst_port) == (GATEWAY, GUEST, 5353) and f.udp.src_port >= 49152
            seen[text] = f.udp.src_port
        assert seen[b"from a"] != seen[b"from b"]
        router.send(udp_from_guest(guest, GATEWAY, 5353, seen[b"from b"], b"to b"))
        router.send(udp_from_guest(guest, GATEWAY, 5353, seen[b"from a"], b"to a"))
        with trio.fail_after(5):
            assert await a.recvfrom(100) == (b"to a", ("127.0.0.1", udp_port))
            assert await b.recvfrom(100) == (b"to b", ("127.0.0.1", udp_port))
        # From another guest port it is no answer: restrict=on drops it rather than relay it out.
        drops = router.events["restricted_drops"]
        router.send(udp_from_guest(guest, GATEWAY, 5354, seen[b"from a"], b"not an answer"))
        assert router.events["restricted_drops"] == drops + 1
        assert router.events["hostfwd_udp_in"] == 2 and router.events["hostfwd_udp_out"] == 2


async def test_hostfwd_to_a_closed_guest_port_resets_the_host_client(net) -> None:  # noqa: ANN001
    router, guest = await net(hostfwd=[parse_hostfwd("tcp:127.0.0.1:0-:71")])
    host = await trio.open_tcp_stream("127.0.0.1", router.hostfwd_ports[0])
    with trio.fail_after(5):
        try:
            assert await host.receive_some(10) == b""
        except trio.BrokenResourceError:
            pass  # ECONNRESET: the guest refused
    await host.aclose()
    await wait_until(lambda: not router.tcp_flows, timeout=5, what="the router to drop its TCP flows")


# ------------------------------------------------------------------------------------ quiet


class StepCounter(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps: list[str] = []

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if "netdev.user" in task.name:
            self.steps.append(task.name)


async def test_an_idle_router_does_not_wake_up(net, nursery: trio.Nursery) -> None:  # noqa: ANN001
    """Connections open, a UDP flow open, nothing happening: no router task runs at all."""
    router, guest = await net()
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []

    async def server() -> None:
        sock, _ = await listener.accept()
        accepted.append(sock)
        await trio.sleep_forever()

    nursery.start_soon(server)
    conn = guest.connect(GATEWAY, listener.getsockname()[1])
    await guest.wait_for(lambda: conn.state == ESTABLISHED and accepted)
    router.send(udp_from_guest(guest, GATEWAY, 5001, free_port(socket.SOCK_DGRAM), b"x"))

    def no_timer_armed() -> bool:  # delayed ACKs and the like: both engines have sent them
        engines = [*guest.conns.values(), *(f.conn for f in router.tcp_flows.values() if f.conn)]
        return all(c.next_deadline() is None for c in engines)

    await wait_until(no_timer_armed, timeout=5, what="every TCP timer (guest and router) to be disarmed")
    await trio.testing.wait_all_tasks_blocked()  # and the router has taken in what they sent
    counter = StepCounter()
    trio.lowlevel.add_instrument(counter)
    try:
        await trio.sleep(0.5)  # the behaviour under test: time passes and no router task runs
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert counter.steps == []
    accepted[0].close()
    listener.close()


async def test_close_releases_every_host_socket() -> None:
    fds = open_fds()
    router = UserBackend(hostfwd=[parse_hostfwd("tcp:127.0.0.1:0-:70")])
    guest = Guest(router)
    guest.listeners[70] = TcpListener((GUEST, 70))  # completes handshakes, never reads
    async with trio.open_nursery() as nursery:
        nursery.start_soon(router.run, guest.deliver)
        await trio.testing.wait_all_tasks_blocked()
        router.send(udp_from_guest(guest, GATEWAY, 5002, free_port(socket.SOCK_DGRAM), b"x"))
        quiet = socket.socket()  # listening, never accepting: the connection stays open
        quiet.bind(("127.0.0.1", 0))
        quiet.listen()
        guest.connect(GATEWAY, quiet.getsockname()[1])
        host = await trio.open_tcp_stream("127.0.0.1", router.hostfwd_ports[0])
        await wait_until(lambda: len(router.tcp_flows) == 2 and guest.listeners[70].pending == 1, timeout=5,
                         what="both TCP flows open and the forwarded connection pending")
        await trio.testing.wait_all_tasks_blocked()
        assert len(router.tcp_flows) == 2 and router.udp_flows
        nursery.cancel_scope.cancel()
    router.close()
    router.close()  # twice is fine
    await host.aclose()
    quiet.close()
    assert open_fds() == fds



# ------------------------------------------------------------------------------------ restrict=on


async def test_restrict_on_keeps_the_guest_inside_the_router(net, nursery: trio.Nursery, tmp_path) -> None:  # noqa: ANN001
    """QEMU's restrict=on: no connection reaches the host (here a listener on its loopback, which
    the gateway address stands for) and no datagram or ping goes out; the router's own DHCP, DNS
    (its hosts table only) and pings of its addresses still answer."""
    hosts = tmp_path / "hosts"
    hosts.write_text("10.1.2.3 gopher\n")
    from machine.netdev.user import load_hosts

    router, guest = await net(restrict=True, hosts=load_hosts(str(hosts)))
    accepted: list[object] = []
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    async def server() -> None:
        try:
            sock, _ = await listener.accept()
        except trio.ClosedResourceError:
            return  # the test is over and nobody came
        accepted.append(sock)

    nursery.start_soon(server)
    guest.connect(GATEWAY, port)
    udp_sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_sink.bind(("127.0.0.1", 0))
    udp_sink.setblocking(False)
    router.send(udp_from_guest(guest, GATEWAY, 4000, udp_sink.getsockname()[1], b"out"))
    router.send(build_icmp_echo(guest.mac, GATEWAY_MAC, GUEST, "192.0.2.1", ident=1, seq=1, payload=b"x"))
    await trio.testing.wait_all_tasks_blocked()
    assert accepted == [] and not router.tcp_flows and not router.udp_flows
    with pytest.raises(BlockingIOError):
        udp_sink.recv(100)
    assert router.stats["restricted_drops"] >= 3
    # what the router itself serves
    router.send(build_icmp_echo(guest.mac, GATEWAY_MAC, GUEST, GATEWAY, ident=2, seq=1, payload=b"y"))
    f = await guest.expect(lambda f: f.icmp is not None)
    assert f.icmp is not None and f.icmp.type == _icmp.ECHO_REPLY
    resolver = Resolver(seed=5)
    assert await dns_lookup(router, guest, resolver, "gopher") == ["10.1.2.3"]
    with pytest.raises(DnsError) as e:
        await dns_lookup(router, guest, resolver, "localhost")  # the host's resolver is not asked
    assert e.value.kind == "nxdomain"
    client = DhcpClient(bytes.fromhex(GUEST_MAC.replace(":", "")), seed=2)
    client.start(trio.current_time())
    (out,) = client.datagrams_to_send()
    router.send(build_udp_frame(guest.mac, "ff:ff:ff:ff:ff:ff", "0.0.0.0", "255.255.255.255", 68, 67, out.payload))
    f = await guest.expect(lambda f: f.udp is not None and f.udp.dst_port == 68)
    client.datagram_received(f.udp.payload, trio.current_time())  # type: ignore[union-attr]
    assert client.state == "REQUESTING"
    udp_sink.close()
    listener.close()


async def test_restrict_on_still_forwards_hostfwd_rules(net) -> None:  # noqa: ANN001
    router, guest = await net(restrict=True, hostfwd=[parse_hostfwd("tcp:127.0.0.1:0-:70")])
    guest.listeners[70] = TcpListener((GUEST, 70))
    (port,) = router.hostfwd_ports
    host = await trio.open_tcp_stream("127.0.0.1", port)
    conn = await guest.wait_for(lambda: guest.listeners[70].accept())
    await host.send_all(b"selector\r\n")
    await guest.wait_for(lambda: conn.available >= 10)
    assert conn.receive() == b"selector\r\n"
    await guest.sendall(conn, b"answer")
    guest.flush(conn)
    assert await host.receive_some(100) == b"answer"
    await host.aclose()


def test_restrict_option_words() -> None:
    from machine.netdev.user.options import parse_user_options

    assert parse_user_options("restrict=on").restrict is True
    assert parse_user_options("restrict=yes,hosts=/x").restrict is True
    assert parse_user_options("restrict=off").restrict is False
    assert parse_user_options("").restrict is False
    with pytest.raises(ValueError, match="restrict=maybe: expected on or off"):
        parse_user_options("restrict=maybe")


# ------------------------------------------------------------------ offloads (a virtio-net guest)


class OffloadGuest(Guest):
    """A guest whose card has TSO both ways: it joins its own bursts into TSO frames (NEEDS_CSUM,
    checksum left undone) and takes the router's large segments, cutting them up itself."""

    def __init__(self, router: UserBackend) -> None:
        super().__init__(router)
        self.large_in: list[VnetHdr] = []

    def flush(self, conn: TcpConnection) -> None:
        for seg, count in coalesce(conn.segments_to_send(trio.current_time()), conn.send_mss):
            if count == 1:
                self.send_tcp(seg, conn.remote[0])
                continue
            packet = build_ipv4_tcp(seg, self.ip, conn.remote[0])
            frame = bytes.fromhex(GATEWAY_MAC.replace(":", "") + self.mac.replace(":", "")) + b"\x08\x00"
            self.router.send_gso(gso_header(packet, conn.send_mss), frame + partial_checksum(packet))

    def deliver_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        self.large_in.append(hdr)
        for piece in segment(hdr, frame):  # checks the headers; the pieces' checksums are verified
            self.deliver(piece)


async def test_large_segments_both_ways_through_the_tcp_relay(nursery: trio.Nursery) -> None:
    router = UserBackend()
    guest = OffloadGuest(router)
    nursery.start_soon(router.run, guest.deliver, guest.deliver_gso)
    nursery.start_soon(guest.timers)
    await trio.testing.wait_all_tasks_blocked()
    up, down = secrets.token_bytes(1 << 20), secrets.token_bytes(1 << 20)
    got_up = bytearray()
    done = trio.Event()
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    listener.listen()

    async def server() -> None:
        sock, _ = await listener.accept()
        with sock:
            while data := await sock.recv(65536):
                got_up.extend(data)
            view = memoryview(down)
            while view:
                view = view[await sock.send(view):]
        done.set()

    nursery.start_soon(server)
    conn = guest.connect(GATEWAY, listener.getsockname()[1])
    await guest.wait_for(lambda: conn.state == ESTABLISHED)
    await guest.sendall(conn, up)
    conn.close(trio.current_time())
    guest.flush(conn)
    received = await guest.recv_until_eof(conn)
    with trio.fail_after(5):
        await done.wait()
    assert bytes(got_up) == up and received == down
    assert router.stats["tcp_large_segments_in"] > 0  # the guest's TSO frames went in whole
    assert router.stats["tcp_large_segments_out"] > 0 and guest.large_in
    assert all(h.gso_size == conn.send_mss and h.needs_csum for h in guest.large_in)
    assert "tx_bad_offload" not in router.stats
    listener.close()


async def test_a_malformed_tso_frame_is_counted_not_fatal(net) -> None:  # noqa: ANN001
    router, _guest = await net()
    router.send_gso(VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, 54, 0, 34, 16), bytes(100))
    router.send_gso(VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.UDP, 42, 1000, 34, 6), bytes(100))
    assert router.stats["tx_bad_offload"] == 2
