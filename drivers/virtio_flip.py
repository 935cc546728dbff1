"""Receive buffers that are chunks of their own, handed to the client whole (page flipping).

With GUEST_TSO4 a frame may be 64 KiB. Copied out of a shared buffer area into the client's
chunk, each one cost the driver a 64 KiB load, a join and a 64 KiB store into a chunk that had
just arrived (a page walk and a TLB refill of 16 entries): a third of the driver's work per
frame. So each receive buffer is a physically contiguous chunk of FLIP_PAGES pages, one
descriptor pointing OFFSET bytes into it, and a large frame stays where the device wrote it
(a :class:`Held` in the driver's FIFO) until a header client asks: then the chunk itself is the
reply -- the two bytes before the header are the frame's length, so the chunk holds a one-entry
header batch -- and the chunk the client brought (when it is contiguous and large enough: one of
ours, back from an earlier reply) takes its place in the ring. The pages move; nothing is
copied. Small frames (up to SMALL bytes: ACKs, ARP, DHCP) are copied out and their buffer
offered again at once, as are frames a plain client reads (finished in software first).

Linux's virtio-net does the same for big packets (receive_big: pages handed up the stack), and
netfront did page flipping proper; here the page tables are the kernel's, so a chunk moves
between address spaces by one PDPT entry (merriwig's memory chunks).
"""

from __future__ import annotations

from typing import Any

from drivers.virtqueue import VirtQueue
from euralios.std import Chunk, SyscallError, abi
from proto.virtio import DESC_F_WRITE
from proto.wire.vnet import HDR_LEN

FLIP_PAGES = 17  # a 64 KiB frame, its virtio-net header and the batch length before them
FLIP_BYTES = FLIP_PAGES * abi.PAGE
OFFSET = 2  # where the device writes: the u16 length of a one-entry header batch goes first
FLIP_ROOM = FLIP_BYTES - OFFSET  # what one buffer's descriptor offers the device
FLIP_BUFFERS = 128  # receive buffers (8.5 MiB of RAM): a burst of 128 frames is taken without loss
SMALL = 1518  # a plain frame (an 802.1Q tag included): copied, the buffer kept in the ring
SPARE_MAX = 8  # chunks kept beyond the ring's need (more are freed)
LOW_WATER = FLIP_BUFFERS // 4  # buffers away (Held) before new chunks are made for them
#: The most buffer chunks the driver holds at once, bound, spare or Held in its FIFO (10.6 MiB):
#: past it, frames that nobody reads are dropped by the card for want of buffers, not stored.
CHUNKS_MAX = FLIP_BUFFERS + LOW_WATER
MAX_PHYS = 0xFFFF_FFFF_FFFF


class Held:
    """A received frame still in its buffer: header + frame, ``length`` bytes at OFFSET."""

    __slots__ = ("chunk", "length")

    def __init__(self, chunk: Chunk, length: int) -> None:
        self.chunk = chunk
        self.length = length

    def __len__(self) -> int:
        return self.length

    def read(self) -> bytes:
        """The header + frame, copied out (for a plain client, or one without a chunk to swap)."""
        return self.chunk.read(OFFSET, self.length)

    def as_batch(self) -> int:
        """Make the chunk a one-entry header batch (the frame's length before it); its size."""
        self.chunk.write(0, (self.length - HDR_LEN).to_bytes(2, "little"))
        return OFFSET + self.length


class FlipRing:
    """The receive queue's buffers: descriptor head -> the chunk it points into."""

    def __init__(self, sys: Any, rx: VirtQueue) -> None:
        self.sys = sys
        self.rx = rx
        self.bound: dict[int, Chunk] = {}
        self.unbound: list[int] = []  # descriptors whose chunk went to a client
        self.spare: list[Chunk] = []  # chunks to bind: clients' returned ones, copied-out ones
        self.held = 0  # chunks taken out of the ring with a frame, still in the driver's FIFO

    async def start(self, count: int = FLIP_BUFFERS) -> None:
        """Take ``count`` descriptors of the queue, each bound to a new chunk, all offered."""
        rx = self.rx
        self.unbound.extend(rx.free.popleft() for _ in range(min(count, len(rx.free))))
        await self.refill()

    @staticmethod
    def usable(chunk: Chunk | None) -> bool:
        """Whether a client's chunk can be a receive buffer (physically contiguous, and large)."""
        return chunk is not None and bool(chunk.phys) and chunk.size >= FLIP_BYTES

    def read(self, head: int, length: int) -> bytes:
        return self.bound[head].read(OFFSET, length)

    def num_buffers(self, head: int) -> int:
        """The header's num_buffers of the frame in ``head``'s buffer (MRG_RXBUF)."""
        nb = self.bound[head].read(OFFSET + HDR_LEN - 2, 2)
        return nb[0] | nb[1] << 8

    def take(self, head: int, length: int) -> Held:
        """The frame in ``head``'s buffer, kept there: the descriptor waits for another chunk."""
        chunk = self.bound.pop(head)
        self.unbound.append(head)
        self.held += 1
        return Held(chunk, length)

    def give(self, chunk: Chunk) -> None:
        """A client's chunk for the ring."""
        self.spare.append(chunk)

    def copied(self, held: Held) -> None:
        """A Held frame was copied out: its chunk is a buffer again."""
        self.held -= 1
        self.spare.append(held.chunk)

    def handed(self) -> None:
        """A Held frame's chunk went to a client."""
        self.held -= 1

    def bind(self) -> None:
        """Spare chunks onto the descriptors that lack one, offered to the device (not kicked)."""
        heads = []
        while self.unbound and self.spare:
            head, chunk = self.unbound.pop(), self.spare.pop()
            self.rx.post(head, chunk.phys + OFFSET, FLIP_ROOM, DESC_F_WRITE)
            self.bound[head] = chunk
            heads.append(head)
        if heads:
            self.rx.offer(heads)

    async def refill(self) -> None:
        """bind(), with new chunks for descriptors no spare is left for (none when memory is
        short, or CHUNKS_MAX are held: fewer buffers until chunks come back); spares beyond
        SPARE_MAX freed."""
        while len(self.spare) < len(self.unbound) and len(self.bound) + len(self.spare) + self.held < CHUNKS_MAX:
            try:
                self.spare.append(await Chunk.allocate(self.sys, FLIP_BYTES, MAX_PHYS))
            except SyscallError:
                break
        self.bind()
        while len(self.spare) > SPARE_MAX:
            await self.discard(self.spare.pop())

    async def discard(self, chunk: Chunk) -> None:
        try:
            await chunk.free()
        except SyscallError:
            pass
