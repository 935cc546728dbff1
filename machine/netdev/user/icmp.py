"""The ``user`` router's ICMP: echo replies for its own addresses, destination unreachable.

**ICMP** echo is answered for the gateway and the DNS server, so ping works without raw sockets
(pings beyond the router would need them, and are dropped). Destination unreachable is how the
router tells the guest what the host's connect said (no route, refused by policy, timed out) --
the same answer the guest would get on a real network.
"""

from __future__ import annotations

from enum import IntEnum

from machine.netdev.user.segment import GATEWAY
from proto.wire import icmp as _icmp
from proto.wire import ipv4 as _ipv4
from proto.wire.icmp import IcmpMessage
from proto.wire.ipv4 import Ipv4Header

__all__ = ["Unreachable", "echo_reply", "unreachable"]


class Unreachable(IntEnum):
    """ICMP destination-unreachable codes (RFC 792, RFC 1812) the router sends."""

    NET = 0
    HOST = 1
    PORT = 3
    ADMIN_PROHIBITED = 13


def echo_reply(request: IcmpMessage, ip: Ipv4Header, ident: int) -> bytes:
    """The IPv4 echo reply to ``request`` (which came in ``ip``), from the address it was sent to."""
    reply = _icmp.encode(IcmpMessage(_icmp.ECHO_REPLY, 0, request.ident, request.seq, request.payload))
    return _ipv4.encode(Ipv4Header(ip.dst, ip.src, _ipv4.PROTO_ICMP, ident=ident), reply)


def unreachable(raw_frame: bytes, code: Unreachable, ident: int) -> bytes:
    """Destination unreachable (from the gateway) for the datagram in ``raw_frame``, an Ethernet
    frame: the IPv4 packet quoting its header + 8 bytes."""
    ip = raw_frame[14:]
    quoted = ip[: (ip[0] & 0xF) * 4 + 8]
    src = _ipv4.decode(ip, verify=False)[0].src
    msg = _icmp.encode(IcmpMessage(_icmp.DEST_UNREACHABLE, code, 0, 0, quoted))
    return _ipv4.encode(Ipv4Header(GATEWAY, src, _ipv4.PROTO_ICMP, ident=ident), msg)
