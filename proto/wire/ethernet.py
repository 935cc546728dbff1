"""Ethernet II framing (no 802.1Q interpretation: a VLAN tag is just an unknown EtherType).

Every frame passes through here, so it is ``struct`` (see the package docstring)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proto.wire import DecodeError, bytes_to_mac, mac_to_bytes

__all__ = [
    "EthernetHeader",
    "encode",
    "decode",
    "HEADER_LEN",
    "MIN_FRAME_LEN",
    "ETH_P_IPV4",
    "ETH_P_ARP",
    "BROADCAST",
]

HEADER_LEN = 14
MIN_FRAME_LEN = 60  # without the FCS; shorter frames are padded on the wire
ETH_P_IPV4 = 0x0800
ETH_P_ARP = 0x0806
BROADCAST = "ff:ff:ff:ff:ff:ff"

_HDR = struct.Struct("!6s6sH")


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """Destination and source MAC (text) and the EtherType of the payload."""

    dst: str
    src: str
    ethertype: int


def encode(header: EthernetHeader, payload: bytes = b"", *, pad: bool = False) -> bytes:
    """Header + payload. ``pad=True`` zero-pads to the 60-byte minimum, for NICs that don't.

    Receivers never depend on the padding: IPv4 and ARP carry their own lengths."""
    frame = _HDR.pack(mac_to_bytes(header.dst), mac_to_bytes(header.src), header.ethertype) + payload
    if pad and len(frame) < MIN_FRAME_LEN:
        frame += bytes(MIN_FRAME_LEN - len(frame))
    return frame


def decode(data: bytes) -> tuple[EthernetHeader, bytes]:
    """-> (header, payload). The payload may include padding and an FCS; upper layers trim it."""
    if len(data) < HEADER_LEN:
        raise DecodeError(f"ethernet: frame of {len(data)} bytes is shorter than the 14-byte header")
    dst, src, ethertype = _HDR.unpack_from(data)
    return EthernetHeader(bytes_to_mac(dst), bytes_to_mac(src), ethertype), bytes(data[HEADER_LEN:])
