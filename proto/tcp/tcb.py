"""The transmission control block (RFC 9293 3.3.1): everything one connection remembers.

``TcpConnection`` is one object, built in layers that each add the methods of one part of the
RFC to the state declared here::

    Tcb                     tcb.py: the variables, and the steps that reset them
      Recovery              recovery.py: congestion control and loss recovery (NewReno, SACK)
        Output              output.py: what to transmit (segmentization, retransmission, ACKs)
          SegmentArrival    arrival.py: RFC 9293 3.10.7, a segment arrives
            TcpConnection   connection.py: the user calls and the timeouts (3.10.1-6, 3.10.8)

each a subclass of the one above it.

Why layers of one object rather than objects that call each other: the per-segment path reads
and writes a dozen send and receive variables at every step, and as plain attributes of one
object they cost what they cost before the split. The parts that *are* separable are objects
the TCB owns: the RTT estimator (rtt.py), the SACK scoreboard (scoreboard.py) and the
out-of-order queue (reassembly.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from proto.tcp.counters import TcpCounters
from proto.tcp.reassembly import ReassemblyQueue
from proto.tcp.rtt import RttEstimator
from proto.tcp.scoreboard import Scoreboard
from proto.tcp.seq import MASK
from proto.tcp.states import CLOSED, TIME_WAIT, TcpErrorKind
from proto.tcp.synopts import MAX_WINDOW, wscale_for
from proto.tcp.timestamps import Timestamps
from proto.wire.tcp import TcpSegment

__all__ = ["Tcb", "DEFAULT_PEER_MSS", "DEFAULT_RCV_BUF_SCALED"]

DEFAULT_PEER_MSS = 536  # RFC 9293 3.7.1: assumed when the SYN carries no MSS option
# The receive buffer when window scaling is on and the caller names none: four 64 KiB windows,
# enough to keep a LAN (or the emulated link) busy; the bytearray grows only as far as used.
DEFAULT_RCV_BUF_SCALED = 256 * 1024


class Tcb:
    """One connection's variables. Public: ``state`` (a ``TcpState``), ``error`` (None or a
    ``TcpErrorKind``), ``counters``, ``local``/``remote`` and the constructor's options."""

    notify: Callable[[Self], None] | None

    def __init__(
        self,
        local: tuple[str, int],
        remote: tuple[str, int],
        *,
        iss: int,
        mss: int = 1460,
        rcv_buf: int | None = None,
        snd_buf: int = 65535,
        msl: float = 30.0,
        rto_initial: float = 1.0,
        rto_min: float = 0.2,
        rto_max: float = 60.0,
        max_retries: int = 8,
        ack_delay: float = 0.04,
        fin_wait_2_timeout: float | None = None,
        sack: bool = True,
        window_scaling: bool = True,
        timestamps: bool = True,
        tso_max: int = 0,
        ts_offset: int | None = None,
    ) -> None:
        """``mss`` is the MSS we advertise and also caps what we send; ``rcv_buf``/``snd_buf``
        bound the bytes buffered each way (the receive window is what is free in ``rcv_buf``;
        default 256 KiB with window scaling, else 65535). ``iss`` is the initial send sequence
        number: the caller picks it (RFC 6528 says unpredictable; tests pick values near 2**32
        to exercise wraparound).

        ``window_scaling`` and ``timestamps`` (RFC 7323) are offered on our SYN and used when
        the peer's SYN offered them too; with a peer that offers neither the connection behaves
        as without them (windows of at most 65535, no option on data segments).
        ``tso_max`` > 0 (bytes of payload): the card segments for us (TSO), so one segment of up
        to that much may leave where several MSS-sized ones would; the I/O layer cuts it by
        ``send_mss``. ``ts_offset``: the timestamp clock's origin (default: derived from
        ``iss``, as unpredictable as it is)."""
        if not (0 <= iss <= MASK):
            raise ValueError("iss must be a 32-bit unsigned integer")
        self.local = local
        self.remote = remote
        self.state = CLOSED
        self.error: TcpErrorKind | None = None
        self.counters = TcpCounters()
        self.mss = mss
        if rcv_buf is None:
            rcv_buf = DEFAULT_RCV_BUF_SCALED if window_scaling else MAX_WINDOW
        self.rcv_buf = rcv_buf
        self.snd_buf = snd_buf
        self.msl = msl
        self.max_retries = max_retries
        self.ack_delay = ack_delay
        self.fin_wait_2_timeout = fin_wait_2_timeout
        self.sack = sack  # offer/accept SACK (RFC 2018); used only when both ends agree
        self._sack_ok = False
        self.window_scaling = window_scaling
        self.timestamps = timestamps
        self.tso_max = tso_max
        self._wscale_offer = wscale_for(rcv_buf)  # the shift our SYN offers
        self._ws_ok = False  # both SYNs offered window scaling
        self._snd_scale = 0  # agreed (both SYNs offered it): the peer's shift for its windows
        self._rcv_scale = 0  # agreed: our shift for the windows we advertise
        self._ts = Timestamps(ts_offset if ts_offset is not None else (iss * 0x9E3779B1) >> 7)
        self._ts_now = 0  # our TSval for the event being handled (every entry point sets it)

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
        self._rcv_mss = mss  # a full-sized segment from the peer (less 12 with timestamps)
        self._sndbuf = bytearray()
        self._snd_base = (iss + 1) & MASK
        self._close_requested = False
        self._fin_seq: int | None = None
        # Receive side.
        self._rcv_nxt = 0
        self._rcv_adv = 0  # right edge of the window last advertised
        self._rcvbuf = bytearray()
        self._reasm = ReassemblyQueue()  # what arrived beyond RCV.NXT
        self._fin_received = False
        self._last_ack_sent = 0
        # Congestion control and loss recovery (RFC 5681 / 6582 / 6675), see recovery.py.
        self._cwnd = 0
        self._ssthresh = 1 << 30
        self._dupacks = 0
        self._in_recovery = False
        self._recover: int | None = None
        self._scoreboard = Scoreboard(iss)
        self._retx_hole = False
        # RTT estimation (RFC 6298) and timers. Deadlines are absolute times or None.
        self._rtt = RttEstimator(rto_initial, rto_min, rto_max)
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
        self.notify = None

    def _touch(self: Self) -> None:
        notify = self.notify
        if notify is not None:
            notify(self)

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
        self._reasm.clear()
        self._ack_now = self._force = self._retx_una = self._probe_due = False
        self._rto_deadline = self._persist_deadline = None
        self._delack_deadline = self._timewait_deadline = None
