"""RTL8139 network card driver: raw Ethernet frames at /dev/nic (spec §11.8, DESIGN §5).

Started with I/O privilege; whoever starts it mounts its stdin (handle 0) at /dev/nic. It finds
the card through /pci (FIND_DEVICE 10EC:8139, ENABLE_BUS_MASTERING, READ_BAR 0 for the I/O base,
QUERY for the interrupt line), resets it, and gives it DMA memory: a 64 KiB receive ring (RCR
RBLEN = 64K, plus the 16 bytes the datasheet asks for; at 64 KiB the card wraps frames round the
end of the ring, so the driver reads them modulo the ring) and four 2 KiB transmit buffers, both
physically contiguous below 4 GiB. ``--ring 8192|16384|32768|65536`` picks a smaller ring.

Unlike the seed, which polled the ring on every READ and never handled the ring wrapping round,
the card interrupts (IMR = ROK and the error bits): an interrupt thread sleeps in
await_interrupt(IRQ), acknowledges ISR, reads the card's write pointer (CBR) and drains every
frame up to it from the ring in one read (header status and length, CRC checked), then hands the
ring back with one CAPR write, into a bounded FIFO. A frame arriving while the FIFO is full is
dropped and counted, as a NIC does when its ring is full.

Requests on handle 0 (replies only to callers that wait for one):

| request                              | reply                                                   |
|--------------------------------------|---------------------------------------------------------|
| Short(READ, 0, 0)                    | Long(DATA, len, chunk) with the oldest frame, or Short(EMPTY=128, 0, 0) |
| Short(READ, 1, 0)                    | the same, but waits for a frame instead of answering EMPTY |
| Long(WRITE, len, chunk)              | sends the frame (padded to 60 bytes); Short(OK, len, 0) |
| Short/Long(READ_FRAMES=262, flags, [chunk]) | Long(DATA, len, chunk): as many queued frames as fit, each as a u16 little-endian length and the frame; in the caller's chunk when it sent one (it comes back, to be sent again: no allocation per batch), else in a fresh one. flags bit 0: wait for a frame; else Short(EMPTY) / Long(EMPTY, 0, chunk) |
| Long(WRITE_FRAMES=261, len, chunk)   | sends every frame of the chunk (the same u16-length-prefixed format, len bytes in all) in order; Long(OK, frames, chunk): the chunk comes back for the next batch |
| Short(GET_MAC_ADDRESS=260, 0, 0)     | Short(MAC_ADDRESS=300, mac, 0), octet 0 in the low byte  |
| Short(GET_FEATURES=263, 0, 0)        | Short(FEATURES=301, 0, 0): no virtio features, no offloads (so no header batches) |
| Short(QUERY=7, 0, 0)                 | Long(JSON, len, chunk): mac, rx, tx, drops, queued ...   |
| anything else / bad arguments        | Short(ERROR_UNKNOWN_MESSAGE=133) / Short(ERROR_INVALID_VALUE=132) |

Frames are served without the 4-byte CRC (the seed passed it on, counted in the length). A
malformed WRITE_FRAMES batch (a length of 0, past TX_MAX or past ``len``) sends nothing.

Transmit hands the card up to four frames per kernel entry: the frames are copied into the free
buffers (OWN set in the TSAD summary register, read once per round of the four buffers) and one
vectored port I/O call (PORT_VIO) writes their TSDs.

Several server threads receive on handle 0, so a client blocked in READ(1) never holds up another
client's WRITE (drivers/nicserve.py's scheme, shared with drivers/virtio_net.py).
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from functools import partial

from drivers.nicserve import answer_other, received, single_frame, wait_frames
from euralios.std import STDIN, Chunk, Memory, Message, SyscallError, abi, discard
from euralios.std.fs import send_bytes
from euralios.std.protocols.nic import (
    BATCH_BYTES,
    BLOCKING,
    READ_FRAMES,
    WRITE_FRAMES,
    packed_size,
    split_frames,
    take_batch,
)
from euralios.std.protocols.pci import ADDRESS, BAR, ENABLE_BUS_MASTERING, FIND_DEVICE, READ_BAR, device_irq
from euralios.std.serve import serve
from euralios.std.sync import Wakeup

EMPTY = abi.EMPTY

VENDOR, DEVICE = 0x10EC, 0x8139
DEFAULT_IRQ = 11

# registers
IDR0 = 0x00
MAR0 = 0x08
TSD0 = 0x10
TSAD0 = 0x20
RBSTART = 0x30
CR = 0x37
CAPR = 0x38
CBR = 0x3A
IMR = 0x3C
ISR = 0x3E
TCR = 0x40
RCR = 0x44
MPC = 0x4C
CONFIG1 = 0x52
TSAD = 0x60  # transmit status of all descriptors: OWN3-0 in bits 3-0

CR_BUFE, CR_TE, CR_RE, CR_RST = 0x01, 0x04, 0x08, 0x10
ROK, RER, TOK, TER, RXOVW, FOVW = 0x01, 0x02, 0x04, 0x08, 0x10, 0x40
RCR_APM, RCR_AM, RCR_AB, RCR_WRAP = 0x02, 0x04, 0x08, 0x80
RCR_RBLEN_SHIFT = 11  # ring length 8K << RBLEN
RCR_MXDMA_UNLIMITED = 7 << 8
TCR_IFG_NORMAL = 3 << 24
TCR_MXDMA_2048 = 7 << 8
TSD_OWN = 0x2000
RX_ROK = 0x0001

RING = 65536
RINGS = (8192, 16384, 32768, 65536)
TX_SLOT = 2048
TX_MAX = 1792  # the chip's largest transmit size
ETH_MIN = 60
FRAME_MAX = 1518 + 4  # longest frame the card places in the ring, CRC included
FIFO_LIMIT = 256
RESET_POLLS = 1000
TX_POLLS = 1000


class Nic:
    """The driver's state, shared by its threads (they run one at a time, between syscalls)."""

    def __init__(self, proc, io: int, irq: int, rx: Chunk, tx: Chunk, readers: Wakeup, ring: int = RING) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.io = io
        self.irq = irq
        self.rx = rx  # the receive ring (physically contiguous)
        self.tx = tx  # four transmit buffers
        self.ring = ring
        self.mac = b""
        self.rx_offset = 0  # where the next frame's header is (CAPR + 16)
        self.frames: deque[bytes] = deque()
        self.tx_next = 0
        self.tx_status = 0  # the TSAD register as last read (bits 0-3: buffer n is ours again)
        self.tx_busy = False
        self.readers = readers  # server threads blocked in READ(1) until a frame is queued
        self.servers = 0
        self.idle = 0
        self.stats = dict.fromkeys(("rx", "tx", "drops", "rx_bytes", "tx_bytes", "crc_errors", "ring_errors",
                                    "overflows", "tx_errors", "interrupts", "rx_batches", "tx_batches"), 0)

    async def inb(self, reg: int, size: int = 1) -> int:
        return await self.sys.port_in(self.io + reg, size)

    async def outb(self, reg: int, value: int, size: int = 1) -> None:
        await self.sys.port_out(self.io + reg, value, size)


# ---------------------------------------------------------------------------------------- start-up

async def find_card(proc) -> tuple[int, int, int] | None:
    """(PCI address, I/O base, IRQ line) of the card, asked of /pci; None if there is none."""
    sys = proc.sys
    h, _ = await sys.open("/pci")
    try:
        reply = await sys.rcall(h, FIND_DEVICE, VENDOR, DEVICE)
        if reply.tag != ADDRESS:
            return None
        address = reply.d2
        await sys.rcall(h, ENABLE_BUS_MASTERING, address, 0)
        bar = (await sys.rcall(h, READ_BAR, address, 0, expect=BAR)).d2
        if not bar & 1:
            raise SyscallError(abi.PARAM, detail="BAR0 is not an I/O BAR")
        irq = await device_irq(sys, h, address, DEFAULT_IRQ)
        return address, bar & 0xFFFC, irq
    finally:
        await sys.close(h)


async def reset(nic: Nic) -> bool:
    """The datasheet's bring-up sequence; False if the card never leaves reset."""
    sys = nic.sys
    await nic.outb(CONFIG1, 0)  # power on (LWAKE/LWPTN low)
    await nic.outb(CR, CR_RST)
    for _ in range(RESET_POLLS):
        if not await nic.inb(CR) & CR_RST:
            break
        await sys.yield_()
    else:
        return False
    await nic.outb(RBSTART, nic.rx.phys, 4)
    for i in range(4):
        await nic.outb(TSAD0 + 4 * i, nic.tx.phys + i * TX_SLOT, 4)
    # Enable first: the chip ignores TCR while the transmitter is off (Linux does the same).
    await nic.outb(CR, CR_RE | CR_TE)
    # Own address, broadcast and multicast; not promiscuous. No WRAP: frames wrap round the end
    # of the ring (the chip ignores WRAP with a 64 KiB ring anyway) and are read modulo it.
    rblen = RINGS.index(nic.ring)
    await nic.outb(RCR, RCR_APM | RCR_AM | RCR_AB | rblen << RCR_RBLEN_SHIFT | RCR_MXDMA_UNLIMITED, 4)
    await nic.outb(TCR, TCR_IFG_NORMAL | TCR_MXDMA_2048, 4)
    await nic.outb(MAR0, 0xFFFF_FFFF, 4)  # every multicast group (no per-group filter yet)
    await nic.outb(MAR0 + 4, 0xFFFF_FFFF, 4)
    # No TOK: transmission completes while TSD is written and a buffer is reused only once its
    # OWN bit is back, so a per-frame transmit interrupt would wake us for nothing.
    await nic.outb(IMR, ROK | RER | TER | RXOVW | FOVW, 2)
    nic.rx_offset = 0
    nic.mac = bytes([await nic.inb(IDR0 + i) for i in range(6)])
    return True


# ---------------------------------------------------------------------------------------- receive

def ring_read(nic: Nic, offset: int, n: int) -> bytes:
    """``n`` bytes of the ring from ``offset``, modulo the ring (the card wraps frames round)."""
    ring = nic.ring
    start = offset % ring
    if start + n <= ring:
        return nic.rx.read(start, n)
    first = ring - start
    return nic.rx.read(start, first) + nic.rx.read(0, n - first)


async def drain(nic: Nic) -> None:
    """Move every complete frame from the ring to the FIFO.

    The card's write pointer (CBR) says how far it has written; everything between our read
    pointer and it is whole frames (the card advances CBR past a frame once it is in the ring),
    so it is read in one go, split into frames, and handed back with one CAPR write, which
    also reads CBR again for the next round (one vectored port call)."""
    stats = nic.stats
    ring = nic.ring
    io = nic.io
    cbr = await nic.inb(CBR, 2)
    while True:
        start = nic.rx_offset
        avail = (cbr - start) % ring
        if not avail:
            return
        stats["rx_batches"] += 1
        data = ring_read(nic, start, avail)
        pos = 0
        lost = False
        while pos + 4 <= avail:
            header = int.from_bytes(data[pos:pos + 4], "little")
            status, length = header & 0xFFFF, header >> 16
            if not status & RX_ROK or not ETH_MIN + 4 <= length <= FRAME_MAX or pos + 4 + length > avail:
                lost = True
                break
            frame = data[pos + 4:pos + length]
            if zlib.crc32(frame) != int.from_bytes(data[pos + length:pos + length + 4], "little"):
                stats["crc_errors"] += 1
            elif len(nic.frames) >= FIFO_LIMIT:
                stats["drops"] += 1
            else:
                nic.frames.append(frame)
                stats["rx"] += 1
                stats["rx_bytes"] += len(frame)
            pos = (pos + 4 + length + 3) & ~3
        if lost:
            # Lost our place in the ring (should not happen): skip everything the card has written.
            stats["ring_errors"] += 1
            nic.rx_offset = cbr % ring
        else:
            nic.rx_offset = (start + pos) % ring
        (cbr,) = await nic.sys.port_vio([(io + CAPR, 2, (nic.rx_offset - 16) & 0xFFFF), (io + CBR, 2, None)])


async def wake_readers(nic: Nic) -> None:
    """One wake-up per queued frame to readers blocked in READ(1)."""
    while nic.readers.sleeping and nic.frames:
        await nic.readers.wake()


async def interrupt_thread(nic: Nic) -> None:
    sys = nic.sys
    while True:
        await sys.await_interrupt(nic.irq)
        nic.stats["interrupts"] += 1
        isr = await nic.inb(ISR, 2)
        if isr:
            await nic.outb(ISR, isr, 2)  # acknowledge first: a frame arriving from now on re-interrupts
        if isr & (RXOVW | FOVW):
            nic.stats["overflows"] += 1
        if isr & TER:
            nic.stats["tx_errors"] += 1
        await drain(nic)
        await wake_readers(nic)


# ---------------------------------------------------------------------------------------- transmit

async def transmit(nic: Nic, frames: list[bytes]) -> int:
    """Send frames in order through the four descriptors; returns how many went.

    Each round copies frames into the buffers the card has finished with (OWN set in the TSAD
    summary) in ring order, then hands them over in one vectored port call (their TSD writes).
    A card that never gives a buffer back (TX_POLLS reads) ends the batch."""
    sys = nic.sys
    while nic.tx_busy:  # another server thread is mid-transmit: descriptors go in order
        await sys.yield_()
    nic.tx_busy = True
    io = nic.io
    stats = nic.stats
    sent = 0
    try:
        # What the card said when we last read TSAD, less the buffers handed over since: only
        # we hand buffers to the card, so one shown free is still free; one shown busy may
        # have been sent since, which a fresh read (when the next one looks busy) finds out.
        # So TSAD is read once per round of the four buffers, not once per frame.
        status = nic.tx_status
        polls = -1
        while sent < len(frames):
            ops: list[tuple[int, int, int | None]] = []
            i = nic.tx_next
            while sent < len(frames) and status & (1 << i) and len(ops) < 4:
                frame = frames[sent]
                if len(frame) < ETH_MIN:
                    frame = frame + bytes(ETH_MIN - len(frame))  # the chip does not pad short frames
                nic.tx.write(i * TX_SLOT, frame)
                ops.append((io + TSD0 + 4 * i, 4, len(frame)))  # OWN clear: the card's now
                status &= ~(1 << i)
                stats["tx"] += 1
                stats["tx_bytes"] += len(frame)
                i = (i + 1) & 3
                sent += 1
            if not ops:
                polls += 1
                if polls > TX_POLLS:
                    stats["tx_errors"] += 1
                    break
                if polls:
                    await sys.yield_()
                status = nic.tx_status = await nic.inb(TSAD, 2)
                continue
            polls = -1
            nic.tx_next = i
            nic.tx_status = status  # the buffers just handed over count as the card's until read
            if len(ops) == 1:
                port, size, value = ops[0]
                await sys.port_out(port, value, size)
            else:
                await sys.port_vio(ops)
        return sent
    finally:
        nic.tx_busy = False


# ---------------------------------------------------------------------------------------- serving


async def frame_reply(nic: Nic) -> Message:
    frame = nic.frames.popleft()
    return Message(abi.DATA, len(frame), await send_bytes(nic.sys, frame))


async def read(nic: Nic, blocking: bool) -> Message:
    if not await wait_frames(nic, blocking, server):
        return Message(EMPTY, 0, 0)
    return await frame_reply(nic)


async def read_frames(nic: Nic, msg: Message) -> Message:
    """READ_FRAMES: every queued frame that fits, length-prefixed, in the caller's chunk or ours."""
    sys = nic.sys
    flags, mem = msg.d2, msg.d3
    if not isinstance(flags, int) or not isinstance(mem, (Memory, int)):
        await discard(sys, msg)
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    room = BATCH_BYTES
    chunk = None
    if isinstance(mem, Memory):
        chunk = await received(sys, mem)
        if chunk is None or chunk.size < 2 + FRAME_MAX:
            await discard(sys, msg)
            return Message(abi.ERROR_INVALID_VALUE, 0, 0)
        room = chunk.size
    if not await wait_frames(nic, bool(flags & BLOCKING), server):
        return Message(EMPTY, 0, mem) if isinstance(mem, Memory) else Message(EMPTY, 0, 0)
    data, _ = take_batch(nic.frames, room)  # room holds any one frame (checked above)
    if chunk is not None:
        chunk.write(0, data)
        return Message(abi.DATA, len(data), chunk.memory)
    return Message(abi.DATA, len(data), await send_bytes(sys, data))


async def write_frames(nic: Nic, msg: Message) -> Message:
    sys = nic.sys
    n, mem = msg.d2, msg.d3
    chunk = await received(sys, mem) if isinstance(mem, Memory) else None
    if chunk is None or not isinstance(n, int) or not 0 < n <= chunk.size:
        await discard(sys, msg)
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    frames = split_frames(chunk.read(0, n), TX_MAX)
    if packed_size(frames) != n:  # malformed: a length of 0, past TX_MAX or past n
        await discard(sys, msg)
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    nic.stats["tx_batches"] += 1
    sent = await transmit(nic, frames)
    if sent < len(frames):
        await discard(sys, msg)
        return Message(abi.ERROR, abi.THREAD, 0)
    return Message(abi.OK, sent, mem)


async def write(nic: Nic, msg: Message) -> Message:
    data = await single_frame(nic.sys, msg, TX_MAX)
    if not data:
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    if not await transmit(nic, [data]):
        return Message(abi.ERROR, abi.THREAD, 0)
    return Message(abi.OK, len(data), 0)


async def query(nic: Nic) -> Message:
    info = {
        "name": "nic",
        "description": "RTL8139 Ethernet",
        "mac": ":".join(f"{b:02x}" for b in nic.mac),
        "io_base": nic.io,
        "irq": nic.irq,
        "queued": len(nic.frames),
        "missed": await nic.inb(MPC, 4),
        **nic.stats,
        "subdirs": [],
        "files": [],
    }
    data = json.dumps(info).encode()
    return Message(abi.JSON, len(data), await send_bytes(nic.sys, data))


async def handle(nic: Nic, msg: Message) -> Message | None:
    """The reply to one request. Meanwhile this server thread is busy (maybe blocked in
    READ(1)), not idle: see wait_frames."""
    nic.idle -= 1
    try:
        tag = msg.tag
        if tag == WRITE_FRAMES and msg.is_long:
            return await write_frames(nic, msg)
        if tag == READ_FRAMES:
            return await read_frames(nic, msg)
        if tag == abi.WRITE and msg.is_long:
            return await write(nic, msg)
        # No offloads (features 0): plain batches only.
        return await answer_other(nic, msg, mac=nic.mac, features=0, read=read, query=query)
    finally:
        nic.idle += 1


async def server(nic: Nic) -> None:
    """One of the threads serving handle 0 (see the module doc for why there are several),
    until unmounted and nobody holds a handle. A READ sent without waiting drops its frame."""
    await serve(nic.sys, STDIN, partial(handle, nic))


async def main(proc) -> int:
    sys = proc.sys
    found = await find_card(proc)
    if found is None:
        await proc.say("[rtl8139] Device not found. Exiting.")
        return 1
    _, io, irq = found
    ring = RING
    args = list(proc.args[1:])
    if len(args) == 2 and args[0] == "--ring" and args[1].isdigit() and int(args[1]) in RINGS:
        ring = int(args[1])
    elif args:
        await proc.say(f"[rtl8139] usage: rtl8139 [--ring {'|'.join(map(str, RINGS))}]")
        return 2
    rx = await proc.malloc(ring + 16, 0xFFFF_FFFF)
    tx = await proc.malloc(4 * TX_SLOT, 0xFFFF_FFFF)
    nic = Nic(proc, io, irq, rx, tx, await Wakeup.new(sys), ring)
    if not await reset(nic):
        await proc.say("[rtl8139] Device failed to reset: Timeout")
        return 1
    await proc.say(f"[rtl8139] Device reset OK\n[rtl8139] MAC address {':'.join(f'{b:02X}' for b in nic.mac)}")
    await proc.spawn_thread(interrupt_thread, nic)
    nic.servers = 2
    nic.idle = 2
    await proc.spawn_thread(server, nic)
    await server(nic)
    return 0
