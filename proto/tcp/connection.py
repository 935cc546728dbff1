"""One TCP connection (RFC 9293), sans-IO: ``TcpConnection``, its user calls and its timers.

No sockets, no tasks, no clock: the caller feeds decoded segments and the current time in, and
takes segments out. That keeps one implementation usable by the guest's stack (net/server.py)
and by the host-side user-mode router (machine/netdev/user.py), and lets the tests drive it
with a virtual clock.

The I/O layer's loop, for each connection::

    conn.segment_received(seg, now)   # for every segment demultiplexed to it
    conn.send(data) / conn.receive()  # on application requests
    conn.poll_timers(now)             # when now >= conn.next_deadline()
    for seg in conn.segments_to_send(now): transmit(seg)   # after *any* of the above
    sleep until conn.next_deadline() or the next event     # never poll

This module holds the user calls (RFC 9293 3.10.1-3.10.6) and the timeouts (3.10.8); the class
is built in layers, one file each (see tcb.py). The timers:

* Retransmission (RFC 6298, the RTO from rtt.py): exponential back-off, go-back-N from
  SND.UNA; after ``max_retries`` (8) retransmissions of the same data without progress the
  connection fails with ``error = TcpErrorKind.TIMED_OUT``.
* Persist: zero-window probes with the same back-off; ``max_retries`` unanswered probes time
  the connection out too.
* Delayed ACK (``ack_delay``) and TIME-WAIT (2*MSL).
* FIN-WAIT-2 lasts as long as the peer likes (RFC 9293): after ``close()`` we may still be
  receiving. An I/O layer whose application has gone away sets ``fin_wait_2_timeout`` (at any
  time; Linux uses 60 s for such orphans): after that long without a segment from the peer the
  connection ends with ``error = TcpErrorKind.TIMED_OUT``, so a peer whose FIN or RST was lost
  cannot pin it for ever.

Keep-alives are not implemented.
"""

from __future__ import annotations

from proto.tcp.arrival import SegmentArrival
from proto.tcp.states import (
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    RECEIVING,
    SYN_RECEIVED,
    SYN_SENT,
    TcpErrorKind,
)
from proto.wire.tcp import ACK, RST, SYN, TcpSegment

__all__ = ["TcpConnection", "TcpError"]


class TcpError(ConnectionError):
    """Raised by ``send``/``receive`` on a connection that failed or can no longer do that.

    ``kind`` is the connection's ``error`` (refused, reset, timed out) or the reason the call is
    invalid (closing, not connected); the message is its text."""

    def __init__(self, kind: TcpErrorKind) -> None:
        super().__init__(str(kind))
        self.kind = kind


class TcpConnection(SegmentArrival):
    """One TCP connection's state machine. See the module docstring for the calling protocol.

    Public state: ``state`` (a ``TcpState``), ``error`` (None or the ``TcpErrorKind`` it failed
    with), ``at_eof``, ``counters``; ``local``/``remote`` are the (ip, port) pairs the caller
    uses to demultiplex and to wrap outgoing segments in IP. The constructor (tcb.py) takes the
    options: ``iss``, ``mss``, buffer sizes, timer settings, ``sack``.
    """

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
        # ``options`` mixes ints, floats, a bool and None, as the constructor's keywords do;
        # typing it exactly (a TypedDict and Unpack) would oblige every caller's option dict to
        # be one too, so the one loose spot is here.
        conn = cls(local, remote, iss=iss, **options)  # type: ignore[arg-type]
        conn._passive = True
        conn._syn_arrived(syn, now)
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
        if self.state in RECEIVING and self._window_update_due():
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
        return self._rtt.rto

    @property
    def srtt(self) -> float | None:
        """Smoothed round-trip time, None before the first sample."""
        return self._rtt.srtt

    @property
    def send_mss(self) -> int:
        """Largest payload we put in one segment on the wire: min(our ``mss``, the peer's MSS
        option), less 12 when timestamps ride on every segment. With TSO, the size the card
        cuts larger segments into (gso_size)."""
        return self._send_mss

    @property
    def snd_wnd(self) -> int:
        """The peer's last advertised receive window (scaled: in bytes)."""
        return self._snd_wnd

    @property
    def window_scale(self) -> tuple[int, int] | None:
        """(our shift, the peer's shift) when window scaling is in use, else None."""
        return (self._rcv_scale, self._snd_scale) if self._ws_ok else None

    @property
    def timestamps_on(self) -> bool:
        """Do both ends stamp every segment (RFC 7323 timestamps agreed)?"""
        return self._ts.ok

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
        self._ts_now = self._ts.clock(now)
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
        handshake = self.state in (SYN_SENT, SYN_RECEIVED)
        self._rtt.on_timeout(syn=handshake)  # back off; Karn: no sample from what is resent
        if not handshake:
            self._on_timeout_congestion()
        self._snd_nxt = self._snd_una  # go back N: resend from the first unacknowledged byte
        self._force = True
        self._rto_deadline = now + self._rtt.rto

    def _on_persist(self, now: float) -> None:
        self._probes_unanswered += 1
        if self._probes_unanswered > self.max_retries:
            self._teardown(TcpErrorKind.TIMED_OUT)
            return
        self._probe_due = True
        self.counters.probes += 1
        self._persist_backoff += 1
        self._persist_deadline = now + min(self._rtt.rto * (1 << self._persist_backoff), self._rtt.rto_max)
