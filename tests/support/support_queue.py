"""A device-side SplitQueue and a driver's half over the same small RAM (queue model tests)."""

from __future__ import annotations

from virtio_driver import DriverQueue

from machine.memory import PhysicalMemory
from machine.virtio.dma import Dma
from machine.virtio.queue import SplitQueue


def make_queue(size: int = 8) -> tuple[SplitQueue, DriverQueue, PhysicalMemory]:
    mem = PhysicalMemory(2 << 20)
    q = SplitQueue(Dma(mem), 0, max_size=256)
    q.size = size
    q.desc, q.driver, q.device = 0x1000, 0x3000, 0x4000
    q.enabled = True
    return q, DriverQueue(mem, 0, size, q.desc, q.driver, q.device), mem
