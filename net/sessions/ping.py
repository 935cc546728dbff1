"""An ICMP echo session: /tcp/ping/HOST (programs/ping.py is its client).

    ECHO(66, seq, timeout_ms) -> DATA: JSON {"seq", "from", "ttl", "bytes", "time_ms"} once the
                                 reply to one echo request (56 bytes of payload) arrives, or
                                 ERROR(TIMEDOUT) / ERROR(UNREACHABLE)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from euralios.std import Message, abi
from euralios.std.protocols.ping import ECHO
from net.errors import NetError, stack_error
from net.namespace import NetNode
from net.sockets import PingSocket, StackError
from vfs import protocol as P
from vfs.server import Session

if TYPE_CHECKING:
    from net.server import NetServer

PING_PAYLOAD = bytes(range(0x10, 0x10 + 56))


class PingSession(Session):
    def __init__(self, server: NetServer, sock: PingSocket, host: str, address: str) -> None:
        super().__init__(server, NetNode("ping", self.release), True)
        self.srv = server
        self.sock = sock
        self.host = host
        self.address = address

    async def release(self) -> None:
        self.srv.stack.ping_close(self.sock)

    async def handle(self, req: P.Request) -> Message:
        srv, sock = self.srv, self.sock
        if isinstance(req, P.Unknown) and req.msg.tag == ECHO and not req.msg.is_long:
            seq = req.msg.d2 if isinstance(req.msg.d2, int) else 0
            timeout_ms = req.msg.d3 if isinstance(req.msg.d3, int) and req.msg.d3 > 0 else 1000
            seq &= 0xFFFF
            sock.replies.clear()
            sock.errors.clear()
            try:
                srv.stack.ping_send(sock, self.address, seq, PING_PAYLOAD, srv.proc.now())
            except StackError as e:
                raise stack_error(e) from None
            sent = sock.sent[seq]
            await srv.kick()

            def answered() -> bool:
                while sock.replies and sock.replies[0].seq != seq:
                    sock.replies.popleft()  # a late reply to an earlier probe
                return bool(sock.replies) or any(s == seq for s, _ in sock.errors)

            if not await srv.waiters.wait_until(answered, timeout_ms / 1000):
                raise NetError(abi.TIMEDOUT)
            if not sock.replies:
                raise NetError(abi.UNREACHABLE)
            r = sock.replies.popleft()
            info = {"seq": seq, "from": r.source, "ttl": r.ttl, "bytes": r.size,
                    "time_ms": round((r.time - sent) * 1000, 3)}
            return await srv.blob_reply(abi.DATA, json.dumps(info).encode())
        if isinstance(req, P.Query):
            info = {"type": "ping", "host": self.host, "address": self.address, "bytes": 8 + len(PING_PAYLOAD)}
            return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
        return P.unknown()
