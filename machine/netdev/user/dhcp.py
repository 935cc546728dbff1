"""The ``user`` router's DHCP server (RFC 2131): one fixed lease, 10.0.2.15/24.

**DHCP**: the guest gets 10.0.2.15/24 with router, DNS server, domain name and lease times
(24 h, T1 12 h, T2 21 h), so an unconfigured guest needs nothing but a DHCP client. There is a
single guest on the wire and a single address to give, so the server keeps no lease table.

Off the data path (a handful of messages per boot), so scapy reads and builds the messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from machine.netdev.user.segment import (
    BROADCAST_IP,
    DNS_SERVER,
    ETHER_BROADCAST,
    GATEWAY,
    GUEST,
    NETMASK,
)
from proto.wire import DecodeError

__all__ = ["DhcpReply", "DhcpAnswer", "answer", "LEASE_TIME", "RENEWAL_TIME", "REBINDING_TIME"]

LEASE_TIME = 86400  # QEMU's slirp also leases for 24 hours
RENEWAL_TIME = LEASE_TIME // 2
REBINDING_TIME = LEASE_TIME * 7 // 8


class _Request(IntEnum):
    """The client messages the server answers (DHCP option 53)."""

    DISCOVER = 1
    REQUEST = 3
    INFORM = 8


class DhcpReply(StrEnum):
    """What the server answers; the values are scapy's message-type names."""

    OFFER = "offer"
    ACK = "ack"
    NAK = "nak"


@dataclass(frozen=True, slots=True)
class DhcpAnswer:
    """A reply: its kind, the BOOTP payload for UDP port 68, and where to send it."""

    kind: DhcpReply
    payload: bytes
    dst_ip: str
    dst_mac: str


def answer(payload: bytes, domain: str) -> DhcpAnswer | None:
    """Answer DISCOVER with OFFER, REQUEST with ACK (or NAK), INFORM with ACK (RFC 2131).

    None for what needs no answer (a reply, RELEASE, DECLINE, another server's offer chosen);
    DecodeError for a payload that is not a BOOTP message with DHCP options."""
    from scapy.layers.dhcp import BOOTP, DHCP

    try:
        req = BOOTP(payload)
        options = {o[0]: o[1] for o in req[DHCP].options if isinstance(o, tuple) and len(o) >= 2}
    except Exception:  # noqa: BLE001 - scapy raises many kinds on garbage
        raise DecodeError("dhcp: not a BOOTP message with DHCP options") from None
    if req.op != 1:
        return None
    mtype = options.get("message-type")
    ciaddr = str(req.ciaddr)
    if mtype == _Request.DISCOVER:
        reply, yiaddr = DhcpReply.OFFER, GUEST
    elif mtype == _Request.REQUEST:
        server = options.get("server_id")
        if server is not None and str(server) != GATEWAY:
            return None  # the client chose another server's offer
        wanted = str(options.get("requested_addr") or ciaddr)
        reply, yiaddr = (DhcpReply.ACK, GUEST) if wanted == GUEST else (DhcpReply.NAK, "0.0.0.0")
    elif mtype == _Request.INFORM:
        reply, yiaddr = DhcpReply.ACK, "0.0.0.0"  # configuration only, no lease
    else:
        return None  # RELEASE, DECLINE: nothing to keep for a single fixed lease
    opts: list[object] = [("message-type", reply.value), ("server_id", GATEWAY)]
    if reply != DhcpReply.NAK:
        if mtype != _Request.INFORM:
            opts += [("lease_time", LEASE_TIME), ("renewal_time", RENEWAL_TIME),
                     ("rebinding_time", REBINDING_TIME)]
        opts += [("subnet_mask", NETMASK), ("router", GATEWAY), ("name_server", DNS_SERVER),
                 ("domain", domain.encode()), ("broadcast_address", BROADCAST_IP)]
    opts.append("end")
    packet = BOOTP(op=2, htype=1, hlen=6, xid=req.xid, flags=req.flags, ciaddr=ciaddr, yiaddr=yiaddr,
                   siaddr=GATEWAY, chaddr=req.chaddr) / DHCP(options=opts)
    chaddr = bytes(req.chaddr)[:6].hex(":")
    # RFC 2131 4.1: to ciaddr if the client has one, broadcast if it asked (or for a NAK),
    # else unicast to the offered address at the client's hardware address.
    if reply == DhcpReply.NAK or (ciaddr == "0.0.0.0" and req.flags & 0x8000):
        dst_ip, dst_mac = "255.255.255.255", ETHER_BROADCAST
    elif ciaddr != "0.0.0.0":
        dst_ip, dst_mac = ciaddr, chaddr
    else:
        dst_ip, dst_mac = yiaddr, chaddr
    return DhcpAnswer(reply, bytes(packet), dst_ip, dst_mac)
