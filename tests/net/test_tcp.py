"""proto/tcp end to end over the simulated link (tests/support/tcp_sim.py): handshakes, bulk
transfer through loss with SACK and NewReno, errors, close, flow control, retransmission timers."""


from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tcp_sim import A_IP, B_IP, Impair, Sim, Transfer, both_closed, established_receiver, pair

from proto.tcp import (
    CLOSE_WAIT,
    CLOSED,
    CLOSING,
    ESTABLISHED,
    FIN_WAIT_2,
    LAST_ACK,
    SYN_RECEIVED,
    SYN_SENT,
    TIME_WAIT,
    TcpConnection,
    TcpError,
    reset_for,
    seq_diff,
)
from proto.wire.tcp import ACK, FIN, OPT_MSS, OPT_SACK, OPT_SACK_PERMITTED, RST, SYN, TcpSegment

# --------------------------------------------------------------------------- handshake


@pytest.mark.parametrize("rfc7323", [False, True])
def test_three_way_handshake_negotiates_mss(rfc7323: bool) -> None:
    kw = {"window_scaling": rfc7323, "timestamps": rfc7323}
    sim, a, b = pair(a_kw={"mss": 1460, **kw}, b_kw={"mss": 1000, **kw})
    assert a.state == b.state == ESTABLISHED
    # With timestamps every data segment carries 12 bytes of options, taken from the payload.
    effective = 1000 - 12 if rfc7323 else 1000
    assert a.send_mss == b.send_mss == effective
    syn = sim.segments(A_IP, lambda s: bool(s.flags & SYN))[0][1]
    synack = sim.segments(B_IP, lambda s: bool(s.flags & SYN))[0][1]
    if rfc7323:  # Linux's layout (tests/net/test_tcp_rfc7323.py checks the bytes)
        assert syn.mss == 1460 and syn.sack_permitted and syn.wscale == 3 and syn.timestamps is not None
    else:  # without RFC 7323, the SYN is what it always was
        assert syn.options == ((OPT_MSS, 1460), (OPT_SACK_PERMITTED, None))
    assert syn.flags == SYN and syn.seq == 1000
    assert synack.flags == SYN | ACK and synack.mss == 1000 and synack.ack == 1001 and synack.seq == 5000
    third = sim.segments(A_IP)[1][1]
    assert third.flags == ACK and third.seq == 1001 and third.ack == 5001
    # Segments are capped at the negotiated MSS.
    a.send(bytes(5000))
    sim.run(lambda: b.available == 5000)
    assert max(len(s.payload) for _, s in sim.segments(A_IP)) == effective


def test_handshake_survives_lost_syn_and_synack() -> None:
    lost = {"syn": 1, "synack": 1}

    def drop(src: str, seg: TcpSegment) -> bool:
        kind = "synack" if seg.flags & ACK else "syn"
        if seg.flags & SYN and lost[kind]:
            lost[kind] -= 1
            return True
        return False

    sim = Sim()
    sim.drop = drop
    listener = sim.host(B_IP).listen(70, isn=lambda: 7)
    a = sim.host(A_IP).connect(40000, (B_IP, 70))
    sim.run(lambda: a.state == ESTABLISHED and listener.accept() is not None)
    assert a.counters.retransmits == 1 and a.counters.timeouts == 1
    # Karn: no RTT sample from the retransmitted SYN; RFC 6298 5.7 leaves RTO at >= 3 s.
    assert a.srtt is None and a.rto == 3.0


def test_simultaneous_open() -> None:
    sim = Sim()
    a = sim.host(A_IP).connect(5000, (B_IP, 6000), iss=100)
    b = sim.host(B_IP).connect(6000, (A_IP, 5000), iss=900)
    sim.run(lambda: a.state == ESTABLISHED and b.state == ESTABLISHED)
    assert SYN_RECEIVED in sim.hosts[A_IP].history[a]
    a.send(b"ping")
    b.send(b"pong")
    sim.run(lambda: a.available == 4 and b.available == 4)
    assert a.receive() == b"pong" and b.receive() == b"ping"


# --------------------------------------------------------------------------- bulk transfer


@pytest.mark.parametrize("ack_delay", [0.04, 0.0])
def test_one_mib_each_way_over_a_bad_link(ack_delay: float) -> None:
    bad = Impair(loss=0.10, reorder=0.05, dup=0.05, corrupt=0.02)
    opts = {"msl": 1.0, "ack_delay": ack_delay}
    sim, a, b = pair(bad, seed=42, a_kw=opts, b_kw=opts)
    rng = random.Random(7)
    data_a, data_b = rng.randbytes(1 << 20), rng.randbytes(1 << 20)
    app = Transfer(a, b, data_a, data_b)
    sim.run(both_closed(a, b), app=app)
    assert app.received(1) == data_a and app.received(0) == data_b
    assert a.error is None and b.error is None and a.at_eof and b.at_eof
    # The impairments really happened and were handled by the mechanisms meant for them.
    assert sim.corrupted > 0 and sim.rejected >= sim.corrupted
    for c in (a, b):
        assert c.counters.retransmits > 0
        assert c.counters.fast_retransmits > 0
        assert c.counters.out_of_order > 0
        assert c.counters.dup_segments > 0


def test_fast_retransmit_repairs_a_single_loss_without_timeout() -> None:
    sim, a, b = pair()
    dropped: list[int] = []

    def drop(src: str, seg: TcpSegment) -> bool:
        if src == A_IP and seg.payload and seg.seq == 1001 + 10 * a.send_mss and not dropped:
            dropped.append(seg.seq)
            return True
        return False

    sim.drop = drop
    data = random.Random(3).randbytes(200_000)
    app = Transfer(a, b, data, b"")
    sim.run(lambda: len(app.received(1)) == len(data), app=app)
    assert dropped and app.received(1) == data
    assert a.counters.fast_retransmits == 1 and a.counters.timeouts == 0
    assert a.counters.retransmits == 1
    assert b.counters.out_of_order >= 3


@pytest.mark.parametrize("a_sack, b_sack", [(True, True), (True, False), (False, True)])
def test_sack_is_used_only_when_both_ends_offer_it(a_sack: bool, b_sack: bool) -> None:
    sim, a, b = pair(a_kw={"sack": a_sack}, b_kw={"sack": b_sack})
    syn = sim.segments(A_IP, lambda s: bool(s.flags & SYN))[0][1]
    synack = sim.segments(B_IP, lambda s: bool(s.flags & SYN))[0][1]
    assert syn.sack_permitted == a_sack
    assert synack.sack_permitted == (a_sack and b_sack)  # offered back only if offered to it
    lost: list[int] = []
    sim.drop = lambda src, seg: src == A_IP and seg.seq == 1001 + a.send_mss and not lost and not lost.append(1)
    data = random.Random(5).randbytes(20 * a.send_mss)
    app = Transfer(a, b, data, b"")
    sim.run(lambda: len(app.received(1)) == len(data), app=app)
    sacks = sim.segments(B_IP, lambda s: any(k == OPT_SACK for k, _ in s.options))
    assert bool(sacks) == (a_sack and b_sack)


def drop_first_sends(seqs: set[int]) -> Callable[[str, TcpSegment], bool]:
    """Lose the first transmission of A's data segments starting at `seqs`."""
    pending = set(seqs)

    def drop(src: str, seg: TcpSegment) -> bool:
        if src == A_IP and seg.payload and seg.seq in pending:
            pending.discard(seg.seq)
            return True
        return False

    return drop


def test_duplicate_acks_carry_sack_blocks_latest_arrival_first() -> None:
    sim, a, b = pair(a_kw={"ack_delay": 0.0}, b_kw={"ack_delay": 0.0})
    a._cwnd = 30 * a.send_mss  # one flight holds both losses  # noqa: SLF001
    mss = a.send_mss
    holes = {1001 + 2 * mss, 1001 + 5 * mss}  # segments 2 and 5 of the first flight
    sim.drop = drop_first_sends(holes)
    data = random.Random(6).randbytes(40 * mss)
    app = Transfer(a, b, data, b"")
    sim.run(lambda: len(app.received(1)) == len(data), app=app)
    assert app.received(1) == data
    acks = [s for _, s in sim.segments(B_IP) if s.sack_blocks]
    assert acks and all(seg.ack in holes for seg in acks)  # a block is only ever sent over a hole
    # The dup ACK for segment 6 (arriving after hole 5) reports [6, 7) first, then [3, 5).
    seg6 = next(s for s in acks if s.sack_blocks[0] == (1001 + 6 * mss, 1001 + 7 * mss))
    assert seg6.ack == 1001 + 2 * mss and seg6.sack_blocks[1] == (1001 + 3 * mss, 1001 + 5 * mss)
    for seg in acks:  # never data in a block, never more than four blocks, never past the window
        assert len(seg.sack_blocks) <= 4 and not seg.payload
        assert all(seq_diff(e, st) > 0 and seq_diff(st, seg.ack) > 0 for st, e in seg.sack_blocks)


@pytest.mark.parametrize("sack", [True, False])
def test_several_losses_in_one_window_are_repaired_in_fast_recovery_with_sack(sack: bool) -> None:
    """Four segments of one flight lost: with SACK each hole is resent as the duplicate ACKs
    show it, within one recovery and no timeout; NewReno alone resends one hole per round
    trip (or times out)."""
    opts = {"ack_delay": 0.0, "sack": sack}
    sim, a, b = pair(a_kw=opts, b_kw=opts)
    a._cwnd = 30 * a.send_mss  # a flight large enough to hold several losses  # noqa: SLF001
    mss = a.send_mss
    sim.drop = drop_first_sends({1001 + k * mss for k in (3, 7, 11, 15)})
    data = random.Random(8).randbytes(60 * mss)
    app = Transfer(a, b, data, b"")
    start = sim.now
    sim.run(lambda: len(app.received(1)) == len(data), app=app)
    took = sim.now - start
    assert app.received(1) == data
    if sack:
        assert a.counters.timeouts == 0 and a.counters.fast_retransmits == 1
        assert a.counters.sack_retransmits == 3  # holes 7, 11, 15 (hole 3 is the fast retransmit)
        assert a.counters.retransmits == 4  # nothing resent that had arrived
        assert took < 0.2  # a few 20 ms round trips, not one per hole
    else:
        assert a.counters.sack_retransmits == 0
        assert a.counters.retransmits >= 4 and took >= 0.08  # at least one round trip per hole


def test_go_back_n_after_a_timeout_skips_what_the_peer_sacked() -> None:
    """After an RTO the sender resends from SND.UNA, but not the bytes the ACKs that arrive
    meanwhile report as held."""
    opts = {"ack_delay": 0.0}
    sim, a, b = pair(a_kw=opts, b_kw=opts)
    mss = a.send_mss
    # Segments 0 and 3 are lost twice (first send, then the fast retransmit / the SACK resend),
    # so only the RTO can repair them; 1, 2 and 4-11 arrive and are SACKed.
    left = {1001: 2, 1001 + 3 * mss: 2}
    a._cwnd = 30 * mss  # one flight  # noqa: SLF001

    def drop(src: str, seg: TcpSegment) -> bool:
        if src == A_IP and seg.payload and left.get(seg.seq, 0):
            left[seg.seq] -= 1
            return True
        return False

    sim.drop = drop
    data = random.Random(9).randbytes(12 * mss)
    app = Transfer(a, b, data, b"")
    sim.run(lambda: len(app.received(1)) == len(data), app=app)
    assert app.received(1) == data and a.counters.timeouts >= 1 and not any(left.values())
    sent = [s.seq for _, s in sim.segments(A_IP, lambda s: bool(s.payload))]
    assert sent.count(1001 + 3 * mss) == 3  # the hole itself: sent, resent, resent after the RTO
    for k in (4, 5, 6, 11):
        assert sent.count(1001 + k * mss) == 1, k  # SACKed: never resent, not even going back N


@pytest.mark.parametrize("n", range(2, 10))
def test_one_loss_in_a_short_transfer_is_repaired_without_a_timeout(n: int) -> None:
    """A short transfer (n segments, the FIN after them) loses one segment, any but the last:
    too few segments follow it for three duplicate ACKs, yet limited transmit, early
    retransmit and the SACKed data repair it within round trips, never after an RTO."""
    for k in range(n - 1):
        sim, a, b = pair(a_kw={"ack_delay": 0.0}, b_kw={"ack_delay": 0.0})
        sim.drop = drop_first_sends({1001 + k * a.send_mss})
        data = random.Random(n * 100 + k).randbytes(n * a.send_mss)
        app = Transfer(a, b, data, b"")
        sim.run(lambda: len(app.received(1)) == len(data), app=app)  # noqa: B023 - run now
        assert app.received(1) == data
        assert (a.counters.timeouts, a.counters.retransmits) == (0, 1), (n, k)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lies=st.lists(st.tuples(st.integers(0, 80_000), st.lists(st.tuples(st.integers(-70_000, 70_000),
                                                                        st.integers(-2000, 70_000)),
                                                              min_size=1, max_size=4)),
                     min_size=1, max_size=6))
def test_lying_sack_blocks_never_lose_or_stall_data(lies: list[tuple[int, list[tuple[int, int]]]]) -> None:
    """The peer's ACKs carry SACK blocks it made up: beyond what was sent, before SND.UNA,
    reversed, claiming holes it does not have. The sender may waste effort, but every byte
    still arrives, in order, and the connection finishes."""
    opts = {"ack_delay": 0.0, "msl": 1.0}
    sim, a, b = pair(Impair(loss=0.05), seed=4, a_kw=opts, b_kw=opts)
    data = random.Random(10).randbytes(90_000)
    app = Transfer(a, b, data, b"")
    pending = sorted(lies)
    forged_acks = [0]

    def liar(now: float) -> None:
        app(now)
        acked = app.ends[0][3][0] - a.send_queued  # bytes the peer has really acknowledged
        while pending and pending[0][0] <= acked and a.send_queued:  # data in flight
            _, blocks = pending.pop(0)
            forged_acks[0] += 1
            una = a._snd_una  # noqa: SLF001 - forging an ACK for exactly where it is
            edges = tuple((una + x) % 2**32 for lo, ln in blocks for x in (lo, lo + ln))
            forged = TcpSegment(70, 40000, seq=b._snd_max, ack=una, flags=ACK,  # noqa: SLF001
                                window=a.snd_wnd, options=((OPT_SACK, edges),))
            a.segment_received(forged, now)

    sim.run(both_closed(a, b), app=liar)
    assert app.received(1) == data and a.error is None and b.error is None
    assert forged_acks[0] >= 1  # the first lie comes while data is in flight


def test_sequence_numbers_wrap_around() -> None:
    bad = Impair(loss=0.05, reorder=0.05, dup=0.05)
    sim, a, b = pair(bad, seed=9, a_kw={"iss": 2**32 - 3000, "msl": 1.0}, b_kw={"msl": 1.0}, iss_b=2**32 - 10)
    data_a = random.Random(1).randbytes(300_000)
    data_b = random.Random(2).randbytes(300_000)
    app = Transfer(a, b, data_a, data_b)
    sim.run(both_closed(a, b), app=app)
    assert app.received(1) == data_a and app.received(0) == data_b
    for ip in (A_IP, B_IP):
        seqs = [s.seq for _, s in sim.segments(ip, lambda s: bool(s.payload))]
        assert max(seqs) > 2**32 - 5000 and min(seqs) < 300_000  # really wrapped


def test_seq_diff_is_modular() -> None:
    assert seq_diff(5, 2**32 - 5) == 10
    assert seq_diff(2**32 - 5, 5) == -10
    assert seq_diff(0, 0) == 0


# --------------------------------------------------------------------------- errors


def test_connection_refused() -> None:
    sim = Sim()
    sim.host(B_IP)  # no listener: the host answers with RST
    a = sim.host(A_IP).connect(40000, (B_IP, 71))
    sim.run(lambda: a.state == CLOSED)
    assert a.error == "connection refused"
    with pytest.raises(TcpError, match="refused"):
        a.send(b"x")
    with pytest.raises(TcpError, match="refused"):
        a.receive()


def test_reset_by_peer_abort() -> None:
    sim, a, b = pair()
    a.send(b"hello")
    sim.run(lambda: b.available == 5)
    b.abort(sim.now)
    assert b.state == CLOSED and b.error is None
    sim.run(lambda: a.state == CLOSED)
    assert a.error == "connection reset"
    with pytest.raises(TcpError, match="reset"):
        a.receive()


def test_rst_needs_exact_sequence_number() -> None:
    sim, a, b = pair()
    rcv_nxt = 5001
    base = TcpSegment(70, 40000, rcv_nxt, 0, RST)
    a.segment_received(TcpSegment(70, 40000, rcv_nxt + 100, 0, RST), sim.now)  # in window
    assert a.state == ESTABLISHED and a.counters.challenge_acks == 1
    out = a.segments_to_send(sim.now)
    assert [s.flags for s in out] == [ACK] and out[0].ack == rcv_nxt
    a.segment_received(TcpSegment(70, 40000, rcv_nxt + 10**6, 0, RST), sim.now)  # outside
    assert a.state == ESTABLISHED and a.segments_to_send(sim.now) == []
    a.segment_received(base, sim.now)  # exact
    assert a.state == CLOSED and a.error == "connection reset"


def test_syn_in_established_state_draws_challenge_ack() -> None:
    sim, a, b = pair()
    a.segment_received(TcpSegment(70, 40000, 5001, 0, SYN, 1000), sim.now)
    assert a.state == ESTABLISHED and a.counters.challenge_acks == 1
    assert [s.flags for s in a.segments_to_send(sim.now)] == [ACK]


def test_syn_sent_ignores_rst_that_does_not_ack_our_syn() -> None:
    a = TcpConnection((A_IP, 1), (B_IP, 2), iss=100)
    a.connect(0.0)
    assert [s.flags for s in a.segments_to_send(0.0)] == [SYN]
    a.segment_received(TcpSegment(2, 1, 0, 0, RST), 0.1)  # no ACK: ignored
    a.segment_received(TcpSegment(2, 1, 0, 5, RST | ACK), 0.1)  # wrong ACK: ignored
    assert a.state == SYN_SENT
    a.segment_received(TcpSegment(2, 1, 0, 101, RST | ACK), 0.1)
    assert a.state == CLOSED and a.error == "connection refused"


def test_closed_port_reset_rules() -> None:
    syn = TcpSegment(1, 2, seq=10, flags=SYN)
    rst = reset_for(syn)
    assert rst == TcpSegment(2, 1, seq=0, ack=11, flags=RST | ACK)
    data = TcpSegment(1, 2, seq=10, ack=77, flags=ACK, payload=b"abc")
    assert reset_for(data) == TcpSegment(2, 1, seq=77, flags=RST)
    assert reset_for(TcpSegment(1, 2, seq=10, flags=RST)) is None


# --------------------------------------------------------------------------- close


@pytest.mark.parametrize("who", ["a", "b", "both"])
def test_close(who: str) -> None:
    sim, a, b = pair(a_kw={"msl": 2.0}, b_kw={"msl": 2.0})
    a.send(b"request")
    b.send(b"response")
    if who in ("a", "both"):
        a.close(sim.now)
    if who in ("b", "both"):
        b.close(sim.now)
    if who != "both":
        first, second = (a, b) if who == "a" else (b, a)
        sim.run(lambda: second.state == CLOSE_WAIT and first.state == FIN_WAIT_2)
        second.send(b"late data")  # half-close: the passive closer may still send
        second.close(sim.now)
        assert second.state == LAST_ACK
    sim.run(both_closed(a, b))
    assert a.receive(3) == b"res" and a.receive() == b"ponse" + (b"late data" if who == "a" else b"")
    assert b.receive() == b"request" + (b"late data" if who == "b" else b"")
    assert a.at_eof and b.at_eof and a.error is None and b.error is None
    hist = sim.hosts[A_IP].history[a], sim.hosts[B_IP].history[b]
    if who == "both":
        assert all(CLOSING in h and TIME_WAIT in h for h in hist)
    else:
        active, passive = hist if who == "a" else hist[::-1]
        assert TIME_WAIT in active and LAST_ACK in passive and TIME_WAIT not in passive


def test_time_wait_lasts_two_msl_and_restarts_on_fin() -> None:
    sim, a, b = pair(a_kw={"msl": 5.0})
    a.close(sim.now)
    sim.run(lambda: a.state == FIN_WAIT_2)
    b.close(sim.now)
    sim.run(lambda: a.state == TIME_WAIT)
    t0 = sim.now
    assert a.next_deadline() == pytest.approx(t0 + 10.0)
    sim.advance(4.0)
    assert a.state == TIME_WAIT
    # The peer's FIN again (our last ACK was lost): re-ACKed and 2*MSL starts over.
    fin = sim.segments(B_IP, lambda s: bool(s.flags & FIN))[-1][1]
    a.segment_received(fin, sim.now)
    assert [s.flags for s in a.segments_to_send(sim.now)] == [ACK]
    assert a.next_deadline() == pytest.approx(sim.now + 10.0)
    t1 = sim.now
    sim.advance(9.9)
    assert a.state == TIME_WAIT
    sim.run(lambda: a.state == CLOSED)
    assert sim.now == pytest.approx(t1 + 10.0) and a.error is None
    assert a.next_deadline() is None
    # A CLOSED connection answers strays with RST.
    a.segment_received(TcpSegment(70, 40000, 1, 2, ACK), sim.now)
    assert a.segments_to_send(sim.now) == [TcpSegment(40000, 70, seq=2, flags=RST)]


def test_fin_wait_2_gives_up_when_the_peer_goes_silent() -> None:
    sim, a, b = pair()
    a.close(sim.now)
    sim.run(lambda: a.state == FIN_WAIT_2)
    assert a.next_deadline() is None  # by default FIN-WAIT-2 waits for the peer (RFC 9293)
    a.fin_wait_2_timeout = 30.0  # e.g. the application has gone away
    t0 = sim.now
    b.send(b"still talking")  # half-close: data from the peer keeps it alive
    sim.advance(20.0)
    assert a.receive() == b"still talking" and a.state == FIN_WAIT_2
    t1 = max(t for t, s in sim.segments(B_IP))
    sim.black_holes.add(B_IP)  # then the peer vanishes without a FIN
    sim.run(lambda: a.state == CLOSED)
    assert a.error == "timed out" and sim.now == pytest.approx(t1 + sim.impair.delay + 30.0)
    assert sim.now > t0 + 30.0


def test_send_after_close_is_an_error() -> None:
    sim, a, b = pair()
    a.close(sim.now)
    with pytest.raises(TcpError, match="closing"):
        a.send(b"x")
    fresh = TcpConnection((A_IP, 1), (B_IP, 2), iss=0)
    with pytest.raises(TcpError, match="not connected"):
        fresh.send(b"x")


# --------------------------------------------------------------------------- flow control


@pytest.mark.parametrize("lose_update", [False, True])
def test_zero_window_then_window_update(lose_update: bool) -> None:
    sim, a, b = pair(b_kw={"rcv_buf": 4096})
    data = random.Random(5).randbytes(20_000)
    sent = a.send(data)
    assert sent == 20_000
    sim.run(lambda: a.snd_wnd == 0 and a.send_queued == 20_000 - 4096)
    assert b.available == 4096
    # Stalled: only the persist timer is armed, and probing keeps the connection alive.
    t_stall = sim.now
    sim.advance(30.0)
    assert a.error is None and a.counters.timeouts == 0
    assert a.counters.probes >= 3
    probes = sim.segments(A_IP, lambda s: s.flags == ACK and not s.payload and s.seq == (1001 + 4096 - 1))
    gaps = [round(t2 - t1, 6) for (t1, _), (t2, _) in zip(probes, probes[1:], strict=False)]
    assert gaps == sorted(gaps) and probes[0][0] > t_stall  # backed off
    if lose_update:
        sim.drop = lambda src, s: src == B_IP and s.window > 0 and not s.payload and s.flags == ACK
    got = bytearray(b.receive())
    sim.advance(0.05)  # the window update is sent (and lost, in the second variant)
    sim.drop = None

    def reader(now: float) -> None:
        got.extend(b.receive())

    sim.run(lambda: len(got) == len(data) and a.send_queued == 0, app=reader)
    assert bytes(got) == data and a.error is None


def test_small_reads_do_not_open_a_silly_window() -> None:
    sim, a, b = pair(b_kw={"rcv_buf": 8192})
    a.send(bytes(30_000))
    sim.run(lambda: a.snd_wnd == 0 and b.available == 8192)
    b.receive(100)  # far below min(rcv_buf/2, MSS): no window update
    assert b.segments_to_send(sim.now) == []
    b.receive(2000)
    out = b.segments_to_send(sim.now)
    assert len(out) == 1 and out[0].window == 2100


def test_closed_window_still_takes_acks() -> None:
    """Data pushed into our zero window is dropped, but its ACK field is still used."""
    b = established_receiver(rcv_buf=100)
    b.send(b"reply")
    assert [s.payload for s in b.segments_to_send(0.1)] == [b"reply"]
    b.segment_received(TcpSegment(1234, 80, 100, 7001, ACK, 65535, bytes(100)), 0.2)  # fills it
    assert b.available == 100 and b.send_queued == 5
    b.segments_to_send(0.2)
    b.segment_received(TcpSegment(1234, 80, 200, 7006, ACK, 65535, b"more"), 0.3)
    assert b.available == 100 and b.send_queued == 0  # "reply" acknowledged, "more" dropped
    out = b.segments_to_send(0.3)
    assert [(s.ack, s.window) for s in out] == [(200, 0)]


def test_sender_respects_peer_window() -> None:
    sim, a, b = pair(b_kw={"rcv_buf": 3000})
    a.send(bytes(10_000))
    sim.run(lambda: a.snd_wnd == 0)
    assert sum(len(s.payload) for _, s in sim.segments(A_IP)) == 3000


# --------------------------------------------------------------------------- retransmission timer


def test_syn_rto_backs_off_exponentially_then_times_out() -> None:
    sim = Sim()
    sim.black_holes.add(B_IP)
    a = sim.host(A_IP).connect(40000, (B_IP, 70))
    sim.run(lambda: a.state == CLOSED)
    times = [t for t, s in sim.segments(A_IP)]
    assert [round(t2 - t1, 6) for t1, t2 in zip(times, times[1:], strict=False)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert a.error == "timed out" and sim.now == pytest.approx(sum([1, 2, 4, 8, 16, 32, 60, 60, 60]))
    assert a.counters.retransmits == 8 and a.counters.timeouts == 8


def test_rto_from_rtt_then_backoff_and_timeout_when_peer_vanishes() -> None:
    sim, a, b = pair(Impair(delay=0.05))
    # One SYN/SYN-ACK sample of 100 ms: SRTT = 0.1, RTTVAR = 0.05, RTO = 0.1 + 4 * 0.05.
    assert a.srtt == pytest.approx(0.1) and a.rto == pytest.approx(0.3)
    sim.black_holes.add(B_IP)
    a.send(b"anyone there?")
    t0 = sim.now
    sim.run(lambda: a.state == CLOSED)
    times = [t for t, s in sim.segments(A_IP, lambda s: bool(s.payload))]
    assert times[0] == t0
    gaps = [round(t2 - t1, 6) for t1, t2 in zip(times, times[1:], strict=False)]
    assert gaps == pytest.approx([0.3, 0.6, 1.2, 2.4, 4.8, 9.6, 19.2, 38.4])
    assert a.error == "timed out" and sim.now - times[-1] == pytest.approx(60.0)
    assert a.next_deadline() is None
    with pytest.raises(TcpError, match="timed out"):
        a.send(b"x")


def test_rto_minimum_is_200ms() -> None:
    sim, a, b = pair(Impair(delay=0.001), b_kw={"ack_delay": 0})
    a.send(bytes(50_000))
    sim.run(lambda: a.send_queued == 0)
    assert a.srtt is not None and a.srtt < 0.01 and a.rto == pytest.approx(0.2)
