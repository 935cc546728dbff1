"""Slow start counts every byte an ACK covers (Linux's tcp_slow_start), so a peer that ACKs
once per large receive (GRO, stretch ACKs) still doubles the window each round trip; in
congestion avoidance the window still grows by about one MSS a round trip."""

from __future__ import annotations

from tcp_sim import pair

from proto.wire.tcp import ACK, TcpSegment

PLAIN = {"timestamps": False, "window_scaling": False}


def test_a_stretch_ack_grows_the_window_by_what_it_acknowledges() -> None:
    sim, a, b = pair(a_kw={**PLAIN, "snd_buf": 1 << 20}, b_kw=PLAIN)
    cwnd0 = a._cwnd  # noqa: SLF001
    a.send(bytes(100 * a.send_mss))
    flight = sum(len(s.payload) for s in a.segments_to_send(sim.now))
    assert flight == cwnd0  # the initial window's worth went out
    ack = TcpSegment(70, 40000, 5001, 1001 + flight, ACK, 65535)  # one ACK for all of it
    a.segment_received(ack, sim.now)
    assert a._cwnd == 2 * cwnd0  # noqa: SLF001 - doubled, not one MSS more
    second = sum(len(s.payload) for s in a.segments_to_send(sim.now))
    assert second == 2 * cwnd0


def test_slow_start_stops_at_ssthresh_and_avoidance_adds_about_an_mss() -> None:
    sim, a, b = pair(a_kw={**PLAIN, "snd_buf": 1 << 20}, b_kw=PLAIN)
    mss = a.send_mss
    a._ssthresh = a._cwnd + mss  # noqa: SLF001 - one MSS of slow start left
    start = a._cwnd  # noqa: SLF001
    a.send(bytes(100 * mss))
    flight = sum(len(s.payload) for s in a.segments_to_send(sim.now))
    a.segment_received(TcpSegment(70, 40000, 5001, 1001 + flight, ACK, 65535), sim.now)
    assert a._cwnd == start + mss  # noqa: SLF001 - capped at ssthresh
    a.segments_to_send(sim.now)
    a.segment_received(TcpSegment(70, 40000, 5001, 1001 + flight + mss, ACK, 65535), sim.now)
    assert start + mss < a._cwnd <= start + 2 * mss  # noqa: SLF001 - avoidance: mss*mss/cwnd
