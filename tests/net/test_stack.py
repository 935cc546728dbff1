"""net/stack.py without any I/O: scapy-built frames in, frames out, a virtual clock.

Each test plays the other hosts on the segment by hand: the host 10.0.2.2 (gateway), a DNS
server 10.0.2.3 and a DHCP server, so every exchange is checked byte-level with scapy."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import trio
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from euralios.boot import System, boot, program_source
from euralios.pytest_plugin import wait_until
from euralios.std import SyscallError, abi
from euralios.std.fs import open_handle, take_bytes
from machine.netdev.memory import MemoryBackend
from net.config import parse_config
from net.neighbours import ARP_RETRY, ARP_TTL
from net.sockets import StackError
from net.stack import EPHEMERAL_FIRST, EPHEMERAL_LAST, NetStack
from proto.tcp import ESTABLISHED, TcpConnection, TcpListener, reset_for
from proto.wire.frame import build_arp, build_icmp_echo, build_tcp_frame, decode_frame

MAC = "52:54:00:12:34:56"
HOST_MAC = "02:00:00:00:00:02"
DNS_MAC = "02:00:00:00:00:03"
GUEST, HOST, DNS_IP = "10.0.2.15", "10.0.2.2", "10.0.2.3"
CONFIG = "10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3"


def make(**kw: object) -> NetStack:
    return NetStack(MAC, config=parse_config(CONFIG), seed=7, **kw)  # type: ignore[arg-type]


def out(stack: NetStack, now: float = 0.0) -> list[Ether]:
    return [Ether(f) for f in stack.frames_to_send(now)]


def arp_reply(ip: str, mac: str, to_ip: str = GUEST) -> bytes:
    return bytes(Ether(dst=MAC, src=mac) / ARP(op=2, hwsrc=mac, psrc=ip, hwdst=MAC, pdst=to_ip))


def learn(stack: NetStack, ip: str = HOST, mac: str = HOST_MAC, now: float = 0.0) -> None:
    """The peer asks for us (as a host pinging us first does): we answer and learn it."""
    stack.frame_received(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=mac) / ARP(op=1, hwsrc=mac, psrc=ip, pdst=GUEST)),
                         now)
    out(stack, now)


def from_host(payload: object, src: str = HOST, mac: str = HOST_MAC) -> bytes:
    return bytes(Ether(dst=MAC, src=mac) / IP(src=src, dst=GUEST) / payload)


# ------------------------------------------------------------------------------------------ config

def test_parse_config_and_its_errors() -> None:
    cfg = parse_config("10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3+1.1.1.1,mtu=1400")
    assert (cfg.address, cfg.prefix, cfg.gateway, cfg.dns, cfg.mtu) == ("10.0.2.15", 24, "10.0.2.2",
                                                                         ["10.0.2.3", "1.1.1.1"], 1400)
    assert cfg.describe() == "10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3 1.1.1.1"
    for bad, msg in (("10.0.2/24", "not an IPv4"), ("10.0.2.15/24,gw=8.8.8.8", "not in"),
                     ("10.0.2.15/24,foo=1", "unknown network setting"), ("10.0.2.15,dns=x", "not an IPv4"),
                     ("", "empty")):
        with pytest.raises(ValueError, match=msg):
            parse_config(bad)


# ------------------------------------------------------------------------------------------ ARP

def test_answers_arp_for_its_address_and_learns_the_asker() -> None:
    s = make()
    s.frame_received(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=HOST_MAC)
                           / ARP(op=1, hwsrc=HOST_MAC, psrc=HOST, pdst=GUEST)), 0.0)
    (reply,) = out(s)
    assert reply.dst == HOST_MAC and reply[ARP].op == 2
    assert (reply[ARP].hwsrc, reply[ARP].psrc, reply[ARP].pdst) == (MAC, GUEST, HOST)
    assert s.arp_table()[0]["address"] == HOST and s.arp_table()[0]["mac"] == HOST_MAC
    # A request for somebody else is neither answered nor learned from.
    s.frame_received(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=DNS_MAC)
                           / ARP(op=1, hwsrc=DNS_MAC, psrc=DNS_IP, pdst="10.0.2.99")), 0.1)
    assert out(s) == [] and DNS_IP not in s.arp


def test_arp_resolves_then_sends_the_queued_syn() -> None:
    s = make()
    conn = s.tcp_connect(HOST, 70, 0.0)
    (req,) = out(s)
    assert req.dst == "ff:ff:ff:ff:ff:ff" and req[ARP].op == 1 and req[ARP].pdst == HOST and req[ARP].psrc == GUEST
    s.frame_received(arp_reply(HOST, HOST_MAC), 0.01)
    (syn,) = out(s, 0.01)
    assert syn.dst == HOST_MAC and syn[TCP].flags == "S" and syn[IP].src == GUEST and syn[TCP].dport == 70
    assert syn[TCP].sport == conn.local[1] and EPHEMERAL_FIRST <= conn.local[1] <= EPHEMERAL_LAST


def test_arp_retries_then_fails_the_connection_as_unreachable() -> None:
    s = make()
    conn = s.tcp_connect("10.0.2.9", 80, 0.0)
    assert len(out(s)) == 1
    assert s.next_deadline() == pytest.approx(ARP_RETRY)
    s.poll(ARP_RETRY)
    assert [f[ARP].pdst for f in out(s, ARP_RETRY)] == ["10.0.2.9"]
    s.poll(2 * ARP_RETRY)
    assert len(out(s, 2 * ARP_RETRY)) == 1
    s.poll(3 * ARP_RETRY)
    assert conn.error == "host unreachable"
    assert s.counters["arp_requests_sent"] == 3 and s.counters["arp_failures"] == 1
    assert s.counters["drop_arp_failed"] >= 1
    assert out(s, 3 * ARP_RETRY) == []


def test_arp_entries_expire_and_are_refreshed_while_in_use() -> None:
    s = make()
    learn(s)
    sock = s.udp_open()
    s.udp_send(sock, b"x", ARP_TTL - 4, dst=(HOST, 9))
    frames = out(s, ARP_TTL - 4)
    # Still used (no stall) and re-asked by unicast before it expires.
    assert [f.dst for f in frames] == [HOST_MAC, HOST_MAC]
    assert frames[0][ARP].op == 1 and frames[1][UDP].dport == 9
    # Nobody answered: past the TTL the entry is gone and the next packet waits for a broadcast ask.
    s.udp_send(sock, b"y", ARP_TTL + 1, dst=(HOST, 9))
    (ask,) = out(s, ARP_TTL + 1)
    assert ask.dst == "ff:ff:ff:ff:ff:ff" and ask[ARP].pdst == HOST


# ------------------------------------------------------------------------------------------ IPv4, ICMP

def test_bad_ip_header_checksum_is_dropped_and_counted() -> None:
    s = make()
    learn(s)
    frame = bytearray(from_host(ICMP(type=8, id=1, seq=1) / b"hi"))
    frame[14 + 10] ^= 0xFF  # the header checksum
    s.frame_received(bytes(frame), 0.0)
    assert out(s) == []
    assert s.counters["drop_ip_checksum"] == 1 and s.counters["echo_requests_in"] == 0
    # A TCP segment whose TCP checksum is wrong is counted apart.
    seg = bytearray(from_host(TCP(sport=1, dport=2, flags="S")))
    seg[14 + 20 + 16] ^= 0xFF
    s.frame_received(bytes(seg), 0.0)
    assert s.counters["drop_l4_checksum"] == 1 and out(s) == []


def test_answers_ping_but_not_broadcast_ping() -> None:
    s = make()
    learn(s)
    s.frame_received(from_host(ICMP(type=8, id=0x1234, seq=7) / Raw(b"abcdefgh" * 7)), 0.0)
    (reply,) = out(s)
    assert reply.dst == HOST_MAC and reply[IP].src == GUEST and reply[IP].dst == HOST
    assert (reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq) == (0, 0x1234, 7)
    assert bytes(reply[ICMP].payload) == b"abcdefgh" * 7
    s.frame_received(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=HOST_MAC) / IP(src=HOST, dst="10.0.2.255")
                           / ICMP(type=8, id=1, seq=1)), 0.1)
    assert out(s) == []
    assert s.counters["echo_replies_sent"] == 1 and s.counters["echo_requests_in"] == 2


def test_frames_for_others_and_other_protocols_are_counted_not_answered() -> None:
    s = make()
    learn(s)
    s.frame_received(bytes(Ether(dst=MAC, src=HOST_MAC) / IP(src=HOST, dst="10.0.2.77") / ICMP()), 0.0)
    s.frame_received(bytes(Ether(dst="33:33:00:00:00:01", src=HOST_MAC, type=0x86DD) / Raw(b"\x60" + bytes(60))), 0.0)
    s.frame_received(b"\x00" * 10, 0.0)
    s.frame_received(from_host(IP(proto=47) / Raw(b"gre")), 0.0)
    assert out(s) == []
    c = s.counters
    assert (c["drop_not_for_us"], c["drop_bad_frame"]) == (2, 1)


def test_closed_udp_port_answers_port_unreachable_rate_limited() -> None:
    s = make()
    learn(s)
    probe = from_host(UDP(sport=5555, dport=4444) / b"hello?")
    s.frame_received(probe, 0.0)
    (err,) = out(s)
    assert (err[ICMP].type, err[ICMP].code) == (3, 3) and err[IP].dst == HOST
    quoted = bytes(err[ICMP].payload)
    assert quoted == probe[14:14 + 28]  # the IP header and the first 8 bytes of the datagram
    for _ in range(50):
        s.frame_received(probe, 0.5)
    assert len(out(s, 0.5)) == 19  # 20 per second
    assert s.counters["drop_icmp_rate"] == 31 and s.counters["drop_udp_no_port"] == 51


def test_udp_socket_send_and_receive_and_error_from_icmp() -> None:
    s = make()
    learn(s)
    sock = s.udp_open(0, (HOST, 7))
    s.udp_send(sock, b"ping", 0.0)
    (f,) = out(s)
    assert f[UDP].sport == sock.port and f[UDP].dport == 7 and bytes(f[UDP].payload) == b"ping"
    s.frame_received(from_host(UDP(sport=7, dport=sock.port) / b"pong"), 0.1)
    s.frame_received(from_host(UDP(sport=8, dport=sock.port) / b"stranger"), 0.1)  # not our peer
    assert list(sock.queue) == [(HOST, 7, b"pong")]
    out(s)
    s.frame_received(from_host(ICMP(type=3, code=3) / bytes(f[IP])[:28]), 0.2)
    assert sock.error == "refused"
    with pytest.raises(StackError, match="exceeds the MTU"):
        s.udp_send(sock, bytes(1473), 0.3)


def test_our_own_ping_gets_its_reply_and_unreachable_errors() -> None:
    s = make()
    learn(s)
    p = s.ping_open()
    s.ping_send(p, HOST, 1, b"x" * 56, 0.0)
    (req,) = out(s)
    assert req[ICMP].type == 8 and req[ICMP].id == p.ident and req[ICMP].seq == 1
    s.frame_received(from_host(ICMP(type=0, id=p.ident, seq=1) / Raw(b"x" * 56)), 0.004)
    (reply,) = p.replies
    assert (reply.seq, reply.source, reply.size, reply.time) == (1, HOST, 64, 0.004)
    s.ping_send(p, "10.0.2.9", 2, b"", 1.0)  # nobody has that address
    for t in (2.0, 3.0, 4.0):
        s.poll(t)
    assert list(p.errors) == [(2, "unreachable")]
    s.configure(None)
    with pytest.raises(StackError):
        s.ping_send(p, HOST, 3, b"", 5.0)


# ------------------------------------------------------------------------------------------ TCP

def test_closed_tcp_port_answers_rst_and_a_refused_connect_fails() -> None:
    s = make()
    learn(s)
    s.frame_received(from_host(TCP(sport=40000, dport=23, flags="S", seq=1000)), 0.0)
    (rst,) = out(s)
    assert rst[TCP].flags == "RA" and rst[TCP].ack == 1001 and rst[TCP].dport == 40000
    conn = s.tcp_connect(HOST, 23, 0.1)
    (syn,) = out(s, 0.1)
    s.frame_received(from_host(TCP(sport=23, dport=syn[TCP].sport, flags="RA", seq=0, ack=syn[TCP].seq + 1)), 0.2)
    assert conn.error == "connection refused"
    assert s.counters["tcp_resets_sent"] == 1


def test_icmp_unreachable_fails_a_connecting_socket() -> None:
    s = make()
    learn(s)
    conn = s.tcp_connect("93.184.216.34", 80, 0.0)  # off-link: through the gateway's MAC
    (syn,) = out(s)
    assert syn.dst == HOST_MAC and syn[IP].dst == "93.184.216.34"
    s.frame_received(from_host(ICMP(type=3, code=1) / bytes(syn[IP])[:28]), 0.1)
    assert conn.error == "host unreachable"


def test_listener_handshake_and_data_over_loopback() -> None:
    """A listener and a client on the same host: frames never leave the stack."""
    s = make()
    listener = s.tcp_listen(7000)
    client = s.tcp_connect(GUEST, 7000, 0.0)
    assert out(s) == []  # looped back internally
    server = s.tcp_accept(listener)
    assert server is not None and client.state == ESTABLISHED == server.state
    client.send(b"hello")
    out(s, 0.01)
    assert server.receive() == b"hello"
    s.tcp_release(client, 0.02)
    out(s, 0.02)
    assert server.at_eof
    with pytest.raises(StackError, match="already listening"):
        s.tcp_listen(7000)
    assert s.counters["loopback"] > 0


def test_listener_with_remote_peer_then_unlisten_resets_unaccepted() -> None:
    s = make()
    learn(s)
    listener = s.tcp_listen(8080, backlog=2)
    s.frame_received(from_host(TCP(sport=40001, dport=8080, flags="S", seq=500, options=[("MSS", 1460)])), 0.0)
    (synack,) = out(s)
    assert synack[TCP].flags == "SA" and synack[TCP].ack == 501 and dict(synack[TCP].options)["MSS"] == 1460
    s.frame_received(from_host(TCP(sport=40001, dport=8080, flags="A", seq=501, ack=synack[TCP].seq + 1)), 0.01)
    s.tcp_unlisten(listener, 0.02)
    (rst,) = out(s, 0.02)
    assert rst[TCP].flags & 0x04 and s.tcp_accept(listener) is None


def test_many_connections_only_changed_ones_work_and_timers_match_a_full_scan() -> None:
    """The stack asks only connections that changed for output and keeps their deadlines in a
    heap: with 30 loopback connections driven at random on a virtual clock, next_deadline is
    always what a scan of every connection gives, every byte arrives, and once everything is
    closed (TIME-WAIT included) the stack holds no connection."""
    import random

    rng = random.Random(5)
    s = make(tcp_options={"msl": 1.0})
    listener = s.tcp_listen(7100, backlog=64)
    pairs = []
    for _ in range(30):
        client = s.tcp_connect(GUEST, 7100, 0.0)
        out(s)
        server = s.tcp_accept(listener)
        assert server is not None
        pairs.append((client, server, bytearray(), bytearray()))
    asked: list[TcpConnection] = []
    for conn in s.connections.values():
        def counting(now: float, conn: TcpConnection = conn, real=conn.segments_to_send) -> list:
            asked.append(conn)
            return real(now)
        conn.segments_to_send = counting  # type: ignore[method-assign]

    def full_scan() -> float | None:
        ds = [d for c in s.connections.values() if (d := c.next_deadline()) is not None]
        return min(ds) if ds else None

    now = 0.0
    out(s, now)
    asked.clear()
    client, server, sent, got = pairs[3]
    client.send(b"only this one")
    out(s, now)
    assert set(asked) <= {client, server} and client in asked  # not the 58 others
    sent += b"only this one"
    for step in range(400):
        now += rng.choice((0.0, 0.001, 0.05))
        client, server, sent, got = rng.choice(pairs)
        action = rng.random()
        if action < 0.5 and client.state == ESTABLISHED:
            data = rng.randbytes(rng.randrange(1, 4000))
            n = client.send(data)
            sent += data[:n]
        elif action < 0.8:
            got += server.receive()
        d = s.next_deadline()
        assert d == full_scan(), step
        if d is not None and rng.random() < 0.3:
            now = max(now, d)
            s.poll(now)
        out(s, now)
        assert s.next_deadline() == full_scan(), step
    for client, *_ in pairs:
        s.tcp_release(client, now)
    for _ in range(200):
        out(s, now)
        for _client, server, _sent, got in pairs:
            got += server.receive()
            if server.at_eof and server.state != "CLOSED":
                s.tcp_release(server, now)
        d = s.next_deadline()
        assert d == full_scan()
        if d is None:
            break
        now = max(now, d)
        s.poll(now)
    out(s, now)
    assert all(bytes(got) == bytes(sent) for _, _, sent, got in pairs)
    assert s.connections == {} and s.next_deadline() is None
    assert s.tcp_counters()["connections_finished"] == 60


def test_interface_config_cache_follows_changes() -> None:
    cfg = parse_config("10.0.2.15/24,gw=10.0.2.2")
    assert cfg.on_link("10.0.2.9") and not cfg.on_link("10.0.3.9") and cfg.broadcast == "10.0.2.255"
    cfg.address, cfg.prefix = "10.0.3.15", 16
    assert cfg.on_link("10.0.3.9") and cfg.on_link("10.0.2.9") and cfg.broadcast == "10.0.255.255"
    assert str(cfg.network) == "10.0.0.0/16" and cfg == parse_config("10.0.3.15/16,gw=10.0.2.2")


def test_frame_batches_for_the_nic_round_trip() -> None:
    from euralios.std.protocols.nic import pack_frames, split_frames

    frames = [bytes([i]) * (60 + 37 * i) for i in range(40)]
    batches = pack_frames(frames, 4096)
    assert all(len(b) <= 4096 for b, _ in batches) and sum(n for _, n in batches) == 40
    assert [f for b, _ in batches for f in split_frames(b)] == frames
    assert pack_frames([], 4096) == []
    assert split_frames(b"\x05\x00abc") == []  # a frame cut short is dropped


# ------------------------------------------------------------------------------------------ DHCP

def dhcp_reply(request: Ether, mtype: str, yiaddr: str = GUEST) -> bytes:
    bootp = request[BOOTP]
    opts = [("message-type", mtype), ("server_id", HOST), ("subnet_mask", "255.255.255.0"), ("router", HOST),
            ("name_server", DNS_IP), ("lease_time", 3600), "end"]
    return bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=HOST_MAC) / IP(src=HOST, dst="255.255.255.255")
                 / UDP(sport=67, dport=68) / BOOTP(op=2, xid=bootp.xid, yiaddr=yiaddr, chaddr=bootp.chaddr)
                 / DHCP(options=opts))


def test_dhcp_configures_the_interface() -> None:
    s = NetStack(MAC, dhcp=True, seed=3)
    assert s.next_deadline() == 0.0 and not s.configured
    s.poll(0.0)
    (discover,) = out(s)
    assert discover.dst == "ff:ff:ff:ff:ff:ff" and discover[IP].src == "0.0.0.0"
    assert discover[IP].dst == "255.255.255.255" and (discover[UDP].sport, discover[UDP].dport) == (68, 67)
    s.frame_received(dhcp_reply(discover, "offer"), 0.1)
    (request,) = out(s, 0.1)
    opts = {o[0]: o[1] for o in request[DHCP].options if isinstance(o, tuple)}
    assert opts["message-type"] == 3 and opts["requested_addr"] == GUEST
    s.frame_received(dhcp_reply(request, "ack"), 0.2)
    assert s.config is not None and s.config.describe() == "10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3"
    assert s.config.source == "dhcp" and ("configured", s.config) in s.events
    assert s.next_deadline() == pytest.approx(0.2 + 1800)  # renewal at T1


def test_dhcp_falls_back_to_static_when_nobody_answers() -> None:
    s = NetStack(MAC, dhcp=True, fallback=parse_config("10.0.2.15/24,gw=10.0.2.2"), dhcp_timeout=10, seed=3)
    t = 0.0
    while not s.configured and t < 60:
        s.poll(t)
        out(s, t)
        t = s.next_deadline() or t + 1
    assert s.config is not None and s.config.source == "fallback" and 10 <= t <= 20
    assert s.events[-1] == ("fallback", s.config)


def test_dhcp_without_fallback_says_it_is_still_waiting() -> None:
    s = NetStack(MAC, dhcp=True, dhcp_timeout=5, seed=3)
    for t in range(0, 8):
        s.poll(float(t))
    assert ("dhcp-waiting", None) in s.events and not s.configured


# ------------------------------------------------------------------------------------------ DNS

def dns_answer(query: Ether, *records: DNSRR, rcode: int = 0) -> bytes:
    q = query[DNS]
    return bytes(Ether(dst=MAC, src=DNS_MAC) / IP(src=DNS_IP, dst=GUEST)
                 / UDP(sport=53, dport=query[UDP].sport)
                 / DNS(id=q.id, qr=1, rd=1, ra=1, rcode=rcode, qd=q.qd, an=list(records)))


def test_dns_cname_chain_cache_nxdomain_and_timeout() -> None:
    s = make()
    learn(s, DNS_IP, DNS_MAC)
    lk = s.resolve("www.example.test", 0.0)
    assert not lk.done
    (q,) = out(s)
    assert q[IP].dst == DNS_IP and q[UDP].dport == 53 and q[DNSQR].qname == b"www.example.test."
    s.frame_received(dns_answer(q, DNSRR(rrname="www.example.test.", type="CNAME", rdata="host.example.test.", ttl=60),
                                DNSRR(rrname="host.example.test.", type="A", rdata="10.0.2.50", ttl=30)), 0.01)
    assert lk.done and lk.addresses == ["10.0.2.50"] and lk.canonical == "host.example.test" and lk.error is None
    assert s.udp == {}  # the lookup's socket is gone
    again = s.resolve("WWW.example.test.", 10.0)
    assert again.done and again.addresses == ["10.0.2.50"] and out(s, 10.0) == []  # cached
    stale = s.resolve("www.example.test", 31.0)
    assert not stale.done  # the A record's TTL has passed: asked again
    (q,) = out(s, 31.0)
    s.frame_received(dns_answer(q, DNSRR(rrname="www.example.test.", type="A", rdata="10.0.2.51", ttl=30)), 31.01)
    assert stale.addresses == ["10.0.2.51"] and stale.canonical == "www.example.test"

    nx = s.resolve("nope.example.test", 40.0)
    (q,) = out(s, 40.0)
    s.frame_received(dns_answer(q, rcode=3), 40.01)
    assert nx.done and nx.error == "nxdomain"

    slow = s.resolve("slow.example.test", 50.0)
    sent = sum(UDP in f for f in out(s, 50.0))
    t = 50.0
    while not slow.done:
        t = s.next_deadline() or t + 1
        s.poll(t)
        sent += sum(UDP in f for f in out(s, t))
    assert slow.error == "timeout" and sent == 4 and t == pytest.approx(56.0)
    assert s.resolve("10.1.2.3", 60.0).addresses == ["10.1.2.3"]


def test_dns_without_servers_fails_at_once() -> None:
    s = NetStack(MAC, config=parse_config("10.0.2.15/24"), seed=1)
    lk = s.resolve("example.test", 0.0)
    assert lk.done and lk.error == "no-server"
    assert s.resolve("bad..name", 0.0).error == "invalid"


def test_stats_is_json_ready() -> None:
    s = make()
    learn(s)
    conn = s.tcp_connect(HOST, 70, 0.0)
    out(s)
    data = json.loads(json.dumps(s.stats()))
    assert data["connections"][0]["local"] == f"10.0.2.15:{conn.local[1]}" and data["config"]["gateway"] == HOST
    assert data["counters"]["tcp_out"] == 1 and "retransmits" in data["tcp"]


def test_dns_answer_with_ttl_zero_is_used_not_cached() -> None:
    """dnsmasq's local records come with TTL 0: good for this answer, not for the cache."""
    s = make()
    learn(s, DNS_IP, DNS_MAC)
    lk = s.resolve("files.test", 0.0)
    (q,) = out(s)
    s.frame_received(dns_answer(q, DNSRR(rrname="files.test.", type="A", rdata="10.0.2.2", ttl=0)), 0.01)
    assert lk.done and lk.addresses == ["10.0.2.2"]
    assert not s.resolve("files.test", 0.02).done  # asked again


# ==================================================================================================
# The stack as a program (net/server.py, /tcp) on an in-memory wire. Not sans-IO: a small system
# boots with pci, rtl8139 and tcp, and `Peer` plays the host 10.0.2.2 from the test process: ARP,
# ping, a DNS server (host.test -> 10.0.2.2, NXDOMAIN otherwise) and a TCP echo server on port 70
# (proto/tcp's engine; RST on other ports). Real-Linux peers are tests/net/test_realpeer.py.
# ==================================================================================================

class Peer:
    def __init__(self) -> None:
        self.backend = MemoryBackend(keep=False, on_send=self.on_send)
        self.listener = TcpListener((HOST, 70), isn=lambda: 5000, ack_delay=0)
        self.conns: dict[int, TcpConnection] = {}
        self.syn_ports: list[int] = []

    def on_send(self, data: bytes) -> None:
        # Answer after the guest's transmit has returned (as a wire would), never inside it.
        trio.lowlevel.current_trio_token().run_sync_soon(self.answer, bytes(data))

    def put(self, frame: bytes) -> None:
        self.backend.inject(frame)

    def answer(self, data: bytes) -> None:
        now = trio.current_time()
        f = decode_frame(data)
        if f.arp is not None and f.arp.op == 1 and f.arp.target_ip == HOST:
            self.put(build_arp(2, HOST_MAC, HOST, f.arp.sender_ip, f.arp.sender_mac))
            return
        if f.ip is None or f.ip.dst != HOST:
            return
        if f.icmp is not None and f.icmp.type == 8:
            self.put(build_icmp_echo(HOST_MAC, MAC, HOST, GUEST, f.icmp.ident, f.icmp.seq, f.icmp.payload,
                                     reply=True))
        elif f.udp is not None and f.udp.dst_port == 53:
            q = DNS(f.udp.payload)
            name = q.qd[0].qname
            ans = [DNSRR(rrname=name, type="A", rdata=HOST, ttl=60)] if name == b"host.test." else []
            reply = DNS(id=q.id, qr=1, rd=1, ra=1, rcode=0 if ans else 3, qd=q.qd, an=ans)
            self.put(bytes(Ether(dst=MAC, src=HOST_MAC) / IP(src=HOST, dst=GUEST)
                           / UDP(sport=53, dport=f.udp.src_port) / reply))
        elif f.udp is not None:  # no other UDP service: port unreachable, quoting the datagram
            quoted = data[14:14 + 28]
            self.put(bytes(Ether(dst=MAC, src=HOST_MAC) / IP(src=HOST, dst=GUEST) / ICMP(type=3, code=3) / quoted))
        elif f.tcp is not None:
            seg = f.tcp
            conn = self.conns.get(seg.src_port)
            if conn is not None:
                conn.segment_received(seg, now)
            elif seg.dst_port == 70:
                if seg.flags & 0x02:
                    self.syn_ports.append(seg.src_port)
                new = self.listener.segment_received(seg, (GUEST, seg.src_port), now)
                if new is not None:
                    self.conns[seg.src_port] = new
                for _, rst in self.listener.segments_to_send():
                    self.put(build_tcp_frame(HOST_MAC, MAC, HOST, GUEST, rst))
            else:
                rst = reset_for(seg)
                if rst is not None:
                    self.put(build_tcp_frame(HOST_MAC, MAC, HOST, GUEST, rst))
            while self.listener.accept() is not None:
                pass
            for conn in self.conns.values():  # the echo service
                data = conn.receive()
                if data:
                    conn.send(data)
                if conn.at_eof and conn.state == "CLOSE-WAIT":
                    conn.close(now)
                for s in conn.segments_to_send(now):
                    self.put(build_tcp_frame(HOST_MAC, MAC, HOST, GUEST, s))


@pytest.fixture
async def net_system() -> AsyncIterator[tuple[System, Peer]]:
    peer = Peer()
    async with boot(nic=peer.backend) as system:
        system.start_network(["--static", f"{GUEST}/24,gw={HOST},dns={HOST}"])
        await system.wait_for_output(r"\[tcp\] static: 10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.2", 15)
        yield system, peer


async def run_in(system: System, program: Callable[[Any], Awaitable[None]], timeout: float = 20) -> None:
    """Run a test program in the guest; a failed assert inside it is re-raised here."""
    failure: list[BaseException] = []

    async def main(proc: Any) -> int:
        try:
            await program(proc)
        except BaseException as e:  # noqa: BLE001 - carried back to pytest
            failure.append(e)
            return 1
        return 0

    with trio.fail_after(timeout):
        status = await system.run(main)
    if failure:
        raise failure[0]
    assert status == 0, system.output()


async def test_tcp_namespace_paths_and_spec_rows_56_to_58(net_system: tuple[System, Peer]) -> None:
    system, peer = net_system
    ports: list[int] = []

    async def program(proc: Any) -> None:
        sys = proc.sys
        for path in ("/tcp/10.0.2.2", "/tcp/host/abc", "/tcp/listen/0", "/tcp/nothing-here"):  # row 56
            with pytest.raises(SyscallError) as e:
                await open_handle(sys, path, abi.O_WRITE)
            assert e.value.code == 0 and e.value.message.tag == abi.ERROR_INVALID_VALUE, path
        # Row 58: two connections to an address, from consecutive ephemeral ports (from a random
        # start since issue 15 item 11: RFC 6056).
        a = await proc.connect("10.0.2.2", 70)
        b = await proc.connect("10.0.2.2", 70)
        locals_ = [(await s.query())["local"] for s in (a, b)]
        ports.extend(int(x.rpartition(":")[2]) for x in locals_)
        assert all(x.startswith("10.0.2.15:") for x in locals_)
        assert ports[1] == (ports[0] + 1 if ports[0] < 65535 else 49152)
        await a.write_all(b"hello ")
        assert await a.read_exactly(6) == b"hello "
        await a.close()
        await b.close()
        # Row 57 [Q]: a read-only open (tag 16) is answered, with a session that refuses WRITE.
        ro = await proc.open("/tcp/10.0.2.2/70", "r")
        with pytest.raises(SyscallError) as e:
            await ro.write(b"x")
        assert e.value.code == abi.DENIED
        await ro.close()
        with pytest.raises(SyscallError) as e:
            await proc.connect("10.0.2.2", 71)
        assert e.value.code == abi.REFUSED
        with pytest.raises(SyscallError) as e:
            await proc.connect("nosuch.test", 70)
        assert e.value.code == abi.NOTFOUND and e.value.message.d3 == 1  # NXDOMAIN
        info = json.loads(await proc.read_file("/tcp/dns/host.test"))
        assert info == {"name": "host.test", "canonical": "host.test", "addresses": [HOST], "error": None}
        listing = await proc.listdir("/tcp")
        assert listing == ["arp", "dns", "listen", "mux", "ping", "stats", "udp"]

    await run_in(system, program)
    assert peer.syn_ports[:2] == ports


async def test_listen_accept_and_loopback_connection(net_system: tuple[System, Peer]) -> None:
    system, _ = net_system

    async def program(proc: Any) -> None:
        listener = await proc.listen(8000)
        with pytest.raises(SyscallError) as e:
            await proc.listen(8000)
        assert e.value.code == abi.EXISTS

        async def client() -> None:
            s = await proc.connect("127.0.0.1", 8000)
            await s.write_all(b"over loopback")
            await s.close()

        await proc.spawn_thread(client)
        conn = await listener.accept()
        assert await conn.read_all() == b"over loopback"
        await conn.close()
        await listener.close()

    await run_in(system, program)


async def test_ping_and_arp_programs(net_system: tuple[System, Peer]) -> None:
    system, _ = net_system
    assert await system.run(program_source("programs/ping.py"), ["ping", HOST, "-c", "2", "-i", "0.05"]) == 0
    out_ = system.output()
    assert "PING 10.0.2.2 (10.0.2.2) 56(84) bytes of data." in out_
    assert "64 bytes from 10.0.2.2: icmp_seq=1 ttl=64 time=" in out_ and "icmp_seq=2" in out_
    assert "2 packets transmitted, 2 received, 0% packet loss" in out_ and "rtt min/avg/max" in out_
    assert await system.run(program_source("programs/arp.py"), ["arp"]) == 0
    assert "10.0.2.2        02:00:00:00:00:02   reachable" in system.output()
    assert await system.run(program_source("programs/ping.py"), ["ping", "nosuch.test"]) == 2
    assert "ping: nosuch.test: name not found (NXDOMAIN)" in system.output()
    assert await system.run(program_source("programs/ping.py"), ["ping"]) == 2
    assert "usage: ping HOST" in system.output()


async def test_an_idle_stack_parks_its_timer(net_system: tuple[System, Peer]) -> None:
    """Idle must be idle: with nothing pending the timer thread waits in a receive."""
    system, _ = net_system
    seen: list[dict[str, Any]] = []

    async def program(proc: Any) -> None:
        async def parked() -> dict[str, Any] | None:  # boot's last timers run out, then it parks
            server = json.loads(await proc.read_file("/tcp/stats"))["server"]
            return server if server["timer_parked"] else None

        seen.append(await wait_until(parked, timeout=5, what="the stack's timer to park", sleep=proc.sleep))
        await proc.sleep(0.5)  # the behaviour under test: idle time passes and the timer stays parked
        seen.append(json.loads(await proc.read_file("/tcp/stats"))["server"])

    await run_in(system, program)
    first, second = seen
    assert first["timer_parked"] and second["timer_parked"]
    assert second["timer_wakeups"] == first["timer_wakeups"]


async def test_udp_sessions_and_ping_to_localhost(net_system: tuple[System, Peer]) -> None:
    system, _ = net_system

    async def program(proc: Any) -> None:
        # A DNS query by hand over a /tcp/udp session: one datagram each way.
        async with await proc.open("/tcp/udp/10.0.2.2:53", "r+") as udp:
            await udp.write(bytes(DNS(id=77, rd=1, qd=[DNSQR(qname="host.test")])))
            reply = DNS(await read_datagram(proc, udp))
            assert reply.id == 77 and reply.an[0].rdata == HOST
        async with await proc.open("/tcp/udp/10.0.2.2:9", "r+") as closed:
            await closed.write(b"anyone?")
            with pytest.raises(SyscallError) as e:
                await read_datagram(proc, closed)
            assert e.value.code == abi.REFUSED  # the peer's ICMP port unreachable

    await run_in(system, program)
    assert await system.run(program_source("programs/ping.py"), ["ping", "localhost", "-c", "1"]) == 0
    assert "64 bytes from 127.0.0.1: icmp_seq=1" in system.output()


async def read_datagram(proc: Any, f: Any) -> bytes:
    """One datagram from a UDP session (READ(0, max) -> DATA)."""
    return await take_bytes(proc.sys, await proc.sys.rcall(f.handle, abi.READ, 0, 2048))


async def test_mux_keeps_more_connections_than_a_process_has_threads(net_system: tuple[System, Peer]) -> None:
    """/tcp/mux: 80 echo connections on one session (a /tcp/HOST:PORT session costs the stack a
    thread, and a process has 64), driven by poll; then a refused connect, loopback
    listen/accept with EOF, a bad socket id and a poll that times out."""
    from euralios.std.net import ACCEPTABLE, ERROR, READABLE, WRITABLE

    system, _ = net_system
    n = 80

    async def program(proc: Any) -> None:
        mux = await proc.mux()
        socks = [await mux.connect(HOST, 70) for _ in range(n)]
        assert len(set(socks)) == n
        pending = {s: f"hello {s}\n".encode() for s in socks}
        echoed = {s: b"" for s in socks}
        for _ in range(2000):
            if all(echoed[s] == pending[s] for s in socks):
                break
            for sid, ev in await mux.poll(5):
                assert not ev & ERROR, (sid, ev)
                if ev & WRITABLE:
                    assert await mux.send(sid, pending[sid]) == len(pending[sid])
                    await mux.watch(sid, READABLE | ERROR)
                if ev & READABLE:
                    echoed[sid] += await mux.recv(sid) or b""
        assert echoed == pending
        stats = json.loads(await proc.read_file("/tcp/stats"))
        assert sum(c["state"] == ESTABLISHED for c in stats["connections"]) >= n
        for s in socks:
            await mux.shut(s)
        assert await mux.poll(0) == []
        # A refused connection polls ERROR; recv says why.
        bad = await mux.connect(HOST, 71)
        (sid, ev), = await mux.poll(5)
        assert sid == bad and ev & ERROR
        with pytest.raises(SyscallError) as e:
            await mux.recv(bad)
        assert e.value.code == abi.REFUSED
        await mux.shut(bad)
        # Listen, connect over loopback, accept; data and EOF both ways.
        lid = await mux.listen(8100)
        cid = await mux.connect("127.0.0.1", 8100)
        await mux.watch(cid, ERROR)
        assert await mux.poll(5) == [(lid, ACCEPTABLE)]
        aid = await mux.accept(lid)
        assert aid is not None and await mux.accept(lid) is None
        assert await mux.send(cid, b"ping") == 4
        await mux.shut(cid)
        got = b""
        while True:
            await mux.poll(5)
            data = await mux.recv(aid)
            if data == b"":
                break
            got += data or b""
        assert got == b"ping"
        with pytest.raises(SyscallError) as e:
            await mux.recv(9999)
        assert e.value.code == abi.INVALID_HANDLE
        await mux.watch(aid, 0)
        t0 = proc.now()
        assert await mux.poll(0.1) == []
        assert proc.now() - t0 >= 0.09
        await mux.close()  # CLOSE is sent without waiting for an answer: the stack follows soon

        async def listener_gone() -> bool:
            return 8100 not in json.loads(await proc.read_file("/tcp/stats"))["listeners"]

        await wait_until(listener_gone, timeout=1, what="the stack to drop listener 8100", sleep=proc.sleep)

    await run_in(system, program, timeout=60)
