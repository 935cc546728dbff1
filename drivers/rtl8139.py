"""RTL8139 network card driver: raw Ethernet frames at /dev/nic (spec §11.8, DESIGN §5).

Started with I/O privilege; whoever starts it mounts its stdin (handle 0) at /dev/nic. It finds
the card through /pci (FIND_DEVICE 10EC:8139, ENABLE_BUS_MASTERING, READ_BAR 0 for the I/O base,
QUERY for the interrupt line), resets it, and gives it DMA memory: an 8 KiB receive ring (plus the
16 bytes and 1.5 KiB of slack that RCR.WRAP lets the card run past the end into) and four 2 KiB
transmit buffers, both physically contiguous below 4 GiB.

Unlike the seed, which polled the ring on every READ and never handled the ring wrapping round,
the card interrupts (IMR = ROK and the error bits): an interrupt thread sleeps in
await_interrupt(IRQ), acknowledges ISR, then drains every complete frame from the ring (header
status and length, CRC checked, CAPR advanced past the dword-aligned frame modulo the ring size)
into a bounded FIFO. A frame arriving while the FIFO is full is dropped and counted, as a NIC does
when its ring is full.

Requests on handle 0 (replies only to callers that wait for one):

| request                              | reply                                                   |
|--------------------------------------|---------------------------------------------------------|
| Short(READ, 0, 0)                    | Long(DATA, len, chunk) with the oldest frame, or Short(EMPTY=128, 0, 0) |
| Short(READ, 1, 0)                    | the same, but waits for a frame instead of answering EMPTY |
| Long(WRITE, len, chunk)              | sends the frame (padded to 60 bytes); Short(OK, len, 0) |
| Short(GET_MAC_ADDRESS=260, 0, 0)     | Short(MAC_ADDRESS=300, mac, 0), octet 0 in the low byte  |
| Short(QUERY=7, 0, 0)                 | Long(JSON, len, chunk): mac, rx, tx, drops, queued ...   |
| anything else / bad arguments        | Short(ERROR_UNKNOWN_MESSAGE=133) / Short(ERROR_INVALID_VALUE=132) |

Frames are served without the 4-byte CRC (the seed passed it on, counted in the length).

Several server threads receive on handle 0, so a client blocked in READ(1) never holds up another
client's WRITE; a server about to block makes sure another one is free first (up to
MAX_SERVERS, after which a blocking READ on an empty FIFO answers EMPTY rather than risk leaving
nobody to serve writes). A blocked reader sleeps in receive on a private rendezvous; the interrupt
thread sends it a wake-up once per queued frame.
"""

from __future__ import annotations

import json
import zlib
from collections import deque

from euralios.std import STDIN, Handle, Memory, Message, SyscallError, abi
from euralios.std.fs import send_bytes, take_bytes

# /pci protocol
FIND_DEVICE = 256
READ_BAR = 257
ENABLE_BUS_MASTERING = 258
ADDRESS = 384
BAR = 386

# /dev/nic protocol
EMPTY = abi.EMPTY
GET_MAC_ADDRESS = 260
MAC_ADDRESS = 300
BLOCKING = 1

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

CR_BUFE, CR_TE, CR_RE, CR_RST = 0x01, 0x04, 0x08, 0x10
ROK, RER, TOK, TER, RXOVW, FOVW = 0x01, 0x02, 0x04, 0x08, 0x10, 0x40
RCR_APM, RCR_AM, RCR_AB, RCR_WRAP = 0x02, 0x04, 0x08, 0x80
RCR_MXDMA_UNLIMITED = 7 << 8
TCR_IFG_NORMAL = 3 << 24
TCR_MXDMA_2048 = 7 << 8
TSD_OWN = 0x2000
RX_ROK = 0x0001

RING = 8192
RX_ALLOC = RING + 16 + 1500
TX_SLOT = 2048
TX_MAX = 1792  # the chip's largest transmit size
ETH_MIN = 60
FRAME_MAX = 1518 + 4  # longest frame the card places in the ring, CRC included
FIFO_LIMIT = 256
MAX_SERVERS = 8
RESET_POLLS = 1000
TX_POLLS = 1000


class Nic:
    """The driver's state, shared by its threads (they run one at a time, between syscalls)."""

    def __init__(self, proc, io: int, irq: int, rx, tx) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.io = io
        self.irq = irq
        self.rx = rx  # Chunk: the receive ring (physically contiguous)
        self.tx = tx  # Chunk: four transmit buffers
        self.mac = b""
        self.wrap = True
        self.rx_offset = 0  # where the next frame's header is (CAPR + 16)
        self.frames: deque[bytes] = deque()
        self.tx_next = 0
        self.tx_busy = False
        self.waiting = 0  # readers blocked in READ(1)
        self.wake_recv = -1
        self.wake_send = -1
        self.servers = 0
        self.idle = 0
        self.stats = dict.fromkeys(("rx", "tx", "drops", "rx_bytes", "tx_bytes", "crc_errors", "ring_errors",
                                    "overflows", "tx_errors", "interrupts"), 0)

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
        irq = DEFAULT_IRQ
        listing = await sys.rcall(h, abi.QUERY)
        if listing.tag == abi.JSON:
            for device in json.loads(await take_bytes(sys, listing)).get("subdirs", []):
                if device.get("address") == address and isinstance(device.get("irq"), int):
                    irq = device["irq"]
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
    # Own address, broadcast and multicast; not promiscuous. WRAP: frames stay contiguous.
    await nic.outb(RCR, RCR_APM | RCR_AM | RCR_AB | (RCR_WRAP if nic.wrap else 0) | RCR_MXDMA_UNLIMITED, 4)
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
    """``n`` bytes of the ring from ``offset``: contiguous with WRAP, else modulo the ring."""
    if nic.wrap:
        return nic.rx.read(offset, n)
    start = offset % RING
    if start + n <= RING:
        return nic.rx.read(start, n)
    first = RING - start
    return nic.rx.read(start, first) + nic.rx.read(0, n - first)


async def drain(nic: Nic) -> None:
    """Move every complete frame from the ring to the FIFO (the card says when: CR.BUFE)."""
    stats = nic.stats
    while not await nic.inb(CR) & CR_BUFE:
        offset = nic.rx_offset
        header = int.from_bytes(ring_read(nic, offset, 4), "little")
        status, length = header & 0xFFFF, header >> 16
        if not status & RX_ROK or not ETH_MIN + 4 <= length <= FRAME_MAX:
            # Lost our place in the ring (should not happen): skip everything the card has written.
            stats["ring_errors"] += 1
            nic.rx_offset = await nic.inb(CBR, 2) % RING
            await nic.outb(CAPR, (nic.rx_offset - 16) & 0xFFFF, 2)
            break
        data = ring_read(nic, offset + 4, length)
        nic.rx_offset = ((offset + 4 + length + 3) & ~3) % RING
        await nic.outb(CAPR, (nic.rx_offset - 16) & 0xFFFF, 2)
        frame = data[:-4]
        if zlib.crc32(frame) != int.from_bytes(data[-4:], "little"):
            stats["crc_errors"] += 1
        elif len(nic.frames) >= FIFO_LIMIT:
            stats["drops"] += 1
        else:
            nic.frames.append(frame)
            stats["rx"] += 1
            stats["rx_bytes"] += len(frame)


async def wake_readers(nic: Nic) -> None:
    """One wake-up per queued frame to readers blocked in READ(1)."""
    while nic.waiting and nic.frames:
        nic.waiting -= 1
        await nic.sys.send(nic.wake_send, Message(abi.READ, 0, 0))


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

async def transmit(nic: Nic, frame: bytes) -> bool:
    """Copy a frame into the next transmit buffer and hand its descriptor to the card."""
    sys = nic.sys
    while nic.tx_busy:  # another server thread is mid-transmit: descriptors go in order
        await sys.yield_()
    nic.tx_busy = True
    try:
        i = nic.tx_next
        for _ in range(TX_POLLS):
            if await nic.inb(TSD0 + 4 * i, 4) & TSD_OWN:  # buffer free: its last frame has gone
                break
            await sys.yield_()
        else:
            nic.stats["tx_errors"] += 1
            return False
        if len(frame) < ETH_MIN:
            frame = frame + bytes(ETH_MIN - len(frame))  # the chip does not pad short frames
        nic.tx.write(i * TX_SLOT, frame)
        await nic.outb(TSD0 + 4 * i, len(frame), 4)  # OWN clear: the card's now
        nic.tx_next = (i + 1) & 3
        nic.stats["tx"] += 1
        nic.stats["tx_bytes"] += len(frame)
        return True
    finally:
        nic.tx_busy = False


# ---------------------------------------------------------------------------------------- serving

async def discard(sys, msg: Message) -> None:
    """Free chunks and close handles a message brought, so no request can leak our memory."""
    for word in (msg.d2, msg.d3):
        try:
            if isinstance(word, Memory):
                await sys.free(word.vaddr)
            elif isinstance(word, Handle):
                await sys.close(word.number)
        except SyscallError:
            pass


async def frame_reply(nic: Nic) -> Message:
    frame = nic.frames.popleft()
    return Message(abi.DATA, len(frame), await send_bytes(nic.sys, frame))


async def read(nic: Nic, blocking: bool) -> Message:
    sys = nic.sys
    while not nic.frames:
        if not blocking:
            return Message(EMPTY, 0, 0)
        if nic.idle == 0:
            if nic.servers >= MAX_SERVERS:
                return Message(EMPTY, 0, 0)  # never leave nobody to serve writes
            nic.servers += 1
            nic.idle += 1
            await nic.proc.spawn_thread(server, nic)
        nic.waiting += 1
        await sys.receive(nic.wake_recv)
    return await frame_reply(nic)


async def write(nic: Nic, msg: Message) -> Message:
    sys = nic.sys
    n, mem = msg.d2, msg.d3
    if not isinstance(mem, Memory) or not isinstance(n, int):
        await discard(sys, msg)
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    try:
        base, size, _ = await sys.chunk_info(mem.vaddr)
    except SyscallError:
        base, size = mem.vaddr, 0  # not a chunk we hold
    ok = 0 < n <= TX_MAX and mem.vaddr - base + n <= size  # never read past the chunk (a fault)
    data = sys.gate.load(mem.vaddr, n) if ok else b""
    await discard(sys, msg)
    if not ok:
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)
    if not await transmit(nic, data):
        return Message(abi.ERROR, abi.THREAD, 0)
    return Message(abi.OK, n, 0)


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
    tag = msg.tag
    if tag == abi.WRITE and msg.is_long:
        return await write(nic, msg)
    if msg.is_long:
        await discard(nic.sys, msg)
        return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
    if tag == abi.READ:
        return await read(nic, msg.d2 == BLOCKING)
    if tag == GET_MAC_ADDRESS:
        return Message(MAC_ADDRESS, int.from_bytes(nic.mac, "little"), 0)
    if tag == abi.QUERY:
        return await query(nic)
    if tag == abi.CLOSE_TAG:
        return None
    return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)


async def server(nic: Nic) -> None:
    """One of the threads serving handle 0 (see the module doc for why there are several)."""
    sys = nic.sys
    while True:
        try:
            msg = await sys.receive(STDIN)
        except SyscallError as e:
            if e.code == abi.CLOSED:
                return  # unmounted and nobody holds a handle
            continue
        nic.idle -= 1
        try:
            reply = await handle(nic, msg)
        except SyscallError as e:
            reply = Message(abi.ERROR, e.code, 0)  # e.g. no memory for a reply chunk: keep serving
        finally:
            nic.idle += 1
        if reply is None:
            continue
        if not msg.reply:
            if reply.is_long:
                await discard(sys, reply)  # e.g. READ sent without waiting: the frame is dropped
            continue
        try:
            await sys.send(STDIN, reply)
        except SyscallError as e:
            await discard(sys, e.message if isinstance(e.message, Message) else reply)


async def say(proc, text: str) -> None:
    try:
        await proc.print(text)
    except SyscallError:
        pass


async def main(proc) -> int:
    sys = proc.sys
    found = await find_card(proc)
    if found is None:
        await say(proc, "[rtl8139] Device not found. Exiting.")
        return 1
    _, io, irq = found
    rx = await proc.malloc(RX_ALLOC, 0xFFFF_FFFF)
    tx = await proc.malloc(4 * TX_SLOT, 0xFFFF_FFFF)
    nic = Nic(proc, io, irq, rx, tx)
    if not await reset(nic):
        await say(proc, "[rtl8139] Device failed to reset: Timeout")
        return 1
    await say(proc, f"[rtl8139] Device reset OK\n[rtl8139] MAC address {':'.join(f'{b:02X}' for b in nic.mac)}")
    nic.wake_recv, nic.wake_send = await sys.new_rendezvous()
    await proc.spawn_thread(interrupt_thread, nic)
    nic.servers = 2
    nic.idle = 2
    await proc.spawn_thread(server, nic)
    await server(nic)
    return 0
