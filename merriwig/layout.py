"""The user virtual address layout (the seed's, spec §5.4), shared by the kernel's modules."""

PAGE = 4096
PAGE_SHIFT = 12

USER_CODE_MIN = 0x20_0000          # a program image must lie inside [USER_CODE_MIN, USER_CODE_MAX)
USER_CODE_MAX = 0x5000_0000
CODE_BASE = 0x40_0000              # where the loader places a program image (linker default)
KERNEL_INFO = 0x4FF_F000           # read-only kernel-info page (vDSO-like time page), in every process

USER_L4 = 5                        # stacks, heap and chunks live under PML4 entry 5
USER_BASE = USER_L4 << 39          # 0x280_0000_0000
STACK_SLOTS = 64                   # slot n: page 8n guard, pages 8n+1..8n+7 stack (28 KiB)
STACK_SLOT_PAGES = 8
HEAP_BASE = 0x280_0060_0000
HEAP_SIZE = 0x40_0000
CHUNK_SLOTS = 512                  # chunk slot i (1..511) = one PML4[5] PDPT entry, up to 1 GiB
CHUNK_SHIFT = 30


def chunk_base(slot: int) -> int:
    return USER_BASE + (slot << CHUNK_SHIFT)


def chunk_slot(vaddr: int) -> int | None:
    """The chunk slot containing vaddr, or None if vaddr is not in the chunk area."""
    if vaddr >> 39 != USER_L4:
        return None
    slot = (vaddr >> CHUNK_SHIFT) & 0x1FF
    return slot or None


def stack_bounds(slot: int) -> tuple[int, int]:
    """(lowest usable address, top) of a thread stack slot; the page below is the guard."""
    lo = USER_BASE + (slot * STACK_SLOT_PAGES + 1) * PAGE
    return lo, USER_BASE + (slot + 1) * STACK_SLOT_PAGES * PAGE
