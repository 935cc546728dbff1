"""Multi-page reads and writes of user memory: the same bytes, faults and frames as page by page.

AddressSpace.read/write translate a whole range at once (MMU.translate_pages) and, on a demand
fault, map every missing page of the range in one go; what a process can observe must be what
it was when each page was translated and faulted in on its own."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machine.mmu import PageFault
from merriwig import layout
from merriwig.errors import QuotaExceeded
from merriwig.memory.space import PAGE, USER_RO, AddressSpace
from tests.kernel.test_space import make_ctx


@settings(max_examples=60, deadline=None)
@given(ops=st.lists(st.tuples(st.integers(0, 20 * PAGE), st.binary(min_size=1, max_size=5 * PAGE)), max_size=12))
def test_range_writes_and_reads_agree_with_a_bytearray(ops: list[tuple[int, bytes]]) -> None:
    ctx = make_ctx()
    s = AddressSpace(ctx)
    vaddr, _ = s.malloc(32)
    model = bytearray(32 * PAGE)
    for offset, data in ops:
        s.write(vaddr + offset, data)
        model[offset:offset + len(data)] = data
        assert s.read(vaddr + offset, len(data)) == data
    # demand paging mapped exactly the pages something touched (and a directory and a table)
    touched = {p for offset, data in ops for p in range(offset // PAGE, (offset + len(data) - 1) // PAGE + 1)}
    info = s.chunks[layout.chunk_slot(vaddr)]
    assert info is not None and info.frames == (len(touched) + 2 if touched else 0)
    assert s.read(vaddr, 32 * PAGE) == bytes(model)


def test_a_write_into_a_fresh_chunk_maps_its_pages_once() -> None:
    ctx = make_ctx()
    s = AddressSpace(ctx)
    vaddr, _ = s.malloc(16)
    s.write(vaddr + 100, b"\x5a" * (16 * PAGE - 100))
    info = s.chunks[layout.chunk_slot(vaddr)]
    assert info is not None and info.frames == 16 + 2  # 16 pages, a page table and a directory
    assert s.read(vaddr, 100) == bytes(100)  # zeroed before the write
    assert s.read(vaddr + 100, 16 * PAGE - 100) == b"\x5a" * (16 * PAGE - 100)


def test_a_write_past_the_chunk_writes_what_is_inside_then_faults() -> None:
    ctx = make_ctx()
    s = AddressSpace(ctx)
    vaddr, _ = s.malloc(2)
    other, _ = s.malloc(1)  # the next slot: far away, so vaddr + 2 pages is unmapped
    with pytest.raises(PageFault) as e:
        s.write(vaddr + PAGE, b"\x11" * (2 * PAGE))
    assert e.value.vaddr == vaddr + 2 * PAGE
    assert "not-present, write, user" in str(e.value)
    assert s.read(vaddr + PAGE, PAGE) == b"\x11" * PAGE  # the stores before the fault landed
    assert other != vaddr + 2 * PAGE


def test_a_write_into_a_read_only_page_faults_there() -> None:
    ctx = make_ctx()
    s = AddressSpace(ctx)
    vaddr, _ = s.malloc(3)
    s.write(vaddr, bytes(3 * PAGE))
    s.protect(vaddr + PAGE, USER_RO)
    with pytest.raises(PageFault) as e:
        s.write(vaddr + 10, b"\x22" * (2 * PAGE))
    assert e.value.vaddr == vaddr + PAGE
    assert "protection, write, user" in str(e.value)
    assert s.read(vaddr + 10, PAGE - 10) == b"\x22" * (PAGE - 10)
    assert s.read(vaddr + PAGE, PAGE) == bytes(PAGE)


def test_the_quota_stops_a_range_write_part_way() -> None:
    ctx = make_ctx()
    s = AddressSpace(ctx, quota=8)
    vaddr, _ = s.malloc(16)
    with pytest.raises(QuotaExceeded):
        s.write(vaddr, b"\x33" * (16 * PAGE))
    assert s.frames_owned == 8


def test_a_chunk_that_moved_is_read_whole_by_its_receiver() -> None:
    ctx = make_ctx()
    a, b = AddressSpace(ctx), AddressSpace(ctx)
    vaddr, _ = a.malloc(16)
    data = bytes(range(256)) * (16 * PAGE // 256)
    a.write(vaddr, data)
    assert b.read(b.attach(a.detach(vaddr)), len(data)) == data
    with pytest.raises(PageFault):
        a.read(vaddr, 2 * PAGE)
