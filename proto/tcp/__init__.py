"""TCP (RFC 9293), sans-IO: the connection state machine and the listener.

No sockets, no tasks, no clock: callers feed decoded segments (proto.wire.tcp) and the current
time in and take segments out; connection.py describes the calling protocol. This module is the
package's public surface; the engine is cut by concept, one file each:

    connection.py   TcpConnection: the user calls (open, send, receive, close) and the timers
    arrival.py      a segment arrives (RFC 9293 3.10.7): handshake, RST/SYN checks, ACK, text
    output.py       what goes out: segmentization, SWS avoidance, persist probes, retransmission
    recovery.py     congestion control and loss recovery: NewReno, limited/early retransmit
    scoreboard.py   the sender's SACK scoreboard (RFC 2018/6675)
    reassembly.py   the receiver's out-of-order queue and the SACK blocks it reports
    rtt.py          the RTT estimator and retransmission timeout (RFC 6298, Karn)
    timestamps.py   RFC 7323 timestamps: our clock, TS.Recent, PAWS, RTT from TSecr
    synopts.py      what a SYN offers (MSS, SACK-permitted, TS, window scale), Linux's layout
    tcb.py          the connection's variables, and how the classes above layer over them
    listener.py     TcpListener: LISTEN and its SYN backlog
    states.py       TcpState and TcpErrorKind; reset.py, seq.py, counters.py: small shared parts

Window scaling and timestamps (RFC 7323) are on by default and used when the peer offers them
too; TSO (``tso_max``) lets one segment carry many MSS' worth for a card that cuts it.
Not implemented: urgent data (URG is ignored and the data delivered in line), keep-alives,
D-SACK, IP-level concerns (ICMP, PMTU).
"""

from __future__ import annotations

from proto.tcp.connection import TcpConnection, TcpError
from proto.tcp.counters import TcpCounters
from proto.tcp.listener import TcpListener
from proto.tcp.reset import reset_for
from proto.tcp.seq import seq_diff
from proto.tcp.states import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_1,
    FIN_WAIT_2,
    LAST_ACK,
    LISTEN,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    TcpErrorKind,
    TcpState,
)

__all__ = [
    "TcpConnection",
    "TcpListener",
    "TcpCounters",
    "TcpError",
    "TcpErrorKind",
    "TcpState",
    "reset_for",
    "seq_diff",
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
]
