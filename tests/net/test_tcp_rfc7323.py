"""RFC 7323 in proto/tcp: window scaling, timestamps (RTTM, PAWS, TS.Recent) and the SYN's
option layout; and TSO's large segments over the simulated link (tests/support/tcp_sim.py)."""

from __future__ import annotations

import random

import pytest
from tcp_sim import A_IP, B_IP, Impair, Transfer, pair

from proto.tcp import ESTABLISHED, TcpConnection, seq_diff
from proto.tcp.rtt import RttEstimator
from proto.tcp.synopts import syn_options
from proto.wire.tcp import (
    ACK,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK_PERMITTED,
    OPT_TIMESTAMP,
    RST,
    SYN,
    TcpSegment,
    encode_options,
)

PEER_TS0 = 500  # the fake peer's first TSval


def ts(val: int, ecr: int) -> tuple:
    """The NOP NOP TS options every segment carries once timestamps are agreed."""
    return ((OPT_NOP, None), (OPT_NOP, None), (OPT_TIMESTAMP, (val, ecr)))


def scaled_receiver(peer_wscale: int = 7, **kw: object) -> TcpConnection:
    """B on port 80, established with a fake peer whose SYN offered everything."""
    syn = TcpSegment(1234, 80, seq=99, flags=SYN, window=65535,
                     options=syn_options(1460, True, peer_wscale, (PEER_TS0, 0)))
    b = TcpConnection.accept((B_IP, 80), (A_IP, 1234), syn, 0.0, iss=7000, ts_offset=0, **kw)  # type: ignore[arg-type]
    synack = b.segments_to_send(0.0)[0]
    assert synack.timestamps == (0, PEER_TS0) and synack.wscale is not None
    b.segment_received(TcpSegment(1234, 80, 100, 7001, ACK, 512, options=ts(PEER_TS0 + 1, 0)), 0.0)
    assert b.state == ESTABLISHED
    return b


# --------------------------------------------------------------------------- the SYN


def test_syn_offers_mss_sack_timestamps_and_window_scale_as_linux_lays_them_out() -> None:
    a = TcpConnection((A_IP, 40000), (B_IP, 70), iss=1000, ts_offset=0x01020304)
    a.connect(0.0)
    syn = a.segments_to_send(0.0)[0]
    # MSS | SACK-permitted TS | NOP WS: 20 bytes, every option word aligned (a Linux SYN's bytes).
    assert encode_options(syn.options) == bytes.fromhex("020405b4" "0402080a01020304" "00000000" "01030303")
    assert syn.window == 65535  # a SYN's window is never scaled, whatever the buffer

    b = TcpConnection((A_IP, 40000), (B_IP, 70), iss=1000, ts_offset=7, sack=False, rcv_buf=1 << 20)
    b.connect(0.0)
    assert encode_options(b.segments_to_send(0.0)[0].options) == bytes.fromhex(
        "020405b4" "0101080a00000007" "00000000" "01030305")
    c = TcpConnection((A_IP, 40000), (B_IP, 70), iss=1000, timestamps=False)
    c.connect(0.0)
    assert encode_options(c.segments_to_send(0.0)[0].options) == bytes.fromhex("020405b4" "01030303" "01010402")


def test_a_shift_above_14_is_taken_as_14() -> None:
    b = scaled_receiver(peer_wscale=15)
    assert b.window_scale == (3, 14)


# --------------------------------------------------------------------------- interop


def test_a_peer_that_offers_neither_gets_todays_tcp() -> None:
    sim, a, b = pair(Impair(delay=0.05, rate=10e6), a_kw={"snd_buf": 1 << 20},
                     b_kw={"window_scaling": False, "timestamps": False, "sack": False})
    synack = sim.segments(B_IP, lambda s: bool(s.flags & SYN))[0][1]
    assert synack.options == ((OPT_MSS, 1460),)  # nothing offered back that was not asked
    assert a.window_scale is None and b.window_scale is None
    assert not a.timestamps_on and not b.timestamps_on and a.send_mss == 1460
    data = random.Random(1).randbytes(1 << 20)
    app = Transfer(a, b, data, b"")
    flight = [0]

    def run(now: float) -> None:
        app(now)
        flight[0] = max(flight[0], seq_diff(a._snd_max, a._snd_una))  # noqa: SLF001

    sim.run(lambda: len(app.received(1)) == len(data), app=run)
    assert app.received(1) == data
    assert flight[0] <= 65535
    assert all(s.options == () for _, s in sim.segments(A_IP, lambda s: bool(s.payload)))
    assert max(s.window for _, s in sim.segments(B_IP)) <= 65535


def test_our_syn_without_rfc7323_draws_the_old_synack() -> None:
    syn = TcpSegment(1234, 80, seq=99, flags=SYN, window=65535,
                     options=((OPT_MSS, 1460), (OPT_SACK_PERMITTED, None)))
    b = TcpConnection.accept((B_IP, 80), (A_IP, 1234), syn, 0.0, iss=7000, ack_delay=0)
    synack = b.segments_to_send(0.0)[0]
    assert synack.options == ((OPT_MSS, 1460), (OPT_SACK_PERMITTED, None)) and synack.window == 65535
    b.segment_received(TcpSegment(1234, 80, 100, 7001, ACK, 65535), 0.0)
    b.segment_received(TcpSegment(1234, 80, 100, 7001, ACK, 65535, bytes(100)), 0.0)
    ack = b.segments_to_send(0.0)[-1]
    assert ack.options == () and ack.window == 65535 - 100  # unscaled, capped at 65535


# --------------------------------------------------------------------------- window scaling


def test_a_scaled_window_keeps_more_than_64_kib_in_flight() -> None:
    sim, a, b = pair(Impair(delay=0.05, rate=10e6), a_kw={"snd_buf": 1 << 20})
    assert a.window_scale == (3, 3) and b.window_scale == (3, 3)
    data = random.Random(2).randbytes(2 << 20)
    app = Transfer(a, b, data, b"")
    flight = [0]

    def run(now: float) -> None:
        app(now)
        flight[0] = max(flight[0], seq_diff(a._snd_max, a._snd_una))  # noqa: SLF001

    sim.run(lambda: len(app.received(1)) == len(data), app=run)
    assert app.received(1) == data
    assert flight[0] > 65535 * 2
    assert a.snd_wnd > 65535  # the peer's scaled window, in bytes
    assert max(s.window << 3 for _, s in sim.segments(B_IP, lambda s: not s.flags & SYN)) > 65535


def test_the_right_edge_a_scaled_window_shows_never_moves_back() -> None:
    b = scaled_receiver(rcv_buf=500_000, ack_delay=0)
    assert b.window_scale == (3, 7)
    rng = random.Random(7)
    edge, units = 0, set()
    for step in range(400):
        n = rng.choice((1, 7, 100, 1448, 1448, 3000))
        seq = b._rcv_nxt  # noqa: SLF001 - in order, whatever the window took
        b.segment_received(TcpSegment(1234, 80, seq, 7001, ACK, 512, bytes(n), ts(PEER_TS0 + step, 0)), step * 0.01)
        if rng.random() < 0.4:
            b.receive(rng.randrange(1, 5000))
        for out in b.segments_to_send(step * 0.01):
            right = out.ack + (out.window << 3)
            assert right >= edge, step
            edge = right
            units.add((b.rcv_buf - b.available) % 8)
    assert len(units) > 1  # the free space was often not a whole unit: rounding was exercised


# --------------------------------------------------------------------------- timestamps


def test_paws_drops_an_old_duplicate_and_acks_it() -> None:
    b = scaled_receiver(ack_delay=0)
    b.segment_received(TcpSegment(1234, 80, 100, 7001, ACK, 512, b"x" * 100, ts(600, 0)), 0.1)
    b.segments_to_send(0.1)
    # In the window, new sequence numbers -- but stamped before TS.Recent: an old duplicate
    # from an earlier wrap of the sequence space.
    b.segment_received(TcpSegment(1234, 80, 200, 7001, ACK, 512, b"old" * 10, ts(550, 0)), 0.2)
    assert b.counters.paws_drops == 1 and b.available == 100
    reply = b.segments_to_send(0.2)
    assert [(s.ack, s.timestamps) for s in reply] == [(200, (200, 600))]  # ACK echoing TS.Recent
    b.segment_received(TcpSegment(1234, 80, 200, 7001, ACK, 512, b"new", ts(610, 0)), 0.3)
    assert b.receive() == b"x" * 100 + b"new"
    # A RST is not subject to PAWS (RFC 7323 5.3 R1).
    b.segment_received(TcpSegment(1234, 80, 203, 7001, RST, 0, options=ts(1, 0)), 0.4)
    assert b.error is not None


def test_paws_lets_through_after_24_days_idle() -> None:
    b = scaled_receiver(ack_delay=0)
    later = 25 * 86400.0
    b.segment_received(TcpSegment(1234, 80, 100, 7001, ACK, 512, b"hello", ts(3, 0)), later)
    assert b.counters.paws_drops == 0 and b.receive() == b"hello"
    assert b.segments_to_send(later)[0].timestamps[1] == 3  # TS.Recent taken afresh


def test_a_delayed_ack_echoes_the_earliest_segment_it_acknowledges() -> None:
    b = scaled_receiver(ack_delay=0.2)
    b.segment_received(TcpSegment(1234, 80, 100, 7001, ACK, 512, bytes(1448), ts(700, 0)), 0.1)
    assert b.segments_to_send(0.1) == []  # one full segment: the ACK waits
    b.segment_received(TcpSegment(1234, 80, 1548, 7001, ACK, 512, bytes(1448), ts(710, 0)), 0.15)
    out = b.segments_to_send(0.15)  # the second full segment (1460 - 12 bytes each): at once
    assert [(s.ack, s.timestamps) for s in out] == [(2996, (150, 700))]


def test_rtt_is_sampled_from_every_ack_of_new_data(monkeypatch: pytest.MonkeyPatch) -> None:
    samples: list[float] = []
    real = RttEstimator.sample
    sim, a, b = pair(Impair(delay=0.05, rate=10e6), a_kw={"ack_delay": 0.0}, b_kw={"ack_delay": 0.0})

    def spy(self: RttEstimator, r: float, per_rtt: int = 1) -> None:
        if self is a._rtt:  # noqa: SLF001
            samples.append(r)
        real(self, r, per_rtt)

    monkeypatch.setattr(RttEstimator, "sample", spy)
    data = random.Random(3).randbytes(200_000)
    app = Transfer(a, b, data, b"")
    sim.run(lambda: len(app.received(1)) == len(data), app=app)
    assert app.received(1) == data
    assert len(samples) > 50  # many per round trip, not one
    assert all(0.099 <= r <= 0.12 for r in samples), samples  # 2 x 50 ms, in 1 ms ticks
    assert a.srtt == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("stamps", [True, False])
def test_the_ack_of_a_retransmission_is_a_sample_only_with_timestamps(stamps: bool) -> None:
    kw = {"timestamps": stamps}
    sim, a, b = pair(Impair(delay=0.05, rate=10e6), a_kw=kw, b_kw=kw)
    a.send(bytes(1000))
    sim.black_holes.add(B_IP)
    sim.advance(1.5)
    assert a.counters.timeouts >= 2
    backed_off = a.rto
    sim.black_holes.clear()
    sim.run(lambda: b.available == 1000 and a.send_queued == 0)
    if stamps:  # TSecr says which transmission the ACK answers: a fresh sample
        assert a.rto < backed_off
    else:  # Karn: ambiguous, the backed-off RTO stays until new data is timed
        assert a.rto >= backed_off


# --------------------------------------------------------------------------- TSO


def test_tso_sends_the_same_bytes_in_far_fewer_segments() -> None:
    data = random.Random(4).randbytes(1 << 20)
    runs = {}
    for tso in (0, 65000):
        sim, a, b = pair(Impair(delay=0.005, rate=10e6), a_kw={"tso_max": tso, "snd_buf": 1 << 20})
        app = Transfer(a, b, data, b"")
        sim.run(lambda: len(app.received(1)) == len(data), app=app)  # noqa: B023 - run now
        assert app.received(1) == data
        sizes = [len(s.payload) for _, s in sim.segments(A_IP, lambda s: bool(s.payload))]
        runs[tso] = sizes
        mss = a.send_mss
    assert max(runs[0]) == mss == 1448
    assert 30 * mss < max(runs[65000]) <= 44 * mss  # at most the largest multiple within tso_max
    assert len(runs[65000]) * 10 < len(runs[0])
