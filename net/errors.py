"""How a failure in the network is answered on /tcp: file-protocol error codes and reasons.

Every layer says why in its own enum -- the TCP engine (TcpErrorKind), the stack's socket
calls (StackErrorKind), datagram sockets (SocketError), DNS lookups (DnsErrorKind) -- and this
module maps the members to what a client of /tcp gets back, an ERROR reply's code (abi) and,
for DNS, a reason in its third word:

    connections   REFUSED 18, TIMEDOUT 19, UNREACHABLE 20, RESET 21
    DNS           Short(ERROR, NOTFOUND, reason), reason 1 no such name, 2 no address,
                  3 server failure, 4 refused, 5 bad reply, 6 no answer, 7 server unreachable,
                  8 no DNS server, 9 invalid name
    paths         a path that is not one we serve, or a bad port: Short(ERROR_INVALID_VALUE=132)
                  (spec §16.4 row 56)
"""

from __future__ import annotations

from euralios.std import Message, abi
from net.dns import DnsErrorKind
from net.sockets import SocketError, StackError, StackErrorKind
from proto.tcp import TcpErrorKind
from vfs.protocol import FsError

TCP_ERRORS = {
    TcpErrorKind.REFUSED: abi.REFUSED,
    TcpErrorKind.RESET: abi.RESET,
    TcpErrorKind.TIMED_OUT: abi.TIMEDOUT,
    TcpErrorKind.UNREACHABLE: abi.UNREACHABLE,
}
DNS_REASONS = {
    DnsErrorKind.NXDOMAIN: 1, DnsErrorKind.NO_ADDRESS: 2, DnsErrorKind.SERVFAIL: 3, DnsErrorKind.REFUSED: 4,
    DnsErrorKind.BAD_REPLY: 5, DnsErrorKind.TIMEOUT: 6, DnsErrorKind.UNREACHABLE: 7, DnsErrorKind.NO_SERVER: 8,
    DnsErrorKind.INVALID: 9,
}
STACK_ERRORS = {
    StackErrorKind.UNREACHABLE: abi.UNREACHABLE,
    StackErrorKind.NOT_CONFIGURED: abi.UNREACHABLE,
    StackErrorKind.IN_USE: abi.EXISTS,
    StackErrorKind.INVALID: abi.PARAM,
}
SOCKET_ERRORS = {SocketError.REFUSED: abi.REFUSED, SocketError.UNREACHABLE: abi.UNREACHABLE}


class NetError(FsError):
    """A request failed with `code`; `reason` rides in the ERROR reply's third word."""

    def __init__(self, code: int, reason: int = 0, detail: str = "") -> None:
        super().__init__(code, detail)
        self.reason = reason

    @property
    def reply(self) -> Message:
        return Message(abi.ERROR, self.code, self.reason)


class BadPath(FsError):
    """Not a path we serve: answered ERROR_INVALID_VALUE (spec §16.4 row 56)."""

    def __init__(self, detail: str) -> None:
        super().__init__(abi.PARAM, detail)

    @property
    def reply(self) -> Message:
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)


def tcp_error(kind: TcpErrorKind | None) -> int:
    """The file-protocol error code for why a connection failed (a reset when we cannot tell)."""
    return TCP_ERRORS.get(kind, abi.RESET) if kind is not None else abi.RESET


def stack_error(e: StackError) -> NetError:
    return NetError(STACK_ERRORS.get(e.kind, abi.PARAM), detail=e.detail)


def socket_error(kind: SocketError | None) -> NetError:
    """What a datagram socket's recorded error answers (UNREACHABLE unless it was refused)."""
    return NetError(SOCKET_ERRORS.get(kind, abi.UNREACHABLE) if kind is not None else abi.UNREACHABLE,
                    detail=kind or "")


def dns_error(name: str, kind: DnsErrorKind) -> NetError:
    """A failed lookup of `name`: NOTFOUND with the reason."""
    return NetError(abi.NOTFOUND, DNS_REASONS.get(kind, 0), f"{name}: {kind}")
