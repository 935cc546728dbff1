"""TCP sessions: a connection (/tcp/HOST:PORT) and a listening port (/tcp/listen/PORT).

A connection's open answers once the handshake is done (errors REFUSED 18, TIMEDOUT 19,
UNREACHABLE 20, NOTFOUND 7 for DNS: net/errors.py). Then:

    WRITE(n, chunk) -> OK(n) once every byte is in the send buffer (the reply waits while the
                       buffer is full; needs O_WRITE, else ERROR_DENIED)
    READ(_, max)    -> DATA(n, chunk), 1 <= n <= max, as soon as a byte is there; ERROR(NO_DATA)
                       at the end of the stream; ERROR(RESET/TIMEDOUT...) when the connection failed
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
from net.errors import NetError, tcp_error
from net.namespace import NetNode
from proto.tcp import CLOSED, TcpConnection, TcpError, TcpListener
from vfs import protocol as P
from vfs.protocol import FsError
from vfs.server import Session

if TYPE_CHECKING:
    from net.server import NetServer

READ_MAX = 256 * 1024  # the most one READ of a connection answers (a quarter of a 1 MiB window)
ACCEPT = abi.ACCEPT


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
            n = min(req.max or READ_MAX, READ_MAX)
            await srv.waiters.wait_until(lambda: conn.available or conn.at_eof or conn.error or conn.state == CLOSED)
            if conn.available:
                data = conn.receive(n)
                await srv.kick()  # reading may owe the peer a window update
                return await srv.blob_reply(abi.DATA, data)
            if conn.error:
                raise NetError(tcp_error(conn.error), detail=str(conn.error))
            raise FsError(abi.NO_DATA)
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
