"""The ``user`` router's TCP: guest connections relayed to host sockets, and port forwarding.

* **TCP** from the guest: 10.0.2.2 means the host's 127.0.0.1 (as in QEMU), any other address is
  that address. The router *terminates* the guest's TCP with :class:`proto.tcp.TcpConnection` and
  pipes the bytes to a trio socket, connecting on the host first so that a refused or unreachable
  host port becomes a RST or an ICMP unreachable for the guest -- the same answers the guest would
  get on a real network.
* **Port forwarding** (``hostfwd=tcp:127.0.0.1:7070-:70``, QEMU's syntax, repeatable): the router
  listens on the host port and, for each host connection, opens a TCP connection to the guest
  from 10.0.2.2 (an ephemeral port), piping bytes both ways.

Every TCP engine has one timer task that sleeps until its ``next_deadline()`` (and is woken only
when that moves earlier): an idle connection costs no wake-ups.

Why the router reuses proto.tcp: this router is host-side hardware emulation -- QEMU's slirp is
part of QEMU, not of the guest -- and ``proto.tcp`` is a pure sans-IO library (no sockets, no
tasks, no OS dependency), so machine/ may import it. Writing a second TCP engine for the host
side would only duplicate the one that is tested against RFC 9293.
"""

from __future__ import annotations

import errno
import math
import secrets
import socket
import struct
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

import trio

from machine.netdev import BackendError
from machine.netdev.user.host import host_address
from machine.netdev.user.icmp import Unreachable
from machine.netdev.user.options import HostFwd
from machine.netdev.user.segment import GATEWAY, MTU
from machine.netdev.user.wakeup import Wakeup
from proto.tcp import CLOSED, TcpConnection, TcpError, reset_for
from proto.wire.frame import Frame
from proto.wire.tcp import ACK, RST, SYN, TcpSegment

if TYPE_CHECKING:
    from machine.netdev.user.router import UserBackend

__all__ = ["TcpRelay", "TcpFlow", "TCP_OPTIONS", "MAX_TCP_FLOWS", "EPHEMERAL"]

MAX_TCP_FLOWS = 1024  # each holds a host fd; beyond this new connections are refused
EPHEMERAL = (49152, 65535)

#: The TCP engine's options for the router's side of every connection. Windows are capped at
#: 65535 (no window scaling); the send buffer is larger so that the host side can stay one window
#: ahead. TIME-WAIT is short (2 x 2 s): the router's 4-tuples never reach a real network, only
#: the guest, which picks fresh ephemeral ports anyway.
TCP_OPTIONS: dict[str, float] = {
    "mss": MTU - 40,
    "rcv_buf": 65535,
    "snd_buf": 4 * 65535,
    "msl": 2.0,
    "fin_wait_2_timeout": 60.0,
}

FlowKey = tuple[str, int, str, int]  # guest address, guest port, far address, far port


class TcpRelay:
    """The router's TCP side: the flow table, guest SYNs, and the ``hostfwd`` listeners."""

    def __init__(self, router: UserBackend, hostfwd: Iterable[HostFwd]) -> None:
        self.router = router
        self.flows: dict[FlowKey, TcpFlow] = {}
        self.hostfwd: list[HostFwd] = list(hostfwd)
        self.hostfwd_ports: list[int] = []
        self.listeners: list[socket.socket] = []
        self._next_port = EPHEMERAL[0]

    def listen(self) -> None:
        """Bind the host side of every forwarding rule now, so a port in use fails at start-up
        (as QEMU's "could not set up host forwarding rule") and early host clients queue."""
        for rule in self.hostfwd:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((rule.host_addr, rule.host_port))
                s.listen(128)
                s.setblocking(False)
            except OSError as e:
                s.close()
                raise BackendError(f"--net {self.router.spec}: cannot forward {rule.host_addr}:{rule.host_port}: "
                                   f"{e.strerror or e}") from None
            self.hostfwd_ports.append(s.getsockname()[1])
            self.listeners.append(s)

    def start_forwarding(self, nursery: trio.Nursery) -> None:
        """One accepting task per forwarding rule (from ``run()``)."""
        for rule, lsock in zip(self.hostfwd, self.listeners, strict=True):
            nursery.start_soon(self._forward, rule, trio.socket.from_stdlib_socket(lsock))

    def segment(self, f: Frame, raw: bytes) -> None:
        """A TCP segment from the guest: to its flow, or a SYN that opens one, or a RST."""
        seg, ip = f.tcp, f.ip
        assert seg is not None and ip is not None
        key = (ip.src, seg.src_port, ip.dst, seg.dst_port)
        flow = self.flows.get(key)
        if flow is not None:
            flow.segment(seg)
            return
        if seg.flags & RST:
            return
        router = self.router
        target = host_address(ip.dst)
        if seg.flags & (SYN | ACK) != SYN or target is None or router.nursery is None \
                or len(self.flows) >= MAX_TCP_FLOWS:
            reply = reset_for(seg)  # no such connection (or nowhere to go): refuse, as a host would
            if reply is not None:
                router.events["tcp_resets"] += 1
                router.emit_tcp_segment(reply, ip.dst, ip.src)
            return
        flow = TcpFlow(router, key)
        self.flows[key] = flow
        router.events["tcp_flows"] += 1
        router.nursery.start_soon(flow.outbound, seg, raw, (target, seg.dst_port))

    def refuse(self, syn: TcpSegment, src: str, dst: str) -> None:
        """RST|ACK for a SYN the host refused (ECONNREFUSED there means RST here)."""
        reply = reset_for(syn)
        if reply is not None:
            self.router.events["tcp_resets"] += 1
            self.router.emit_tcp_segment(reply, src, dst)

    def ephemeral_port(self, guest: tuple[str, int]) -> int:
        """A 10.0.2.2 port for a forwarded connection, unused towards that guest endpoint."""
        low, high = EPHEMERAL
        for _ in range(high - low + 1):
            port = self._next_port
            self._next_port = low if port >= high else port + 1
            if (guest[0], guest[1], GATEWAY, port) not in self.flows:
                return port
        raise RuntimeError("no free port")

    async def _forward(self, rule: HostFwd, lsock: trio.socket.SocketType) -> None:
        """Accept host connections for one rule; each becomes a TCP connection to the guest."""
        router = self.router
        while True:
            try:
                sock, _peer = await lsock.accept()
            except OSError:
                # EMFILE and the like: the host client waits in the backlog meanwhile. A short
                # back-off, not a poll: it only runs while the host is out of resources.
                router.events["accept_errors"] += 1
                await trio.sleep(0.1)
                continue
            guest = (rule.guest_addr, rule.guest_port)
            if len(self.flows) >= MAX_TCP_FLOWS:
                sock.close()
                router.events["dropped"] += 1
                continue
            port = self.ephemeral_port(guest)
            key = (guest[0], guest[1], GATEWAY, port)
            conn = TcpConnection((GATEWAY, port), guest, iss=secrets.randbits(32), **TCP_OPTIONS)
            flow = TcpFlow(router, key, forwarded=True)
            self.flows[key] = flow
            router.events["hostfwd_connections"] += 1
            assert router.nursery is not None
            router.nursery.start_soon(flow.inbound, sock, conn)


class TcpFlow:
    """One guest TCP connection spliced to one host socket.

    Three tasks: host->guest (``recv`` while the engine has send space), guest->host (``send``
    what the engine received; while the host is slow the engine's window closes, which is the
    back-pressure), and a timer sleeping until the engine's next deadline. The host socket is
    closed once both directions are done; the engine may live on a little (TIME-WAIT, the last
    ACK) and leaves the table when it reaches CLOSED."""

    def __init__(self, router: UserBackend, key: FlowKey, forwarded: bool = False) -> None:
        self.router = router
        self.key = key
        self.forwarded = forwarded  # opened by a hostfwd rule (host -> guest): allowed under restrict=on
        self.conn: TcpConnection | None = None
        self.sock: trio.socket.SocketType | None = None
        self._rx = Wakeup()  # guest data, EOF or failure: for the host writer
        self._tx = Wakeup()  # send space or failure: for the host reader
        self._timer = Wakeup()
        self._timer_at = math.inf
        self._pumps: trio.CancelScope | None = None
        self._reset_host = False

    def segment(self, seg: TcpSegment) -> None:
        conn = self.conn
        if conn is None:
            return  # still connecting on the host: the SYN is answered when that settles
        now = trio.current_time()
        conn.segment_received(seg, now)
        self.changed(now)

    def changed(self, now: float) -> None:
        """After any input, timer or application call: transmit, then wake whoever can move."""
        conn = self.conn
        assert conn is not None
        self.router.emit_tcp(conn, now)
        closed = conn.state == CLOSED
        if conn.available or conn.at_eof or closed:
            self._rx.set()
        if conn.send_space or closed:
            self._tx.set()
        if closed:
            if conn.error is not None:
                self._fail()
            self._timer.set()
        else:
            deadline = conn.next_deadline()
            if deadline is not None and deadline < self._timer_at:
                self._timer.set()

    def _fail(self) -> None:
        """The connection is dead (reset, timed out, aborted): stop both pumps, reset the host."""
        self._reset_host = True
        if self._pumps is not None:
            self._pumps.cancel()

    async def outbound(self, syn: TcpSegment, raw: bytes, target: tuple[str, int]) -> None:
        """A guest SYN: connect on the host first, and only then accept (or refuse) the SYN."""
        router = self.router
        src, sport, dst, dport = self.key
        try:
            try:
                with trio.fail_after(router.connect_timeout):
                    sock = await router.connect(target)
            except trio.TooSlowError:
                router.icmp_unreachable(raw, Unreachable.HOST)
                return
            except OSError as e:
                if e.errno in (errno.ECONNREFUSED, errno.EMFILE, errno.ENFILE):
                    router.tcp.refuse(syn, dst, src)
                elif e.errno == errno.ENETUNREACH:
                    router.icmp_unreachable(raw, Unreachable.NET)
                elif e.errno in (errno.EACCES, errno.EPERM):
                    router.icmp_unreachable(raw, Unreachable.ADMIN_PROHIBITED)
                else:
                    router.icmp_unreachable(raw, Unreachable.HOST)
                return
            self.sock = sock
            router.host_sockets.add(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # the guest already batches
            now = trio.current_time()
            self.conn = TcpConnection.accept((dst, dport), (src, sport), syn, now,
                                             iss=secrets.randbits(32), **TCP_OPTIONS)
            self.changed(now)  # the SYN-ACK
            await self._splice()
        finally:
            self._release()

    async def inbound(self, sock: trio.socket.SocketType, conn: TcpConnection) -> None:
        """A forwarded host connection: connect to the guest and splice."""
        self.sock = sock
        self.router.host_sockets.add(sock)
        self.conn = conn
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            now = trio.current_time()
            conn.connect(now)
            self.changed(now)  # the SYN
            await self._splice()
        finally:
            self._release()

    async def _splice(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._run_timer)
            with trio.CancelScope() as self._pumps:
                async with trio.open_nursery() as pumps:
                    pumps.start_soon(self._guarded, self._guest_to_host)
                    pumps.start_soon(self._guarded, self._host_to_guest)
            self._close_host()

    async def _guarded(self, pump: Callable[[], Awaitable[None]]) -> None:
        """Run a pump; a host socket error (reset, broken pipe) aborts the guest's connection."""
        try:
            await pump()
        except OSError:
            conn = self.conn
            assert conn is not None
            now = trio.current_time()
            conn.abort(now)  # RST to the guest
            self.changed(now)
            self._fail()

    async def _guest_to_host(self) -> None:
        conn, sock = self.conn, self.sock
        assert conn is not None and sock is not None
        while True:
            if conn.available:
                data = memoryview(conn.receive())
                self.changed(trio.current_time())  # reading may open the window: tell the guest
                while data:
                    sent = await sock.send(data)
                    data = data[sent:]
            elif conn.at_eof:
                try:
                    sock.shutdown(socket.SHUT_WR)  # the guest's FIN, passed on
                except OSError:
                    pass
                return
            elif conn.state == CLOSED:
                return
            else:
                await self._rx.wait()

    async def _host_to_guest(self) -> None:
        conn, sock = self.conn, self.sock
        assert conn is not None and sock is not None
        while True:
            if conn.state == CLOSED:
                return
            space = conn.send_space
            if not space:
                await self._tx.wait()
                continue
            data = await sock.recv(min(space, 65536))
            now = trio.current_time()
            if conn.state == CLOSED:
                return
            try:
                if data:
                    conn.send(data)
                else:
                    conn.close(now)  # the host's FIN, passed on after the data
            except TcpError:
                return
            self.changed(now)
            if not data:
                return

    async def _run_timer(self) -> None:
        """Sleep until the engine's next deadline (or until woken because it moved earlier)."""
        conn = self.conn
        assert conn is not None
        while conn.state != CLOSED:
            deadline = conn.next_deadline()
            self._timer_at = math.inf if deadline is None else deadline
            with trio.move_on_at(self._timer_at):
                await self._timer.wait()
            self._timer_at = -math.inf  # awake: nobody needs to ring
            now = trio.current_time()
            deadline = conn.next_deadline()
            if deadline is not None and now >= deadline:
                conn.poll_timers(now)
                self.changed(now)

    def _close_host(self) -> None:
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        self.router.host_sockets.discard(sock)
        if self._reset_host:
            try:  # linger 0: the host peer sees a reset, as it would from a real guest
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        sock.close()

    def _release(self) -> None:
        self._close_host()
        flows = self.router.tcp.flows
        if flows.get(self.key) is self:
            del flows[self.key]
