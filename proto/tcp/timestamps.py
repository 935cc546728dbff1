"""RFC 7323 timestamps for one connection: the clock we stamp with, TS.Recent, and PAWS.

* The clock ticks in milliseconds (Linux's choice) from a per-connection offset, so a peer
  cannot read the host's uptime from it nor relate two connections' clocks (RFC 7323 7.1);
  ``now`` is the caller's, as everywhere in proto/.
* TS.Recent (4.3) is the peer's TSval that our ACKs echo. It moves only forward, and only for
  a segment that covers the last ACK we sent (SEG.SEQ <= Last.ACK.sent), so a delayed ACK
  echoes the *earliest* segment it acknowledges and the sender's RTT measure includes the delay.
* PAWS (5.3): a synchronized segment whose TSval is older than TS.Recent is an old duplicate
  (its sequence numbers may have wrapped into the window), dropped with an ACK unless it is a
  RST. After more than 24 days without an update TS.Recent is no longer valid (5.5) and the
  next segment's timestamp is taken as it is.
"""

from __future__ import annotations

from proto.tcp.seq import MASK, seq_diff

__all__ = ["Timestamps", "PAWS_IDLE"]

PAWS_IDLE = 24 * 86400.0  # RFC 7323 5.5: TS.Recent is invalid after this long idle
TICKS_PER_SECOND = 1000


class Timestamps:
    """The timestamp state of one connection; ``ok`` once both SYNs carried TSopt."""

    __slots__ = ("ok", "offset", "recent", "recent_at")

    def __init__(self, offset: int) -> None:
        self.ok = False
        self.offset = offset & MASK
        self.recent = 0  # TS.Recent
        self.recent_at = 0.0  # when TS.Recent was last set (for the 24-day rule)

    def clock(self, now: float) -> int:
        """Our TSval at ``now``."""
        return (self.offset + int(now * TICKS_PER_SECOND)) & MASK

    def agree(self, tsval: int, now: float) -> None:
        """Both SYNs carried TSopt: from now on every segment carries it; ``tsval`` is the
        peer's SYN's, the first TS.Recent."""
        self.ok = True
        self.recent = tsval
        self.recent_at = now

    def paws_rejects(self, tsval: int, now: float) -> bool:
        """Is a segment stamped ``tsval`` an old duplicate (RFC 7323 5.3 R1)?"""
        if now - self.recent_at > PAWS_IDLE:
            return False  # TS.Recent has gone stale: nothing to compare with (5.5)
        return seq_diff(tsval, self.recent) < 0

    def update(self, tsval: int, seq: int, last_ack_sent: int, now: float) -> None:
        """RFC 7323 4.3 / 5.3 R3, for an acceptable segment: record its TSval if it is not
        older than TS.Recent and the segment covers Last.ACK.sent."""
        if seq_diff(seq, last_ack_sent) <= 0 and (
            seq_diff(tsval, self.recent) >= 0 or now - self.recent_at > PAWS_IDLE
        ):
            self.recent = tsval
            self.recent_at = now

    def rtt(self, tsecr: int, now: float) -> float | None:
        """Seconds since we sent the TSval the peer echoes (RFC 7323 4.1); None when the echo
        is zero or from the future (a peer echoing garbage gives no sample)."""
        if not tsecr:
            return None
        ticks = seq_diff(self.clock(now), tsecr)
        if ticks < 0:
            return None
        return ticks / TICKS_PER_SECOND
