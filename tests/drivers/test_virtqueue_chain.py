"""drivers/virtqueue.py's chains as the device model walks them: consecutive full slots are one
descriptor spanning them, and the device reads the same bytes as from one descriptor a slot."""

from __future__ import annotations

from drivers.virtqueue import VirtQueue, ring_bytes, used_offset
from machine.memory import PhysicalMemory
from machine.virtio.dma import Dma
from machine.virtio.queue import SplitQueue

SLOT = 2048
RING, BUFFERS = 0x10000, 0x40000


class RamChunk:
    """A physically contiguous chunk as the driver sees it, straight onto RAM."""

    def __init__(self, mem: PhysicalMemory, phys: int, size: int) -> None:
        self.mem, self.phys, self.size = mem, phys, size

    def write(self, offset: int, data: bytes) -> None:
        assert 0 <= offset and offset + len(data) <= self.size
        self.mem.write(self.phys + offset, data)

    def read(self, offset: int, n: int) -> bytes:
        assert 0 <= offset and offset + n <= self.size
        return self.mem.read(self.phys + offset, n)


def queues(size: int = 16) -> tuple[VirtQueue, SplitQueue]:
    mem = PhysicalMemory(2 << 20)
    drv = VirtQueue(RamChunk(mem, RING, ring_bytes(size)), RamChunk(mem, BUFFERS, size * SLOT), size, SLOT, False)
    dev = SplitQueue(Dma(mem), 1, max_size=size)
    dev.size, dev.desc, dev.driver, dev.device, dev.enabled = size, RING, RING + 16 * size, RING + used_offset(size), True
    return drv, dev


def pieces(data: bytes) -> list[tuple[bytes, int]]:
    return [(data[i:i + SLOT], min(SLOT, len(data) - i)) for i in range(0, len(data), SLOT)]


def test_a_frame_in_consecutive_slots_is_one_descriptor() -> None:
    drv, dev = queues()
    frame = bytes(range(256)) * 40  # 10240 bytes: five slots, the last one full too
    frame += b"tail"
    head = drv.chain(pieces(frame))
    drv.offer([head])
    chain = dev.pop()
    assert chain is not None and chain.head == head
    assert chain.readable == [(BUFFERS + head * SLOT, len(frame))]
    assert chain.read(dev.dma, 1 << 20) == frame
    dev.push([(head, 0)])
    assert len(drv.peek_used()) == 1
    drv.release(head)
    assert sorted(drv.free) == list(range(16))  # every slot the chain held comes back


def test_slots_that_wrap_make_one_descriptor_a_stretch() -> None:
    drv, dev = queues(size=8)
    for _ in range(6):  # move the free list on: the next chain starts at slot 6
        drv.free.rotate(-1)
    frame = bytes(range(256)) * 20  # 5120 bytes: slots 6, 7, then 0
    head = drv.chain(pieces(frame))
    drv.offer([head])
    chain = dev.pop()
    assert chain is not None
    assert chain.readable == [(BUFFERS + 6 * SLOT, 2 * SLOT), (BUFFERS, len(frame) - 2 * SLOT)]
    assert chain.read(dev.dma, 1 << 20) == frame


def test_receive_buffers_stay_one_slot_each() -> None:
    drv, dev = queues(size=4)
    heads = [drv.chain([(b"", SLOT)], 2) for _ in range(4)]  # DESC_F_WRITE
    drv.offer(heads)
    chains = dev.pop_many(4)
    assert [c.writable for c in chains] == [[(BUFFERS + h * SLOT, SLOT)] for h in heads]
