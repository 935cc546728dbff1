"""Large segments both ways between the ``user`` router and a guest whose card has offloads.

* From the guest (``send_gso``): the router *terminates* the guest's TCP, so a 64 KiB TSO frame
  needs no cutting up -- its payload goes to the flow's engine as one segment (the engine takes
  whatever fits its window, whatever the size). Only its headers are checked
  (:func:`proto.wire.gso.check`); the checksum is left undone by the guest and is not needed:
  nothing lies between the card and the router that could corrupt it.
* To the guest (``deliver_gso``): one call of the engine's ``segments_to_send`` yields a burst of
  MSS-sized segments, already limited by the guest's advertised window and the congestion
  window. :func:`coalesce` joins each run of contiguous data segments into one segment that
  :func:`proto.wire.gso.segment` would cut back into exactly those segments (``gso_size`` is the
  connection's send MSS, the guest's MSS semantics), so the guest receives up to 64 KiB at once.
  The frame goes with NEEDS_CSUM and the pseudo-header sum in the checksum field, as a Linux tap
  hands over its GRO frames, so the guest meets one form from every backend.
"""

from __future__ import annotations

from dataclasses import replace

from proto.wire.checksum import finish, pseudo_header_sum
from proto.wire.tcp import ACK, FIN, PSH, TcpSegment, encode_options
from proto.wire.vnet import GsoType, HdrFlags, VnetHdr

__all__ = ["coalesce", "gso_header", "partial_checksum", "MAX_TCP_PAYLOAD"]

MAX_TCP_PAYLOAD = 0xFFFF - 20 - 20  # IPv4 total length limit, before TCP options


def coalesce(segments: list[TcpSegment], mss: int) -> list[tuple[TcpSegment, int]]:
    """Runs of segments joined: ``(segment, count)``, ``count`` > 1 for a joined one.

    Joined only when segmenting it again gives the originals back: same ack, window, options and
    urgent pointer, contiguous sequence numbers, every one but the last exactly ``mss`` bytes,
    flags ACK on all but the last (which may add PSH and FIN)."""
    out: list[tuple[TcpSegment, int]] = []
    run: list[TcpSegment] = []

    def flush() -> None:
        if len(run) == 1:
            out.append((run[0], 1))
        elif run:
            out.append((replace(run[-1], seq=run[0].seq, payload=b"".join(s.payload for s in run)), len(run)))
        run.clear()

    for seg in segments:
        if run and _follows(run, seg, mss):
            run.append(seg)
            continue
        flush()
        run.append(seg)
        if not (seg.flags == ACK and len(seg.payload) == mss):
            flush()  # nothing may follow it in one frame
    flush()
    return out


def _follows(run: list[TcpSegment], seg: TcpSegment, mss: int) -> bool:
    last = run[-1]
    room = MAX_TCP_PAYLOAD - len(encode_options(seg.options)) if seg.options else MAX_TCP_PAYLOAD
    return (
        last.flags == ACK
        and len(last.payload) == mss
        and 0 < len(seg.payload) <= mss
        and seg.flags & ~(PSH | FIN) == ACK
        and seg.seq == (last.seq + mss) & 0xFFFFFFFF
        and (seg.ack, seg.window, seg.options, seg.urgent) == (last.ack, last.window, last.options, last.urgent)
        and (len(run) * mss + len(seg.payload)) <= room
    )


def gso_header(packet: bytes, mss: int) -> VnetHdr:
    """The header of a joined IPv4+TCP packet once in Ethernet (14 bytes before ``packet``)."""
    ihl = (packet[0] & 0xF) * 4
    return VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, 14 + ihl + (packet[ihl + 12] >> 4) * 4, mss, 14 + ihl, 16)


def partial_checksum(packet: bytes) -> bytes:
    """``packet`` with the TCP checksum field holding the pseudo-header's folded sum (NEEDS_CSUM)."""
    ihl = (packet[0] & 0xF) * 4
    field = ihl + 16
    partial = ~finish(pseudo_header_sum(packet[12:16], packet[16:20], 6, len(packet) - ihl)) & 0xFFFF
    return packet[:field] + partial.to_bytes(2, "big") + packet[field + 2 :]
