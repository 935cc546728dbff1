"""A virtio device's bus-master access to guest RAM: bounds-checked, RAM only.

Virtqueues live in RAM and every address in them comes from the driver, so each one is checked
here: an address that is not wholly inside RAM raises :class:`DmaError`, which the device turns
into DEVICE_NEEDS_RESET (virtio 1.2 §2.1.1: the device signals it cannot go on) instead of a
crash. DMA never reaches device memory (no peer-to-peer), so a ring placed in a BAR is an error
too. Writes go through :meth:`PhysicalMemory.write` so write watches (the VGA's) still fire.
"""

from __future__ import annotations

import struct

from machine.memory import PhysicalMemory
from proto.virtio import DESC

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


class DmaError(Exception):
    """The driver gave the device an address outside RAM (the text says which and why)."""


class Dma:
    """Reads and writes of guest RAM by one device."""

    __slots__ = ("memory", "buf", "size")

    def __init__(self, memory: PhysicalMemory) -> None:
        self.memory = memory
        self.buf = memory.buf
        self.size = memory.size

    def check(self, addr: int, n: int, what: str) -> None:
        if addr < 0 or n < 0 or addr + n > self.size:
            raise DmaError(f"{what} at {addr:#x}+{n} is outside RAM")

    def read(self, addr: int, n: int, what: str = "buffer") -> bytes:
        self.check(addr, n, what)
        return bytes(self.buf[addr:addr + n])

    def write(self, addr: int, data: bytes | bytearray | memoryview, what: str = "buffer") -> None:
        self.check(addr, len(data), what)
        self.memory.write(addr, data)

    def u16(self, addr: int, what: str) -> int:
        self.check(addr, 2, what)
        return int(_U16.unpack_from(self.buf, addr)[0])

    def u16s(self, addr: int, count: int, what: str) -> list[int]:
        """``count`` consecutive little-endian u16 from ``addr``."""
        self.check(addr, 2 * count, what)
        return list(struct.unpack_from(f"<{count}H", self.buf, addr))

    def put_u16(self, addr: int, value: int, what: str) -> None:
        self.check(addr, 2, what)
        self.memory.write(addr, _U16.pack(value & 0xFFFF))

    def put_u32(self, addr: int, value: int, what: str) -> None:
        self.check(addr, 4, what)
        self.memory.write(addr, _U32.pack(value & 0xFFFF_FFFF))

    def descriptor(self, addr: int, what: str) -> tuple[int, int, int, int]:
        """(addr, len, flags, next) of the 16-byte descriptor at ``addr``."""
        self.check(addr, 16, what)
        a, n, flags, nxt = DESC.unpack_from(self.buf, addr)
        return int(a), int(n), int(flags), int(nxt)
