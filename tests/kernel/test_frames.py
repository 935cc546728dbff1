"""Frame allocator (merriwig/memory/frames.py): spec §5.1, the §16.1 vectors (rows 1-6), and the
fixes over the seed (ownership errors, contiguous search that sees stacked frames).

The §16.1 vectors pin the seed's exact hand-out order, so they are asserted literally; the
property tests check what must hold for *any* sequence of operations: no frame is ever handed out
twice, counts add up, the bitmap tree stays consistent, and freeing everything restores the
initial state.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from merriwig.errors import FrameError, OutOfFrames
from merriwig.memory.frames import (
    PAGE_SIZE,
    FrameAllocator,
    levels_for,
)

REGION = 0x10_0000  # an arbitrary page-aligned region start (1 MiB)


def fresh(nframes: int = 1000, start: int = REGION) -> FrameAllocator:
    return FrameAllocator(start, nframes)


def check_tree(fa: FrameAllocator) -> None:
    """White-box: every parent bit is 1 exactly when its child word is non-zero, no bit is set
    for a frame beyond the region, and tree + stack + owned + reserved partition the frames."""
    bitmap = fa._bitmap
    assert len(bitmap) == fa.levels
    assert len(bitmap[-1]) == 1
    for level in range(1, fa.levels):
        below, words = bitmap[level - 1], bitmap[level]
        for i, child in enumerate(below):
            assert bool(words[i // 32] >> (i % 32) & 1) == bool(child), (level, i)
        assert all(
            w >> b & 1 == 0 for i, w in enumerate(words) for b in range(32) if i * 32 + b >= len(below)
        )
    in_tree = {i * 32 + b for i, w in enumerate(bitmap[0]) for b in range(32) if w >> b & 1}
    assert max(in_tree, default=0) < fa.nframes
    stacked = {fa.frame_number(p) for p in fa._stack}
    owned = {fa.frame_number(p) for p in fa._owned}
    reserved = set(range(fa.reserved))
    assert len(fa._stack) == len(stacked) <= 32
    assert not (in_tree & stacked) and not (in_tree & owned) and not (stacked & owned)
    assert not (reserved & (in_tree | stacked | owned))
    assert in_tree | stacked | owned | reserved == set(range(fa.nframes))
    assert fa.free_count == len(in_tree) + len(stacked)
    assert fa.used_count == len(owned)


# ---------------------------------------------------------------- §16.1 rows 1-6


@pytest.mark.parametrize(
    "nframes,levels",
    [(1, 1), (32, 1), (33, 2), (1024, 2), (1025, 3), (32768, 3), (32769, 4), (33554432, 5)],
)
def test_levels_row1(nframes: int, levels: int) -> None:
    assert levels_for(nframes) == levels


def test_levels_limits() -> None:
    assert levels_for(32**6) == 6
    with pytest.raises(ValueError):
        levels_for(32**6 + 1)  # the seed supports at most 6 levels
    with pytest.raises(ValueError):
        levels_for(0)


def test_fresh_1000_frames_row2() -> None:
    fa = fresh()
    assert fa.levels == 2
    level0, level1 = fa._bitmap
    assert len(level0) == 32
    assert level0[-1] == 0xFF  # only the low 8 bits of the last word: frames 992..999
    assert level0[0] == 0xFFFF_FFFE  # frame 0 holds the bitmaps
    assert level0[1:31] == [0xFFFF_FFFF] * 30
    assert level1 == [0xFFFF_FFFF]  # word 0 still has free frames, so its parent bit stays
    assert fa.reserved == 1
    assert fa.free_count == 999 and fa.used_count == 0
    check_tree(fa)


def test_allocate_order_row3() -> None:
    fa = fresh()
    got = [fa.frame_number(fa.allocate()) for _ in range(32)]
    assert got == [*range(31, 0, -1), 63]
    assert 0 not in got
    assert fa.used_count == 32 and fa.free_count == 999 - 32
    check_tree(fa)


def test_allocate_free_allocate_row4() -> None:
    fa = fresh()
    first = fa.allocate()
    fa.free(first)
    assert fa.allocate() == first


def test_contiguous_row5() -> None:
    fa = fresh()
    start = fa.allocate_contiguous(3, max_address=fa.end - 1)
    assert start == REGION + 4096
    assert [fa.frame_number(start + i * PAGE_SIZE) for i in range(3)] == [1, 2, 3]
    assert all(fa.is_allocated(start + i * PAGE_SIZE) for i in range(3))
    assert fa.frame_number(fa.allocate()) == 31
    check_tree(fa)


@pytest.mark.parametrize("max_address", [0, REGION - 1, REGION, REGION + 4094])
def test_contiguous_below_region_fails_row6(max_address: int) -> None:
    fa = fresh()
    with pytest.raises(OutOfFrames):
        fa.allocate_contiguous(1, max_address=max_address)
    assert fa.free_count == 999 and fa.used_count == 0


def test_contiguous_max_address_is_inclusive() -> None:
    # Frame 0 is reserved, so the first frame whose last byte fits is frame 1: max = start + 8191.
    fa = fresh()
    with pytest.raises(OutOfFrames):
        fa.allocate_contiguous(1, max_address=REGION + 4095)
    with pytest.raises(OutOfFrames):
        fa.allocate_contiguous(1, max_address=REGION + 8190)
    assert fa.allocate_contiguous(1, max_address=REGION + 8191) == REGION + 4096


# ---------------------------------------------------------------- misuse is an error, not corruption


def test_double_free() -> None:
    fa = fresh()
    p = fa.allocate()
    fa.free(p)
    with pytest.raises(FrameError, match=hex(p)):
        fa.free(p)
    check_tree(fa)


def test_double_free_after_spill_to_tree() -> None:
    # 40 frees: the first 32 fill the stack, the rest go back into the tree; all are free.
    fa = fresh()
    frames = [fa.allocate() for _ in range(40)]
    for p in frames:
        fa.free(p)
    assert len(fa._stack) == 32
    for p in frames:
        with pytest.raises(FrameError, match=hex(p)):
            fa.free(p)
    check_tree(fa)


def test_free_never_allocated() -> None:
    fa = fresh()
    p = REGION + 500 * PAGE_SIZE
    with pytest.raises(FrameError, match=hex(p)):
        fa.free(p)
    with pytest.raises(FrameError, match="bitmap"):
        fa.free(REGION)  # the reserved frame is never handed out
    assert fa.free_count == 999 and fa.used_count == 0
    check_tree(fa)


@pytest.mark.parametrize("paddr", [0, REGION - PAGE_SIZE, REGION + 1000 * PAGE_SIZE, 0xB8000, -PAGE_SIZE])
def test_free_outside_region(paddr: int) -> None:
    fa = fresh()
    with pytest.raises(FrameError, match="outside"):
        fa.free(paddr)


def test_free_misaligned() -> None:
    fa = fresh()
    p = fa.allocate()
    with pytest.raises(FrameError, match=hex(p + 0x123)):
        fa.free(p + 0x123)
    assert fa.is_allocated(p)
    fa.free(p)


def test_free_not_an_address() -> None:
    fa = fresh()
    with pytest.raises(FrameError):
        fa.free([REGION])  # type: ignore[arg-type]


def test_region_must_be_aligned() -> None:
    with pytest.raises(ValueError):
        FrameAllocator(REGION + 1, 10)


# ---------------------------------------------------------------- exhaustion and recovery


def test_out_of_frames_and_recovery() -> None:
    fa = fresh(100)
    got = []
    while True:
        try:
            got.append(fa.allocate())
        except OutOfFrames:
            break
    assert len(got) == len(set(got)) == 100 - fa.reserved
    assert fa.free_count == 0
    with pytest.raises(OutOfFrames):
        fa.allocate()
    with pytest.raises(OutOfFrames):
        fa.allocate_contiguous(1)
    fa.free(got[10])
    assert fa.allocate() == got[10]
    for p in got:
        fa.free(p)
    assert fa.free_count == 100 - fa.reserved and fa.used_count == 0
    check_tree(fa)
    again = {fa.allocate() for _ in range(100 - fa.reserved)}
    assert again == set(got)


def test_tiny_region_all_reserved() -> None:
    fa = fresh(1)  # one frame, and it holds the (4-byte) bitmap
    assert fa.reserved == 1 and fa.free_count == 0
    with pytest.raises(OutOfFrames):
        fa.allocate()
    check_tree(fa)


def test_large_region_reserves_several_frames() -> None:
    # 2**20 frames (4 GiB): 32768 + 1024 + 32 + 1 words = 135300 bytes -> 34 frames of bitmap.
    fa = fresh(1 << 20, start=0)
    assert fa.levels == 4
    assert fa.reserved == 34
    assert fa._bitmap[0][0] == 0 and fa._bitmap[0][1] == 0xFFFF_FFFC
    assert fa._bitmap[1][0] == 0xFFFF_FFFE  # only the fully cleared word 0 is cleared above
    assert fa.frame_number(fa.allocate()) == 63  # chunk 0 is all bitmap; chunk 1 starts at 34


# ---------------------------------------------------------------- contiguous allocation


def test_contiguous_is_consecutive_and_disjoint_from_singles() -> None:
    fa = fresh()
    singles = {fa.allocate() for _ in range(5)}  # frames 31..27
    run = fa.allocate_contiguous(40)
    frames = [run + i * PAGE_SIZE for i in range(40)]
    assert fa.frame_number(run) == 32  # 1..26 is too short; the first run of 40 starts at 32
    assert not singles & set(frames)
    assert all(fa.is_allocated(p) for p in frames)
    more = {fa.allocate() for _ in range(100)}
    assert not more & set(frames) and not more & singles
    check_tree(fa)


def test_contiguous_respects_max_address() -> None:
    fa = fresh()
    limit = REGION + 64 * PAGE_SIZE - 1  # frames 0..63
    a = fa.allocate_contiguous(30, max_address=limit)
    b = fa.allocate_contiguous(30, max_address=limit)
    for run in (a, b):
        assert run + 30 * PAGE_SIZE - 1 <= limit
    with pytest.raises(OutOfFrames):
        fa.allocate_contiguous(4, max_address=limit)  # only frames 61..63 remain below the limit
    c = fa.allocate_contiguous(3, max_address=limit)
    assert fa.frame_number(c) == 61
    check_tree(fa)


def test_contiguous_sees_stacked_frames() -> None:
    # The seed's search cannot see frames parked in the stack; ours flushes the stack and retries.
    fa = fresh(64)
    everything = [fa.allocate() for _ in range(63)]
    for p in everything:
        fa.free(p)
    assert len(fa._stack) == 32
    run = fa.allocate_contiguous(63)
    assert fa.frame_number(run) == 1
    assert fa.free_count == 0 and fa.used_count == 63
    check_tree(fa)


def test_contiguous_bad_count() -> None:
    with pytest.raises(ValueError):
        fresh().allocate_contiguous(0)


def test_free_contiguous_frames_individually() -> None:
    fa = fresh()
    run = fa.allocate_contiguous(50)
    for i in range(50):
        fa.free(run + i * PAGE_SIZE)
    assert fa.used_count == 0 and fa.free_count == 999
    check_tree(fa)


# ---------------------------------------------------------------- properties


@given(nframes=st.integers(1, 40_000))
@settings(max_examples=40, deadline=None)
def test_fresh_allocator_shape(nframes: int) -> None:
    fa = FrameAllocator(0, nframes)
    words = 0
    bits = nframes
    for _ in range(fa.levels):
        bits = -(-bits // 32)
        words += bits
    assert bits == 1  # the top level is a single word
    assert fa.reserved == min(nframes, -(-words * 4 // PAGE_SIZE))
    assert fa.free_count == nframes - fa.reserved
    if nframes <= 2000:
        check_tree(fa)


class AllocatorMachine(RuleBasedStateMachine):
    """Random interleavings of allocate / allocate_contiguous / free (and bad frees) against a
    model: the set of frames the allocator has handed out."""

    @initialize(nframes=st.integers(2, 200), start_page=st.integers(0, 300))
    def setup(self, nframes: int, start_page: int) -> None:
        self.fa = FrameAllocator(start_page * PAGE_SIZE, nframes)
        self.initial_free = self.fa.free_count
        self.owned: list[int] = []

    def usable_free(self) -> set[int]:
        fa = self.fa
        owned = {fa.frame_number(p) for p in self.owned}
        return set(range(fa.reserved, fa.nframes)) - owned

    @rule()
    def allocate(self) -> None:
        if self.fa.free_count == 0:
            with pytest.raises(OutOfFrames):
                self.fa.allocate()
            return
        p = self.fa.allocate()
        assert p not in self.owned, "frame handed out twice"
        assert self.fa.start + self.fa.reserved * PAGE_SIZE <= p < self.fa.end and p % PAGE_SIZE == 0
        self.owned.append(p)

    @rule(count=st.integers(1, 40), cap=st.none() | st.integers(0, 250))
    def allocate_contiguous(self, count: int, cap: int | None) -> None:
        fa = self.fa
        max_address = None if cap is None else fa.start + cap * PAGE_SIZE + PAGE_SIZE - 1
        limit = fa.nframes if cap is None else min(fa.nframes, cap + 1)
        free = self.usable_free()
        stacked = {fa.frame_number(p) for p in fa._stack}

        def first_fit(candidates: set[int]) -> int | None:
            run = 0
            for f in range(limit):
                run = run + 1 if f in candidates else 0
                if run == count:
                    return f - count + 1
            return None

        # The seed's search over the tree only (stacked frames invisible) decides when it can;
        # only if it fails does the stack go back into the tree for a second, full search.
        expected = first_fit(free - stacked)
        if expected is None:
            expected = first_fit(free)
        if expected is None:
            with pytest.raises(OutOfFrames):
                fa.allocate_contiguous(count, max_address)
            return
        p = fa.allocate_contiguous(count, max_address)
        assert fa.frame_number(p) == expected
        new = [p + i * PAGE_SIZE for i in range(count)]
        assert not set(new) & set(self.owned), "frame handed out twice"
        if max_address is not None:
            assert new[-1] + PAGE_SIZE - 1 <= max_address
        self.owned.extend(new)

    @precondition(lambda self: self.owned)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.owned) - 1))
        p = self.owned.pop(i)
        self.fa.free(p)
        assert not self.fa.is_allocated(p)

    @rule(frame=st.integers(-2, 260), offset=st.sampled_from([0, 0, 1, 2048]))
    def bad_free(self, frame: int, offset: int) -> None:
        p = self.fa.start + frame * PAGE_SIZE + offset
        if offset == 0 and p in self.owned:
            return
        before = (self.fa.free_count, self.fa.used_count)
        with pytest.raises(FrameError):
            self.fa.free(p)
        assert (self.fa.free_count, self.fa.used_count) == before

    @invariant()
    def counts_consistent(self) -> None:
        fa = self.fa
        assert fa.used_count == len(self.owned) == len(set(self.owned))
        assert fa.free_count + fa.used_count == self.initial_free
        check_tree(fa)

    def teardown(self) -> None:
        if not hasattr(self, "fa"):
            return
        for p in self.owned:
            self.fa.free(p)
        assert self.fa.free_count == self.initial_free and self.fa.used_count == 0
        check_tree(self.fa)


AllocatorMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAllocatorMachine = AllocatorMachine.TestCase
