"""`info tlb` and `info mem`: a process' page tables as QEMU's monitor prints them (sans-IO).

Both walk a 4-level (LA48) x86-64 table from its root (CR3) through `read(paddr, n)`, a physical
memory reader, and return the lines; nothing here knows about processes or the kernel, so tests
feed them hand-built tables. The formats and walks are QEMU's target/i386/monitor.c:

* info tlb: one line per present leaf (1 GiB, 2 MiB or 4 KiB page), in address order,
  ``%016lx: %016lx XGPDACTUW`` -- the canonical virtual address, the leaf's physical address
  field (QEMU's masks: bits 12-49, 21-49 or 30-49), then a letter or '-' for each of NX, global,
  PS (the page size bit; QEMU clears it for a 4 KiB entry, where bit 7 is PAT), dirty, accessed,
  PCD, PWT, user, writable. The letters are the leaf's own bits, not the walk's combined rights.
* info mem: the address space as ranges of equal protection, ``%016lx-%016lx %016lx urw``
  (start, end, size; `u` or '-', always `r`, `w` or '-'), the protection being user/writable
  ANDed over every level of the walk. Unmapped gaps end a range; the last flushes at 1 << 48.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

Read = Callable[[int, int], bytes]

P, RW, US, PWT, PCD, A, D, PS, G = 1, 2, 4, 8, 16, 32, 64, 128, 256
NX = 1 << 63
TABLE_ADDR = 0x3FFFFFFFFF000  # QEMU's mask for the next table's address
LEAF_4K = 0x3FFFFFFFFF000
LEAF_2M = 0x3FFFFFFE00000
LEAF_1G = 0x3FFFFC0000000
_TABLE = struct.Struct("<512Q")


def canonical(addr: int) -> int:
    """Sign-extend bit 47 (QEMU's addr_canonical for 4-level paging)."""
    return addr | ((1 << 64) - (1 << 48)) if addr & (1 << 47) else addr


def _table(read: Read, paddr: int) -> tuple[int, ...]:
    return _TABLE.unpack(read(paddr, 4096))


def pte_line(vaddr: int, pte: int, mask: int) -> str:
    """One `info tlb` line."""
    flags = "".join(ch if pte & bit else "-" for ch, bit in
                    (("X", NX), ("G", G), ("P", PS), ("D", D), ("A", A), ("C", PCD), ("T", PWT),
                     ("U", US), ("W", RW)))
    return f"{canonical(vaddr):016x}: {pte & mask:016x} {flags}"


def tlb_lines(read: Read, root: int) -> list[str]:
    """`info tlb`: every present leaf under PML4 `root`."""
    out: list[str] = []
    for l1, pml4e in enumerate(_table(read, root & TABLE_ADDR)):
        if not pml4e & P:
            continue
        for l2, pdpe in enumerate(_table(read, pml4e & TABLE_ADDR)):
            if not pdpe & P:
                continue
            if pdpe & PS:
                out.append(pte_line((l1 << 39) + (l2 << 30), pdpe, LEAF_1G))
                continue
            for l3, pde in enumerate(_table(read, pdpe & TABLE_ADDR)):
                if not pde & P:
                    continue
                if pde & PS:
                    out.append(pte_line((l1 << 39) + (l2 << 30) + (l3 << 21), pde, LEAF_2M))
                    continue
                for l4, pte in enumerate(_table(read, pde & TABLE_ADDR)):
                    if pte & P:
                        out.append(pte_line((l1 << 39) + (l2 << 30) + (l3 << 21) + (l4 << 12),
                                            pte & ~PS, LEAF_4K))
    return out


class _Ranges:
    """QEMU's mem_print: close the current range whenever the protection changes."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.start = -1
        self.last = 0

    def at(self, end: int, prot: int) -> None:
        if prot == self.last:
            return
        if self.start != -1:
            last = self.last
            self.lines.append(f"{canonical(self.start):016x}-{canonical(end):016x} "
                              f"{canonical(end - self.start):016x} "
                              f"{'u' if last & US else '-'}r{'w' if last & RW else '-'}")
        self.start = end if prot else -1
        self.last = prot


def mem_lines(read: Read, root: int) -> list[str]:
    """`info mem`: ranges of equal (user, writable) protection under PML4 `root`."""
    r = _Ranges()
    rights = US | RW | P
    for l1, pml4e in enumerate(_table(read, root & TABLE_ADDR)):
        end = l1 << 39
        if not pml4e & P:
            r.at(end, 0)
            continue
        for l2, pdpe in enumerate(_table(read, pml4e & TABLE_ADDR)):
            end = (l1 << 39) + (l2 << 30)
            if not pdpe & P:
                r.at(end, 0)
                continue
            if pdpe & PS:
                r.at(end, pdpe & rights & pml4e)
                continue
            for l3, pde in enumerate(_table(read, pdpe & TABLE_ADDR)):
                end = (l1 << 39) + (l2 << 30) + (l3 << 21)
                if not pde & P:
                    r.at(end, 0)
                    continue
                if pde & PS:
                    r.at(end, pde & rights & pml4e & pdpe)
                    continue
                for l4, pte in enumerate(_table(read, pde & TABLE_ADDR)):
                    end = (l1 << 39) + (l2 << 30) + (l3 << 21) + (l4 << 12)
                    r.at(end, pte & rights & pml4e & pdpe & pde if pte & P else 0)
    r.at(1 << 48, 0)
    return r.lines
