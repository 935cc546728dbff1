"""``--net user``: a virtual router behind the emulated card, like QEMU's user networking (slirp).

No root and no tap: the guest sees an Ethernet segment 10.0.2.0/24 with a gateway (10.0.2.2) and
a DNS server (10.0.2.3), and the router turns what the guest sends into ordinary host sockets::

    guest 10.0.2.15  <-- frames -->  UserBackend  <-- trio sockets -->  host / the Internet

* **ARP** answers for 10.0.2.2 and 10.0.2.3 (MACs 52:55:0a:00:02:0x, slirp's scheme); the guest's
  own MAC is learnt from its frames (and asked for with ARP when the router speaks first).
* **DHCP** server: the guest gets 10.0.2.15/24 with router, DNS server, domain name and lease
  times (24 h, T1 12 h, T2 21 h), so an unconfigured guest needs nothing but a DHCP client.
* **DNS** server at 10.0.2.3: A queries answered from the ``hosts`` table (``hosts=FILE``, lines
  ``ADDRESS NAME...``) and otherwise from the host's own resolver (``trio.socket.getaddrinfo``),
  so the guest sees exactly the names the host sees; NXDOMAIN when the host cannot resolve.
* **ICMP** echo replies for the gateway and the DNS server (ping works without raw sockets).
* **TCP** from the guest: 10.0.2.2 means the host's 127.0.0.1 (as in QEMU), any other address is
  that address. The router *terminates* the guest's TCP with :class:`proto.tcp.TcpConnection` and
  pipes the bytes to a trio socket, connecting on the host first so that a refused or unreachable
  host port becomes a RST or an ICMP unreachable for the guest -- the same answers the guest would
  get on a real network.
* **UDP** from the guest is relayed through one host UDP socket per guest (address, port), closed
  after ``udp_idle`` seconds without traffic.
* **Port forwarding** (``hostfwd=tcp:127.0.0.1:7070-:70``, QEMU's syntax, repeatable): the router
  listens on the host port and, for each host connection, opens a TCP connection to the guest
  from 10.0.2.2 (an ephemeral port), piping bytes both ways.

Everything is event-driven: sockets are awaited, every TCP engine has one timer task that sleeps
until its ``next_deadline()`` (and is woken only when that moves earlier), UDP flows sleep until
their idle deadline. An idle router does not wake up at all.

Why machine/ imports net/ here: machine/ normally imports only machine/ (the hardware knows
nothing of any OS). This router is host-side hardware emulation -- QEMU's slirp is part of QEMU,
not of the guest -- and it reuses ``proto.tcp`` and ``proto.wire``, which are pure sans-IO libraries
(no sockets, no tasks, no OS dependency). Writing a second TCP engine for the host side would
only duplicate the one that is tested against RFC 9293, so this import is an allowed exception.

Frames from the guest are handled synchronously inside :meth:`UserBackend.send` (it must never
block: it is called from the NIC's port writes); frames to the guest are queued and handed to
``deliver`` by the backend's own task, so the NIC never receives while it is transmitting.
"""

from __future__ import annotations

import errno
import ipaddress
import math
import secrets
import socket
import struct
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

import trio

from machine.netdev import Backend, BackendError, Deliver
from proto.tcp import CLOSED, TcpConnection, TcpError, reset_for
from proto.wire import DecodeError, ip_to_bytes, mac_to_bytes
from proto.wire import icmp as _icmp
from proto.wire import ipv4 as _ipv4
from proto.wire.arp import REPLY, REQUEST
from proto.wire.checksum import finish, ones_sum, pseudo_header_sum
from proto.wire.frame import Frame, build_arp, decode_frame
from proto.wire.tcp import ACK, RST, SYN, TcpSegment, build_ipv4_tcp

__all__ = [
    "UserBackend",
    "UserOptions",
    "HostFwd",
    "parse_user_options",
    "parse_hostfwd",
    "parse_hosts",
    "load_hosts",
    "make_user_backend",
    "host_resolve",
    "host_connect",
    "host_address",
    "NETWORK",
    "GATEWAY",
    "DNS_SERVER",
    "GUEST",
    "GATEWAY_MAC",
    "DNS_MAC",
]

NETWORK = ipaddress.IPv4Network("10.0.2.0/24")
GATEWAY = "10.0.2.2"
DNS_SERVER = "10.0.2.3"
GUEST = "10.0.2.15"
NETMASK = "255.255.255.0"
BROADCAST_IP = "10.0.2.255"
GATEWAY_MAC = "52:55:0a:00:02:02"  # slirp: 52:55 followed by the IPv4 address
DNS_MAC = "52:55:0a:00:02:03"
ETHER_BROADCAST = "ff:ff:ff:ff:ff:ff"
DEFAULT_DOMAIN = "euralios.internal"  # .internal: reserved for private use (ICANN, 2024)

LEASE_TIME = 86400  # QEMU's slirp also leases for 24 hours
RENEWAL_TIME = LEASE_TIME // 2
REBINDING_TIME = LEASE_TIME * 7 // 8
DNS_TTL = 60  # answers from the host resolver: short, the host may learn better
HOSTS_TTL = 3600
DNS_TIMEOUT = 5.0  # a host lookup slower than this becomes SERVFAIL (the guest retries)

MTU = 1500
MAX_UDP_PAYLOAD = MTU - 20 - 8  # no IP fragmentation: larger datagrams to the guest are dropped
MAX_TCP_FLOWS = 1024  # each holds a host fd; beyond this new connections are refused
MAX_UDP_FLOWS = 256
MAX_WAITING = 256  # IP packets held while the guest's MAC is being resolved
ARP_RETRY = 1.0
EPHEMERAL = (49152, 65535)

# ICMP destination-unreachable codes (RFC 792, RFC 1812)
NET_UNREACHABLE = 0
HOST_UNREACHABLE = 1
ADMIN_PROHIBITED = 13

#: The TCP engine's options for the router's side of every connection. Windows are capped at
#: 65535 (no window scaling); the send buffer is larger so that the host side can stay one window
#: ahead. TIME-WAIT is short (2 x 2 s): the router's 4-tuples never reach a real network, only
#: the guest, which picks fresh ephemeral ports anyway.
TCP_OPTIONS: dict[str, float] = {
    "mss": MTU - 40,
    "rcv_buf": 65535,
    "snd_buf": 4 * 65535,
    "msl": 2.0,
    "fin_wait_2_timeout": 60.0,
}

Resolve = Callable[[str], Awaitable[list[str]]]
Connect = Callable[[tuple[str, int]], Awaitable[trio.socket.SocketType]]


# ---------------------------------------------------------------------------------- options


@dataclass(frozen=True)
class HostFwd:
    """One ``hostfwd`` rule: host ``host_addr:host_port`` -> guest ``guest_addr:guest_port``."""

    proto: str
    host_addr: str
    host_port: int
    guest_addr: str
    guest_port: int


@dataclass
class UserOptions:
    """What ``--net user,...`` may say (QEMU's option names where QEMU has one)."""

    hostfwd: list[HostFwd] = field(default_factory=list)
    hosts: str | None = None
    domain: str = DEFAULT_DOMAIN


def _port(text: str, what: str, rule: str, allow_zero: bool) -> int:
    try:
        port = int(text, 10)
    except ValueError:
        port = -1
    if not (0 if allow_zero else 1) <= port <= 65535:
        raise ValueError(f"--net user: hostfwd={rule}: bad {what} port {text!r}")
    return port


def _address(text: str, default: str, what: str, rule: str) -> str:
    if not text:
        return default
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError:
        raise ValueError(f"--net user: hostfwd={rule}: bad {what} address {text!r}") from None


def parse_hostfwd(rule: str) -> HostFwd:
    """``[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport`` (QEMU's syntax) -> HostFwd.

    An empty host address means every interface (as in QEMU), an empty guest address the DHCP
    address 10.0.2.15; host port 0 picks a free port (see ``UserBackend.hostfwd_ports``)."""
    host, sep, guest = rule.partition("-")
    if not sep:
        raise ValueError(f"--net user: hostfwd={rule}: expected [tcp:][hostaddr]:hostport-[guestaddr]:guestport")
    proto, _, rest = host.partition(":")
    if not _:
        raise ValueError(f"--net user: hostfwd={rule}: expected [tcp:][hostaddr]:hostport-[guestaddr]:guestport")
    proto = proto.lower() or "tcp"
    if proto != "tcp":
        raise ValueError(f"--net user: hostfwd={rule}: only tcp forwarding is supported")
    haddr, hsep, hport = rest.rpartition(":")
    gaddr, gsep, gport = guest.rpartition(":")
    if not hsep or not gsep:
        raise ValueError(f"--net user: hostfwd={rule}: expected [tcp:][hostaddr]:hostport-[guestaddr]:guestport")
    return HostFwd(
        proto,
        _address(haddr, "0.0.0.0", "host", rule),
        _port(hport, "host", rule, allow_zero=True),
        _address(gaddr, GUEST, "guest", rule),
        _port(gport, "guest", rule, allow_zero=False),
    )


def parse_user_options(text: str) -> UserOptions:
    """The words after ``user,``: ``hostfwd=RULE`` (repeatable), ``hosts=FILE``, ``domainname=D``."""
    opts = UserOptions()
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not value:
            raise ValueError(f"--net user: expected key=value, got {item!r}")
        if key == "hostfwd":
            opts.hostfwd.append(parse_hostfwd(value.strip()))
        elif key == "hosts":
            opts.hosts = value.strip()
        elif key in ("domainname", "domain"):
            opts.domain = value.strip().strip(".").lower()
        else:
            raise ValueError(f"--net user: unknown option {key!r} (use hostfwd=, hosts=, domainname=)")
    return opts


def parse_hosts(text: str, source: str = "hosts") -> dict[str, list[str]]:
    """``ADDRESS NAME...`` lines (``#`` comments) -> lower-case name -> IPv4 addresses.

    IPv6 lines are skipped rather than refused, so the host's own /etc/hosts can be given."""
    table: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            addr = ipaddress.ip_address(words[0])
        except ValueError:
            raise ValueError(f"{source}:{number}: {words[0]!r} is not an IP address") from None
        if len(words) < 2:
            raise ValueError(f"{source}:{number}: an address needs at least one name")
        if addr.version != 4:
            continue
        for name in words[1:]:
            addrs = table.setdefault(name.lower().rstrip("."), [])
            if str(addr) not in addrs:
                addrs.append(str(addr))
    return table


def load_hosts(path: str) -> dict[str, list[str]]:
    """Read a hosts file; a missing or bad file is a one-line ValueError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ValueError(f"--net user: hosts={path}: {e.strerror or e}") from None
    return parse_hosts(text, path)


# ---------------------------------------------------------------------------------- helpers


class _Wakeup:
    """A one-waiter doorbell: ``set()`` wakes the task in ``wait()``, and does nothing (leaves no
    stale flag) when nobody waits -- the waiter always re-checks its condition before waiting, and
    trio cannot switch tasks between that check and the wait, so no wake-up is ever lost."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: trio.Event | None = None

    def set(self) -> None:
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        self._event = event = trio.Event()
        try:
            await event.wait()
        finally:
            self._event = None


def _udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes, ident: int) -> bytes:
    """IPv4 + UDP with both checksums, in struct (relayed UDP is a data path, scapy is slow)."""
    length = 8 + len(payload)
    csum = finish(pseudo_header_sum(ip_to_bytes(src), ip_to_bytes(dst), _ipv4.PROTO_UDP, length)
                  + sport + dport + length + ones_sum(payload)) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, length, csum) + payload
    return _ipv4.encode_header(_ipv4.Ipv4Header(src, dst, _ipv4.PROTO_UDP, ident=ident), len(udp)) + udp


async def host_resolve(name: str) -> list[str]:
    """The host's IPv4 addresses for ``name`` (its resolver: /etc/hosts, DNS, mDNS, ...).

    Raises ``socket.gaierror`` as getaddrinfo does."""
    infos = await trio.socket.getaddrinfo(name, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
    out: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in out:
            out.append(addr)
    return out


@lru_cache(maxsize=1024)
def host_address(dst: str) -> str | None:
    """Where a guest packet for ``dst`` goes on the host: 10.0.2.2 is the host itself (its
    loopback, as in QEMU); other 10.0.2.x, broadcasts, multicast and the like go nowhere."""
    if dst == GATEWAY:
        return "127.0.0.1"
    addr = ipaddress.IPv4Address(dst)
    if addr in NETWORK or addr.is_multicast or addr.is_unspecified or addr.is_loopback or addr.is_reserved \
            or addr == ipaddress.IPv4Address("255.255.255.255"):
        return None
    return dst


async def host_connect(target: tuple[str, int]) -> trio.socket.SocketType:
    """A TCP socket connected to ``target`` on the host (closed again if that fails)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        await sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


_NOT_FOUND = {getattr(socket, n) for n in ("EAI_NONAME", "EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, n)}


# ---------------------------------------------------------------------------------- the router


class UserBackend(Backend):
    """The router. See the module docstring; ``stats`` adds per-service counters."""

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
    ) -> None:
        """``resolve`` and ``connect`` replace the host resolver and the host TCP connect (tests,
        or a host that must reach the world through something else); ``connect_timeout`` bounds
        the connect made for a guest SYN before the guest is told the host is unreachable."""
        super().__init__()
        self.spec = spec
        self.domain = domain.strip(".").lower()
        self.hosts = {k.lower().rstrip("."): list(v) for k, v in (hosts or {}).items()}
        self.resolve = resolve or host_resolve
        self.connect = connect or host_connect
        self.udp_idle = udp_idle
        self.connect_timeout = connect_timeout
        self.events: Counter[str] = Counter()
        self.guest_mac: str | None = None
        self._eth_prefix: dict[str, bytes] = {}  # source IP -> dst MAC + src MAC + type, per guest MAC
        self._waiting: deque[tuple[str, bytes]] = deque()
        self._arp_asked = -math.inf
        self._to_guest: deque[bytes] = deque()
        self._pump = _Wakeup()
        self._early: list[bytes] = []
        self._nursery: trio.Nursery | None = None
        self._ident = 0
        self._next_port = EPHEMERAL[0]
        self.tcp_flows: dict[tuple[str, int, str, int], _TcpFlow] = {}
        self.udp_flows: dict[tuple[str, int], _UdpFlow] = {}
        self._sockets: set[object] = set()  # every host socket we hold, closed by close()
        self.hostfwd: list[HostFwd] = list(hostfwd)
        self.hostfwd_ports: list[int] = []
        self._listeners: list[socket.socket] = []
        self._closed = False
        try:
            for rule in self.hostfwd:
                self._listeners.append(self._listen(rule))
        except BaseException:
            self.close()
            raise

    def _listen(self, rule: HostFwd) -> socket.socket:
        """Bind the host side of a forwarding rule now, so a port in use fails at start-up (as
        QEMU's "could not set up host forwarding rule") and early host clients queue."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((rule.host_addr, rule.host_port))
            s.listen(128)
            s.setblocking(False)
        except OSError as e:
            s.close()
            raise BackendError(f"--net {self.spec}: cannot forward {rule.host_addr}:{rule.host_port}: "
                               f"{e.strerror or e}") from None
        self.hostfwd_ports.append(s.getsockname()[1])
        return s

    @property
    def stats(self) -> dict[str, int]:
        out = dict(self.counters)
        out.update(self.events)
        out["tcp_flows_open"] = len(self.tcp_flows)
        out["udp_flows_open"] = len(self.udp_flows)
        return out

    # ------------------------------------------------------------------ Backend interface

    async def run(self, deliver: Deliver) -> None:
        if self._closed:
            raise RuntimeError("UserBackend.run() after close()")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for rule, lsock in zip(self.hostfwd, self._listeners, strict=True):
                    nursery.start_soon(self._forward, rule, trio.socket.from_stdlib_socket(lsock))
                early, self._early = self._early, []
                for frame in early:
                    self.send(frame)
                counters = self.counters
                queue = self._to_guest
                while True:
                    while queue:
                        frame = queue.popleft()
                        counters["rx_frames"] += 1
                        counters["rx_bytes"] += len(frame)
                        deliver(frame)
                    await self._pump.wait()
        finally:
            self._nursery = None
            if self._closed:
                self._release_sockets()

    def send(self, frame: bytes) -> None:
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)
        if self._nursery is None:
            if not self._closed and len(self._early) < MAX_WAITING:
                self._early.append(bytes(frame))  # handled when run() starts
            return
        try:
            f = decode_frame(frame)
        except DecodeError:
            self.events["bad_frames"] += 1
            return
        src = f.eth.src
        if src not in (GATEWAY_MAC, DNS_MAC) and not int(src[:2], 16) & 1 and src != self.guest_mac:
            self._learn(src)
        if f.ip is None:
            if f.arp is not None:
                self._arp(f)
            return
        payload = f.payload
        if f.tcp is not None:
            self._tcp(f, frame)
        elif f.udp is not None:
            self._udp(f, frame)
        elif f.icmp is not None:
            self._icmp(f)
        elif isinstance(payload, bytes):
            self.events["dropped"] += 1  # another IP protocol, or a fragment

    def close(self) -> None:
        """Release every host socket. While ``run()`` is active this cancels it instead, and it
        releases them as it ends (after its tasks stop using them)."""
        self._closed = True
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()
            return
        self._release_sockets()

    def _release_sockets(self) -> None:
        for s in [*self._listeners, *self._sockets]:
            if isinstance(s, socket.socket):
                try:
                    trio.lowlevel.notify_closing(s)
                except RuntimeError:
                    pass  # not inside trio: nobody can be waiting on it
            s.close()  # type: ignore[attr-defined]
        self._listeners = []
        self._sockets.clear()

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
        """Send what a connection has to send, each segment in IPv4 from its local address."""
        src, dst = conn.local[0], conn.remote[0]
        for seg in conn.segments_to_send(now):
            self._emit_ip(build_ipv4_tcp(seg, src, dst, ident=self.next_ident()), src)

    def _emit_tcp_segment(self, seg: TcpSegment, src: str, dst: str) -> None:
        self._emit_ip(build_ipv4_tcp(seg, src, dst, ident=self.next_ident()), src)

    def emit_udp(self, src: str, sport: int, dst: str, dport: int, payload: bytes,
                 dst_mac: str | None = None) -> None:
        if len(payload) > MAX_UDP_PAYLOAD:
            self.events["udp_too_big"] += 1
            return
        self._emit_ip(_udp_packet(src, dst, sport, dport, payload, self.next_ident()), src, dst_mac)

    def icmp_unreachable(self, raw_frame: bytes, code: int) -> None:
        """Destination unreachable for the datagram in ``raw_frame``: its header + 8 bytes."""
        ip = raw_frame[14:]
        quoted = ip[: (ip[0] & 0xF) * 4 + 8]
        src = _ipv4.decode(ip, verify=False)[0].src
        msg = _icmp.encode(_icmp.IcmpMessage(_icmp.DEST_UNREACHABLE, code, 0, 0, quoted))
        header = _ipv4.Ipv4Header(GATEWAY, src, _ipv4.PROTO_ICMP, ident=self.next_ident())
        self.events["icmp_unreachable"] += 1
        self._emit_ip(_ipv4.encode(header, msg), GATEWAY)

    # ------------------------------------------------------------------ ARP, ICMP

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
            reply = _icmp.encode(_icmp.IcmpMessage(_icmp.ECHO_REPLY, 0, msg.ident, msg.seq, msg.payload))
            header = _ipv4.Ipv4Header(ip.dst, ip.src, _ipv4.PROTO_ICMP, ident=self.next_ident())
            self.events["icmp_echo"] += 1
            self._emit_ip(_ipv4.encode(header, reply), ip.dst)
        else:
            self.events["dropped"] += 1  # pings beyond the router need raw sockets: not relayed

    # ------------------------------------------------------------------ UDP: DHCP, DNS, relay

    def _udp(self, f: Frame, raw: bytes) -> None:
        dgram, ip = f.udp, f.ip
        assert dgram is not None and ip is not None
        if dgram.dst_port == 67:
            if ip.dst in ("255.255.255.255", GATEWAY, BROADCAST_IP):
                self._dhcp(dgram.payload)
            return
        if ip.dst == DNS_SERVER:
            if dgram.dst_port == 53 and self._nursery is not None:
                self.events["dns_queries"] += 1
                self._nursery.start_soon(self._dns, dgram.payload, ip.src, dgram.src_port)
            else:
                self.icmp_unreachable(raw, 3)  # port unreachable
            return
        target = host_address(ip.dst)
        if target is None:
            self.events["dropped"] += 1
            return
        key = (ip.src, dgram.src_port)
        flow = self.udp_flows.get(key)
        if flow is None:
            if len(self.udp_flows) >= MAX_UDP_FLOWS or self._nursery is None:
                self.events["dropped"] += 1
                return
            try:
                flow = _UdpFlow(self, key)
            except OSError:  # out of file descriptors: a lost datagram
                self.events["dropped"] += 1
                return
            self.udp_flows[key] = flow
            self.events["udp_flows"] += 1
            self._nursery.start_soon(flow.run)
        flow.send(dgram.payload, (target, dgram.dst_port))

    def _dhcp(self, payload: bytes) -> None:
        """Answer DISCOVER with OFFER, REQUEST with ACK (or NAK), INFORM with ACK (RFC 2131)."""
        from scapy.layers.dhcp import BOOTP, DHCP

        try:
            req = BOOTP(payload)
            options = {o[0]: o[1] for o in req[DHCP].options if isinstance(o, tuple) and len(o) >= 2}
        except Exception:  # noqa: BLE001 - scapy raises many kinds on garbage
            self.events["bad_frames"] += 1
            return
        if req.op != 1:
            return
        mtype = options.get("message-type")
        ciaddr = str(req.ciaddr)
        if mtype == 1:
            reply, yiaddr = "offer", GUEST
        elif mtype == 3:
            server = options.get("server_id")
            if server is not None and str(server) != GATEWAY:
                return  # the client chose another server's offer
            wanted = str(options.get("requested_addr") or ciaddr)
            reply, yiaddr = ("ack", GUEST) if wanted == GUEST else ("nak", "0.0.0.0")
        elif mtype == 8:
            reply, yiaddr = "ack", "0.0.0.0"  # INFORM: configuration only, no lease
        else:
            return  # RELEASE, DECLINE: nothing to keep for a single fixed lease
        opts: list[object] = [("message-type", reply), ("server_id", GATEWAY)]
        if reply != "nak":
            if mtype != 8:
                opts += [("lease_time", LEASE_TIME), ("renewal_time", RENEWAL_TIME),
                         ("rebinding_time", REBINDING_TIME)]
            opts += [("subnet_mask", NETMASK), ("router", GATEWAY), ("name_server", DNS_SERVER),
                     ("domain", self.domain.encode()), ("broadcast_address", BROADCAST_IP)]
        opts.append("end")
        answer = BOOTP(op=2, htype=1, hlen=6, xid=req.xid, flags=req.flags, ciaddr=ciaddr, yiaddr=yiaddr,
                       siaddr=GATEWAY, chaddr=req.chaddr) / DHCP(options=opts)
        chaddr = bytes(req.chaddr)[:6].hex(":")
        # RFC 2131 4.1: to ciaddr if the client has one, broadcast if it asked (or for a NAK),
        # else unicast to the offered address at the client's hardware address.
        if reply == "nak" or (ciaddr == "0.0.0.0" and req.flags & 0x8000):
            dst_ip, dst_mac = "255.255.255.255", ETHER_BROADCAST
        elif ciaddr != "0.0.0.0":
            dst_ip, dst_mac = ciaddr, chaddr
        else:
            dst_ip, dst_mac = yiaddr, chaddr
        self.events[f"dhcp_{reply}"] += 1
        self.emit_udp(GATEWAY, 67, dst_ip, 68, bytes(answer), dst_mac)

    async def _dns(self, query: bytes, client: str, port: int) -> None:
        """Answer one DNS query (in its own task: the host resolver may take a while)."""
        reply = await self.dns_answer(query)
        if reply is not None:
            self.emit_udp(DNS_SERVER, 53, client, port, reply)

    async def dns_answer(self, query: bytes) -> bytes | None:
        """The reply to a DNS query, or None for something that is not a query.

        A: the hosts table (also for ``NAME.<domain>``), else the host's resolver. Other types
        for a name that exists: an empty NOERROR answer (the guest stack only asks for A).
        PTR: the hosts table in reverse. Unresolvable: NXDOMAIN; resolver trouble: SERVFAIL."""
        from scapy.layers.dns import DNS, DNSRR

        try:
            q = DNS(query)
            question = q.qd[0] if q.qd else None
        except Exception:  # noqa: BLE001
            return None
        if q.qr or question is None:
            return None
        rcode, answers = 0, []
        qname = question.qname
        name = (qname.decode("ascii", "replace") if isinstance(qname, bytes) else str(qname)).rstrip(".").lower()
        if q.opcode != 0:
            rcode = 4  # NOTIMP
        elif question.qtype == 12:  # PTR
            target = self._reverse(name)
            if target is None:
                rcode = 3
            else:
                answers.append(DNSRR(rrname=qname, type="PTR", ttl=HOSTS_TTL, rdata=target + "."))
        else:
            addrs, ttl, rcode = await self._lookup(name)
            if question.qtype in (1, 255):  # A, ANY
                answers = [DNSRR(rrname=qname, type="A", ttl=ttl, rdata=a) for a in addrs]
        reply = DNS(id=q.id, qr=1, opcode=q.opcode, aa=0, rd=q.rd, ra=1, rcode=rcode, qd=[question],
                    an=answers)
        return bytes(reply)

    async def _lookup(self, name: str) -> tuple[list[str], int, int]:
        """(addresses, ttl, rcode) for a name."""
        if name in self.hosts:
            return self.hosts[name], HOSTS_TTL, 0
        suffix = "." + self.domain
        if self.domain and name.endswith(suffix) and name[: -len(suffix)] in self.hosts:
            return self.hosts[name[: -len(suffix)]], HOSTS_TTL, 0
        if not name:
            return [], DNS_TTL, 3
        try:
            with trio.fail_after(DNS_TIMEOUT):
                addrs = await self.resolve(name)
        except trio.TooSlowError:
            self.events["dns_servfail"] += 1
            return [], DNS_TTL, 2
        except OSError as e:
            if isinstance(e, socket.gaierror) and e.errno not in _NOT_FOUND:
                self.events["dns_servfail"] += 1
                return [], DNS_TTL, 2
            addrs = []
        if not addrs:
            self.events["dns_nxdomain"] += 1
            return [], DNS_TTL, 3
        return addrs, DNS_TTL, 0

    def _reverse(self, name: str) -> str | None:
        if not name.endswith(".in-addr.arpa"):
            return None
        parts = name[: -len(".in-addr.arpa")].split(".")
        addr = ".".join(reversed(parts))
        for host, addrs in self.hosts.items():
            if addr in addrs:
                return host
        return None

    # ------------------------------------------------------------------ TCP

    def _tcp(self, f: Frame, raw: bytes) -> None:
        seg, ip = f.tcp, f.ip
        assert seg is not None and ip is not None
        key = (ip.src, seg.src_port, ip.dst, seg.dst_port)
        flow = self.tcp_flows.get(key)
        if flow is not None:
            flow.segment(seg)
            return
        if seg.flags & RST:
            return
        target = host_address(ip.dst)
        if seg.flags & (SYN | ACK) != SYN or target is None or self._nursery is None \
                or len(self.tcp_flows) >= MAX_TCP_FLOWS:
            reply = reset_for(seg)  # no such connection (or nowhere to go): refuse, as a host would
            if reply is not None:
                self.events["tcp_resets"] += 1
                self._emit_tcp_segment(reply, ip.dst, ip.src)
            return
        flow = _TcpFlow(self, key)
        self.tcp_flows[key] = flow
        self.events["tcp_flows"] += 1
        self._nursery.start_soon(flow.outbound, seg, raw, (target, seg.dst_port))

    def refuse(self, syn: TcpSegment, src: str, dst: str) -> None:
        """RST|ACK for a SYN the host refused (ECONNREFUSED there means RST here)."""
        reply = reset_for(syn)
        if reply is not None:
            self.events["tcp_resets"] += 1
            self._emit_tcp_segment(reply, src, dst)

    def ephemeral_port(self, guest: tuple[str, int]) -> int:
        """A 10.0.2.2 port for a forwarded connection, unused towards that guest endpoint."""
        low, high = EPHEMERAL
        for _ in range(high - low + 1):
            port = self._next_port
            self._next_port = low if port >= high else port + 1
            if (guest[0], guest[1], GATEWAY, port) not in self.tcp_flows:
                return port
        raise RuntimeError("no free port")

    async def _forward(self, rule: HostFwd, lsock: trio.socket.SocketType) -> None:
        """Accept host connections for one rule; each becomes a TCP connection to the guest."""
        while True:
            try:
                sock, _peer = await lsock.accept()
            except OSError:
                # EMFILE and the like: the host client waits in the backlog meanwhile. A short
                # back-off, not a poll: it only runs while the host is out of resources.
                self.events["accept_errors"] += 1
                await trio.sleep(0.1)
                continue
            guest = (rule.guest_addr, rule.guest_port)
            if len(self.tcp_flows) >= MAX_TCP_FLOWS:
                sock.close()
                self.events["dropped"] += 1
                continue
            port = self.ephemeral_port(guest)
            key = (guest[0], guest[1], GATEWAY, port)
            conn = TcpConnection((GATEWAY, port), guest, iss=secrets.randbits(32), **TCP_OPTIONS)
            flow = _TcpFlow(self, key)
            self.tcp_flows[key] = flow
            self.events["hostfwd_connections"] += 1
            assert self._nursery is not None
            self._nursery.start_soon(flow.inbound, sock, conn)


# ---------------------------------------------------------------------------------- TCP flows


class _TcpFlow:
    """One guest TCP connection spliced to one host socket.

    Three tasks: host->guest (``recv`` while the engine has send space), guest->host (``send``
    what the engine received; while the host is slow the engine's window closes, which is the
    back-pressure), and a timer sleeping until the engine's next deadline. The host socket is
    closed once both directions are done; the engine may live on a little (TIME-WAIT, the last
    ACK) and leaves the table when it reaches CLOSED."""

    def __init__(self, router: UserBackend, key: tuple[str, int, str, int]) -> None:
        self.router = router
        self.key = key
        self.conn: TcpConnection | None = None
        self.sock: trio.socket.SocketType | None = None
        self._rx = _Wakeup()  # guest data, EOF or failure: for the host writer
        self._tx = _Wakeup()  # send space or failure: for the host reader
        self._timer = _Wakeup()
        self._timer_at = math.inf
        self._pumps: trio.CancelScope | None = None
        self._reset_host = False

    def segment(self, seg: TcpSegment) -> None:
        conn = self.conn
        if conn is None:
            return  # still connecting on the host: the SYN is answered when that settles
        now = trio.current_time()
        conn.segment_received(seg, now)
        self.changed(now)

    def changed(self, now: float) -> None:
        """After any input, timer or application call: transmit, then wake whoever can move."""
        conn = self.conn
        assert conn is not None
        self.router.emit_tcp(conn, now)
        closed = conn.state == CLOSED
        if conn.available or conn.at_eof or closed:
            self._rx.set()
        if conn.send_space or closed:
            self._tx.set()
        if closed:
            if conn.error is not None:
                self._fail()
            self._timer.set()
        else:
            deadline = conn.next_deadline()
            if deadline is not None and deadline < self._timer_at:
                self._timer.set()

    def _fail(self) -> None:
        """The connection is dead (reset, timed out, aborted): stop both pumps, reset the host."""
        self._reset_host = True
        if self._pumps is not None:
            self._pumps.cancel()

    async def outbound(self, syn: TcpSegment, raw: bytes, target: tuple[str, int]) -> None:
        """A guest SYN: connect on the host first, and only then accept (or refuse) the SYN."""
        router = self.router
        src, sport, dst, dport = self.key
        try:
            try:
                with trio.fail_after(router.connect_timeout):
                    sock = await router.connect(target)
            except trio.TooSlowError:
                router.icmp_unreachable(raw, HOST_UNREACHABLE)
                return
            except OSError as e:
                if e.errno in (errno.ECONNREFUSED, errno.EMFILE, errno.ENFILE):
                    router.refuse(syn, dst, src)
                elif e.errno == errno.ENETUNREACH:
                    router.icmp_unreachable(raw, NET_UNREACHABLE)
                elif e.errno in (errno.EACCES, errno.EPERM):
                    router.icmp_unreachable(raw, ADMIN_PROHIBITED)
                else:
                    router.icmp_unreachable(raw, HOST_UNREACHABLE)
                return
            self.sock = sock
            router._sockets.add(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the guest already batches
            now = trio.current_time()
            self.conn = TcpConnection.accept((dst, dport), (src, sport), syn, now,
                                             iss=secrets.randbits(32), **TCP_OPTIONS)
            self.changed(now)  # the SYN-ACK
            await self._splice()
        finally:
            self._release()

    async def inbound(self, sock: trio.socket.SocketType, conn: TcpConnection) -> None:
        """A forwarded host connection: connect to the guest and splice."""
        self.sock = sock
        self.router._sockets.add(sock)
        self.conn = conn
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            now = trio.current_time()
            conn.connect(now)
            self.changed(now)  # the SYN
            await self._splice()
        finally:
            self._release()

    async def _splice(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_timer)
            with trio.CancelScope() as self._pumps:
                async with trio.open_nursery() as pumps:
                    pumps.start_soon(self._guarded, self._guest_to_host)
                    pumps.start_soon(self._guarded, self._host_to_guest)
            self._close_host()

    async def _guarded(self, pump: Callable[[], Awaitable[None]]) -> None:
        """Run a pump; a host socket error (reset, broken pipe) aborts the guest's connection."""
        try:
            await pump()
        except OSError:
            conn = self.conn
            assert conn is not None
            now = trio.current_time()
            conn.abort(now)  # RST to the guest
            self.changed(now)
            self._fail()

    async def _guest_to_host(self) -> None:
        conn, sock = self.conn, self.sock
        assert conn is not None and sock is not None
        while True:
            if conn.available:
                data = memoryview(conn.receive())
                self.changed(trio.current_time())  # reading may open the window: tell the guest
                while data:
                    sent = await sock.send(data)
                    data = data[sent:]
            elif conn.at_eof:
                try:
                    sock.shutdown(socket.SHUT_WR)  # the guest's FIN, passed on
                except OSError:
                    pass
                return
            elif conn.state == CLOSED:
                return
            else:
                await self._rx.wait()

    async def _host_to_guest(self) -> None:
        conn, sock = self.conn, self.sock
        assert conn is not None and sock is not None
        while True:
            if conn.state == CLOSED:
                return
            space = conn.send_space
            if not space:
                await self._tx.wait()
                continue
            data = await sock.recv(min(space, 65536))
            now = trio.current_time()
            if conn.state == CLOSED:
                return
            try:
                if data:
                    conn.send(data)
                else:
                    conn.close(now)  # the host's FIN, passed on after the data
            except TcpError:
                return
            self.changed(now)
            if not data:
                return

    async def _run_timer(self) -> None:
        """Sleep until the engine's next deadline (or until woken because it moved earlier)."""
        conn = self.conn
        assert conn is not None
        while conn.state != CLOSED:
            deadline = conn.next_deadline()
            self._timer_at = math.inf if deadline is None else deadline
            with trio.move_on_at(self._timer_at):
                await self._timer.wait()
            self._timer_at = -math.inf  # awake: nobody needs to ring
            now = trio.current_time()
            deadline = conn.next_deadline()
            if deadline is not None and now >= deadline:
                conn.poll_timers(now)
                self.changed(now)

    def _close_host(self) -> None:
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        self.router._sockets.discard(sock)
        if self._reset_host:
            try:  # linger 0: the host peer sees a reset, as it would from a real guest
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        sock.close()

    def _release(self) -> None:
        self._close_host()
        if self.router.tcp_flows.get(self.key) is self:
            del self.router.tcp_flows[self.key]


# ---------------------------------------------------------------------------------- UDP flows


class _UdpFlow:
    """One guest (address, port) relayed through one host UDP socket.

    Sends are synchronous (from ``send()`` of the backend; a full socket buffer drops the
    datagram, as a network would). Replies from any host address come back to the guest, the
    host's loopback appearing as 10.0.2.2. The receive task sleeps until a datagram or the idle
    deadline, which sends merely push back -- no timer is re-armed per datagram."""

    def __init__(self, router: UserBackend, key: tuple[str, int]) -> None:
        self.router = router
        self.key = key
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(("0.0.0.0", 0))
        router._sockets.add(self.sock)
        self.expires = trio.current_time() + router.udp_idle

    def send(self, payload: bytes, target: tuple[str, int]) -> None:
        self.expires = trio.current_time() + self.router.udp_idle
        try:
            self.sock.sendto(payload, target)
        except OSError:
            self.router.events["udp_send_errors"] += 1

    async def run(self) -> None:
        router = self.router
        guest_ip, guest_port = self.key
        tsock = trio.socket.from_stdlib_socket(self.sock)
        try:
            while True:
                with trio.move_on_at(self.expires):
                    try:
                        data, (addr, port) = await tsock.recvfrom(65536)
                    except OSError:  # ICMP errors surface here (ECONNREFUSED): nothing to do
                        continue
                    self.expires = trio.current_time() + router.udp_idle
                    src = GATEWAY if addr.startswith("127.") else addr
                    router.emit_udp(src, port, guest_ip, guest_port, data)
                    continue
                if trio.current_time() >= self.expires:
                    return
        finally:
            router._sockets.discard(self.sock)
            tsock.close()
            if router.udp_flows.get(self.key) is self:
                del router.udp_flows[self.key]


def make_user_backend(arg: str, hosts: str | None = None) -> UserBackend:
    """``--net user[,OPTIONS]``: the words after ``user,`` (see :func:`parse_user_options`);
    ``hosts`` is the front door's ``--hosts FILE`` (a ``hosts=`` option wins)."""
    opts = parse_user_options(arg)
    hosts_file = opts.hosts or hosts
    table = load_hosts(hosts_file) if hosts_file else None
    spec = "user," + arg if arg else "user"
    return UserBackend(hostfwd=opts.hostfwd, hosts=table, domain=opts.domain, spec=spec)
