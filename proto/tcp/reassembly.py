"""The receiver's out-of-order queue, and the SACK blocks it reports (RFC 2018).

Segments that arrive inside the window but beyond RCV.NXT are kept here (overlaps trimmed,
duplicates dropped) until the hole before them fills; the connection then drains them into
its in-order buffer. Each such arrival draws an immediate duplicate ACK and filling a hole an
immediate ACK (RFC 5681 4.2) -- the connection's decision, made where it calls ``insert`` and
``drain``.

When both ends offered SACK, what is held here is reported on pure ACKs in up to four blocks,
the block holding the latest arrival first (RFC 2018 4), so the sender learns what to resend.
No D-SACK. A FIN that arrives ahead of a hole is remembered too (``fin``) and taken once RCV.NXT
reaches it.
"""

from __future__ import annotations

from proto.tcp.seq import MASK, seq_diff

__all__ = ["ReassemblyQueue"]


class ReassemblyQueue:
    """Data held beyond RCV.NXT: disjoint ``(seq, bytes)`` pieces, sorted by distance from it."""

    __slots__ = ("segments", "latest", "fin")

    def __init__(self) -> None:
        self.segments: list[tuple[int, bytes]] = []  # empty = nothing out of order
        self.latest = 0  # where the latest out-of-order segment started (first SACK block)
        self.fin: int | None = None  # sequence number of a FIN that arrived ahead of data

    def clear(self) -> None:
        """Forget everything held (the peer's FIN is in, or the connection is gone)."""
        self.segments.clear()
        self.fin = None

    def insert(self, seq: int, data: bytes, rcv_nxt: int) -> bool:
        """Buffer data ahead of ``rcv_nxt``, keeping only bytes not already buffered.

        False when every byte was held already (a duplicate)."""
        base = rcv_nxt
        start = seq_diff(seq, base)
        pieces = [(start, start + len(data))]
        for s_seq, s_data in self.segments:
            s = seq_diff(s_seq, base)
            e = s + len(s_data)
            kept = []
            for a, b in pieces:
                if b <= s or a >= e:
                    kept.append((a, b))
                    continue
                if a < s:
                    kept.append((a, s))
                if b > e:
                    kept.append((e, b))
            pieces = kept
        if not pieces:
            return False
        for a, b in pieces:
            self.segments.append(((base + a) & MASK, data[a - start : b - start]))
        self.segments.sort(key=lambda item: seq_diff(item[0], base))
        self.latest = seq
        return True

    def drain(self, rcv_nxt: int, rcvbuf: bytearray) -> int:
        """Move the pieces ``rcv_nxt`` has reached onto ``rcvbuf``; returns the new RCV.NXT."""
        segments = self.segments
        while segments:
            s_seq, data = segments[0]
            start = seq_diff(s_seq, rcv_nxt)
            if start > 0:
                break
            del segments[0]
            if start + len(data) > 0:
                tail = data[-start:] if start < 0 else data
                rcvbuf += tail
                rcv_nxt = (rcv_nxt + len(tail)) & MASK
        return rcv_nxt

    def sack_edges(self, rcv_nxt: int) -> tuple[int, ...]:
        """What we hold beyond RCV.NXT as SACK edges (RFC 2018 4): contiguous buffered pieces
        merged into blocks, at most four, the block holding the latest arrival first."""
        base = rcv_nxt
        blocks: list[list[int]] = []
        for s_seq, data in self.segments:  # sorted by distance from RCV.NXT
            s = seq_diff(s_seq, base)
            if blocks and blocks[-1][1] >= s:
                blocks[-1][1] = max(blocks[-1][1], s + len(data))
            else:
                blocks.append([s, s + len(data)])
        latest = seq_diff(self.latest, base)
        blocks.sort(key=lambda b: not b[0] <= latest < b[1])  # stable: the rest keep their order
        return tuple((base + edge) & MASK for b in blocks[:4] for edge in b)
