"""proto/tcp's receiving side driven directly (reassembly, window trimming, delayed ACKs) and its
listener (backlog, SYN floods, stray ACKs), partly over the simulated link (tests/support/tcp_sim.py)."""


from __future__ import annotations

import pytest
from tcp_sim import A_IP, B_IP, Sim, established_receiver

from proto.tcp import (
    CLOSE_WAIT,
    ESTABLISHED,
    TcpConnection,
    TcpListener,
)
from proto.wire.tcp import ACK, FIN, OPT_MSS, RST, SYN, TcpSegment

# --------------------------------------------------------------------------- reassembly (direct)



def test_out_of_order_reassembly_trims_overlaps_and_drops_duplicates() -> None:
    b = established_receiver()
    payload = bytes(range(256)) * 8  # 2048 bytes starting at seq 100

    def seg(lo: int, hi: int, flags: int = ACK) -> TcpSegment:
        return TcpSegment(1234, 80, 100 + lo, 7001, flags, 65535, payload[lo:hi])

    acks: list[int] = []
    for s in [seg(1000, 1500), seg(1200, 1800), seg(1000, 1500), seg(300, 600), seg(1800, 2048, ACK | FIN)]:
        b.segment_received(s, 0.1)
        acks += [x.ack for x in b.segments_to_send(0.1)]
    assert acks == [100] * 5  # every out-of-order arrival: an immediate duplicate ACK
    assert b.available == 0 and b.counters.out_of_order == 4 and b.counters.dup_segments == 1
    b.segment_received(seg(0, 400), 0.2)  # overlaps the buffered 300..600
    assert b.receive() == payload[:600]
    b.segment_received(seg(500, 1100), 0.3)
    assert b.receive() == payload[600:] and b.at_eof and b.state == CLOSE_WAIT
    assert [x.ack for x in b.segments_to_send(0.3)] == [100 + 2048 + 1]
    b.segment_received(seg(0, 100), 0.4)  # old duplicate: re-ACKed, counted
    assert b.counters.dup_segments == 2 and b.segments_to_send(0.4)[0].ack == 2149


def test_data_beyond_the_window_is_trimmed() -> None:
    b = established_receiver(rcv_buf=1000)
    b.segment_received(TcpSegment(1234, 80, 100, 7001, ACK | FIN, 65535, bytes(1500)), 0.1)
    assert b.available == 1000 and not b.at_eof and b.state == ESTABLISHED
    out = b.segments_to_send(0.1)
    assert out[-1].ack == 1100 and out[-1].window == 0


def test_delayed_ack_every_second_segment_or_timer() -> None:
    syn = TcpSegment(1234, 80, seq=99, flags=SYN, window=65535, options=((OPT_MSS, 1000),))
    b = TcpConnection.accept((B_IP, 80), (A_IP, 1234), syn, 0.0, iss=1, mss=1000, ack_delay=0.2)
    b.segments_to_send(0.0)
    b.segment_received(TcpSegment(1234, 80, 100, 2, ACK, 65535), 0.0)
    b.segment_received(TcpSegment(1234, 80, 100, 2, ACK, 65535, bytes(1000)), 1.0)
    assert b.segments_to_send(1.0) == [] and b.next_deadline() == pytest.approx(1.2)
    b.segment_received(TcpSegment(1234, 80, 1100, 2, ACK, 65535, bytes(1000)), 1.1)
    assert [s.ack for s in b.segments_to_send(1.1)] == [2100]  # second full segment: at once
    assert b.next_deadline() is None
    b.segment_received(TcpSegment(1234, 80, 2100, 2, ACK, 65535, bytes(10)), 2.0)
    assert b.segments_to_send(2.0) == []
    b.poll_timers(2.2)
    assert [s.ack for s in b.segments_to_send(2.2)] == [2110]
    # Reply data carries the ACK instead of a separate segment.
    b.segment_received(TcpSegment(1234, 80, 2110, 2, ACK, 65535, b"GET"), 3.0)
    b.send(b"OK")
    out = b.segments_to_send(3.0)
    assert len(out) == 1 and out[0].payload == b"OK" and out[0].ack == 2113


# --------------------------------------------------------------------------- listener


def test_listener_backlog_bounds_pending_connections() -> None:
    sim = Sim()
    b_host = sim.host(B_IP)
    listener = b_host.listen(70, backlog=2, isn=lambda: 1)
    a_host = sim.host(A_IP)
    clients = [a_host.connect(41000 + i, (B_IP, 70), iss=10 * i) for i in range(5)]
    sim.advance(0.5)  # both handshakes that got in are complete, nobody accepted yet
    assert sum(c.state == ESTABLISHED for c in clients) == 2
    assert listener.pending == 2 and listener.dropped_syns == 3
    accepted = [listener.accept(), listener.accept()]
    assert all(c is not None and c.state == ESTABLISHED for c in accepted)
    assert listener.accept() is None and listener.pending == 0
    # The dropped clients retransmit their SYNs and get in as the backlog frees up.

    def accept_one() -> bool:
        conn = listener.accept()
        if conn is not None:
            accepted.append(conn)
        return conn is not None

    while len(accepted) < 5:
        sim.run(accept_one)
    assert all(c.state == ESTABLISHED for c in clients)
    assert sorted(c.remote[1] for c in accepted if c) == [41000 + i for i in range(5)]


def test_syn_flood_is_bounded_by_the_backlog() -> None:
    sim = Sim()
    listener = sim.host(B_IP).listen(70, backlog=4, isn=lambda: 1, max_retries=2)
    sim.black_holes.add("10.9.9.9")  # spoofed source: SYN-ACKs go nowhere
    for port in range(1000, 1100):
        syn = TcpSegment(port, 70, seq=port, flags=SYN, window=1000)
        conn = listener.segment_received(syn, ("10.9.9.9", port), sim.now)
        if conn is not None:
            sim.hosts[B_IP].conns[(70, "10.9.9.9", port)] = conn
    assert listener.pending == 4 and listener.dropped_syns == 96
    sim.run(lambda: listener.pending == 0)  # half-open connections time out and free the slots
    assert sim.now == pytest.approx(1 + 2 + 4)


def test_listener_answers_stray_ack_with_rst() -> None:
    listener = TcpListener((B_IP, 70))
    assert listener.segment_received(TcpSegment(5, 70, 1, 99, ACK), (A_IP, 5), 0.0) is None
    assert listener.segments_to_send() == [((A_IP, 5), TcpSegment(70, 5, seq=99, flags=RST))]
    assert listener.segment_received(TcpSegment(5, 70, 1, 0, RST), (A_IP, 5), 0.0) is None
    assert listener.segments_to_send() == []
