"""The /tcp/udp/PORT protocol: a bound UDP socket's datagrams as records, both ways.

A connected socket (/tcp/udp/HOST:PORT) has one peer, so its READ and WRITE carry bare
payloads. A bound socket (/tcp/udp/PORT) talks to anyone, so each datagram travels with its
peer's address, in a record of its own in the request's or the reply's chunk:

    u8 host length, u16 port (network order), host (ASCII), payload

    WRITE(n, chunk of a record)   -> OK(payload bytes): sendto host:port; host an IPv4 address
                                     or a DNS name (resolved by the stack)
    READ(timeout_ms, max)         -> DATA(n, chunk of a record): the next datagram and who sent
                                     it (host a dotted address), its payload cut to `max`;
                                     EMPTY when `timeout_ms` (> 0) passed first; 0 waits as
                                     long as it takes
    QUERY                         -> JSON {"type": "udp", "port", "remote": null, "queued"}

Shared by both ends (net/sessions/udp.py and euralios.std.net.DatagramSocket), sans-IO: bytes
in, typed values out, ValueError for a record that is not one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("!BH")  # host length, port
MAX_HOST = 253  # a DNS name's longest text form


@dataclass(frozen=True, slots=True)
class Datagram:
    """One datagram and its peer: where it came from (READ) or where it goes (WRITE)."""

    host: str
    port: int
    payload: bytes

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


def encode(dgram: Datagram) -> bytes:
    """A datagram -> its record; ValueError for a host or port no record can carry."""
    host = dgram.host.encode("ascii", "strict") if dgram.host.isascii() else b""
    if not host or len(host) > MAX_HOST:
        raise ValueError(f"bad host {dgram.host!r}: an address or a name of 1-{MAX_HOST} ASCII characters")
    if not 0 < dgram.port < 65536:
        raise ValueError(f"bad port {dgram.port}: 1-65535")
    return HEADER.pack(len(host), dgram.port) + host + bytes(dgram.payload)


def decode(record: bytes) -> Datagram:
    """A record -> the datagram; ValueError when it is cut short or names no peer."""
    if len(record) < HEADER.size:
        raise ValueError(f"a datagram record of {len(record)} bytes is shorter than its header")
    n, port = HEADER.unpack_from(record)
    end = HEADER.size + n
    if n == 0 or len(record) < end:
        raise ValueError("a datagram record's host is empty or cut short")
    raw = record[HEADER.size:end]
    if not raw.isascii() or any(c <= 32 or c == 127 for c in raw):
        raise ValueError("a datagram record's host is not printable ASCII")
    if port == 0:
        raise ValueError("a datagram record names port 0")
    return Datagram(raw.decode("ascii"), port, bytes(record[end:]))
