"""TCP connection states (RFC 9293 3.3.2) and the reasons a connection fails, as enums.

They are StrEnums whose values are the RFC's state names and the error texts users have always
seen ("connection reset"), so a state prints as the RFC writes it and an error's message is
unchanged; code compares and maps the members, never the strings (h11's typed states are the
model).

The module-level names (``ESTABLISHED``...) are the members under the RFC's own spelling, for
``from proto.tcp import ESTABLISHED``; the frozensets group the states the engine asks about
most (one set lookup on the per-segment path instead of a chain of comparisons)."""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "TcpState",
    "TcpErrorKind",
    "CLOSED",
    "LISTEN",
    "SYN_SENT",
    "SYN_RECEIVED",
    "ESTABLISHED",
    "FIN_WAIT_1",
    "FIN_WAIT_2",
    "CLOSE_WAIT",
    "CLOSING",
    "LAST_ACK",
    "TIME_WAIT",
    "SENDING",
    "RECEIVING",
    "FIN_STATES",
]


class TcpState(StrEnum):
    CLOSED = "CLOSED"
    LISTEN = "LISTEN"
    SYN_SENT = "SYN-SENT"
    SYN_RECEIVED = "SYN-RECEIVED"
    ESTABLISHED = "ESTABLISHED"
    FIN_WAIT_1 = "FIN-WAIT-1"
    FIN_WAIT_2 = "FIN-WAIT-2"
    CLOSE_WAIT = "CLOSE-WAIT"
    CLOSING = "CLOSING"
    LAST_ACK = "LAST-ACK"
    TIME_WAIT = "TIME-WAIT"


class TcpErrorKind(StrEnum):
    """Why a connection failed (its ``error``) or why a call on it is invalid (TcpError.kind)."""

    REFUSED = "connection refused"
    RESET = "connection reset"
    TIMED_OUT = "timed out"
    UNREACHABLE = "host unreachable"
    IN_USE = "connection already in use"
    CLOSING = "connection closing"
    NOT_CONNECTED = "not connected"


CLOSED = TcpState.CLOSED
LISTEN = TcpState.LISTEN
SYN_SENT = TcpState.SYN_SENT
SYN_RECEIVED = TcpState.SYN_RECEIVED
ESTABLISHED = TcpState.ESTABLISHED
FIN_WAIT_1 = TcpState.FIN_WAIT_1
FIN_WAIT_2 = TcpState.FIN_WAIT_2
CLOSE_WAIT = TcpState.CLOSE_WAIT
CLOSING = TcpState.CLOSING
LAST_ACK = TcpState.LAST_ACK
TIME_WAIT = TcpState.TIME_WAIT

# States in which we may still have data or a FIN to (re)transmit.
SENDING = frozenset({ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, CLOSING, LAST_ACK})
# States in which the peer may still send us data (its FIN not yet received).
RECEIVING = frozenset({ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2})
# States in which we owe the peer a FIN (after the queued data).
FIN_STATES = frozenset({FIN_WAIT_1, CLOSING, LAST_ACK})
