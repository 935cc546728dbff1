"""What the network card does for the stack (checksums, TSO, large receive), and what that
asks of each frame: the typed configuration the stack is built with, and the virtio-net header
(proto/wire/vnet.py) that travels with an offloaded frame.

Why a configuration and not a guess: an offload the card does not do is a frame the wire
refuses (a wrong checksum, a 64 KiB "segment"), so the stack uses only what the card said it
does. ``NicOffloads()`` -- everything off -- is the RTL8139's case and produces exactly the
frames the stack sent before offloads existed, each with ``NO_OFFLOAD``.

* ``tx_csum``: TCP frames leave with the pseudo-header sum in the checksum field and a header
  saying NEEDS_CSUM, csum_start 34 (after Ethernet and IPv4), csum_offset 16 (TCP's field), as
  Linux's CHECKSUM_PARTIAL does.
* ``tso_max`` > 0 (needs ``tx_csum``, as virtio's HOST_TSO4 needs CSUM): TCP may emit one
  segment of up to that many payload bytes, sent with gso_type TCPV4, gso_size the connection's
  effective MSS and hdr_len the bytes of headers each piece repeats.
* ``rx_csum``: a frame received marked DATA_VALID (or NEEDS_CSUM: the host's own unfinished
  checksum) skips the TCP/UDP checksum check; the IPv4 header's is still checked.
* ``large_receive``: frames received with a GSO type (up to 64 KiB of one in-order TCP segment,
  coalesced by the host) are taken as one segment; without it such a frame is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from euralios.std.protocols.nic import HDR_FRAME_MAX
from proto.virtio import Feature
from proto.wire.vnet import NO_OFFLOAD, GsoType, HdrFlags, VnetHdr

__all__ = ["NicOffloads", "NO_OFFLOADS", "offloads_from_features", "TSO_VIA_NIC", "TSO_PAYLOAD_MAX", "CSUM_START", "CSUM_OFFSET", "tcp_tx_header",
           "rx_checksum_done", "NO_OFFLOAD", "CSUM_ONLY"]

ETH_IP = 14 + 20  # Ethernet + an IPv4 header without options: where TCP starts in our frames
CSUM_START = ETH_IP
CSUM_OFFSET = 16  # the checksum field's offset in a TCP header
# The most payload one IPv4 datagram can carry with a full TCP option area (65535 - 20 - 60).
TSO_PAYLOAD_MAX = 0xFFFF - 20 - 60
# The most payload one segment may carry through /dev/nic: its frame, with the largest headers,
# fits one header batch (euralios.std.protocols.nic.HDR_FRAME_MAX).
TSO_VIA_NIC = HDR_FRAME_MAX - ETH_IP - 60


@dataclass(frozen=True, slots=True)
class NicOffloads:
    """What the card does; all off by default (see the module docstring for each)."""

    tx_csum: bool = False
    tso_max: int = 0
    rx_csum: bool = False
    large_receive: bool = False

    def __post_init__(self) -> None:
        if self.tso_max < 0:
            raise ValueError(f"tso_max {self.tso_max}: a number of bytes, not negative")
        if self.tso_max and not self.tx_csum:
            raise ValueError("TSO needs checksum offload (the card checksums each piece it cuts)")

    @property
    def tso_payload(self) -> int:
        """The largest TCP payload to put in one segment for this card (0: no TSO)."""
        return min(self.tso_max, TSO_PAYLOAD_MAX)

    def as_dict(self) -> dict[str, object]:
        return {"tx_csum": self.tx_csum, "tso_max": self.tso_max, "rx_csum": self.rx_csum,
                "large_receive": self.large_receive}


NO_OFFLOADS = NicOffloads()


def tcp_tx_header(frame: bytes, gso_size: int) -> VnetHdr:
    """The header for a TCP frame built with a partial checksum (``build_tcp_frame(...,
    partial_csum=True)``): NEEDS_CSUM, and a GSO request when its payload is larger than
    ``gso_size`` (the connection's effective MSS)."""
    tcp_hlen = (frame[ETH_IP + 12] >> 4) * 4
    hdr_len = ETH_IP + tcp_hlen
    if 0 < gso_size < len(frame) - hdr_len:
        return VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, hdr_len, gso_size, CSUM_START, CSUM_OFFSET)
    return CSUM_ONLY


#: A TCP frame's header when only its checksum is left to do (every ACK): one object for all.
CSUM_ONLY = VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.NONE, 0, 0, CSUM_START, CSUM_OFFSET)
# The flags values that say the checksum needs no check here (an IntFlag "&" costs ~5x a lookup).
_RX_DONE = frozenset(f for f in (HdrFlags(i) for i in range(8)) if f & (HdrFlags.DATA_VALID | HdrFlags.NEEDS_CSUM))


def rx_checksum_done(offloads: NicOffloads, hdr: VnetHdr) -> bool:
    """May the L4 checksum of a frame received with ``hdr`` go unchecked?"""
    return offloads.rx_csum and hdr.flags in _RX_DONE


def offloads_from_features(bits: int) -> NicOffloads:
    """The offloads of a card whose driver negotiated the virtio feature ``bits`` (/dev/nic's
    GET_FEATURES; 0 for a card without any): CSUM -> tx_csum, HOST_TSO4 (with CSUM) -> TSO up to
    TSO_VIA_NIC, GUEST_CSUM -> rx_csum, GUEST_TSO4 -> large_receive."""
    tx_csum = bool(bits & Feature.NET_CSUM)
    return NicOffloads(tx_csum=tx_csum, tso_max=TSO_VIA_NIC if tx_csum and bits & Feature.NET_HOST_TSO4 else 0,
                       rx_csum=bool(bits & Feature.NET_GUEST_CSUM),
                       large_receive=bool(bits & Feature.NET_GUEST_TSO4))
