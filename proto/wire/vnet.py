"""The virtio-net header (virtio 1.2 §5.1.6, ``struct virtio_net_hdr``): how offloads travel.

A frame that has not been segmented or checksummed yet cannot go on a wire as it is; it travels
with this header saying what is left to do. The same 12 bytes are spoken by the guest's
virtio-net driver to the card, by the card to a tap device opened with ``IFF_VNET_HDR`` (Linux's
``struct virtio_net_hdr_v1``, set with ``TUNSETVNETHDRSZ``), by raw sockets with
``PACKET_VNET_HDR`` (the 10-byte form, without ``num_buffers``), and inside EuraliOS by /dev/nic
when the card offers offloads. One codec, so every hop agrees byte for byte.

Fields, little-endian (VERSION_1):

    flags[1] gso_type[1] hdr_len[2] gso_size[2] csum_start[2] csum_offset[2] [num_buffers[2]]

* ``NEEDS_CSUM``: the L4 checksum is not done; the sum of the pseudo header is at
  ``csum_start + csum_offset`` and the ones-complement sum from ``csum_start`` to the end goes
  there. ``DATA_VALID`` (receive only): the checksum was checked already.
* ``gso_type`` != NONE: the frame is larger than the MTU and must be cut into segments of at most
  ``gso_size`` payload bytes each; ``hdr_len`` is the length of the headers repeated in each.
* ``num_buffers``: how many receive buffers one frame was merged over (MRG_RXBUF).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from proto.wire import DecodeError

__all__ = ["GsoType", "HdrFlags", "VnetHdr", "HDR_LEN", "HDR_LEN_LEGACY", "NO_OFFLOAD"]

HDR_LEN = 12  # with num_buffers: VERSION_1 or MRG_RXBUF, and tap with TUNSETVNETHDRSZ 12
HDR_LEN_LEGACY = 10  # without: a legacy device without MRG_RXBUF, PACKET_VNET_HDR


class HdrFlags(IntFlag):
    """virtio_net_hdr.flags."""

    NONE = 0
    NEEDS_CSUM = 1
    DATA_VALID = 2
    RSC_INFO = 4


_NEEDS_CSUM = int(HdrFlags.NEEDS_CSUM)  # a plain int: an IntFlag "&" costs ~5x more


class GsoType(IntEnum):
    """virtio_net_hdr.gso_type, without the ECN bit (kept apart in :attr:`VnetHdr.ecn`)."""

    NONE = 0
    TCPV4 = 1
    UDP = 3
    TCPV6 = 4


GSO_ECN = 0x80

_FMT = struct.Struct("<BBHHHHH")
_FMT_LEGACY = struct.Struct("<BBHHHH")


@dataclass(frozen=True, slots=True)
class VnetHdr:
    """One virtio-net header. ``VnetHdr()`` is a frame with nothing left to do."""

    flags: HdrFlags = HdrFlags.NONE
    gso_type: GsoType = GsoType.NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0
    num_buffers: int = 1
    ecn: bool = False

    @property
    def needs_csum(self) -> bool:
        return bool(int(self.flags) & _NEEDS_CSUM)

    @property
    def is_gso(self) -> bool:
        return self.gso_type is not GsoType.NONE

    def pack(self, size: int = HDR_LEN, num_buffers: int | None = None) -> bytes:
        """The header in ``size`` (12 or 10) bytes; with ``num_buffers``, that count in place
        of ours (a card placing a frame: no new header built for it)."""
        gso = int(self.gso_type) | (GSO_ECN if self.ecn else 0)
        fields = (int(self.flags), gso, self.hdr_len, self.gso_size, self.csum_start, self.csum_offset)
        if size == HDR_LEN:
            return _FMT.pack(*fields, self.num_buffers if num_buffers is None else num_buffers)
        if size == HDR_LEN_LEGACY:
            return _FMT_LEGACY.pack(*fields)
        raise ValueError(f"a virtio-net header is 10 or 12 bytes, not {size}")

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview, size: int = HDR_LEN) -> VnetHdr:
        """The header at the start of ``data``; DecodeError for a short one or an unknown type."""
        if size not in (HDR_LEN, HDR_LEN_LEGACY):
            raise ValueError(f"a virtio-net header is 10 or 12 bytes, not {size}")
        if len(data) < size:
            raise DecodeError(f"virtio-net header: {len(data)} bytes, {size} needed")
        raw = bytes(data[:size])
        known = _DECODED.get(raw)
        if known is not None:
            return known
        hdr = cls._decode(data, size)
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[raw] = hdr
        return hdr

    @classmethod
    def _decode(cls, data: bytes | bytearray | memoryview, size: int) -> VnetHdr:
        if size == HDR_LEN:
            flags, gso, hdr_len, gso_size, start, offset, buffers = _FMT.unpack_from(data)
        else:
            flags, gso, hdr_len, gso_size, start, offset = _FMT_LEGACY.unpack_from(data)
            buffers = 1
        if flags & ~0x7:
            raise DecodeError(f"virtio-net header: unknown flags {flags:#x}")
        kind = _GSO_TYPES.get(gso & ~GSO_ECN)
        if kind is None:
            raise DecodeError(f"virtio-net header: unknown gso_type {gso:#x}")
        return cls(_FLAGS[flags], kind, hdr_len, gso_size, start, offset, buffers, bool(gso & GSO_ECN))


# Headers decoded lately, by their bytes: a bulk transfer's frames all carry the same one, and
# a header is immutable, so the same object serves them all (a frozen dataclass of eight fields
# costs ~2 us to build; the lookup, a tenth of that). Bounded: cleared when full.
_DECODED: dict[bytes, VnetHdr] = {}
_DECODED_MAX = 64

# Every member, looked up rather than constructed per header (an enum call costs ~1 us).
_FLAGS = tuple(HdrFlags(i) for i in range(8))
_GSO_TYPES = {int(t): t for t in GsoType}


NO_OFFLOAD = VnetHdr()
