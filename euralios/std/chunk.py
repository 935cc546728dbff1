"""Memory chunks: the pages that messages carry from one process to another."""

from __future__ import annotations

from typing import Any


class Chunk:
    """A chunk of this process' memory: `.vaddr`, `.size`, byte access, and `free()`.

    Sending a chunk in a message moves it away: after that, touching it is a page fault that
    kills the process, because its pages are no longer mapped here."""

    __slots__ = ("sys", "vaddr", "size", "phys")

    def __init__(self, sys: Any, vaddr: int, size: int, phys: int = 0) -> None:
        self.sys = sys
        self.vaddr = vaddr
        self.size = size
        self.phys = phys

    def read(self, offset: int = 0, n: int = -1) -> bytes:
        if n < 0:
            n = self.size - offset
        if offset < 0 or offset + n > self.size:
            raise ValueError(f"read of {n} bytes at {offset} outside a {self.size}-byte chunk")
        return self.sys.gate.load(self.vaddr + offset, n)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        if offset < 0 or offset + len(data) > self.size:
            raise ValueError(f"write of {len(data)} bytes at {offset} outside a {self.size}-byte chunk")
        self.sys.gate.store(self.vaddr + offset, data)

    async def free(self) -> None:
        await self.sys.free(self.vaddr)

    def __repr__(self) -> str:
        return f"Chunk(vaddr={self.vaddr:#x}, size={self.size})"
