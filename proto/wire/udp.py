"""UDP datagrams (RFC 768): ``struct`` both ways.

There is one UDP encoder, ``encode``'s core, and everything that sends UDP goes through it:
``build_ipv4_udp`` puts it in an IPv4 datagram (the user-mode router relays guest UDP with it,
a data path where scapy's ~0.5 ms a packet would show), ``frame.build_udp_frame`` adds
Ethernet (DHCP, DNS). The tests hold it byte-for-byte to scapy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proto.wire import ChecksumError, DecodeError, ip_to_bytes
from proto.wire import ipv4 as _ipv4
from proto.wire.checksum import finish, ones_sum, pseudo_header_sum

__all__ = ["UdpDatagram", "encode", "decode", "build_ipv4_udp", "HEADER_LEN"]

HEADER_LEN = 8
_HDR = struct.Struct("!HHHH")
_MAX_LEN = 0xFFFF - _ipv4.HEADER_LEN  # the most one IPv4 datagram without options can carry


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """Ports and payload; length and checksum are derived on encode, checked on decode."""

    src_port: int
    dst_port: int
    payload: bytes = b""


def _encode(src: bytes, dst: bytes, src_port: int, dst_port: int, payload: bytes) -> bytes:
    """UDP header + payload, checksum over the pseudo-header (a computed 0 is sent as 0xFFFF,
    since 0 on the wire means "no checksum")."""
    length = HEADER_LEN + len(payload)
    if length > _MAX_LEN:
        raise ValueError("udp: payload too large for one IPv4 datagram")
    total = pseudo_header_sum(src, dst, _ipv4.PROTO_UDP, length) + src_port + dst_port + length
    csum = finish(total + ones_sum(payload)) or 0xFFFF
    return _HDR.pack(src_port, dst_port, length, csum) + payload


def encode(dgram: UdpDatagram, src_ip: str, dst_ip: str) -> bytes:
    """UDP header + payload (the IPv4 payload); the checksum's pseudo-header needs the addresses."""
    return _encode(ip_to_bytes(src_ip), ip_to_bytes(dst_ip), dgram.src_port, dgram.dst_port, dgram.payload)


def build_ipv4_udp(
    src_ip: str,
    dst_ip: str,
    src_port: int,
    dst_port: int,
    payload: bytes,
    *,
    ident: int = 0,
    ttl: int = 64,
) -> bytes:
    """One IPv4 datagram (DF, no options) carrying a UDP datagram, both checksums set.

    ``src_ip`` may be ``0.0.0.0`` and ``dst_ip`` a broadcast, as DHCP needs."""
    udp = _encode(ip_to_bytes(src_ip), ip_to_bytes(dst_ip), src_port, dst_port, payload)
    header = _ipv4.Ipv4Header(src_ip, dst_ip, _ipv4.PROTO_UDP, ttl=ttl, ident=ident)
    return _ipv4.encode_header(header, len(udp)) + udp


def decode(data: bytes, src_ip: str, dst_ip: str, *, verify: bool = True) -> UdpDatagram:
    """Parse a UDP datagram (the IPv4 payload). The length field must fit the data (any excess
    is padding and is ignored); a zero checksum means "not computed" (RFC 768) and is accepted."""
    n = len(data)
    if n < HEADER_LEN:
        raise DecodeError(f"udp: {n} bytes is shorter than the 8-byte header")
    sport, dport, length, csum = _HDR.unpack_from(data)
    if length < HEADER_LEN or length > n:
        raise DecodeError(f"udp: length field {length} invalid for {n} bytes received")
    if verify and csum != 0:
        total = pseudo_header_sum(ip_to_bytes(src_ip), ip_to_bytes(dst_ip), _ipv4.PROTO_UDP, length)
        if finish(total + ones_sum(data[:length])) != 0:
            raise ChecksumError("udp: bad checksum")
    return UdpDatagram(sport, dport, bytes(data[HEADER_LEN:length]))
