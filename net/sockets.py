"""What the stack's socket calls hand out (UdpSocket, PingSocket) and why a call fails.

Applications hold these; the stack (net/stack.py) fills them as datagrams, echo replies and
ICMP errors arrive, and the application drains them. Nothing here does I/O: a socket is a
queue and the error its next call will notice, kept apart from the stack so the I/O layer's
sessions (net/sessions/) and the stack's own DNS client (net/lookups.py) can name them without
the whole stack.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class StackErrorKind(StrEnum):
    """Why a socket call cannot be done (StackError.kind); net/errors.py maps them to codes."""

    UNREACHABLE = "unreachable"  # no route to the destination
    IN_USE = "in-use"  # the port (or every ephemeral one) is taken
    INVALID = "invalid"  # a bad argument: port out of range, closed socket, oversized datagram
    NOT_CONFIGURED = "not-configured"  # no address yet (DHCP still going)


class StackError(Exception):
    """A socket call that cannot be done: `kind` says why, `detail` says it for a human."""

    def __init__(self, kind: StackErrorKind, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


class SocketError(StrEnum):
    """An error a datagram socket learns after the fact: an ICMP error or an ARP failure."""

    REFUSED = "refused"  # ICMP port/protocol unreachable: nobody there
    UNREACHABLE = "unreachable"  # no answer for the next hop, or ICMP host/net unreachable


class UdpSocket:
    """A UDP port. Received datagrams queue in `queue` as (src_ip, src_port, payload), unless a
    `handler(src_ip, src_port, payload, now)` takes them (the stack's own DNS lookups). `remote`
    set: a connected socket, deaf to everyone else. `error` records an ICMP error or an ARP
    failure for the next call to notice."""

    def __init__(self, port: int, remote: tuple[str, int] | None = None) -> None:
        self.port = port
        self.remote = remote
        self.queue: deque[tuple[str, int, bytes]] = deque()
        self.error: SocketError | None = None
        self.handler: Callable[[str, int, bytes, float], None] | None = None
        self.on_error: Callable[[SocketError], None] | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<UdpSocket {self.port} -> {self.remote}>"


@dataclass(frozen=True)
class PingReply:
    seq: int
    source: str
    ttl: int
    size: int  # ICMP bytes (header + payload), as ping prints them
    time: float  # when it arrived


class PingSocket:
    """ICMP echo for one identifier: replies and errors (UNREACHABLE) queue by sequence."""

    def __init__(self, ident: int) -> None:
        self.ident = ident
        self.replies: deque[PingReply] = deque()
        self.errors: deque[tuple[int, SocketError]] = deque()
        self.sent: dict[int, float] = {}
        self.closed = False
