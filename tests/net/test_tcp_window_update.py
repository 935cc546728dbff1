"""When reading sends a pure window update: at once for windows up to 64 KiB, and for larger
(scaled) ones only when the window the peer knows has fallen to half or less (Linux's rule) --
until then the ACKs of the data still arriving carry the wider window."""

from __future__ import annotations

from tcp_sim import pair

MIB = 1 << 20


def fill(rcv_buf: int, nbytes: int):  # noqa: ANN201 - the sim's types
    sim, a, b = pair(a_kw={"snd_buf": 2 * MIB}, b_kw={"rcv_buf": rcv_buf})
    assert a.send(bytes(nbytes)) == nbytes
    sim.run(lambda: b.available == nbytes and a.send_queued == 0)
    assert b.segments_to_send(sim.now) == []  # everything acknowledged already
    return sim, a, b


def test_a_read_from_a_wide_open_large_window_sends_nothing() -> None:
    sim, a, b = fill(MIB, 200 * 1024)  # the peer still knows of 824 KiB of room
    assert len(b.receive(64 * 1024)) == 64 * 1024
    assert b.segments_to_send(sim.now) == []


def test_a_large_window_fallen_to_half_is_updated_once_reading_doubles_it() -> None:
    sim, a, b = fill(MIB, 700 * 1024)  # 324 KiB known to the peer: at most half
    b.receive(64 * 1024)  # 388 KiB: not yet twice what the peer knows
    assert b.segments_to_send(sim.now) == []
    b.receive(300 * 1024)  # 688 KiB free, more than twice 324
    out = b.segments_to_send(sim.now)
    assert len(out) == 1 and not out[0].payload
    assert out[0].window << b._rcv_scale >= 688 * 1024 - (1 << b._rcv_scale)


def test_a_full_large_window_is_updated_by_any_read_past_the_mss() -> None:
    sim, a, b = fill(MIB, MIB)
    b.receive(4096)
    out = b.segments_to_send(sim.now)
    assert len(out) == 1 and not out[0].payload


def test_a_small_window_is_updated_at_once() -> None:
    sim, a, b = fill(60 * 1024, 20 * 1024)  # 40 KiB of 60 still known to the peer
    b.receive(8192)
    out = b.segments_to_send(sim.now)
    assert len(out) == 1 and not out[0].payload and out[0].window == 60 * 1024 - 12 * 1024
