"""Per-connection statistics, kept apart from the state machine because they are its output to
people (tests, ``netstat``-style tools, debugging), not state it decides anything by."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TcpCounters"]


@dataclass
class TcpCounters:
    """Per-connection statistics (for tests, ``netstat``-style tools and debugging)."""

    segments_sent: int = 0
    segments_received: int = 0
    retransmits: int = 0  # segments sent again (after an RTO, fast retransmit, partial ACK)
    timeouts: int = 0  # retransmission timer expiries
    fast_retransmits: int = 0  # third-duplicate-ACK retransmissions
    dup_acks: int = 0
    dup_segments: int = 0  # received segments carrying only data we already had
    out_of_order: int = 0  # segments buffered ahead of RCV.NXT
    bad_segments: int = 0  # segments dropped as unacceptable (window, ACK, ports)
    probes: int = 0  # zero-window probes sent
    challenge_acks: int = 0  # RFC 5961 challenge ACKs sent
    sack_retransmits: int = 0  # holes the peer's SACK blocks showed, resent in fast recovery
    paws_drops: int = 0  # old duplicates PAWS dropped (RFC 7323 5)
