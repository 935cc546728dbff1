"""virtio-net driver: Ethernet frames at /dev/nic from a virtio-net-pci card (virtio 1.2 §4.1, §5.1).

Started with I/O privilege; whoever starts it mounts its stdin (handle 0) at /dev/nic, as with
drivers/rtl8139.py, and it serves the same protocol (euralios.std.protocols.nic), so net/ runs
unchanged on either card; it adds GET_FEATURES and the header batches that carry offloads.

Start-up, in the spec's order (§3.1.1): the card through /pci (FIND_DEVICE 1AF4:1000, bus
mastering, the IRQ line from QUERY), its vendor-specific capabilities walked with READ_CONFIG
(cfg_type COMMON, NOTIFY with its multiplier, ISR, DEVICE: the offsets are never assumed), the
BAR they point into mapped with MAP_PHYS; then reset, ACKNOWLEDGE, DRIVER, the offered features
read, a subset accepted, FEATURES_OK written and read back (a device that clears it refused),
both queues set up in physically contiguous chunks (drivers/virtqueue.py), DRIVER_OK, and every
receive buffer offered. The negotiated features go to the kernel log (``virtio-net: features
...``, which dmesg and the F1 console show).

Features: VERSION_1, MAC, STATUS, MRG_RXBUF and EVENT_IDX, and the offloads CSUM, HOST_TSO4,
GUEST_CSUM, GUEST_TSO4 unless ``--no-offloads``; whichever of these the card offers (a feature
whose dependency is missing is dropped). No INDIRECT_DESC: chains of 2 KiB slots do.

Receive: buffers of one descriptor each. Without GUEST_TSO4, 2 KiB slots of one chunk (a frame
fits one; with MRG_RXBUF one spanning several is read in one load). With GUEST_TSO4, where a
frame (a coalesced TCP segment) may be 64 KiB, 128 buffers that are chunks of their own, 17
pages each (drivers/virtio_flip.py): a large frame stays in its buffer until a header client
asks, and the buffer itself is the reply, the client's chunk taking its place in the ring (page
flipping: no copy); small frames are copied out and their buffer offered again at once. Each
frame is queued with its 12-byte header in a bounded FIFO (a frame arriving while it is full is
dropped and counted). A plain READ/READ_FRAMES gets complete frames: a frame that still has work
to do (NEEDS_CSUM, a GSO type) is finished in software first (proto/wire/gso.py);
READ_FRAMES_HDR gets them with their headers as they came, a large one in its own buffer when
the client's chunk is at least that large (a client asking with a page gets it cut instead).

Transmit: each frame with its header goes in a chain of 2 KiB slots; a header asking for work
the card did not agree to is done in software instead. The card is kicked once per batch (and
only when EVENT_IDX says it wants one); finished chains are taken back when slots run short,
and only then do we ask for a transmit interrupt.

Interrupts (no MSI-X: INTx and the ISR, read to clear): an interrupt thread sleeps in
await_interrupt(IRQ), reads ISR, drains the receive used ring, re-arms used_event and looks once
more (a frame placed between the drain and the re-arm is not left waiting), then wakes readers.
A configuration interrupt re-reads the link status and notes a NEEDS_RESET. A
WRITE_READ_FRAMES_HDR polls the receive ring itself instead (NAPI-style): receive interrupts
off while its batch goes out (the card takes in, during the kick, what the host already
answered: machine.netdev.Backend.pump), then drained; and they stay off (``rx_quiet``), since
the client that exchanges comes back with its next exchange, which drains the ring again. Any
request that finds no frame queued first polls the ring, re-arming the interrupt
(``before_wait``), so nothing sleeps with a frame in the ring and idle is interrupt-driven.

Requests on handle 0: those of drivers/rtl8139.py (READ, WRITE, READ_FRAMES, WRITE_FRAMES,
GET_MAC_ADDRESS, QUERY, CLOSE) with the same semantics, plus Short(GET_FEATURES) ->
Short(FEATURES, bits, 0) and READ_FRAMES_HDR / WRITE_FRAMES_HDR / WRITE_READ_FRAMES_HDR. Bad requests get
ERROR_INVALID_VALUE / ERROR_UNKNOWN_MESSAGE and change nothing. The serving threads follow
drivers/rtl8139.py's scheme (several, so a reader blocked in READ(1) never holds up a writer).
"""

from __future__ import annotations

import json
from collections import deque
from functools import partial
from typing import Any

from drivers.nicserve import answer_other, received, single_frame, wait_frames
from drivers.virtio_card import Card, flips, setup
from drivers.virtio_flip import FLIP_ROOM, LOW_WATER, OFFSET, SMALL, SPARE_MAX, FlipRing, Held
from drivers.virtqueue import VirtQueue
from euralios.std import STDIN, Chunk, Memory, Message, abi, discard
from euralios.std.fs import send_bytes
from euralios.std.protocols.nic import (
    BATCH_BYTES,
    BLOCKING,
    HDR_FRAME_MAX,
    HDR_WRITE_BYTES,
    READ_FRAMES,
    READ_FRAMES_HDR,
    WRITE_FRAMES,
    WRITE_FRAMES_HDR,
    WRITE_READ_FRAMES_HDR,
    packed_hdr_size,
    packed_size,
    split_frames,
    split_hdr_frames,
    take_batch,
    take_hdr_batch,
)
from euralios.std.serve import serve
from euralios.std.sync import Wakeup
from proto.virtio import DESC_F_WRITE, NET_CFG_STATUS, NET_S_LINK_UP, Feature, Isr, Status, feature_names
from proto.wire import DecodeError
from proto.wire.gso import wire_frames
from proto.wire.vnet import HDR_LEN, HdrFlags, VnetHdr

EMPTY = abi.EMPTY
PLAIN_HDR = bytes(HDR_LEN)  # a frame with nothing left to do
ETH_MAX = 1514 + 4  # a plain frame: 1514 and an 802.1Q tag
ETH_MIN_READ = 2 + ETH_MAX  # the least room a client's READ_FRAMES chunk must have
FIFO_LIMIT = 256
# Plain ints for the per-frame tests (an IntFlag "&" costs ~5x an int's).
_NEEDS_CSUM = int(HdrFlags.NEEDS_CSUM)
_CSUM, _HOST_TSO4, _MRG_RXBUF = int(Feature.NET_CSUM), int(Feature.NET_HOST_TSO4), int(Feature.NET_MRG_RXBUF)
_ISR_CONFIG = int(Isr.CONFIG)


class VirtioNic:
    """The driver's state, shared by its threads (they run one at a time, between syscalls)."""

    def __init__(self, proc: Any, card: Card, rx: VirtQueue, tx: VirtQueue, readers: Wakeup, tx_room: Wakeup) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.card = card
        self.rx = rx
        self.tx = tx
        self.readers = readers  # server threads blocked in READ(1) until a frame is queued
        self.tx_room = tx_room  # server threads waiting for transmit descriptors
        self.frames: deque[bytes | Held] = deque()  # header + frame, as received (or still in its buffer)
        self.flip = FlipRing(proc.sys, rx) if flips(card.features) else None
        self.tx_busy = False
        # Receive interrupts left off after an exchange (NAPI's polling mode): the client that
        # exchanges comes back for more, and its next exchange polls the ring again. Back on
        # (before_wait) before anyone sleeps for a frame.
        self.rx_quiet = False
        self.servers = 0
        self.idle = 0
        self.link_up = True
        self.stats = dict.fromkeys(("rx", "tx", "drops", "rx_bytes", "tx_bytes", "rx_gso", "tx_gso", "tx_csum",
                                    "sw_offloads", "bad_frames", "interrupts", "config_interrupts", "kicks",
                                    "tx_waits", "rx_batches", "tx_batches", "rx_flipped"), 0)

    @property
    def features(self) -> int:
        return self.card.features

    async def before_wait(self) -> bool:
        """A thread is about to sleep for a frame: receive interrupts on again if an exchange
        left them off, the ring looked at once more. Whether frames are queued now."""
        if self.rx_quiet:
            await poll_rx(self)
        return bool(self.frames)

    def allowed(self, hdr: bytes) -> bool:
        """Whether the card agreed to do what ``hdr`` asks (else we do it in software)."""
        flags, gso = hdr[0], hdr[1]
        if flags & _NEEDS_CSUM and not self.features & _CSUM:
            return False
        return not gso or (gso == 1 and bool(self.features & _HOST_TSO4))


# ---------------------------------------------------------------------------------------- receive

async def offer_rx(nic: VirtioNic) -> None:
    """Every receive buffer to the device (at start-up; drain gives them back one by one)."""
    rx = nic.rx
    if nic.flip is not None:
        await nic.flip.start()
        return
    rx.offer([rx.chain([(b"", rx.slot)], DESC_F_WRITE) for _ in range(len(rx.free))])


def frame_span(count: int, pos: int, used: int, size: int) -> int:
    """How many of the ``used`` entries from ``pos`` on the frame there spans, its header having
    said ``count`` (num_buffers): ``count``; -1 when the rest of it is not in the used ring yet;
    0 for nonsense from the device (the caller drops that one buffer's frame)."""
    if 1 <= count and pos + count <= used:
        return count
    return -1 if 1 <= count and pos + count <= size else 0


def drain(nic: VirtioNic) -> int:
    """Every complete frame from the receive used ring into the FIFO; the buffers are offered
    again (not kicked: the caller does). With flipping a large frame stays in its buffer (Held)
    and that buffer waits for another chunk; small frames, and frames merged over several
    buffers (MRG_RXBUF, a frame larger than one), are copied out. Returns how many went back."""
    rx = nic.rx
    flip = nic.flip
    stats = nic.stats
    fifo = nic.frames
    used = rx.peek_used()
    merge = bool(nic.features & _MRG_RXBUF)
    pos = 0
    back: list[int] = []
    while pos < len(used):
        head, length = used[pos]
        count = num_buffers(nic, head, length) if merge else 1
        count = frame_span(count, pos, len(used), rx.size)
        if count < 0:
            break
        part = used[pos:pos + max(count, 1)]
        pos += len(part)
        heads = [h for h, _ in part]
        if not count or length <= HDR_LEN:  # nonsense from the device: this buffer's frame dropped
            stats["bad_frames"] += 1
            back.extend(heads)
            continue
        if len(fifo) >= FIFO_LIMIT:
            stats["drops"] += 1
            back.extend(heads)
            continue
        entry: bytes | Held
        if flip is None:
            entry = rx.read_used(part)  # consecutive full slots are one load
        elif count > 1:
            entry = b"".join(flip.read(h, n) for h, n in part)
        elif length - HDR_LEN <= SMALL:
            entry = flip.read(head, length)
        else:
            entry = flip.take(head, length)
        if isinstance(entry, bytes):
            back.extend(heads)  # each buffer goes back as it was: its descriptor unchanged
        fifo.append(entry)
        stats["rx"] += 1
        stats["rx_bytes"] += len(entry) - HDR_LEN
        if not isinstance(entry, bytes) or entry[1]:  # a GSO frame (all Held ones are)
            stats["rx_gso"] += 1
    rx.consume(pos)
    if back:
        rx.repost(back)
    if flip is not None:
        flip.bind()
    return len(back)


def num_buffers(nic: VirtioNic, head: int, length: int) -> int:
    """The num_buffers of the frame whose first buffer is ``head`` (MRG_RXBUF): read from its
    header, unless the buffer was not full (then the frame is all in it)."""
    rx, flip = nic.rx, nic.flip
    if flip is not None:
        return flip.num_buffers(head) if length == FLIP_ROOM else 1
    if length < HDR_LEN:
        return 1
    nb = rx.buffers.read(head * rx.slot + HDR_LEN - 2, 2)
    return nb[0] | nb[1] << 8


def queued_batch(fifo: deque[bytes | Held], room: int) -> bytes:
    """A header batch of the oldest frames that fit ``room`` whole, up to the first still Held
    (that one goes by flip_reply, or is copied out for a client that cannot take it): none cut,
    none waited for."""
    plain: deque[bytes] = deque()
    size = 0
    while fifo and isinstance(fifo[0], bytes) and size + 2 + len(fifo[0]) <= room:
        entry = fifo.popleft()
        assert isinstance(entry, bytes)
        plain.append(entry)
        size += 2 + len(entry)
    return take_hdr_batch(plain, room)[0]


def materialize(nic: VirtioNic, room: int) -> None:
    """The Held frames among the oldest that a reply of ``room`` bytes may take (the first
    always) copied out -- for a plain client, or one whose chunk cannot take the buffer's place
    -- their chunks back in the ring; the later ones stay Held. Counted without their headers,
    the least a batch of them can take, so no batch ever reaches a frame still Held."""
    flip = nic.flip
    if flip is None:
        return
    fifo = nic.frames
    size = 0
    for i, entry in enumerate(fifo):
        if i and size >= room:
            break
        if isinstance(entry, Held):
            fifo[i] = entry.read()
            flip.copied(entry)
        size += 2 + len(entry) - HDR_LEN
    flip.bind()


async def flip_reply(nic: VirtioNic, chunk: Chunk | None) -> Message | None:
    """The oldest frame, if it is Held, as the reply itself: its chunk goes (a one-entry header
    batch) and ``chunk``, the one the client brought, takes its place in the ring (freed
    instead when it cannot: not contiguous or too small, and a new one made). None: no Held
    frame first, one larger than the client's chunk (a client that asked for a page gets it cut
    in software, as before) or too large for a header batch."""
    flip, fifo = nic.flip, nic.frames
    if flip is None or not fifo or not isinstance(fifo[0], Held) or len(fifo[0]) - HDR_LEN > HDR_FRAME_MAX:
        return None
    if chunk is None or chunk.size < OFFSET + len(fifo[0]):
        return None  # the client asked for less than this frame (a page): cut in software for it
    held = fifo.popleft()
    assert isinstance(held, Held)
    n = held.as_batch()
    flip.handed()
    if flip.usable(chunk):
        flip.give(chunk)
        flip.bind()
    else:  # not one of ours (a client's first chunks): a new buffer instead
        await flip.discard(chunk)
        await flip.refill()
    await kick(nic, nic.rx, 0)
    nic.stats["rx_flipped"] += 1
    return Message(abi.DATA, n, held.chunk.memory)


async def kick(nic: VirtioNic, q: VirtQueue, index: int) -> None:
    if q.kick_needed():
        nic.stats["kicks"] += 1
        await nic.card.notify(index)


async def poll_rx(nic: VirtioNic, rearm: bool = True) -> None:
    """Drain, re-arm the interrupt, look once more (a frame placed in between would otherwise
    wait for the next interrupt), kick for the buffers given back. Without ``rearm`` (an
    exchange: its client will be back) the interrupt stays off (``rx_quiet``) and one drain
    is all."""
    rx = nic.rx
    nic.stats["rx_batches"] += 1
    if not rearm:
        drain(nic)
        nic.rx_quiet = True
    else:
        nic.rx_quiet = False
        while True:
            drain(nic)
            rx.interrupt_after()
            if not (rx.used_idx() - rx.last_used) & 0xFFFF:
                break
            nic.stats["rx_batches"] += 1
    await settle(nic)
    await kick(nic, rx, 0)


async def settle(nic: VirtioNic) -> None:
    """With flipping: new buffer chunks when many are away (Held, not yet asked for), lest the
    ring run dry -- fewer are left to flip_reply, where the client's chunk takes the place, no
    malloc -- and spares beyond SPARE_MAX (Held frames copied out) given back."""
    flip = nic.flip
    if flip is not None and (len(flip.unbound) > LOW_WATER or len(flip.spare) > SPARE_MAX):
        await flip.refill()


async def receive_all(nic: VirtioNic) -> None:
    """:func:`poll_rx`, then readers woken for what it queued."""
    await poll_rx(nic)
    while nic.readers.sleeping and nic.frames:
        await nic.readers.wake()


async def interrupt_thread(nic: VirtioNic) -> None:
    sys = nic.sys
    card = nic.card
    while True:
        await receive_all(nic)
        if nic.tx_room.sleeping:
            await nic.tx_room.wake()
        await sys.await_interrupt(card.irq)
        nic.stats["interrupts"] += 1
        isr = card.isr()
        if isr & _ISR_CONFIG:
            nic.stats["config_interrupts"] += 1
            await config_changed(nic)


async def config_changed(nic: VirtioNic) -> None:
    card = nic.card
    if card.features & Feature.NET_STATUS:
        nic.link_up = bool(card.device_cfg(NET_CFG_STATUS, 2) & NET_S_LINK_UP)
    if card.status() & Status.NEEDS_RESET:
        await nic.proc.say("[virtio-net] the device needs a reset (it found a fault in our queues)")


def plain_frames(nic: VirtioNic, entry: bytes) -> list[bytes]:
    """The complete frames of a received header + frame: itself, or what software makes of it."""
    hdr, frame = entry[:HDR_LEN], entry[HDR_LEN:]
    if not hdr[1] and not hdr[0] & _NEEDS_CSUM:
        return [frame]
    nic.stats["sw_offloads"] += 1
    try:
        return wire_frames(VnetHdr.unpack(hdr), frame)
    except DecodeError:
        nic.stats["bad_frames"] += 1
        return []


def plain_batch(nic: VirtioNic, room: int) -> bytes:
    """A READ_FRAMES batch: complete frames only (offloaded ones finished here)."""
    materialize(nic, room)
    out: deque[bytes] = deque()
    fifo = nic.frames
    size = 0
    while fifo and size < room:
        frames = plain_frames(nic, fifo.popleft())
        out.extend(frames)
        size += sum(map(len, frames)) + 2 * len(frames)
    data, _ = take_batch(out, room)
    for left in reversed(out):  # what did not fit waits, as a plain frame
        fifo.appendleft(PLAIN_HDR + left)
    return data


def hdr_batch(nic: VirtioNic, room: int) -> bytes:
    """A READ_FRAMES_HDR batch: frames with their headers; one too large for the caller's
    chunk (a page while frames come a few at a time) is cut in software first."""
    materialize(nic, room)
    fifo = nic.frames
    while fifo and len(fifo[0]) + 2 > room:
        frames = plain_frames(nic, fifo.popleft())
        for f in reversed(frames):
            fifo.appendleft(PLAIN_HDR + f)
    data, _ = take_hdr_batch(fifo, room)
    return data


# ---------------------------------------------------------------------------------------- transmit

async def transmit(nic: VirtioNic, entries: list[bytes]) -> int:
    """Send header + frame entries in order; how many went. Chains of slots, one kick a batch."""
    sys = nic.sys
    while nic.tx_busy:  # another server thread is mid-batch: frames go in order
        await sys.yield_()
    nic.tx_busy = True
    tx = nic.tx
    stats = nic.stats
    sent = 0
    try:
        heads: list[int] = []
        for entry in entries:
            if entry[0] or entry[1]:
                if not nic.allowed(entry):
                    stats["sw_offloads"] += 1
                    try:
                        more = [PLAIN_HDR + f for f in wire_frames(VnetHdr.unpack(entry[:HDR_LEN]), entry[HDR_LEN:])]
                    except DecodeError:
                        stats["bad_frames"] += 1
                        continue
                    await transmit_chains(nic, more, heads)
                    sent += 1
                    continue
                stats["tx_gso" if entry[1] else "tx_csum"] += 1
            await transmit_chains(nic, [entry], heads)
            sent += 1
        if heads:
            tx.offer(heads)
        await kick(nic, tx, 1)
        return sent
    finally:
        nic.tx_busy = False


async def transmit_chains(nic: VirtioNic, entries: list[bytes], heads: list[int]) -> None:
    """Chain each entry into slots (heads collected, offered by the caller); waits for slots."""
    tx = nic.tx
    slot = tx.slot
    for entry in entries:
        need = tx.slots_for(len(entry))
        while len(tx.free) < need:
            if heads:  # what we chained so far goes first, so the device can finish it
                tx.offer(heads)
                heads.clear()
                await kick(nic, tx, 1)
            reclaim(nic)
            if len(tx.free) >= need:
                break
            nic.stats["tx_waits"] += 1
            tx.interrupt_after()  # the next chain the device finishes interrupts us
            if not (tx.used_idx() - tx.last_used) & 0xFFFF:  # (none finished in between)
                await nic.tx_room.sleep()
        pieces = [(entry[i:i + slot], min(slot, len(entry) - i)) for i in range(0, len(entry), slot)]
        heads.append(tx.chain(pieces))
        nic.stats["tx"] += 1
        nic.stats["tx_bytes"] += len(entry) - HDR_LEN


def fits(nic: VirtioNic, entries: list[bytes]) -> bool:
    """Whether the transmit queue has the slots for ``entries`` now (after a reclaim); never
    for an entry the card will not take (cut in software, it needs more)."""
    if not all(nic.allowed(e) for e in entries if e[0] or e[1]):
        return False
    need = sum(nic.tx.slots_for(len(e)) for e in entries)
    if len(nic.tx.free) < need:
        reclaim(nic)
    return len(nic.tx.free) >= need


def reclaim(nic: VirtioNic) -> None:
    """Chains the device has sent are ours again; no transmit interrupts until we wait for
    one (used_event kept just behind us, so the used index never reaches it)."""
    tx = nic.tx
    used = tx.peek_used()
    for head, _ in used:
        tx.release(head)
    tx.consume(len(used))
    tx.no_interrupts()


# ---------------------------------------------------------------------------------------- serving

async def read(nic: VirtioNic, blocking: bool) -> Message:
    while await wait_frames(nic, blocking, server):
        materialize(nic, 1)  # the oldest frame only
        frames = plain_frames(nic, nic.frames.popleft())
        await settle(nic)
        if frames:
            for f in reversed(frames[1:]):
                nic.frames.appendleft(PLAIN_HDR + f)
            return Message(abi.DATA, len(frames[0]), await send_bytes(nic.sys, frames[0]))
    return Message(EMPTY, 0, 0)


async def read_frames(nic: VirtioNic, msg: Message, headers: bool) -> Message:
    sys = nic.sys
    flags, mem = msg.d2, msg.d3
    if not isinstance(flags, int) or not isinstance(mem, (Memory, int)):
        await discard(sys, msg)
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    room = BATCH_BYTES
    chunk = None
    if isinstance(mem, Memory):
        chunk = await received(sys, mem)
        if chunk is None or chunk.size < ETH_MIN_READ + (HDR_LEN if headers else 0):
            await discard(sys, msg)
            return Message(abi.ERROR_INVALID_VALUE, 0, 0)
        room = min(chunk.size, BATCH_BYTES)
    data = b""
    while not data:
        if not await wait_frames(nic, bool(flags & BLOCKING), server):
            return Message(EMPTY, 0, mem) if isinstance(mem, Memory) else Message(EMPTY, 0, 0)
        if headers and chunk is not None:
            flipped = await flip_reply(nic, chunk)
            if flipped is not None:
                return flipped
            data = queued_batch(nic.frames, room)  # the frames before a Held one; it stays
        if not data:
            data = hdr_batch(nic, room) if headers else plain_batch(nic, room)
    await settle(nic)
    if chunk is not None:
        chunk.write(0, data)
        return Message(abi.DATA, len(data), chunk.memory)
    return Message(abi.DATA, len(data), await send_bytes(sys, data))


async def write_frames(nic: VirtioNic, msg: Message, headers: bool, exchange: bool = False) -> Message:
    """WRITE_FRAMES(_HDR); with ``exchange`` (WRITE_READ_FRAMES_HDR) the chunk goes back
    with the queued frames that fit it whole (none cut, no wait)."""
    sys = nic.sys
    n, mem = msg.d2, msg.d3
    chunk = await received(sys, mem) if isinstance(mem, Memory) else None
    if chunk is None or not isinstance(n, int) or not 0 < n <= chunk.size or (headers and n > HDR_WRITE_BYTES):
        await discard(sys, msg)
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    data = chunk.read(0, n)
    if headers:
        entries = split_hdr_frames(data)
        ok = packed_hdr_size(entries) == n
    else:
        frames = split_frames(data, ETH_MAX)
        ok = packed_size(frames) == n
        entries = [PLAIN_HDR + f for f in frames]
    if not ok:  # malformed: a length of 0, too long or past n
        await discard(sys, msg)
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    nic.stats["tx_batches"] += 1
    # The exchange polls the receive ring itself after sending (as NAPI does): the host's
    # answer to these frames is often placed during the transmit kick (machine Backend.pump),
    # and an interrupt for it would only wake our interrupt thread to find the ring drained.
    # Only when the batch will not wait (for transmit room, or behind another thread's batch),
    # so receive interrupts are never off while we sleep.
    polling = exchange and not nic.tx_busy and fits(nic, entries)
    if polling:
        nic.rx.no_interrupts()
    elif nic.rx_quiet:
        await poll_rx(nic)  # this batch may wait: receive must not wait with it
    sent = await transmit(nic, entries)
    if polling:
        # Quiet only while no other thread sleeps for a frame (it needs the interrupt).
        await poll_rx(nic, rearm=bool(nic.readers.sleeping))
    if exchange:
        fifo = nic.frames
        reply = await flip_reply(nic, chunk)
        if reply is None:
            data = queued_batch(fifo, min(chunk.size, BATCH_BYTES))
            if data:
                chunk.write(0, data)
            reply = Message(abi.DATA, len(data), chunk.memory)
        while fifo and nic.readers.sleeping:  # what this reply left, for those waiting
            await nic.readers.wake()
        return reply
    return Message(abi.OK, sent, mem)


async def write(nic: VirtioNic, msg: Message) -> Message:
    data = await single_frame(nic.sys, msg, ETH_MAX)
    if not data:
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    await transmit(nic, [PLAIN_HDR + data])
    return Message(abi.OK, len(data), 0)


async def query(nic: VirtioNic) -> Message:
    info = {
        "name": "nic",
        "description": "virtio-net Ethernet",
        "mac": ":".join(f"{b:02x}" for b in nic.card.mac),
        "features": feature_names(nic.features),
        "irq": nic.card.irq,
        "link_up": nic.link_up,
        "queue_size": nic.rx.size,
        "queued": len(nic.frames),
        **nic.stats,
        "subdirs": [],
        "files": [],
    }
    data = json.dumps(info).encode()
    return Message(abi.JSON, len(data), await send_bytes(nic.sys, data))


async def handle(nic: VirtioNic, msg: Message) -> Message | None:
    nic.idle -= 1
    try:
        tag = msg.tag
        offloads = nic.card.offloads
        if tag in (WRITE_FRAMES, WRITE_FRAMES_HDR, WRITE_READ_FRAMES_HDR) and msg.is_long and (
                offloads or tag == WRITE_FRAMES):
            return await write_frames(nic, msg, tag != WRITE_FRAMES, tag == WRITE_READ_FRAMES_HDR)
        if tag == READ_FRAMES or (tag == READ_FRAMES_HDR and offloads):
            return await read_frames(nic, msg, tag == READ_FRAMES_HDR)
        if tag == abi.WRITE and msg.is_long:
            return await write(nic, msg)
        return await answer_other(nic, msg, mac=nic.card.mac, features=nic.features, read=read, query=query)
    finally:
        nic.idle += 1


async def server(nic: VirtioNic) -> None:
    await serve(nic.sys, STDIN, partial(handle, nic))


async def main(proc: Any) -> int:
    args = list(proc.args[1:])
    offloads = True
    if args == ["--no-offloads"]:
        offloads = False
    elif args:
        await proc.say("[virtio-net] usage: virtio_net [--no-offloads]")
        return 2
    card, rx, tx = await setup(proc, offloads)
    if card is None or rx is None or tx is None:
        return 1
    nic = VirtioNic(proc, card, rx, tx, await Wakeup.new(proc.sys), await Wakeup.new(proc.sys))
    await offer_rx(nic)
    rx.interrupt_after()
    tx.no_interrupts()
    await kick(nic, rx, 0)
    names = " ".join(feature_names(card.features))
    await proc.sys.debug_write(f"virtio-net: features {names}")
    await proc.say(f"[virtio-net] MAC address {':'.join(f'{b:02X}' for b in card.mac)}")
    await proc.spawn_thread(interrupt_thread, nic)
    nic.servers = 2
    nic.idle = 2
    await proc.spawn_thread(server, nic)
    await server(nic)
    return 0
