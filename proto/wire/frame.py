"""Whole Ethernet frames: ``decode_frame`` for everything received, ``build_*`` for sending.

``decode_frame`` is the stack's one entry point for received bytes: it either returns a
:class:`Frame` or raises :class:`~proto.wire.DecodeError`; nothing else escapes, whatever the
bytes (the tests fuzz it). IPv4+TCP goes through the struct fast path.

The builders only add what this layer adds -- the Ethernet header -- to what each protocol's
module encodes (``tcp.build_ipv4_tcp``, ``udp.build_ipv4_udp``, ``icmp.encode``, ``arp.encode``),
so every protocol has exactly one encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from proto.wire import DecodeError
from proto.wire import arp as _arp
from proto.wire import ethernet as _eth
from proto.wire import icmp as _icmp
from proto.wire import ipv4 as _ipv4
from proto.wire import tcp as _tcp
from proto.wire import udp as _udp
from proto.wire.arp import ArpPacket
from proto.wire.ethernet import BROADCAST, ETH_P_ARP, ETH_P_IPV4, EthernetHeader
from proto.wire.icmp import IcmpMessage
from proto.wire.ipv4 import Ipv4Header
from proto.wire.tcp import TcpSegment
from proto.wire.udp import UdpDatagram

__all__ = [
    "Frame",
    "decode_frame",
    "build_tcp_frame",
    "build_udp_frame",
    "build_arp",
    "build_icmp_echo",
]

Upper = ArpPacket | TcpSegment | UdpDatagram | IcmpMessage | bytes


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: the Ethernet header, the IPv4 header if there is one, and the parsed
    upper layer -- or the raw bytes when it is a protocol we do not parse (another EtherType,
    another IP protocol, an IP fragment)."""

    eth: EthernetHeader
    ip: Ipv4Header | None
    payload: Upper

    @property
    def tcp(self) -> TcpSegment | None:
        return self.payload if isinstance(self.payload, TcpSegment) else None

    @property
    def udp(self) -> UdpDatagram | None:
        return self.payload if isinstance(self.payload, UdpDatagram) else None

    @property
    def icmp(self) -> IcmpMessage | None:
        return self.payload if isinstance(self.payload, IcmpMessage) else None

    @property
    def arp(self) -> ArpPacket | None:
        return self.payload if isinstance(self.payload, ArpPacket) else None


def decode_frame(data: bytes | bytearray | memoryview, *, verify: bool = True) -> Frame:
    """Decode a received Ethernet frame. ``verify=False`` skips checksum checks (for reading
    captures with offloaded checksums); length checks always apply.

    Raises only ``DecodeError`` (``ChecksumError`` for corruption)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    try:
        eth, body = _eth.decode(data)
        if eth.ethertype == ETH_P_IPV4:
            # Fast path: no IP options, TCP, not a fragment (MF clear, offset zero).
            if (
                len(body) >= 40
                and body[0] == 0x45
                and body[9] == _ipv4.PROTO_TCP
                and not (body[6] & 0x3F or body[7])
            ):
                ip, seg = _tcp.parse_ipv4_tcp(body, verify=verify)
                return Frame(eth, ip, seg)
            ip, inner = _ipv4.decode(body, verify=verify)
            upper: Upper = inner
            if not ip.is_fragment:
                if ip.proto == _ipv4.PROTO_TCP:
                    upper = _tcp.decode(inner, ip.src, ip.dst, verify=verify)
                elif ip.proto == _ipv4.PROTO_UDP:
                    upper = _udp.decode(inner, ip.src, ip.dst, verify=verify)
                elif ip.proto == _ipv4.PROTO_ICMP:
                    upper = _icmp.decode(inner, verify=verify)
            return Frame(eth, ip, upper)
        if eth.ethertype == ETH_P_ARP:
            return Frame(eth, None, _arp.decode(body))
        return Frame(eth, None, body)
    except DecodeError:
        raise
    except Exception as exc:  # a codec bug must not take the stack down: report it as bad input
        raise DecodeError(f"frame: {type(exc).__name__}: {exc}") from exc


def build_tcp_frame(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    seg: TcpSegment,
    *,
    ttl: int = 64,
    ident: int = 0,
    partial_csum: bool = False,
) -> bytes:
    """Ethernet + IPv4 (DF, no options) + TCP via the struct fast path (``partial_csum``: the
    TCP checksum left to the card, see ``tcp.build_ipv4_tcp``)."""
    eth = _eth.encode(EthernetHeader(dst_mac, src_mac, ETH_P_IPV4))
    return eth + _tcp.build_ipv4_tcp(seg, src_ip, dst_ip, ttl=ttl, ident=ident, partial_csum=partial_csum)


def build_udp_frame(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    src_port: int,
    dst_port: int,
    payload: bytes,
    *,
    ttl: int = 64,
    ident: int = 0,
) -> bytes:
    """Ethernet + IPv4 (DF) + UDP.

    ``src_ip`` may be ``0.0.0.0`` and ``dst_mac``/``dst_ip`` broadcast, as DHCP needs."""
    eth = _eth.encode(EthernetHeader(dst_mac, src_mac, ETH_P_IPV4))
    return eth + _udp.build_ipv4_udp(src_ip, dst_ip, src_port, dst_port, payload, ident=ident, ttl=ttl)


def build_arp(
    op: int,
    src_mac: str,
    src_ip: str,
    target_ip: str,
    target_mac: str = "00:00:00:00:00:00",
    *,
    eth_dst: str | None = None,
) -> bytes:
    """An ARP frame. Requests go to the broadcast MAC, replies to ``target_mac``, unless
    ``eth_dst`` says otherwise (e.g. a unicast re-validation request)."""
    if eth_dst is None:
        eth_dst = BROADCAST if op == _arp.REQUEST else target_mac
    body = _arp.encode(ArpPacket(op, src_mac, src_ip, target_mac, target_ip))
    return _eth.encode(EthernetHeader(eth_dst, src_mac, ETH_P_ARP), body)


def build_icmp_echo(
    src_mac: str,
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    ident: int,
    seq: int,
    payload: bytes = b"",
    *,
    reply: bool = False,
    ttl: int = 64,
    ip_ident: int = 0,
) -> bytes:
    """An ICMP echo request (or reply, answering a ping) in IPv4 (DF) and Ethernet."""
    kind = _icmp.ECHO_REPLY if reply else _icmp.ECHO_REQUEST
    msg = _icmp.encode(IcmpMessage(kind, 0, ident, seq, payload))
    ip = _ipv4.encode(Ipv4Header(src_ip, dst_ip, _ipv4.PROTO_ICMP, ttl=ttl, ident=ip_ident), msg)
    return _eth.encode(EthernetHeader(dst_mac, src_mac, ETH_P_IPV4), ip)
