"""ARP for IPv4 over Ethernet (RFC 826). Rare traffic, so both directions use scapy's ``ARP``
layer; decoding first checks the fixed shape with ``struct`` because scapy would happily
dissect a truncated or non-Ethernet/IPv4 ARP packet."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from scapy.layers.l2 import ARP

from proto.wire import DecodeError

__all__ = ["ArpPacket", "ArpOp", "encode", "decode", "PACKET_LEN", "REQUEST", "REPLY"]

PACKET_LEN = 28


class ArpOp(IntEnum):
    """The operation field. An IntEnum, so packets print their kind and compare to the number;
    a decoded packet with another op (RARP's 3 and 4, ...) keeps the plain number."""

    REQUEST = 1
    REPLY = 2


REQUEST = ArpOp.REQUEST
REPLY = ArpOp.REPLY
_OPS = {op.value: op for op in ArpOp}

_SHAPE = struct.Struct("!HHBB")  # hardware type, protocol type, hardware len, protocol len


@dataclass(frozen=True, slots=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP request or reply (``op`` is ``REQUEST`` or ``REPLY``)."""

    op: ArpOp | int
    sender_mac: str
    sender_ip: str
    target_mac: str = "00:00:00:00:00:00"
    target_ip: str = "0.0.0.0"


def encode(pkt: ArpPacket) -> bytes:
    """The 28-byte ARP packet. Every field is given to scapy explicitly: its defaults come from
    the *host's* interfaces, which must never leak into the guest's packets."""
    return bytes(
        ARP(
            hwtype=1,
            ptype=0x0800,
            hwlen=6,
            plen=4,
            op=pkt.op,
            hwsrc=pkt.sender_mac,
            psrc=pkt.sender_ip,
            hwdst=pkt.target_mac,
            pdst=pkt.target_ip,
        )
    )


def decode(data: bytes) -> ArpPacket:
    """Parse an ARP packet (the Ethernet payload; trailing padding ignored)."""
    if len(data) < PACKET_LEN:
        raise DecodeError(f"arp: {len(data)} bytes is shorter than the 28-byte packet")
    hwtype, ptype, hwlen, plen = _SHAPE.unpack_from(data)
    if (hwtype, ptype, hwlen, plen) != (1, 0x0800, 6, 4):
        raise DecodeError(f"arp: not Ethernet/IPv4 (htype={hwtype} ptype={ptype:#x} hlen={hwlen} plen={plen})")
    try:
        a = ARP(bytes(data[:PACKET_LEN]))
        op = int(a.op)
        return ArpPacket(_OPS.get(op, op), str(a.hwsrc), str(a.psrc), str(a.hwdst), str(a.pdst))
    except Exception as exc:  # scapy should not fail on a validated 28 bytes; never leak it
        raise DecodeError(f"arp: {exc}") from exc
