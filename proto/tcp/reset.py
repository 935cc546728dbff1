"""The RST that answers a segment nobody wants (RFC 9293 3.10.7.1).

Its own module because three parties need the same answer: a CLOSED connection, a listener
(for an ACK to its port) and the I/O layer (for a segment to a port with no socket at all)."""

from __future__ import annotations

from proto.tcp.seq import MASK
from proto.wire.tcp import ACK, RST, TcpSegment

__all__ = ["reset_for"]


def reset_for(seg: TcpSegment) -> TcpSegment | None:
    """The RST to answer ``seg`` with when no connection wants it (RFC 9293 3.10.7.1).

    Used for segments to closed ports and by CLOSED connections and listeners; ``None`` when
    the segment is itself a RST (never answer a RST)."""
    if seg.flags & RST:
        return None
    if seg.flags & ACK:
        return TcpSegment(seg.dst_port, seg.src_port, seq=seg.ack, flags=RST)
    return TcpSegment(seg.dst_port, seg.src_port, seq=0, ack=(seg.seq + seg.seg_len) & MASK, flags=RST | ACK)
