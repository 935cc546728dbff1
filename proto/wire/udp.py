"""UDP datagrams (RFC 768), ``struct`` both ways.

Encoding is ``struct`` rather than scapy's layer because relayed UDP is a data path: the ``user``
router (machine/netdev/user/) wraps every datagram from a host socket for the guest. The tests
check the bytes against scapy. Decoding is strict (see the package docstring for why)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proto.wire import ChecksumError, DecodeError, ip_to_bytes
from proto.wire.checksum import finish, ones_sum, pseudo_header_sum

__all__ = ["UdpDatagram", "encode", "decode", "HEADER_LEN"]

HEADER_LEN = 8
_HDR = struct.Struct("!HHHH")


@dataclass(frozen=True, slots=True)
class UdpDatagram:
    """Ports and payload; length and checksum are derived on encode, checked on decode."""

    src_port: int
    dst_port: int
    payload: bytes = b""


def encode(dgram: UdpDatagram, src_ip: str, dst_ip: str) -> bytes:
    """UDP header + payload, checksum over the pseudo-header (a computed 0 is sent as 0xFFFF)."""
    payload = dgram.payload
    length = HEADER_LEN + len(payload)
    if length > 0xFFFF - 20:
        raise ValueError("udp: payload too large for one IPv4 datagram")
    sport, dport = dgram.src_port, dgram.dst_port
    # The header's words (checksum 0) are summed as integers instead of packed twice.
    csum = finish(pseudo_header_sum(ip_to_bytes(src_ip), ip_to_bytes(dst_ip), 17, length)
                  + sport + dport + length + ones_sum(payload)) or 0xFFFF
    return _HDR.pack(sport, dport, length, csum) + payload


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
        total = pseudo_header_sum(ip_to_bytes(src_ip), ip_to_bytes(dst_ip), 17, length)
        if finish(total + ones_sum(data[:length])) != 0:
            raise ChecksumError("udp: bad checksum")
    return UdpDatagram(sport, dport, bytes(data[HEADER_LEN:length]))
