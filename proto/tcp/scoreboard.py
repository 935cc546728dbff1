"""The sender's SACK scoreboard (RFC 2018, RFC 6675): what the peer holds beyond SND.UNA.

When both ends offered SACK, each ACK's blocks are merged in here; loss recovery (recovery.py)
reads it to tell which segment is lost (enough SACKed above SND.UNA), which hole to resend
next during fast recovery (RFC 6675's NextSeg, one per arriving ACK), and what going back N
after an RTO may skip. Simplified against RFC 6675: no pipe estimate, no D-SACK.
"""

from __future__ import annotations

from proto.tcp.seq import MASK, seq_diff

__all__ = ["Scoreboard"]


class Scoreboard:
    """``ranges``: [start, end) sequence ranges the peer has SACKed, disjoint and in order
    (empty when nothing is); ``high_rxt``: how far fast recovery has resent holes."""

    __slots__ = ("ranges", "high_rxt")

    def __init__(self, iss: int) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.high_rxt = iss  # RFC 6675 HighRxt

    def clear(self) -> None:
        """RFC 2018 8: after a timeout, resend as if nothing were SACKed (the receiver may have
        reneged); ACKs from then on rebuild the scoreboard."""
        self.ranges = []

    def update(self, blocks: tuple[tuple[int, int], ...], ack: int, snd_max: int) -> None:
        """Merge an ACK's SACK ``blocks`` in and drop what ``ack`` covers. Blocks outside
        (ACK, SND.MAX] are ignored (stale, or lies)."""
        ranges = self.ranges
        if not ranges and not blocks:
            return
        limit = seq_diff(snd_max, ack)
        spans = [(max(seq_diff(s, ack), 0), min(seq_diff(e, ack), limit)) for s, e in ranges]
        for s, e in blocks:
            a, b = seq_diff(s, ack), seq_diff(e, ack)
            if 0 < a < b <= limit:
                spans.append((a, b))
        spans = sorted(sp for sp in spans if sp[0] < sp[1])
        merged: list[list[int]] = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.ranges = [((ack + a) & MASK, (ack + b) & MASK) for a, b in merged]

    def next_hole(self, una: int) -> tuple[int, int] | None:
        """The first run of bytes not SACKed, from max(SND.UNA, what recovery resent) up to the
        highest SACKed byte: data the receiver is missing (RFC 6675's NextSeg, rule 1)."""
        start = max(seq_diff(self.high_rxt, una), 0)
        for s, e in self.ranges:
            a, b = seq_diff(s, una), seq_diff(e, una)
            if start < a:
                return (una + start) & MASK, s
            start = max(start, b)
        return None

    def sacked_bytes(self) -> int:
        return sum(seq_diff(e, s) for s, e in self.ranges)

    def skip(self, snd_nxt: int) -> int:
        """Going back N: where to send from instead of ``snd_nxt`` so as not to resend what the
        peer has told us it holds (``snd_nxt`` itself when it is in no SACKed range)."""
        for s, e in self.ranges:
            if seq_diff(s, snd_nxt) <= 0 < seq_diff(e, snd_nxt):
                return e
        return snd_nxt
