"""UDP sockets: connected (/tcp/udp/HOST:PORT) and bound (/tcp/udp/PORT, a server's).

A connected socket has one peer, so its requests carry bare payloads:

    WRITE(n, chunk) -> OK(n): one datagram sent (at most MTU-28 bytes)
    READ(_, max)    -> DATA: the next datagram (cut to max); ERROR(REFUSED) after an ICMP port
                       unreachable, ERROR(UNREACHABLE) when its next hop does not answer

A bound socket (PORT 0: the next ephemeral port) hears anyone and sends to anyone, so every
datagram travels in a record naming its peer (euralios.std.protocols.udp):

    WRITE(n, chunk of a record)  -> OK(payload bytes): sendto; a name is resolved first
    READ(timeout_ms, max)        -> DATA(record): recvfrom; EMPTY once timeout_ms (> 0) passed
    QUERY                        -> JSON {"type": "udp", "port", "remote": null, "queued"}

A bound socket reports no ICMP errors (as an unconnected BSD socket without IP_RECVERR does):
one peer's closed port must not fail the READ a server is waiting in for the next one. A
malformed record is ERROR(PARAM) and the socket stays open.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from euralios.std import Message, abi
from euralios.std.protocols import udp as U
from net.errors import socket_error, stack_error
from net.namespace import NetNode
from net.sockets import StackError, UdpSocket
from vfs import protocol as P
from vfs.protocol import FsError
from vfs.server import Session

if TYPE_CHECKING:
    from net.server import NetServer


class UdpSession(Session):
    def __init__(self, server: NetServer, sock: UdpSocket, writable: bool) -> None:
        super().__init__(server, NetNode("udp", self.release), writable)
        self.srv = server
        self.sock = sock

    @property
    def bound(self) -> bool:
        """An unconnected socket: datagrams are records with their peers."""
        return self.sock.remote is None

    async def release(self) -> None:
        self.srv.stack.udp_close(self.sock)

    async def handle(self, req: P.Request) -> Message:
        srv, sock = self.srv, self.sock
        if isinstance(req, P.Write):
            if not self.writable:
                return P.denied()
            data = await srv.take(req.mem, req.length)
            dst: tuple[str, int] | None = None
            if self.bound:
                try:
                    dgram = U.decode(data)
                except ValueError as e:
                    raise FsError(abi.PARAM, str(e)) from None
                dst, data = (await srv.resolve(dgram.host), dgram.port), dgram.payload
                sock.error = None  # not ours to report (module docstring)
            elif sock.error:
                raise socket_error(sock.error)
            try:
                srv.stack.udp_send(sock, data, srv.proc.now(), dst)
            except StackError as e:
                raise stack_error(e) from None
            await srv.kick()
            return P.ok(len(data))
        if isinstance(req, P.Read):
            if self.bound:
                return await self.recvfrom(req.offset, req.max)
            await srv.waiters.wait_until(lambda: sock.queue or sock.error)
            if sock.queue:
                _, _, data = sock.queue.popleft()
                return await srv.blob_reply(abi.DATA, data[:req.max or len(data)])
            kind, sock.error = sock.error, None
            raise socket_error(kind)
        if isinstance(req, P.Query):
            info = {"type": "udp", "port": sock.port, "remote": f"{sock.remote[0]}:{sock.remote[1]}"
                    if sock.remote else None, "queued": len(sock.queue)}
            return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
        return P.unknown()

    async def recvfrom(self, timeout_ms: int, max_payload: int) -> Message:
        srv, sock = self.srv, self.sock
        timeout = timeout_ms / 1000 if timeout_ms > 0 else None
        if not sock.queue and not await srv.waiters.wait_until(lambda: bool(sock.queue), timeout):
            return Message(abi.EMPTY, 0, 0)
        sock.error = None
        host, port, data = sock.queue.popleft()
        record = U.encode(U.Datagram(host, port, data[:max_payload or len(data)]))
        return await srv.blob_reply(abi.DATA, record)
