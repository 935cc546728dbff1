"""Offloads done in software: finish a checksum, cut a TCP super-frame into segments (GSO).

A frame that travels with a :class:`~proto.wire.vnet.VnetHdr` saying NEEDS_CSUM or GSO is not
yet a frame a wire (or a card without offloads) can carry. Whoever cannot pass the work on --
a backend whose host side has no offloads, a guest without GUEST_TSO4, a capture of segments,
the impairment wrapper that drops segments one by one -- does it here, as Linux's
``skb_checksum_help`` and ``tcp_gso_segment`` would:

* :func:`complete_checksum`: the ones-complement sum from ``csum_start`` to the end of the
  frame, stored at ``csum_start + csum_offset``; the field already holds the pseudo-header's
  partial sum, as the virtio spec (5.1.6.2) says. A result of 0 is stored as 0xFFFF (Linux's
  CSUM_MANGLED_0: the same value in ones-complement, and 0 would mean "no checksum" to UDP).
* :func:`segment`: each segment gets the Ethernet, IPv4 and TCP headers again, its IPv4 total
  length and an IPv4 id counting up from the original's, its TCP sequence number advanced by the
  payload before it, FIN and PSH only on the last segment, CWR only on the first, and both
  checksums computed afresh (the big frame's are ignored: they are partial or stale).

``hdr_len`` is only a hint (virtio 1.2 5.1.6.2: without VIRTIO_NET_F_GUEST_HDRLEN the device must
not rely on it): the headers are measured from the frame itself, and a hint that cannot be true
(past the end of the frame) is refused. UDP fragmentation offload (UFO) and TCPv6 are not
offered by anyone here and raise DecodeError, like any other malformed input.
"""

from __future__ import annotations

import struct

from proto.wire import DecodeError
from proto.wire.checksum import finish, ones_sum
from proto.wire.vnet import GsoType, VnetHdr

__all__ = ["check", "complete_checksum", "segment", "wire_frames", "MAX_GSO_FRAME", "ETH_HLEN"]

ETH_HLEN = 14
#: The largest frame a GSO header may describe: an IPv4 datagram of 65535 bytes in Ethernet.
MAX_GSO_FRAME = ETH_HLEN + 0xFFFF

_FIN, _PSH, _CWR = 0x01, 0x08, 0x80
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")


def complete_checksum(hdr: VnetHdr, frame: bytes) -> bytes:
    """``frame`` with its NEEDS_CSUM checksum filled in (unchanged if nothing is needed)."""
    if not hdr.needs_csum:
        return frame
    start, field = hdr.csum_start, hdr.csum_start + hdr.csum_offset
    if start >= len(frame) or field + 2 > len(frame):
        raise DecodeError(f"gso: checksum at {start}+{hdr.csum_offset} lies outside the {len(frame)}-byte frame")
    csum = finish(ones_sum(memoryview(frame)[start:])) or 0xFFFF
    return frame[:field] + _U16.pack(csum) + frame[field + 2 :]


def _tcp_headers(hdr: VnetHdr, frame: bytes) -> tuple[int, int, int]:
    """Check a TCPv4 super-frame; -> (IP header length, all headers' length, end of the datagram)."""
    n = len(frame)
    if hdr.gso_type is not GsoType.TCPV4:
        what = "UDP fragmentation offload (UFO)" if hdr.gso_type is GsoType.UDP else hdr.gso_type.name
        raise DecodeError(f"gso: {what} is not supported")
    if hdr.gso_size == 0:
        raise DecodeError("gso: gso_size 0")
    if n > MAX_GSO_FRAME:
        raise DecodeError(f"gso: {n}-byte frame is larger than {MAX_GSO_FRAME}")
    if n < ETH_HLEN + 40:
        raise DecodeError(f"gso: {n}-byte frame cannot hold Ethernet, IPv4 and TCP headers")
    if frame[12:14] != b"\x08\x00":
        raise DecodeError(f"gso: EtherType {frame[12:14].hex()} is not IPv4")
    vihl = frame[ETH_HLEN]
    ihl = (vihl & 0xF) * 4
    if vihl >> 4 != 4 or ihl < 20:
        raise DecodeError(f"gso: IPv4 version/IHL byte {vihl:#04x}")
    if frame[ETH_HLEN + 9] != 6:
        raise DecodeError(f"gso: IP protocol {frame[ETH_HLEN + 9]} is not TCP for TCPV4")
    if _U16.unpack_from(frame, ETH_HLEN + 6)[0] & 0x3FFF:
        raise DecodeError("gso: an IP fragment cannot be segmented")
    end = ETH_HLEN + _U16.unpack_from(frame, ETH_HLEN + 2)[0]
    tcp = ETH_HLEN + ihl
    if end > n or end < tcp + 20:
        raise DecodeError(f"gso: IPv4 total length {end - ETH_HLEN} does not fit the {n}-byte frame")
    headers = tcp + (frame[tcp + 12] >> 4) * 4
    if headers < tcp + 20 or headers > end:
        raise DecodeError(f"gso: TCP data offset {frame[tcp + 12] >> 4} is impossible here")
    if hdr.hdr_len > n:
        raise DecodeError(f"gso: hdr_len {hdr.hdr_len} is past the end of the {n}-byte frame")
    return ihl, headers, end


def check(hdr: VnetHdr, frame: bytes) -> None:
    """DecodeError unless the work ``hdr`` asks for can be done on ``frame`` (headers only: cheap).

    For a hop that passes the frame on whole (a tap's kernel, a raw socket) and should hand it
    nothing that it would not accept from us."""
    if hdr.is_gso:
        _tcp_headers(hdr, frame)
    if hdr.needs_csum:
        field = hdr.csum_start + hdr.csum_offset
        if hdr.csum_start >= len(frame) or field + 2 > len(frame):
            raise DecodeError(f"gso: checksum at {hdr.csum_start}+{hdr.csum_offset} lies outside the frame")


def segment(hdr: VnetHdr, frame: bytes) -> list[bytes]:
    """Software GSO of a TCPv4 super-frame into frames of at most ``gso_size`` payload bytes.

    A frame whose payload already fits is returned as one frame with its checksums done, as
    Linux leaves such an skb whole. DecodeError for anything that is not a sane TCPv4 frame."""
    ihl, hlen, end = _tcp_headers(hdr, frame)
    tcp = ETH_HLEN + ihl
    mss = hdr.gso_size
    head = bytearray(frame[:hlen])
    data = memoryview(frame)[hlen:end]
    ident = _U16.unpack_from(head, ETH_HLEN + 4)[0]
    seq = _U32.unpack_from(head, tcp + 4)[0]
    flags = head[tcp + 13]
    src_dst = ones_sum(head[ETH_HLEN + 12 : ETH_HLEN + 20])
    count = max(1, -(-len(data) // mss))
    out: list[bytes] = []
    for i in range(count):
        chunk = data[i * mss : (i + 1) * mss]
        tot = hlen - ETH_HLEN + len(chunk)
        _U16.pack_into(head, ETH_HLEN + 2, tot)
        _U16.pack_into(head, ETH_HLEN + 4, (ident + i) & 0xFFFF)
        _U16.pack_into(head, ETH_HLEN + 10, 0)
        _U16.pack_into(head, ETH_HLEN + 10, finish(ones_sum(head[ETH_HLEN:tcp])))
        _U32.pack_into(head, tcp + 4, (seq + i * mss) & 0xFFFFFFFF)
        f = flags
        if i:
            f &= ~_CWR
        if i < count - 1:
            f &= ~(_FIN | _PSH)
        head[tcp + 13] = f
        _U16.pack_into(head, tcp + 16, 0)
        tcp_len = tot - ihl
        csum = finish(src_dst + 6 + tcp_len + ones_sum(head[tcp:hlen]) + ones_sum(chunk))
        _U16.pack_into(head, tcp + 16, csum)
        out.append(bytes(head) + chunk)
    return out


def wire_frames(hdr: VnetHdr, frame: bytes) -> list[bytes]:
    """The frames a wire carries for ``frame`` and its header: segmented, checksummed, or as is."""
    if hdr.is_gso:
        return segment(hdr, frame)
    if hdr.needs_csum:
        return [complete_checksum(hdr, frame)]
    return [frame]
