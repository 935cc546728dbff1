"""TCP connection states (RFC 9293 3.3.2) and the reasons a connection fails, as enums.

They are StrEnums whose values are the RFC's state names and the error texts users have always
seen ("connection reset"), so a state prints as the RFC writes it and an error's message is
unchanged; code compares and maps the members, never the strings (h11's typed states are the
model)."""

from __future__ import annotations

from enum import StrEnum


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
