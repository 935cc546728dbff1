"""TCP connection state machine (RFC 9293), sans-IO.

No sockets, no tasks, no clock: the caller feeds decoded segments and the current time in, and
takes segments out. That keeps one implementation usable by the guest's stack (net/server.py)
and by a host-side user-mode router, and lets the tests drive it with a virtual clock.

The I/O layer's loop, for each connection::

    conn.segment_received(seg, now)   # for every segment demultiplexed to it
    conn.send(data) / conn.receive()  # on application requests
    conn.poll_timers(now)             # when now >= conn.next_deadline()
    for seg in conn.segments_to_send(now): transmit(seg)   # after *any* of the above
    sleep until conn.next_deadline() or the next event     # never poll

Output is produced lazily by ``segments_to_send``: several ``send()`` calls become full-sized
segments, and an ACK owed for received data rides on outgoing data when there is some.

What is implemented, and the choices made where the RFCs leave room:

* Handshake both ways and simultaneous open; MSS option (default 536 when absent, RFC 9293
  3.7.1); SACK-permitted is offered (below); no window scaling or timestamps, so windows are at
  most 65535.
* Sliding window with receiver SWS avoidance (the right edge moves only by >= min(buffer/2,
  MSS)) and sender SWS avoidance; zero-window persist probes, sent Linux-style as an ACK one
  below SND.UNA so they need no sequence space and always draw an ACK with the current window.
* Retransmission per RFC 6298: initial RTO 1 s, RTO = SRTT + max(G, 4*RTTVAR) with G = 1 ms,
  **minimum 200 ms** (Linux's choice; RFC 6298 says 1 s, but on a LAN or the emulated link that
  turns every loss into a long stall), maximum 60 s; Karn's algorithm (no samples from
  retransmitted segments, back-off kept until a fresh sample); exponential back-off; 3 s after
  a retransmitted SYN when no sample exists (5.7). After ``max_retries`` (8) retransmissions
  of the same data without progress the connection fails with ``error = "timed out"``.
* Congestion control: NewReno (RFC 5681 + RFC 6582): slow start, congestion avoidance, fast
  retransmit on the third duplicate ACK, fast recovery with partial-ACK retransmission, and
  go-back-N from SND.UNA after an RTO. Limited transmit (RFC 3042: a new segment on each of the
  first two duplicate ACKs) and early retransmit (RFC 5827: fewer duplicate ACKs when fewer than
  four segments are in flight and nothing new can go) keep small windows out of the RTO.
* SACK (RFC 2018), when both ends offer it: out-of-order data is reported in up to four blocks
  on pure ACKs (the block with the latest arrival first); the sender keeps a scoreboard, resends
  each hole it shows during fast recovery (RFC 6675's NextSeg, one per arriving ACK), and going
  back N after an RTO skips what ACKs since have reported held. No D-SACK, no pipe estimate.
* Out-of-order segments inside the window are buffered (overlaps trimmed, duplicates dropped)
  and cause an immediate duplicate ACK; filling a hole ACKs immediately (RFC 5681 4.2).
* Delayed ACK (optional, ``ack_delay`` seconds, default 40 ms; 0 acks every segment): at least
  every second full-sized segment is ACKed at once.
* RST handling with RFC 5961's checks as adopted by RFC 9293: an RST is honoured only when its
  sequence number is exactly RCV.NXT; an in-window RST or any SYN in a synchronized state draws
  a challenge ACK. ACKs answering invalid segments without data (challenge ACKs, replies to
  out-of-window ACKs and probes) are rate-limited to one per 0.5 s, as Linux does, so that two
  ends that disagree can never ping-pong ACKs at line rate.
* A segment starting at RCV.NXT still has its ACK processed when our window is closed (RFC 9293
  "special allowance"), so data pushed into a zero window cannot hide the peer's progress.
* FIN in both directions, half-close, simultaneous close, TIME-WAIT for 2*MSL (``msl``, default
  30 s) restarted by a retransmitted FIN.
* All sequence arithmetic is modulo 2**32 (``seq_diff``), so wraparound needs no special case.

* FIN-WAIT-2 lasts as long as the peer likes (RFC 9293): after ``close()`` we may still be
  receiving. An I/O layer whose application has gone away sets ``fin_wait_2_timeout`` (at any
  time; Linux uses 60 s for such orphans): after that long without a segment from the peer the
  connection ends with ``error = "timed out"``, so a peer whose FIN or RST was lost cannot pin
  it for ever.

Not implemented: urgent data (URG is ignored and the data delivered in line), keep-alives,
IP-level concerns (ICMP, PMTU).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from proto.tcp.states import TcpErrorKind, TcpState
from proto.wire.tcp import ACK, FIN, OPT_MSS, OPT_SACK, OPT_SACK_PERMITTED, PSH, RST, SYN, TcpSegment

__all__ = [
    "TcpConnection",
    "TcpListener",
    "TcpCounters",
    "TcpError",
    "TcpErrorKind",
    "TcpState",
    "reset_for",
    "seq_diff",
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECEIVED",
    "ESTABLISHED",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "CLOSE_WAIT",
    "CLOSING",
    "LAST_ACK",
    "TIME_WAIT",
]

CLOSED = TcpState.CLOSED
LISTEN = TcpState.LISTEN
SYN_SENT = TcpState.SYN_SENT
SYN_RECEIVED = TcpState.SYN_RECEIVED
ESTABLISHED = TcpState.ESTABLISHED
FIN_WAIT_1 = TcpState.FIN_WAIT_1
FIN_WAIT_2 = TcpState.FIN_WAIT_2
CLOSE_WAIT = TcpState.CLOSE_WAIT
CLOSING = TcpState.CLOSING
LAST_ACK = TcpState.LAST_ACK
TIME_WAIT = TcpState.TIME_WAIT

# States in which we may still have data or a FIN to (re)transmit.
_SENDING = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK})
# States in which the peer may still send us data (its FIN not yet received).
_RECEIVING = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
# States in which we owe the peer a FIN (after the queued data).
_FIN_STATES = frozenset({FIN_WAIT_1, CLOSING, LAST_ACK})

MASK = 0xFFFFFFFF
DEFAULT_PEER_MSS = 536  # RFC 9293 3.7.1: assumed when the SYN carries no MSS option
MAX_WINDOW = 0xFFFF  # no window scaling is negotiated
CLOCK_GRANULARITY = 0.001  # G in RFC 6298
INVALID_ACK_INTERVAL = 0.5  # seconds between ACKs answering invalid dataless segments


def seq_diff(a: int, b: int) -> int:
    """``a - b`` as a signed 32-bit sequence-space distance: < 0 means a is before b.

    Every comparison of sequence numbers goes through this, which is all wraparound needs
    (valid while the two are within 2**31 of each other, which windows guarantee)."""
    return ((a - b + 0x80000000) & MASK) - 0x80000000


class TcpError(ConnectionError):
    """Raised by ``send``/``receive`` on a connection that failed or can no longer do that.

    ``kind`` is the connection's ``error`` (refused, reset, timed out) or the reason the call is
    invalid (closing, not connected); the message is its text."""

    def __init__(self, kind: TcpErrorKind) -> None:
        super().__init__(str(kind))
        self.kind = kind


@dataclass
class TcpCounters:
    """Per-connection statistics (for tests, ``netstat``-style tools and debugging)."""

    segments_sent: int = 0
    segments_received: int = 0
    retransmits: int = 0  # segments sent again (after an RTO, fast retransmit, partial ACK)
    timeouts: int = 0  # retransmission timer expiries
    fast_retransmits: int = 0  # third-duplicate-ACK retransmissions
    dup_acks: int = 0
    dup_segments: int = 0  # received segments carrying only data we already had
    out_of_order: int = 0  # segments buffered ahead of RCV.NXT
    bad_segments: int = 0  # segments dropped as unacceptable (window, ACK, ports)
    probes: int = 0  # zero-window probes sent
    challenge_acks: int = 0  # RFC 5961 challenge ACKs sent
    sack_retransmits: int = 0  # holes the peer's SACK blocks showed, resent in fast recovery


def reset_for(seg: TcpSegment) -> TcpSegment | None:
    """The RST to answer ``seg`` with when no connection wants it (RFC 9293 3.10.7.1).

    Used for segments to closed ports and by CLOSED connections and listeners; ``None`` when
    the segment is itself a RST (never answer a RST)."""
    if seg.flags & RST:
        return None
    if seg.flags & ACK:
        return TcpSegment(seg.dst_port, seg.src_port, seq=seg.ack, flags=RST)
    return TcpSegment(seg.dst_port, seg.src_port, seq=0, ack=(seg.seq + seg.seg_len) & MASK, flags=RST | ACK)


class TcpConnection:
    """One TCP connection's state machine. See the module docstring for the calling protocol.

    Public state: ``state`` (RFC 9293 state name), ``error`` (None or why it failed),
    ``at_eof``, ``counters``; ``local``/``remote`` are the (ip, port) pairs the caller uses to
    demultiplex and to wrap outgoing segments in IP.
    """

    def __init__(
        self,
        local: tuple[str, int],
        remote: tuple[str, int],
        *,
        iss: int,
        mss: int = 1460,
        rcv_buf: int = 65535,
        snd_buf: int = 65535,
        msl: float = 30.0,
        rto_initial: float = 1.0,
        rto_min: float = 0.2,
        rto_max: float = 60.0,
        max_retries: int = 8,
        ack_delay: float = 0.04,
        fin_wait_2_timeout: float | None = None,
        sack: bool = True,
    ) -> None:
        """``mss`` is the MSS we advertise and also caps what we send; ``rcv_buf``/``snd_buf``
        bound the bytes buffered each way (the receive window is what is free in ``rcv_buf``).
        ``iss`` is the initial send sequence number: the caller picks it (RFC 6528 says
        unpredictable; tests pick values near 2**32 to exercise wraparound)."""
        if not (0 <= iss <= MASK):
            raise ValueError("iss must be a 32-bit unsigned integer")
        self.local = local
        self.remote = remote
        self.state = CLOSED
        self.error: TcpErrorKind | None = None
        self.counters = TcpCounters()
        self.mss = mss
        self.rcv_buf = rcv_buf
        self.snd_buf = snd_buf
        self.msl = msl
        self.rto_min = rto_min
        self.rto_max = rto_max
        self.max_retries = max_retries
        self.ack_delay = ack_delay
        self.fin_wait_2_timeout = fin_wait_2_timeout
        self.sack = sack  # offer/accept SACK (RFC 2018); used only when both ends agree
        self._sack_ok = False

        self._iss = iss
        self._irs = 0
        self._passive = False
        # Send side. _sndbuf holds every byte not yet acknowledged, _snd_base is the sequence
        # number of its first byte; _snd_nxt may be pulled back below _snd_max (go-back-N).
        self._snd_una = iss
        self._snd_nxt = iss
        self._snd_max = iss
        self._snd_wnd = 0
        self._snd_wl1 = 0
        self._snd_wl2 = 0
        self._max_snd_wnd = 0
        self._send_mss = min(mss, DEFAULT_PEER_MSS)
        self._sndbuf = bytearray()
        self._snd_base = (iss + 1) & MASK
        self._close_requested = False
        self._fin_seq: int | None = None
        # Receive side.
        self._rcv_nxt = 0
        self._rcv_adv = 0  # right edge of the window last advertised
        self._rcvbuf = bytearray()
        self._ooo: list[tuple[int, bytes]] = []  # disjoint, sorted by distance from RCV.NXT
        self._ooo_fin: int | None = None  # sequence number of a FIN that arrived ahead of data
        self._ooo_latest = 0  # where the latest out-of-order segment started (first SACK block)
        self._fin_received = False
        self._last_ack_sent = 0
        # Congestion control (RFC 5681 / 6582).
        self._cwnd = 0
        self._ssthresh = 1 << 30
        self._dupacks = 0
        self._in_recovery = False
        self._recover: int | None = None
        # SACK scoreboard (RFC 2018 / 6675): ranges [start, end) the peer holds beyond SND.UNA,
        # disjoint and in sequence order; and how far fast recovery has resent holes.
        self._sacked: list[tuple[int, int]] = []
        self._high_rxt = iss
        self._retx_hole = False
        # RTT estimation and timers (RFC 6298). Deadlines are absolute times or None.
        self._srtt: float | None = None
        self._rttvar = 0.0
        self._rto = rto_initial
        self._rtt_seq: int | None = None  # segment being timed: its end sequence number
        self._rtt_seq_start = 0
        self._rtt_start = 0.0
        self._syn_retransmitted = False
        self._retries = 0
        self._rto_deadline: float | None = None
        self._persist_deadline: float | None = None
        self._persist_backoff = 0
        self._probes_unanswered = 0
        self._delack_deadline: float | None = None
        self._last_invalid_ack: float | None = None
        self._timewait_deadline: float | None = None
        self._last_rx = 0.0  # time of the last segment received (FIN-WAIT-2 idle timeout)
        # Output requests, consumed by segments_to_send.
        self._out: list[TcpSegment] = []  # ready-made control segments (RSTs)
        self._ack_now = False
        self._force = False  # after an RTO: send one segment even into a closed window
        self._retx_una = False  # fast retransmit / partial ACK: resend the segment at SND.UNA
        self._probe_due = False
        # Whoever drives many connections (net/stack.py) learns which ones changed instead of
        # asking every connection for output and deadlines after every event: every entry point
        # (connect, send, receive, close, abort, segment_received, poll_timers) calls
        # ``notify(self)``. A new connection may have output (a SYN-ACK) before anyone listens.
        self.notify: Callable[[TcpConnection], None] | None = None

    def _touch(self) -> None:
        notify = self.notify
        if notify is not None:
            notify(self)

    # ------------------------------------------------------------------ opening

    def connect(self, now: float) -> None:
        """Active open: queue the SYN (with our MSS option); state SYN-SENT."""
        if self.state != CLOSED or self._snd_max != self._iss:
            raise TcpError(TcpErrorKind.IN_USE)
        self.state = SYN_SENT
        self._touch()

    @classmethod
    def accept(
        cls,
        local: tuple[str, int],
        remote: tuple[str, int],
        syn: TcpSegment,
        now: float,
        *,
        iss: int,
        **options: float,
    ) -> TcpConnection:
        """Passive open from a received SYN: a connection in SYN-RECEIVED whose first output is
        the SYN-ACK. ``options`` are the constructor's keyword options. Data carried on the SYN
        is not acknowledged (the peer resends it), as without TCP Fast Open."""
        if not syn.flags & SYN or syn.flags & (ACK | RST):
            raise ValueError("accept() needs a bare SYN segment")
        conn = cls(local, remote, iss=iss, **options)  # type: ignore[arg-type]
        conn._passive = True
        conn._syn_arrived(syn)
        conn.state = SYN_RECEIVED
        return conn

    # ------------------------------------------------------------------ application side

    def send(self, data: bytes) -> int:
        """Queue data for sending; returns how many bytes fit in ``snd_buf`` (possibly 0).

        Allowed from SYN-SENT on (queued until established) until ``close()``."""
        if self.error:
            raise TcpError(self.error)
        if self._close_requested or self.state not in (SYN_SENT, SYN_RECEIVED, ESTABLISHED, CLOSE_WAIT):
            raise TcpError(TcpErrorKind.CLOSING if self.state != CLOSED else TcpErrorKind.NOT_CONNECTED)
        n = min(len(data), self.snd_buf - len(self._sndbuf))
        if n > 0:
            self._sndbuf += data[:n] if n < len(data) else data
            self._touch()
        return max(n, 0)

    def receive(self, max_bytes: int = -1) -> bytes:
        """Take up to ``max_bytes`` (all if negative) of the in-order data received.

        Returns ``b""`` when nothing is available (check ``at_eof`` for the end of the
        stream); raises ``TcpError`` once the connection has failed. Reading may open the
        window far enough to owe the peer a window update, sent by ``segments_to_send``."""
        if not self._rcvbuf:
            if self.error:
                raise TcpError(self.error)
            return b""
        n = len(self._rcvbuf) if max_bytes < 0 else min(max_bytes, len(self._rcvbuf))
        data = bytes(self._rcvbuf[:n])
        del self._rcvbuf[:n]
        if self.state in _RECEIVING and self._window_update_due():
            self._ack_now = True
        self._touch()
        return data

    def close(self, now: float) -> None:
        """Graceful close: a FIN follows the data already queued (half-close: we may still
        receive until the peer's FIN). Idempotent once closing."""
        self._touch()
        if self.state == SYN_SENT:
            self._teardown(None)
        elif self.state == SYN_RECEIVED:
            self._close_requested = True  # FIN goes out after the handshake completes
        elif self.state == ESTABLISHED:
            self._close_requested = True
            self.state = FIN_WAIT_1
        elif self.state == CLOSE_WAIT:
            self._close_requested = True
            self.state = LAST_ACK

    def abort(self, now: float) -> None:
        """Drop the connection at once: a RST to the peer if it is synchronized, all queued
        data discarded, state CLOSED (``error`` stays None: it was our decision)."""
        self._touch()
        if self.state in (SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._out.append(
                TcpSegment(
                    self.local[1],
                    self.remote[1],
                    seq=self._snd_max,
                    ack=self._rcv_nxt,
                    flags=RST | ACK,
                )
            )
        self._teardown(None)

    # ------------------------------------------------------------------ read-only views

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and every byte before it has been read."""
        return self._fin_received and not self._rcvbuf

    @property
    def available(self) -> int:
        """Bytes ready for ``receive()``."""
        return len(self._rcvbuf)

    @property
    def send_space(self) -> int:
        """Bytes ``send()`` would accept now."""
        return max(0, self.snd_buf - len(self._sndbuf))

    @property
    def send_queued(self) -> int:
        """Bytes queued and not yet acknowledged by the peer (0 = everything delivered)."""
        return len(self._sndbuf)

    @property
    def rto(self) -> float:
        """Current retransmission timeout (seconds), including any back-off."""
        return self._rto

    @property
    def srtt(self) -> float | None:
        """Smoothed round-trip time, None before the first sample."""
        return self._srtt

    @property
    def send_mss(self) -> int:
        """Largest payload we put in one segment: min(our ``mss``, the peer's MSS option)."""
        return self._send_mss

    @property
    def snd_wnd(self) -> int:
        """The peer's last advertised receive window."""
        return self._snd_wnd

    def __repr__(self) -> str:
        return f"<TcpConnection {self.local[0]}:{self.local[1]} -> {self.remote[0]}:{self.remote[1]} {self.state}>"

    # ------------------------------------------------------------------ timers

    def next_deadline(self) -> float | None:
        """The earliest time ``poll_timers`` has work to do; None when no timer is armed."""
        best: float | None = None
        for t in (
            self._rto_deadline,
            self._persist_deadline,
            self._delack_deadline,
            self._timewait_deadline,
            self._fin_wait_2_deadline(),
        ):
            if t is not None and (best is None or t < best):
                best = t
        return best

    def poll_timers(self, now: float) -> None:
        """Run every timer that has expired by ``now`` (early or repeated calls are harmless)."""
        self._touch()
        if self._timewait_deadline is not None and now >= self._timewait_deadline:
            self._teardown(None)
            return
        deadline = self._fin_wait_2_deadline()
        if deadline is not None and now >= deadline:
            self._teardown(TcpErrorKind.TIMED_OUT)
            return
        if self._delack_deadline is not None and now >= self._delack_deadline:
            self._delack_deadline = None
            self._ack_now = True
        if self._rto_deadline is not None and now >= self._rto_deadline:
            self._on_rto(now)
            if self.state == CLOSED:
                return
        if self._persist_deadline is not None and now >= self._persist_deadline:
            self._on_persist(now)

    def _fin_wait_2_deadline(self) -> float | None:
        if self.state != FIN_WAIT_2 or self.fin_wait_2_timeout is None:
            return None
        return self._last_rx + self.fin_wait_2_timeout

    def _on_rto(self, now: float) -> None:
        if self._retries >= self.max_retries:
            self._teardown(TcpErrorKind.TIMED_OUT)
            return
        self._retries += 1
        self.counters.timeouts += 1
        self._rto = min(self._rto * 2, self.rto_max)  # back off (RFC 6298 5.5)
        if self.state in (SYN_SENT, SYN_RECEIVED):
            self._syn_retransmitted = True
        else:
            flight = seq_diff(self._snd_max, self._snd_una)
            self._ssthresh = max(flight // 2, 2 * self._send_mss)
            self._cwnd = self._send_mss
            self._in_recovery = False
            self._retx_hole = False
            self._dupacks = 0
            self._recover = self._snd_max  # RFC 6582: no fast retransmit for pre-RTO dupacks
            # RFC 2018 8: after a timeout, resend as if nothing were SACKed (the receiver may
            # have reneged); ACKs from here on rebuild the scoreboard.
            self._sacked = []
        self._snd_nxt = self._snd_una  # go back N: resend from the first unacknowledged byte
        self._rtt_seq = None  # Karn
        self._force = True
        self._rto_deadline = now + self._rto

    def _on_persist(self, now: float) -> None:
        self._probes_unanswered += 1
        if self._probes_unanswered > self.max_retries:
            self._teardown(TcpErrorKind.TIMED_OUT)
            return
        self._probe_due = True
        self.counters.probes += 1
        self._persist_backoff += 1
        self._persist_deadline = now + min(self._rto * (1 << self._persist_backoff), self.rto_max)

    # ------------------------------------------------------------------ input

    def segment_received(self, seg: TcpSegment, now: float) -> None:
        """Process one segment addressed to this connection (RFC 9293 3.10.7)."""
        self._touch()
        self.counters.segments_received += 1
        self._last_rx = now
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
        self._syn_arrived(seg)
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

    def _syn_arrived(self, syn: TcpSegment) -> None:
        """Record the peer's SYN: its ISN, MSS and initial window."""
        self._irs = syn.seq
        self._rcv_nxt = (syn.seq + 1) & MASK
        self._rcv_adv = self._rcv_nxt
        self._last_ack_sent = self._rcv_nxt
        self._sack_ok = self.sack and syn.sack_permitted
        peer_mss = syn.mss if syn.mss is not None else DEFAULT_PEER_MSS
        self._send_mss = max(64, min(peer_mss, self.mss))
        self._cwnd = min(4 * self._send_mss, max(2 * self._send_mss, 4380))  # RFC 5681 IW
        self._snd_wnd = syn.window
        self._max_snd_wnd = syn.window
        self._snd_wl1 = syn.seq

    def _syn_acked(self, ack: int, now: float) -> None:
        """Our SYN is acknowledged (the handshake's last step from our side)."""
        self._snd_una = ack
        if seq_diff(self._snd_nxt, ack) < 0:
            self._snd_nxt = ack
        if self._rtt_seq is not None and seq_diff(ack, self._rtt_seq) >= 0:
            self._rtt_sample(now - self._rtt_start)
        self._rtt_seq = None
        if self._syn_retransmitted and self._srtt is None:
            self._rto = max(self._rto, 3.0)  # RFC 6298 5.7
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

        # 1. Sequence number check.
        seq = seg.seq
        payload = seg.payload
        seg_len = seg.seg_len
        space = max(0, self.rcv_buf - len(self._rcvbuf))
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
        self._snd_wnd = seg.window
        self._max_snd_wnd = max(self._max_snd_wnd, seg.window)
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
        if self._sack_ok:
            self._note_sack(seg, ack)
        if seq_diff(ack, old_una) > 0:
            self._on_new_ack(ack, now)
        elif (
            ack == old_una
            and not seg.payload
            and not seg.flags & (SYN | FIN)
            and seg.window == self._snd_wnd
            and self._snd_max != old_una
        ):
            self._on_dupack()
        if self._sacked and not self._in_recovery:
            # Whatever the ACK was (new data acknowledged, a window update riding on it), data
            # SACKed above a hole says the hole is lost: count it, as Linux does.
            self._maybe_enter_recovery()
        # Window update, guarded by WL1/WL2 so that a reordered old segment cannot roll it back.
        if seq_diff(ack, old_una) >= 0 and (
            seq_diff(seg.seq, self._snd_wl1) > 0
            or (seg.seq == self._snd_wl1 and seq_diff(ack, self._snd_wl2) >= 0)
        ):
            self._snd_wnd = seg.window
            self._snd_wl1 = seg.seq
            self._snd_wl2 = ack
            self._max_snd_wnd = max(self._max_snd_wnd, seg.window)
            if seg.window == 0 and seq_diff(self._snd_nxt, self._snd_una) > 0:
                # The peer closed (shrank) its window over data in flight: stop retransmitting
                # into it, take the data back as unsent and let the persist timer probe.
                self._snd_nxt = self._snd_una
                self._rto_deadline = None
                self._rtt_seq = None
        if self._fin_seq is not None and seq_diff(self._snd_una, self._fin_seq) > 0:  # FIN acked
            if self.state == FIN_WAIT_1:
                self.state = FIN_WAIT_2
            elif self.state == CLOSING:
                self._enter_time_wait(now)
            elif self.state == LAST_ACK:
                self._teardown(None)
                return False
        return True

    def _note_sack(self, seg: TcpSegment, ack: int) -> None:
        """Merge the segment's SACK blocks into the scoreboard and drop what `ack` covers.
        Blocks outside (ACK, SND.MAX] are ignored (stale, or lies)."""
        ranges = self._sacked
        blocks = seg.sack_blocks if seg.options else ()  # () when it carries no SACK option
        if not ranges and not blocks:
            return
        limit = seq_diff(self._snd_max, ack)
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
        self._sacked = [((ack + a) & MASK, (ack + b) & MASK) for a, b in merged]

    def _next_hole(self) -> tuple[int, int] | None:
        """The first run of bytes not SACKed, from max(SND.UNA, what recovery resent) up to the
        highest SACKed byte: data the receiver is missing (RFC 6675's NextSeg, rule 1)."""
        una = self._snd_una
        start = max(seq_diff(self._high_rxt, una), 0)
        for s, e in self._sacked:
            a, b = seq_diff(s, una), seq_diff(e, una)
            if start < a:
                return (una + start) & MASK, s
            start = max(start, b)
        return None

    def _on_new_ack(self, ack: int, now: float) -> None:
        acked = seq_diff(ack, self._snd_una)
        if self._rtt_seq is not None and seq_diff(ack, self._rtt_seq) >= 0:
            self._rtt_sample(now - self._rtt_start)
            self._rtt_seq = None
        data_acked = min(seq_diff(ack, self._snd_base), len(self._sndbuf))
        if data_acked > 0:
            del self._sndbuf[:data_acked]
            self._snd_base = (self._snd_base + data_acked) & MASK
        self._snd_una = ack
        if seq_diff(self._snd_nxt, ack) < 0:
            self._snd_nxt = ack
        self._retries = 0
        # Congestion control.
        smss = self._send_mss
        if self._in_recovery:
            assert self._recover is not None
            if seq_diff(ack, self._recover) >= 0:  # full ACK: leave fast recovery
                self._in_recovery = False
                self._retx_hole = False
                self._cwnd = self._ssthresh
                self._dupacks = 0
            else:  # partial ACK: the next hole is lost too (RFC 6582 3.2)
                if self._sack_ok and seq_diff(self._high_rxt, ack) > 0:
                    self._retx_hole = True  # SND.UNA was resent already: on to the next hole
                else:
                    self._retx_una = True
                self._cwnd = max(self._cwnd - acked + smss, smss)
        else:
            self._dupacks = 0
            if self._cwnd < self._ssthresh:
                self._cwnd += min(acked, smss)
            else:
                self._cwnd += max(1, smss * smss // self._cwnd)
        if self._recover is not None and not self._in_recovery and seq_diff(ack, self._recover) > 0:
            self._recover = None
        # RFC 6298 5.2/5.3: stop the timer when nothing is in flight, else restart it.
        self._rto_deadline = now + self._rto if seq_diff(self._snd_nxt, ack) > 0 else None

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
        sacked_segments = -(-self._sacked_bytes() // self._send_mss)
        if max(self._dupacks, sacked_segments) >= thresh and (
            self._recover is None or seq_diff(self._snd_una, self._recover) > 0
        ):
            flight = seq_diff(self._snd_max, self._snd_una)
            self._ssthresh = max(flight // 2, 2 * self._send_mss)
            self._cwnd = self._ssthresh + 3 * self._send_mss
            self._recover = self._snd_max
            self._in_recovery = True
            self._retx_una = True
            self._high_rxt = self._snd_una
            self.counters.fast_retransmits += 1

    def _sacked_bytes(self) -> int:
        return sum(seq_diff(e, s) for s, e in self._sacked)

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

    def _rtt_sample(self, r: float) -> None:
        """RFC 6298 2.2/2.3."""
        r = max(r, 0.0)
        if self._srtt is None:
            self._srtt = r
            self._rttvar = r / 2
        else:
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - r)
            self._srtt = 0.875 * self._srtt + 0.125 * r
        rto = self._srtt + max(CLOCK_GRANULARITY, 4 * self._rttvar)
        self._rto = min(max(rto, self.rto_min), self.rto_max)

    def _text_and_fin(self, seg: TcpSegment, now: float) -> None:
        """Steps seven and eight: take in-window data and a FIN (possibly ahead of a hole)."""
        if self.state not in _RECEIVING:
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
        space = max(0, self.rcv_buf - len(self._rcvbuf))
        if start + len(payload) > space:
            payload = payload[: max(0, space - start)]
            fin = False  # the FIN lies beyond the window
        if payload:
            if start == 0:
                self._rcvbuf += payload
                self._rcv_nxt = (self._rcv_nxt + len(payload)) & MASK
                if self._ooo:
                    self._drain_ooo()
                    self._ack_now = True  # filled (part of) a hole: ACK at once (RFC 5681)
                elif self.ack_delay <= 0 or seq_diff(self._rcv_nxt, self._last_ack_sent) >= 2 * self.mss:
                    self._ack_now = True
                elif self._delack_deadline is None:
                    self._delack_deadline = now + self.ack_delay
            else:
                if self._ooo_insert(seq, payload):
                    self.counters.out_of_order += 1
                    self._ooo_latest = seq
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
                self._ooo_fin = fin_seq
                if not payload:  # a bare FIN ahead of a hole is out of order too
                    self._emit(self._out, self._snd_max, ACK)
        elif self._ooo_fin is not None and self._ooo_fin == self._rcv_nxt:
            self._on_fin(now)

    def _ooo_insert(self, seq: int, data: bytes) -> bool:
        """Buffer data ahead of RCV.NXT, keeping only bytes not already buffered."""
        base = self._rcv_nxt
        start = seq_diff(seq, base)
        pieces = [(start, start + len(data))]
        for s_seq, s_data in self._ooo:
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
            self._ooo.append(((base + a) & MASK, data[a - start : b - start]))
        self._ooo.sort(key=lambda item: seq_diff(item[0], base))
        return True

    def _drain_ooo(self) -> None:
        """Move buffered segments that RCV.NXT has reached into the in-order buffer."""
        while self._ooo:
            s_seq, data = self._ooo[0]
            start = seq_diff(s_seq, self._rcv_nxt)
            if start > 0:
                break
            del self._ooo[0]
            if start + len(data) > 0:
                tail = data[-start:] if start < 0 else data
                self._rcvbuf += tail
                self._rcv_nxt = (self._rcv_nxt + len(tail)) & MASK

    def _on_fin(self, now: float) -> None:
        self._rcv_nxt = (self._rcv_nxt + 1) & MASK
        self._fin_received = True
        self._ooo.clear()
        self._ooo_fin = None
        self._ack_now = True
        if self.state == ESTABLISHED:
            self.state = CLOSE_WAIT
        elif self.state == FIN_WAIT_1:
            self.state = CLOSING  # our FIN is not acknowledged yet (else we'd be in FIN-WAIT-2)
        elif self.state == FIN_WAIT_2:
            self._enter_time_wait(now)

    def _enter_time_wait(self, now: float) -> None:
        self.state = TIME_WAIT
        self._rto_deadline = self._persist_deadline = self._delack_deadline = None
        self._timewait_deadline = now + 2 * self.msl

    def _teardown(self, error: TcpErrorKind | None) -> None:
        """Enter CLOSED: drop every queue and timer (RFC 9293: flush on reset and timeout)."""
        if error is not None:
            self.error = error
            self._rcvbuf.clear()
        self.state = CLOSED
        self._sndbuf.clear()
        self._ooo.clear()
        self._ooo_fin = None
        self._ack_now = self._force = self._retx_una = self._probe_due = False
        self._rto_deadline = self._persist_deadline = None
        self._delack_deadline = self._timewait_deadline = None

    # ------------------------------------------------------------------ output

    def segments_to_send(self, now: float) -> list[TcpSegment]:
        """Everything to transmit now, in order; the caller wraps each in IPv4 to ``remote``.

        ``now`` times the segments sent (RTO timer start, RTT measurement)."""
        out = self._out
        self._out = []
        state = self.state
        if state in (SYN_SENT, SYN_RECEIVED):
            if self._snd_nxt == self._iss:
                self._send_syn(now, out)
        elif state in _SENDING:
            self._output_data(now, out)
        if self._probe_due:
            self._probe_due = False
            if state in _SENDING:
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
            self._rtt_seq = (self._iss + 1) & MASK
            self._rtt_seq_start = self._iss
            self._rtt_start = now
        else:
            self.counters.retransmits += 1
        # SACK-permitted: offered on our SYN if we do SACK, on a SYN-ACK only if the peer offered.
        offer = self._sack_ok if flags & ACK else self.sack
        options = ((OPT_MSS, self.mss), (OPT_SACK_PERMITTED, None)) if offer else ((OPT_MSS, self.mss),)
        self._emit(out, self._iss, flags, options=options)
        self._snd_nxt = self._snd_max = (self._iss + 1) & MASK
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rto
        self._force = False

    def _output_data(self, now: float, out: list[TcpSegment]) -> None:
        smss = self._send_mss
        if self._retx_una:
            self._retx_una = False
            self._retransmit_first(now, out)
        elif self._retx_hole:
            self._retx_hole = False
            if self._in_recovery:
                self._retransmit_hole(now, out)
        force = self._force
        self._force = False
        while True:
            if self._sacked and seq_diff(self._snd_nxt, self._snd_max) < 0:
                self._skip_sacked()
            offset = seq_diff(self._snd_nxt, self._snd_base)
            remaining = len(self._sndbuf) - offset
            fin_pending = self._fin_unsent()
            if remaining <= 0 and not fin_pending:
                break
            remaining = max(remaining, 0)
            cwnd = self._cwnd
            if 0 < self._dupacks < 3 and not self._in_recovery:
                cwnd += self._dupacks * smss  # limited transmit (RFC 3042): new data draws dupacks
            window = min(self._snd_wnd, cwnd)
            usable = seq_diff((self._snd_una + window) & MASK, self._snd_nxt)
            n = min(smss, remaining, max(usable, 0))
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
                self._karn(seq, end)
            elif self._rtt_seq is None:
                self._rtt_seq = end
                self._rtt_seq_start = seq
                self._rtt_start = now
            self._snd_nxt = end
            if seq_diff(end, self._snd_max) > 0:
                self._snd_max = end
            if fin:
                self._fin_seq = (end - 1) & MASK
            if self._rto_deadline is None:
                self._rto_deadline = now + self._rto

    def _skip_sacked(self) -> None:
        """Going back N: do not resend what the peer has told us (by SACK) it holds."""
        for s, e in self._sacked:
            if seq_diff(s, self._snd_nxt) <= 0 < seq_diff(e, self._snd_nxt):
                self._snd_nxt = e
                return

    def _retransmit_hole(self, now: float, out: list[TcpSegment]) -> None:
        """Resend (up to a segment of) the next hole the SACK scoreboard shows."""
        hole = self._next_hole()
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
        self._karn(seq, end)
        self._high_rxt = end
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rto

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
        self._karn(seq, end)
        if seq_diff(end, self._high_rxt) > 0:
            self._high_rxt = end
        if seq_diff(self._snd_nxt, end) < 0:
            self._snd_nxt = end
        if self._rto_deadline is None:
            self._rto_deadline = now + self._rto

    def _karn(self, seq: int, end: int) -> None:
        """Karn's algorithm: retransmitting any byte of the segment being timed makes its ACK
        ambiguous, so drop the measurement (retransmitting other bytes leaves it valid)."""
        if (
            self._rtt_seq is not None
            and seq_diff(seq, self._rtt_seq) < 0
            and seq_diff(end, self._rtt_seq_start) > 0
        ):
            self._rtt_seq = None

    def _emit(
        self,
        out: list[TcpSegment],
        seq: int,
        flags: int,
        payload: bytes = b"",
        options: tuple = (),
    ) -> None:
        """Build one segment; every segment with ACK settles what we owe the peer."""
        if flags & ACK:
            ack = self._rcv_nxt
            window = self._advertise_window()
            if self._ooo and self._sack_ok and not payload and not flags & SYN:
                # Only on segments without data: the blocks' 34 bytes must not push a full
                # segment past the MTU.
                options = ((OPT_SACK, self._sack_edges()),)
            self._ack_now = False
            self._delack_deadline = None
            self._last_ack_sent = ack
        else:  # the initial SYN: nothing received yet
            ack = 0
            window = min(self.rcv_buf, MAX_WINDOW)
        out.append(TcpSegment(self.local[1], self.remote[1], seq, ack, flags, window, payload, options))
        self.counters.segments_sent += 1

    def _sack_edges(self) -> tuple[int, ...]:
        """What we hold beyond RCV.NXT as SACK edges (RFC 2018 4): contiguous buffered pieces
        merged into blocks, at most four, the block holding the latest arrival first."""
        base = self._rcv_nxt
        blocks: list[list[int]] = []
        for s_seq, data in self._ooo:  # sorted by distance from RCV.NXT
            s = seq_diff(s_seq, base)
            if blocks and blocks[-1][1] >= s:
                blocks[-1][1] = max(blocks[-1][1], s + len(data))
            else:
                blocks.append([s, s + len(data)])
        latest = seq_diff(self._ooo_latest, base)
        blocks.sort(key=lambda b: not b[0] <= latest < b[1])  # stable: the rest keep their order
        return tuple((base + edge) & MASK for b in blocks[:4] for edge in b)

    def _advertise_window(self) -> int:
        """Receive window to put in a segment, with receiver SWS avoidance (RFC 9293 3.8.6.2.2):
        the right edge only moves once it can move by min(rcv_buf/2, MSS), and never back."""
        space = min(max(0, self.rcv_buf - len(self._rcvbuf)), MAX_WINDOW)
        right = (self._rcv_nxt + space) & MASK
        if seq_diff(right, self._rcv_adv) >= min(self.rcv_buf // 2, self.mss):
            self._rcv_adv = right
        return max(0, min(seq_diff(self._rcv_adv, self._rcv_nxt), MAX_WINDOW))

    def _window_update_due(self) -> bool:
        """Has reading opened the window enough that the peer should hear about it now?"""
        space = min(max(0, self.rcv_buf - len(self._rcvbuf)), MAX_WINDOW)
        right = (self._rcv_nxt + space) & MASK
        return seq_diff(right, self._rcv_adv) >= min(self.rcv_buf // 2, self.mss)

    def _fin_unsent(self) -> bool:
        """We owe a FIN and it is not (or, after going back, no longer) in flight."""
        return (
            self._close_requested
            and self.state in _FIN_STATES
            and (self._fin_seq is None or seq_diff(self._snd_nxt, self._fin_seq) <= 0)
        )

    def _update_persist(self, now: float) -> None:
        """Arm the persist timer while the peer's window is zero, we have something to send
        and nothing is in flight (otherwise the retransmission timer covers us)."""
        need = (
            self.state in _SENDING
            and self._snd_wnd == 0
            and self._rto_deadline is None
            and (seq_diff(self._snd_nxt, self._snd_base) < len(self._sndbuf) or self._fin_unsent())
        )
        if not need:
            self._persist_deadline = None
            self._persist_backoff = 0
        elif self._persist_deadline is None:
            self._persist_deadline = now + min(self._rto * (1 << self._persist_backoff), self.rto_max)


class TcpListener:
    """A passive socket (LISTEN) with a bounded backlog.

    The caller routes segments for known 4-tuples to their connections and everything else for
    the listening port here. A SYN creates a connection in SYN-RECEIVED (returned so the caller
    can add it to its demultiplexing table and send its SYN-ACK); ``accept()`` hands out
    connections whose handshake completed. Handshakes in progress and completed-but-unaccepted
    connections both count against ``backlog``; SYNs beyond it are dropped silently (the
    client retries) and counted in ``dropped_syns`` -- a SYN flood costs a bounded amount."""

    state = LISTEN

    def __init__(
        self,
        local: tuple[str, int],
        *,
        backlog: int = 16,
        isn: Callable[[], int] | None = None,
        **options: float,
    ) -> None:
        """``isn`` draws initial sequence numbers (default: random, RFC 6528); ``options`` are
        passed to each accepted ``TcpConnection``."""
        self.local = local
        self.backlog = backlog
        self.dropped_syns = 0
        self._isn = isn or (lambda: secrets.randbits(32))
        self._options = options
        self._queue: list[TcpConnection] = []
        self._out: list[tuple[tuple[str, int], TcpSegment]] = []

    @property
    def pending(self) -> int:
        """Connections held against the backlog (handshaking or awaiting ``accept``)."""
        self._purge()
        return len(self._queue)

    def segment_received(self, seg: TcpSegment, remote: tuple[str, int], now: float) -> TcpConnection | None:
        """Handle a segment for the listening port from ``remote`` (RFC 9293 3.10.7.2).

        Returns the new connection for an accepted SYN, else None (an ACK-bearing segment is
        answered with a RST via ``segments_to_send``; a RST or other stray segment is ignored)."""
        self._purge()
        if seg.flags & RST:
            return None
        if seg.flags & ACK:
            reply = reset_for(seg)
            if reply is not None:
                self._out.append((remote, reply))
            return None
        if not seg.flags & SYN:
            return None
        for conn in self._queue:
            if conn.remote == remote:  # a retransmitted SYN the caller did not demultiplex
                conn.segment_received(seg, now)
                return None
        if len(self._queue) >= self.backlog:
            self.dropped_syns += 1
            return None
        conn = TcpConnection.accept(self.local, remote, seg, now, iss=self._isn() & MASK, **self._options)
        self._queue.append(conn)
        return conn

    @property
    def ready(self) -> bool:
        """Is there a connection for ``accept`` (its handshake completed)?"""
        return any(conn.state != SYN_RECEIVED and conn.state != CLOSED for conn in self._queue)

    def accept(self) -> TcpConnection | None:
        """The oldest connection whose handshake has completed, or None."""
        self._purge()
        for conn in self._queue:
            if conn.state != SYN_RECEIVED:
                self._queue.remove(conn)
                return conn
        return None

    def segments_to_send(self) -> list[tuple[tuple[str, int], TcpSegment]]:
        """RSTs owed by the listener itself, as (remote address, segment)."""
        out = self._out
        self._out = []
        return out

    def _purge(self) -> None:
        """Forget connections that died before being accepted (reset, handshake timed out)."""
        self._queue = [c for c in self._queue if c.state != CLOSED]
