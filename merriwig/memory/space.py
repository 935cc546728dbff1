"""User address spaces: real x86-64 page tables in physical frames, demand paging, memory chunks.

An AddressSpace owns a PML4 and everything reachable from it except entries marked borrowed
(PTE_AVL0: the kernel-info page and device memory, which belong to someone else). The layout is
the seed's (merriwig/layout.py). Departures from the seed, each fixing a [quirk] of spec §5:

* demand paging allocates a *zeroed* private frame per page on first touch (the seed mapped one
  shared placeholder frame read-only everywhere, so unwritten pages showed other pages' bytes);
* a bad access kills only the faulting process (raised as PageFault for the kernel to handle);
* thread stack slots are reused after a thread exits (the seed leaked them: 64 threads a lifetime);
* frames are counted per space against an optional quota, and chunks carry their count with them.

Memory chunks are PDPT entries under PML4[5]: moving one to another space clears the sender's
entry and writes the same page-directory address into the receiver's free slot. No byte moves.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

from machine.memory import PhysicalMemory
from machine.mmu import (
    MMU,
    PTE_ADDR_MASK,
    PTE_AVL0,
    PTE_G,
    PTE_NX,
    PTE_P,
    PTE_PS,
    PTE_RW,
    PTE_US,
    USER_READ,
    USER_WRITE,
    PageFault,
)
from merriwig import layout
from merriwig.errors import OutOfFrames, QuotaExceeded, SpaceError
from merriwig.memory.frames import FrameAllocator

PAGE = layout.PAGE
BORROWED = PTE_AVL0
TABLE_FLAGS = PTE_P | PTE_RW | PTE_US
USER_RW = PTE_P | PTE_RW | PTE_US | PTE_NX
USER_RO = PTE_P | PTE_US | PTE_NX
USER_RX = PTE_P | PTE_US
ZERO_PAGE = bytes(PAGE)
FLUSH_CEILING = 33  # chunks up to this many pages are shot down page by page (Linux's ceiling)


@dataclass(slots=True)
class Chunk:
    """A memory chunk in flight between two spaces: its page directory and its frame count."""

    directory: int  # physical address of the chunk's page directory (the PDPT entry's target)
    pages: int
    phys: int  # physical start if contiguous (DMA), else 0
    frames: int  # frames owned under the directory (data + tables), for quota accounting


@dataclass(slots=True)
class ChunkSlot:
    pages: int
    phys: int
    frames: int


class MemoryContext:
    """What every address space needs from the machine and the kernel: RAM, MMU, allocator."""

    def __init__(self, memory: PhysicalMemory, mmu: MMU, frames: FrameAllocator, info_frame: int,
                 reserve: int = 0):
        self.memory = memory
        self.mmu = mmu
        self.frames = frames
        self.info_frame = info_frame
        # Free frames only privileged spaces (root's processes) may take: whatever users do, init,
        # the drivers and the other consoles' logins can still get memory.
        self.reserve = reserve


class AddressSpace:
    """One process' virtual memory."""

    def __init__(self, ctx: MemoryContext, quota: int | None = None, privileged: bool = True) -> None:
        self.ctx = ctx
        self.mem = ctx.memory
        self.mmu = ctx.mmu
        self.quota = quota
        self.privileged = privileged  # may dip into ctx.reserve
        self.frames_owned = 0
        self.chunks: list[ChunkSlot | None] = [None] * layout.CHUNK_SLOTS
        self.stacks = bytearray(layout.STACK_SLOTS)
        self.heap_pages = 0
        self.code_end = layout.CODE_BASE
        self.destroyed = False
        self.root = self._new_table(None)
        # The kernel-info page: read-only, shared, never freed by this space.
        # Global (G): its translation survives the TLB flushes of chunk traffic (MMU.flush).
        self._map(layout.KERNEL_INFO, ctx.info_frame, USER_RO | BORROWED | PTE_G)

    # ---------------------------------------------------------------- frames and accounting
    def _bucket(self, vaddr: int | None) -> ChunkSlot | None:
        if vaddr is None:
            return None
        slot = layout.chunk_slot(vaddr)
        return self.chunks[slot] if slot else None

    def _check_reserve(self, pages: int) -> None:
        if not self.privileged and self.ctx.frames.free_count - pages < self.ctx.reserve:
            raise OutOfFrames(f"free frames are down to the {self.ctx.reserve} kept for root's services")

    def _alloc_frame(self, vaddr: int | None, zero: bool = True) -> int:
        if self.quota is not None and self.frames_owned >= self.quota:
            raise QuotaExceeded(f"frame quota of {self.quota} frames reached")
        if not self.privileged:
            self._check_reserve(1)
        paddr = self.ctx.frames.allocate()
        if zero:
            self.mem.buf[paddr : paddr + PAGE] = ZERO_PAGE
        self.frames_owned += 1
        bucket = self._bucket(vaddr)
        if bucket is not None:
            bucket.frames += 1
        return paddr

    def _free_frame(self, paddr: int, vaddr: int | None) -> None:
        self.ctx.frames.free(paddr)
        self.frames_owned -= 1
        bucket = self._bucket(vaddr)
        if bucket is not None:
            bucket.frames -= 1

    def _new_table(self, vaddr: int | None) -> int:
        return self._alloc_frame(vaddr, zero=True)

    # ---------------------------------------------------------------- page tables
    def _entry_addr(self, vaddr: int, create: bool) -> int | None:
        """Physical address of the level-1 entry for vaddr, creating tables if asked."""
        table = self.root
        read = self.mem.read_u64
        for shift in (39, 30, 21):
            idx = (vaddr >> shift) & 0x1FF
            eaddr = table + idx * 8
            entry = read(eaddr)
            if not entry & PTE_P:
                if not create:
                    return None
                new = self._new_table(vaddr if shift <= 30 else None)
                self.mem.write_u64(eaddr, new | TABLE_FLAGS)
                table = new
            else:
                if entry & PTE_PS:
                    raise SpaceError(f"huge page in the way at {vaddr:#x}")
                table = entry & PTE_ADDR_MASK
        return table + ((vaddr >> 12) & 0x1FF) * 8

    def _map(self, vaddr: int, paddr: int, flags: int) -> None:
        eaddr = self._entry_addr(vaddr, create=True)
        assert eaddr is not None
        if self.mem.read_u64(eaddr) & PTE_P:
            raise SpaceError(f"page {vaddr:#x} already mapped")
        self.mem.write_u64(eaddr, paddr | flags)

    def map_page(self, vaddr: int, flags: int = USER_RW) -> int:
        """Map a fresh zeroed frame at vaddr; returns its physical address."""
        paddr = self._alloc_frame(vaddr)
        try:
            self._map(vaddr, paddr, flags)
        except BaseException:
            self._free_frame(paddr, vaddr)
            raise
        return paddr

    def map_borrowed(self, vaddr: int, paddr: int, pages: int, flags: int = USER_RW) -> None:
        """Map someone else's physical pages (device memory): never freed by this space."""
        for i in range(pages):
            self._map(vaddr + i * PAGE, paddr + i * PAGE, flags | BORROWED)

    def lookup(self, vaddr: int) -> tuple[int, int] | None:
        """(physical address, flags) of the page at vaddr, or None if not mapped."""
        eaddr = self._entry_addr(vaddr, create=False)
        if eaddr is None:
            return None
        entry = self.mem.read_u64(eaddr)
        if not entry & PTE_P:
            return None
        return entry & PTE_ADDR_MASK, entry & ~PTE_ADDR_MASK

    def unmap_page(self, vaddr: int) -> None:
        """Remove a mapping (freeing the frame unless borrowed) and shoot down the TLB entry."""
        eaddr = self._entry_addr(vaddr, create=False)
        if eaddr is None:
            return
        entry = self.mem.read_u64(eaddr)
        if entry & PTE_P:
            self.mem.write_u64(eaddr, 0)
            self.mmu.invlpg(self.root, vaddr)
            if not entry & BORROWED:
                self._free_frame(entry & PTE_ADDR_MASK, vaddr)

    def protect(self, vaddr: int, flags: int) -> None:
        """Change a mapped page's permission bits (keeping its frame and ownership)."""
        eaddr = self._entry_addr(vaddr, create=False)
        entry = self.mem.read_u64(eaddr) if eaddr is not None else 0
        if eaddr is None or not entry & PTE_P:
            raise SpaceError(f"page {vaddr:#x} not mapped")
        keep = entry & (PTE_ADDR_MASK | BORROWED)
        self.mem.write_u64(eaddr, keep | flags)
        self.mmu.invlpg(self.root, vaddr)

    # ---------------------------------------------------------------- demand paging
    def demand_region(self, vaddr: int) -> bool:
        """Is vaddr inside a reserved region that is filled on first touch?"""
        if layout.HEAP_BASE <= vaddr < layout.HEAP_BASE + layout.HEAP_SIZE:
            return True
        slot = layout.chunk_slot(vaddr)
        if slot is not None:
            info = self.chunks[slot]
            return info is not None and info.phys == 0 and vaddr < layout.chunk_base(slot) + info.pages * PAGE
        if layout.USER_BASE <= vaddr < layout.USER_BASE + layout.STACK_SLOTS * layout.STACK_SLOT_PAGES * PAGE:
            page = (vaddr - layout.USER_BASE) >> 12
            return page % layout.STACK_SLOT_PAGES != 0 and self.stacks[page // layout.STACK_SLOT_PAGES] == 1
        return False

    def handle_fault(self, fault: PageFault) -> bool:
        """Resolve a not-present fault in a reserved region by mapping a zeroed frame.

        Returns False when the fault is a real error (the kernel then kills the process);
        QuotaExceeded / OutOfFrames propagate so the kernel can say why."""
        if fault.error_code & 1 or not self.demand_region(fault.vaddr):
            return False
        self.map_page(fault.vaddr & ~0xFFF, USER_RW)
        return True

    def translate(self, vaddr: int, access: int) -> int:
        """Translate for a user access, resolving demand faults; raises PageFault otherwise."""
        try:
            return self.mmu.translate(self.root, vaddr, access)
        except PageFault as fault:
            if not self.handle_fault(fault):
                raise
            return self.mmu.translate(self.root, vaddr, access)

    def _pages(self, vaddr: int, n: int, access: int, out: list[int]) -> None:
        """Append the physical base of every page of the ``n`` > 0 bytes at ``vaddr`` to ``out``,
        one table walk per page table rather than per page (MMU.translate_pages). A demand fault
        maps every missing page of the range at once (the access touches them all). A fault that
        is an error propagates with ``out`` holding the pages before it."""
        first = vaddr >> 12
        count = ((vaddr + n - 1) >> 12) - first + 1
        translate_pages = self.mmu.translate_pages
        root = self.root
        while True:
            done = len(out)
            try:
                translate_pages(root, (first + done) << 12, count - done, access, out)
                return
            except PageFault as fault:
                if not self._demand_run(fault, (first + count) << 12):
                    raise

    def _demand_run(self, fault: PageFault, end: int) -> bool:
        """handle_fault for a range: map zeroed frames at the faulting page and every unmapped
        page after it up to ``end`` that lies in the same kind of demand region."""
        if fault.error_code & 1 or not self.demand_region(fault.vaddr):
            return False
        va = fault.vaddr & ~0xFFF
        slot = layout.chunk_slot(va)
        info = self.chunks[slot] if slot else None
        if slot and info is not None:  # a chunk (demand_region: not a contiguous one): up to its end
            self._map_fresh(va, min(end, layout.chunk_base(slot) + info.pages * PAGE), info)
            return True
        mem = self.mem
        eaddr = 0
        while va < end and self.demand_region(va):
            if not eaddr or not va & 0x1FFFFF:  # a new page table every 2 MiB
                eaddr = self._entry_addr(va, create=True) or 0
            if not mem.read_u64(eaddr) & PTE_P:
                mem.write_u64(eaddr, self._alloc_frame(va) | USER_RW)
            va += PAGE
            eaddr += 8
        return True

    def _map_fresh(self, va: int, end: int, bucket: ChunkSlot) -> None:
        """Zeroed frames for every unmapped page of [va, end) in a chunk, a page table's worth
        of entries read and written at a time. Quota and reserve are checked as page-by-page
        faults would (the pages before the one that fails are mapped, then it raises)."""
        mem = self.mem
        buf = mem.buf
        allocate = self.ctx.frames.allocate
        while va < end:
            count = min((end - va) >> 12, 512 - ((va >> 12) & 511))
            eaddr = self._entry_addr(va, create=True)
            assert eaddr is not None
            entries = list(struct.unpack_from(f"<{count}Q", buf, eaddr))
            failure: BaseException | None = None
            slots: list[int] = []  # the entries to fill
            frames: list[int] = []
            for i, entry in enumerate(entries):
                if entry & PTE_P:
                    continue
                if self.quota is not None and self.frames_owned >= self.quota:
                    failure = QuotaExceeded(f"frame quota of {self.quota} frames reached")
                elif not self.privileged and self.ctx.frames.free_count - 1 < self.ctx.reserve:
                    failure = OutOfFrames(f"free frames are down to the {self.ctx.reserve} kept for root's services")
                else:
                    try:
                        frames.append(allocate())
                    except OutOfFrames as e:
                        failure = e
                if failure is not None:
                    entries = entries[:i]
                    break
                slots.append(i)
                self.frames_owned += 1
            # The allocator hands frames out highest first; in ascending order under ascending
            # pages, a chunk's frames are mostly physically adjacent, and a copy into or out of
            # it is one memmove per stretch (_stretches) rather than one per page.
            frames.sort()
            for i, paddr in zip(slots, frames, strict=True):
                buf[paddr : paddr + PAGE] = ZERO_PAGE
                entries[i] = paddr | USER_RW
            bucket.frames += len(frames)
            if entries:
                mem.write(eaddr, struct.pack(f"<{len(entries)}Q", *entries))
            if failure is not None:
                raise failure
            va += count << 12

    def _stretches(self, pages: list[int], offset: int, n: int) -> list[tuple[int, int]]:
        """(physical address, length) of the ``n`` bytes from ``offset`` in ``pages[0]`` on, with
        physically adjacent pages of RAM merged (device memory is left page by page)."""
        size = self.mem.size
        first = pages[0]
        count = len(pages)
        if first + count * PAGE <= size and pages == list(range(first, first + count * PAGE, PAGE)):
            return [(first + offset, n)]  # one run of RAM (a chunk's frames usually are): compared in C
        out = []
        start = pages[0] + offset
        stop = pages[0] + PAGE
        for i in range(1, len(pages)):
            p = pages[i]
            if p == stop and p + PAGE <= size:
                stop += PAGE
            else:
                out.append((start, stop - start))
                start, stop = p, p + PAGE
        excess = len(pages) * PAGE - offset - n  # the unused end of the last page
        out.append((start, stop - start - excess))
        return out

    def read(self, vaddr: int, n: int) -> bytes:
        """Read user memory as the process would (user-mode, page by page)."""
        if n <= 0:
            return b""
        mem = self.mem
        first = PAGE - (vaddr & 0xFFF)
        if n <= first:  # within one page: the common case (time page, small messages)
            paddr = self.translate(vaddr, USER_READ)
            data = mem.buf[paddr : paddr + n]
            if len(data) != n:  # past RAM: device memory (a MAP_PHYS mapping of a BAR)
                return mem.cpu_read(paddr, n)
            return data
        pages: list[int] = []
        self._pages(vaddr, n, USER_READ, pages)
        runs = self._stretches(pages, vaddr & 0xFFF, n)
        size = mem.size
        if len(runs) == 1 and runs[0][0] + n <= size:
            return mem.buf[runs[0][0] : runs[0][0] + n]
        # Gather views and copy once (a bytearray grown piece by piece copied twice).
        view = memoryview(mem.buf)
        parts = []
        try:
            for paddr, take in runs:
                if paddr + take <= size:
                    parts.append(view[paddr : paddr + take])
                else:  # device memory
                    parts.append(memoryview(mem.cpu_read(paddr, take)))
            return b"".join(parts)
        finally:
            for part in parts:
                part.release()
            view.release()

    def write(self, vaddr: int, data: bytes | bytearray | memoryview) -> None:
        """Write user memory as the process would (needs writable pages). A fault part-way
        leaves the pages before it written, as the CPU's stores would."""
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = memoryview(view.tobytes())
        n = len(view)
        if n <= 0:
            return
        mem = self.mem
        if n <= PAGE - (vaddr & 0xFFF):
            paddr = self.translate(vaddr, USER_WRITE)
            if paddr + n > mem.size:  # device memory (a MAP_PHYS mapping of a BAR)
                mem.cpu_write(paddr, view)
            else:
                mem.write(paddr, view)
            return
        pages: list[int] = []
        offset = vaddr & 0xFFF
        try:
            self._pages(vaddr, n, USER_WRITE, pages)
        except BaseException:
            if pages:
                self._store(pages, offset, view[: len(pages) * PAGE - offset])
            raise
        self._store(pages, offset, view)

    def _store(self, pages: list[int], offset: int, view: memoryview) -> None:
        mem = self.mem
        size = mem.size
        pos = 0
        for paddr, take in self._stretches(pages, offset, len(view)):
            if paddr + take > size:  # device memory
                mem.cpu_write(paddr, view[pos : pos + take])
            else:
                mem.write(paddr, view[pos : pos + take])
            pos += take

    # ---------------------------------------------------------------- code
    def load_code(self, image: bytes) -> int:
        """Place a program image read-only at CODE_BASE; returns its address."""
        base = layout.CODE_BASE
        npages = max(1, -(-len(image) // PAGE))
        if base + npages * PAGE > layout.USER_CODE_MAX:
            raise SpaceError("program image too large for the code window")
        for i in range(npages):
            va = base + i * PAGE
            paddr = self.map_page(va, USER_RX)
            part = image[i * PAGE : (i + 1) * PAGE]
            self.mem.buf[paddr : paddr + len(part)] = part
        self.code_end = base + npages * PAGE
        return base

    # ---------------------------------------------------------------- stacks
    def alloc_stack(self) -> tuple[int, int]:
        """Reserve the lowest free thread stack slot (pages come on demand): (slot, top)."""
        try:
            slot = self.stacks.index(0)
        except ValueError:
            raise SpaceError("no free thread stack slot (64 threads)") from None
        self.stacks[slot] = 1
        return slot, layout.stack_bounds(slot)[1]

    def free_stack(self, slot: int) -> None:
        """Release a stack slot and its frames so the slot can be reused."""
        if not self.stacks[slot]:
            return
        lo, top = layout.stack_bounds(slot)
        for va in range(lo, top, PAGE):
            self.unmap_page(va)
        self.stacks[slot] = 0

    # ---------------------------------------------------------------- chunks
    def _free_slot(self) -> int:
        for slot in range(1, layout.CHUNK_SLOTS):
            if self.chunks[slot] is None and not self._pdpt_entry(slot):
                return slot
        raise SpaceError("no free memory chunk slot")

    def _pdpt_addr(self, create: bool) -> int | None:
        l4e = self.mem.read_u64(self.root + layout.USER_L4 * 8)
        if not l4e & PTE_P:
            if not create:
                return None
            new = self._new_table(None)
            self.mem.write_u64(self.root + layout.USER_L4 * 8, new | TABLE_FLAGS)
            return new
        return l4e & PTE_ADDR_MASK

    def _pdpt_entry(self, slot: int) -> int:
        pdpt = self._pdpt_addr(create=False)
        return 0 if pdpt is None else self.mem.read_u64(pdpt + slot * 8)

    def malloc(self, pages: int, max_paddr: int | None = None) -> tuple[int, int]:
        """A new chunk of `pages` pages in the lowest free slot: (vaddr, physical start).

        With max_paddr the frames are physically contiguous below it and mapped at once (DMA);
        otherwise pages arrive on first touch and the physical start is 0."""
        if pages <= 0 or pages > 512 * 512:
            raise SpaceError(f"bad chunk size {pages} pages")
        if self.quota is not None and max_paddr is not None and self.frames_owned + pages > self.quota:
            raise QuotaExceeded(f"frame quota of {self.quota} frames reached")
        if max_paddr is not None:
            self._check_reserve(pages)
        slot = self._free_slot()
        base = layout.chunk_base(slot)
        info = ChunkSlot(pages, 0, 0)
        self.chunks[slot] = info
        if max_paddr is None:
            return base, 0
        frames = self.ctx.frames
        try:
            phys = frames.allocate_contiguous(pages, max_paddr)
        except OutOfFrames:
            self.chunks[slot] = None
            raise
        info.phys = phys
        self.mem.zero(phys, pages * PAGE)
        self.frames_owned += pages
        info.frames += pages
        try:
            for i in range(pages):
                self._map(base + i * PAGE, phys + i * PAGE, USER_RW)
        except BaseException:
            self._release_slot(slot)
            raise
        return base, phys

    def _slot_of(self, vaddr: int) -> int:
        slot = layout.chunk_slot(vaddr)
        if slot is None:
            raise SpaceError(f"{vaddr:#x} is not in the chunk area")
        if self.chunks[slot] is None:
            raise KeyError(vaddr)
        return slot

    def chunk_info(self, vaddr: int) -> tuple[int, int, int]:
        """(base, size in bytes, physical start) of the chunk containing vaddr."""
        slot = self._slot_of(vaddr)
        info = self.chunks[slot]
        assert info is not None
        return layout.chunk_base(slot), info.pages * PAGE, info.phys

    def free(self, vaddr: int) -> None:
        """Free the chunk containing vaddr. SpaceError: not a chunk address; KeyError: empty slot."""
        self._release_slot(self._slot_of(vaddr))

    def _release_slot(self, slot: int) -> None:
        pdpt = self._pdpt_addr(create=False)
        entry = self.mem.read_u64(pdpt + slot * 8) if pdpt is not None else 0
        if pdpt is not None and entry & PTE_P:
            self.mem.write_u64(pdpt + slot * 8, 0)
            self.frames_owned -= self._free_tree(entry & PTE_ADDR_MASK, 2)
            info = self.chunks[slot]
            self._shootdown(slot, info.pages if info is not None else FLUSH_CEILING + 1)
        self.chunks[slot] = None

    def _shootdown(self, slot: int, pages: int) -> None:
        """Forget the TLB entries of a chunk that just left: one INVLPG per page for small
        chunks (the common case: frames and file blocks in messages), a whole flush past
        FLUSH_CEILING pages, as Linux does. A whole flush on every message cost the next few
        hundred accesses of the sender a page walk each (12 % of the TCP upload profile). The
        INVLPGs look only for the access kinds the TLB holds, so they cost little even when the
        TLB is small; flushing such a TLB instead (as this did) threw away what a driver keeps
        in it, its rings: a walk for each of the next ring accesses, with every frame it hands
        over."""
        mmu = self.mmu
        if pages > FLUSH_CEILING:
            mmu.flush(self.root)
            return
        mmu.invlpg_range(self.root, layout.chunk_base(slot), pages)

    def detach(self, vaddr: int) -> Chunk:
        """Unmap a chunk from this space for sending: its frames leave with it, untouched."""
        slot = self._slot_of(vaddr)
        info = self.chunks[slot]
        assert info is not None
        pdpt = self._pdpt_addr(create=False)
        entry = self.mem.read_u64(pdpt + slot * 8) if pdpt is not None else 0
        directory = 0
        if pdpt is not None and entry & PTE_P:
            directory = entry & PTE_ADDR_MASK
            self.mem.write_u64(pdpt + slot * 8, 0)
            self._shootdown(slot, info.pages)
        self.chunks[slot] = None
        self.frames_owned -= info.frames
        return Chunk(directory, info.pages, info.phys, info.frames)

    def attach(self, chunk: Chunk) -> int:
        """Map a received chunk into the lowest free slot; returns its new address."""
        slot = self._free_slot()
        if chunk.directory:
            pdpt = self._pdpt_addr(create=True)
            assert pdpt is not None
            self.mem.write_u64(pdpt + slot * 8, chunk.directory | TABLE_FLAGS)
        self.chunks[slot] = ChunkSlot(chunk.pages, chunk.phys, chunk.frames)
        self.frames_owned += chunk.frames
        return layout.chunk_base(slot)

    def release_chunk(self, chunk: Chunk) -> None:
        """Free a detached chunk that will never be delivered (its message was dropped)."""
        free_chunk(self.ctx, chunk)

    # ---------------------------------------------------------------- teardown
    def _free_tree(self, table: int, level: int) -> int:
        return free_tree(self.ctx, table, level)

    def destroy(self) -> int:
        """Return every frame this space owns (page tables included). Returns frames freed."""
        if self.destroyed:
            return 0
        self.destroyed = True
        freed = self._free_tree(self.root, 4)
        self.frames_owned -= freed
        self.mmu.forget(self.root)
        self.chunks = [None] * layout.CHUNK_SLOTS
        return freed

    # ---------------------------------------------------------------- introspection
    def mappings(self) -> list[tuple[int, int, int]]:
        """Every present leaf: (vaddr, paddr, flags), in address order (for vmmap)."""
        out: list[tuple[int, int, int]] = []
        buf = self.mem.buf

        def walk(table: int, level: int, base: int) -> None:
            for i, entry in present_entries(buf, table):
                va = base | (i << (12 + 9 * (level - 1)))
                if level == 4 and i >= 256:
                    va |= 0xFFFF_0000_0000_0000
                if level == 1 or entry & PTE_PS:
                    out.append((va, entry & PTE_ADDR_MASK, entry & ~PTE_ADDR_MASK))
                else:
                    walk(entry & PTE_ADDR_MASK, level - 1, va)

        walk(self.root, 4, 0)
        return out


_TABLE = struct.Struct("<512Q")


def present_entries(buf: mmap.mmap, table: int) -> list[tuple[int, int]]:
    """(index, entry) of the present entries of a page table, read in one go (a walk over 512
    entries one u64 at a time dominated process teardown)."""
    entries = _TABLE.unpack_from(buf, table)
    return [(i, e) for i, e in enumerate(entries) if e & 1]


def free_tree(ctx: MemoryContext, table: int, level: int) -> int:
    """Free a page table, everything it owns below it, and itself; returns frames freed.

    The caller adjusts its own accounting (a detached chunk's frames belong to no space)."""
    free = ctx.frames.free
    freed = 0
    # Most entries are zero: filter them out in C before looking at any in Python.
    for entry in filter(None, _TABLE.unpack_from(ctx.memory.buf, table)):
        if not entry & PTE_P or entry & BORROWED:
            continue
        if level > 1 and not entry & PTE_PS:
            freed += free_tree(ctx, entry & PTE_ADDR_MASK, level - 1)
        else:
            free(entry & PTE_ADDR_MASK)
            freed += 1
    free(table)
    return freed + 1


def free_chunk(ctx: MemoryContext, chunk: Chunk) -> None:
    """Return a detached chunk's frames (its message was dropped, never delivered)."""
    if chunk.directory:
        free_tree(ctx, chunk.directory, 2)
        chunk.directory = 0


def device_chunk(ctx: MemoryContext, phys: int, pages: int) -> Chunk:
    """A chunk that maps device memory (e.g. VGA text at 0xB8000) instead of fresh frames.

    Its page tables are real frames (owned by whoever holds the chunk); the leaves are marked
    borrowed, so freeing the chunk never hands device memory to the frame allocator."""
    if pages <= 0 or pages > 512 * 512:
        raise SpaceError(f"bad device chunk size {pages}")
    frames = ctx.frames
    mem = ctx.memory
    directory = frames.allocate()
    mem.zero(directory, PAGE)
    owned = 1
    for i in range(pages):
        l2, l1 = divmod(i, 512)
        eaddr = directory + l2 * 8
        entry = mem.read_u64(eaddr)
        if not entry & PTE_P:
            table = frames.allocate()
            mem.zero(table, PAGE)
            owned += 1
            mem.write_u64(eaddr, table | TABLE_FLAGS)
            entry = table
        table = entry & PTE_ADDR_MASK
        mem.write_u64(table + l1 * 8, (phys + i * PAGE) | USER_RW | BORROWED)
    return Chunk(directory, pages, phys, owned)
