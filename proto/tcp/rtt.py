"""Round-trip time estimation and the retransmission timeout (RFC 6298), with Karn's algorithm.

One object per connection, owned by it: the connection says when a segment is sent, resent or
acknowledged and when the retransmission timer fires; the estimator keeps SRTT/RTTVAR and the
RTO that the connection arms its timers with. Choices made where the RFC leaves room:

* Initial RTO 1 s; RTO = SRTT + max(G, 4*RTTVAR) with G = 1 ms, **minimum 200 ms** (Linux's
  choice; RFC 6298 says 1 s, but on a LAN or the emulated link that turns every loss into a
  long stall), maximum 60 s.
* One segment timed at a time. Karn's algorithm: a segment any byte of which is retransmitted
  gives no sample, and after a timeout the backed-off RTO (doubled each time, 5.5) is kept
  until a fresh sample.
* 3 s after a retransmitted SYN when the handshake produced no sample (5.7).
* With RFC 7323 timestamps the connection gives a sample on every ACK of new data instead
  (``sample(r, per_rtt)``, Appendix G's weighting) and times no segment itself.
"""

from __future__ import annotations

from proto.tcp.seq import seq_diff

__all__ = ["RttEstimator", "CLOCK_GRANULARITY"]

CLOCK_GRANULARITY = 0.001  # G in RFC 6298
SYN_RETRANSMITTED_RTO = 3.0  # RFC 6298 5.7


class RttEstimator:
    """SRTT, RTTVAR and the RTO, and the one segment being timed (RFC 6298)."""

    __slots__ = ("rto", "srtt", "rttvar", "rto_min", "rto_max", "timed_end", "_timed_start", "_timed_at",
                 "_syn_retransmitted")

    def __init__(self, rto_initial: float, rto_min: float, rto_max: float) -> None:
        self.rto = rto_initial  # current timeout, including any back-off
        self.srtt: float | None = None  # None before the first sample
        self.rttvar = 0.0
        self.rto_min = rto_min
        self.rto_max = rto_max
        # The segment being timed, [start, end) in sequence space; timed_end None when none is.
        self.timed_end: int | None = None
        self._timed_start = 0
        self._timed_at = 0.0
        self._syn_retransmitted = False

    def start(self, seq: int, end: int, now: float) -> None:
        """Time the segment [seq, end) just sent (its ACK gives a sample)."""
        self.timed_end = end
        self._timed_start = seq
        self._timed_at = now

    def karn(self, seq: int, end: int) -> None:
        """Karn's algorithm: retransmitting any byte of the segment being timed makes its ACK
        ambiguous, so drop the measurement (retransmitting other bytes leaves it valid)."""
        if (
            self.timed_end is not None
            and seq_diff(seq, self.timed_end) < 0
            and seq_diff(end, self._timed_start) > 0
        ):
            self.timed_end = None

    def cancel(self) -> None:
        """Stop timing (the segment will be sent again from scratch)."""
        self.timed_end = None

    def on_ack(self, ack: int, now: float) -> None:
        """An ACK advanced SND.UNA to ``ack``: a sample if it covers the timed segment."""
        end = self.timed_end
        if end is not None and seq_diff(ack, end) >= 0:
            self.sample(now - self._timed_at)
            self.timed_end = None

    def on_syn_acked(self, ack: int, now: float) -> None:
        """The handshake's ACK: a sample if it timed our SYN, then nothing is timed; after a
        retransmitted SYN with no sample, at least 3 s (RFC 6298 5.7)."""
        self.on_ack(ack, now)
        self.timed_end = None
        if self._syn_retransmitted and self.srtt is None:
            self.rto = max(self.rto, SYN_RETRANSMITTED_RTO)

    def on_timeout(self, *, syn: bool) -> None:
        """The retransmission timer fired (``syn``: while the SYN was unacknowledged): back off
        (RFC 6298 5.5) and, Karn, take no sample from what is resent."""
        self.rto = min(self.rto * 2, self.rto_max)
        if syn:
            self._syn_retransmitted = True
        self.timed_end = None

    def sample(self, r: float, per_rtt: int = 1) -> None:
        """RFC 6298 2.2/2.3. ``per_rtt``: how many samples a round trip brings (timestamps
        time every ACK); each then weighs 1/per_rtt of one (RFC 7323 Appendix G)."""
        r = max(r, 0.0)
        if self.srtt is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            beta = 0.25 / per_rtt
            alpha = 0.125 / per_rtt
            self.rttvar = (1 - beta) * self.rttvar + beta * abs(self.srtt - r)
            self.srtt = (1 - alpha) * self.srtt + alpha * r
        rto = self.srtt + max(CLOCK_GRANULARITY, 4 * self.rttvar)
        self.rto = min(max(rto, self.rto_min), self.rto_max)
