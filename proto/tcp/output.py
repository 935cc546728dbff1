"""What a connection transmits: segmentization, retransmission, ACKs and window advertisement.

Output is produced lazily by ``segments_to_send``: several ``send()`` calls become full-sized
segments, and an ACK owed for received data rides on outgoing data when there is some.

* The SYN (or SYN-ACK) carries our MSS option and, if we do them (and, on a SYN-ACK, the peer
  offered them), SACK-permitted, timestamps and window scale (RFC 7323), laid out as Linux does
  (synopts.py). Once timestamps are agreed every segment carries TSval/TSecr (NOP NOP TS, 12
  bytes, taken from the payload: data segments carry ``send_mss`` = MSS - 12); once window
  scaling is agreed the windows we advertise are shifted, rounded *up* to the shift's unit so
  that the right edge the peer sees never moves back.
* TSO (``tso_max``): new data may leave as one segment of up to ``tso_max`` bytes, a multiple of
  ``send_mss`` unless it is the tail, where several MSS-sized segments would (cwnd and the
  peer's window still rule); the card cuts it. Retransmissions stay MSS-sized.
* Sliding window with sender SWS avoidance (a small segment waits while data is in flight and
  it would be under half the largest window the peer has offered) and receiver SWS avoidance
  (the advertised right edge moves only by >= min(buffer/2, MSS), never back).
* Zero-window persist probes, sent Linux-style as an ACK one below SND.UNA so they need no
  sequence space and always draw an ACK with the current window; the persist timer is armed
  here whenever the peer's window is zero, something waits and nothing is in flight.
* Retransmission: go-back-N from SND.UNA after an RTO (one segment forced out even into a
  closed window, so its ACK brings the peer's window), the segment at SND.UNA on a fast
  retransmit or NewReno partial ACK, and the next SACK hole during SACK recovery.
* SACK blocks (reassembly.py) ride only on segments without data, so that their 34 bytes can
  never push a full segment past the MTU; with timestamps, at most three blocks fit.
"""

from __future__ import annotations

from proto.tcp.recovery import Recovery
from proto.tcp.seq import MASK, seq_diff
from proto.tcp.states import CLOSED, FIN_STATES, SENDING, SYN_RECEIVED, SYN_SENT
from proto.tcp.synopts import MAX_WINDOW, syn_options
from proto.wire.tcp import ACK, FIN, OPT_NOP, OPT_SACK, OPT_TIMESTAMP, PSH, SYN, TcpOption, TcpSegment

__all__ = ["Output", "MAX_WINDOW"]


class Output(Recovery):
    """The transmit half of a connection: everything ``segments_to_send`` produces."""

    def segments_to_send(self, now: float) -> list[TcpSegment]:
        """Everything to transmit now, in order; the caller wraps each in IPv4 to ``remote``.

        ``now`` times the segments sent (RTO timer start, RTT measurement, TSval)."""
        self._ts_now = self._ts.clock(now)
        out = self._out
        self._out = []
        state = self.state
        if state in (SYN_SENT, SYN_RECEIVED):
            if self._snd_nxt == self._iss:
                self._send_syn(now, out)
        elif state in SENDING:
            self._output_data(now, out)
        if self._probe_due:
            self._probe_due = False
            if state in SENDING:
                # Zero-window probe: an old sequence number is never acceptable, so the peer
                # must answer with an ACK carrying its current window.
                self._emit(out, (self._snd_una - 1) & MASK, ACK)
        if self._ack_now and state not in (CLOSED, SYN_SENT):
            # SND.MAX, not SND.NXT: while going back N, SND.NXT is below what the peer has
            # received, and an ACK carrying it would be unacceptable there -- each side would
            # answer the other's "old" ACK with another one, forever (BSD does the same).
            self._emit(out, self._snd_max, ACK)
        self._update_persist(now)
        return out

    def _send_syn(self, now: float, out: list[TcpSegment]) -> None:
        if self.state == SYN_SENT:
            flags = SYN
        else:
            flags = SYN | ACK
        if self._snd_max == self._iss:
            self._rtt.start(self._iss, (self._iss + 1) & MASK, now)
        else:
            self.counters.retransmits += 1
        # Each option is offered on our SYN if we do it, on a SYN-ACK only if the peer offered it.
        ts = self._ts
        if flags & ACK:
            sack, wscale = self._sack_ok, (self._wscale_offer if self._ws_ok else None)
            stamps = (self._ts_now, ts.recent) if ts.ok else None
        else:
            sack, wscale = self.sack, (self._wscale_offer if self.window_scaling else None)
            stamps = (self._ts_now, 0) if self.timestamps else None
        self._emit(out, self._iss, flags, options=syn_options(self.mss, sack, wscale, stamps))
        self._snd_nxt = self._snd_max = (self._iss + 1) & MASK
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rtt.rto
        self._force = False

    def _output_data(self, now: float, out: list[TcpSegment]) -> None:
        smss = self._send_mss
        # With TSO one segment may carry many MSS' worth (the card cuts it), a multiple of them.
        most = smss * (self.tso_max // smss) if self.tso_max > smss else smss
        if self._retx_una:
            self._retx_una = False
            self._retransmit_first(now, out)
        elif self._retx_hole:
            self._retx_hole = False
            if self._in_recovery:
                self._retransmit_hole(now, out)
        force = self._force
        self._force = False
        cwnd = self._send_cwnd()
        scoreboard = self._scoreboard
        rtt = self._rtt
        while True:
            if scoreboard.ranges and seq_diff(self._snd_nxt, self._snd_max) < 0:
                self._snd_nxt = scoreboard.skip(self._snd_nxt)  # going back N: skip what's held
            offset = seq_diff(self._snd_nxt, self._snd_base)
            remaining = len(self._sndbuf) - offset
            fin_pending = self._fin_unsent()
            if remaining <= 0 and not fin_pending:
                break
            remaining = max(remaining, 0)
            window = min(self._snd_wnd, cwnd)
            usable = seq_diff((self._snd_una + window) & MASK, self._snd_nxt)
            n = min(most, remaining, max(usable, 0))
            if smss < n < remaining:
                n -= n % smss  # only the tail of what is queued may leave a short piece
            if force and n == 0 and remaining:
                # RTO with no usable window: resend (some of) the first unacknowledged segment
                # anyway; its ACK brings the peer's current window.
                n = min(smss, remaining, max(1, seq_diff(self._snd_max, self._snd_nxt)))
            fin = fin_pending and n == remaining and (usable > n or force)
            if n == 0 and not fin:
                break
            if (
                not force
                and not fin
                and n < smss
                and n < remaining
                and seq_diff(self._snd_nxt, self._snd_una) > 0
                and n < self._max_snd_wnd // 2
            ):
                break  # sender SWS avoidance: wait for the window to open further
            force = False
            seq = self._snd_nxt
            flags = ACK | (PSH if n and n == remaining else 0) | (FIN if fin else 0)
            self._emit(out, seq, flags, bytes(self._sndbuf[offset : offset + n]))
            end = (seq + n + (1 if fin else 0)) & MASK
            if seq_diff(seq, self._snd_max) < 0:
                self.counters.retransmits += 1
                rtt.karn(seq, end)
            elif rtt.timed_end is None and not self._ts.ok:  # with timestamps every ACK times
                rtt.start(seq, end, now)
            self._snd_nxt = end
            if seq_diff(end, self._snd_max) > 0:
                self._snd_max = end
            if fin:
                self._fin_seq = (end - 1) & MASK
            if self._rto_deadline is None:
                self._rto_deadline = now + rtt.rto

    def _retransmit_hole(self, now: float, out: list[TcpSegment]) -> None:
        """Resend (up to a segment of) the next hole the SACK scoreboard shows."""
        hole = self._scoreboard.next_hole(self._snd_una)
        if hole is None:
            return
        seq, hole_end = hole
        offset = seq_diff(seq, self._snd_base)
        n = min(self._send_mss, seq_diff(hole_end, seq), len(self._sndbuf) - offset)
        if n <= 0 or offset < 0:
            return
        self._emit(out, seq, ACK, bytes(self._sndbuf[offset : offset + n]))
        self.counters.retransmits += 1
        self.counters.sack_retransmits += 1
        end = (seq + n) & MASK
        self._rtt.karn(seq, end)
        self._scoreboard.high_rxt = end
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rtt.rto

    def _retransmit_first(self, now: float, out: list[TcpSegment]) -> None:
        """Resend the segment at SND.UNA (fast retransmit, NewReno partial ACK)."""
        offset = seq_diff(self._snd_una, self._snd_base)
        sent = seq_diff(self._snd_max, self._snd_una)  # resend only what was sent before
        n = max(0, min(self._send_mss, len(self._sndbuf) - offset, sent))
        fin = (
            self._fin_seq is not None
            and seq_diff(self._fin_seq, self._snd_una) == n
            and seq_diff(self._snd_max, self._fin_seq) > 0
        )
        if n == 0 and not fin:
            return
        seq = self._snd_una
        flags = ACK | (FIN if fin else 0)
        self._emit(out, seq, flags, bytes(self._sndbuf[offset : offset + n]))
        self.counters.retransmits += 1
        end = (seq + n + (1 if fin else 0)) & MASK
        self._rtt.karn(seq, end)
        scoreboard = self._scoreboard
        if seq_diff(end, scoreboard.high_rxt) > 0:
            scoreboard.high_rxt = end
        if seq_diff(self._snd_nxt, end) < 0:
            self._snd_nxt = end
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rtt.rto

    def _emit(
        self,
        out: list[TcpSegment],
        seq: int,
        flags: int,
        payload: bytes = b"",
        options: tuple[TcpOption, ...] = (),
    ) -> None:
        """Build one segment; every segment with ACK settles what we owe the peer."""
        if flags & ACK:
            ack = self._rcv_nxt
            ts = self._ts
            if flags & SYN:  # a SYN-ACK's window is never scaled (RFC 7323 2.2)
                window = self._advertise_window(0)
            else:
                window = self._advertise_window(self._rcv_scale)
                if ts.ok:
                    options = ((OPT_NOP, None), (OPT_NOP, None), (OPT_TIMESTAMP, (self._ts_now, ts.recent)))
                if self._reasm.segments and self._sack_ok and not payload:
                    # Only on segments without data: the blocks' 34 bytes must not push a full
                    # segment past the MTU. Beside timestamps, three blocks fit.
                    edges = self._reasm.sack_edges(ack)
                    if ts.ok:
                        options += ((OPT_NOP, None), (OPT_NOP, None), (OPT_SACK, edges[:6]))
                    else:
                        options = ((OPT_SACK, edges),)
            self._ack_now = False
            self._delack_deadline = None
            self._last_ack_sent = ack
        else:  # the initial SYN: nothing received yet
            ack = 0
            window = min(self.rcv_buf, MAX_WINDOW)
        out.append(TcpSegment(self.local[1], self.remote[1], seq, ack, flags, window, payload, options))
        self.counters.segments_sent += 1

    def _advertise_window(self, shift: int) -> int:
        """The window field to put in a segment, with receiver SWS avoidance (RFC 9293
        3.8.6.2.2): the right edge only moves once it can move by min(rcv_buf/2, MSS), and never
        back. Scaled by ``shift``, the window is rounded up to a whole unit and the edge the
        peer will see is what we remember, so a later, smaller unit count cannot shrink it."""
        cap = MAX_WINDOW << shift
        space = min(max(0, self.rcv_buf - len(self._rcvbuf)), cap)
        right = (self._rcv_nxt + space) & MASK
        if seq_diff(right, self._rcv_adv) >= min(self.rcv_buf // 2, self.mss):
            self._rcv_adv = right
        window = max(0, min(seq_diff(self._rcv_adv, self._rcv_nxt), cap))
        if not shift:
            return window
        units = min(-(-window >> shift), MAX_WINDOW)
        self._rcv_adv = (self._rcv_nxt + (units << shift)) & MASK
        return units

    def _rcv_space(self) -> int:
        """How much beyond RCV.NXT we take: the free buffer, or what we already promised if
        that is more (a scaled window rounded up promises a few bytes more than is free)."""
        return max(self.rcv_buf - len(self._rcvbuf), seq_diff(self._rcv_adv, self._rcv_nxt), 0)

    def _window_update_due(self) -> bool:
        """Has reading opened the window enough that the peer should hear about it now?

        When it grew by at least min(rcv_buf/2, MSS) (RFC 1122 §4.2.3.3, no silly windows).
        And for a window beyond 64 KiB (scaled), only once the window the peer knows has
        shrunk to half the most we offer or less, and this at least doubles it (Linux's
        tcp_cleanup_rbuf): until then the ACKs of the data still coming carry the wider
        window. With a 1 MiB window a pure update after every 64 KiB read was a third of the
        segments we sent (and Linux sent smaller bursts for them). Windows of at most 64 KiB
        (the RTL8139's 60 KiB ring) keep the update at once: there the peer is often
        window-limited and waits for it."""
        most = min(self.rcv_buf, MAX_WINDOW << self._rcv_scale)
        space = min(max(0, self.rcv_buf - len(self._rcvbuf)), most)
        right = (self._rcv_nxt + space) & MASK
        if seq_diff(right, self._rcv_adv) < min(self.rcv_buf // 2, self.mss):
            return False
        if most <= MAX_WINDOW:
            return True
        known = max(0, seq_diff(self._rcv_adv, self._rcv_nxt))
        return 2 * known <= most and space >= 2 * known

    def _fin_unsent(self) -> bool:
        """We owe a FIN and it is not (or, after going back, no longer) in flight."""
        return (
            self._close_requested
            and self.state in FIN_STATES
            and (self._fin_seq is None or seq_diff(self._snd_nxt, self._fin_seq) <= 0)
        )

    def _update_persist(self, now: float) -> None:
        """Arm the persist timer while the peer's window is zero, we have something to send
        and nothing is in flight (otherwise the retransmission timer covers us)."""
        need = (
            self.state in SENDING
            and self._snd_wnd == 0
            and self._rto_deadline is None
            and (seq_diff(self._snd_nxt, self._snd_base) < len(self._sndbuf) or self._fin_unsent())
        )
        if not need:
            self._persist_deadline = None
            self._persist_backoff = 0
        elif self._persist_deadline is None:
            self._persist_deadline = now + min(self._rtt.rto * (1 << self._persist_backoff), self._rtt.rto_max)
