"""Ephemeral ports (issue 15 item 11, RFC 6056): where the stack's search for a free local
port starts (a random point of 49152-65535, reproducible with the stack's seed), in order from
there, shared by TCP and UDP; and a connect with no route (spec §16.4 row 58's neighbour)."""

from __future__ import annotations

import pytest

from net.config import parse_config
from net.sockets import StackError
from net.stack import EPHEMERAL_FIRST, EPHEMERAL_LAST, NetStack

MAC = "52:54:00:12:34:56"
CONFIG = "10.0.2.15/24,gw=10.0.2.2,dns=10.0.2.3"
HOST = "10.0.2.2"


def make() -> NetStack:
    return NetStack(MAC, config=parse_config(CONFIG), seed=7)


def test_ephemeral_ports_in_order_and_no_route_without_gateway() -> None:
    s = make()
    ports = [s.tcp_connect(HOST, 70, 0.0).local[1] for _ in range(2)]
    # In order from where the range's search starts (spec §16.4 row 58's 49152, 49153 when that
    # start is 49152; it is random since issue 15 item 11, RFC 6056), wrapping after 65535.
    first = ports[0]
    assert EPHEMERAL_FIRST <= first <= EPHEMERAL_LAST
    assert ports[1] == (first + 1 if first < EPHEMERAL_LAST else EPHEMERAL_FIRST)
    s.configure(parse_config("10.0.2.15/24"))
    with pytest.raises(StackError, match="no route"):
        s.tcp_connect("8.8.8.8", 53, 0.0)


def test_ephemeral_range_starts_at_a_random_point_reproducible_with_a_seed() -> None:
    """RFC 6056: a fresh stack's first local port is not the range's first; the seed pins it."""
    unseeded = {NetStack(MAC, config=parse_config(CONFIG)).udp_open().port for _ in range(40)}
    assert all(EPHEMERAL_FIRST <= p <= EPHEMERAL_LAST for p in unseeded)
    assert len(unseeded) > 30  # 40 draws from 16384 ports: a repeat-heavy result is no randomness
    seeded = [make().tcp_connect(HOST, 70, 0.0).local[1] for _ in range(2)]
    assert seeded[0] == seeded[1]
    assert len({NetStack(MAC, config=parse_config(CONFIG), seed=n).udp_open().port for n in range(20)}) > 15
    # UDP and TCP draw from the one sequence and skip each other's ports.
    s = make()
    u = s.udp_open().port
    t = s.tcp_connect(HOST, 70, 0.0).local[1]
    assert t == (u + 1 if u < EPHEMERAL_LAST else EPHEMERAL_FIRST)
