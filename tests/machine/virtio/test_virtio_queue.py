"""The split virtqueue model (machine/virtio/queue.py) against a driver's half written by hand."""

from __future__ import annotations

import struct

import pytest
from support_queue import make_queue

from machine.virtio.queue import QueueError, runs
from proto.virtio import need_event


def test_a_chain_of_readable_then_writable_buffers() -> None:
    q, drv, mem = make_queue(size=8)
    mem.write(0x8000, b"hello")
    head = drv.add([(0x8000, 5, False), (0x9000, 100, True), (0xA000, 50, True)])
    chain = q.pop()
    assert chain is not None and chain.head == head
    assert chain.readable == [(0x8000, 5)] and chain.writable == [(0x9000, 100), (0xA000, 50)]
    assert chain.read(q.dma, 1000) == b"hello"
    assert chain.write(q.dma, b"x" * 120) == 120
    assert mem.read(0x9000, 100) == b"x" * 100 and mem.read(0xA000, 20) == b"x" * 20
    assert q.pop() is None
    q.push([(chain.head, 120)])
    assert drv.take_used() == [(head, 120)]


def test_indices_wrap_at_2_to_the_16() -> None:
    q, drv, mem = make_queue(size=4)
    start = 0xFFFE
    drv.avail_idx = drv.last_used = start
    mem.write_uint(drv.avail + 2, 2, start)
    mem.write_uint(drv.used + 2, 2, start)
    q.last_avail = q.used_idx = q.signalled_used = start
    heads = []
    for i in range(8):  # passes 0xFFFF -> 0 -> ...; the ring is only 4 long, so use and return each
        heads.append(drv.add([(0x8000 + i * 16, 16, True)]))
        chain = q.pop()
        assert chain is not None and chain.head == heads[-1]
        q.push([(chain.head, i)])
        assert drv.take_used() == [(heads[-1], i)]
    assert q.last_avail == q.used_idx == (start + 8) & 0xFFFF == 6


def test_indirect_descriptors_need_the_feature_and_are_walked() -> None:
    q, drv, mem = make_queue(size=4)
    table = 0x20000
    mem.write(table, struct.pack("<QIHH", 0x8000, 10, 1, 1) + struct.pack("<QIHH", 0x9000, 20, 2, 0))
    head = drv.free.pop(0)
    drv.write_desc(head, table, 32, 4)
    drv.offer(head)
    with pytest.raises(QueueError, match="INDIRECT_DESC"):
        q.pop()
    q.unpop()
    q.indirect = True
    chain = q.pop()
    assert chain is not None and chain.readable == [(0x8000, 10)] and chain.writable == [(0x9000, 20)]


@pytest.mark.parametrize("case", ["loop", "index", "out_of_ram", "read_after_write", "too_far_ahead",
                                  "nested_indirect", "indirect_len"])
def test_bad_descriptors_are_queue_errors(case: str) -> None:
    q, drv, mem = make_queue(size=4)
    q.indirect = True
    if case == "loop":
        drv.write_desc(0, 0x8000, 4, 1, 1)
        drv.write_desc(1, 0x8000, 4, 1, 0)
        drv.offer(0)
    elif case == "index":
        drv.write_desc(0, 0x8000, 4, 1, 9)
        drv.offer(0)
    elif case == "out_of_ram":
        drv.add([(mem.size - 8, 64, True)])
    elif case == "read_after_write":
        drv.add([(0x8000, 4, True), (0x9000, 4, False)])
    elif case == "too_far_ahead":
        mem.write_uint(drv.avail + 2, 2, 5)
    elif case == "nested_indirect":
        mem.write(0x20000, struct.pack("<QIHH", 0x20000, 16, 4, 0))
        drv.write_desc(0, 0x20000, 16, 4)
        drv.offer(0)
    else:
        drv.write_desc(0, 0x20000, 24, 4)
        drv.offer(0)
    with pytest.raises(QueueError):
        q.pop()


def test_need_event_is_vring_need_event() -> None:
    assert need_event(0, 1, 0)  # the used index moved past event 0
    assert not need_event(5, 3, 0)
    assert need_event(5, 6, 5)
    assert need_event(0xFFFF, 0, 0xFFFE)  # across the wrap


def test_event_idx_suppresses_interrupts_until_used_event() -> None:
    q, drv, mem = make_queue(size=8)
    q.event_idx = True
    drv.set_used_event(2)  # "interrupt me when the used index passes 2"
    decisions = []
    for _i in range(4):
        drv.add([(0x8000, 16, True)])
        chain = q.pop()
        assert chain is not None
        q.push([(chain.head, 0)])
        decisions.append(q.wants_interrupt())
        drv.take_used()
    assert decisions == [False, False, True, False]


def test_no_interrupt_flag_without_event_idx() -> None:
    q, drv, mem = make_queue(size=8)
    drv.set_avail_flags(1)
    drv.add([(0x8000, 16, True)])
    chain = q.pop()
    assert chain is not None
    q.push([(chain.head, 0)])
    assert not q.wants_interrupt()
    drv.set_avail_flags(0)
    drv.add([(0x8000, 16, True)])
    chain = q.pop()
    assert chain is not None
    q.push([(chain.head, 0)])
    assert q.wants_interrupt()


def test_avail_event_asks_for_the_next_kick() -> None:
    q, drv, mem = make_queue(size=8)
    q.event_idx = True
    for _ in range(3):
        drv.add([(0x8000, 16, True)])
    while q.pop() is not None:
        pass
    q.want_kicks()
    assert drv.avail_event() == 3  # kick me when you offer the 4th


def test_layout_checks_alignment_and_ram() -> None:
    q, drv, mem = make_queue(size=8)
    assert q.layout_error() is None
    q.desc += 8
    assert "aligned" in (q.layout_error() or "")
    q.desc = mem.size - 16
    assert "outside RAM" in (q.layout_error() or "")
    q.desc, q.size = 0x1000, 6
    assert "power of two" in (q.layout_error() or "")


def test_adjacent_buffers_are_copied_as_one_and_land_where_they_would_one_by_one() -> None:
    q, drv, mem = make_queue(size=8)
    mem.write(0x8000, b"ab")
    mem.write(0x8002, b"cd")
    mem.write(0x9000, b"ef")
    # two readable buffers side by side and one elsewhere; three writable, the first two adjacent
    drv.add([(0x8000, 2, False), (0x8002, 2, False), (0x9000, 2, False),
             (0xA000, 3, True), (0xA003, 3, True), (0xB000, 4, True)])
    chain = q.pop()
    assert chain is not None
    assert runs(chain.readable) == [(0x8000, 4), (0x9000, 2)]
    assert runs(chain.writable) == [(0xA000, 6), (0xB000, 4)]
    assert chain.read(q.dma, 5) == b"abcde"
    assert chain.write(q.dma, b"0123456789xyz") == 10
    assert mem.read(0xA000, 6) == b"012345" and mem.read(0xB000, 4) == b"6789"


def test_pop_many_is_pop_repeated_and_push_stores_across_the_ring_end() -> None:
    q, drv, mem = make_queue(size=8)
    start = 0xFFFD  # the available and used indices wrap, and the ring slots go round
    drv.avail_idx = drv.last_used = start
    mem.write_uint(drv.avail + 2, 2, start)
    mem.write_uint(drv.used + 2, 2, start)
    q.last_avail = q.used_idx = q.signalled_used = start
    heads = [drv.add([(0x8000 + i * 64, 64, True)]) for i in range(6)]
    assert q.pop_many(0) == []
    chains = q.pop_many(4)
    assert [c.head for c in chains] == heads[:4]
    assert [c.writable for c in chains] == [[(0x8000 + i * 64, 64)] for i in range(4)]
    q.unpop(1)  # the last one goes back, as after pop
    rest = q.pop_many(10)  # only what is offered
    assert [c.head for c in rest] == heads[3:]
    assert q.pop() is None and q.pop_many(3) == []
    used = [(c.head, 10 + i) for i, c in enumerate(chains[:3] + rest)]
    q.push(used)
    assert drv.take_used() == used
    assert q.used_idx == (start + 6) & 0xFFFF


def test_pop_many_over_consecutive_heads_is_pop_repeated_whatever_the_chains() -> None:
    # Heads 0-5 offered in order (one descriptor table read for the stretch): single writable
    # and readable buffers, a chain (head 2 -> 7) and an indirect table inside the stretch.
    q, drv, mem = make_queue(size=8)
    q.indirect = True
    drv.write_desc(0, 0x8000, 2048, 2)
    drv.write_desc(1, 0x9000, 100, 0)
    drv.write_desc(2, 0xA000, 10, 1, 7)
    drv.write_desc(7, 0xB000, 20, 2)
    mem.write(0xC000, struct.pack("<QIHH", 0xD000, 30, 2, 0))
    drv.write_desc(3, 0xC000, 16, 4)
    drv.write_desc(4, 0xE000, 40, 2)
    drv.write_desc(5, 0xE800, 50, 2)
    for head in (0, 1, 2, 3, 4, 5):
        drv.offer(head)
    many = q.pop_many(6)
    q.unpop(6)
    one_by_one = [q.pop() for _ in range(6)]
    assert many == one_by_one
    assert [(c.head, c.readable, c.writable) for c in many[:4]] == [
        (0, [], [(0x8000, 2048)]), (1, [(0x9000, 100)], []), (2, [(0xA000, 10)], [(0xB000, 20)]),
        (3, [], [(0xD000, 30)])]


def test_pop_many_over_consecutive_heads_refuses_a_buffer_outside_ram() -> None:
    q, drv, mem = make_queue(size=8)
    drv.write_desc(0, 0x8000, 64, 2)
    drv.write_desc(1, (2 << 20) - 16, 64, 2)  # runs past the end of RAM
    drv.offer(0)
    drv.offer(1)
    with pytest.raises(QueueError, match="outside RAM"):
        q.pop_many(2)
