"""The host's IP layer as one sans-IO object: Ethernet in, Ethernet out, time passed in.

`NetStack` is everything between the NIC and the sockets, with no I/O and no clock of its own,
so the same code runs inside net/server.py (the /tcp program) and in tests that drive it with
scapy-built frames and a virtual clock. The I/O layer's loop:

    stack.frame_received(frame, now)           # every frame the NIC hands us
    stack.tcp_connect(...) / udp_send(...) ... # socket calls from applications
    stack.poll(now)                            # when now >= stack.next_deadline()
    for frame in stack.frames_to_send(now): nic.write(frame)   # after *any* of the above

What it does, and the choices made:

* One Ethernet interface (MAC, IPv4 address/prefix, gateway, DNS servers, MTU 1500), set
  statically (`IfConfig`, `parse_config("10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3")`) or by the
  DHCP client (net/dhcp.py) on UDP 68/67, with an optional static fallback.
* ARP (RFC 826): a cache whose entries live ARP_TTL seconds (refreshed by a unicast request a
  few seconds before they expire, so a busy connection never stalls on re-resolution); packets
  for an unresolved next hop wait in a bounded per-hop queue while the request is retried
  (ARP_TRIES, ARP_RETRY apart); when it fails they are dropped and their owners told (a
  connecting TCP socket fails "host unreachable", a ping gets "unreachable"). We answer requests
  for our own address, learning the asker (RFC 826's merge rule).
* IPv4 input checks the header checksum (and the L4 ones); whatever is dropped is counted by
  reason in `counters` ("drop_ip_checksum", "drop_not_for_us", ...). Fragments are not
  reassembled (we send with DF and an MTU of 1500, as do the peers that matter).
* Routing: on-link when the destination is in our prefix, else via the gateway; our own address
  and 127/8 loop back inside the stack (a program can connect to a listener on this host).
* ICMP: echo requests are answered (the host can ping us); echo replies go to ping sockets
  (ping_open/ping_send); closed UDP ports answer port-unreachable (rate-limited); incoming
  destination-unreachable errors fail the matching connecting TCP socket, UDP socket or ping.
* UDP sockets (udp_open/udp_send/udp_close) with bounded receive queues.
* TCP through net/tcp.py: active open, listeners with a backlog, RST for closed ports, orphaned
  connections finished in the background (FIN, FIN-WAIT-2 timeout, TIME-WAIT) after release.
* Ephemeral ports 49152-65535 handed out in order (wrapping), shared by TCP and UDP.
* DNS (net/dns.py) over UDP 53: one lookup per name in flight, retries with a per-try timeout
  rotating over the configured servers, a TTL cache, NXDOMAIN reported as such.

Errors raised to callers are `StackError(kind, detail)`; kinds: "unreachable", "in-use",
"invalid", "not-configured". Connection failures are reported the TCP engine's way
(`conn.error`: "connection refused", "connection reset", "timed out", "host unreachable").
"""

from __future__ import annotations

import heapq
import ipaddress
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields

from net.dhcp import DhcpClient, Lease
from net.dns import DnsError, Resolver, is_address
from proto.tcp import CLOSED, SYN_SENT, TcpConnection, TcpCounters, TcpErrorKind, TcpListener, reset_for
from proto.wire import ChecksumError, DecodeError, bytes_to_ip, mac_to_bytes
from proto.wire import arp as _arp
from proto.wire import ethernet as _eth
from proto.wire import icmp as _icmp
from proto.wire import ipv4 as _ipv4
from proto.wire import udp as _udp
from proto.wire.frame import build_arp, build_tcp_frame, decode_frame
from proto.wire.tcp import TcpSegment

__all__ = [
    "NetStack", "IfConfig", "StackError", "UdpSocket", "PingSocket", "PingReply", "Lookup", "ArpEntry",
    "parse_config", "EPHEMERAL_FIRST", "EPHEMERAL_LAST",
]

BROADCAST_MAC = _eth.BROADCAST
LIMITED_BROADCAST = "255.255.255.255"
EPHEMERAL_FIRST, EPHEMERAL_LAST = 49152, 65535
MTU = 1500
TTL = 64
ARP_TTL = 60.0  # seconds an ARP entry is believed without news from its owner
ARP_REFRESH = 5.0  # re-ask (unicast) this long before an entry in use expires
ARP_RETRY = 1.0  # seconds between requests for an unresolved address
ARP_TRIES = 3  # requests before the address is declared unreachable
ARP_QUEUE = 64  # packets held per unresolved next hop (oldest dropped beyond)
UDP_QUEUE = 256  # datagrams held per UDP socket (newest dropped beyond)
PING_QUEUE = 64
DNS_TRY_TIMEOUT = (1.0, 1.0, 2.0, 2.0)  # per attempt; attempts rotate over the servers
ICMP_ERRORS_PER_SECOND = 20  # port-unreachable rate limit (as Linux limits ICMP errors)
LOOPBACK_ROUNDS = 256  # frames looped back per flush, at most (a loop of our own making)
DHCP_PORT_CLIENT, DHCP_PORT_SERVER = 68, 67
DNS_PORT = 53
HOSTNAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class StackError(Exception):
    """A socket call that cannot be done: `kind` says why, `detail` says it for a human."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


# ---------------------------------------------------------------------------------- configuration

@dataclass
class IfConfig:
    """The interface's IPv4 configuration. `source` says where it came from (static, dhcp,
    fallback) so the I/O layer can say so."""

    address: str
    prefix: int = 24
    gateway: str | None = None
    dns: list[str] = field(default_factory=list)
    mtu: int = MTU
    source: str = "static"

    # The derived values are asked for on every packet (routing, "is it for us?"): building an
    # IPv4Network each time was 6 % of the upload profile, so they are cached, keyed by the
    # fields they come from (the dataclass stays mutable).
    @property
    def network(self) -> ipaddress.IPv4Network:
        return self._derived()[0]

    @property
    def broadcast(self) -> str:
        return self._derived()[1]

    def on_link(self, ip: str) -> bool:
        _, _, links = self._derived()
        hit = links.get(ip)
        if hit is None:
            if len(links) >= 256:
                links.clear()
            hit = links[ip] = ipaddress.IPv4Address(ip) in self.network
        return hit

    def _derived(self) -> tuple[ipaddress.IPv4Network, str, dict[str, bool]]:
        key = (self.address, self.prefix)
        cache = self.__dict__.get("_cache")
        if cache is None or cache[0] != key:
            net = ipaddress.IPv4Network(f"{self.address}/{self.prefix}", strict=False)
            cache = self.__dict__["_cache"] = (key, (net, str(net.broadcast_address), {}))
        return cache[1]

    def describe(self) -> str:
        """`10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3` (what the server prints)."""
        text = f"{self.address}/{self.prefix}"
        if self.gateway:
            text += f" gw {self.gateway}"
        if self.dns:
            text += " dns " + " ".join(self.dns)
        return text

    def as_dict(self) -> dict[str, object]:
        return {"address": self.address, "prefix": self.prefix, "gateway": self.gateway, "dns": list(self.dns),
                "mtu": self.mtu, "source": self.source}


def parse_config(text: str, source: str = "static") -> IfConfig:
    """`10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3[,dns=...][,mtu=1500]` -> IfConfig.

    ValueError with a one-line message on anything else (the command line shows it as is)."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty network configuration (expected ADDRESS/PREFIX[,gw=IP][,dns=IP])")
    try:
        iface = ipaddress.IPv4Interface(parts[0] if "/" in parts[0] else parts[0] + "/24")
    except ValueError:
        raise ValueError(f"{parts[0]!r} is not an IPv4 address/prefix (e.g. 10.0.2.15/24)") from None
    cfg = IfConfig(str(iface.ip), iface.network.prefixlen, source=source)
    for item in parts[1:]:
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        value = value.strip()
        if not sep or not value:
            raise ValueError(f"expected key=value in the network configuration, got {item!r}")
        if key in ("gw", "gateway", "router"):
            cfg.gateway = _check_ip(value, key)
        elif key == "dns":
            cfg.dns.extend(_check_ip(v, key) for v in value.split("+"))
        elif key == "mtu":
            if not value.isdigit() or not 576 <= int(value) <= MTU:
                raise ValueError(f"mtu={value}: must be between 576 and {MTU}")
            cfg.mtu = int(value)
        else:
            raise ValueError(f"unknown network setting {key!r} (use gw=, dns=, mtu=)")
    if cfg.gateway is not None and not cfg.on_link(cfg.gateway):
        raise ValueError(f"gateway {cfg.gateway} is not in {cfg.network}")
    return cfg


def _check_ip(value: str, what: str) -> str:
    if not is_address(value):
        raise ValueError(f"{what}={value}: not an IPv4 address")
    return str(ipaddress.IPv4Address(value))


def is_loopback(ip: str) -> bool:
    return ip.startswith("127.")


# ---------------------------------------------------------------------------------- sockets

@dataclass
class ArpEntry:
    """A resolved neighbour. `refreshing` is when we last re-asked (unicast) before expiry."""

    mac: str
    updated: float
    refreshing: float | None = None


@dataclass
class _Queued:
    """A packet waiting for its next hop's MAC: built into a frame once it is known."""

    src: str
    dst: str
    proto: int
    payload: bytes | TcpSegment
    owner: object = None  # told when resolution fails (TcpConnection, PingSocket, UdpSocket)
    tag: int = 0  # the ping sequence number for a PingSocket owner


@dataclass
class _ArpPending:
    queue: deque[_Queued] = field(default_factory=deque)
    tries: int = 0
    next_try: float = 0.0


class UdpSocket:
    """A UDP port. Received datagrams queue in `queue` as (src_ip, src_port, payload), unless a
    `handler(src_ip, src_port, payload, now)` takes them (the stack's own DNS lookups). `remote`
    set: a connected socket, deaf to everyone else. `error` records an ICMP error or an ARP
    failure ("refused", "unreachable") for the next call to notice."""

    def __init__(self, port: int, remote: tuple[str, int] | None = None) -> None:
        self.port = port
        self.remote = remote
        self.queue: deque[tuple[str, int, bytes]] = deque()
        self.error: str | None = None
        self.handler: Callable[[str, int, bytes, float], None] | None = None
        self.on_error: Callable[[str], None] | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<UdpSocket {self.port} -> {self.remote}>"


@dataclass(frozen=True)
class PingReply:
    seq: int
    source: str
    ttl: int
    size: int  # ICMP bytes (header + payload), as ping prints them
    time: float  # when it arrived


class PingSocket:
    """ICMP echo for one identifier: replies and errors ("unreachable") queue by sequence."""

    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.replies: deque[PingReply] = deque()
        self.errors: deque[tuple[int, str]] = deque()
        self.sent: dict[int, float] = {}
        self.closed = False


class Lookup:
    """A DNS lookup: `done` once `addresses` (and `canonical`, the name at the end of a CNAME
    chain) or `error` (a DnsError kind: nxdomain, servfail, refused, no-address, bad-reply,
    timeout, unreachable, no-server) is known."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.done = False
        self.addresses: list[str] = []
        self.canonical: str = name
        self.error: str | None = None
        self.attempt = 0
        self.deadline: float | None = None
        self.sock: UdpSocket | None = None
        self.qids: list[int] = []
        self.server = ""

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "canonical": self.canonical, "addresses": list(self.addresses),
                "error": self.error}


# ---------------------------------------------------------------------------------- the stack

COUNTERS = (
    "rx_frames", "tx_frames", "rx_bytes", "tx_bytes", "ip_in", "ip_out", "arp_in", "arp_requests_sent",
    "arp_replies_sent", "arp_failures", "icmp_in", "icmp_out", "echo_requests_in", "echo_replies_sent",
    "unreachables_sent", "unreachables_in", "udp_in", "udp_out", "tcp_in", "tcp_out", "tcp_resets_sent",
    "loopback",
    "drop_bad_frame", "drop_ip_checksum", "drop_l4_checksum", "drop_not_for_us", "drop_ethertype",
    "drop_fragment", "drop_protocol", "drop_no_route", "drop_arp_failed", "drop_arp_queue",
    "drop_udp_no_port", "drop_udp_queue", "drop_icmp_rate", "drop_unconfigured",
)


class NetStack:
    """One interface's IPv4 stack; see the module docstring for the calling protocol."""

    def __init__(
        self,
        mac: str | bytes,
        *,
        config: IfConfig | None = None,
        dhcp: bool = False,
        fallback: IfConfig | None = None,
        dhcp_timeout: float = 10.0,
        hostname: str = "euralios",
        seed: int | None = None,
        tcp_options: dict[str, float] | None = None,
    ) -> None:
        """`config`: a static configuration; `dhcp`: ask DHCP (the default of the server) and
        use `fallback` when nobody answers within `dhcp_timeout` seconds. `seed` makes ISNs,
        DHCP xids and DNS ids reproducible (tests); otherwise they are unpredictable."""
        self.mac = mac if isinstance(mac, str) else mac.hex(":")
        self._mac_bytes = mac_to_bytes(self.mac)
        self.config: IfConfig | None = config
        self.now = 0.0
        self._rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.events: list[tuple[str, object]] = []  # ("configured", IfConfig), ("fallback", ...), ...
        self.arp: dict[str, ArpEntry] = {}
        self._arp_pending: dict[str, _ArpPending] = {}
        self._out: list[bytes] = []
        self._loop: deque[bytes] = deque()
        self._ip_ident = self._rng.getrandbits(16)
        self._next_port = EPHEMERAL_FIRST
        self.udp: dict[int, UdpSocket] = {}
        self.pings: dict[int, PingSocket] = {}
        self._next_ident = self._rng.getrandbits(16) or 1
        self.connections: dict[tuple[str, int, str, int], TcpConnection] = {}
        # Work is tracked per connection, so an event costs O(log n), not a visit to all n
        # connections (at 200 connections those visits were half the CPU): connections report
        # every change (TcpConnection.notify) into _dirty, where _collect asks them for output;
        # their timer deadlines sit in a heap (_timers, stale entries dropped lazily; _deadline
        # holds each connection's current one).
        self._keys: dict[TcpConnection, tuple[str, int, str, int]] = {}
        self._dirty: dict[TcpConnection, None] = {}
        self._timers: list[tuple[float, int, TcpConnection]] = []
        self._deadline: dict[TcpConnection, float | None] = {}
        self._timer_seq = 0
        self._observers: dict[TcpConnection, Callable[[TcpConnection], None]] = {}
        self._tcp_ports: dict[int, int] = {}  # local port -> connections using it
        self.listeners: dict[int, TcpListener] = {}
        self._owned: set[TcpConnection] = set()
        self._tcp_totals = TcpCounters()
        self._tcp_closed = 0
        self._tcp_options: dict[str, float] = dict(tcp_options or {})
        self._icmp_window = (0.0, 0)  # (second it counts, errors sent in it)
        self.resolver = Resolver(seed=None if seed is None else seed + 1, hosts={"localhost": "127.0.0.1"})
        self.lookups: dict[str, Lookup] = {}
        self.dhcp: DhcpClient | None = None
        self.dhcp_timeout = dhcp_timeout
        self._dhcp_started: float | None = None
        self._dhcp_waiting_said = False
        if dhcp:
            fb = None
            if fallback is not None:
                fb = Lease(address=fallback.address, netmask=str(fallback.network.netmask), router=fallback.gateway,
                           dns=list(fallback.dns), static=True, lease_time=float("inf"))
            self.dhcp = DhcpClient(self._mac_bytes, hostname=hostname, seed=None if seed is None else seed + 2,
                                   fallback=fb, give_up_after=dhcp_timeout)
            self._fallback_mtu = fallback.mtu if fallback is not None else MTU
        elif config is not None:
            self.events.append(("configured", config))

    # ------------------------------------------------------------------ configuration
    @property
    def address(self) -> str | None:
        return self.config.address if self.config is not None else None

    @property
    def configured(self) -> bool:
        return self.config is not None

    @property
    def mtu(self) -> int:
        return self.config.mtu if self.config is not None else MTU

    def configure(self, config: IfConfig | None) -> None:
        """Set (or clear) the interface configuration by hand."""
        self.config = config
        self.events.append(("configured", config) if config is not None else ("unconfigured", None))

    # ------------------------------------------------------------------ driving
    def frame_received(self, data: bytes, now: float) -> None:
        """One Ethernet frame from the wire (without FCS)."""
        self.now = now
        self.counters["rx_frames"] += 1
        self.counters["rx_bytes"] += len(data)
        self._input(data, now, loop=False)

    def frames_to_send(self, now: float | None = None) -> list[bytes]:
        """Every frame to put on the wire now, in order (TCP output is produced here, lazily)."""
        if now is not None:
            self.now = now
        self._collect(self.now)
        out, self._out = self._out, []
        return out

    def next_deadline(self) -> float | None:
        """The earliest time `poll` has work to do; None when nothing is pending at all."""
        best: float | None = None

        def consider(t: float | None) -> None:
            nonlocal best
            if t is not None and (best is None or t < best):
                best = t

        if self._loop:
            consider(self.now)
        if self.dhcp is not None:
            consider(self.dhcp.next_deadline())
            if self._dhcp_started is not None and not self._dhcp_waiting_said and self.config is None:
                consider(self._dhcp_started + self.dhcp_timeout)
        for p in self._arp_pending.values():
            consider(p.next_try)
        for lk in self.lookups.values():
            consider(lk.deadline)
        consider(self._next_timer())
        return best

    def poll(self, now: float) -> None:
        """Run every timer due by `now` (early or repeated calls are harmless)."""
        self.now = now
        if self.dhcp is not None:
            d = self.dhcp.next_deadline()
            if d is not None and now >= d:
                if self._dhcp_started is None:
                    self._dhcp_started = now
                self.dhcp.poll(now)
            self._dhcp_io(now)
            if (self._dhcp_started is not None and self.config is None and not self._dhcp_waiting_said
                    and now >= self._dhcp_started + self.dhcp_timeout):
                self._dhcp_waiting_said = True
                self.events.append(("dhcp-waiting", None))
        for hop in [h for h, p in self._arp_pending.items() if now >= p.next_try]:
            p = self._arp_pending.get(hop)
            if p is None or now < p.next_try:
                continue  # resolved, or asked afresh, by what an earlier failure set off
            if p.tries >= ARP_TRIES:
                self._arp_failed(hop, now)
            else:
                self._arp_request(hop, now)
        for lk in [lk for lk in self.lookups.values() if lk.deadline is not None and now >= lk.deadline]:
            if lk.deadline is not None and now >= lk.deadline:
                self._dns_retry(lk, now)
        self._refresh_dirty()
        timers = self._timers
        due: list[TcpConnection] = []
        while timers and timers[0][0] <= now:
            d, _, conn = heapq.heappop(timers)
            if self._deadline.get(conn, -1.0) == d and conn in self._keys:
                self._deadline[conn] = None  # popped: _schedule pushes the next one
                due.append(conn)
        for conn in due:
            d = conn.next_deadline()
            if d is not None and now >= d:
                conn.poll_timers(now)
            self._schedule(conn)

    # ------------------------------------------------------------------ input
    def _input(self, data: bytes, now: float, loop: bool) -> None:
        c = self.counters
        try:
            frame = decode_frame(data)
        except ChecksumError as e:
            c["drop_ip_checksum" if str(e).startswith("ipv4") else "drop_l4_checksum"] += 1
            return
        except DecodeError:
            c["drop_bad_frame"] += 1
            return
        eth = frame.eth
        if eth.dst != self.mac and eth.dst != BROADCAST_MAC:
            c["drop_not_for_us"] += 1  # multicast (IPv6 neighbour discovery, mDNS...) lands here
            return
        if frame.arp is not None:
            c["arp_in"] += 1
            self._arp_input(frame.arp, now)
            return
        ip = frame.ip
        if ip is None:
            c["drop_ethertype"] += 1
            return
        c["ip_in"] += 1
        if ip.is_fragment:
            c["drop_fragment"] += 1
            return
        cfg = self.config
        to_us = cfg is not None and (ip.dst == cfg.address or ip.dst in (LIMITED_BROADCAST, cfg.broadcast))
        if loop and is_loopback(ip.dst):
            to_us = True
        if not to_us:
            udp = frame.udp
            if cfg is None and udp is not None and udp.dst_port == DHCP_PORT_CLIENT:
                to_us = True  # an offer unicast to the address we are being given
            elif cfg is None:
                c["drop_unconfigured"] += 1
                return
            else:
                c["drop_not_for_us"] += 1
                return
        broadcast = ip.dst == LIMITED_BROADCAST or (cfg is not None and ip.dst == cfg.broadcast)
        if frame.tcp is not None:
            c["tcp_in"] += 1
            if not broadcast:
                self._tcp_input(ip, frame.tcp, now)
        elif frame.udp is not None:
            c["udp_in"] += 1
            self._udp_input(ip, frame.udp, data, now, broadcast)
        elif frame.icmp is not None:
            c["icmp_in"] += 1
            self._icmp_input(ip, frame.icmp, now, broadcast)
        else:
            c["drop_protocol"] += 1

    def _arp_input(self, pkt: _arp.ArpPacket, now: float) -> None:
        # RFC 826: merge the sender into the table if it is there; add it if we are the target.
        ours = self.address is not None and pkt.target_ip == self.address
        if pkt.sender_ip == "0.0.0.0":  # an address probe (RFC 5227): nothing to learn
            return
        if pkt.sender_ip in self.arp or ours or pkt.sender_ip in self._arp_pending:
            self.arp[pkt.sender_ip] = ArpEntry(pkt.sender_mac, now)
            self._arp_resolved(pkt.sender_ip, now)
        if ours and pkt.op == _arp.REQUEST:
            assert self.address is not None
            self._send_frame(build_arp(_arp.REPLY, self.mac, self.address, pkt.sender_ip, pkt.sender_mac))
            self.counters["arp_replies_sent"] += 1

    def _tcp_input(self, ip: _ipv4.Ipv4Header, seg: TcpSegment, now: float) -> None:
        conn = self.connections.get((ip.dst, seg.dst_port, ip.src, seg.src_port))
        if conn is not None:
            conn.segment_received(seg, now)
            return
        listener = self.listeners.get(seg.dst_port)
        if listener is not None:
            listener.local = (ip.dst, seg.dst_port)  # the address this SYN came to (ours or loopback)
            new = listener.segment_received(seg, (ip.src, seg.src_port), now)
            if new is not None:
                self._register((ip.dst, seg.dst_port, ip.src, seg.src_port), new)
            return
        rst = reset_for(seg)
        if rst is not None:
            self.counters["tcp_resets_sent"] += 1
            self._output(ip.dst, ip.src, _ipv4.PROTO_TCP, rst)

    def _udp_input(self, ip: _ipv4.Ipv4Header, dgram: _udp.UdpDatagram, raw: bytes, now: float,
                   broadcast: bool) -> None:
        if dgram.dst_port == DHCP_PORT_CLIENT and self.dhcp is not None:
            self.dhcp.datagram_received(dgram.payload, now)
            self._dhcp_io(now)
            return
        sock = self.udp.get(dgram.dst_port)
        if sock is not None and (sock.remote is None or sock.remote == (ip.src, dgram.src_port)):
            if sock.handler is not None:
                sock.handler(ip.src, dgram.src_port, dgram.payload, now)
            elif len(sock.queue) >= UDP_QUEUE:
                self.counters["drop_udp_queue"] += 1
            else:
                sock.queue.append((ip.src, dgram.src_port, dgram.payload))
            return
        self.counters["drop_udp_no_port"] += 1
        if not broadcast:
            self._icmp_error(ip, raw, _icmp.DEST_UNREACHABLE, 3, now)

    def _icmp_input(self, ip: _ipv4.Ipv4Header, msg: _icmp.IcmpMessage, now: float, broadcast: bool) -> None:
        c = self.counters
        if msg.type == _icmp.ECHO_REQUEST:
            c["echo_requests_in"] += 1
            if broadcast:
                return  # as Linux (icmp_echo_ignore_broadcasts): no smurf amplifier here
            reply = _icmp.encode(_icmp.IcmpMessage(_icmp.ECHO_REPLY, 0, msg.ident, msg.seq, msg.payload))
            if self._output(ip.dst, ip.src, _ipv4.PROTO_ICMP, reply):
                c["echo_replies_sent"] += 1
        elif msg.type == _icmp.ECHO_REPLY:
            sock = self.pings.get(msg.ident)
            if sock is not None and len(sock.replies) < PING_QUEUE:
                sock.replies.append(PingReply(msg.seq, ip.src, ip.ttl, _icmp.HEADER_LEN + len(msg.payload), now))
        elif msg.type == _icmp.DEST_UNREACHABLE:
            c["unreachables_in"] += 1
            self._unreachable_input(msg, now)

    def _unreachable_input(self, msg: _icmp.IcmpMessage, now: float) -> None:
        """Tell the socket whose packet bounced (RFC 1122 4.2.3.9: a connecting socket fails)."""
        inner = msg.payload
        if len(inner) < 20 or inner[0] >> 4 != 4:
            return
        ihl = (inner[0] & 0xF) * 4
        if len(inner) < ihl + 8:
            return
        proto = inner[9]
        src, dst = bytes_to_ip(inner[12:16]), bytes_to_ip(inner[16:20])
        a, b = int.from_bytes(inner[ihl:ihl + 2], "big"), int.from_bytes(inner[ihl + 2:ihl + 4], "big")
        refused = msg.code in (2, 3)  # protocol / port unreachable: nobody there
        if proto == _ipv4.PROTO_UDP:
            sock = self.udp.get(a)
            if sock is not None:
                self._udp_error(sock, "refused" if refused else "unreachable")
        elif proto == _ipv4.PROTO_TCP:
            conn = self.connections.get((src, a, dst, b))
            if conn is not None and conn.state == SYN_SENT:
                self._fail_connection(conn, TcpErrorKind.REFUSED if refused else TcpErrorKind.UNREACHABLE, now)
        elif proto == _ipv4.PROTO_ICMP and inner[ihl] == _icmp.ECHO_REQUEST:
            ident = int.from_bytes(inner[ihl + 4:ihl + 6], "big")
            seq = int.from_bytes(inner[ihl + 6:ihl + 8], "big")
            ping = self.pings.get(ident)
            if ping is not None and len(ping.errors) < PING_QUEUE:
                ping.errors.append((seq, "unreachable"))

    # ------------------------------------------------------------------ output
    def _ident(self) -> int:
        self._ip_ident = (self._ip_ident + 1) & 0xFFFF
        return self._ip_ident

    def _next_hop(self, dst: str) -> str | None:
        """The address to resolve for `dst` (BROADCAST_MAC for broadcasts), None: no route."""
        cfg = self.config
        if dst == LIMITED_BROADCAST:
            return BROADCAST_MAC
        if cfg is None:
            return None
        if dst == cfg.broadcast:
            return BROADCAST_MAC
        if cfg.on_link(dst):
            return dst
        return cfg.gateway

    def _output(self, src: str, dst: str, proto: int, payload: bytes | TcpSegment, owner: object = None,
                tag: int = 0) -> bool:
        """Send an IPv4 packet: now, or once its next hop is resolved. False: no route."""
        c = self.counters
        if dst == self.address or is_loopback(dst):
            c["loopback"] += 1
            self._loop.append(self._frame(self.mac, src, dst, proto, payload))
            return True
        hop = self._next_hop(dst)
        if hop is None:
            c["drop_no_route"] += 1
            return False
        if hop == BROADCAST_MAC:
            self._emit(self._frame(BROADCAST_MAC, src, dst, proto, payload), proto)
            return True
        mac = self._lookup(hop, self.now)
        if mac is not None:
            self._emit(self._frame(mac, src, dst, proto, payload), proto)
            return True
        pending = self._arp_pending.get(hop)
        if pending is None:
            pending = self._arp_pending[hop] = _ArpPending()
            self._arp_request(hop, self.now)
        if len(pending.queue) >= ARP_QUEUE:
            pending.queue.popleft()
            c["drop_arp_queue"] += 1
        pending.queue.append(_Queued(src, dst, proto, payload, owner, tag))
        return True

    def _frame(self, dst_mac: str, src: str, dst: str, proto: int, payload: bytes | TcpSegment) -> bytes:
        if isinstance(payload, TcpSegment):
            return build_tcp_frame(self.mac, dst_mac, src, dst, payload, ttl=TTL, ident=self._ident())
        header = _ipv4.Ipv4Header(src, dst, proto, ttl=TTL, ident=self._ident())
        return _eth.encode(_eth.EthernetHeader(dst_mac, self.mac, _eth.ETH_P_IPV4), _ipv4.encode(header, payload))

    def _emit(self, frame: bytes, proto: int) -> None:
        c = self.counters
        c["ip_out"] += 1
        if proto == _ipv4.PROTO_TCP:
            c["tcp_out"] += 1
        elif proto == _ipv4.PROTO_UDP:
            c["udp_out"] += 1
        elif proto == _ipv4.PROTO_ICMP:
            c["icmp_out"] += 1
        self._send_frame(frame)

    def _send_frame(self, frame: bytes) -> None:
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)
        self._out.append(frame)

    def _icmp_error(self, ip: _ipv4.Ipv4Header, raw: bytes, type_: int, code: int, now: float) -> None:
        """An ICMP error quoting the offending datagram's header and first 8 bytes (RFC 792)."""
        second, sent = self._icmp_window
        if int(now) != second:
            second, sent = int(now), 0
        if sent >= ICMP_ERRORS_PER_SECOND:
            self.counters["drop_icmp_rate"] += 1
            return
        self._icmp_window = (second, sent + 1)
        body = raw[_eth.HEADER_LEN:]
        quoted = body[:(body[0] & 0xF) * 4 + 8]
        msg = _icmp.encode(_icmp.IcmpMessage(type_, code, 0, 0, bytes(quoted)))
        if self._output(ip.dst, ip.src, _ipv4.PROTO_ICMP, msg):
            self.counters["unreachables_sent"] += 1

    def _collect(self, now: float) -> None:
        """Gather TCP output from the connections that changed, run looped-back frames through
        input, drop finished connections."""
        rounds = 0
        while True:
            while self._dirty:
                dirty, self._dirty = self._dirty, {}
                for conn in dirty:
                    if conn not in self._keys:
                        continue
                    for seg in conn.segments_to_send(now):
                        self._output(conn.local[0], conn.remote[0], _ipv4.PROTO_TCP, seg, owner=conn)
                    self._schedule(conn)
                    observer = self._observers.get(conn)
                    if observer is not None:
                        observer(conn)
                    if conn.state == CLOSED and conn not in self._owned:
                        self._forget(conn)
            for listener in self.listeners.values():
                for remote, seg in listener.segments_to_send():
                    self.counters["tcp_resets_sent"] += 1
                    self._output(listener.local[0], remote[0], _ipv4.PROTO_TCP, seg)
            if not self._loop or rounds >= LOOPBACK_ROUNDS:
                break
            while self._loop and rounds < LOOPBACK_ROUNDS:
                rounds += 1
                self._input(self._loop.popleft(), now, loop=True)

    # ------------------------------------------------------------------ connection bookkeeping
    def _register(self, key: tuple[str, int, str, int], conn: TcpConnection) -> None:
        self.connections[key] = conn
        self._keys[conn] = key
        self._tcp_ports[key[1]] = self._tcp_ports.get(key[1], 0) + 1
        conn.notify = self._touched
        self._dirty[conn] = None  # a new connection has something to say (SYN, SYN-ACK)

    def _forget(self, conn: TcpConnection) -> None:
        key = self._keys.pop(conn)
        del self.connections[key]
        left = self._tcp_ports[key[1]] - 1
        if left:
            self._tcp_ports[key[1]] = left
        else:
            del self._tcp_ports[key[1]]
        self._deadline.pop(conn, None)
        self._observers.pop(conn, None)
        self._dirty.pop(conn, None)
        conn.notify = None
        self._fold(conn)
        if len(self._timers) > 2 * len(self._keys) + 64:  # mostly stale entries: rebuild
            self._timers = [e for e in self._timers if e[2] in self._keys and self._deadline.get(e[2]) == e[0]]
            heapq.heapify(self._timers)

    def _touched(self, conn: TcpConnection) -> None:
        """TcpConnection.notify: the connection changed (input, a socket call, a timer)."""
        self._dirty[conn] = None
        observer = self._observers.get(conn)
        if observer is not None:
            observer(conn)

    def observe(self, conn: TcpConnection, observer: Callable[[TcpConnection], None] | None) -> None:
        """Call ``observer(conn)`` whenever ``conn`` changes (None: stop): for a caller that
        keeps the readiness of many connections (net/server.py's /tcp/mux) without polling
        every one of them after every event."""
        if observer is None:
            self._observers.pop(conn, None)
        elif conn in self._keys:
            self._observers[conn] = observer

    def _schedule(self, conn: TcpConnection) -> None:
        """Record the connection's current timer deadline (pushed on the heap when it moved)."""
        d = conn.next_deadline()
        if self._deadline.get(conn, -1.0) != d:
            self._deadline[conn] = d
            if d is not None:
                self._timer_seq += 1
                heapq.heappush(self._timers, (d, self._timer_seq, conn))

    def _refresh_dirty(self) -> None:
        """Deadlines of connections changed since the last _collect (their output is not out
        yet, but a socket call or an input may already have moved a timer)."""
        for conn in self._dirty:
            if conn in self._keys:
                self._schedule(conn)

    def _next_timer(self) -> float | None:
        self._refresh_dirty()
        timers = self._timers
        while timers:
            d, _, conn = timers[0]
            if conn in self._keys and self._deadline.get(conn) == d:
                return d
            heapq.heappop(timers)
        return None

    def _fold(self, conn: TcpConnection) -> None:
        totals = self._tcp_totals
        for f in fields(TcpCounters):
            setattr(totals, f.name, getattr(totals, f.name) + getattr(conn.counters, f.name))
        self._tcp_closed += 1

    # ------------------------------------------------------------------ ARP
    def _lookup(self, hop: str, now: float) -> str | None:
        entry = self.arp.get(hop)
        if entry is None:
            return None
        age = now - entry.updated
        if age >= ARP_TTL:
            del self.arp[hop]
            return None
        if age >= ARP_TTL - ARP_REFRESH and (entry.refreshing is None or now - entry.refreshing >= ARP_RETRY):
            entry.refreshing = now  # still good: ask its owner directly, keep using it meanwhile
            self._send_arp_request(hop, eth_dst=entry.mac)
        return entry.mac

    def _send_arp_request(self, hop: str, eth_dst: str | None = None) -> None:
        src = self.address or "0.0.0.0"
        self._send_frame(build_arp(_arp.REQUEST, self.mac, src, hop, eth_dst=eth_dst))
        self.counters["arp_requests_sent"] += 1

    def _arp_request(self, hop: str, now: float) -> None:
        pending = self._arp_pending[hop]
        pending.tries += 1
        pending.next_try = now + ARP_RETRY
        self._send_arp_request(hop)

    def _arp_resolved(self, hop: str, now: float) -> None:
        pending = self._arp_pending.pop(hop, None)
        if pending is None:
            return
        mac = self.arp[hop].mac
        for q in pending.queue:
            self._emit(self._frame(mac, q.src, q.dst, q.proto, q.payload), q.proto)

    def _arp_failed(self, hop: str, now: float) -> None:
        """Nobody answers for `hop`: drop what waited for it and tell its owners."""
        pending = self._arp_pending.pop(hop)
        self.counters["arp_failures"] += 1
        self.counters["drop_arp_failed"] += len(pending.queue)
        for q in pending.queue:
            owner = q.owner
            if isinstance(owner, TcpConnection) and owner.state == SYN_SENT:
                self._fail_connection(owner, TcpErrorKind.UNREACHABLE, now)
            elif isinstance(owner, PingSocket) and len(owner.errors) < PING_QUEUE:
                owner.errors.append((q.tag, "unreachable"))
            elif isinstance(owner, UdpSocket):
                self._udp_error(owner, "unreachable")

    def arp_table(self, now: float | None = None) -> list[dict[str, object]]:
        """The cache for people: resolved entries with seconds left, then unresolved ones."""
        now = self.now if now is None else now
        rows: list[dict[str, object]] = []
        for ip, e in sorted(self.arp.items(), key=lambda kv: ipaddress.IPv4Address(kv[0])):
            left = ARP_TTL - (now - e.updated)
            if left > 0:
                rows.append({"address": ip, "mac": e.mac, "state": "reachable", "expires": round(left, 1)})
        for ip, p in sorted(self._arp_pending.items()):
            rows.append({"address": ip, "mac": None, "state": "incomplete", "tries": p.tries, "queued": len(p.queue)})
        return rows

    # ------------------------------------------------------------------ DHCP
    def _dhcp_io(self, now: float) -> None:
        dhcp = self.dhcp
        assert dhcp is not None
        for o in dhcp.datagrams_to_send():
            if o.unicast_to and self.config is not None:
                self._udp_output(self.config.address, DHCP_PORT_CLIENT, o.unicast_to, DHCP_PORT_SERVER, o.payload)
            else:
                src = self.config.address if self.config is not None else "0.0.0.0"
                self._udp_output(src, DHCP_PORT_CLIENT, LIMITED_BROADCAST, DHCP_PORT_SERVER, o.payload)
        while dhcp.events:
            event = dhcp.events.pop(0)
            lease = dhcp.lease
            if event in ("bound", "renewed", "fallback") and lease is not None:
                source = "fallback" if event == "fallback" else "dhcp"
                cfg = IfConfig(lease.address, lease.prefix_len, lease.router, list(lease.dns),
                               self._fallback_mtu if source == "fallback" else MTU, source)
                changed = self.config is None or (self.config.address, self.config.prefix, self.config.gateway,
                                                  self.config.dns) != (cfg.address, cfg.prefix, cfg.gateway, cfg.dns)
                self.config = cfg
                if event == "fallback":
                    self.events.append(("fallback", cfg))
                elif changed:
                    self.events.append(("configured", cfg))
            elif event == "expired":
                self.config = None
                self.events.append(("unconfigured", None))
            elif event == "nak":
                self.events.append(("dhcp-nak", None))

    # ------------------------------------------------------------------ UDP
    def _ephemeral(self) -> int:
        """The next free port in 49152-65535, in order (wrapping); StackError when all are busy."""
        busy_tcp = self._tcp_ports
        for _ in range(EPHEMERAL_LAST - EPHEMERAL_FIRST + 1):
            port = self._next_port
            self._next_port = port + 1 if port < EPHEMERAL_LAST else EPHEMERAL_FIRST
            if port not in self.udp and port not in busy_tcp and port not in self.listeners:
                return port
        raise StackError("in-use", "no free ephemeral port")

    def udp_open(self, port: int = 0, remote: tuple[str, int] | None = None) -> UdpSocket:
        """A UDP socket on `port` (0: the next ephemeral one), connected to `remote` if given."""
        if port == 0:
            port = self._ephemeral()
        elif not 0 < port < 65536:
            raise StackError("invalid", f"port {port} out of range")
        if port in self.udp or (port == DHCP_PORT_CLIENT and self.dhcp is not None):
            raise StackError("in-use", f"UDP port {port} is in use")
        sock = UdpSocket(port, remote)
        self.udp[port] = sock
        return sock

    def udp_send(self, sock: UdpSocket, data: bytes, now: float, dst: tuple[str, int] | None = None) -> None:
        """Send one datagram (to `dst`, or the socket's remote)."""
        self.now = now
        if sock.closed:
            raise StackError("invalid", "socket closed")
        target = dst or sock.remote
        if target is None:
            raise StackError("invalid", "no destination")
        if len(data) > self.mtu - 28:
            raise StackError("invalid", f"datagram of {len(data)} bytes exceeds the MTU (no fragmentation)")
        src = self._source_for(target[0])
        if not self._udp_output(src, sock.port, target[0], target[1], data, owner=sock):
            raise StackError("unreachable", f"no route to {target[0]}")

    def udp_close(self, sock: UdpSocket) -> None:
        sock.closed = True
        if self.udp.get(sock.port) is sock:
            del self.udp[sock.port]

    def _udp_output(self, src: str, sport: int, dst: str, dport: int, payload: bytes, owner: object = None) -> bool:
        return self._output(src, dst, _ipv4.PROTO_UDP, _udp.encode(_udp.UdpDatagram(sport, dport, payload), src, dst),
                            owner=owner)

    def _udp_error(self, sock: UdpSocket, kind: str) -> None:
        sock.error = kind
        if sock.on_error is not None:
            sock.on_error(kind)

    def _source_for(self, dst: str) -> str:
        if is_loopback(dst):
            return "127.0.0.1"
        if self.config is None:
            raise StackError("not-configured", "the network is not configured yet")
        return self.config.address

    # ------------------------------------------------------------------ ping
    def ping_open(self) -> PingSocket:
        """An ICMP echo socket with an identifier of its own."""
        for _ in range(0x10000):
            ident = self._next_ident
            self._next_ident = (ident % 0xFFFF) + 1
            if ident not in self.pings:
                sock = PingSocket(ident)
                self.pings[ident] = sock
                return sock
        raise StackError("in-use", "no free ICMP identifier")

    def ping_send(self, sock: PingSocket, dst: str, seq: int, payload: bytes, now: float) -> None:
        self.now = now
        src = self._source_for(dst)
        msg = _icmp.encode(_icmp.IcmpMessage(_icmp.ECHO_REQUEST, 0, sock.ident, seq & 0xFFFF, payload))
        sock.sent[seq & 0xFFFF] = now
        if not self._output(src, dst, _ipv4.PROTO_ICMP, msg, owner=sock, tag=seq & 0xFFFF):
            raise StackError("unreachable", f"no route to {dst}")

    def ping_close(self, sock: PingSocket) -> None:
        sock.closed = True
        if self.pings.get(sock.ident) is sock:
            del self.pings[sock.ident]

    # ------------------------------------------------------------------ TCP
    def _conn_options(self) -> dict[str, float]:
        return {"mss": self.mtu - 40, **self._tcp_options}

    def _isn(self) -> int:
        return self._rng.getrandbits(32)

    def tcp_connect(self, ip: str, port: int, now: float) -> TcpConnection:
        """Active open to ip:port from the next ephemeral port; the SYN leaves on the next
        `frames_to_send`. Failure shows later as `conn.error`."""
        self.now = now
        if not 0 < port < 65536:
            raise StackError("invalid", f"port {port} out of range")
        src = self._source_for(ip)
        if not is_loopback(ip) and ip != src and self._next_hop(ip) is None:
            self.counters["drop_no_route"] += 1
            raise StackError("unreachable", f"no route to {ip}")
        local = (src, self._ephemeral())
        conn = TcpConnection(local, (ip, port), iss=self._isn(), **self._conn_options())  # type: ignore[arg-type]
        self._register((local[0], local[1], ip, port), conn)
        conn.connect(now)
        self._owned.add(conn)
        return conn

    def tcp_listen(self, port: int, backlog: int = 16) -> TcpListener:
        if not 0 < port < 65536:
            raise StackError("invalid", f"port {port} out of range")
        if port in self.listeners:
            raise StackError("in-use", f"TCP port {port} is already listening")
        listener = TcpListener((self.address or "0.0.0.0", port), backlog=backlog, isn=self._isn,
                               **self._conn_options())
        self.listeners[port] = listener
        return listener

    def tcp_accept(self, listener: TcpListener) -> TcpConnection | None:
        """The next connection whose handshake completed on `listener`, now the caller's."""
        conn = listener.accept()
        if conn is not None:
            self._owned.add(conn)
        return conn

    def tcp_unlisten(self, listener: TcpListener, now: float) -> None:
        """Stop listening; connections nobody accepted yet are reset."""
        port = listener.local[1]
        if self.listeners.get(port) is listener:
            del self.listeners[port]
        for conn in list(self.connections.values()):
            if conn.local[1] == port and conn not in self._owned and conn.state != CLOSED:
                conn.abort(now)

    def tcp_release(self, conn: TcpConnection, now: float, abort: bool = False) -> None:
        """The application is done with `conn`: close it gracefully (FIN after the queued data)
        or abort it (RST); the stack finishes the closing handshake on its own and forgets the
        connection once it is CLOSED (FIN-WAIT-2 gives up after 60 s of silence)."""
        self.now = now
        if abort:
            conn.abort(now)
        else:
            conn.close(now)
            conn.fin_wait_2_timeout = 60.0
        self._owned.discard(conn)

    def _fail_connection(self, conn: TcpConnection, error: TcpErrorKind, now: float) -> None:
        conn.abort(now)
        conn.error = error

    # ------------------------------------------------------------------ DNS
    def resolve(self, name: str, now: float) -> Lookup:
        """A lookup for `name`: already done for addresses, the cache and obvious failures;
        otherwise in flight (check `done` after input and polls)."""
        self.now = now
        key = name.lower().rstrip(".")
        cached = self.resolver.cached(key, now)
        if cached:
            lk = Lookup(key)
            lk.done, lk.addresses, lk.canonical = True, cached, self._canonical(key, now)
            return lk
        if key in self.lookups:
            return self.lookups[key]
        lk = Lookup(key)
        if (not key or len(key) > 253 or any(not 0 < len(label) < 64 for label in key.split("."))
                or not set(key) <= HOSTNAME_CHARS):
            lk.done, lk.error = True, "invalid"
            return lk
        if self.config is None or not self.config.dns:
            lk.done, lk.error = True, "no-server"
            return lk
        self.lookups[key] = lk
        self._dns_send(lk, now)
        return lk

    def _dns_send(self, lk: Lookup, now: float) -> None:
        cfg = self.config
        if cfg is None or not cfg.dns:
            self._dns_done(lk, error="no-server")
            return
        server = cfg.dns[lk.attempt % len(cfg.dns)]
        lk.server = server
        if lk.sock is not None:
            self.udp_close(lk.sock)
        sock = self.udp_open(0, (server, DNS_PORT))

        def handler(src: str, sport: int, payload: bytes, when: float) -> None:
            if lk.sock is not sock:
                return  # an earlier attempt's socket
            try:
                result = self.resolver.answer(payload, when)
            except DnsError as e:
                self._dns_done(lk, error=e.kind)
                return
            if result is not None:
                self._dns_done(lk, addresses=result[1])

        def on_error(kind: str) -> None:
            if lk.sock is sock:
                self._dns_retry(lk, self.now, error=kind)

        sock.handler = handler
        sock.on_error = on_error
        lk.sock = sock
        qid, query = self.resolver.query(lk.name)
        lk.qids.append(qid)
        lk.deadline = now + DNS_TRY_TIMEOUT[min(lk.attempt, len(DNS_TRY_TIMEOUT) - 1)]
        try:
            self.udp_send(sock, query, now)
        except StackError:
            self._dns_retry(lk, now, error="unreachable")

    def _dns_retry(self, lk: Lookup, now: float, error: str = "timeout") -> None:
        if lk.done:
            return
        lk.attempt += 1
        if lk.attempt >= len(DNS_TRY_TIMEOUT):
            self._dns_done(lk, error=error)
            return
        self._dns_send(lk, now)

    def _dns_done(self, lk: Lookup, addresses: list[str] | None = None, error: str | None = None) -> None:
        if lk.done:
            return
        lk.done = True
        lk.deadline = None
        lk.error = error
        if addresses:
            lk.addresses = list(addresses)
            lk.canonical = self._canonical(lk.name, self.now)
        for qid in lk.qids:
            self.resolver.pending.pop(qid, None)
        if lk.sock is not None:
            self.udp_close(lk.sock)
            lk.sock = None
        if self.lookups.get(lk.name) is lk:
            del self.lookups[lk.name]

    def _canonical(self, name: str, now: float) -> str:
        """The end of `name`'s CNAME chain in the cache (the name itself when there is none)."""
        for _ in range(8):
            entry = self.resolver.cache.get(name)
            if entry is None or entry[0] <= now or entry[2] is None:
                return name
            name = entry[2]
        return name

    # ------------------------------------------------------------------ introspection
    def tcp_counters(self) -> dict[str, int]:
        """TCP statistics summed over every connection, live and finished."""
        out = {f.name: getattr(self._tcp_totals, f.name) for f in fields(TcpCounters)}
        for conn in self.connections.values():
            for f in fields(TcpCounters):
                out[f.name] += getattr(conn.counters, f.name)
        out["connections_finished"] = self._tcp_closed
        return out

    def stats(self) -> dict[str, object]:
        """Everything a `stats` reader wants, JSON-ready."""
        return {
            "mac": self.mac,
            "config": self.config.as_dict() if self.config is not None else None,
            "dhcp": None if self.dhcp is None else {"state": self.dhcp.state},
            "counters": dict(self.counters),
            "tcp": self.tcp_counters(),
            "connections": [
                {"local": f"{c.local[0]}:{c.local[1]}", "remote": f"{c.remote[0]}:{c.remote[1]}", "state": c.state,
                 "owned": c in self._owned}
                for c in self.connections.values()
            ],
            "listeners": sorted(self.listeners),
            "udp": sorted(self.udp),
            "arp": self.arp_table(),
        }
