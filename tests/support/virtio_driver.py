"""A minimal virtio driver for tests: what a real driver does, through the machine's own doors.

Configuration space through ports 0xCF8/0xCFC, the capability walk, BAR4's registers through
physical loads and stores (which PhysicalMemory routes to the MMIO map, as a CPU's would be),
the legacy BAR0 through port I/O, and the driver's half of split virtqueues in RAM.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from machine.board import Machine
from proto.virtio import PCI_CAP_VENDOR, CapType, Common, Legacy, Status

DESC = struct.Struct("<QIHH")
F_NEXT, F_WRITE, F_INDIRECT = 1, 2, 4


class Cfg:
    """PCI configuration mechanism #1 through the port bus."""

    def __init__(self, machine: Machine, slot: int = 3) -> None:
        self.ports = machine.ports
        self.slot = slot

    def read(self, reg: int, size: int = 4) -> int:
        self.ports.write(0xCF8, 4, 0x8000_0000 | self.slot << 11 | (reg & 0xFC))
        return self.ports.read(0xCFC + (reg & 3), size)

    def write(self, reg: int, value: int, size: int = 4) -> None:
        self.ports.write(0xCF8, 4, 0x8000_0000 | self.slot << 11 | (reg & 0xFC))
        self.ports.write(0xCFC + (reg & 3), size, value)

    def caps(self) -> dict[int, tuple[int, int, int, int, int]]:
        """cfg_type -> (cap offset, bar, offset, length, notify multiplier) from the list walk."""
        out: dict[int, tuple[int, int, int, int, int]] = {}
        assert self.read(0x06, 2) & 0x10, "no capability list"
        node = self.read(0x34, 1) & 0xFC
        seen = 0
        while node:
            seen += 1
            assert seen < 48, "capability list loops"
            if self.read(node, 1) == PCI_CAP_VENDOR:
                cfg_type = self.read(node + 3, 1)
                mult = self.read(node + 16) if cfg_type == CapType.NOTIFY_CFG else 0
                out.setdefault(cfg_type, (node, self.read(node + 4, 1), self.read(node + 8), self.read(node + 12), mult))
            node = self.read(node + 1, 1) & 0xFC
        return out

    def bar(self, index: int) -> int:
        low = self.read(0x10 + 4 * index)
        if low & 1:
            return low & 0xFFFF_FFFC
        base = low & 0xFFFF_FFF0
        if low & 0x6 == 0x4:
            base |= self.read(0x10 + 4 * (index + 1)) << 32
        return base


@dataclass
class DriverQueue:
    """The driver's half of a split queue in RAM."""

    mem: object
    index: int
    size: int
    desc: int
    avail: int
    used: int
    free: list[int] = field(default_factory=list)
    avail_idx: int = 0
    last_used: int = 0

    def __post_init__(self) -> None:
        self.free = list(range(self.size))

    def add(self, buffers: list[tuple[int, int, bool]], publish: bool = True) -> int:
        """Chain ``(addr, len, device-writable)`` buffers; put the head in the available ring."""
        ids = [self.free.pop(0) for _ in buffers]
        for i, (addr, n, writable) in enumerate(buffers):
            flags = (F_WRITE if writable else 0) | (F_NEXT if i + 1 < len(buffers) else 0)
            nxt = ids[i + 1] if i + 1 < len(buffers) else 0
            self.write_desc(ids[i], addr, n, flags, nxt)
        self.offer(ids[0], publish)
        return ids[0]

    def write_desc(self, i: int, addr: int, n: int, flags: int, nxt: int = 0) -> None:
        self.mem.write(self.desc + 16 * i, DESC.pack(addr, n, flags, nxt))  # type: ignore[attr-defined]

    def offer(self, head: int, publish: bool = True) -> None:
        self.mem.write_uint(self.avail + 4 + 2 * (self.avail_idx % self.size), 2, head)  # type: ignore[attr-defined]
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        if publish:
            self.publish()

    def publish(self) -> None:
        self.mem.write_uint(self.avail + 2, 2, self.avail_idx)  # type: ignore[attr-defined]

    def set_used_event(self, value: int) -> None:
        self.mem.write_uint(self.avail + 4 + 2 * self.size, 2, value)  # type: ignore[attr-defined]

    def set_avail_flags(self, value: int) -> None:
        self.mem.write_uint(self.avail, 2, value)  # type: ignore[attr-defined]

    def used_idx(self) -> int:
        return self.mem.read_uint(self.used + 2, 2)  # type: ignore[attr-defined]

    def avail_event(self) -> int:
        return self.mem.read_uint(self.used + 4 + 8 * self.size, 2)  # type: ignore[attr-defined]

    def take_used(self) -> list[tuple[int, int]]:
        """(head, length) of every chain the device returned since the last call."""
        out = []
        while self.last_used != self.used_idx():
            slot = self.used + 4 + 8 * (self.last_used % self.size)
            head, n = struct.unpack("<II", self.mem.read(slot, 8))  # type: ignore[attr-defined]
            out.append((head, n))
            self.last_used = (self.last_used + 1) & 0xFFFF
            self._release(head)
        return out

    def _release(self, head: int) -> None:
        i = head
        while True:
            self.free.append(i)
            _, _, flags, nxt = DESC.unpack(self.mem.read(self.desc + 16 * i, 16))  # type: ignore[attr-defined]
            if not flags & F_NEXT:
                return
            i = nxt


class ModernDriver:
    """Drives the card through its capabilities and BAR4, as the later drivers/virtio_net will."""

    def __init__(self, machine: Machine, slot: int = 3, arena: int = 0x10_0000) -> None:
        self.machine = machine
        self.mem = machine.memory
        self.cfg = Cfg(machine, slot)
        self.cfg.write(0x04, 0x0007, 2)  # I/O, memory, bus master
        self.caps = self.cfg.caps()
        self.next_free = arena

    def alloc(self, n: int, align: int = 4096) -> int:
        addr = (self.next_free + align - 1) & ~(align - 1)
        self.next_free = addr + n
        self.mem.zero(addr, n)
        return addr

    def _addr(self, cfg_type: CapType, off: int) -> int:
        _, bar, offset, _, _ = self.caps[cfg_type]
        return self.cfg.bar(bar) + offset + off

    def common(self, reg: Common, size: int) -> int:
        return self.mem.read_uint(self._addr(CapType.COMMON_CFG, reg), size)

    def set_common(self, reg: Common, size: int, value: int) -> None:
        self.mem.write_uint(self._addr(CapType.COMMON_CFG, reg), size, value)

    def device_cfg(self, off: int, size: int) -> int:
        return self.mem.read_uint(self._addr(CapType.DEVICE_CFG, off), size)

    def isr(self) -> int:
        return self.mem.read_uint(self._addr(CapType.ISR_CFG, 0), 1)

    @property
    def status(self) -> int:
        return self.common(Common.DEVICE_STATUS, 1)

    def set_status(self, value: int) -> None:
        self.set_common(Common.DEVICE_STATUS, 1, value)

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

    def negotiate(self, features: int) -> bool:
        """Reset, ACKNOWLEDGE, DRIVER, the features, FEATURES_OK; whether the device kept it."""
        self.set_status(0)
        self.set_status(Status.ACKNOWLEDGE)
        self.set_status(Status.ACKNOWLEDGE | Status.DRIVER)
        self.offered()
        self.accept(features)
        self.set_status(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK)
        return bool(self.status & Status.FEATURES_OK)

    def setup_queue(self, index: int, size: int = 0) -> DriverQueue:
        self.set_common(Common.QUEUE_SELECT, 2, index)
        size = size or self.common(Common.QUEUE_SIZE, 2)
        self.set_common(Common.QUEUE_SIZE, 2, size)
        desc, avail, used = self.alloc(16 * size, 16), self.alloc(6 + 2 * size, 2), self.alloc(6 + 8 * size, 4)
        for reg, addr in ((Common.QUEUE_DESC, desc), (Common.QUEUE_DRIVER, avail), (Common.QUEUE_DEVICE, used)):
            self.set_common(reg, 4, addr & 0xFFFF_FFFF)  # 64-bit fields as two 32-bit halves
            self.mem.write_uint(self._addr(CapType.COMMON_CFG, reg + 4), 4, addr >> 32)
        self.set_common(Common.QUEUE_ENABLE, 2, 1)
        return DriverQueue(self.mem, index, size, desc, avail, used)

    def start(self, features: int, queue_size: int = 0) -> tuple[DriverQueue, DriverQueue]:
        assert self.negotiate(features), "features refused"
        rx, tx = self.setup_queue(0, queue_size), self.setup_queue(1, queue_size)
        self.set_status(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK)
        return rx, tx

    def notify(self, index: int) -> None:
        self.set_common(Common.QUEUE_SELECT, 2, index)
        off = self.common(Common.QUEUE_NOTIFY_OFF, 2)
        mult = self.caps[CapType.NOTIFY_CFG][4]
        self.mem.write_uint(self._addr(CapType.NOTIFY_CFG, off * mult), 2, index)


class LegacyDriver:
    """The legacy interface: BAR0 registers through port I/O (virtio 1.2 §4.1.4.8)."""

    def __init__(self, machine: Machine, slot: int = 3) -> None:
        self.machine = machine
        self.mem = machine.memory
        self.cfg = Cfg(machine, slot)
        self.cfg.write(0x04, 0x0005, 2)  # I/O and bus master
        self.io = self.cfg.bar(0)
        self.ports = machine.ports

    def reg(self, reg: Legacy, size: int) -> int:
        return self.ports.read(self.io + reg, size)

    def set_reg(self, reg: Legacy, size: int, value: int) -> None:
        self.ports.write(self.io + reg, size, value)

    def setup_queue(self, index: int, page: int) -> DriverQueue:
        """The legacy layout at page frame ``page`` (its size is the device's)."""
        self.set_reg(Legacy.QUEUE_SELECT, 2, index)
        size = self.reg(Legacy.QUEUE_SIZE, 2)
        desc = page * 4096
        avail = desc + 16 * size
        used = (avail + 6 + 2 * size + 4095) & ~4095
        self.mem.zero(desc, used + 6 + 8 * size - desc)
        self.set_reg(Legacy.QUEUE_ADDRESS, 4, page)
        return DriverQueue(self.mem, index, size, desc, avail, used)
