"""The MMU: 4-level walks over hand-built tables, fault error codes, A/D bits, huge pages, TLB."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from machine.memory import PAGE_SIZE, BusError, PhysicalMemory
from machine.mmu import (
    KERNEL_READ,
    KERNEL_WRITE,
    MAXPHYADDR,
    MMU,
    PF_I,
    PF_P,
    PF_RSVD,
    PF_U,
    PF_W,
    PTE_A,
    PTE_ADDR_MASK,
    PTE_AVL0,
    PTE_D,
    PTE_G,
    PTE_NX,
    PTE_P,
    PTE_PS,
    PTE_RW,
    PTE_US,
    USER_EXEC,
    USER_READ,
    USER_WRITE,
    GeneralProtection,
    PageFault,
    is_canonical,
    make_vaddr,
    split,
)

MIB = 2**20
GIB = 2**30
URW = PTE_P | PTE_RW | PTE_US


class Tables:
    """Tiny page-table builder, as a kernel would write them: tables are frames from a bump
    allocator starting at ``first``, entries are u64 writes into them."""

    def __init__(self, mem: PhysicalMemory, first: int = 0x10_0000) -> None:
        self.mem = mem
        self.next = first
        self.root = self.alloc()

    def alloc(self) -> int:
        frame = self.next
        self.next += PAGE_SIZE
        self.mem.zero(frame, PAGE_SIZE)
        return frame

    def entry_addr(self, vaddr: int, level: int) -> int:
        """Physical address of the entry at ``level`` for ``vaddr`` (tables must exist above it)."""
        table = self.root
        for lvl, index in zip((4, 3, 2, 1), split(vaddr)[:4], strict=True):
            addr = table + index * 8
            if lvl == level:
                return addr
            table = self.mem.read_u64(addr) & PTE_ADDR_MASK
        raise AssertionError(level)

    def map(self, vaddr: int, paddr: int, flags: int = URW, level: int = 1, table_flags: int = URW) -> int:
        """Map one page (level 1: 4 KiB, 2: 2 MiB, 3: 1 GiB); returns the leaf entry's address."""
        table = self.root
        for lvl, index in zip((4, 3, 2, 1), split(vaddr)[:4], strict=True):
            addr = table + index * 8
            if lvl == level:
                self.mem.write_u64(addr, paddr | flags | (PTE_PS if level > 1 else 0))
                return addr
            pte = self.mem.read_u64(addr)
            if not pte & PTE_P:
                pte = self.alloc() | table_flags
                self.mem.write_u64(addr, pte)
            table = pte & PTE_ADDR_MASK
        raise AssertionError(level)

    def set_bits(self, vaddr: int, level: int, set_: int = 0, clear: int = 0) -> None:
        addr = self.entry_addr(vaddr, level)
        self.mem.write_u64(addr, (self.mem.read_u64(addr) | set_) & ~clear)

    def pte(self, vaddr: int, level: int) -> int:
        return self.mem.read_u64(self.entry_addr(vaddr, level))


@pytest.fixture
def mem() -> PhysicalMemory:
    return PhysicalMemory(4 * MIB)


@pytest.fixture
def pt(mem: PhysicalMemory) -> Tables:
    return Tables(mem)


@pytest.fixture
def mmu(mem: PhysicalMemory) -> MMU:
    return MMU(mem)


# The seed's user stack area (5,0,0,*) and a page of it, and a data frame.
V = make_vaddr(5, 0, 3, 1)  # 0x280_0060_1000, in the user heap
FRAME = 0x5000


def fault(mmu: MMU, root: int, vaddr: int, access: int) -> PageFault:
    with pytest.raises(PageFault) as info:
        mmu.translate(root, vaddr, access)
    assert info.value.vaddr == vaddr
    return info.value


# -- address helpers -----------------------------------------------------------------------------


def test_split_and_make_vaddr() -> None:
    assert split(0x280_0060_1234) == (5, 0, 3, 1, 0x234)
    assert make_vaddr(5, 0, 3, 1, 0x234) == 0x280_0060_1234
    assert make_vaddr(0, 0, 39, 511) == 0x4FF_F000  # kernel-info page, spec §5.4
    assert make_vaddr(256, 0, 0, 0) == 0xFFFF_8000_0000_0000  # bit 47 sign-extended
    assert make_vaddr(511, 511, 511, 511, 0xFFF) == 2**64 - 1
    assert split(0xFFFF_8000_0000_0000) == (256, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        make_vaddr(512, 0, 0, 0)
    with pytest.raises(ValueError):
        make_vaddr(0, 0, 0, 0, 4096)


def test_is_canonical() -> None:
    assert is_canonical(0)
    assert is_canonical(0x7FFF_FFFF_FFFF)
    assert not is_canonical(0x8000_0000_0000)
    assert not is_canonical(0xFFFF_7FFF_FFFF_FFFF)
    assert is_canonical(0xFFFF_8000_0000_0000)
    assert is_canonical(2**64 - 1)
    assert not is_canonical(2**64)
    assert not is_canonical(-1)


# -- successful walks ------------------------------------------------------------------------------


def test_translate_4k_page(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    assert mmu.translate(pt.root, V + 0x123) == FRAME + 0x123
    assert mmu.translate(pt.root, V + 0xFFF, USER_WRITE) == FRAME + 0xFFF
    assert mmu.translate(pt.root, V, USER_EXEC) == FRAME
    assert mmu.translate(pt.root, V, KERNEL_READ) == FRAME
    assert mmu.translate(pt.root, V, KERNEL_WRITE) == FRAME


def test_walk_reports_every_level_without_side_effects(pt: Tables, mmu: MMU, mem: PhysicalMemory) -> None:
    pt.map(V, FRAME)
    entries = mmu.walk(pt.root, V)
    assert [level for level, _, _ in entries] == [4, 3, 2, 1]
    assert entries[0][1] == pt.root + 5 * 8
    for level, addr, value in entries:
        assert addr == pt.entry_addr(V, level)
        assert value == mem.read_u64(addr)
        assert not value & PTE_A  # walk() sets nothing
    assert entries[3][2] & PTE_ADDR_MASK == FRAME
    assert mmu.walks == 0
    assert mmu.tlb_size(pt.root) == 0


def test_walk_stops_at_non_present_and_huge_leaf(pt: Tables, mmu: MMU) -> None:
    assert [lv for lv, _, _ in mmu.walk(pt.root, V)] == [4]
    pt.map(make_vaddr(5, 0, 0, 0), 0x20_0000, level=2)
    assert [lv for lv, _, _ in mmu.walk(pt.root, V)] == [4, 3, 2]
    assert [lv for lv, _, _ in mmu.walk(pt.root, make_vaddr(5, 0, 0, 7))] == [4, 3, 2]
    with pytest.raises(GeneralProtection):
        mmu.walk(pt.root, 0x8000_0000_0000)


def test_pat_bit_in_pt_entry_is_not_page_size(pt: Tables, mmu: MMU) -> None:
    # Bit 7 of a level-1 entry is PAT; the page stays a 4 KiB page.
    pt.map(V, FRAME, flags=URW | PTE_PS)
    assert mmu.translate(pt.root, V + 8) == FRAME + 8


def test_ignored_bits_do_not_matter(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME, flags=URW | PTE_AVL0 | PTE_G | (0x7FF << 52))  # AVL and bits 52..62
    assert mmu.translate(pt.root, V, USER_WRITE) == FRAME


def test_2mib_page(pt: Tables, mmu: MMU) -> None:
    base = make_vaddr(5, 0, 4, 0)
    pt.map(base, 0x40_0000, level=2)
    assert mmu.translate(pt.root, base) == 0x40_0000
    assert mmu.translate(pt.root, base + 0x12_3456, USER_WRITE) == 0x52_3456
    assert mmu.translate(pt.root, base + 0x1F_FFFF) == 0x5F_FFFF
    assert pt.pte(base, 2) & PTE_D
    with pytest.raises(PageFault):  # next 2 MiB is not mapped
        mmu.translate(pt.root, base + 0x20_0000)


def test_1gib_page(pt: Tables, mmu: MMU) -> None:
    base = make_vaddr(5, 2, 0, 0)  # chunk slot 2
    pt.map(base, GIB, level=3)
    assert mmu.translate(pt.root, base + 0x3FFF_FFFF, USER_READ) == 2 * GIB - 1
    assert mmu.translate(pt.root, base + 0x1234_5678, USER_WRITE) == GIB + 0x1234_5678
    leaf = pt.pte(base, 3)
    assert leaf & PTE_A and leaf & PTE_D


def test_huge_page_pat_bit_12_allowed(pt: Tables, mmu: MMU) -> None:
    base = make_vaddr(5, 0, 4, 0)
    pt.map(base, 0x40_0000 | (1 << 12), level=2)  # bit 12 = PAT in a huge leaf, not address
    assert mmu.translate(pt.root, base + 0x5000) == 0x40_5000


# -- error codes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("level", [4, 3, 2, 1])
@pytest.mark.parametrize("access", [USER_READ, USER_WRITE, USER_EXEC, KERNEL_READ, KERNEL_WRITE])
def test_not_present_at_each_level(pt: Tables, mmu: MMU, level: int, access: int) -> None:
    pt.map(V, FRAME)
    pt.set_bits(V, level, clear=PTE_P)
    assert fault(mmu, pt.root, V + 0x10, access).error_code == access  # P clear


@pytest.mark.parametrize("level", [4, 3, 2, 1])
def test_write_to_read_only_at_any_level(pt: Tables, mmu: MMU, level: int) -> None:
    pt.map(V, FRAME)
    pt.set_bits(V, level, clear=PTE_RW)
    assert mmu.translate(pt.root, V, USER_READ) == FRAME
    assert fault(mmu, pt.root, V, USER_WRITE).error_code == PF_P | PF_W | PF_U == 7
    # CR0.WP=1: the kernel cannot write a read-only page either.
    assert fault(mmu, pt.root, V, KERNEL_WRITE).error_code == PF_P | PF_W


@pytest.mark.parametrize("level", [4, 3, 2, 1])
def test_user_access_to_supervisor_page(pt: Tables, mmu: MMU, level: int) -> None:
    pt.map(V, FRAME)
    pt.set_bits(V, level, clear=PTE_US)
    assert fault(mmu, pt.root, V, USER_READ).error_code == PF_P | PF_U
    assert fault(mmu, pt.root, V, USER_WRITE).error_code == PF_P | PF_W | PF_U
    assert mmu.translate(pt.root, V, KERNEL_READ) == FRAME
    assert mmu.translate(pt.root, V, KERNEL_WRITE) == FRAME


def test_kernel_may_access_user_pages(pt: Tables, mmu: MMU) -> None:  # no SMAP/SMEP
    pt.map(V, FRAME)
    assert mmu.translate(pt.root, V, KERNEL_WRITE) == FRAME
    assert mmu.translate(pt.root, V, PF_I) == FRAME


@pytest.mark.parametrize("level", [4, 3, 2, 1])
def test_nx_fetch(pt: Tables, mmu: MMU, level: int) -> None:
    pt.map(V, FRAME)
    pt.set_bits(V, level, set_=PTE_NX)
    assert mmu.translate(pt.root, V, USER_READ) == FRAME
    assert mmu.translate(pt.root, V, USER_WRITE) == FRAME
    assert fault(mmu, pt.root, V, USER_EXEC).error_code == PF_P | PF_I | PF_U
    assert fault(mmu, pt.root, V, PF_I).error_code == PF_P | PF_I


@pytest.mark.parametrize("level", [4, 3, 2, 1])
@pytest.mark.parametrize("bit", [MAXPHYADDR, 51])
def test_reserved_physical_address_bits(pt: Tables, mmu: MMU, level: int, bit: int) -> None:
    pt.map(V, FRAME)
    pt.set_bits(V, level, set_=1 << bit)
    assert fault(mmu, pt.root, V, USER_READ).error_code == PF_P | PF_RSVD | PF_U
    assert fault(mmu, pt.root, V, KERNEL_WRITE).error_code == PF_P | PF_RSVD | PF_W


def test_bit_below_maxphyaddr_is_an_address(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME | (1 << (MAXPHYADDR - 1)))
    assert mmu.translate(pt.root, V) == FRAME | (1 << (MAXPHYADDR - 1))


def test_ps_in_pml4_is_reserved(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    pt.set_bits(V, 4, set_=PTE_PS)
    assert fault(mmu, pt.root, V, USER_WRITE).error_code == PF_P | PF_RSVD | PF_W | PF_U


@pytest.mark.parametrize(("level", "bit"), [(2, 13), (2, 20), (3, 13), (3, 29)])
def test_reserved_low_bits_of_huge_leaf(pt: Tables, mmu: MMU, level: int, bit: int) -> None:
    base = make_vaddr(5, 1, 0, 0)
    pt.map(base, 0, level=level)
    pt.set_bits(base, level, set_=1 << bit)
    assert fault(mmu, pt.root, base, USER_READ).error_code == PF_P | PF_RSVD | PF_U


def test_reserved_takes_priority_over_lower_not_present(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    pt.set_bits(V, 1, clear=PTE_P)
    pt.set_bits(V, 3, set_=1 << 50)
    assert fault(mmu, pt.root, V, USER_READ).error_code == PF_P | PF_RSVD | PF_U


def test_not_present_wins_over_permissions(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME, flags=PTE_US)  # U set but not present: still a not-present fault
    pt.set_bits(V, 3, clear=PTE_RW)
    assert fault(mmu, pt.root, V, USER_WRITE).error_code == PF_W | PF_U


def test_page_fault_messages() -> None:
    assert str(PageFault(0x280_0060_1000, PF_W | PF_U)) == (
        "page fault at 0x0000028000601000: not-present, write, user"
    )
    assert str(PageFault(0x1000, PF_P | PF_U)) == "page fault at 0x0000000000001000: protection, read, user"
    assert str(PageFault(0xFFFF_8000_0000_0000, PF_P | PF_I)) == (
        "page fault at 0xffff800000000000: protection, instruction-fetch, kernel"
    )
    assert str(PageFault(0x4FF_F000, PF_P | PF_RSVD | PF_W)) == (
        "page fault at 0x0000000004fff000: protection, reserved-bit, write, kernel"
    )
    assert str(PageFault(0, 0)) == "page fault at 0x0000000000000000: not-present, read, kernel"


def test_page_fault_from_translate_message(pt: Tables, mmu: MMU) -> None:
    err = fault(mmu, pt.root, make_vaddr(5, 0, 3, 1), USER_WRITE)
    assert str(err) == "page fault at 0x0000028000601000: not-present, write, user"


def test_non_canonical_is_general_protection(pt: Tables, mmu: MMU) -> None:
    for vaddr in (0x8000_0000_0000, 0xFFFF_7FFF_FFFF_F000, 2**64, -4096):
        with pytest.raises(GeneralProtection) as info:
            mmu.translate(pt.root, vaddr, USER_READ)
        assert info.value.vaddr == vaddr
    err = GeneralProtection(0x8000_0000_0000)
    assert str(err) == "general protection fault: non-canonical address 0x0000800000000000"
    assert not isinstance(err, PageFault)


def test_bad_access_kind_and_root(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    for access in (PF_P, PF_RSVD, PF_W | PF_I, 32, -1):
        with pytest.raises(ValueError):
            mmu.translate(pt.root, V, access)
    with pytest.raises(ValueError):
        mmu.translate(pt.root + 8, V)


# -- accessed / dirty ------------------------------------------------------------------------------


def test_read_sets_accessed_on_every_level_but_not_dirty(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    mmu.translate(pt.root, V, USER_READ)
    for level in (4, 3, 2, 1):
        pte = pt.pte(V, level)
        assert pte & PTE_A, level
        assert not pte & PTE_D, level


def test_write_sets_dirty_on_leaf_only(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    mmu.translate(pt.root, V, USER_WRITE)
    assert pt.pte(V, 1) & (PTE_A | PTE_D) == PTE_A | PTE_D
    for level in (4, 3, 2):
        assert pt.pte(V, level) & (PTE_A | PTE_D) == PTE_A, level


def test_first_write_after_read_rewalks_and_sets_dirty(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    mmu.translate(pt.root, V, USER_READ)
    assert not pt.pte(V, 1) & PTE_D
    walks = mmu.walks
    mmu.translate(pt.root, V + 4, USER_WRITE)  # read entry must not satisfy the write
    assert mmu.walks == walks + 1
    assert pt.pte(V, 1) & PTE_D
    mmu.translate(pt.root, V + 8, USER_WRITE)
    assert mmu.walks == walks + 1


def test_entries_written_only_when_a_bit_changes(pt: Tables, mmu: MMU, mem: PhysicalMemory) -> None:
    pt.map(V, FRAME)
    writes: list[int] = []
    mem.add_write_watch(pt.root, pt.next, lambda: writes.append(1))  # every table frame
    mmu.translate(pt.root, V, USER_READ)
    assert len(writes) == 4  # A set on four entries
    mmu.flush(pt.root)
    mmu.translate(pt.root, V, USER_READ)
    assert len(writes) == 4  # all A already set: nothing written
    mmu.translate(pt.root, V, USER_WRITE)
    assert len(writes) == 5  # only the leaf, for D
    mmu.flush(pt.root)
    mmu.translate(pt.root, V, USER_WRITE)
    assert len(writes) == 5


def test_faulting_walk_sets_nothing(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME, flags=PTE_P | PTE_US)  # read-only
    with pytest.raises(PageFault):
        mmu.translate(pt.root, V, USER_WRITE)
    for level in (4, 3, 2, 1):
        assert not pt.pte(V, level) & (PTE_A | PTE_D)


# -- TLB ---------------------------------------------------------------------------------------------


def test_tlb_hit_needs_no_walk(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    assert mmu.walks == 0
    first = mmu.translate(pt.root, V + 0x10, USER_READ)
    assert mmu.walks == 1
    for off in (0x10, 0, 0xFFF):
        assert mmu.translate(pt.root, V + off, USER_READ) == FRAME + off
    assert first == FRAME + 0x10
    assert mmu.walks == 1
    mmu.translate(pt.root, V, KERNEL_READ)  # another access kind is another entry
    assert mmu.walks == 2
    assert mmu.tlb_size(pt.root) == 2


def test_stale_entry_until_invlpg(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    assert mmu.translate(pt.root, V) == FRAME
    pt.map(V, 0x9000)  # remap without invalidation: the TLB still has the old frame
    assert mmu.translate(pt.root, V) == FRAME
    mmu.invlpg(pt.root, V + 0x123)  # any address in the page
    assert mmu.translate(pt.root, V) == 0x9000


def test_stale_entry_until_flush(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    mmu.translate(pt.root, V, USER_WRITE)
    pt.set_bits(V, 1, clear=PTE_P)  # unmapped, but still cached
    assert mmu.translate(pt.root, V, USER_WRITE) == FRAME
    mmu.flush(pt.root)
    assert fault(mmu, pt.root, V, USER_WRITE).error_code == PF_W | PF_U


def test_invlpg_drops_every_access_variant_and_only_that_page(pt: Tables, mmu: MMU) -> None:
    other = V + PAGE_SIZE
    pt.map(V, FRAME)
    pt.map(other, 0x6000)
    kinds = (KERNEL_READ, KERNEL_WRITE, USER_READ, USER_WRITE, USER_EXEC, PF_I)
    for access in kinds:
        mmu.translate(pt.root, V, access)
        mmu.translate(pt.root, other, access)
    assert mmu.tlb_size(pt.root) == 12
    pt.map(V, 0x9000)
    pt.map(other, 0xA000)
    mmu.invlpg(pt.root, V)
    assert mmu.tlb_size(pt.root) == 6
    for access in kinds:
        assert mmu.translate(pt.root, V, access) == 0x9000
        assert mmu.translate(pt.root, other, access) == 0x6000  # still stale: not invalidated


def test_fault_drops_cached_entries_of_that_page(pt: Tables, mmu: MMU) -> None:
    # SDM §4.10.4.1: a #PF invalidates the TLB entries for the faulting address.
    pt.map(V, FRAME)
    mmu.translate(pt.root, V, USER_READ)
    pt.set_bits(V, 1, clear=PTE_P)
    assert mmu.translate(pt.root, V, USER_READ) == FRAME  # stale
    fault(mmu, pt.root, V, USER_WRITE)
    fault(mmu, pt.root, V, USER_READ)  # no longer stale


def test_huge_page_cached_per_4k_page(pt: Tables, mmu: MMU) -> None:
    base = make_vaddr(5, 0, 4, 0)
    pt.map(base, 0x40_0000, level=2)
    mmu.translate(pt.root, base)
    mmu.translate(pt.root, base + 0x10)
    assert mmu.walks == 1
    assert mmu.translate(pt.root, base + 0x1000) == 0x40_1000
    assert mmu.walks == 2


def test_tlbs_are_per_address_space(mem: PhysicalMemory, mmu: MMU) -> None:
    a = Tables(mem, first=0x10_0000)
    b = Tables(mem, first=0x20_0000)
    a.map(V, 0x5000)
    b.map(V, 0x6000)
    assert mmu.translate(a.root, V) == 0x5000
    assert mmu.translate(b.root, V) == 0x6000
    assert mmu.walks == 2
    a.map(V, 0x7000)
    b.map(V, 0x8000)
    mmu.flush(a.root)
    assert mmu.translate(a.root, V) == 0x7000
    assert mmu.translate(b.root, V) == 0x6000  # b's TLB untouched
    mmu.invlpg(a.root, V)
    assert mmu.translate(b.root, V) == 0x6000
    mmu.forget(b.root)
    assert mmu.tlb_size(b.root) == 0
    assert mmu.translate(b.root, V) == 0x8000
    mmu.forget(12345 * PAGE_SIZE)  # unknown roots are fine
    mmu.flush(12345 * PAGE_SIZE)
    mmu.invlpg(12345 * PAGE_SIZE, V)


# -- property: translate agrees with a random mapping ----------------------------------------------

INDEX = st.tuples(
    st.sampled_from([0, 1, 5, 256, 511]),
    st.sampled_from([0, 1, 511]),
    st.sampled_from([0, 3, 511]),
    st.integers(0, 511),
)
FLAGS = st.tuples(st.booleans(), st.booleans(), st.booleans())  # writable, user, no-execute


@settings(max_examples=50, deadline=None)
@given(
    mapping=st.dictionaries(INDEX, st.tuples(st.integers(0, 255), FLAGS), max_size=40),
    probes=st.lists(INDEX, max_size=20),
    offset=st.integers(0, PAGE_SIZE - 1),
)
def test_translate_agrees_with_random_map(
    mapping: dict[tuple[int, int, int, int], tuple[int, tuple[bool, bool, bool]]],
    probes: list[tuple[int, int, int, int]],
    offset: int,
) -> None:
    mem = PhysicalMemory(4 * MIB)
    tables = Tables(mem, first=MIB)
    mmu = MMU(mem)
    for index, (frame, (writable, user, nx)) in mapping.items():
        flags = PTE_P | (PTE_RW if writable else 0) | (PTE_US if user else 0) | (PTE_NX if nx else 0)
        tables.map(make_vaddr(*index), frame * PAGE_SIZE, flags)

    for _ in range(2):  # second round is served by the TLB and must agree too
        for index, (frame, (writable, user, nx)) in mapping.items():
            vaddr = make_vaddr(*index, offset)
            paddr = frame * PAGE_SIZE + offset
            assert mmu.translate(tables.root, vaddr, KERNEL_READ) == paddr
            for access, allowed in (
                (USER_READ, user),
                (USER_WRITE, user and writable),
                (KERNEL_WRITE, writable),
                (USER_EXEC, user and not nx),
            ):
                if allowed:
                    assert mmu.translate(tables.root, vaddr, access) == paddr
                else:
                    err = fault(mmu, tables.root, vaddr, access)
                    assert err.error_code == access | PF_P
    for index in probes:
        if index not in mapping:
            vaddr = make_vaddr(*index, offset)
            assert fault(mmu, tables.root, vaddr, USER_READ).error_code == USER_READ
            assert mmu.walk(tables.root, vaddr)[-1][2] & PTE_P == 0


def test_table_pointer_outside_ram_is_bus_error(pt: Tables, mmu: MMU) -> None:
    pt.map(V, FRAME)
    pt.set_bits(V, 3, set_=64 * MIB)  # PDPT entry now points past the end of 4 MiB RAM
    with pytest.raises(BusError):
        mmu.translate(pt.root, V)


def test_one_walk_serves_a_load_and_a_store_unless_the_store_must_set_d(pt: Tables, mmu: MMU) -> None:
    """One walk for a store then a load of the page, as a CPU's one TLB entry serves both; a
    load's walk caches the store only when D is already 1 and writes are allowed (SDM 4.8)."""
    other = V + PAGE_SIZE
    pt.map(V, FRAME)
    pt.map(other, 0x6000)
    mmu.translate(pt.root, V, USER_WRITE)
    assert mmu.translate(pt.root, V + 8, USER_READ) == FRAME + 8
    assert mmu.walks == 1
    mmu.translate(pt.root, other, USER_READ)
    assert not mmu.walk(pt.root, other)[-1][2] & PTE_D
    mmu.translate(pt.root, other, USER_WRITE)
    assert mmu.walks == 3 and mmu.walk(pt.root, other)[-1][2] & PTE_D
    mmu.flush(pt.root)  # D is 1 now: a load's walk also serves the store, which sets nothing
    mmu.translate(pt.root, other, USER_READ)
    assert mmu.translate(pt.root, other, USER_WRITE) == 0x6000 and mmu.walks == 4
    pt.map(V + 2 * PAGE_SIZE, 0x7000, PTE_P | PTE_US | PTE_D)  # dirty but read-only: no store
    mmu.translate(pt.root, V + 2 * PAGE_SIZE, USER_READ)
    assert fault(mmu, pt.root, V + 2 * PAGE_SIZE, USER_WRITE).error_code == PF_P | PF_W | PF_U
    out: list[int] = []
    mmu.flush(pt.root)
    mmu.translate_pages(pt.root, V, 2, USER_WRITE, out)  # the rest of the range too
    walks = mmu.walks
    assert [mmu.translate(pt.root, v, USER_READ) for v in (V, other)] == [FRAME, 0x6000]
    assert mmu.walks == walks
    mmu.flush(pt.root)
    out.clear()
    mmu.translate_pages(pt.root, V, 2, USER_READ, out)  # loads of two dirty pages: stores too
    walks = mmu.walks
    assert [mmu.translate(pt.root, v, USER_WRITE) for v in (V, other)] == [FRAME, 0x6000]
    assert mmu.walks == walks


def test_a_global_page_survives_a_flush_but_not_invlpg(pt: Tables, mmu: MMU) -> None:
    other = V + PAGE_SIZE
    pt.map(V, FRAME, URW | PTE_G)
    pt.map(other, 0x6000)
    for v in (V, other):
        mmu.translate(pt.root, v, USER_READ)
    pt.map(V, 0x9000, URW | PTE_G)  # remapped without invalidation
    pt.map(other, 0xA000)
    mmu.flush(pt.root)  # a CR3 reload keeps the global entry, stale as on a CPU with PGE
    assert mmu.translate(pt.root, V, USER_READ) == FRAME
    assert mmu.translate(pt.root, other, USER_READ) == 0xA000
    mmu.invlpg(pt.root, V)
    assert mmu.translate(pt.root, V, USER_READ) == 0x9000
    mmu.invlpg(pt.root, V)
    mmu.flush(pt.root)  # dropped by invlpg, walked again, global again
    assert mmu.translate(pt.root, V, USER_READ) == 0x9000 and mmu.tlb_size(pt.root) == 1
    mmu.forget(pt.root)
    assert mmu.tlb_size(pt.root) == 0


def test_invlpg_range_drops_those_pages_every_access_kind_and_no_other(pt: Tables, mmu: MMU) -> None:
    pages = [V + i * PAGE_SIZE for i in range(4)]
    for i, v in enumerate(pages):
        pt.map(v, FRAME + i * PAGE_SIZE, URW | (PTE_G if i == 1 else 0))
        for access in (USER_READ, USER_WRITE, KERNEL_READ, USER_EXEC):
            mmu.translate(pt.root, v, access)
    before = mmu.tlb_size(pt.root)
    mmu.invlpg_range(pt.root, pages[1] + 0x80, 2)  # pages 1 and 2, the global one included
    assert mmu.tlb_size(pt.root) == before // 2
    mmu.flush(pt.root)
    assert mmu.tlb_size(pt.root) == 0  # the global page's entries went with invlpg_range
    walks = mmu.walks
    mmu.translate(pt.root, pages[0], USER_READ)
    assert mmu.walks == walks + 1


def test_invlpg_range_drops_the_stores_a_prefetch_cached_after_a_clean_first_page(pt: Tables, mmu: MMU) -> None:
    """The walk of a clean page caches only its load; the pages after it, dirty, get their
    stores cached too by the prefetch. invlpg must drop those stores as well: a store after
    it walks again (and would see a page that became read-only meanwhile)."""
    pages = [V + i * PAGE_SIZE for i in range(3)]
    for i, v in enumerate(pages):
        pt.map(v, FRAME + i * PAGE_SIZE, URW | (PTE_D if i else 0))
    out: list[int] = []
    mmu.translate_pages(pt.root, V, 3, USER_READ, out)
    walks = mmu.walks
    mmu.translate(pt.root, pages[1], USER_WRITE)  # cached by the prefetch: no walk
    assert mmu.walks == walks
    mmu.invlpg_range(pt.root, pages[1], 2)
    pt.set_bits(pages[1], 1, clear=PTE_RW)
    with pytest.raises(PageFault):
        mmu.translate(pt.root, pages[1], USER_WRITE)
    assert mmu.walks == walks + 1
