"""A listening socket: ``TcpListener``, the LISTEN state (RFC 9293 3.10.7.2) and its backlog.

Kept apart from ``TcpConnection`` because a listener is not a connection: it has no sequence
space, only a bounded set of connections being born. A SYN becomes a connection in
SYN-RECEIVED; handshakes in progress and completed-but-unaccepted connections both count
against the backlog, so a SYN flood costs a bounded amount.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from proto.tcp.connection import TcpConnection
from proto.tcp.reset import reset_for
from proto.tcp.seq import MASK
from proto.tcp.states import CLOSED, LISTEN, SYN_RECEIVED
from proto.wire.tcp import ACK, RST, SYN, TcpSegment

__all__ = ["TcpListener"]


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
