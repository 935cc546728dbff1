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
  statically (net/config.py's IfConfig) or by DHCP (net/autoconf.py) on UDP 68/67, with an
  optional static fallback. What happens to the configuration is told in `events`
  (StackEvent, IfConfig | None) for the I/O layer to print.
* ARP through the neighbour cache (net/neighbours.py): packets for an unresolved next hop wait
  there; when nobody answers they are dropped and their owners told (a connecting TCP socket
  fails "host unreachable", a ping or a UDP socket gets UNREACHABLE). We answer requests for
  our own address, learning the asker (RFC 826's merge rule).
* IPv4 input checks the header checksum (and the L4 ones); whatever is dropped is counted by
  reason in `counters` ("drop_ip_checksum", "drop_not_for_us", ...). Fragments are not
  reassembled (we send with DF and an MTU of 1500, as do the peers that matter).
* Routing: on-link when the destination is in our prefix, else via the gateway; our own address
  and 127/8 loop back inside the stack (a program can connect to a listener on this host).
* ICMP: echo requests are answered (the host can ping us); echo replies go to ping sockets
  (ping_open/ping_send); closed UDP ports answer port-unreachable (rate-limited); incoming
  destination-unreachable errors fail the matching connecting TCP socket, UDP socket or ping.
* UDP sockets (udp_open/udp_send/udp_close, net/sockets.py) with bounded receive queues.
* TCP through proto/tcp: active open, listeners with a backlog, RST for closed ports, orphaned
  connections finished in the background (FIN, FIN-WAIT-2 timeout, TIME-WAIT) after release;
  the connections' bookkeeping (changes, timer heap) is net/connections.py's.
* Ephemeral ports 49152-65535, shared by TCP and UDP: the search starts at a random point of
  the range, chosen at start-up, and goes on in order from there (wrapping, skipping busy
  ports). A fresh boot's first port is not guessable (RFC 6056's aim; its algorithms also
  randomise later choices, which this simple counter does not); `seed` makes it reproducible.
* DNS over UDP 53 by net/lookups.py (`resolve`).
* The card's offloads (net/offloads.py's NicOffloads, all off by default): with them every
  frame goes out with its virtio-net header (`frames_out`: (VnetHdr, frame) pairs) -- TCP with
  its checksum left to the card, and with TSO segments of up to 64 KiB cut by the card at the
  connection's MSS -- and frames come in with theirs (`frame_received(data, now, hdr)`),
  DATA_VALID sparing the L4 checksum and large receive taking a 64 KiB segment as one. Looped
  back frames never leave, so they are always built whole.

Errors raised to callers are `StackError(kind, detail)` (net/sockets.py), `kind` a
StackErrorKind. Connection failures are reported the TCP engine's way (`conn.error`, a
TcpErrorKind: "connection refused", "connection reset", "timed out", "host unreachable").
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable

from net.autoconf import DHCP_PORT_CLIENT, AutoConfig
from net.config import LIMITED_BROADCAST, MTU, IfConfig, StackEvent
from net.connections import ConnectionTable
from net.lookups import Lookup, Lookups
from net.neighbours import Neighbours, Queued
from net.offloads import NO_OFFLOAD, NO_OFFLOADS, NicOffloads, rx_checksum_done, tcp_tx_header
from net.sockets import PingReply, PingSocket, SocketError, StackError, StackErrorKind, UdpSocket
from proto.tcp import CLOSED, SYN_SENT, TcpConnection, TcpErrorKind, TcpListener, reset_for
from proto.wire import ChecksumError, DecodeError, bytes_to_ip, mac_to_bytes
from proto.wire import arp as _arp
from proto.wire import ethernet as _eth
from proto.wire import icmp as _icmp
from proto.wire import ipv4 as _ipv4
from proto.wire import udp as _udp
from proto.wire.checksum import internet_checksum
from proto.wire.frame import build_arp, build_tcp_frame, decode_frame
from proto.wire.tcp import TcpSegment
from proto.wire.vnet import VnetHdr

BROADCAST_MAC = _eth.BROADCAST
EPHEMERAL_FIRST, EPHEMERAL_LAST = 49152, 65535
TTL = 64
UDP_QUEUE = 256  # datagrams held per UDP socket (newest dropped beyond)
PING_QUEUE = 64
ICMP_ERRORS_PER_SECOND = 20  # port-unreachable rate limit (as Linux limits ICMP errors)
LOOPBACK_ROUNDS = 256  # frames looped back per flush, at most (a loop of our own making)


def is_loopback(ip: str) -> bool:
    return ip.startswith("127.")


COUNTERS = (
    "rx_frames", "tx_frames", "rx_bytes", "tx_bytes", "ip_in", "ip_out", "arp_in", "arp_requests_sent",
    "arp_replies_sent", "arp_failures", "icmp_in", "icmp_out", "echo_requests_in", "echo_replies_sent",
    "unreachables_sent", "unreachables_in", "udp_in", "udp_out", "tcp_in", "tcp_out", "tcp_resets_sent",
    "loopback",
    "drop_bad_frame", "drop_ip_checksum", "drop_l4_checksum", "drop_not_for_us", "drop_ethertype",
    "drop_fragment", "drop_protocol", "drop_no_route", "drop_arp_failed", "drop_arp_queue",
    "drop_udp_no_port", "drop_udp_queue", "drop_icmp_rate", "drop_unconfigured", "drop_offload",
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
        offloads: NicOffloads = NO_OFFLOADS,
    ) -> None:
        """`config`: a static configuration; `dhcp`: ask DHCP (the default of the server) and
        use `fallback` when nobody answers within `dhcp_timeout` seconds. `seed` makes ISNs,
        the first ephemeral port, DHCP xids and DNS ids reproducible (tests); otherwise they
        are unpredictable. `offloads`: what the card does for us (net/offloads.py)."""
        self.mac = mac if isinstance(mac, str) else mac.hex(":")
        self._mac_bytes = mac_to_bytes(self.mac)
        self.config: IfConfig | None = config
        self.now = 0.0
        self._rng: random.Random = random.Random(seed) if seed is not None else random.SystemRandom()
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.events: list[tuple[StackEvent, IfConfig | None]] = []
        self.arp = Neighbours(self.counters, self._send_arp_request, self._arp_failed)
        self.offloads = offloads
        self._out: list[tuple[VnetHdr, bytes]] = []
        self._loop: deque[bytes] = deque()
        self._ip_ident = self._rng.getrandbits(16)
        self._next_port = EPHEMERAL_FIRST + self._rng.randrange(EPHEMERAL_LAST - EPHEMERAL_FIRST + 1)
        self.udp: dict[int, UdpSocket] = {}
        self.pings: dict[int, PingSocket] = {}
        self._next_ident = self._rng.getrandbits(16) or 1
        self.tcp = ConnectionTable()
        self.listeners: dict[int, TcpListener] = {}
        self._tcp_options: dict[str, float] = dict(tcp_options or {})
        self._icmp_window = (0.0, 0)  # (second it counts, errors sent in it)
        self.dns = Lookups(self, seed=None if seed is None else seed + 1)
        self.dhcp: AutoConfig | None = None
        if dhcp:
            self.dhcp = AutoConfig(self, self._mac_bytes, fallback=fallback, timeout=dhcp_timeout, hostname=hostname,
                                   seed=None if seed is None else seed + 2)
        elif config is not None:
            self.events.append((StackEvent.CONFIGURED, config))

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

    @property
    def connections(self) -> dict[tuple[str, int, str, int], TcpConnection]:
        """Every TCP connection, by (local address, local port, remote address, remote port)."""
        return self.tcp.connections

    def configure(self, config: IfConfig | None) -> None:
        """Set (or clear) the interface configuration by hand."""
        self.config = config
        self.events.append((StackEvent.CONFIGURED, config) if config is not None
                           else (StackEvent.UNCONFIGURED, None))

    # ------------------------------------------------------------------ driving
    def frame_received(self, data: bytes, now: float, hdr: VnetHdr = NO_OFFLOAD) -> None:
        """One Ethernet frame from the wire (without FCS), with the card's header if it has
        offloads (what it checked, whether it coalesced segments)."""
        self.now = now
        self.counters["rx_frames"] += 1
        self.counters["rx_bytes"] += len(data)
        self._input(data, now, loop=False, hdr=hdr)

    def frames_out(self, now: float | None = None) -> list[tuple[VnetHdr, bytes]]:
        """Every frame to put on the wire now, in order, each with the virtio-net header that
        says what the card still has to do (NO_OFFLOAD: nothing). TCP output is produced here,
        lazily."""
        if now is not None:
            self.now = now
        self._collect(self.now)
        out, self._out = self._out, []
        return out

    def frames_to_send(self, now: float | None = None) -> list[bytes]:
        """`frames_out` for a card without offloads: the frames alone, each complete."""
        if self.offloads != NO_OFFLOADS:
            raise RuntimeError("a stack with offloads sends (header, frame) pairs: use frames_out")
        return [frame for _, frame in self.frames_out(now)]

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
        consider(self.arp.next_deadline())
        consider(self.dns.next_deadline())
        consider(self.tcp.next_deadline())
        return best

    def poll(self, now: float) -> None:
        """Run every timer due by `now` (early or repeated calls are harmless)."""
        self.now = now
        if self.dhcp is not None:
            self.dhcp.poll(now)
        self.arp.poll(now)
        self.dns.poll(now)
        self.tcp.poll(now)

    # ------------------------------------------------------------------ input
    def _input(self, data: bytes, now: float, loop: bool, hdr: VnetHdr = NO_OFFLOAD) -> None:
        c = self.counters
        verify = True
        if hdr.flags or hdr.is_gso:
            if hdr.is_gso and not self.offloads.large_receive:
                c["drop_offload"] += 1  # a coalesced segment we never asked for
                return
            verify = not rx_checksum_done(self.offloads, hdr)
        try:
            frame = decode_frame(data, verify=verify)
            if not verify and frame.ip is not None:
                ihl = (data[14] & 0xF) * 4  # the card checked L4 only: IPv4's header is ours to check
                if internet_checksum(data[14:14 + ihl]) != 0:
                    raise ChecksumError("ipv4: bad header checksum")
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
        ours = self.address is not None and pkt.target_ip == self.address
        if pkt.sender_ip == "0.0.0.0":  # an address probe (RFC 5227): nothing to learn
            return
        for q in self.arp.learn(pkt.sender_ip, pkt.sender_mac, now, ours):
            self._emit(self._frame(pkt.sender_mac, q.src, q.dst, q.proto, q.payload, q.owner), q.proto)
        if ours and pkt.op == _arp.REQUEST:
            assert self.address is not None
            self._send_frame((NO_OFFLOAD, build_arp(_arp.REPLY, self.mac, self.address, pkt.sender_ip, pkt.sender_mac)))
            self.counters["arp_replies_sent"] += 1

    def _tcp_input(self, ip: _ipv4.Ipv4Header, seg: TcpSegment, now: float) -> None:
        conn = self.tcp.connections.get((ip.dst, seg.dst_port, ip.src, seg.src_port))
        if conn is not None:
            conn.segment_received(seg, now)
            return
        listener = self.listeners.get(seg.dst_port)
        if listener is not None:
            listener.local = (ip.dst, seg.dst_port)  # the address this SYN came to (ours or loopback)
            new = listener.segment_received(seg, (ip.src, seg.src_port), now)
            if new is not None:
                self.tcp.register((ip.dst, seg.dst_port, ip.src, seg.src_port), new)
            return
        rst = reset_for(seg)
        if rst is not None:
            self.counters["tcp_resets_sent"] += 1
            self._output(ip.dst, ip.src, _ipv4.PROTO_TCP, rst)

    def _udp_input(self, ip: _ipv4.Ipv4Header, dgram: _udp.UdpDatagram, raw: bytes, now: float,
                   broadcast: bool) -> None:
        if dgram.dst_port == DHCP_PORT_CLIENT and self.dhcp is not None:
            self.dhcp.datagram_received(dgram.payload, now)
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
                self._udp_error(sock, SocketError.REFUSED if refused else SocketError.UNREACHABLE)
        elif proto == _ipv4.PROTO_TCP:
            conn = self.tcp.connections.get((src, a, dst, b))
            if conn is not None and conn.state == SYN_SENT:
                self._fail_connection(conn, TcpErrorKind.REFUSED if refused else TcpErrorKind.UNREACHABLE, now)
        elif proto == _ipv4.PROTO_ICMP and inner[ihl] == _icmp.ECHO_REQUEST:
            ident = int.from_bytes(inner[ihl + 4:ihl + 6], "big")
            seq = int.from_bytes(inner[ihl + 6:ihl + 8], "big")
            ping = self.pings.get(ident)
            if ping is not None and len(ping.errors) < PING_QUEUE:
                ping.errors.append((seq, SocketError.UNREACHABLE))

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
            self._loop.append(self._frame(self.mac, src, dst, proto, payload, offload=False)[1])
            return True
        hop = self._next_hop(dst)
        if hop is None:
            c["drop_no_route"] += 1
            return False
        if hop == BROADCAST_MAC:
            self._emit(self._frame(BROADCAST_MAC, src, dst, proto, payload, owner), proto)
            return True
        mac = self.arp.lookup(hop, self.now)
        if mac is not None:
            self._emit(self._frame(mac, src, dst, proto, payload, owner), proto)
            return True
        self.arp.hold(hop, Queued(src, dst, proto, payload, owner, tag), self.now)
        return True

    def _tcp_output(self, conn: TcpConnection, seg: TcpSegment) -> None:
        self._output(conn.local[0], conn.remote[0], _ipv4.PROTO_TCP, seg, owner=conn)

    def _frame(self, dst_mac: str, src: str, dst: str, proto: int, payload: bytes | TcpSegment,
               owner: object = None, offload: bool = True) -> tuple[VnetHdr, bytes]:
        """The frame and its header. With checksum offload a TCP frame's checksum is the
        card's, and one larger than its connection's MSS (TSO) is cut there at that MSS."""
        if isinstance(payload, TcpSegment):
            if offload and self.offloads.tx_csum:
                frame = build_tcp_frame(self.mac, dst_mac, src, dst, payload, ttl=TTL, ident=self._ident(),
                                        partial_csum=True)
                gso = owner.send_mss if isinstance(owner, TcpConnection) and self.offloads.tso_max else 0
                return tcp_tx_header(frame, gso), frame
            return NO_OFFLOAD, build_tcp_frame(self.mac, dst_mac, src, dst, payload, ttl=TTL, ident=self._ident())
        header = _ipv4.Ipv4Header(src, dst, proto, ttl=TTL, ident=self._ident())
        return NO_OFFLOAD, _eth.encode(_eth.EthernetHeader(dst_mac, self.mac, _eth.ETH_P_IPV4),
                                       _ipv4.encode(header, payload))

    def _emit(self, frame: tuple[VnetHdr, bytes], proto: int) -> None:
        c = self.counters
        c["ip_out"] += 1
        if proto == _ipv4.PROTO_TCP:
            c["tcp_out"] += 1
        elif proto == _ipv4.PROTO_UDP:
            c["udp_out"] += 1
        elif proto == _ipv4.PROTO_ICMP:
            c["icmp_out"] += 1
        self._send_frame(frame)

    def _send_frame(self, frame: tuple[VnetHdr, bytes]) -> None:
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame[1])
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
            self.tcp.collect(now, self._tcp_output)
            for listener in self.listeners.values():
                for remote, seg in listener.segments_to_send():
                    self.counters["tcp_resets_sent"] += 1
                    self._output(listener.local[0], remote[0], _ipv4.PROTO_TCP, seg)
            if not self._loop or rounds >= LOOPBACK_ROUNDS:
                break
            while self._loop and rounds < LOOPBACK_ROUNDS:
                rounds += 1
                self._input(self._loop.popleft(), now, loop=True)

    def observe(self, conn: TcpConnection, observer: Callable[[TcpConnection], None] | None) -> None:
        """Call ``observer(conn)`` whenever ``conn`` changes (None: stop): for a caller that
        keeps the readiness of many connections (net/sessions/mux.py) without polling every
        one of them after every event."""
        self.tcp.observe(conn, observer)

    # ------------------------------------------------------------------ ARP
    def _send_arp_request(self, hop: str, eth_dst: str | None = None) -> None:
        src = self.address or "0.0.0.0"
        self._send_frame((NO_OFFLOAD, build_arp(_arp.REQUEST, self.mac, src, hop, eth_dst=eth_dst)))
        self.counters["arp_requests_sent"] += 1

    def _arp_failed(self, queue: deque[Queued], now: float) -> None:
        """Nobody answered for a next hop: tell the owners of what waited for it."""
        for q in queue:
            owner = q.owner
            if isinstance(owner, TcpConnection) and owner.state == SYN_SENT:
                self._fail_connection(owner, TcpErrorKind.UNREACHABLE, now)
            elif isinstance(owner, PingSocket) and len(owner.errors) < PING_QUEUE:
                owner.errors.append((q.tag, SocketError.UNREACHABLE))
            elif isinstance(owner, UdpSocket):
                self._udp_error(owner, SocketError.UNREACHABLE)

    def arp_table(self, now: float | None = None) -> list[dict[str, object]]:
        """The cache for people: resolved entries with seconds left, then unresolved ones."""
        return self.arp.table(self.now if now is None else now)

    # ------------------------------------------------------------------ UDP
    def _ephemeral(self) -> int:
        """The next free port in 49152-65535, in order from a random start (wrapping); StackError
        when all are busy."""
        busy_tcp = self.tcp.ports
        for _ in range(EPHEMERAL_LAST - EPHEMERAL_FIRST + 1):
            port = self._next_port
            self._next_port = port + 1 if port < EPHEMERAL_LAST else EPHEMERAL_FIRST
            if port not in self.udp and port not in busy_tcp and port not in self.listeners:
                return port
        raise StackError(StackErrorKind.IN_USE, "no free ephemeral port")

    def udp_open(self, port: int = 0, remote: tuple[str, int] | None = None) -> UdpSocket:
        """A UDP socket on `port` (0: the next ephemeral one), connected to `remote` if given."""
        if port == 0:
            port = self._ephemeral()
        elif not 0 < port < 65536:
            raise StackError(StackErrorKind.INVALID, f"port {port} out of range")
        if port in self.udp or (port == DHCP_PORT_CLIENT and self.dhcp is not None):
            raise StackError(StackErrorKind.IN_USE, f"UDP port {port} is in use")
        sock = UdpSocket(port, remote)
        self.udp[port] = sock
        return sock

    def udp_send(self, sock: UdpSocket, data: bytes, now: float, dst: tuple[str, int] | None = None) -> None:
        """Send one datagram (to `dst`, or the socket's remote)."""
        self.now = now
        if sock.closed:
            raise StackError(StackErrorKind.INVALID, "socket closed")
        target = dst or sock.remote
        if target is None:
            raise StackError(StackErrorKind.INVALID, "no destination")
        if len(data) > self.mtu - 28:
            raise StackError(StackErrorKind.INVALID,
                             f"datagram of {len(data)} bytes exceeds the MTU (no fragmentation)")
        src = self._source_for(target[0])
        if not self.udp_output(src, sock.port, target[0], target[1], data, owner=sock):
            raise StackError(StackErrorKind.UNREACHABLE, f"no route to {target[0]}")

    def udp_close(self, sock: UdpSocket) -> None:
        sock.closed = True
        if self.udp.get(sock.port) is sock:
            del self.udp[sock.port]

    def udp_output(self, src: str, sport: int, dst: str, dport: int, payload: bytes, owner: object = None) -> bool:
        """One datagram from any source address (DHCP's come from 0.0.0.0); False: no route."""
        return self._output(src, dst, _ipv4.PROTO_UDP, _udp.encode(_udp.UdpDatagram(sport, dport, payload), src, dst),
                            owner=owner)

    def _udp_error(self, sock: UdpSocket, kind: SocketError) -> None:
        sock.error = kind
        if sock.on_error is not None:
            sock.on_error(kind)

    def _source_for(self, dst: str) -> str:
        if is_loopback(dst):
            return "127.0.0.1"
        if self.config is None:
            raise StackError(StackErrorKind.NOT_CONFIGURED, "the network is not configured yet")
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
        raise StackError(StackErrorKind.IN_USE, "no free ICMP identifier")

    def ping_send(self, sock: PingSocket, dst: str, seq: int, payload: bytes, now: float) -> None:
        self.now = now
        src = self._source_for(dst)
        msg = _icmp.encode(_icmp.IcmpMessage(_icmp.ECHO_REQUEST, 0, sock.ident, seq & 0xFFFF, payload))
        sock.sent[seq & 0xFFFF] = now
        if not self._output(src, dst, _ipv4.PROTO_ICMP, msg, owner=sock, tag=seq & 0xFFFF):
            raise StackError(StackErrorKind.UNREACHABLE, f"no route to {dst}")

    def ping_close(self, sock: PingSocket) -> None:
        sock.closed = True
        if self.pings.get(sock.ident) is sock:
            del self.pings[sock.ident]

    # ------------------------------------------------------------------ TCP
    def _conn_options(self) -> dict[str, float]:
        options: dict[str, float] = {"mss": self.mtu - 40}
        if self.offloads.tso_max:
            options["tso_max"] = self.offloads.tso_payload
        return {**options, **self._tcp_options}

    def _isn(self) -> int:
        return self._rng.getrandbits(32)

    def tcp_connect(self, ip: str, port: int, now: float) -> TcpConnection:
        """Active open to ip:port from the next ephemeral port; the SYN leaves on the next
        `frames_to_send`. Failure shows later as `conn.error`."""
        self.now = now
        if not 0 < port < 65536:
            raise StackError(StackErrorKind.INVALID, f"port {port} out of range")
        src = self._source_for(ip)
        if not is_loopback(ip) and ip != src and self._next_hop(ip) is None:
            self.counters["drop_no_route"] += 1
            raise StackError(StackErrorKind.UNREACHABLE, f"no route to {ip}")
        local = (src, self._ephemeral())
        conn = TcpConnection(local, (ip, port), iss=self._isn(), **self._conn_options())  # type: ignore[arg-type]
        self.tcp.register((local[0], local[1], ip, port), conn)
        conn.connect(now)
        self.tcp.owned.add(conn)
        return conn

    def tcp_listen(self, port: int, backlog: int = 16) -> TcpListener:
        if not 0 < port < 65536:
            raise StackError(StackErrorKind.INVALID, f"port {port} out of range")
        if port in self.listeners:
            raise StackError(StackErrorKind.IN_USE, f"TCP port {port} is already listening")
        listener = TcpListener((self.address or "0.0.0.0", port), backlog=backlog, isn=self._isn,
                               **self._conn_options())
        self.listeners[port] = listener
        return listener

    def tcp_accept(self, listener: TcpListener) -> TcpConnection | None:
        """The next connection whose handshake completed on `listener`, now the caller's."""
        conn = listener.accept()
        if conn is not None:
            self.tcp.owned.add(conn)
        return conn

    def tcp_unlisten(self, listener: TcpListener, now: float) -> None:
        """Stop listening; connections nobody accepted yet are reset."""
        port = listener.local[1]
        if self.listeners.get(port) is listener:
            del self.listeners[port]
        owned = self.tcp.owned
        for conn in list(self.tcp.connections.values()):
            if conn.local[1] == port and conn not in owned and conn.state != CLOSED:
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
        self.tcp.owned.discard(conn)

    def _fail_connection(self, conn: TcpConnection, error: TcpErrorKind, now: float) -> None:
        conn.abort(now)
        conn.error = error

    # ------------------------------------------------------------------ DNS
    def resolve(self, name: str, now: float) -> Lookup:
        """A lookup for `name` (net/lookups.py): done at once for addresses, the cache and
        obvious failures; otherwise in flight (check `done` after input and polls)."""
        self.now = now
        return self.dns.resolve(name, now)

    # ------------------------------------------------------------------ introspection
    def tcp_counters(self) -> dict[str, int]:
        """TCP statistics summed over every connection, live and finished."""
        return self.tcp.counters()

    def stats(self) -> dict[str, object]:
        """Everything a `stats` reader wants, JSON-ready."""
        owned = self.tcp.owned
        return {
            "mac": self.mac,
            "config": self.config.as_dict() if self.config is not None else None,
            "offloads": self.offloads.as_dict(),
            "dhcp": None if self.dhcp is None else {"state": self.dhcp.client.state},
            "counters": dict(self.counters),
            "tcp": self.tcp_counters(),
            "connections": [
                {"local": f"{c.local[0]}:{c.local[1]}", "remote": f"{c.remote[0]}:{c.remote[1]}", "state": c.state,
                 "owned": c in owned}
                for c in self.tcp.connections.values()
            ],
            "listeners": sorted(self.listeners),
            "udp": sorted(self.udp),
            "arp": self.arp_table(),
        }
