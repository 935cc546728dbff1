"""A simulated link for the TCP engine's tests: endpoints (proto.tcp) joined at the byte level.

Every segment is built into an Ethernet frame with proto/wire, travels a link with seeded loss,
reordering, duplication and corruption, and is decoded again on arrival -- so a corrupted frame
is rejected by the receiver's checksum exactly as on a real network. Time is virtual: the loop
jumps to the next frame arrival or the earliest ``next_deadline()``, so RTOs of a minute cost
nothing and every run is reproducible. Shared by tests/net/test_tcp*.py (pytest's `pythonpath`
puts tests/support on the path).
"""


from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from proto.tcp import (
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    TcpConnection,
    TcpListener,
    reset_for,
)
from proto.wire import DecodeError
from proto.wire.frame import build_tcp_frame, decode_frame
from proto.wire.tcp import ACK, OPT_MSS, SYN, TcpSegment

A_IP, B_IP = "10.0.2.15", "10.0.2.2"
MACS = {A_IP: "52:54:00:12:34:56", B_IP: "52:55:0a:00:02:02"}


# --------------------------------------------------------------------------- simulated link


@dataclass
class Impair:
    loss: float = 0.0
    reorder: float = 0.0
    dup: float = 0.0
    corrupt: float = 0.0
    delay: float = 0.01  # one way
    # Bytes per second each sender's link carries (None: infinitely fast, so a whole flight
    # arrives at one instant and draws one ACK). With a rate, frames queue behind each other
    # and arrive spaced out, as on a wire -- what ACK clocking and slow start are built on.
    rate: float | None = None


@dataclass
class Sim:
    """A virtual clock, a link and the hosts on it."""

    impair: Impair = field(default_factory=Impair)
    seed: int = 1
    now: float = 0.0
    hosts: dict[str, Host] = field(default_factory=dict)
    log: list[tuple[float, str, str, TcpSegment]] = field(default_factory=list)
    rejected: int = 0  # frames the receiver's decoder refused (corruption)
    corrupted: int = 0
    drop: Callable[[str, TcpSegment], bool] | None = None  # extra targeted loss for a test
    black_holes: set[str] = field(default_factory=set)  # IPs whose frames vanish
    _queue: list[tuple[float, int, str, bytes]] = field(default_factory=list)
    _link_free: dict[str, float] = field(default_factory=dict)  # when each sender's link is idle
    _n: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def host(self, ip: str) -> Host:
        self.hosts[ip] = Host(self, ip)
        return self.hosts[ip]

    def transmit(self, src: str, dst: str, seg: TcpSegment) -> None:
        self.log.append((self.now, src, dst, seg))
        if self.drop is not None and self.drop(src, seg):
            return
        if dst in self.black_holes or src in self.black_holes:
            return
        frame = build_tcp_frame(MACS.get(src, MACS[A_IP]), MACS.get(dst, MACS[B_IP]), src, dst, seg)
        imp, rng = self.impair, self.rng
        depart = self.now
        if imp.rate is not None:
            depart = max(depart, self._link_free.get(src, 0.0)) + len(frame) / imp.rate
            self._link_free[src] = depart
        if rng.random() < imp.loss:
            return
        copies = 2 if rng.random() < imp.dup else 1
        for i in range(copies):
            data = bytearray(frame)
            if rng.random() < imp.corrupt:
                # Only IP/TCP bytes: on a real link the Ethernet FCS catches the rest.
                pos = rng.randrange(14, len(data))
                data[pos] ^= rng.randrange(1, 256)
                self.corrupted += 1
            t = depart + imp.delay + i * rng.uniform(0.001, 0.02)
            if rng.random() < imp.reorder:
                t += rng.uniform(0.005, 0.03)
            self._n += 1
            heapq.heappush(self._queue, (t, self._n, dst, bytes(data)))

    def run(
        self,
        until: Callable[[], bool],
        *,
        app: Callable[[float], None] | None = None,
        stop_at: float | None = None,
        limit: float = 3600.0,
    ) -> None:
        """Advance events until ``until()`` holds; fail if time runs past ``limit`` or stalls.

        ``stop_at`` is an extra wake-up time, so that ``until`` can wait for a moment."""
        while True:
            if app is not None:
                app(self.now)
            for h in self.hosts.values():
                h.flush()
            if until():
                return
            times = [d for h in self.hosts.values() for d in h.deadlines()]
            if self._queue:
                times.append(self._queue[0][0])
            if stop_at is not None and stop_at > self.now:
                times.append(stop_at)
            if not times:
                raise AssertionError(f"simulation stalled at t={self.now}")
            self.now = max(self.now, min(times))
            if self.now > limit:
                raise AssertionError(f"simulation ran past t={limit}")
            while self._queue and self._queue[0][0] <= self.now:
                _, _, dst, data = heapq.heappop(self._queue)
                if dst in self.hosts:
                    self.hosts[dst].receive(data)
            for h in self.hosts.values():
                h.poll(self.now)

    def advance(self, seconds: float, app: Callable[[float], None] | None = None) -> None:
        """Let ``seconds`` of virtual time pass, processing whatever happens meanwhile."""
        end = self.now + seconds
        self.run(lambda: self.now >= end, app=app, stop_at=end)

    def segments(self, src: str, predicate: Callable[[TcpSegment], bool] = lambda s: True) -> list:
        return [(t, s) for t, a, _, s in self.log if a == src and predicate(s)]


class Host:
    """An IP endpoint: demultiplexes segments to connections, listeners or a RST."""

    def __init__(self, sim: Sim, ip: str) -> None:
        self.sim = sim
        self.ip = ip
        self.conns: dict[tuple[int, str, int], TcpConnection] = {}
        self.listeners: dict[int, TcpListener] = {}
        self.history: dict[TcpConnection, list[str]] = {}

    def connect(self, port: int, remote: tuple[str, int], *, iss: int = 1000, **kw) -> TcpConnection:
        conn = TcpConnection((self.ip, port), remote, iss=iss, **kw)
        conn.connect(self.sim.now)
        self.conns[(port, remote[0], remote[1])] = conn
        self.history[conn] = [conn.state]
        return conn

    def listen(self, port: int, **kw) -> TcpListener:
        self.listeners[port] = TcpListener((self.ip, port), **kw)
        return self.listeners[port]

    def receive(self, data: bytes) -> None:
        try:
            frame = decode_frame(data)
        except DecodeError:
            self.sim.rejected += 1
            return
        seg, ip = frame.tcp, frame.ip
        assert seg is not None and ip is not None
        key = (seg.dst_port, ip.src, seg.src_port)
        conn = self.conns.get(key)
        if conn is not None:
            conn.segment_received(seg, self.sim.now)
        elif seg.dst_port in self.listeners:
            new = self.listeners[seg.dst_port].segment_received(seg, (ip.src, seg.src_port), self.sim.now)
            if new is not None:
                self.conns[key] = new
                self.history[new] = [new.state]
        else:
            rst = reset_for(seg)
            if rst is not None:
                self.sim.transmit(self.ip, ip.src, rst)
        self._note_states()

    def poll(self, now: float) -> None:
        for conn in self.conns.values():
            deadline = conn.next_deadline()
            if deadline is not None and deadline <= now:
                conn.poll_timers(now)
        self._note_states()

    def flush(self) -> None:
        for conn in self.conns.values():
            for seg in conn.segments_to_send(self.sim.now):
                self.sim.transmit(self.ip, conn.remote[0], seg)
        for listener in self.listeners.values():
            for remote, seg in listener.segments_to_send():
                self.sim.transmit(self.ip, remote[0], seg)
        self._note_states()

    def deadlines(self) -> list[float]:
        return [d for c in self.conns.values() if (d := c.next_deadline()) is not None]

    def _note_states(self) -> None:
        for conn, hist in self.history.items():
            if hist[-1] != conn.state:
                hist.append(conn.state)


def pair(
    impair: Impair | None = None, *, seed: int = 1, a_kw: dict | None = None, b_kw: dict | None = None, iss_b: int = 5000
) -> tuple[Sim, TcpConnection, TcpConnection]:
    """A connects from port 40000 to B's listener on port 70; run the handshake."""
    sim = Sim(impair or Impair(), seed=seed)
    a_host, b_host = sim.host(A_IP), sim.host(B_IP)
    listener = b_host.listen(70, isn=lambda: iss_b, **(b_kw or {}))
    a = a_host.connect(40000, (B_IP, 70), **(a_kw or {}))
    accepted: list[TcpConnection] = []

    def done() -> bool:
        if not accepted:
            c = listener.accept()
            if c is not None:
                accepted.append(c)
        return a.state == ESTABLISHED and bool(accepted)

    sim.run(done)
    return sim, a, accepted[0]


class Transfer:
    """Application on both ends: each writes its data as buffer space allows, reads all it can,
    and closes once everything it wrote is queued."""

    def __init__(self, a: TcpConnection, b: TcpConnection, data_a: bytes, data_b: bytes) -> None:
        self.ends = [(a, data_a, bytearray(), [0]), (b, data_b, bytearray(), [0])]

    def __call__(self, now: float) -> None:
        for conn, data, got, sent in self.ends:
            if conn.state == CLOSED:
                continue
            while sent[0] < len(data):
                n = conn.send(data[sent[0] : sent[0] + 65536])
                if n == 0:
                    break
                sent[0] += n
            if sent[0] == len(data) and conn.state in (ESTABLISHED, CLOSE_WAIT):
                conn.close(now)
            got += conn.receive()

    def received(self, i: int) -> bytes:
        return bytes(self.ends[i][2])


def both_closed(a: TcpConnection, b: TcpConnection) -> Callable[[], bool]:
    return lambda: a.state == CLOSED and b.state == CLOSED

def established_receiver(rcv_buf: int = 65535) -> TcpConnection:
    syn = TcpSegment(1234, 80, seq=99, flags=SYN, window=65535, options=((OPT_MSS, 1000),))
    b = TcpConnection.accept((B_IP, 80), (A_IP, 1234), syn, 0.0, iss=7000, rcv_buf=rcv_buf, ack_delay=0)
    assert b.segments_to_send(0.0)[0].flags == SYN | ACK
    b.segment_received(TcpSegment(1234, 80, 100, 7001, ACK, 65535), 0.0)
    assert b.state == ESTABLISHED
    return b
