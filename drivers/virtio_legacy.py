"""The driver's half of a virtio-pci device through its legacy interface (virtio 1.2 §4.1.4.8).

Why legacy, though MAP_PHYS could map the modern BAR4: the modern interface is found by walking
the vendor capabilities in configuration space, and /pci (drivers/pci.py) answers no
configuration reads; a second process writing 0xCF8/0xCFC itself would race drivers/pci's own
two-step accesses. BAR0 needs only port I/O, whose address /pci's QUERY gives. Everything a 9P
driver needs is there: the feature bits 0-31 (MOUNT_TAG is bit 0), one queue, ISR, the device
config at 0x14. (The modern interface is exercised by the device's host-side tests.)

BAR0 registers: HOST_FEATURES le32 at 0x00, GUEST_FEATURES le32 0x04, QUEUE_ADDRESS le32 0x08
(page frame number), QUEUE_SIZE le16 0x0C, QUEUE_SELECT le16 0x0E, QUEUE_NOTIFY le16 0x10,
DEVICE_STATUS u8 0x12, ISR_STATUS u8 0x13 (read clears), device config from 0x14.

The queue (:class:`LegacyQueue`) is one physically contiguous, page-aligned chunk: the
descriptor table, the available ring right after it, the used ring at the next 4096-byte
boundary -- the layout the device derives from the page number. The driver writes the
descriptors and the available ring, reads the used ring, all through its own mapping of the
chunk; the device reaches the same frames by DMA.
"""

from __future__ import annotations

import json
import struct

from euralios.std import Chunk, SyscallError, abi
from euralios.std.fs import take_bytes
from euralios.std.protocols.pci import ENABLE_BUS_MASTERING
from proto.virtio import DESC

HOST_FEATURES, GUEST_FEATURES, QUEUE_ADDRESS, QUEUE_SIZE = 0x00, 0x04, 0x08, 0x0C
QUEUE_SELECT, QUEUE_NOTIFY, DEVICE_STATUS, ISR_STATUS, CONFIG = 0x0E, 0x10, 0x12, 0x13, 0x14
ACKNOWLEDGE, DRIVER, DRIVER_OK, NEEDS_RESET, FAILED = 1, 2, 4, 0x40, 0x80
ISR_QUEUE, ISR_CONFIG = 1, 2
DESC_F_NEXT, DESC_F_WRITE = 1, 2
PAGE = 4096
DMA_LIMIT = 0xFFFF_FFFF  # QUEUE_ADDRESS is a 32-bit page number; buffers stay below 4 GiB too

_USED = struct.Struct("<II")


async def pci_devices(sys, vendor: int, devices: tuple[int, ...]) -> list[dict]:
    """The functions /pci lists with these ids, in bus order (each dict as drivers/pci.py's QUERY
    gives it: address, irq, bars ...)."""
    h, _ = await sys.open("/pci")
    try:
        listing = await sys.rcall(h, abi.QUERY)
        if listing.tag != abi.JSON:
            return []
        found = json.loads(await take_bytes(sys, listing)).get("subdirs", [])
    finally:
        await sys.close(h)
    return [d for d in found if d.get("vendor") == vendor and d.get("device") in devices]


def io_base(device: dict) -> int | None:
    """BAR0's port base, if BAR0 is an I/O BAR."""
    for bar in device.get("bars", []):
        if bar.get("index") == 0 and bar.get("kind") == "io":
            return int(bar["address"])
    return None


async def enable_bus_master(sys, address: int) -> None:
    h, _ = await sys.open("/pci")
    try:
        await sys.rcall(h, ENABLE_BUS_MASTERING, address, 0)
    finally:
        await sys.close(h)


class LegacyDevice:
    """BAR0 at port ``io``; ``irq`` its interrupt line."""

    def __init__(self, sys, io: int, irq: int) -> None:
        self.sys = sys
        self.io = io
        self.irq = irq

    async def read(self, reg: int, size: int) -> int:
        return await self.sys.port_in(self.io + reg, size)

    async def write(self, reg: int, value: int, size: int) -> None:
        await self.sys.port_out(self.io + reg, value, size)

    async def config(self, offset: int, n: int) -> bytes:
        """``n`` bytes of the device config (one port read each, as a legacy config is read)."""
        return bytes([await self.read(CONFIG + offset + i, 1) for i in range(n)])

    async def start(self, wanted: int) -> int:
        """Reset, ACKNOWLEDGE, DRIVER, accept ``wanted`` & offered; returns the accepted bits."""
        await self.write(DEVICE_STATUS, 0, 1)
        await self.write(DEVICE_STATUS, ACKNOWLEDGE, 1)
        await self.write(DEVICE_STATUS, ACKNOWLEDGE | DRIVER, 1)
        accepted = await self.read(HOST_FEATURES, 4) & wanted
        await self.write(GUEST_FEATURES, accepted, 4)
        return accepted

    async def queue(self, proc, index: int) -> LegacyQueue:
        """Queue ``index`` at its (fixed) size, in a fresh contiguous chunk."""
        await self.write(QUEUE_SELECT, index, 2)
        size = await self.read(QUEUE_SIZE, 2)
        if not size or size & (size - 1):
            raise SyscallError(abi.PARAM, detail=f"queue {index} has size {size}")
        used = (16 * size + 6 + 2 * size + PAGE - 1) & ~(PAGE - 1)
        chunk = await proc.malloc(used + 6 + 8 * size, DMA_LIMIT)
        await self.write(QUEUE_ADDRESS, chunk.phys // PAGE, 4)
        return LegacyQueue(self, index, size, chunk, used)

    async def driver_ok(self) -> None:
        await self.write(DEVICE_STATUS, ACKNOWLEDGE | DRIVER | DRIVER_OK, 1)

    async def status(self) -> int:
        return await self.read(DEVICE_STATUS, 1)

    async def isr(self) -> int:
        """ISR status, which the read clears (and lowers the line)."""
        return await self.read(ISR_STATUS, 1)


class LegacyQueue:
    """The driver's half of one split queue in the legacy layout."""

    def __init__(self, device: LegacyDevice, index: int, size: int, chunk: Chunk, used_offset: int) -> None:
        self.device = device
        self.index = index
        self.size = size
        self.chunk = chunk
        self.avail = 16 * size
        self.used = used_offset
        self.avail_idx = 0
        self.last_used = 0

    def set_desc(self, i: int, addr: int, n: int, flags: int, nxt: int = 0) -> None:
        self.chunk.write(16 * i, DESC.pack(addr, n, flags, nxt))

    def offer(self, head: int) -> None:
        """Put a chain's head in the available ring: the entry first, then the index."""
        self.chunk.write(self.avail + 4 + 2 * (self.avail_idx % self.size), struct.pack("<H", head))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.chunk.write(self.avail + 2, struct.pack("<H", self.avail_idx))

    async def notify(self) -> None:
        await self.device.write(QUEUE_NOTIFY, self.index, 2)

    def take_used(self) -> list[tuple[int, int]]:
        """(head, bytes written) of every chain the device returned since the last call."""
        out = []
        idx = int.from_bytes(self.chunk.read(self.used + 2, 2), "little")
        while self.last_used != idx:
            slot = self.used + 4 + 8 * (self.last_used % self.size)
            head, n = _USED.unpack(self.chunk.read(slot, 8))
            out.append((head, n))
            self.last_used = (self.last_used + 1) & 0xFFFF
        return out
