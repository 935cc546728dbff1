"""The stack's TCP connections: who they are, which changed, and when each next needs a timer.

Work is tracked per connection, so an event costs O(log n), not a visit to all n connections
(at 200 connections those visits were half the CPU): connections report every change
(TcpConnection.notify) into a dirty set, where `collect` asks them for output; their timer
deadlines sit in a heap (stale entries dropped lazily; `_deadline` holds each connection's
current one), which `poll` pops. Finished connections' counters are folded into totals so
/tcp/stats keeps them after the connection is forgotten.

Kept apart from net/stack.py, which routes segments to and from these connections: this is
the bookkeeping that makes many connections cheap, with no knowledge of IP.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import fields

from proto.tcp import CLOSED, TcpConnection, TcpCounters
from proto.wire.tcp import TcpSegment

Key = tuple[str, int, str, int]  # local address, local port, remote address, remote port


class ConnectionTable:
    """Every TCP connection the stack has, by `Key`. `owned`: those an application holds (the
    others are being finished in the background: FIN, FIN-WAIT-2, TIME-WAIT, or are waiting to
    be accepted). `ports`: local port -> connections using it (for ephemeral port choice)."""

    def __init__(self) -> None:
        self.connections: dict[Key, TcpConnection] = {}
        self.owned: set[TcpConnection] = set()
        self.ports: dict[int, int] = {}
        self._keys: dict[TcpConnection, Key] = {}
        self._dirty: dict[TcpConnection, None] = {}
        self._timers: list[tuple[float, int, TcpConnection]] = []
        self._deadline: dict[TcpConnection, float | None] = {}
        self._timer_seq = 0
        self._observers: dict[TcpConnection, Callable[[TcpConnection], None]] = {}
        self._totals = TcpCounters()
        self._closed = 0

    def register(self, key: Key, conn: TcpConnection) -> None:
        self.connections[key] = conn
        self._keys[conn] = key
        self.ports[key[1]] = self.ports.get(key[1], 0) + 1
        conn.notify = self._touched
        self._dirty[conn] = None  # a new connection has something to say (SYN, SYN-ACK)

    def _forget(self, conn: TcpConnection) -> None:
        key = self._keys.pop(conn)
        del self.connections[key]
        left = self.ports[key[1]] - 1
        if left:
            self.ports[key[1]] = left
        else:
            del self.ports[key[1]]
        self._deadline.pop(conn, None)
        self._observers.pop(conn, None)
        self._dirty.pop(conn, None)
        conn.notify = None
        self._fold(conn)
        if len(self._timers) > 2 * len(self._keys) + 64:  # mostly stale entries: rebuild
            self._timers = [e for e in self._timers if e[2] in self._keys and self._deadline.get(e[2]) == e[0]]
            heapq.heapify(self._timers)

    def _touched(self, conn: TcpConnection) -> None:
        """TcpConnection.notify: the connection changed (input, a socket call, a timer)."""
        self._dirty[conn] = None
        observer = self._observers.get(conn)
        if observer is not None:
            observer(conn)

    def observe(self, conn: TcpConnection, observer: Callable[[TcpConnection], None] | None) -> None:
        """Call ``observer(conn)`` whenever ``conn`` changes (None: stop)."""
        if observer is None:
            self._observers.pop(conn, None)
        elif conn in self._keys:
            self._observers[conn] = observer

    def collect(self, now: float, output: Callable[[TcpConnection, TcpSegment], None]) -> None:
        """Hand every segment of the connections that changed to `output`, note their new
        deadlines, tell their observers, and forget the finished ones nobody holds."""
        while self._dirty:
            dirty, self._dirty = self._dirty, {}
            for conn in dirty:
                if conn not in self._keys:
                    continue
                for seg in conn.segments_to_send(now):
                    output(conn, seg)
                self._schedule(conn)
                observer = self._observers.get(conn)
                if observer is not None:
                    observer(conn)
                if conn.state == CLOSED and conn not in self.owned:
                    self._forget(conn)

    def poll(self, now: float) -> None:
        """Run the timers of every connection whose deadline is due by `now`."""
        self._refresh_dirty()
        timers = self._timers
        due: list[TcpConnection] = []
        while timers and timers[0][0] <= now:
            d, _, conn = heapq.heappop(timers)
            if self._deadline.get(conn, -1.0) == d and conn in self._keys:
                self._deadline[conn] = None  # popped: _schedule pushes the next one
                due.append(conn)
        for conn in due:
            next_d = conn.next_deadline()
            if next_d is not None and now >= next_d:
                conn.poll_timers(now)
            self._schedule(conn)

    def next_deadline(self) -> float | None:
        """The earliest connection timer (None: no connection has one)."""
        self._refresh_dirty()
        timers = self._timers
        while timers:
            d, _, conn = timers[0]
            if conn in self._keys and self._deadline.get(conn) == d:
                return d
            heapq.heappop(timers)
        return None

    def _schedule(self, conn: TcpConnection) -> None:
        """Record the connection's current timer deadline (pushed on the heap when it moved)."""
        d = conn.next_deadline()
        if self._deadline.get(conn, -1.0) != d:
            self._deadline[conn] = d
            if d is not None:
                self._timer_seq += 1
                heapq.heappush(self._timers, (d, self._timer_seq, conn))

    def _refresh_dirty(self) -> None:
        """Deadlines of connections changed since the last collect (their output is not out
        yet, but a socket call or an input may already have moved a timer)."""
        for conn in self._dirty:
            if conn in self._keys:
                self._schedule(conn)

    def _fold(self, conn: TcpConnection) -> None:
        totals = self._totals
        for f in fields(TcpCounters):
            setattr(totals, f.name, getattr(totals, f.name) + getattr(conn.counters, f.name))
        self._closed += 1

    def counters(self) -> dict[str, int]:
        """TCP statistics summed over every connection, live and finished."""
        out = {f.name: getattr(self._totals, f.name) for f in fields(TcpCounters)}
        for conn in self.connections.values():
            for f in fields(TcpCounters):
                out[f.name] += getattr(conn.counters, f.name)
        out["connections_finished"] = self._closed
        return out
