"""Congestion control and loss recovery: NewReno (RFC 5681 + RFC 6582), helped by SACK.

* Slow start from the RFC 5681 initial window, congestion avoidance above ``ssthresh``.
* Fast retransmit on the third duplicate ACK -- or, with SACK, as soon as that many segments'
  worth of data is SACKed above SND.UNA (RFC 6675's IsLost) -- then fast recovery: the window
  inflated by each further duplicate ACK, a partial ACK resending the next hole (RFC 6582 3.2),
  a full ACK deflating it to ``ssthresh``. With SACK, recovery resends each hole the scoreboard
  (scoreboard.py) shows, one per arriving ACK, instead of one per round trip.
* Limited transmit (RFC 3042): a new segment on each of the first two duplicate ACKs, and early
  retransmit (RFC 5827): fewer duplicate ACKs suffice when fewer than four segments are in
  flight and nothing new can go. Both keep small windows and the ends of transfers out of the
  retransmission timeout.
* After an RTO: ``ssthresh`` halved, one segment of window, and the output goes back N from
  SND.UNA (output.py), skipping what ACKs since have reported SACKed.

These are methods of the connection (see tcb.py for why): the window they keep, ``_cwnd``, is
read by the output on every segment.
"""

from __future__ import annotations

from proto.tcp.seq import seq_diff
from proto.tcp.tcb import Tcb

__all__ = ["Recovery"]


class Recovery(Tcb):
    """The congestion window and fast recovery of one connection."""

    def _set_initial_window(self) -> None:
        """RFC 5681 3.1's initial window, once the peer's MSS is known."""
        smss = self._send_mss
        self._cwnd = min(4 * smss, max(2 * smss, 4380))

    def _send_cwnd(self) -> int:
        """The congestion window to send by now: ``_cwnd``, plus a segment for each of the
        first two duplicate ACKs (limited transmit, RFC 3042: new data draws more dupacks)."""
        cwnd = self._cwnd
        if 0 < self._dupacks < 3 and not self._in_recovery:
            cwnd += self._dupacks * self._send_mss
        return cwnd

    def _on_ack_congestion(self, ack: int, acked: int) -> None:
        """SND.UNA advanced by ``acked`` bytes to ``ack``: grow the window, or in fast recovery
        tell a full ACK (leave it) from a partial one (the next hole is lost too)."""
        smss = self._send_mss
        if self._in_recovery:
            assert self._recover is not None
            if seq_diff(ack, self._recover) >= 0:  # full ACK: leave fast recovery
                self._in_recovery = False
                self._retx_hole = False
                self._cwnd = self._ssthresh
                self._dupacks = 0
            else:  # partial ACK: the next hole is lost too (RFC 6582 3.2)
                if self._sack_ok and seq_diff(self._scoreboard.high_rxt, ack) > 0:
                    self._retx_hole = True  # SND.UNA was resent already: on to the next hole
                else:
                    self._retx_una = True
                self._cwnd = max(self._cwnd - acked + smss, smss)
        else:
            self._dupacks = 0
            if self._cwnd < self._ssthresh:
                # Every byte acknowledged counts, as Linux's tcp_slow_start does (RFC 3465's
                # byte counting without its per-ACK limit L): a receiver that ACKs once per
                # 64 KiB (GRO, stretch ACKs) grew the window by one MSS per 45 segments, so
                # a fresh connection stayed on small segments for most of a 4 MiB transfer.
                self._cwnd = min(self._cwnd + acked, max(self._ssthresh, self._cwnd + smss))
            else:
                self._cwnd += max(1, smss * smss // self._cwnd)
        if self._recover is not None and not self._in_recovery and seq_diff(ack, self._recover) > 0:
            self._recover = None

    def _on_timeout_congestion(self) -> None:
        """The retransmission timer fired on data: back to one segment, recovery abandoned."""
        flight = seq_diff(self._snd_max, self._snd_una)
        self._ssthresh = max(flight // 2, 2 * self._send_mss)
        self._cwnd = self._send_mss
        self._in_recovery = False
        self._retx_hole = False
        self._dupacks = 0
        self._recover = self._snd_max  # RFC 6582: no fast retransmit for pre-RTO dupacks
        self._scoreboard.clear()

    def _on_dupack(self) -> None:
        self._dupacks += 1
        self.counters.dup_acks += 1
        if self._in_recovery:
            self._cwnd += self._send_mss  # each dupack: a segment has left the network
            if self._sack_ok:
                self._retx_hole = True  # ...and its SACK blocks may show the next hole
        else:
            self._maybe_enter_recovery()

    def _maybe_enter_recovery(self) -> None:
        """Fast retransmit when enough duplicate ACKs -- or, with SACK, enough segments held
        above SND.UNA (RFC 6675's IsLost) -- say the segment at SND.UNA is lost."""
        thresh = self._dupthresh()
        sacked_segments = -(-self._scoreboard.sacked_bytes() // self._send_mss)
        if max(self._dupacks, sacked_segments) >= thresh and (
            self._recover is None or seq_diff(self._snd_una, self._recover) > 0
        ):
            flight = seq_diff(self._snd_max, self._snd_una)
            self._ssthresh = max(flight // 2, 2 * self._send_mss)
            self._cwnd = self._ssthresh + 3 * self._send_mss
            self._recover = self._snd_max
            self._in_recovery = True
            self._retx_una = True
            self._scoreboard.high_rxt = self._snd_una
            self.counters.fast_retransmits += 1

    def _dupthresh(self) -> int:
        """Duplicate ACKs that mean a loss: 3, or fewer when fewer than four segments are in
        flight and nothing new can be sent to draw more (early retransmit, RFC 5827) -- else a
        loss near the end of a transfer or in a small window always waits for the RTO."""
        smss = self._send_mss
        flight = seq_diff(self._snd_max, self._snd_una)
        if self._fin_seq is not None and seq_diff(self._snd_max, self._fin_seq) > 0:
            flight -= 1  # a FIN in flight is not a segment that could draw a duplicate ACK
        outstanding = -(-flight // smss)
        if outstanding >= 4 or outstanding < 2 or len(self._sndbuf) > seq_diff(self._snd_max, self._snd_base):
            return 3
        return outstanding - 1
