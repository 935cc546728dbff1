"""virtio-9p driver: one host folder (``--share``) served as a file system on handle 0.

    virtio_9p TAG [--readonly]

Started by init with I/O privilege, its stdin mounted at /host/TAG (programs/init/services.py).
It asks /pci for the virtio-9p functions (1AF4:1009, or 1AF4:1049), reads each one's mount tag
from its config (``tag_len`` le16 + tag) and drives the one whose tag is TAG, through the legacy
interface (drivers/virtio_legacy.py says why): MOUNT_TAG accepted, one request queue set up,
DRIVER_OK. Then :class:`VirtioTransport` carries vfs.ninep's 9P frames and
``serve_ninep`` serves the folder's tree on handle 0 until it is unmounted; ``--readonly``
mounts it not writable (the device refuses changes with EROFS as well).

The transport. Each request takes a *slot*: two descriptors, ``2n`` (device-readable, the
T-message) chained to ``2n+1`` (device-writable, room for a whole R-message of ``max_message``
bytes), both in one contiguous chunk of the slot's. rpc writes the frame, offers head ``2n``,
kicks, and sleeps until the interrupt thread finds ``2n`` in the used ring; the reply is the
bytes the device says it wrote. Requests from several session threads are in flight at once,
matched by head id; slots are made when all are busy, up to half the queue (no more chains fit)
and SLOT_BUDGET bytes of them, after which a caller waits for a free one. No polling: the
interrupt thread sleeps in await_interrupt and callers in a Condition (euralios.std.sync).

If the device stops (NEEDS_RESET: a configuration interrupt) every waiting and later call
raises TransportError: the mount then answers errors (vfs.ninep closes it), never hangs.
"""

from __future__ import annotations

from drivers.virtio_legacy import (
    DESC_F_NEXT,
    DESC_F_WRITE,
    DMA_LIMIT,
    ISR_CONFIG,
    NEEDS_RESET,
    LegacyDevice,
    LegacyQueue,
    enable_bus_master,
    io_base,
    pci_devices,
)
from euralios.std import STDIN, Chunk
from euralios.std.protocols.shares import DEVICES, VENDOR
from euralios.std.sync import Condition
from proto.ninep import VIRTFS_MSIZE
from vfs.ninep import TransportError, serve_ninep

MOUNT_TAG = 1 << 0
# The largest frame either way: what the board's ShareServer offers (VIRTFS_MSIZE), far above
# Linux's 128 KiB because every Tread costs a kick, a host thread hop and an interrupt whatever
# its size: a 1 MiB READ of a file is one Tread, not eight.
MSIZE = VIRTFS_MSIZE
# Memory for slots, at most: each slot holds a request and a reply of MSIZE, contiguous, so
# this caps the requests in flight (7 at 1 MiB) as much as the queue does.
SLOT_BUDGET = 16 << 20
REQUESTS = 0


class _Slot:
    __slots__ = ("head", "chunk", "done")

    def __init__(self, head: int, chunk: Chunk) -> None:
        self.head = head
        self.chunk = chunk  # [0, max_message): the request; [max_message, 2*max_message): the reply
        self.done: int | None = None  # bytes the device wrote, once it is used


class VirtioTransport:
    """vfs.ninep's Transport over one virtio-9p request queue (see the module docstring)."""

    def __init__(self, proc, queue: LegacyQueue, max_message: int = MSIZE) -> None:
        self.proc = proc
        self.queue = queue
        self.max_message = max_message
        self.max_slots = max(1, min(queue.size // 2, SLOT_BUDGET // (2 * max_message)))
        self.slots: list[_Slot] = []
        self.free: list[_Slot] = []
        self.by_head: dict[int, _Slot] = {}
        self.changed = Condition(proc.sys, proc.now)
        self.failed: TransportError | None = None
        self.stats = dict.fromkeys(("requests", "interrupts", "waits_for_slot"), 0)

    async def _slot(self) -> _Slot:
        while not self.free:
            if len(self.slots) < self.max_slots:
                # Taken before the malloc: another thread may make a slot while we wait for it.
                head = 2 * len(self.slots)
                self.slots.append(None)  # type: ignore[arg-type]
                slot = _Slot(head, await self.proc.malloc(2 * self.max_message, DMA_LIMIT))
                self.slots[head // 2] = slot
                self.by_head[head] = slot
                return slot
            self.stats["waits_for_slot"] += 1
            await self.changed.wait_until(lambda: bool(self.free) or self.failed is not None)
            if self.failed is not None:
                raise self.failed
        return self.free.pop()

    async def rpc(self, request: bytes) -> bytes:
        if self.failed is not None:
            raise self.failed
        if not 7 <= len(request) <= self.max_message:
            raise TransportError(f"a {len(request)}-byte 9P frame (at most {self.max_message})")
        slot = await self._slot()
        try:
            slot.done = None
            slot.chunk.write(0, request)
            q, base, head = self.queue, slot.chunk.phys, slot.head
            q.set_desc(head, base, len(request), DESC_F_NEXT, head + 1)
            q.set_desc(head + 1, base + self.max_message, self.max_message, DESC_F_WRITE)
            q.offer(head)
            self.stats["requests"] += 1
            await q.notify()
            await self.changed.wait_until(lambda: slot.done is not None or self.failed is not None)
            if slot.done is None:
                assert self.failed is not None
                raise self.failed
            if slot.done > self.max_message:
                raise TransportError(f"the device claims a {slot.done}-byte reply")
            return slot.chunk.read(self.max_message, slot.done)
        finally:
            if self.failed is None:
                self.free.append(slot)
                await self.changed.notify()

    async def interrupts(self) -> None:
        """The interrupt thread: acknowledge (read ISR), then hand every used chain to its caller."""
        device = self.queue.device
        sys = self.proc.sys
        while self.failed is None:
            await sys.await_interrupt(device.irq)
            self.stats["interrupts"] += 1
            isr = await device.isr()
            for head, n in self.queue.take_used():
                slot = self.by_head.get(head)
                if slot is not None:
                    slot.done = n
            if isr & ISR_CONFIG and await device.status() & NEEDS_RESET:
                self.failed = TransportError("the virtio-9p device stopped (it needs a reset)")
            await self.changed.notify()


async def find(proc, tag: str) -> tuple[LegacyDevice, int] | None:
    """The device whose mount tag is ``tag`` and its PCI address."""
    sys = proc.sys
    for d in await pci_devices(sys, VENDOR, DEVICES):
        io, irq = io_base(d), d.get("irq")
        if io is None or not isinstance(irq, int):
            continue
        device = LegacyDevice(sys, io, irq)
        n = int.from_bytes(await device.config(0, 2), "little")
        if 0 < n <= 255 and (await device.config(2, n)).decode(errors="replace") == tag:
            return device, int(d["address"])
    return None


async def main(proc) -> int:
    args = list(proc.args[1:])
    readonly = "--readonly" in args
    rest = [a for a in args if a != "--readonly"]
    if len(rest) != 1:
        await proc.say("[virtio-9p] usage: virtio_9p TAG [--readonly]")
        return 2
    tag = rest[0]
    found = await find(proc, tag)
    if found is None:
        await proc.say(f"[virtio-9p] no device with mount tag {tag!r}")
        return 1
    device, address = found
    await enable_bus_master(proc.sys, address)
    if not await device.start(MOUNT_TAG) & MOUNT_TAG:
        await proc.say(f"[virtio-9p] {tag}: the device does not offer MOUNT_TAG")
        return 1
    queue = await device.queue(proc, REQUESTS)
    await device.driver_ok()
    transport = VirtioTransport(proc, queue)
    await proc.spawn_thread(transport.interrupts)
    return await serve_ninep(proc, STDIN, transport, writable=not readonly, msize=MSIZE)
