"""ICMP messages (RFC 792): the 8-byte header and whatever follows it.

``struct`` both ways: the header is one fixed layout for every type, whereas scapy models the
second word with a different field set per type, which would make a generic codec type-specific
for no gain. The tests check echo messages byte-for-byte against scapy.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from proto.wire import ChecksumError, DecodeError
from proto.wire.checksum import internet_checksum

__all__ = [
    "IcmpMessage",
    "IcmpType",
    "encode",
    "decode",
    "HEADER_LEN",
    "ECHO_REPLY",
    "DEST_UNREACHABLE",
    "ECHO_REQUEST",
    "TIME_EXCEEDED",
]

HEADER_LEN = 8


class IcmpType(IntEnum):
    """The message types the stack and the router send or act on. An IntEnum, so messages print
    their kind and compare to the number; a decoded message of another type keeps the number."""

    ECHO_REPLY = 0
    DEST_UNREACHABLE = 3
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11


ECHO_REPLY = IcmpType.ECHO_REPLY
DEST_UNREACHABLE = IcmpType.DEST_UNREACHABLE
ECHO_REQUEST = IcmpType.ECHO_REQUEST
TIME_EXCEEDED = IcmpType.TIME_EXCEEDED
_TYPES = {t.value: t for t in IcmpType}

_HDR = struct.Struct("!BBHHH")


@dataclass(frozen=True, slots=True)
class IcmpMessage:
    """Type, code, the second header word as two 16-bit halves, and the payload.

    For echo request/reply ``ident`` and ``seq`` are the identifier and sequence number; for
    other types they are just the halves of the "rest of header" word (e.g. a
    fragmentation-needed message has the next-hop MTU in ``seq``), and the payload is the
    offending datagram's header and first bytes."""

    type: IcmpType | int
    code: int = 0
    ident: int = 0
    seq: int = 0
    payload: bytes = b""


def encode(msg: IcmpMessage) -> bytes:
    """Header + payload with the checksum over both."""
    raw = _HDR.pack(msg.type, msg.code, 0, msg.ident, msg.seq) + msg.payload
    csum = internet_checksum(raw)
    return raw[:2] + csum.to_bytes(2, "big") + raw[4:]


def decode(data: bytes, *, verify: bool = True) -> IcmpMessage:
    """Parse an ICMP message (the whole IPv4 payload); the checksum covers all of it."""
    if len(data) < HEADER_LEN:
        raise DecodeError(f"icmp: {len(data)} bytes is shorter than the 8-byte header")
    if verify and internet_checksum(data) != 0:
        raise ChecksumError("icmp: bad checksum")
    type_, code, _csum, ident, seq = _HDR.unpack_from(data)
    return IcmpMessage(_TYPES.get(type_, type_), code, ident, seq, bytes(data[HEADER_LEN:]))
