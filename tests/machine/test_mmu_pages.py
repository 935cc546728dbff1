"""MMU.translate_pages: a run of pages translated at once is exactly that many translate calls.

Same physical pages, same fault at the same page with the same error code, the same A and D
bits written into the tables, and a TLB that answers the same afterwards; only the number of
full walks differs (one per page table instead of one per page)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machine.memory import PAGE_SIZE, PhysicalMemory
from machine.mmu import (
    KERNEL_READ,
    KERNEL_WRITE,
    MMU,
    PTE_A,
    PTE_D,
    PTE_G,
    PTE_NX,
    PTE_P,
    PTE_RW,
    PTE_US,
    USER_EXEC,
    USER_READ,
    USER_WRITE,
    PageFault,
    make_vaddr,
)
from tests.machine.test_mmu import Tables

MIB = 2**20
URW = PTE_P | PTE_RW | PTE_US
ACCESSES = (KERNEL_READ, KERNEL_WRITE, USER_READ, USER_WRITE, USER_EXEC)


def per_page(mmu: MMU, root: int, vaddr: int, count: int, access: int) -> tuple[list[int], PageFault | None]:
    out = []
    for i in range(count):
        try:
            out.append(mmu.translate(root, vaddr + i * PAGE_SIZE, access))
        except PageFault as e:
            return out, e
    return out, None


def seen(result: tuple[list[int], PageFault | None]) -> tuple[list[int], tuple[int, int] | None]:
    pages, fault = result
    return pages, None if fault is None else (fault.vaddr, fault.error_code)


def batched(mmu: MMU, root: int, vaddr: int, count: int, access: int) -> tuple[list[int], PageFault | None]:
    out: list[int] = []
    try:
        mmu.translate_pages(root, vaddr, count, access, out)
    except PageFault as e:
        return out, e
    return out, None


def build(entries: dict[int, tuple[int, int]], table_flags: int) -> tuple[PhysicalMemory, Tables]:
    mem = PhysicalMemory(4 * MIB)
    tables = Tables(mem, first=MIB)
    for page, (frame, flags) in entries.items():
        tables.map(BASE + page * PAGE_SIZE, frame * PAGE_SIZE, flags, table_flags=table_flags)
    return mem, tables


BASE = make_vaddr(5, 0, 3, 500)  # runs cross into the next page table after 12 pages
LEAF_FLAGS = st.sampled_from([URW, URW | PTE_A, URW | PTE_A | PTE_D, PTE_P | PTE_US, PTE_P | PTE_RW,
                              URW | PTE_NX, URW | (1 << 51), 0, URW | PTE_A | PTE_D | PTE_G,
                              PTE_P | PTE_US | PTE_A | PTE_D, URW | PTE_A | PTE_D | PTE_NX])


@settings(max_examples=200, deadline=None)
@given(
    entries=st.dictionaries(st.integers(0, 40), st.tuples(st.integers(0, 255), LEAF_FLAGS), max_size=40),
    start=st.integers(0, 30),
    count=st.integers(1, 20),
    access=st.sampled_from(ACCESSES),
    table_flags=st.sampled_from([URW, PTE_P | PTE_RW, PTE_P | PTE_US, URW | PTE_NX]),
    warm=st.lists(st.integers(0, 40), max_size=5),
)
def test_translate_pages_is_translate_page_by_page(
    entries: dict[int, tuple[int, int]], start: int, count: int, access: int, table_flags: int, warm: list[int],
) -> None:
    mem_a, tables_a = build(entries, table_flags)
    mem_b, tables_b = build(entries, table_flags)
    mmu_a, mmu_b = MMU(mem_a), MMU(mem_b)
    for page in warm:  # some pages already in both TLBs
        for mmu, tables in ((mmu_a, tables_a), (mmu_b, tables_b)):
            try:
                mmu.translate(tables.root, BASE + page * PAGE_SIZE, access)
            except PageFault:
                pass
    vaddr = BASE + start * PAGE_SIZE
    pages_a, fault_a = per_page(mmu_a, tables_a.root, vaddr, count, access)
    pages_b, fault_b = batched(mmu_b, tables_b.root, vaddr, count, access)
    assert pages_b == pages_a
    assert (fault_b is None) == (fault_a is None)
    if fault_a is not None and fault_b is not None:
        assert (fault_b.vaddr, fault_b.error_code) == (fault_a.vaddr, fault_a.error_code)
    assert mem_b.buf[MIB:2 * MIB] == mem_a.buf[MIB:2 * MIB]  # the same A/D bits in the tables
    # and the TLBs answer alike from here on (a page cached ahead is one translate would cache)
    assert seen(per_page(mmu_b, tables_b.root, vaddr, count, access)) == \
        seen(per_page(mmu_a, tables_a.root, vaddr, count, access))


def frames_from_0x40(pages: range | tuple[int, ...]) -> tuple[Tables, MMU]:
    """Tables mapping each page ``i`` of ``pages`` from BASE to frame 0x40 + i (build), an MMU."""
    mem, tables = build({i: (0x40 + i, URW) for i in pages}, URW)
    return tables, MMU(mem)


def test_one_walk_per_page_table() -> None:
    tables, mmu = frames_from_0x40(range(16))
    out: list[int] = []
    mmu.translate_pages(tables.root, BASE, 16, USER_WRITE, out)
    assert out == [(0x40 + i) * PAGE_SIZE for i in range(16)]
    assert mmu.walks == 2  # BASE's table holds 12 of the 16 pages, the next table the other 4
    for i in range(16):
        assert tables.pte(BASE + i * PAGE_SIZE, 1) & (PTE_A | PTE_D) == PTE_A | PTE_D
        assert mmu.translate(tables.root, BASE + i * PAGE_SIZE, USER_WRITE) == (0x40 + i) * PAGE_SIZE
    assert mmu.walks == 2


def test_a_read_run_leaves_d_clear_and_a_write_still_walks() -> None:
    tables, mmu = frames_from_0x40(range(4))
    mmu.translate_pages(tables.root, BASE, 4, USER_READ, [])
    assert all(tables.pte(BASE + i * PAGE_SIZE, 1) & (PTE_A | PTE_D) == PTE_A for i in range(4))
    walks = mmu.walks
    mmu.translate(tables.root, BASE + 2 * PAGE_SIZE, USER_WRITE)  # a read entry never serves a write
    assert mmu.walks == walks + 1
    assert tables.pte(BASE + 2 * PAGE_SIZE, 1) & PTE_D


def test_fault_part_way_keeps_the_pages_before_it() -> None:
    tables, mmu = frames_from_0x40((0, 1, 2, 4))
    out: list[int] = []
    with pytest.raises(PageFault) as info:
        mmu.translate_pages(tables.root, BASE, 5, USER_READ, out)
    assert info.value.vaddr == BASE + 3 * PAGE_SIZE
    assert out == [0x40 * PAGE_SIZE, 0x41 * PAGE_SIZE, 0x42 * PAGE_SIZE]
    assert not tables.pte(BASE + 4 * PAGE_SIZE, 1) & PTE_A  # never reached: not accessed
