"""A connected UDP socket: /tcp/udp/HOST:PORT.

    WRITE(n, chunk) -> OK(n): one datagram sent (at most MTU-28 bytes)
    READ(_, max)    -> DATA: the next datagram (cut to max); ERROR(REFUSED) after an ICMP port
                       unreachable, ERROR(UNREACHABLE) when its next hop does not answer
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from euralios.std import Message, abi
from net.errors import socket_error, stack_error
from net.namespace import NetNode
from net.sockets import StackError, UdpSocket
from vfs import protocol as P
from vfs.server import Session

if TYPE_CHECKING:
    from net.server import NetServer


class UdpSession(Session):
    def __init__(self, server: NetServer, sock: UdpSocket, writable: bool) -> None:
        super().__init__(server, NetNode("udp", self.release), writable)
        self.srv = server
        self.sock = sock

    async def release(self) -> None:
        self.srv.stack.udp_close(self.sock)

    async def handle(self, req: P.Request) -> Message:
        srv, sock = self.srv, self.sock
        if isinstance(req, P.Write):
            if not self.writable:
                return P.denied()
            data = await srv.take(req.mem, req.length)
            if sock.error:
                raise socket_error(sock.error)
            try:
                srv.stack.udp_send(sock, data, srv.proc.now())
            except StackError as e:
                raise stack_error(e) from None
            await srv.kick()
            return P.ok(len(data))
        if isinstance(req, P.Read):
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
