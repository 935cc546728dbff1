"""/tcp/mux: many sockets on one session, select/poll style (euralios.std.net.Mux is the client).

Requests on a socket carry its id in the tag: op | id << 16 (euralios.std.protocols.mux). None
waits but POLL:

    Long(CONNECT=80, n, "HOST:PORT") -> OK(id): the handshake goes on; the socket polls WRITABLE
                                        once connected, ERROR if not
    Short(LISTEN=81, port, backlog)  -> OK(id)
    Short(ACCEPT | id<<16)           -> OK(new id), or EMPTY when none is ready
    Long(WRITE | id<<16, n, chunk)   -> OK(taken): what fits in the send buffer
    Short(READ | id<<16, 0, max)     -> DATA(n, chunk), EMPTY when nothing yet, ERROR(NO_DATA) at
                                        the end of the stream, ERROR(RESET...)
    Short(WATCH=83 | id<<16, events) -> OK: which events POLL reports (default
                                        READABLE|WRITABLE|ERROR; ACCEPTABLE for a listener)
    Short(CLOSE | id<<16, abort, 0)  -> OK: FIN after the queued data (abort: RST)
    Short(POLL=82, timeout_ms, 0)    -> DATA(n, chunk) of (u32 id, u32 events) records,
                                        level-triggered: READABLE 1, WRITABLE 2, ACCEPTABLE 4,
                                        ERROR 8; waits up to timeout_ms for one (negative: no
                                        limit); EMPTY at the timeout

Closing the session closes its sockets. A /tcp/HOST:PORT session takes a thread of the server
(a process has 64): this is how one program keeps hundreds of connections.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from euralios.std import Memory, Message, abi
from euralios.std.net import READ_MAX
from euralios.std.protocols import mux as M
from euralios.std.protocols.mux import ACCEPTABLE, ERROR, READABLE, WRITABLE
from net.errors import BadPath, NetError, stack_error, tcp_error
from net.namespace import NetNode, split_hostport
from net.sessions.tcp import ACCEPT
from net.sockets import StackError
from proto.tcp import CLOSE_WAIT, CLOSED, ESTABLISHED, TcpConnection, TcpError, TcpListener
from vfs import protocol as P
from vfs.protocol import FsError
from vfs.server import Session

if TYPE_CHECKING:
    from net.server import NetServer

MUX_MAX = 4096  # sockets per mux session


class MuxSession(Session):
    """Many sockets on one session, served by one thread (see the module docstring).

    Every request on a socket is non-blocking and names it in the tag's upper bits
    (``op | id << ID_SHIFT``); POLL is the one request that waits, for an event on any socket
    the client watches. This is select/poll for programs with many connections: a /tcp/HOST:PORT
    session needs a thread of ours each, and a process has 64."""

    def __init__(self, server: NetServer) -> None:
        super().__init__(server, NetNode("mux", self.release), True)
        self.srv = server
        self.conns: dict[int, TcpConnection] = {}
        self.listeners: dict[int, TcpListener] = {}
        self.watch: dict[int, int] = {}
        self.next_id = 1
        # Readiness is kept up to date from the stack's change notices (NetStack.observe):
        # `active` holds the watched events of every socket that has some, `stale` the sockets
        # changed since, so a POLL (and every re-check while it waits) costs what changed.
        self.sid_of: dict[TcpConnection, int] = {}
        self.active: dict[int, int] = {}
        self.stale: set[int] = set()

    def _add_conn(self, sid: int, conn: TcpConnection) -> None:
        self.conns[sid] = conn
        self.sid_of[conn] = sid
        self.watch[sid] = READABLE | WRITABLE | ERROR
        self.stale.add(sid)
        self.srv.stack.observe(conn, self._changed)

    def _changed(self, conn: TcpConnection) -> None:
        sid = self.sid_of.get(conn)
        if sid is not None:
            self.stale.add(sid)

    async def release(self) -> None:
        srv, now = self.srv, self.srv.proc.now()
        for conn in self.conns.values():
            srv.stack.observe(conn, None)
            srv.stack.tcp_release(conn, now)
        for listener in self.listeners.values():
            srv.stack.tcp_unlisten(listener, now)
        self.conns.clear()
        self.listeners.clear()
        self.watch.clear()
        self.sid_of.clear()
        self.active.clear()
        self.stale.clear()
        await srv.kick()

    def _new_id(self) -> int:
        if len(self.watch) >= MUX_MAX:
            raise NetError(abi.MEMALLOC, detail=f"{MUX_MAX} sockets on one mux session")
        while self.next_id in self.watch:
            self.next_id = self.next_id % MUX_MAX + 1
        sid = self.next_id
        self.next_id = sid % MUX_MAX + 1
        return sid

    def events(self, sid: int) -> int:
        """The socket's current events (level-triggered), before the watch mask."""
        conn = self.conns.get(sid)
        if conn is not None:
            ev = 0
            state = conn.state
            if conn.available or conn.at_eof or conn.error or state == CLOSED:
                ev |= READABLE
            if (state == ESTABLISHED or state == CLOSE_WAIT) and conn.send_space:
                ev |= WRITABLE
            if conn.error or (state == CLOSED and not conn.at_eof):
                ev |= ERROR
            return ev
        listener = self.listeners.get(sid)
        if listener is not None and listener.ready:
            return ACCEPTABLE
        return 0

    def ready(self) -> list[tuple[int, int]]:
        active, watch = self.active, self.watch
        for sid in self.stale:
            ev = self.events(sid) & watch.get(sid, 0)
            if ev:
                active[sid] = ev
            else:
                active.pop(sid, None)
        self.stale.clear()
        out = list(active.items())
        for sid, listener in self.listeners.items():
            if watch[sid] & ACCEPTABLE and listener.ready:
                out.append((sid, ACCEPTABLE))
        return out

    async def handle(self, req: P.Request) -> Message:
        srv = self.srv
        msg = req.msg
        tag = msg.tag if isinstance(msg.tag, int) else 0
        op, sid = tag & M.ID_MASK, tag >> M.ID_SHIFT
        if sid == 0:
            if isinstance(req, P.Query):
                info = {"type": "mux", "sockets": len(self.watch), "connections": len(self.conns),
                        "listeners": len(self.listeners)}
                return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
            if op == M.POLL and not msg.is_long:
                return await self.poll(msg.d2 if isinstance(msg.d2, int) else 0)
            if op == M.CONNECT and isinstance(msg.d3, Memory) and isinstance(msg.d2, int):
                if not 0 <= msg.d2 <= P.MAX_PATH:
                    raise FsError(abi.PARAM, "connect: bad length")
                host, port = split_hostport(P.decode_text(await srv.take(msg.d3, msg.d2)).strip())
                sid = self._new_id()
                address = await srv.resolve(host)
                await srv.wait_configured()
                try:
                    conn = srv.stack.tcp_connect(address, port, srv.proc.now())
                except StackError as e:
                    raise stack_error(e) from None
                self._add_conn(sid, conn)
                await srv.kick()
                return Message(abi.OK, sid, 0)
            if op == M.LISTEN and not msg.is_long:
                port = msg.d2 if isinstance(msg.d2, int) else 0
                backlog = msg.d3 if isinstance(msg.d3, int) and 0 < msg.d3 <= 1024 else 16
                if not 0 < port < 65536:
                    raise BadPath(f"bad port {port}")
                sid = self._new_id()
                try:
                    self.listeners[sid] = srv.stack.tcp_listen(port, backlog)
                except StackError as e:
                    raise stack_error(e) from None
                self.watch[sid] = ACCEPTABLE
                return Message(abi.OK, sid, 0)
            return P.unknown()
        if sid not in self.watch:
            raise FsError(abi.INVALID_HANDLE, f"no socket {sid} on this mux session")
        if op == M.WATCH and not msg.is_long:
            self.watch[sid] = msg.d2 & M.ALL_EVENTS if isinstance(msg.d2, int) else 0
            self.stale.add(sid)
            return P.ok()
        if op == abi.CLOSE_TAG:
            return await self.close(sid, abort=msg.d2 == 1)
        listener = self.listeners.get(sid)
        if listener is not None:
            if op != ACCEPT:
                raise FsError(abi.PARAM, "a listener has no data: send ACCEPT")
            accepted = srv.stack.tcp_accept(listener)
            if accepted is None:
                return Message(abi.EMPTY, 0, 0)
            new = self._new_id()
            self._add_conn(new, accepted)
            return Message(abi.OK, new, 0)
        conn = self.conns[sid]
        if op == abi.READ and not msg.is_long:
            n = msg.d3 if isinstance(msg.d3, int) and msg.d3 > 0 else READ_MAX
            if conn.available:
                data = conn.receive(min(n, READ_MAX))
                await srv.kick()  # reading may owe the peer a window update
                return await srv.blob_reply(abi.DATA, data)
            if conn.error:
                raise NetError(tcp_error(conn.error), detail=str(conn.error))
            if conn.at_eof or conn.state == CLOSED:
                raise FsError(abi.NO_DATA)
            return Message(abi.EMPTY, 0, 0)
        if op == abi.WRITE and isinstance(msg.d3, Memory) and isinstance(msg.d2, int):
            data = await srv.take(msg.d3, msg.d2)
            try:
                n = conn.send(data) if data else 0
            except TcpError as e:
                raise NetError(tcp_error(conn.error or e.kind), detail=str(e)) from None
            if n:
                await srv.kick()
            return P.ok(n)
        return P.unknown()

    async def close(self, sid: int, abort: bool) -> Message:
        srv = self.srv
        del self.watch[sid]
        self.active.pop(sid, None)
        self.stale.discard(sid)
        conn = self.conns.pop(sid, None)
        if conn is not None:
            del self.sid_of[conn]
            srv.stack.observe(conn, None)
            srv.stack.tcp_release(conn, srv.proc.now(), abort=abort)
        listener = self.listeners.pop(sid, None)
        if listener is not None:
            srv.stack.tcp_unlisten(listener, srv.proc.now())
        await srv.kick()
        return P.ok()

    async def poll(self, timeout_ms: int) -> Message:
        """Every watched socket with an event, as (u32 id, u32 events) records; waits up to
        timeout_ms for one (0: not at all, negative: as long as it takes). EMPTY at the timeout."""
        srv = self.srv
        ready = self.ready()
        if not ready and timeout_ms != 0:
            found: list[list[tuple[int, int]]] = []

            def any_ready() -> bool:
                r = self.ready()
                if r:
                    found.append(r)
                return bool(r)

            await srv.waiters.wait_until(any_ready, None if timeout_ms < 0 else timeout_ms / 1000)
            ready = found[-1] if found else self.ready()
        if not ready:
            return Message(abi.EMPTY, 0, 0)
        data = b"".join(M.EVENT.pack(sid, ev) for sid, ev in ready)
        return await srv.blob_reply(abi.DATA, data)
