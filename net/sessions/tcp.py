"""TCP sessions: a connection (/tcp/HOST:PORT) and a listening port (/tcp/listen/PORT).

A connection's open answers once the handshake is done (errors REFUSED 18, TIMEDOUT 19,
UNREACHABLE 20, NOTFOUND 7 for DNS: net/errors.py). Then:

    WRITE(n, chunk) -> OK(n) once every byte is in the send buffer (the reply waits while the
                       buffer is full; needs O_WRITE, else ERROR_DENIED)
    READ(_, max)    -> DATA(n, chunk), 1 <= n <= max, as soon as a byte is there; ERROR(NO_DATA)
                       at the end of the stream; ERROR(RESET/TIMEDOUT...) when the connection failed
    READ_INTO(max, chunk) -> DATA(n, the same chunk): as READ, the bytes written at the start
                       of the chunk the caller lent (n <= max, the chunk's size and READ_MAX;
                       max 0: the chunk's size), which comes back to carry the next READ_INTO
                       instead of a fresh chunk each time; any error (as READ's, PARAM for a
                       malformed request) frees the chunk
    QUERY           -> JSON {local, remote, state, srtt, rto, ...}
    CLOSE           -> FIN after the queued data (the stack finishes the close)

A listening port (backlog 16; EXISTS if taken):

    ACCEPT(65)      -> COMM_HANDLE(Handle(connection session), 0) once a handshake completes;
                       CLOSE stops listening

One thread per session answers one request at a time, so a connection is not full-duplex
within one session (a READ that waits holds up a WRITE on the same session); /tcp/mux is.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from euralios.std import Message, abi
from euralios.std.chunk import Chunk
from euralios.std.errors import SyscallError
from euralios.std.message import Memory
from euralios.std.net import READ_MAX
from net.errors import NetError, tcp_error
from net.namespace import NetNode
from proto.tcp import CLOSED, TcpConnection, TcpError, TcpListener
from vfs import protocol as P
from vfs.protocol import FsError
from vfs.server import Session

if TYPE_CHECKING:
    from net.server import NetServer

ACCEPT = abi.ACCEPT
READ_INTO = abi.READ_INTO


class ConnSession(Session):
    """A TCP connection (see the module docstring for its requests)."""

    def __init__(self, server: NetServer, conn: TcpConnection, writable: bool) -> None:
        super().__init__(server, NetNode("connection", self.release), writable)
        self.srv = server
        self.conn = conn
        self.ended = False

    async def release(self) -> None:
        self.ended = True
        srv = self.srv
        srv.stack.tcp_release(self.conn, srv.proc.now())
        await srv.kick()

    async def handle(self, req: P.Request) -> Message:
        srv, conn = self.srv, self.conn
        if isinstance(req, P.Read):
            data = await self._receive(min(req.max or READ_MAX, READ_MAX))
            return await srv.blob_reply(abi.DATA, data)
        if isinstance(req, P.Unknown) and req.msg.tag == READ_INTO:
            return await self._read_into(req.msg)
        if isinstance(req, P.Write):
            if not self.writable:
                return P.denied()
            data = await srv.take(req.mem, req.length)
            sent = 0
            while sent < len(data):
                try:
                    n = conn.send(data[sent:] if sent else data)
                except TcpError as e:
                    raise NetError(tcp_error(conn.error or e.kind), detail=str(e)) from None
                sent += n
                if n:
                    await srv.kick()
                if sent < len(data):
                    await srv.waiters.wait_until(lambda: conn.send_space or conn.error or conn.state == CLOSED)
            return P.ok(sent)
        if isinstance(req, P.Query):
            info = {"type": "tcp", "local": f"{conn.local[0]}:{conn.local[1]}",
                    "remote": f"{conn.remote[0]}:{conn.remote[1]}", "state": conn.state, "error": conn.error,
                    "srtt": conn.srtt, "rto": conn.rto, "mss": conn.send_mss, "available": conn.available,
                    "send_queued": conn.send_queued, "retransmits": conn.counters.retransmits,
                    "window_scale": conn.window_scale, "timestamps": conn.timestamps_on,
                    "snd_wnd": conn.snd_wnd}
            return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
        return P.unknown()

    async def _receive(self, n: int) -> bytes:
        """Up to n bytes once there are some; NO_DATA at the end, the failure once failed.

        While the NIC reader is mid-round (more frames are coming in right now) a READ waits
        for the round's end unless it can be filled: one READ then takes several frames' data,
        not the first frame's (a round is a few exchanges with the driver, none of which waits)."""
        srv, conn = self.srv, self.conn
        await srv.waiters.wait_until(lambda: conn.available >= n or (conn.available and not srv.mid_round)
                                     or conn.at_eof or conn.error or conn.state == CLOSED)
        if conn.available:
            data = conn.receive(n)
            await srv.kick()  # reading may owe the peer a window update
            return data
        if conn.error:
            raise NetError(tcp_error(conn.error), detail=str(conn.error))
        raise FsError(abi.NO_DATA)

    async def _read_into(self, msg: Message) -> Message:
        """READ_INTO(max, chunk): the reply hands the caller's chunk back (the dispatch loop
        frees a request's chunk only when the reply does not carry it)."""
        mx, mem = msg.d2, msg.d3
        if not isinstance(mx, int) or isinstance(mx, bool) or mx < 0 or not isinstance(mem, Memory):
            raise FsError(abi.PARAM, "read_into: expected (max, chunk)")
        try:
            chunk = await Chunk.received(self.srv.sys, mem)
        except SyscallError:
            raise FsError(abi.PARAM, "no chunk at that address") from None
        if not chunk.size:
            raise FsError(abi.PARAM, "no room in that chunk")
        data = await self._receive(min(mx or chunk.size, chunk.size, READ_MAX))
        chunk.write(0, data)
        return Message(abi.DATA, len(data), mem)


class ListenSession(Session):
    def __init__(self, server: NetServer, listener: TcpListener) -> None:
        super().__init__(server, NetNode("listener", self.release), True)
        self.srv = server
        self.listener = listener
        self.ready: TcpConnection | None = None
        self.ended = False

    async def release(self) -> None:
        self.ended = True
        srv = self.srv
        srv.stack.tcp_unlisten(self.listener, srv.proc.now())
        if self.ready is not None:
            srv.stack.tcp_release(self.ready, srv.proc.now(), abort=True)
            self.ready = None
        await srv.kick()

    def _has_connection(self) -> bool:
        if self.ready is None and not self.ended:
            self.ready = self.srv.stack.tcp_accept(self.listener)
        return self.ready is not None or self.ended

    async def handle(self, req: P.Request) -> Message:
        srv = self.srv
        if isinstance(req, P.Unknown) and req.msg.tag == ACCEPT:
            await srv.waiters.wait_until(self._has_connection)
            conn, self.ready = self.ready, None
            if conn is None:
                raise FsError(abi.CLOSED)
            try:
                return await srv.start_session(ConnSession(srv, conn, True))
            except FsError:
                srv.stack.tcp_release(conn, srv.proc.now(), abort=True)
                await srv.kick()
                raise
        if isinstance(req, P.Query):
            info = {"type": "listener", "port": self.listener.local[1], "pending": self.listener.pending}
            return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
        if isinstance(req, (P.Read, P.Write)):
            raise FsError(abi.PARAM, "a listener has no data: send ACCEPT")
        return P.unknown()
