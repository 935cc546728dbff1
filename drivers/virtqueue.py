"""The driver's half of a split virtqueue (virtio 1.2 §2.7), in one physically contiguous chunk.

drivers/virtio_net.py keeps two (receive and transmit). The layout is the modern one, which
lets the driver place the three areas anywhere (QUEUE_DESC/DRIVER/DEVICE):

    offset 0                       descriptor table  size x 16  (addr le64, len le32, flags le16, next le16)
    16 x size                      available ring    flags le16, idx le16, ring[size] le16, used_event le16
    align4(16 x size + 6 + 2 x size)  used ring      flags le16, idx le16, ring[size] (id le32, len le32), avail_event le16

Every descriptor ``i`` always points at buffer slot ``i`` of the queue's buffer chunk (``slot``
bytes each; on transmit it may span the slots after it that its chain also holds): a buffer
never moves, so handing one to the device is writing its length, flags and next, never its
address. The available index and our position in the used ring are
free-running 16-bit counters, as in the spec; the ring slot is the counter modulo the size.

Notification suppression with EVENT_IDX: we kick only when the device's ``avail_event`` says it
wants to hear (:meth:`kick_needed`), and ask for an interrupt by writing ``used_event``
(:meth:`interrupt_after`, :meth:`no_interrupts`). Without it, the NO_INTERRUPT flag and the
device's NO_NOTIFY flag do the same, coarser. The numbers are proto/virtio.py's.
"""

from __future__ import annotations

import struct
from collections import deque

from euralios.std import Chunk
from proto.virtio import (
    AVAIL_F_NO_INTERRUPT,
    DESC,
    DESC_F_NEXT,
    DESC_SIZE,
    USED_ELEM_SIZE,
    USED_F_NO_NOTIFY,
    need_event,
)

_U16 = struct.Struct("<H")


def ring_bytes(size: int) -> int:
    """The bytes of a queue of ``size`` entries in the layout above."""
    return used_offset(size) + 6 + USED_ELEM_SIZE * size


def used_offset(size: int) -> int:
    return (DESC_SIZE * size + 6 + 2 * size + 3) & ~3


class VirtQueue:
    """One split queue: ``ring`` holds its three areas, ``buffers`` its ``size`` slots (or
    None when each buffer is a chunk of its own, pointed at with :meth:`post`)."""

    def __init__(self, ring: Chunk, buffers: Chunk | None, size: int, slot: int, event_idx: bool) -> None:
        self.ring = ring
        self._buffers = buffers  # None: buffers that are chunks of their own (post), no slots
        self.size = size
        self.slot = slot
        self.event_idx = event_idx
        self.avail = DESC_SIZE * size
        self.used = used_offset(size)
        self.free: deque[int] = deque(range(size))
        self.chains: dict[int, list[int]] = {}  # head -> its descriptors, while the device has it
        self.avail_idx = 0
        self.kicked_idx = 0  # the available index at our last kick decision
        self.last_used = 0

    @property
    def desc_phys(self) -> int:
        return self.ring.phys

    @property
    def avail_phys(self) -> int:
        return self.ring.phys + self.avail

    @property
    def used_phys(self) -> int:
        return self.ring.phys + self.used

    def slots_for(self, nbytes: int) -> int:
        """The slots (descriptors) :meth:`chain` takes for ``nbytes``."""
        return -(-nbytes // self.slot)

    @property
    def buffers(self) -> Chunk:
        """The chunk of the ``size`` slots (only for a queue that has them)."""
        if self._buffers is None:
            raise ValueError("this queue's buffers are chunks of their own: it has no slots")
        return self._buffers

    def buffer_phys(self, i: int) -> int:
        return self.buffers.phys + i * self.slot

    # -- offering buffers ----------------------------------------------------------------------

    def chain(self, pieces: list[tuple[bytes, int]], flags: int = 0) -> int:
        """Put ``pieces`` (data, length) in free descriptors' slots, chained; the head, not
        offered yet (:meth:`offer`). ``data`` may be empty (a receive buffer of ``length``).
        The caller checked there are enough free descriptors.

        Full slots with consecutive indices are adjacent in the buffer chunk, so each such
        stretch is one store of its data and ONE descriptor spanning it (a buffer may be any
        contiguous memory, §2.7.5): a 64 KiB frame in 33 slots is a chain of one or two
        descriptors for the device to walk, not 33. The stretch's other descriptors stay
        reserved with the chain (freed with it) but unwritten."""
        ids = [self.free.popleft() for _ in pieces]
        last = len(ids) - 1
        slot = self.slot
        stretches: list[tuple[int, int]] = []  # (first piece, last piece) of each stretch
        start = 0
        while start <= last:
            end = start
            while end < last and ids[end + 1] == ids[end] + 1 and pieces[end][1] == slot:
                end += 1
            stretches.append((start, end))
            start = end + 1
        descs = []
        for n, (start, end) in enumerate(stretches):
            first = ids[start]
            data = b"".join(p[0] for p in pieces[start:end + 1])
            if data:
                self.buffers.write(first * slot, data)
            more = n + 1 < len(stretches)
            length = sum(p[1] for p in pieces[start:end + 1])
            descs.append((first, DESC.pack(self.buffer_phys(first), length, flags | (DESC_F_NEXT if more else 0),
                                            ids[stretches[n + 1][0]] if more else 0)))
        for first, desc in descs:
            self.ring.write(DESC_SIZE * first, desc)
        self.chains[ids[0]] = ids
        return ids[0]

    def post(self, head: int, phys: int, length: int, flags: int = 0) -> None:
        """Point descriptor ``head`` (taken from :attr:`free` by the caller) at ``length`` bytes
        at ``phys``: a one-descriptor chain, not offered yet. For buffers that are not this
        queue's slots (drivers/virtio_flip.py: chunks of their own)."""
        self.ring.write(DESC_SIZE * head, DESC.pack(phys, length, flags, 0))
        self.chains[head] = [head]

    def repost(self, heads: list[int]) -> None:
        """Offer single-descriptor chains again exactly as they were (a receive buffer the
        driver has read): their descriptors still say the same, so only the ring is written.
        A head that is not one of ours (a confused device) is not offered twice."""
        self.offer([h for h in heads if h in self.chains])

    def offer(self, heads: list[int]) -> None:
        """Heads into the available ring, then the index (§2.7.13: entries before the index)."""
        idx = self.avail_idx
        size = self.size
        pos = 0
        while pos < len(heads):  # one store per stretch of ring slots up to the ring's end
            slot = idx % size
            take = min(len(heads) - pos, size - slot)
            self.ring.write(self.avail + 4 + 2 * slot, struct.pack(f"<{take}H", *heads[pos:pos + take]))
            pos += take
            idx = (idx + take) & 0xFFFF
        self.avail_idx = idx
        self.ring.write(self.avail + 2, _U16.pack(idx))

    def kick_needed(self) -> bool:
        """Whether the device wants a notification for what was offered since the last call."""
        old, new = self.kicked_idx, self.avail_idx
        self.kicked_idx = new
        if old == new:
            return False
        if self.event_idx:
            event = _U16.unpack(self.ring.read(self.used + 4 + USED_ELEM_SIZE * self.size, 2))[0]
            return need_event(event, new, old)
        return not _U16.unpack(self.ring.read(self.used, 2))[0] & USED_F_NO_NOTIFY

    # -- the used ring -------------------------------------------------------------------------

    def used_idx(self) -> int:
        return _U16.unpack(self.ring.read(self.used + 2, 2))[0]

    def peek_used(self) -> list[tuple[int, int]]:
        """(head, bytes written) of every chain the device returned that we have not taken."""
        n = (self.used_idx() - self.last_used) & 0xFFFF
        if not n:
            return []
        start = self.last_used % self.size
        first = min(n, self.size - start)
        raw = self.ring.read(self.used + 4 + USED_ELEM_SIZE * start, USED_ELEM_SIZE * first)
        if first < n:
            raw += self.ring.read(self.used + 4, USED_ELEM_SIZE * (n - first))
        return list(struct.iter_unpack("<II", raw))

    def consume(self, count: int) -> None:
        """We are done reading the next ``count`` used entries."""
        self.last_used = (self.last_used + count) & 0xFFFF

    def read_used(self, used: list[tuple[int, int]]) -> bytes:
        """The bytes the device wrote into the chains ``used`` (single-slot ones, in order),
        joined: slots that follow each other are read in one load when the earlier is full."""
        parts = []
        slot = self.slot
        i = 0
        while i < len(used):
            head, n = used[i]
            length = min(n, slot)
            j = i + 1
            while j < len(used) and length == slot * (j - i) and used[j][0] == head + (j - i):
                length += min(used[j][1], slot)
                j += 1
            parts.append(self.buffers.read(head * slot, length))
            i = j
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def release(self, head: int) -> None:
        """The chain at ``head`` is ours again: its descriptors go back to the free list."""
        self.free.extend(self.chains.pop(head, ()))

    # -- interrupts ----------------------------------------------------------------------------

    def interrupt_after(self) -> None:
        """Ask for an interrupt when the device returns anything past what we have taken."""
        if self.event_idx:
            self.ring.write(self.avail + 4 + 2 * self.size, _U16.pack(self.last_used))
        else:
            self.ring.write(self.avail, _U16.pack(0))

    def no_interrupts(self) -> None:
        """No interrupts for this queue (we look at its used ring when we need descriptors):
        with EVENT_IDX a used_event just behind us, which the used index never reaches."""
        if self.event_idx:
            self.ring.write(self.avail + 4 + 2 * self.size, _U16.pack((self.last_used - 1) & 0xFFFF))
        else:
            self.ring.write(self.avail, _U16.pack(AVAIL_F_NO_INTERRUPT))
