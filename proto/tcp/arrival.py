"""RFC 9293 3.10.7, "SEGMENT ARRIVES": what one incoming segment does to a connection.

* Handshake both ways and simultaneous open; the peer's MSS option (536 when absent, RFC 9293
  3.7.1) caps what we send; SACK is used when both SYNs offered it.
* The acceptability test against the receive window, with RFC 9293's "special allowance": a
  segment starting at RCV.NXT still has its ACK processed when our window is closed, so data
  pushed into a zero window cannot hide the peer's progress.
* RST handling with RFC 5961's checks as adopted by RFC 9293: an RST is honoured only when its
  sequence number is exactly RCV.NXT; an in-window RST or any SYN in a synchronized state draws
  a challenge ACK. ACKs answering invalid segments without data (challenge ACKs, replies to
  out-of-window ACKs and probes) are rate-limited to one per 0.5 s, as Linux does, so that two
  ends that disagree can never ping-pong ACKs at line rate.
* The ACK: SND.UNA advances (RTT sample, congestion control in recovery.py), duplicate ACKs
  are counted, SACK blocks go to the scoreboard, the window is updated (guarded by WL1/WL2).
* Text and FIN: in-order data goes to the receive buffer; out-of-order data inside the window
  is buffered (reassembly.py) and draws an immediate duplicate ACK, and filling a hole ACKs
  immediately (RFC 5681 4.2). Delayed ACK otherwise (``ack_delay`` seconds, default 40 ms; 0
  acks every segment), but at least every second full-sized segment is ACKed at once.
* RFC 7323: window scaling and timestamps are used when both SYNs offered them (the peer's
  shift is taken as at most 14). With timestamps, PAWS drops old duplicates before the
  sequence check (an ACK answers them), a segment without TSopt is taken as Linux takes it
  (RFC 7323 3.2's SHOULD-drop is not followed), TS.Recent follows the rules of timestamps.py, and every ACK of new
  data is an RTT sample from its TSecr (4.1) instead of one timed segment per round trip.
* FIN in both directions, half-close, simultaneous close, TIME-WAIT for 2*MSL (``msl``, default
  30 s) restarted by a retransmitted FIN. Urgent data is not implemented: URG is ignored and
  the data delivered in line.
"""

from __future__ import annotations

from proto.tcp.output import Output
from proto.tcp.reset import reset_for
from proto.tcp.seq import MASK, seq_diff
from proto.tcp.states import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    RECEIVING,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    TcpErrorKind,
)
from proto.tcp.synopts import MAX_WSCALE, TS_OPTION_LEN
from proto.tcp.tcb import DEFAULT_PEER_MSS
from proto.wire.tcp import ACK, FIN, RST, SYN, TcpSegment

__all__ = ["SegmentArrival", "INVALID_ACK_INTERVAL"]

INVALID_ACK_INTERVAL = 0.5  # seconds between ACKs answering invalid dataless segments


class SegmentArrival(Output):
    """The receive half of a connection: ``segment_received`` and the steps it takes."""

    def segment_received(self, seg: TcpSegment, now: float) -> None:
        """Process one segment addressed to this connection (RFC 9293 3.10.7)."""
        self._touch()
        self.counters.segments_received += 1
        self._last_rx = now
        self._ts_now = self._ts.clock(now)
        if seg.dst_port != self.local[1] or seg.src_port != self.remote[1]:
            self.counters.bad_segments += 1
            return
        state = self.state
        if state == CLOSED:
            reply = reset_for(seg)
            if reply is not None:
                self._out.append(reply)
            return
        if state == SYN_SENT:
            self._input_syn_sent(seg, now)
        else:
            self._input_synchronized(seg, now)
        self._update_persist(now)

    def _input_syn_sent(self, seg: TcpSegment, now: float) -> None:
        flags = seg.flags
        if flags & ACK and (seq_diff(seg.ack, self._iss) <= 0 or seq_diff(seg.ack, self._snd_max) > 0):
            # An ACK for something we never sent (e.g. an old connection's segment).
            if not flags & RST:
                self._out.append(TcpSegment(self.local[1], self.remote[1], seq=seg.ack, flags=RST))
            self.counters.bad_segments += 1
            return
        if flags & RST:
            if flags & ACK:  # acceptable: it acknowledges our SYN
                self._teardown(TcpErrorKind.REFUSED)
            else:
                self.counters.bad_segments += 1
            return
        if not flags & SYN:
            self.counters.bad_segments += 1
            return
        self._syn_arrived(seg, now)
        if flags & ACK:
            self._snd_wl2 = seg.ack
            self._syn_acked(seg.ack, now)
            self.state = ESTABLISHED
            self._ack_now = True
            if seg.payload or flags & FIN:  # data on a SYN-ACK: continue at the text step
                rest = TcpSegment(
                    seg.src_port,
                    seg.dst_port,
                    (seg.seq + 1) & MASK,
                    seg.ack,
                    flags & ~SYN,
                    seg.window,
                    seg.payload,
                )
                self._text_and_fin(rest, now)
        else:
            # Simultaneous open: answer with SYN-ACK (our SYN again, now acknowledging theirs).
            self.state = SYN_RECEIVED
            self._snd_nxt = self._iss

    def _syn_arrived(self, syn: TcpSegment, now: float) -> None:
        """Record the peer's SYN: its ISN, MSS, initial window and the options both offered.

        On a SYN-ACK, what the peer offers is what it agrees to of ours; on a SYN, what our
        SYN-ACK will agree to. Either way an option is on only if both SYNs carry it."""
        self._irs = syn.seq
        self._rcv_nxt = (syn.seq + 1) & MASK
        self._rcv_adv = self._rcv_nxt
        self._last_ack_sent = self._rcv_nxt
        self._sack_ok = self.sack and syn.sack_permitted
        shift = syn.wscale if self.window_scaling else None
        self._ws_ok = shift is not None
        self._snd_scale = min(shift, MAX_WSCALE) if shift is not None else 0
        self._rcv_scale = self._wscale_offer if shift is not None else 0
        stamps = syn.timestamps if self.timestamps else None
        overhead = 0
        if stamps is not None:
            self._ts.agree(stamps[0], now)
            overhead = TS_OPTION_LEN
        peer_mss = syn.mss if syn.mss is not None else DEFAULT_PEER_MSS
        self._send_mss = max(64, min(peer_mss, self.mss)) - overhead
        self._rcv_mss = self.mss - overhead
        self._set_initial_window()
        self._snd_wnd = syn.window
        self._max_snd_wnd = syn.window
        self._snd_wl1 = syn.seq

    def _syn_acked(self, ack: int, now: float) -> None:
        """Our SYN is acknowledged (the handshake's last step from our side)."""
        self._snd_una = ack
        if seq_diff(self._snd_nxt, ack) < 0:
            self._snd_nxt = ack
        self._rtt.on_syn_acked(ack, now)
        self._retries = 0
        self._rto_deadline = None

    def _input_synchronized(self, seg: TcpSegment, now: float) -> None:
        state = self.state
        flags = seg.flags
        if state == SYN_RECEIVED and flags & SYN and not flags & RST and seg.seq == self._irs:
            if not flags & ACK:
                self._snd_nxt = self._iss  # the peer missed our SYN-ACK: send it again now
            elif seq_diff(seg.ack, self._snd_una) > 0 and seq_diff(seg.ack, self._snd_max) <= 0:
                # Simultaneous open: the peer's SYN-ACK. Strictly its SYN is old news and the
                # segment unacceptable (RFC 793 fig. 8 needs an extra ACK round); take it.
                self._establish(seg, now)
                self._ack_now = True
            return
        if state == TIME_WAIT and flags & FIN and not flags & RST:
            self._ack_now = True  # the peer missed our last ACK; restart 2*MSL (RFC 9293)
            self._timewait_deadline = now + 2 * self.msl
            return

        seq = seg.seq
        payload = seg.payload
        seg_len = seg.seg_len
        ts = self._ts
        stamps: tuple[int, int] | None = None
        if ts.ok and not flags & RST:
            # RFC 7323 3.2 says a segment without TSopt SHOULD be dropped once they are agreed;
            # Linux takes it (there is just nothing for PAWS to compare), and so do we: a peer
            # or middlebox that strips the option from one segment must not stall the transfer.
            stamps = seg.timestamps
            if stamps is not None and ts.paws_rejects(stamps[0], now):  # 5.3 R1: an old duplicate
                self.counters.paws_drops += 1
                if seg_len:
                    self._ack_now = True
                else:
                    self._ack_limited(now)
                return

        # 1. Sequence number check.
        space = self._rcv_space()
        start = seq_diff(seq, self._rcv_nxt)  # where the segment starts, relative to RCV.NXT
        if seg_len == 0 or (space == 0 and not payload and start == 0):
            acceptable = start == 0 if space == 0 else 0 <= start < space
        elif space == 0:
            acceptable = False
        else:
            end = start + seg_len - 1
            acceptable = 0 <= start < space or 0 <= end < space
        if not acceptable:
            if space == 0 and start == 0 and flags & ACK and not flags & (RST | SYN) and state != SYN_RECEIVED:
                # Data into our closed window (a BSD-style probe): RFC 9293 asks to still take
                # its ACK, or a peer that probes with data could never tell us its own progress.
                if not self._process_ack(seg, now):
                    return
            if not flags & RST:
                if seg_len:
                    self._ack_now = True  # data we cannot take: tell the sender where we are
                else:
                    self._ack_limited(now)
            if seg_len and seq_diff((seq + seg_len) & MASK, self._rcv_nxt) <= 0:
                self.counters.dup_segments += 1
            else:
                self.counters.bad_segments += 1
            return
        if stamps is not None:
            ts.update(stamps[0], seq, self._last_ack_sent, now)  # 5.3 R3

        # 2. RST (RFC 5961 3.2: exact match resets, anywhere else in the window challenges).
        if flags & RST:
            if start == 0:
                self._on_rst()
            else:
                self._challenge_ack(now)
            return

        # 4. SYN in a synchronized state: challenge ACK (RFC 5961 4.2 / RFC 9293).
        if flags & SYN:
            self._challenge_ack(now)
            return

        # 5. ACK.
        if not flags & ACK:
            self.counters.bad_segments += 1
            return
        if state == SYN_RECEIVED:
            if seq_diff(seg.ack, self._snd_una) > 0 and seq_diff(seg.ack, self._snd_max) <= 0:
                self._establish(seg, now)
            else:
                self._out.append(TcpSegment(self.local[1], self.remote[1], seq=seg.ack, flags=RST))
                self.counters.bad_segments += 1
                return
        elif not self._process_ack(seg, now):
            return

        # 7./8. Segment text and FIN.
        self._text_and_fin(seg, now)

    def _establish(self, seg: TcpSegment, now: float) -> None:
        """SYN-RECEIVED -> ESTABLISHED on an acceptable ACK of our SYN."""
        self._syn_acked(seg.ack, now)
        window = seg.window if seg.flags & SYN else seg.window << self._snd_scale
        self._snd_wnd = window
        self._max_snd_wnd = max(self._max_snd_wnd, window)
        self._snd_wl1 = seg.seq
        self._snd_wl2 = seg.ack
        self.state = ESTABLISHED
        if self._close_requested:
            self.state = FIN_WAIT_1

    def _challenge_ack(self, now: float) -> None:
        if self._ack_limited(now):
            self.counters.challenge_acks += 1

    def _ack_limited(self, now: float) -> bool:
        """Owe an ACK in reply to an invalid segment without data, at most once per
        ``INVALID_ACK_INTERVAL`` (as Linux's tcp_invalid_ratelimit): if both ends ever judge
        the other's ACKs invalid, unlimited replies would bounce between them forever."""
        if self._last_invalid_ack is not None and now - self._last_invalid_ack < INVALID_ACK_INTERVAL:
            return False
        self._last_invalid_ack = now
        self._ack_now = True
        return True

    def _on_rst(self) -> None:
        if self.state == SYN_RECEIVED:
            self._teardown(TcpErrorKind.RESET if self._passive else TcpErrorKind.REFUSED)
        elif self.state in (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._teardown(TcpErrorKind.RESET)
        else:  # CLOSING, LAST-ACK, TIME-WAIT: we were finished anyway
            self._teardown(None)

    def _process_ack(self, seg: TcpSegment, now: float) -> bool:
        """RFC 9293 3.10.7.4 fifth check for ESTABLISHED and later. False: drop the segment."""
        ack = seg.ack
        self._probes_unanswered = 0
        if seq_diff(ack, self._snd_max) > 0:  # acknowledges something never sent
            self._ack_limited(now)
            self.counters.bad_segments += 1
            return False
        if seq_diff(ack, self._snd_una) < -max(self._max_snd_wnd, 1):  # RFC 5961 5.2: too old
            self._challenge_ack(now)
            return False
        old_una = self._snd_una
        window = seg.window << self._snd_scale
        if self._sack_ok:
            self._scoreboard.update(seg.sack_blocks if seg.options else (), ack, self._snd_max)
        if seq_diff(ack, old_una) > 0:
            self._on_new_ack(ack, now, seg)
        elif (
            ack == old_una
            and not seg.payload
            and not seg.flags & (SYN | FIN)
            and window == self._snd_wnd
            and self._snd_max != old_una
        ):
            self._on_dupack()
        if self._scoreboard.ranges and not self._in_recovery:
            # Whatever the ACK was (new data acknowledged, a window update riding on it), data
            # SACKed above a hole says the hole is lost: count it, as Linux does.
            self._maybe_enter_recovery()
        # Window update, guarded by WL1/WL2 so that a reordered old segment cannot roll it back.
        if seq_diff(ack, old_una) >= 0 and (
            seq_diff(seg.seq, self._snd_wl1) > 0
            or (seg.seq == self._snd_wl1 and seq_diff(ack, self._snd_wl2) >= 0)
        ):
            self._snd_wnd = window
            self._snd_wl1 = seg.seq
            self._snd_wl2 = ack
            self._max_snd_wnd = max(self._max_snd_wnd, window)
            if window == 0 and seq_diff(self._snd_nxt, self._snd_una) > 0:
                # The peer closed (shrank) its window over data in flight: stop retransmitting
                # into it, take the data back as unsent and let the persist timer probe.
                self._snd_nxt = self._snd_una
                self._rto_deadline = None
                self._rtt.cancel()
        if self._fin_seq is not None and seq_diff(self._snd_una, self._fin_seq) > 0:  # FIN acked
            if self.state == FIN_WAIT_1:
                self.state = FIN_WAIT_2
            elif self.state == CLOSING:
                self._enter_time_wait(now)
            elif self.state == LAST_ACK:
                self._teardown(None)
                return False
        return True

    def _on_new_ack(self, ack: int, now: float, seg: TcpSegment) -> None:
        acked = seq_diff(ack, self._snd_una)
        if self._ts.ok:
            # RFC 7323 4: every ACK of new data times the segment whose TSval it echoes, also
            # a retransmitted one (no Karn ambiguity); weighted as Appendix G says, so that a
            # window's worth of samples moves the estimate as one RFC 6298 sample would.
            stamps = seg.timestamps
            r = self._ts.rtt(stamps[1], now) if stamps is not None else None
            if r is not None:
                flight = seq_diff(self._snd_max, self._snd_una)
                self._rtt.sample(r, max(1, -(-flight // (2 * self._send_mss))))
        else:
            self._rtt.on_ack(ack, now)
        data_acked = min(seq_diff(ack, self._snd_base), len(self._sndbuf))
        if data_acked > 0:
            del self._sndbuf[:data_acked]
            self._snd_base = (self._snd_base + data_acked) & MASK
        self._snd_una = ack
        if seq_diff(self._snd_nxt, ack) < 0:
            self._snd_nxt = ack
        self._retries = 0
        self._on_ack_congestion(ack, acked)
        # RFC 6298 5.2/5.3: stop the timer when nothing is in flight, else restart it.
        self._rto_deadline = now + self._rtt.rto if seq_diff(self._snd_nxt, ack) > 0 else None

    def _text_and_fin(self, seg: TcpSegment, now: float) -> None:
        """Steps seven and eight: take in-window data and a FIN (possibly ahead of a hole)."""
        if self.state not in RECEIVING:
            return  # the peer's FIN is in: nothing after it can carry data
        seq = seg.seq
        payload = seg.payload
        fin = bool(seg.flags & FIN)
        # Trim to the window: drop what we already have, and anything past the free space.
        start = seq_diff(seq, self._rcv_nxt)
        if start < 0:
            payload = payload[-start:]
            seq = self._rcv_nxt
            start = 0
        space = self._rcv_space()
        if start + len(payload) > space:
            payload = payload[: max(0, space - start)]
            fin = False  # the FIN lies beyond the window
        if payload:
            if start == 0:
                self._rcvbuf += payload
                self._rcv_nxt = (self._rcv_nxt + len(payload)) & MASK
                if self._reasm.segments:
                    self._rcv_nxt = self._reasm.drain(self._rcv_nxt, self._rcvbuf)
                    self._ack_now = True  # filled (part of) a hole: ACK at once (RFC 5681)
                elif self.ack_delay <= 0 or seq_diff(self._rcv_nxt, self._last_ack_sent) >= 2 * self._rcv_mss:
                    self._ack_now = True
                elif self._delack_deadline is None:
                    self._delack_deadline = now + self.ack_delay
            else:
                if self._reasm.insert(seq, payload, self._rcv_nxt):
                    self.counters.out_of_order += 1
                else:
                    self.counters.dup_segments += 1
                # One duplicate ACK per out-of-order segment, made now: the sender counts them
                # to detect a loss, so a batch of arrivals must not collapse into one ACK.
                self._emit(self._out, self._snd_max, ACK)
        if fin:
            fin_seq = (seq + len(payload)) & MASK
            if fin_seq == self._rcv_nxt:
                self._on_fin(now)
            else:
                self._reasm.fin = fin_seq
                if not payload:  # a bare FIN ahead of a hole is out of order too
                    self._emit(self._out, self._snd_max, ACK)
        elif self._reasm.fin is not None and self._reasm.fin == self._rcv_nxt:
            self._on_fin(now)

    def _on_fin(self, now: float) -> None:
        self._rcv_nxt = (self._rcv_nxt + 1) & MASK
        self._fin_received = True
        self._reasm.clear()
        self._ack_now = True
        if self.state == ESTABLISHED:
            self.state = CLOSE_WAIT
        elif self.state == FIN_WAIT_1:
            self.state = CLOSING  # our FIN is not acknowledged yet (else we'd be in FIN-WAIT-2)
        elif self.state == FIN_WAIT_2:
            self._enter_time_wait(now)
