"""The device side of a split virtqueue (virtio 1.2 §2.7), in guest RAM, read and written by DMA.

Three areas the driver allocates, whose addresses it gives the device (QUEUE_DESC/DRIVER/DEVICE,
or one page frame number in the legacy interface):

    descriptor table  size x 16 bytes, align 16: addr le64, len le32, flags le16, next le16
                      flags: NEXT (1) chain on at ``next``, WRITE (2) device-writable,
                      INDIRECT (4) ``addr``/``len`` is a table of descriptors (INDIRECT_DESC)
    available ring    align 2:  flags le16, idx le16, ring[size] le16, used_event le16
                      (the driver's: heads of chains it offers; flags bit 0 NO_INTERRUPT)
    used ring         align 4:  flags le16, idx le16, ring[size] {id le32, len le32}, avail_event le16
                      (the device's: chains it is done with and how many bytes it wrote;
                      flags bit 0 NO_NOTIFY)

``idx`` fields are free-running 16-bit counters: they wrap at 2^16 and a ring slot is
``idx % size`` (size is a power of two, so the two agree). The device keeps its own position in
the available ring (``last_avail``) and in the used ring (``used_idx``).

Notification suppression, both ways. Device to driver (interrupts): without EVENT_IDX the driver
sets NO_INTERRUPT in the available ring's flags; with EVENT_IDX it writes ``used_event`` and the
device interrupts only when the used index moves past it (vring_need_event). Driver to device
(kicks): this device handles every kick at once, so it always wants them: without EVENT_IDX it
leaves NO_NOTIFY clear; with EVENT_IDX it writes ``avail_event`` = the next available index it
has not seen, after each pass.

A driver's mistake is a :class:`QueueError` (the device sets DEVICE_NEEDS_RESET, §2.1.1): a
descriptor index outside the table, a chain longer than the table (a loop), a readable
descriptor after a writable one (§2.7.4.2), INDIRECT without the feature or inside an indirect
table or together with NEXT (§2.7.5.3), a table whose length is not a multiple of 16, an
available index more than ``size`` ahead of the device, or any address outside RAM.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from machine.virtio.dma import Dma, DmaError
from proto.virtio import (
    AVAIL_F_NO_INTERRUPT,
    DESC,
    DESC_F_INDIRECT,
    DESC_F_NEXT,
    DESC_F_WRITE,
    need_event,
)

MAX_QUEUE_SIZE = 32768


class QueueError(Exception):
    """The driver broke the queue's rules; the device must stop using it until a reset."""


@dataclass(slots=True)
class Chain:
    """One descriptor chain popped from the available ring: the buffers the driver offers."""

    head: int  # index of the first descriptor: what goes back in the used ring
    readable: list[tuple[int, int]] = field(default_factory=list)  # (addr, len) the device reads
    writable: list[tuple[int, int]] = field(default_factory=list)  # (addr, len) the device writes

    @property
    def read_size(self) -> int:
        r = self.readable
        return r[0][1] if len(r) == 1 else sum(n for _, n in r)

    @property
    def write_size(self) -> int:  # a receive buffer is usually one descriptor: no generator then
        w = self.writable
        return w[0][1] if len(w) == 1 else sum(n for _, n in w)

    def read(self, dma: Dma, limit: int) -> bytes:
        """The readable bytes, in order (at most ``limit``). Buffers that follow each other in
        RAM are read as one (a driver's slots usually do): one copy, not one per descriptor."""
        parts = []
        left = limit
        for addr, n in runs(self.readable):
            take = min(n, left)
            if take:
                parts.append(dma.read(addr, take))
            left -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def write(self, dma: Dma, data: bytes | memoryview) -> int:
        """Scatter ``data`` over the writable buffers; returns how many bytes were written.
        Adjacent buffers take one write (the same bytes land where they would one by one)."""
        pos = 0
        for addr, n in runs(self.writable):
            if pos >= len(data):
                break
            take = min(n, len(data) - pos)
            dma.write(addr, data[pos:pos + take])
            pos += take
        return pos


def runs(buffers: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``buffers`` with each stretch of physically adjacent ones merged into one (addr, len)."""
    if len(buffers) < 2:
        return buffers
    out = [buffers[0]]
    for addr, n in buffers[1:]:
        last, size = out[-1]
        if last + size == addr:
            out[-1] = (last, size + n)
        else:
            out.append((addr, n))
    return out


class SplitQueue:
    """One virtqueue as the device sees it. The transport sets ``size``, the three addresses and
    ``enabled``; the device pops chains and pushes them back used."""

    def __init__(self, dma: Dma, index: int, max_size: int = 256) -> None:
        self.dma = dma
        self.index = index
        self.max_size = max_size
        self.reset()

    def reset(self) -> None:
        """Back to the state after a device reset: nothing configured, counters at zero."""
        self.size = self.max_size
        self.desc = 0
        self.driver = 0  # the available ring
        self.device = 0  # the used ring
        self.enabled = False
        self.event_idx = False  # the device sets these from the negotiated features
        self.indirect = False
        self.last_avail = 0
        self.used_idx = 0
        self.signalled_used = 0  # used index at the last interrupt decision (for EVENT_IDX)

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return (f"<SplitQueue {self.index} {state} size={self.size} desc={self.desc:#x} "
                f"avail={self.driver:#x} used={self.device:#x} last_avail={self.last_avail} used_idx={self.used_idx}>")

    # -- configuration checks ----------------------------------------------------------------------

    def layout_error(self) -> str | None:
        """Why the configured areas cannot be used (alignment §2.7, outside RAM), or None."""
        n = self.size
        if not n or n & (n - 1) or n > self.max_size:
            return f"queue size {n} is not a power of two up to {self.max_size}"
        for name, addr, align, length in (("descriptor table", self.desc, 16, 16 * n),
                                          ("available ring", self.driver, 2, 6 + 2 * n),
                                          ("used ring", self.device, 4, 6 + 8 * n)):
            if addr % align:
                return f"{name} at {addr:#x} is not {align}-byte aligned"
            try:
                self.dma.check(addr, length, name)
            except DmaError as e:
                return str(e)
        return None

    # -- the available ring ------------------------------------------------------------------------

    def avail_idx(self) -> int:
        return self.dma.u16(self.driver + 2, "available ring")

    def pending(self) -> int:
        """How many chains the driver has offered that the device has not taken."""
        ahead = (self.avail_idx() - self.last_avail) & 0xFFFF
        if ahead > self.size:
            raise QueueError(f"queue {self.index}: available index is {ahead} ahead of the device "
                             f"(more than the queue size {self.size})")
        return ahead

    def pop(self) -> Chain | None:
        """The next offered chain, walked and checked; None when the driver offered nothing."""
        try:
            if not self.pending():
                return None
            slot = self.driver + 4 + 2 * (self.last_avail % self.size)
            head = self.dma.u16(slot, "available ring")
            chain = self._walk(head)
        except DmaError as e:
            raise QueueError(f"queue {self.index}: {e}") from None
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        return chain

    def pop_many(self, count: int) -> list[Chain]:
        """Up to ``count`` offered chains, as ``count`` calls of :meth:`pop` would give them,
        the ring's heads read in one go (a large frame takes many small buffers)."""
        try:
            n = min(count, self.pending())
            if n <= 0:
                return []
            size = self.size
            start = self.last_avail % size
            first = min(n, size - start)
            heads = self.dma.u16s(self.driver + 4 + 2 * start, first, "available ring")
            if first < n:
                heads += self.dma.u16s(self.driver + 4, n - first, "available ring")
            chains: list[Chain] = []
            i = 0
            while i < n:  # each taken only once walked, as pop does
                # A stretch of consecutive heads (a driver's receive slots usually are): their
                # descriptors read in one go; a one-descriptor chain is built from its entry
                # with pop's checks, any other walked as pop walks it.
                head, j = heads[i], i + 1
                while j < n and heads[j] == heads[j - 1] + 1 and heads[j] < size:
                    j += 1
                if j - i < 2 or head >= size:
                    chains.append(self._walk(head))
                    self.last_avail = (self.last_avail + 1) & 0xFFFF
                    i += 1
                    continue
                raw = self.dma.read(self.desc + 16 * head, 16 * (j - i), "descriptor table")
                ram = self.dma.size
                for addr, length, flags, _ in DESC.iter_unpack(raw):
                    if flags & (DESC_F_NEXT | DESC_F_INDIRECT) or addr + length > ram:
                        chain = self._walk(head)  # a chain, or the error pop gives
                    elif flags & DESC_F_WRITE:
                        chain = Chain(head, [], [(addr, length)])
                    else:
                        chain = Chain(head, [(addr, length)], [])
                    chains.append(chain)
                    self.last_avail = (self.last_avail + 1) & 0xFFFF
                    head += 1
                i = j
        except DmaError as e:
            raise QueueError(f"queue {self.index}: {e}") from None
        return chains

    def unpop(self, count: int = 1) -> None:
        """Give back the last ``count`` popped chains (a frame that did not fit): the driver's
        buffers stay offered, as QEMU's virtqueue_unpop leaves them."""
        self.last_avail = (self.last_avail - count) & 0xFFFF

    def _walk(self, head: int) -> Chain:
        n = self.size
        if head >= n:
            raise QueueError(f"queue {self.index}: descriptor {head} outside a table of {n}")
        chain = Chain(head)
        table, limit, index, seen = self.desc, n, head, 0
        in_indirect = False
        while True:
            seen += 1
            if seen > limit:
                raise QueueError(f"queue {self.index}: descriptor chain from {head} is longer than "
                                 f"its table ({limit}): a loop")
            addr, length, flags, nxt = self.dma.descriptor(table + 16 * index, "descriptor table")
            if flags & DESC_F_INDIRECT:
                if not self.indirect:
                    raise QueueError(f"queue {self.index}: INDIRECT descriptor without INDIRECT_DESC")
                if in_indirect:
                    raise QueueError(f"queue {self.index}: INDIRECT descriptor inside an indirect table")
                if flags & DESC_F_NEXT:
                    raise QueueError(f"queue {self.index}: INDIRECT descriptor with NEXT set")
                if not length or length % 16:
                    raise QueueError(f"queue {self.index}: indirect table of {length} bytes "
                                     "(not a multiple of 16)")
                self.dma.check(addr, length, "indirect table")
                table, limit, index, seen, in_indirect = addr, length // 16, 0, 0, True
                continue
            self.dma.check(addr, length, "buffer")
            if flags & DESC_F_WRITE:
                chain.writable.append((addr, length))
            elif chain.writable:
                raise QueueError(f"queue {self.index}: a device-readable descriptor after a writable one")
            else:
                chain.readable.append((addr, length))
            if not flags & DESC_F_NEXT:
                return chain
            if nxt >= limit:
                raise QueueError(f"queue {self.index}: next descriptor {nxt} outside a table of {limit}")
            index = nxt

    # -- the used ring -----------------------------------------------------------------------------

    def push(self, used: list[tuple[int, int]]) -> None:
        """Return chains ``(head, bytes written)`` to the driver: the elements first, then the
        index, so the driver never sees an index ahead of its elements (§2.7.8.2). Elements in
        adjacent ring slots are stored in one write (a 64 KiB frame uses ~33 buffers)."""
        try:
            idx = self.used_idx
            size = self.size
            pos = 0
            while pos < len(used):
                slot = idx % size
                take = min(len(used) - pos, size - slot)
                words = [v & 0xFFFF_FFFF for pair in used[pos:pos + take] for v in pair]
                self.dma.write(self.device + 4 + 8 * slot, struct.pack(f"<{2 * take}I", *words), "used ring")
                pos += take
                idx = (idx + take) & 0xFFFF
            self.dma.put_u16(self.device + 2, idx, "used ring")
        except DmaError as e:
            raise QueueError(f"queue {self.index}: {e}") from None
        self.used_idx = idx

    def wants_interrupt(self) -> bool:
        """Whether the driver asked to be interrupted for what was pushed since the last call
        (used_event with EVENT_IDX, else the NO_INTERRUPT flag)."""
        old, new = self.signalled_used, self.used_idx
        self.signalled_used = new
        if old == new:
            return False
        try:
            if self.event_idx:
                event = self.dma.u16(self.driver + 4 + 2 * self.size, "available ring")
                return need_event(event, new, old)
            return not self.dma.u16(self.driver, "available ring") & AVAIL_F_NO_INTERRUPT
        except DmaError as e:
            raise QueueError(f"queue {self.index}: {e}") from None

    def want_kicks(self) -> None:
        """Ask to be kicked for anything offered after what was taken: avail_event with
        EVENT_IDX (§2.7.10), else a clear NO_NOTIFY flag."""
        try:
            if self.event_idx:
                self.dma.put_u16(self.device + 4 + 8 * self.size, self.last_avail, "used ring")
            else:
                self.dma.put_u16(self.device, 0, "used ring")
        except DmaError as e:
            raise QueueError(f"queue {self.index}: {e}") from None
