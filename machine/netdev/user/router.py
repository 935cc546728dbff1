"""The router itself: frames in and out, ARP, ICMP, and dispatch to the services.

* **ARP** answers for 10.0.2.2 and 10.0.2.3 (MACs 52:55:0a:00:02:0x, slirp's scheme); the guest's
  own MAC is learnt from its frames (and asked for with ARP when the router speaks first).
* Everything else goes to the service it is for: :mod:`~machine.netdev.user.dhcp`,
  :mod:`~machine.netdev.user.dns`, :mod:`~machine.netdev.user.icmp`,
  :mod:`~machine.netdev.user.tcp`, :mod:`~machine.netdev.user.udp`.

Frames from the guest are handled synchronously inside :meth:`UserBackend.send` (it must never
block: it is called from the NIC's port writes); frames to the guest are queued and handed to
``deliver`` by the backend's own task, so the NIC never receives while it is transmitting.
Large segments both ways (a card with offloads): :mod:`~machine.netdev.user.large`.
"""

from __future__ import annotations

import math
import socket
from collections import Counter, deque
from collections.abc import Iterable, Mapping

import trio

from machine.netdev import Backend, Deliver, DeliverGso
from machine.netdev.user import dhcp
from machine.netdev.user.dns import DnsForwarder
from machine.netdev.user.host import Connect, Resolve, host_connect, host_resolve
from machine.netdev.user.icmp import Unreachable, echo_reply, unreachable
from machine.netdev.user.large import coalesce, gso_header, partial_checksum
from machine.netdev.user.options import DEFAULT_DOMAIN, HostFwd, load_hosts, parse_user_options
from machine.netdev.user.segment import (
    BROADCAST_IP,
    DNS_MAC,
    DNS_SERVER,
    GATEWAY,
    GATEWAY_MAC,
    GUEST,
    MTU,
)
from machine.netdev.user.tcp import FlowKey, TcpFlow, TcpRelay
from machine.netdev.user.udp import UdpFlow, UdpRelay
from machine.netdev.user.udpfwd import UdpForwarder
from machine.netdev.user.wakeup import Wakeup
from proto.tcp import TcpConnection
from proto.wire import DecodeError, mac_to_bytes
from proto.wire import icmp as _icmp
from proto.wire.arp import REPLY, REQUEST
from proto.wire.frame import Frame, build_arp, decode_frame
from proto.wire.gso import check
from proto.wire.tcp import TcpSegment, build_ipv4_tcp
from proto.wire.udp import build_ipv4_udp
from proto.wire.vnet import GsoType, VnetHdr

__all__ = ["UserBackend", "make_user_backend"]

MAX_UDP_PAYLOAD = MTU - 20 - 8  # no IP fragmentation: larger datagrams to the guest are dropped
MAX_WAITING = 256  # IP packets held while the guest's MAC is being resolved
ARP_RETRY = 1.0


class UserBackend(Backend):
    """The router. See the package docstring; ``stats`` adds per-service counters.

    ``events`` counts what happened by name (``dns_queries``, ``tcp_resets``, ...): the names
    are only ever counted and shown in ``stats``, never compared, so they stay plain strings."""

    def __init__(
        self,
        *,
        hostfwd: Iterable[HostFwd] = (),
        hosts: Mapping[str, Iterable[str]] | None = None,
        domain: str = DEFAULT_DOMAIN,
        resolve: Resolve | None = None,
        connect: Connect | None = None,
        udp_idle: float = 120.0,
        connect_timeout: float = 20.0,
        spec: str = "user",
        restrict: bool = False,
    ) -> None:
        """``resolve`` and ``connect`` replace the host resolver and the host TCP connect (tests,
        or a host that must reach the world through something else); ``connect_timeout`` bounds
        the connect made for a guest SYN before the guest is told the host is unreachable."""
        super().__init__()
        self.spec = spec
        #: restrict=on (QEMU's): only the router's own services and hostfwd; nothing relayed out.
        self.restrict = restrict
        self.domain = domain.strip(".").lower()
        #: The names the DNS server answers first: lower-case name -> IPv4 addresses.
        self.hosts = {k.lower().rstrip("."): list(v) for k, v in (hosts or {}).items()}
        self.connect = connect or host_connect
        self.udp_idle = udp_idle
        self.connect_timeout = connect_timeout
        self.events: Counter[str] = Counter()
        self.guest_mac: str | None = None
        self._eth_prefix: dict[str, bytes] = {}  # source IP -> dst MAC + src MAC + type, per guest MAC
        self._waiting: deque[tuple[str, bytes]] = deque()
        self._arp_asked = -math.inf
        self._to_guest: deque[bytes | tuple[VnetHdr, bytes]] = deque()
        self._large = False  # the card takes large segments (run() got a deliver_gso)
        self._pump = Wakeup()
        self._early: list[bytes] = []
        #: The nursery of :meth:`run` while it runs: flows and DNS lookups are its tasks.
        self.nursery: trio.Nursery | None = None
        self._ident = 0
        #: Every host socket the flows hold, closed by :meth:`close`.
        self.host_sockets: set[object] = set()
        self.dns = DnsForwarder(self.hosts, self.domain, _refuse if restrict else resolve or host_resolve,
                                self.events)
        self._hostfwd = list(hostfwd)
        self.tcp = TcpRelay(self, [r for r in self._hostfwd if r.proto == "tcp"])
        self.udp = UdpRelay(self)
        self.udpfwd = UdpForwarder(self, [r for r in self._hostfwd if r.proto == "udp"])
        self._closed = False
        try:
            self.tcp.listen()
            self.udpfwd.bind()
        except BaseException:
            self.close()
            raise

    @property
    def tcp_flows(self) -> dict[FlowKey, TcpFlow]:
        """Open TCP flows by (guest address, guest port, far address, far port)."""
        return self.tcp.flows

    @property
    def udp_flows(self) -> dict[tuple[str, int], UdpFlow]:
        """Open UDP flows by guest (address, port)."""
        return self.udp.flows

    @property
    def hostfwd_ports(self) -> list[int]:
        """The host port each ``hostfwd`` rule listens on (in rule order; port 0 is resolved)."""
        tcp, udp = iter(self.tcp.hostfwd_ports), iter(self.udpfwd.ports)
        return [next(tcp) if r.proto == "tcp" else next(udp) for r in self._hostfwd]

    @property
    def stats(self) -> dict[str, int]:
        out = dict(self.counters)
        out.update(self.events)
        out["tcp_flows_open"] = len(self.tcp.flows)
        out["udp_flows_open"] = len(self.udp.flows)
        return out

    # ------------------------------------------------------------------ Backend interface

    async def run(self, deliver: Deliver, deliver_gso: DeliverGso | None = None) -> None:
        if self._closed:
            raise RuntimeError("UserBackend.run() after close()")
        self._large = deliver_gso is not None
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                self.tcp.start_forwarding(nursery)
                self.udpfwd.start(nursery)
                early, self._early = self._early, []
                for frame in early:
                    self.send(frame)
                counters = self.counters
                queue = self._to_guest
                while True:
                    while queue:
                        item = queue.popleft()
                        counters["rx_frames"] += 1
                        if isinstance(item, tuple):
                            assert deliver_gso is not None  # only queued when there is one
                            counters["rx_bytes"] += len(item[1])
                            deliver_gso(*item)
                        else:
                            counters["rx_bytes"] += len(item)
                            deliver(item)
                    await self._pump.wait()
        finally:
            self.nursery = None
            self._large = False
            if self._closed:
                self._release_sockets()

    def send(self, frame: bytes) -> None:
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)
        if self.nursery is None:
            if not self._closed and len(self._early) < MAX_WAITING:
                self._early.append(bytes(frame))  # handled when run() starts
            return
        try:
            f = decode_frame(frame)
        except DecodeError:
            self.events["bad_frames"] += 1
            return
        self._dispatch(f, frame)

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        """A TSO frame goes to its flow whole (the relay takes the payload as one segment);
        anything else with work left is done in software and sent as usual."""
        if hdr.gso_type is not GsoType.TCPV4 or self.nursery is None:
            super().send_gso(hdr, frame)
            return
        try:
            check(hdr, frame)
            f = decode_frame(frame, verify=False)  # the checksum is the guest's to leave undone
        except DecodeError:
            self.count("tx_bad_offload")
            return
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)
        self.events["tcp_large_segments_in"] += 1
        self._dispatch(f, frame)

    def _dispatch(self, f: Frame, frame: bytes) -> None:
        src = f.eth.src
        if src not in (GATEWAY_MAC, DNS_MAC) and not int(src[:2], 16) & 1 and src != self.guest_mac:
            self._learn(src)
        if f.ip is None:
            if f.arp is not None:
                self._arp(f)
            return
        payload = f.payload
        if self.restrict and not self._inward(f):
            self.events["restricted_drops"] += 1  # restrict=on: the guest reaches nothing beyond the router
            return
        if f.tcp is not None:
            self.tcp.segment(f, frame)
        elif f.udp is not None:
            self._udp(f, frame)
        elif f.icmp is not None:
            self._icmp(f)
        elif isinstance(payload, bytes):
            self.events["dropped"] += 1  # another IP protocol, or a fragment

    def _inward(self, f: Frame) -> bool:
        """restrict=on: may this packet pass? The router's own services (DHCP, DNS, ping of its
        addresses) and segments of flows a hostfwd rule opened; nothing that would go out."""
        ip = f.ip
        assert ip is not None
        if f.udp is not None:
            return f.udp.dst_port == 67 or (ip.dst == DNS_SERVER and f.udp.dst_port == 53) or \
                self.udpfwd.is_answer(ip.src, f.udp.src_port, ip.dst, f.udp.dst_port)
        if f.icmp is not None:
            return ip.dst in (GATEWAY, DNS_SERVER)
        if f.tcp is not None:
            flow = self.tcp.flows.get((ip.src, f.tcp.src_port, ip.dst, f.tcp.dst_port))
            return flow is not None and flow.forwarded
        return False

    def close(self) -> None:
        """Release every host socket. While ``run()`` is active this cancels it instead, and it
        releases them as it ends (after its tasks stop using them)."""
        self._closed = True
        if self.nursery is not None:
            self.nursery.cancel_scope.cancel()
            return
        self._release_sockets()

    def _release_sockets(self) -> None:
        listeners, self.tcp.listeners = self.tcp.listeners, []
        for s in [*listeners, *self.host_sockets]:
            if isinstance(s, socket.socket):
                try:
                    trio.lowlevel.notify_closing(s)
                except RuntimeError:
                    pass  # not inside trio: nobody can be waiting on it
            s.close()  # type: ignore[attr-defined]
        self.host_sockets.clear()

    # ------------------------------------------------------------------ frames to the guest

    def _learn(self, mac: str) -> None:
        """The guest's MAC (the only other station on this wire): from its frames, or ARP."""
        self.guest_mac = mac
        guest = mac_to_bytes(mac)
        self._eth_prefix = {ip: guest + mac_to_bytes(m) + b"\x08\x00"
                            for ip, m in ((GATEWAY, GATEWAY_MAC), (DNS_SERVER, DNS_MAC))}
        waiting, self._waiting = self._waiting, deque()
        for src_ip, packet in waiting:
            self._emit_ip(packet, src_ip)

    def next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def _emit_ip(self, packet: bytes, src_ip: str, dst_mac: str | None = None) -> None:
        """Queue one IPv4 packet for the guest. Without its MAC yet, hold the packet and ask."""
        if dst_mac is None:
            prefix = self._eth_prefix.get(src_ip) or self._eth_prefix.get(GATEWAY)
            if prefix is None:
                if len(self._waiting) < MAX_WAITING:
                    self._waiting.append((src_ip, packet))
                now = trio.current_time()
                if now - self._arp_asked >= ARP_RETRY:
                    self._arp_asked = now
                    self._emit(build_arp(REQUEST, GATEWAY_MAC, GATEWAY, GUEST))
                return
        else:
            src_mac = DNS_MAC if src_ip == DNS_SERVER else GATEWAY_MAC
            prefix = mac_to_bytes(dst_mac) + mac_to_bytes(src_mac) + b"\x08\x00"
        self._emit(prefix + packet)

    def _emit(self, frame: bytes) -> None:
        if len(frame) < 60:
            frame += bytes(60 - len(frame))  # Ethernet minimum, as a real NIC pads
        self._to_guest.append(frame)
        self._pump.set()

    def emit_tcp(self, conn: TcpConnection, now: float) -> None:
        """Send what a connection has to send, each segment in IPv4 from its local address --
        joined into large segments when the card takes them (see :mod:`.large`)."""
        src, dst = conn.local[0], conn.remote[0]
        segments = conn.segments_to_send(now)
        if self._large and len(segments) > 1 and self._eth_prefix:
            mss = conn.send_mss
            for seg, count in coalesce(segments, mss):
                ident = self.next_ident()
                packet = build_ipv4_tcp(seg, src, dst, ident=ident)
                if count == 1:
                    self._emit_ip(packet, src)
                    continue
                self._ident = (self._ident + count - 1) & 0xFFFF  # the idents its segments take
                prefix = self._eth_prefix.get(src) or self._eth_prefix[GATEWAY]
                self.events["tcp_large_segments_out"] += 1
                self._to_guest.append((gso_header(packet, mss), prefix + partial_checksum(packet)))
                self._pump.set()
            return
        for seg in segments:
            self._emit_ip(build_ipv4_tcp(seg, src, dst, ident=self.next_ident()), src)

    def emit_tcp_segment(self, seg: TcpSegment, src: str, dst: str) -> None:
        """One segment that belongs to no connection (a RST)."""
        self._emit_ip(build_ipv4_tcp(seg, src, dst, ident=self.next_ident()), src)

    def emit_udp(self, src: str, sport: int, dst: str, dport: int, payload: bytes,
                 dst_mac: str | None = None) -> None:
        if len(payload) > MAX_UDP_PAYLOAD:
            self.events["udp_too_big"] += 1
            return
        self._emit_ip(build_ipv4_udp(src, dst, sport, dport, payload, ident=self.next_ident()), src, dst_mac)

    def icmp_unreachable(self, raw_frame: bytes, code: Unreachable) -> None:
        """Destination unreachable for the datagram in ``raw_frame``: its header + 8 bytes."""
        packet = unreachable(raw_frame, code, self.next_ident())
        self.events["icmp_unreachable"] += 1
        self._emit_ip(packet, GATEWAY)

    # ------------------------------------------------------------------ ARP, ICMP, UDP

    def _arp(self, f: Frame) -> None:
        arp = f.arp
        assert arp is not None
        if arp.op == REQUEST and arp.target_ip in (GATEWAY, DNS_SERVER) and arp.sender_ip != arp.target_ip:
            mac = GATEWAY_MAC if arp.target_ip == GATEWAY else DNS_MAC
            self.events["arp_replies"] += 1
            self._emit(build_arp(REPLY, mac, arp.target_ip, arp.sender_ip, arp.sender_mac))

    def _icmp(self, f: Frame) -> None:
        msg, ip = f.icmp, f.ip
        assert msg is not None and ip is not None
        if msg.type == _icmp.ECHO_REQUEST and msg.code == 0 and ip.dst in (GATEWAY, DNS_SERVER):
            packet = echo_reply(msg, ip, self.next_ident())
            self.events["icmp_echo"] += 1
            self._emit_ip(packet, ip.dst)
        else:
            self.events["dropped"] += 1  # pings beyond the router need raw sockets: not relayed

    def _udp(self, f: Frame, raw: bytes) -> None:
        """DHCP and DNS are the router's own; anything else is relayed."""
        dgram, ip = f.udp, f.ip
        assert dgram is not None and ip is not None
        if dgram.dst_port == 67:
            if ip.dst in ("255.255.255.255", GATEWAY, BROADCAST_IP):
                self._dhcp(dgram.payload)
            return
        if ip.dst == DNS_SERVER:
            if dgram.dst_port == 53 and self.nursery is not None:
                self.events["dns_queries"] += 1
                self.nursery.start_soon(self._dns, dgram.payload, ip.src, dgram.src_port)
            else:
                self.icmp_unreachable(raw, Unreachable.PORT)
            return
        if self.udpfwd.answer(ip.src, dgram.src_port, ip.dst, dgram.dst_port, dgram.payload):
            return
        self.udp.datagram(ip, dgram)

    def _dhcp(self, payload: bytes) -> None:
        try:
            reply = dhcp.answer(payload, self.domain)
        except DecodeError:
            self.events["bad_frames"] += 1
            return
        if reply is not None:
            self.events[f"dhcp_{reply.kind}"] += 1
            self.emit_udp(GATEWAY, 67, reply.dst_ip, 68, reply.payload, reply.dst_mac)

    async def _dns(self, query: bytes, client: str, port: int) -> None:
        """Answer one DNS query (in its own task: the host resolver may take a while)."""
        reply = await self.dns.answer(query)
        if reply is not None:
            self.emit_udp(DNS_SERVER, 53, client, port, reply)


def make_user_backend(arg: str, hosts: str | None = None) -> UserBackend:
    """``--net user[,OPTIONS]``: the words after ``user,`` (see
    :func:`~machine.netdev.user.options.parse_user_options`); ``hosts`` is the front door's
    ``--hosts FILE`` (a ``hosts=`` option wins)."""
    opts = parse_user_options(arg)
    hosts_file = opts.hosts or hosts
    table = load_hosts(hosts_file) if hosts_file else None
    spec = "user," + arg if arg else "user"
    return UserBackend(hostfwd=opts.hostfwd, hosts=table, domain=opts.domain, spec=spec, restrict=opts.restrict)


async def _refuse(name: str) -> list[str]:
    """restrict=on's resolver: the host's is not asked, so a name outside the table is unknown."""
    return []
