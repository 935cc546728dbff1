"""Memory chunks: the pages that messages carry from one process to another.

Every read and write a user program makes of its own memory goes through a Chunk: this module is
the one place that touches the gate's load/store (std/time.py's kernel-info page aside, which is
not a chunk). A Chunk knows how many bytes it really spans and refuses anything outside them,
because a read past the end of a chunk is a page fault that kills the whole process -- and for a
server, a client claiming a longer length than the chunk it sent must not be able to do that.

Where the size comes from decides what the check is worth:

* ``await Chunk.allocate(sys, n)`` (and ``proc.malloc``): the pages malloc gave us;
* ``await Chunk.received(sys, mem)``: a chunk a message brought, sized by one ``chunk_info``
  syscall (base and size as the kernel maps them), never by the length the sender claims;
* ``Chunk(sys, vaddr, size)``: memory whose size this process knows already (its own stack).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from euralios.std import abi
from euralios.std.errors import SyscallError
from euralios.std.message import Memory

if TYPE_CHECKING:
    from euralios.std.syscalls import Sys


class Chunk:
    """A chunk of this process' memory: `.vaddr`, `.size`, checked byte access, and `free()`.

    Sending a chunk in a message moves it away: after that, touching it is a page fault that
    kills the process, because its pages are no longer mapped here."""

    __slots__ = ("sys", "vaddr", "size", "phys")

    def __init__(self, sys: Sys, vaddr: int, size: int, phys: int = 0) -> None:
        self.sys = sys
        self.vaddr = vaddr
        self.size = size
        self.phys = phys  # physical address of vaddr (contiguous chunks only; else 0)

    @classmethod
    async def allocate(cls, sys: Sys, nbytes: int, max_physaddr: int = 0) -> Chunk:
        """A fresh chunk of at least nbytes (whole pages; at least one)."""
        pages = -(-nbytes // abi.PAGE) or 1
        vaddr, phys = await sys.malloc(pages, max_physaddr)
        return cls(sys, vaddr, pages * abi.PAGE, phys)

    @classmethod
    async def received(cls, sys: Sys, mem: Memory) -> Chunk:
        """The chunk a message brought, from `mem.vaddr` to the end of the chunk that holds it,
        as the kernel says (one chunk_info). SyscallError if no chunk of ours is there."""
        vaddr = mem.vaddr
        base, size, phys = await sys.chunk_info(vaddr)
        room = base + size - vaddr  # below 0 when vaddr lies in the slot but past the pages
        return cls(sys, vaddr, room if room > 0 else 0, phys + (vaddr - base) if phys else 0)

    @property
    def memory(self) -> Memory:
        """The word that sends this chunk in a message."""
        return Memory(self.vaddr)

    def read(self, offset: int = 0, n: int = -1) -> bytes:
        """n bytes from offset (all the rest with n < 0). Outside the chunk: SyscallError(PARAM),
        which a server answers as a bad request instead of dying of the page fault."""
        if n < 0:
            n = self.size - offset
        if offset < 0 or offset + n > self.size:
            raise SyscallError(abi.PARAM, detail=f"read of {n} bytes at {offset} outside a {self.size}-byte chunk")
        return self.sys.gate.load(self.vaddr + offset, n)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Store data at offset. Outside the chunk: SyscallError(PARAM)."""
        if offset < 0 or offset + len(data) > self.size:
            raise SyscallError(abi.PARAM,
                               detail=f"write of {len(data)} bytes at {offset} outside a {self.size}-byte chunk")
        self.sys.gate.store(self.vaddr + offset, data)

    async def free(self) -> None:
        await self.sys.free(self.vaddr)

    def __repr__(self) -> str:
        return f"Chunk(vaddr={self.vaddr:#x}, size={self.size})"
