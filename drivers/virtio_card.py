"""Bringing a virtio-net-pci card up for drivers/virtio_net.py: PCI, capabilities, BAR, status.

The card through /pci: FIND_DEVICE 1AF4:1000, ENABLE_BUS_MASTERING, the IRQ line from QUERY, the
capability list walked with READ_CONFIG (status bit 4 says there is one; each vendor-specific
capability, id 0x09, gives cfg_type, BAR, offset, length, and for NOTIFY the multiplier), the BAR
read with READ_BAR (a 64-bit memory BAR: its high half is the next BAR) and mapped with MAP_PHYS.
Registers are then loads and stores in that mapping, of their natural width.

Then virtio 1.2 §3.1.1: reset (0), ACKNOWLEDGE, DRIVER, the 64 offered feature bits read in two
halves, the accepted subset written, FEATURES_OK set and read back (clear: refused), each queue
configured (size, the three addresses in 32-bit halves, enable), DRIVER_OK.
"""

from __future__ import annotations

from typing import Any

from drivers.virtqueue import VirtQueue, ring_bytes
from euralios.std import Chunk, SyscallError, abi
from euralios.std.protocols.pci import (
    ADDRESS,
    BAR,
    CONFIG,
    ENABLE_BUS_MASTERING,
    FIND_DEVICE,
    READ_BAR,
    READ_CONFIG,
    device_irq,
)
from proto.virtio import (
    PCI_CAP_VENDOR,
    TRANSITIONAL_NET,
    VIRTIO_VENDOR,
    CapType,
    Common,
    Feature,
    Status,
)

DEFAULT_IRQ = 11
SLOT = 2048  # one transmit slot, and one receive buffer for plain frames
MAX_QUEUE = 256
BASIC = Feature.VERSION_1 | Feature.NET_MAC | Feature.NET_STATUS | Feature.NET_MRG_RXBUF | Feature.EVENT_IDX
OFFLOADS = Feature.NET_CSUM | Feature.NET_HOST_TSO4 | Feature.NET_GUEST_CSUM | Feature.NET_GUEST_TSO4
OFFLOAD_BITS = int(OFFLOADS)
CAPS_MAX = 48  # a capability list longer than this loops
_CAP_TYPES = frozenset(int(t) for t in CapType)


class Card:
    """The card's registers, through the mapping of the BAR its capabilities point into."""

    def __init__(self, sys: Any, window: Chunk, caps: dict[int, tuple[int, int]], multiplier: int, irq: int) -> None:
        self.sys = sys
        self.window = window
        self.caps = caps  # cfg_type -> (offset in the window, length)
        self.multiplier = multiplier
        self.irq = irq
        self.features = 0
        self.mac = bytes(6)
        self.notify_offsets: dict[int, int] = {}

    @property
    def offloads(self) -> bool:
        return bool(self.features & OFFLOAD_BITS)

    def _get(self, cfg: CapType, off: int, size: int) -> int:
        return int.from_bytes(self.window.read(self.caps[cfg][0] + off, size), "little")

    def _put(self, cfg: CapType, off: int, size: int, value: int) -> None:
        self.window.write(self.caps[cfg][0] + off, value.to_bytes(size, "little"))

    def common(self, reg: Common, size: int) -> int:
        return self._get(CapType.COMMON_CFG, reg, size)

    def set_common(self, reg: Common, size: int, value: int) -> None:
        self._put(CapType.COMMON_CFG, reg, size, value)

    def status(self) -> int:
        return self.common(Common.DEVICE_STATUS, 1)

    def set_status(self, value: int) -> None:
        self.set_common(Common.DEVICE_STATUS, 1, value)

    def isr(self) -> int:
        """ISR status, read to clear (lowers the interrupt line)."""
        return self._get(CapType.ISR_CFG, 0, 1)

    def device_cfg(self, off: int, size: int) -> int:
        return self._get(CapType.DEVICE_CFG, off, size)

    async def notify(self, queue: int) -> None:
        self._put(CapType.NOTIFY_CFG, self.notify_offsets[queue] * self.multiplier, 2, queue)

    def offered(self) -> int:
        out = 0
        for half in (0, 1):
            self.set_common(Common.DEVICE_FEATURE_SELECT, 4, half)
            out |= self.common(Common.DEVICE_FEATURE, 4) << (32 * half)
        return out

    def accept(self, features: int) -> None:
        for half in (0, 1):
            self.set_common(Common.DRIVER_FEATURE_SELECT, 4, half)
            self.set_common(Common.DRIVER_FEATURE, 4, (features >> (32 * half)) & 0xFFFF_FFFF)

    def setup_queue(self, index: int, ring: Chunk, buffers: Chunk | None, size: int, event_idx: bool,
                    slot: int = SLOT) -> VirtQueue:
        self.set_common(Common.QUEUE_SELECT, 2, index)
        self.set_common(Common.QUEUE_SIZE, 2, size)
        q = VirtQueue(ring, buffers, size, slot, event_idx)
        for reg, addr in ((Common.QUEUE_DESC, q.desc_phys), (Common.QUEUE_DRIVER, q.avail_phys),
                          (Common.QUEUE_DEVICE, q.used_phys)):
            self.set_common(reg, 4, addr & 0xFFFF_FFFF)
            self._put(CapType.COMMON_CFG, reg + 4, 4, addr >> 32)
        self.notify_offsets[index] = self.common(Common.QUEUE_NOTIFY_OFF, 2)
        self.set_common(Common.QUEUE_ENABLE, 2, 1)
        return q


def choose(offered: int, offloads: bool) -> int:
    """The features we accept of those offered: BASIC and (unless told not to) the offloads,
    each only with what it depends on (§5.1.3.1)."""
    want = offered & (BASIC | (OFFLOADS if offloads else 0))
    if not want & Feature.NET_CSUM:
        want &= ~Feature.NET_HOST_TSO4
    if not want & Feature.NET_GUEST_CSUM:
        want &= ~Feature.NET_GUEST_TSO4
    return int(want)


def flips(features: int) -> bool:
    """Whether receive buffers are chunks of their own (drivers/virtio_flip.py): with
    GUEST_TSO4, whose 64 KiB frames are worth handing over whole. Otherwise every frame fits one
    2 KiB slot (§5.1.6.3.1: no MRG_RXBUF needed)."""
    return bool(features & Feature.NET_GUEST_TSO4)


async def find(proc: Any) -> tuple[int, int, dict[int, tuple[int, int, int]], int] | None:
    """(PCI address, IRQ, cfg_type -> (bar, offset, length), notify multiplier), from /pci."""
    sys = proc.sys
    h, _ = await sys.open("/pci")
    try:
        reply = await sys.rcall(h, FIND_DEVICE, VIRTIO_VENDOR, TRANSITIONAL_NET)
        if reply.tag != ADDRESS:
            return None
        address = reply.d2
        await sys.rcall(h, ENABLE_BUS_MASTERING, address, 0)

        async def config(offset: int) -> int:
            return (await sys.rcall(h, READ_CONFIG, address, offset, expect=CONFIG)).d2

        caps: dict[int, tuple[int, int, int]] = {}
        multiplier = 0
        if (await config(0x04)) >> 16 & 0x10:  # status: capabilities list
            node = (await config(0x34)) & 0xFC
            for _ in range(CAPS_MAX):
                if not node:
                    break
                head = await config(node)
                if head & 0xFF == PCI_CAP_VENDOR:
                    cfg_type = head >> 24
                    bar = (await config(node + 4)) & 0xFF
                    if cfg_type not in caps and cfg_type in _CAP_TYPES:
                        caps[cfg_type] = (bar, await config(node + 8), await config(node + 12))
                        if cfg_type == CapType.NOTIFY_CFG:
                            multiplier = await config(node + 16)
                node = head >> 8 & 0xFC
        irq = await device_irq(sys, h, address, DEFAULT_IRQ)
        bars = {}
        for bar in {b for b, _, _ in caps.values()}:
            low = (await sys.rcall(h, READ_BAR, address, bar, expect=BAR)).d2
            if low & 1:
                raise SyscallError(abi.PARAM, detail=f"BAR{bar} is an I/O BAR: no modern interface")
            base = low & ~0xF
            if low & 0x6 == 0x4:
                base |= (await sys.rcall(h, READ_BAR, address, bar + 1, expect=BAR)).d2 << 32
            bars[bar] = base
        return address, irq, {t: (bars[b], off, n) for t, (b, off, n) in caps.items()}, multiplier
    finally:
        await sys.close(h)


async def setup(proc: Any, offloads: bool) -> tuple[Card | None, VirtQueue | None, VirtQueue | None]:
    """The card brought up to DRIVER_OK with both queues, or Nones (the reason said)."""
    found = await find(proc)
    if found is None:
        await proc.say("[virtio-net] Device not found. Exiting.")
        return None, None, None
    _, irq, caps, multiplier = found
    missing = [t.name for t in (CapType.COMMON_CFG, CapType.NOTIFY_CFG, CapType.ISR_CFG, CapType.DEVICE_CFG)
               if t not in caps]
    if missing:
        await proc.say(f"[virtio-net] no {', '.join(missing)} capability: not a modern virtio device")
        return None, None, None
    # One mapping of the pages from the lowest region to the end of the highest.
    start = min(base + off for base, off, _ in caps.values()) & ~(abi.PAGE - 1)
    end = max(base + off + n for base, off, n in caps.values())
    pages = -(-(end - start) // abi.PAGE)
    vaddr = await proc.sys.map_phys(start, pages)
    window = Chunk(proc.sys, vaddr, pages * abi.PAGE)
    card = Card(proc.sys, window, {t: (base + off - start, n) for t, (base, off, n) in caps.items()}, multiplier,
                irq)
    card.set_status(0)
    card.set_status(Status.ACKNOWLEDGE)
    card.set_status(Status.ACKNOWLEDGE | Status.DRIVER)
    features = choose(card.offered(), offloads)
    if not features & Feature.VERSION_1:
        card.set_status(Status.FAILED)
        await proc.say("[virtio-net] the device does not offer VERSION_1")
        return None, None, None
    card.accept(features)
    card.set_status(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK)
    if not card.status() & Status.FEATURES_OK:
        card.set_status(Status.FAILED)
        await proc.say(f"[virtio-net] the device refused features {features:#x}")
        return None, None, None
    card.features = features
    event_idx = bool(features & Feature.EVENT_IDX)
    queues = []
    for index in (0, 1):
        card.set_common(Common.QUEUE_SELECT, 2, index)
        size = min(card.common(Common.QUEUE_SIZE, 2), MAX_QUEUE)
        if not size or size & (size - 1):
            card.set_status(Status.FAILED)
            await proc.say(f"[virtio-net] queue {index}: size {size}")
            return None, None, None
        ring = await Chunk.allocate(proc.sys, ring_bytes(size), 0xFFFF_FFFF_FFFF)
        buffers = None  # with flipping the buffers come later, each a chunk of its own (offer_rx)
        if index or not flips(features):
            buffers = await Chunk.allocate(proc.sys, size * SLOT, 0xFFFF_FFFF_FFFF)
        queues.append(card.setup_queue(index, ring, buffers, size, event_idx, SLOT))
    card.mac = bytes(card.device_cfg(i, 1) for i in range(6)) if features & Feature.NET_MAC else bytes(6)
    card.set_status(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK)
    return card, queues[0], queues[1]
