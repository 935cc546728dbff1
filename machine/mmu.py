"""x86-64 4-level paging: the MMU walks page tables that the kernel wrote into physical frames.

The tables are not Python objects: each is a 4 KiB frame of 512 little-endian u64 entries in
:class:`~machine.memory.PhysicalMemory`, with the flag bits at their real positions. The kernel
builds them with ordinary memory writes, exactly as Merriwig does on real hardware, and this module
plays the part of the CPU's page walker, configured as CR0.WP=1 (supervisor writes honour RW) and
EFER.NXE=1 (bit 63 is no-execute), without SMEP/SMAP/PKU.

Faults carry the real page-fault error code (Intel SDM vol. 3 §4.7), so the kernel's fault handler
can make the same decisions as the seed's (e.g. "protection + write + user" = copy-on-demand).

Each address space (identified by the physical address of its PML4, i.e. its CR3) has its own
TLB: a dict from ``((vaddr >> 12) << 5) | access`` to the physical page base. As on hardware, the
TLB is *not* kept coherent with the tables: after changing or removing a present entry the kernel
must call :meth:`MMU.invlpg` or :meth:`MMU.flush`, or it will keep seeing the old translation.
"""

from __future__ import annotations

import functools
import struct

from .memory import PhysicalMemory

_U64 = struct.Struct("<Q")

# -- page-table entry bits, at their hardware positions ------------------------------------------
PTE_P = 1 << 0  # present
PTE_RW = 1 << 1  # writable
PTE_US = 1 << 2  # user accessible
PTE_PWT = 1 << 3  # write-through
PTE_PCD = 1 << 4  # cache disable
PTE_A = 1 << 5  # accessed (set by the walker)
PTE_D = 1 << 6  # dirty (set by the walker on write, leaf only)
PTE_PS = 1 << 7  # page size: 1 GiB in a PDPT entry, 2 MiB in a PD entry (PAT in a PT entry)
PTE_G = 1 << 8  # global: a cached translation survives flush() (a CR3 reload, CR4.PGE on), not invlpg
PTE_AVL0 = 1 << 9  # software-available bits, ignored by the walker
PTE_AVL1 = 1 << 10
PTE_AVL2 = 1 << 11
PTE_NX = 1 << 63  # no-execute
PTE_ADDR_MASK = 0x000F_FFFF_FFFF_F000

MAXPHYADDR = 46  # physical address width; entry bits MAXPHYADDR..51 are reserved

# -- page-fault error code bits (Intel SDM vol. 3 §4.7) ----------------------------------------
PF_P = 1  # 0: page not present; 1: protection violation (or reserved bit)
PF_W = 2  # the access was a write
PF_U = 4  # the access came from user mode (CPL 3)
PF_RSVD = 8  # a reserved bit was set in some paging-structure entry
PF_I = 16  # the access was an instruction fetch

# Access kinds for MMU.translate: the same bits as the error code, so that a fault's error code is
# just the access kind plus P/RSVD.
KERNEL_READ = 0
KERNEL_WRITE = PF_W
USER_READ = PF_U
USER_WRITE = PF_U | PF_W
USER_EXEC = PF_U | PF_I

_ACCESS_BITS = PF_W | PF_U | PF_I
# Every access kind a TLB entry can be cached under (W and I never combine): invlpg drops all of
# them. 0, 2, 4, 6, 16, 20 are the legal ones; 18 and 22 are listed so that the set is the full
# 8 combinations of W/U/I and nothing can ever outlive an invlpg.
_ACCESS_VARIANTS = tuple(w | u | i for w in (0, PF_W) for u in (0, PF_U) for i in (0, PF_I))

_RW_D = PTE_RW | PTE_D


@functools.cache
def _variants_of(kinds: int) -> tuple[int, ...]:
    """The access kinds named by a mask of ``1 << access`` bits (MMU._kinds)."""
    return tuple(a for a in _ACCESS_VARIANTS if kinds >> a & 1)

_RSVD_PHYS = ((1 << 52) - 1) & ~((1 << MAXPHYADDR) - 1)  # address bits MAXPHYADDR..51
_RSVD_1G = ((1 << 30) - 1) & ~((1 << 13) - 1)  # bits 13..29 of a 1 GiB leaf (bit 12 is PAT)
_RSVD_2M = ((1 << 21) - 1) & ~((1 << 13) - 1)  # bits 13..20 of a 2 MiB leaf
# An entry with any of these bits other than P needs the careful checks (or faults).
_SLOW_BITS = PTE_P | PTE_PS | _RSVD_PHYS
_CANON_MAX_LOW = 1 << 47
_CANON_MIN_HIGH = (1 << 64) - (1 << 47)

# A TLB that reaches this many entries is emptied, like a real TLB evicting under pressure; it only
# bounds memory (a correct kernel never depends on an entry staying cached).
TLB_CAPACITY = 1 << 16


class PageFault(Exception):
    """#PF: the translation of ``vaddr`` failed; ``error_code`` is the hardware error code."""

    def __init__(self, vaddr: int, error_code: int) -> None:
        super().__init__(vaddr, error_code)
        self.vaddr = vaddr
        self.error_code = error_code

    def __str__(self) -> str:
        code = self.error_code
        words = ["protection" if code & PF_P else "not-present"]
        if code & PF_RSVD:
            words.append("reserved-bit")
        words.append("instruction-fetch" if code & PF_I else "write" if code & PF_W else "read")
        words.append("user" if code & PF_U else "kernel")
        return f"page fault at 0x{self.vaddr:016x}: {', '.join(words)}"


class GeneralProtection(Exception):
    """#GP from a non-canonical address, which x86-64 reports as #GP rather than #PF."""

    def __init__(self, vaddr: int) -> None:
        super().__init__(vaddr)
        self.vaddr = vaddr

    def __str__(self) -> str:
        shown = f"0x{self.vaddr:016x}" if 0 <= self.vaddr < 1 << 64 else repr(self.vaddr)
        return f"general protection fault: non-canonical address {shown}"


def is_canonical(vaddr: int) -> bool:
    """True if ``vaddr`` is a 64-bit address whose bits 63..47 are all equal (48-bit paging)."""
    return 0 <= vaddr < _CANON_MAX_LOW or _CANON_MIN_HIGH <= vaddr < 1 << 64


def split(vaddr: int) -> tuple[int, int, int, int, int]:
    """Split a virtual address into its table indices and page offset: (l4, l3, l2, l1, offset)."""
    return (
        (vaddr >> 39) & 511,
        (vaddr >> 30) & 511,
        (vaddr >> 21) & 511,
        (vaddr >> 12) & 511,
        vaddr & 0xFFF,
    )


def make_vaddr(l4: int, l3: int, l2: int, l1: int, offset: int = 0) -> int:
    """Inverse of :func:`split`: builds a canonical address (bit 47 sign-extended into 63..48)."""
    for name, value, limit in (
        ("l4", l4, 512),
        ("l3", l3, 512),
        ("l2", l2, 512),
        ("l1", l1, 512),
        ("offset", offset, 4096),
    ):
        if not 0 <= value < limit:
            raise ValueError(f"{name} must be in 0..{limit - 1}, got {value!r}")
    vaddr = (l4 << 39) | (l3 << 30) | (l2 << 21) | (l1 << 12) | offset
    if vaddr & (1 << 47):
        vaddr |= 0xFFFF << 48
    return vaddr


class MMU:
    """The page walker and TLBs of the one emulated CPU.

    Address spaces are named by ``root``, the physical address of their PML4 (what CR3 holds), so
    switching address space is free and each keeps its own cached translations."""

    def __init__(self, memory: PhysicalMemory) -> None:
        self.memory = memory
        self._tlbs: dict[int, dict[int, int]] = {}
        self._globals: dict[int, dict[int, int]] = {}  # per root: the TLB entries of global (G) pages
        # Per root: a bit per access kind (1 << access) its TLB may hold entries of. A process
        # uses two or three of the eight kinds, and invlpg need look for no other: a departing
        # 16-page chunk is 32-48 dict lookups, not 128.
        self._kinds: dict[int, int] = {}
        self.walks: int = 0  # full walks done (TLB misses), for tests and benchmarks

    def __repr__(self) -> str:
        return f"<MMU {len(self._tlbs)} address spaces, {self.walks} walks>"

    # -- translation ---------------------------------------------------------------------------

    def translate(self, root: int, vaddr: int, access: int = USER_READ) -> int:
        """Physical address of ``vaddr`` in address space ``root`` for an access of kind ``access``.

        ``access`` is a combination of PF_W, PF_U, PF_I (use the constants USER_READ ... ).
        Raises PageFault or GeneralProtection as the CPU would. The hit path is deliberately one
        expression, because it runs on every emulated memory access; so ``access`` is validated
        only on a miss, and an out-of-range value (>= 32) is a caller bug that could alias the TLB
        key of the next page."""
        try:
            return self._tlbs[root][((vaddr >> 12) << 5) | access] | (vaddr & 0xFFF)
        except KeyError:
            return self._miss(root, vaddr, access)

    def _miss(self, root: int, vaddr: int, access: int, ahead: int = 0) -> int:
        """TLB miss: validate, walk the tables, set A/D, fill the TLB (and for ``ahead`` > 0 the
        next pages of the same page table: :meth:`translate_pages`).

        Validation lives here, not in :meth:`translate`, because an invalid access kind or a
        non-canonical address is never cached and so (bar access >= 32) always reaches this path."""
        if access & ~_ACCESS_BITS or (access & PF_W and access & PF_I):
            raise ValueError(f"access must combine PF_W, PF_U and PF_I (not W with I), got {access!r}")
        if not is_canonical(vaddr):
            raise GeneralProtection(vaddr)
        if root & 0xFFF or root < 0:
            raise ValueError(f"page-table root {root:#x} is not a page-aligned physical address")
        self.walks += 1
        mem = self.memory
        buf = mem.buf
        last8 = mem.size - 8
        unpack = _U64.unpack_from

        # Walk PML4 -> PDPT -> PD -> PT; stop early on a huge-page leaf. ``shift`` names the level:
        # 39 = PML4, 30 = PDPT, 21 = PD, 12 = PT.
        used: list[tuple[int, int]] = []
        table = root
        shift = 39
        all_bits = PTE_RW | PTE_US | PTE_A  # AND of every entry: RW/US needed at every level
        any_bits = 0  # OR of every entry: NX anywhere forbids instruction fetch
        while True:
            pte_addr = table + (((vaddr >> shift) & 511) << 3)
            if pte_addr > last8:
                mem.read_u64(pte_addr)  # raises the BusError (a table pointer outside RAM)
            pte = unpack(buf, pte_addr)[0]
            huge = False
            if pte & _SLOW_BITS != PTE_P:  # not present, PS/PAT, or reserved address bits
                if not pte & PTE_P:
                    self._fault(root, vaddr, access)
                huge = bool(pte & PTE_PS) and shift != 12  # bit 7 of a PT entry is PAT, not PS
                rsvd = pte & _RSVD_PHYS
                if huge:
                    if shift == 39:
                        rsvd = 1  # PS must be 0 in a PML4 entry
                    elif shift == 30:
                        rsvd |= pte & _RSVD_1G
                    else:
                        rsvd |= pte & _RSVD_2M
                if rsvd:
                    self._fault(root, vaddr, access | PF_P | PF_RSVD)
            used.append((pte_addr, pte))
            all_bits &= pte
            any_bits |= pte
            if huge or shift == 12:
                break
            table = pte & PTE_ADDR_MASK
            shift -= 9

        # Permission checks (CR0.WP=1, EFER.NXE=1, no SMEP/SMAP): every level must allow.
        if (
            (access & PF_W and not all_bits & PTE_RW)
            or (access & PF_U and not all_bits & PTE_US)
            or (access & PF_I and any_bits & PTE_NX)
        ):
            self._fault(root, vaddr, access | PF_P)

        # Success: set A on every entry used, D on the leaf for a write, writing only on change
        # (the common case, everything already set, writes nothing).
        leaf = pte
        if not all_bits & PTE_A or (access & PF_W and not leaf & PTE_D):
            write_u64 = mem.write_u64
            last = len(used) - 1
            for i, (pte_addr, pte) in enumerate(used):
                new = pte | PTE_A
                if i == last and access & PF_W:
                    new |= PTE_D
                if new != pte:
                    write_u64(pte_addr, new)

        # Physical page base for this 4 KiB page (huge pages are cached per 4 KiB page).
        page_size_mask = (1 << shift) - 1  # 0xFFF, 0x1FFFFF or 0x3FFFFFFF
        base = (leaf & PTE_ADDR_MASK & ~page_size_mask) | (vaddr & page_size_mask & ~0xFFF)

        tlb = self._tlbs.get(root)
        if tlb is None:
            tlb = self._tlbs[root] = {}
        elif len(tlb) >= TLB_CAPACITY:
            tlb.clear()
        key = ((vaddr >> 12) << 5) | access
        tlb[key] = base
        # A TLB entry holds the permissions and the dirty flag the walk found (SDM 4.10.2.2), so
        # one walk serves a load and a store of the page: after a store the load too (A is set),
        # after a load the store too when every level allows writes and D is already 1 (a chunk
        # its sender wrote): nothing would be set by a walk for it. A read after a write, or a
        # write after a read of a received chunk, was a second walk.
        other = -1
        if access & PF_W:
            other = key ^ PF_W
        elif not access & PF_I and leaf & PTE_D and all_bits & PTE_RW:
            other = key | PF_W
        if other >= 0:
            tlb[other] = base
        kinds = self._kinds.get(root, 0) | (1 << access)
        if other >= 0:
            kinds |= 1 << (other & 31)
        self._kinds[root] = kinds
        if leaf & PTE_G:
            self._keep_global(root, key, other, base)
        if ahead and shift == 12:
            upper = PTE_RW | PTE_US
            upper_nx = False
            for _, e in used[:-1]:
                upper &= e
                upper_nx = upper_nx or bool(e & PTE_NX)
            self._fill_ahead(root, tlb, used[-1][0], vaddr, access, upper, upper_nx, ahead)
        return base | (vaddr & 0xFFF)

    def translate_pages(self, root: int, vaddr: int, count: int, access: int, out: list[int]) -> None:
        """Append to ``out`` the physical base of each of the ``count`` pages from the page of
        ``vaddr`` on, as ``count`` calls of :meth:`translate` would (same faults, A/D bits, TLB).

        For the kernel's copies to and from user memory, which touch every page of a range in
        order. A miss walks the tables once and then takes the following entries of the same
        page table for the rest of the range in one read, as a CPU's paging-structure caches let
        it (SDM §4.10.3): a 64 KiB buffer that just arrived in a message costs one walk, not 16.
        A page that fails raises its fault with ``out`` holding every page before it."""
        tlb = self._tlbs.get(root)
        key = ((vaddr >> 12) << 5) | access
        end = key + (count << 5)
        while key < end:
            base = tlb.get(key) if tlb is not None else None
            if base is None:
                base = self._miss(root, (key >> 5) << 12, access, ((end - key) >> 5) - 1)
                tlb = self._tlbs[root]
            out.append(base)
            key += 32

    def _fill_ahead(self, root: int, tlb: dict[int, int], leaf_addr: int, vaddr: int, access: int, upper: int,
                    upper_nx: bool, ahead: int) -> None:
        """After a walk of ``vaddr`` ended at the 4 KiB leaf at ``leaf_addr``: cache the next
        ``ahead`` pages of the same page table (all of them up to the first that is not present,
        not allowed or unusual -- that one takes the ordinary walk, and faults there)."""
        ahead = min(ahead, 511 - ((vaddr >> 12) & 511))
        if ahead <= 0:
            return
        buf = self.memory.buf
        entries = struct.unpack_from(f"<{ahead}Q", buf, leaf_addr + 8)
        write = access & PF_W
        need = (PTE_RW if write else 0) | (PTE_US if access & PF_U else 0)
        if upper & need != need or (access & PF_I and upper_nx):
            return
        set_bits = PTE_A | (PTE_D if write else 0)
        key = ((vaddr >> 12) << 5) | access
        both = not write and not access & PF_I and bool(upper & PTE_RW)  # a load may cache the store
        kinds = self._kinds.get(root, 0) | (1 << access)
        other_off = 0  # key + other_off: the second access kind an entry serves (see _miss)
        if write:
            kinds |= 1 << (access ^ PF_W)
            other_off = -PF_W
        elif both:
            kinds |= 1 << (access | PF_W)
            other_off = PF_W
        self._kinds[root] = kinds
        # The usual run first, in a lean loop: entries present, plain, allowed, with A (and D)
        # already set, not global and (for a load that may serve the store) RW with D -- a
        # chunk's pages, all alike. Whatever follows takes the careful loop below.
        mask = _SLOW_BITS | need | set_bits | PTE_G | (PTE_NX if access & PF_I else 0) | (_RW_D if both else 0)
        want = PTE_P | need | set_bits | (_RW_D if both else 0)
        done = 0
        if other_off:
            for pte in entries:
                if pte & mask != want:
                    break
                key += 32
                base = pte & PTE_ADDR_MASK
                tlb[key] = base
                tlb[key + other_off] = base
                done += 1
        else:
            for pte in entries:
                if pte & mask != want:
                    break
                key += 32
                tlb[key] = pte & PTE_ADDR_MASK
                done += 1
        if done == ahead:
            return
        entries = entries[done:]
        leaf_addr += 8 * done
        addr = leaf_addr
        pack = _U64.pack_into
        # Only a watch on this page table's own entries needs the slow store (a write watch
        # on the VGA buffer is always there and must not cost every prefetch its fast path).
        end = leaf_addr + 8 * (len(entries) + 1)
        watched = any(w.start < end and leaf_addr + 8 < w.end for w in self.memory._watches)
        for pte in entries:
            key += 32
            addr += 8
            if pte & _SLOW_BITS != PTE_P or pte & need != need or (access & PF_I and pte & PTE_NX):
                break
            if pte & set_bits != set_bits:
                if watched:
                    self.memory.write_u64(addr, pte | set_bits)
                else:
                    pack(buf, addr, pte | set_bits)
            base = pte & PTE_ADDR_MASK
            tlb[key] = base
            other = key ^ PF_W if write else (key | PF_W if both and pte & _RW_D == _RW_D else -1)  # see _miss
            if other >= 0:
                tlb[other] = base
            if pte & PTE_G:
                self._keep_global(root, key, other, base)

    def _keep_global(self, root: int, key: int, other: int, base: int) -> None:
        """Remember the TLB entries just made for a global page (and ``other``, the second
        access kind the walk served, when >= 0), so that flush() keeps them."""
        g = self._globals.setdefault(root, {})
        g[key] = base
        if other >= 0:
            g[other] = base

    def _fault(self, root: int, vaddr: int, error_code: int) -> None:
        """Raise #PF; like hardware (SDM §4.10.4.1), first drop cached entries for that page so
        the handler's fix-up is seen when the access is retried."""
        self.invlpg(root, vaddr)
        raise PageFault(vaddr, error_code)

    # -- inspection ------------------------------------------------------------------------------

    def walk(self, root: int, vaddr: int) -> list[tuple[int, int, int]]:
        """Entries used to translate ``vaddr``: ``[(level, pte_paddr, pte_value), ...]`` from level 4
        down to the leaf (4 KiB, 2 MiB or 1 GiB) or the first non-present entry.

        Pure inspection for vmmap and debugging: no A/D updates, no TLB fill, no permission or
        reserved-bit checks (a PS bit in a PML4 entry simply ends the list)."""
        if not is_canonical(vaddr):
            raise GeneralProtection(vaddr)
        out: list[tuple[int, int, int]] = []
        table = root
        for level, shift in ((4, 39), (3, 30), (2, 21), (1, 12)):
            pte_addr = table + (((vaddr >> shift) & 511) << 3)
            pte = self.memory.read_u64(pte_addr)
            out.append((level, pte_addr, pte))
            if not pte & PTE_P or (level != 1 and pte & PTE_PS):
                break
            table = pte & PTE_ADDR_MASK
        return out

    # -- TLB maintenance ---------------------------------------------------------------------------

    def invlpg(self, root: int, vaddr: int) -> None:
        """INVLPG: forget every cached translation of the page holding ``vaddr`` in ``root``
        (a global one too)."""
        self.invlpg_range(root, vaddr, 1)

    def invlpg_range(self, root: int, vaddr: int, pages: int) -> None:
        """INVLPG for each of ``pages`` pages from the page of ``vaddr`` (the kernel's loop when
        a chunk leaves), in one call: every access kind's entry of each page that ``root``'s
        TLB may hold (``_kinds``)."""
        variants = _variants_of(self._kinds.get(root, 0))
        if not variants:
            return
        key = (vaddr >> 12) << 5
        end = key + (pages << 5)
        tlb = self._tlbs.get(root)
        if tlb:
            pop = tlb.pop
            for k in range(key, end, 32):
                for access in variants:
                    pop(k | access, None)
        g = self._globals.get(root)
        if g:  # a page or two (the kernel-info page): looked through, not probed page by page
            for k in [k for k in g if key <= k < end]:
                del g[k]

    def flush(self, root: int) -> None:
        """CR3 reload: forget every cached translation of address space ``root`` but those of
        global pages (PTE_G; the kernel maps its kernel-info page so, which every process reads
        for the time and which a flush after each chunk that leaves would otherwise cost a walk)."""
        tlb = self._tlbs.get(root)
        if tlb:
            tlb.clear()
            g = self._globals.get(root)
            if g:
                tlb.update(g)

    def forget(self, root: int) -> None:
        """The address space was destroyed: drop its TLB entirely (its PML4 frame may be reused)."""
        self._tlbs.pop(root, None)
        self._globals.pop(root, None)
        self._kinds.pop(root, None)

    def tlb_size(self, root: int) -> int:
        """Number of cached translations of ``root`` (for tests and statistics)."""
        tlb = self._tlbs.get(root)
        return len(tlb) if tlb else 0
