"""Physical frame allocator: the seed's multi-level bitmap tree with a 32-entry frame stack.

Why this shape (spec §5.1): the seed keeps one bit per 4 KiB frame (1 = free) in 32-bit words
("chunks"); every level above holds one bit per word of the level below (1 = "that word still
has a free frame"), so finding a free frame costs one word read per level, never a scan. A small
LIFO *frame stack* in front of the tree makes the common allocate/free pair O(1) and hands a
just-freed frame straight back (cache-warm, and the behaviour the seed's unit tests pin down).

Bit-exact with the seed, so the §16.1 vectors hold:

* ``levels = levels_for(nframes)``: smallest L >= 1 with 32**L >= nframes (at most 6).
* The bitmaps are *accounted* at the start of the managed region, as in the seed: the first
  ``reserved = ceil(bitmap_bytes / 4096)`` frames are marked used at start-up and never handed
  out. The words themselves live in Python lists (one list per level) rather than in emulated
  RAM, because the allocator runs on every page fault and malloc and list indexing is far
  cheaper than round-tripping through ``PhysicalMemory``; nothing else reads those frames.
* An empty stack is refilled with *all* free frames of the lowest free chunk, pushed in
  ascending order, so frames come out highest first (31, 30, ..., 1, then 63 on a fresh region).
* A free goes to the stack while it holds fewer than 32 frames, otherwise back into the tree.
* ``allocate_contiguous`` is first-fit over the level-0 bitmap, frames 0 .. the last whole
  frame at or below ``max_address``.

Where we build what the seed meant rather than what it did (DESIGN.md, **[quirk]** fixes):

* Ownership is tracked (a set of handed-out addresses, O(1)), so a double free, a free of a
  frame never handed out (including the reserved bitmap frames), of an address outside the
  region or of a misaligned address raises :class:`FrameError` instead of silently corrupting
  the tree. Out of memory raises :class:`OutOfFrames` instead of returning None.
* The seed's contiguous search cannot see frames parked in the stack, so it can fail while
  enough memory is free. Here a failed search flushes the stack back into the tree and retries
  (the first attempt is unchanged, so seed-visible results are the same whenever the seed
  succeeded).

Zeroing frames is the caller's job (page tables, demand paging): this module only does
bookkeeping and never touches RAM.
"""

from __future__ import annotations

from collections.abc import Callable

from merriwig.errors import FrameError, OutOfFrames

PAGE_SIZE = 4096
PAGE_SHIFT = 12
WORD_BITS = 32
FULL_WORD = 0xFFFF_FFFF
STACK_CAPACITY = 32
MAX_LEVELS = 6


def levels_for(nframes: int) -> int:
    """Number of bitmap levels for ``nframes`` frames: smallest L >= 1 with 32**L >= nframes.

    The top level then always fits in a single 32-bit word, which is what lets allocation start
    its walk at word 0 of the top level."""
    if nframes < 1:
        raise ValueError(f"frame count must be positive, not {nframes}")
    levels = 1
    while WORD_BITS**levels < nframes:
        levels += 1
    if levels > MAX_LEVELS:
        raise ValueError(f"{nframes} frames need {levels} bitmap levels; at most {MAX_LEVELS}")
    return levels


def _lowest_bit(word: int) -> int:
    """Position of the lowest set bit of a non-zero word (the seed's ``trailing_zeros``)."""
    return (word & -word).bit_length() - 1


class FrameAllocator:
    """Hands out 4 KiB physical frames of one region ``[start, start + nframes * 4096)``.

    ``allocate() -> int`` and ``free(paddr)`` are per-instance closures (see
    :meth:`_install_fast_path`); the rest are ordinary methods and properties. Addresses in and
    out are physical byte addresses (ints); :meth:`frame_number` converts to the seed's frame
    numbering (0 at the region start) for tests and diagnostics."""

    __slots__ = (
        "start",
        "nframes",
        "levels",
        "reserved",
        "end",
        "_bitmap",
        "_stack",
        "_owned",
        "_tree_free",
        "allocate",
        "free",
    )

    start: int
    nframes: int
    levels: int
    reserved: int
    end: int
    allocate: Callable[[], int]
    free: Callable[[int], None]

    def __init__(self, start: int, nframes: int):
        if start % PAGE_SIZE or start < 0:
            raise ValueError(f"region start {start:#x} is not page aligned")
        self.start = start
        self.nframes = nframes
        self.levels = levels_for(nframes)
        self.end = start + nframes * PAGE_SIZE

        # Level k has ceil(bits_k / 32) words; bits_{k+1} = words at level k. Every bit of an
        # existing frame/chunk starts at 1, the unused high bits of a partial last word at 0.
        bitmap: list[list[int]] = []
        bits = nframes
        for _ in range(self.levels):
            nwords = -(-bits // WORD_BITS)
            words = [FULL_WORD] * nwords
            tail = bits % WORD_BITS
            if tail:
                words[-1] = (1 << tail) - 1
            bitmap.append(words)
            bits = nwords
        self._bitmap = bitmap

        # The seed stores the bitmaps in the region's first frames; account for them the same way.
        bitmap_bytes = 4 * sum(len(words) for words in bitmap)
        self.reserved = -(-bitmap_bytes // PAGE_SIZE)
        self._reserve_low_frames(self.reserved)
        self._tree_free = nframes - self.reserved

        self._stack: list[int] = []  # physical addresses of free frames; top = last element
        self._owned: set[int] = set()  # physical addresses handed out and not yet freed
        self._install_fast_path()

    def _reserve_low_frames(self, count: int) -> None:
        """Mark frames 0..count-1 used, clearing parent bits only for *fully* cleared words.

        Same as the seed: a partially cleared last word leaves its parent bit set (it still has
        free frames), so the upward pass stops at the first level where no full word cleared."""
        level0 = self._bitmap[0]
        full, rest = divmod(count, WORD_BITS)
        for i in range(full):
            level0[i] = 0
        if rest:
            level0[full] &= ~((1 << rest) - 1) & FULL_WORD
        cleared = [i for i in range(full) if level0[i] == 0]
        if rest and level0[full] == 0:  # tiny region: the partial word may be the last one
            cleared.append(full)
        for level in range(1, self.levels):
            words = self._bitmap[level]
            now_empty = []
            for child in cleared:
                idx, bit = divmod(child, WORD_BITS)
                if words[idx]:
                    words[idx] &= ~(1 << bit)
                    if words[idx] == 0:
                        now_empty.append(idx)
            if not now_empty:
                break
            cleared = sorted(set(now_empty))

    # ---------------------------------------------------------------- the hot path

    def _install_fast_path(self) -> None:
        """Bind ``self.allocate`` and ``self.free`` to closures over the stack and owner set.

        Why closures rather than methods: the allocate/free pair runs on every page fault,
        malloc and process exit, and the stack fast path is a handful of C-level list/set
        operations; the attribute lookups of a method (``self._stack``, ``self._owned`` ...)
        would cost as much as the work itself. Closures see those objects as cell variables,
        which keeps a pair within 2x of a bare Python free list (bench/bench_frames.py).
        The slow paths (refilling from the tree, spilling into it) stay ordinary methods."""
        stack = self._stack
        pop = stack.pop
        push = stack.append
        owned = self._owned
        own = owned.add
        disown = owned.remove
        refill = self._refill
        spill = self._spill
        why = self._why_not_owned

        def allocate() -> int:
            """Hand out one frame (its physical address): the most recently freed one if the
            stack holds any, else the highest free frame of the lowest non-empty chunk.

            Raises OutOfFrames when every frame is in use."""
            try:
                paddr = pop()
            except IndexError:
                paddr = refill()
            own(paddr)
            return paddr

        def free(paddr: int) -> None:
            """Give back a frame handed out by allocate/allocate_contiguous (an int address).

            Raises FrameError, naming the address, for a double free, a frame never handed
            out (including the reserved bitmap frames), an address outside the region or a
            misaligned one; the allocator is left unchanged."""
            try:
                disown(paddr)  # one C call checks range, alignment and ownership at once
            except (KeyError, TypeError):
                raise FrameError(why(paddr)) from None
            if len(stack) < 32:  # STACK_CAPACITY, as a literal: a constant load, not a global
                push(paddr)
            else:
                spill(paddr)

        self.allocate = allocate
        self.free = free

    # ---------------------------------------------------------------- tree operations

    def _refill(self) -> int:
        """Move every free frame of the lowest non-empty chunk onto the (empty) stack, pop one.

        Walk from the top word down to level 1 following the lowest set bit, empty the level-0
        word, then clear parent bits upward until a word stays non-zero."""
        bitmap = self._bitmap
        idx = 0
        for level in range(self.levels - 1, 0, -1):
            word = bitmap[level][idx]
            if not word:
                raise OutOfFrames(f"out of physical frames ({self.nframes} in region {self.start:#x})")
            idx = idx * WORD_BITS + _lowest_bit(word)
        level0 = bitmap[0]
        word = level0[idx]
        if not word:
            raise OutOfFrames(f"out of physical frames ({self.nframes} in region {self.start:#x})")
        level0[idx] = 0
        self._clear_parents(idx)
        base = self.start + idx * WORD_BITS * PAGE_SIZE
        stack = self._stack
        count = 0
        while word:
            low = word & -word
            stack.append(base + ((low.bit_length() - 1) << PAGE_SHIFT))
            word ^= low
            count += 1
        self._tree_free -= count
        return stack.pop()

    def _clear_parents(self, idx: int) -> None:
        """Level-0 word ``idx`` just became 0: clear its bit above, recursively while words empty."""
        bitmap = self._bitmap
        for level in range(1, self.levels):
            idx, bit = divmod(idx, WORD_BITS)
            words = bitmap[level]
            words[idx] &= ~(1 << bit)
            if words[idx]:
                return

    def _tree_release(self, frame: int) -> None:
        """Set a frame's level-0 bit; set parent bits upward while the word was previously 0."""
        bitmap = self._bitmap
        idx, bit = divmod(frame, WORD_BITS)
        level0 = bitmap[0]
        was = level0[idx]
        level0[idx] = was | (1 << bit)
        self._tree_free += 1
        level = 1
        while not was and level < self.levels:
            idx, bit = divmod(idx, WORD_BITS)
            words = bitmap[level]
            was = words[idx]
            words[idx] = was | (1 << bit)
            level += 1

    def _spill(self, paddr: int) -> None:
        """free() with a full stack: the frame goes back into the tree."""
        self._tree_release((int(paddr) - self.start) >> PAGE_SHIFT)

    def _flush_stack(self) -> None:
        """Return every stacked frame to the tree so a contiguous search can see it."""
        start = self.start
        stack = self._stack
        while stack:
            self._tree_release((stack.pop() - start) >> PAGE_SHIFT)

    # ---------------------------------------------------------------- contiguous runs

    def allocate_contiguous(self, count: int, max_address: int | None = None) -> int:
        """Hand out ``count`` consecutive frames; return the physical address of the first.

        ``max_address`` is the highest byte address the run may touch (inclusive, as in the
        seed: 0xFFFF_FFFF means "below 4 GiB"); None means anywhere in the region. First fit
        from the region start. OutOfFrames if no such run exists even after returning the
        stacked frames to the tree."""
        if count < 1:
            raise ValueError(f"contiguous frame count must be positive, not {count}")
        if max_address is None:
            limit = self.nframes
        elif max_address < self.start + PAGE_SIZE - 1:
            raise OutOfFrames(f"no frame of region {self.start:#x} lies at or below {max_address:#x}")
        else:
            limit = min(self.nframes, (max_address + 1 - self.start) >> PAGE_SHIFT)
        first = self._find_run(count, limit)
        if first < 0 and self._stack:
            self._flush_stack()
            first = self._find_run(count, limit)
        if first < 0:
            where = "" if max_address is None else f" at or below {max_address:#x}"
            raise OutOfFrames(f"no run of {count} free consecutive frames{where}")
        self._take_run(first, count)
        paddr = self.start + (first << PAGE_SHIFT)
        self._owned.update(range(paddr, paddr + count * PAGE_SIZE, PAGE_SIZE))
        return paddr

    def _find_run(self, count: int, limit: int) -> int:
        """First frame of the lowest run of ``count`` set level-0 bits among frames < limit, or -1.

        The seed tests bit by bit; this walks whole runs of ones with bit tricks (lowest set bit,
        then the length of the ones from there), which finds the same first fit. Runs continue
        across word boundaries when a word ends in a 1 and the next starts with one."""
        level0 = self._bitmap[0]
        run = 0
        run_start = 0
        for wi in range(-(-limit // WORD_BITS)):
            word = level0[wi]
            base = wi * WORD_BITS
            if base + WORD_BITS > limit:
                word &= (1 << (limit - base)) - 1
            if not word:
                run = 0
                continue
            while word:
                pos = (word & -word).bit_length() - 1
                ones = word >> pos
                length = (ones ^ (ones + 1)).bit_length() - 1  # trailing ones of `ones`
                if pos:
                    run = 0  # a gap before this stretch (a stretch at bit 0 may continue a run)
                if not run:
                    run_start = base + pos
                run += length
                if run >= count:
                    return run_start
                word ^= ((1 << length) - 1) << pos
            if pos + length < WORD_BITS:
                run = 0  # the word does not end in a free frame: no run carries over
        return -1

    def _take_run(self, first: int, count: int) -> None:
        """Clear the level-0 bits of frames first..first+count-1, propagating empties upward."""
        level0 = self._bitmap[0]
        frame = first
        end = first + count
        while frame < end:
            idx, bit = divmod(frame, WORD_BITS)
            span = min(WORD_BITS - bit, end - frame)
            level0[idx] &= ~(((1 << span) - 1) << bit) & FULL_WORD
            if not level0[idx]:
                self._clear_parents(idx)
            frame += span
        self._tree_free -= count

    # ---------------------------------------------------------------- queries

    def is_allocated(self, paddr: int) -> bool:
        """True if ``paddr`` is the address of a frame handed out and not yet freed."""
        return paddr in self._owned

    @property
    def free_count(self) -> int:
        """Frames that can still be handed out (tree plus stack)."""
        return self._tree_free + len(self._stack)

    @property
    def used_count(self) -> int:
        """Frames handed out and not freed (the reserved bitmap frames are not counted)."""
        return len(self._owned)

    def frame_number(self, paddr: int) -> int:
        """The seed's frame number of a physical address: frames count from the region start."""
        return (paddr - self.start) // PAGE_SIZE

    def _why_not_owned(self, paddr: object) -> str:
        """Explain a rejected free, naming the address (the slow path of :meth:`free`)."""
        if not isinstance(paddr, int):
            return f"free of {paddr!r}: not a physical address"
        if paddr % PAGE_SIZE:
            return f"free of {paddr:#x}: not page aligned"
        if not self.start <= paddr < self.end:
            return f"free of {paddr:#x}: outside the managed region [{self.start:#x}, {self.end:#x})"
        frame = self.frame_number(paddr)
        if frame < self.reserved:
            return f"free of {paddr:#x}: frame {frame} holds the allocator's bitmap and is never handed out"
        return f"free of {paddr:#x}: frame {frame} is not allocated (double free or never handed out)"

    def __repr__(self) -> str:
        return (
            f"FrameAllocator(start={self.start:#x}, nframes={self.nframes}, levels={self.levels}, "
            f"reserved={self.reserved}, free={self.free_count}, used={self.used_count})"
        )
