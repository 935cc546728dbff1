"""IPv4 header (RFC 791): ``struct`` both ways, header checksum computed and verified.

Options are carried as raw bytes (the stack neither sends nor interprets any; keeping them raw
lets a router forward them untouched). Fragments are decoded as headers, but nothing here
reassembles them: the stack sends with DF and an MTU of 1500, and ``frame.decode_frame`` leaves
a fragment's payload unparsed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proto.wire import ChecksumError, DecodeError, bytes_to_ip, ip_to_bytes
from proto.wire.checksum import internet_checksum

__all__ = [
    "Ipv4Header",
    "encode",
    "decode",
    "encode_header",
    "HEADER_LEN",
    "PROTO_ICMP",
    "PROTO_TCP",
    "PROTO_UDP",
    "FLAG_DF",
    "FLAG_MF",
]

HEADER_LEN = 20
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
FLAG_DF = 0x2  # the 3-bit flags field as scapy numbers it: bit 1 = DF, bit 0 = MF
FLAG_MF = 0x1

_HDR = struct.Struct("!BBHHHBBH4s4s")


@dataclass(frozen=True, slots=True)
class Ipv4Header:
    """An IPv4 header without its payload. Lengths and checksum are derived on encode.

    ``flags`` is the 3-bit field (``FLAG_DF``/``FLAG_MF``), ``frag_offset`` in 8-byte units."""

    src: str
    dst: str
    proto: int
    ttl: int = 64
    tos: int = 0
    ident: int = 0
    flags: int = FLAG_DF
    frag_offset: int = 0
    options: bytes = b""

    @property
    def is_fragment(self) -> bool:
        """True for any piece of a fragmented datagram (MF set or a non-zero offset)."""
        return bool(self.flags & FLAG_MF) or self.frag_offset != 0


def encode_header(header: Ipv4Header, payload_len: int) -> bytes:
    """The header bytes (with checksum) for a payload of ``payload_len`` bytes.

    Options are zero-padded (EOL) to a multiple of 4 bytes, as the IHL field requires."""
    opts = header.options
    if len(opts) % 4:
        opts += bytes(4 - len(opts) % 4)
    ihl = 5 + len(opts) // 4
    if ihl > 15:
        raise ValueError("ipv4: options longer than 40 bytes")
    total = ihl * 4 + payload_len
    if total > 0xFFFF:
        raise ValueError(f"ipv4: datagram of {total} bytes exceeds 65535")
    fields = (
        0x40 | ihl,
        header.tos,
        total,
        header.ident,
        (header.flags << 13) | header.frag_offset,
        header.ttl,
        header.proto,
    )
    raw = _HDR.pack(*fields, 0, ip_to_bytes(header.src), ip_to_bytes(header.dst)) + opts
    csum = internet_checksum(raw)
    return raw[:10] + csum.to_bytes(2, "big") + raw[12:]


def encode(header: Ipv4Header, payload: bytes = b"") -> bytes:
    """Header + payload."""
    return encode_header(header, len(payload)) + payload


def decode(data: bytes, *, verify: bool = True) -> tuple[Ipv4Header, bytes]:
    """-> (header, payload), the payload cut to the total length (dropping Ethernet padding).

    Rejects: short data, version != 4, IHL < 5, IHL or total length past the data, total length
    shorter than the header; with ``verify`` a bad header checksum raises ``ChecksumError``."""
    n = len(data)
    if n < HEADER_LEN:
        raise DecodeError(f"ipv4: {n} bytes is shorter than the 20-byte header")
    vihl, tos, total, ident, frag, ttl, proto, _csum, src, dst = _HDR.unpack_from(data)
    if vihl >> 4 != 4:
        raise DecodeError(f"ipv4: version {vihl >> 4}")
    hlen = (vihl & 0xF) * 4
    if hlen < HEADER_LEN:
        raise DecodeError(f"ipv4: IHL {hlen // 4} is below the minimum of 5")
    if hlen > n:
        raise DecodeError(f"ipv4: header length {hlen} exceeds the {n} bytes received")
    if total < hlen:
        raise DecodeError(f"ipv4: total length {total} is shorter than the header ({hlen})")
    if total > n:
        raise DecodeError(f"ipv4: total length {total} exceeds the {n} bytes received")
    if verify and internet_checksum(data[:hlen]) != 0:
        raise ChecksumError("ipv4: bad header checksum")
    header = Ipv4Header(
        src=bytes_to_ip(src),
        dst=bytes_to_ip(dst),
        proto=proto,
        ttl=ttl,
        tos=tos,
        ident=ident,
        flags=frag >> 13,
        frag_offset=frag & 0x1FFF,
        options=bytes(data[HEADER_LEN:hlen]),
    )
    return header, bytes(data[hlen:total])
