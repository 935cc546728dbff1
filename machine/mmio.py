"""Memory-mapped I/O: physical addresses outside RAM that a device answers instead of memory.

On a PC the physical address space has RAM and, in the "PCI hole" below 4 GiB and above the top of
RAM, device registers: a load or store there is a bus cycle the device decodes, with a size (1, 2,
4 or 8 bytes) and an offset into its window. This is that map. The PCI host bridge fills it from
the memory BARs of functions whose command register has Memory Space enabled (machine/pci.py), so
moving a BAR or clearing CMD_MEMORY moves or hides the registers at once, as with I/O BARs.

Where it is consulted: :class:`~machine.memory.PhysicalMemory` only falls back to it for accesses
that do not fit in RAM, so RAM's fast paths are unchanged (RAM wins where the two overlap: this
machine's RAM is flat, it has no PCI hole, so with 4 GiB or more of RAM a BAR below 4 GiB would be
shadowed). A CPU access (through the MMU, e.g. a driver's MAP_PHYS mapping) that nothing claims
reads all ones and its writes vanish, like a PCI master abort; a device's DMA there is a BusError.

Access sizes: a naturally aligned 1, 2, 4 or 8 byte access reaches the device as one access, the way
``mov`` does. Anything else (a 6-byte read of a MAC address, a 16-byte copy) is split into naturally
aligned accesses of at most 4 bytes, lowest address first, as a string move would be.
"""

from __future__ import annotations

from typing import Protocol


class MmioDevice(Protocol):
    """A device window: offsets are relative to the start of the region (the BAR's base)."""

    def mmio_read(self, offset: int, size: int) -> int: ...

    def mmio_write(self, offset: int, size: int, value: int) -> None: ...


class MmioBus:
    """The regions device memory occupies: ``(start, end, device)``, first match wins."""

    __slots__ = ("regions",)

    def __init__(self) -> None:
        self.regions: tuple[tuple[int, int, MmioDevice], ...] = ()

    def __repr__(self) -> str:
        inner = ", ".join(f"[{s:#x}, {e:#x})" for s, e, _ in self.regions)
        return f"<MmioBus {inner or 'empty'}>"

    def map(self, regions: list[tuple[int, int, MmioDevice]]) -> None:
        """Replace the whole map (the PCI host recomputes it whenever a BAR or command changes)."""
        self.regions = tuple(regions)

    def find(self, paddr: int, n: int) -> tuple[MmioDevice, int] | None:
        """(device, offset) of the region holding all of ``[paddr, paddr + n)``, or None."""
        end = paddr + n
        for start, stop, device in self.regions:
            if start <= paddr and end <= stop:
                return device, paddr - start
        return None

    def claims(self, paddr: int, n: int) -> bool:
        """Whether every byte of ``[paddr, paddr + n)`` lies in some region."""
        return all(self.find(p, s) is not None for p, s in _pieces(paddr, n))

    def read(self, paddr: int, n: int, open_bus: bool = False) -> bytes | None:
        """The bytes a load of ``n`` at ``paddr`` returns; None if some part is unclaimed (unless
        ``open_bus``: then unclaimed parts read as 0xFF, as a master abort does)."""
        out = bytearray()
        for p, size in _pieces(paddr, n):
            hit = self.find(p, size)
            if hit is None:
                if not open_bus:
                    return None
                out += b"\xff" * size
                continue
            device, offset = hit
            value = device.mmio_read(offset, size) & ((1 << (8 * size)) - 1)
            out += value.to_bytes(size, "little")
        return bytes(out)

    def write(self, paddr: int, data: bytes | bytearray | memoryview, open_bus: bool = False) -> bool:
        """Store ``data`` at ``paddr``; False (and nothing written) if some part is unclaimed,
        unless ``open_bus`` (unclaimed parts vanish)."""
        raw = bytes(data)
        pieces = _pieces(paddr, len(raw))
        hits = [self.find(p, size) for p, size in pieces]
        if not open_bus and any(h is None for h in hits):
            return False
        for (p, size), hit in zip(pieces, hits, strict=True):
            if hit is not None:
                device, offset = hit
                pos = p - paddr
                device.mmio_write(offset, size, int.from_bytes(raw[pos:pos + size], "little"))
        return True


def _pieces(paddr: int, n: int) -> list[tuple[int, int]]:
    """The bus accesses a CPU makes for ``n`` bytes at ``paddr`` (see the module doc)."""
    if n in (1, 2, 4, 8) and paddr % n == 0:
        return [(paddr, n)]
    out = []
    pos, end = paddr, paddr + n
    while pos < end:
        size = 4
        while size > 1 and (pos % size or pos + size > end):
            size >>= 1
        out.append((pos, size))
        pos += size
    return out
