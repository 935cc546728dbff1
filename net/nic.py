"""The /dev/nic client: frames to and from the card's driver, in batches, in reused chunks.

A blocking READ_FRAMES answers every frame the driver had queued (as many as fit) in a chunk
of ours, which comes back with the reply and is kept for the next request (no allocation per
batch); frames go out the same way, WRITE_FRAMES batches in a chunk the driver hands back with
its answer. A one-page chunk while frames come a few at a time (ACKs), a 64 KiB one while they
come in bulk (256 KiB for a header batch of TSO segments going out): moving a chunk costs a TLB
shootdown per page. The protocol and the batch format
are euralios.std.protocols.nic's.

Inside the stack every frame travels with its virtio-net header (proto/wire/vnet.py): `send`
takes (VnetHdr, frame) pairs and `receive` gives them. The driver says what its card does
(GET_FEATURES: virtio feature bits, 0 for the RTL8139): `offloads` is what net/offloads.py makes
of them. With any offload, frames travel in header batches (READ_FRAMES_HDR / WRITE_FRAMES_HDR,
a header before each frame; the reader's own ACKs as WRITE_READ_FRAMES_HDR, which brings back
what arrived meanwhile); without, in plain batches, every header in is NO_OFFLOAD, and a
frame going out with work left for a card (a partial checksum, a TSO segment) is counted in
nic_errors and not sent -- a stack built with this client's `offloads` never makes one.
"""

from __future__ import annotations

from typing import Any

from euralios.std import Chunk, Memory, Message, SyscallError, abi, discard
from euralios.std.protocols.nic import (
    BATCH_BYTES,
    BLOCKING,
    FEATURES,
    GET_FEATURES,
    GET_MAC_ADDRESS,
    HDR_WRITE_BYTES,
    MAC_ADDRESS,
    READ_FRAMES,
    READ_FRAMES_HDR,
    WRITE_FRAMES,
    WRITE_FRAMES_HDR,
    WRITE_READ_FRAMES_HDR,
    pack_frames,
    pack_hdr_frames,
    split_frames,
    split_hdr_frames,
)
from net.offloads import CSUM_ONLY, NO_OFFLOAD, NO_OFFLOADS, NicOffloads, offloads_from_features
from proto.wire import DecodeError
from proto.wire.vnet import HDR_LEN, VnetHdr

PLAIN_HDR = NO_OFFLOAD.pack()
CSUM_ONLY_HDR = CSUM_ONLY.pack()  # an ACK's: packed once


async def mac_address(sys: Any, handle: int) -> bytes:
    """The card's MAC (GET_MAC_ADDRESS); six zero bytes if the answer carries none."""
    reply = await sys.rcall(handle, GET_MAC_ADDRESS, 0, 0, expect=MAC_ADDRESS)
    return int(reply.d2).to_bytes(6, "little") if isinstance(reply.d2, int) else bytes(6)


async def nic_features(sys: Any, handle: int) -> int:
    """The virtio feature bits the card's driver negotiated (GET_FEATURES); 0 from a driver
    that does not know the request (a card without offloads)."""
    try:
        reply = await sys.rcall(handle, GET_FEATURES, 0, 0)
    except SyscallError:
        return 0
    return reply.d2 if reply.tag == FEATURES and isinstance(reply.d2, int) else 0


def unpack_entries(entries: list[bytes], counters: dict[str, int]) -> list[tuple[VnetHdr, bytes]]:
    """(header, frame) of each header + frame entry of a header batch; a header that does not
    decode loses its frame (counted in nic_errors)."""
    out = []
    for entry in entries:
        if not entry[0] and not entry[1]:
            out.append((NO_OFFLOAD, entry[HDR_LEN:]))  # the common case, without a decode
            continue
        try:
            out.append((VnetHdr.unpack(entry), entry[HDR_LEN:]))
        except DecodeError:
            counters["nic_errors"] += 1
    return out


class BatchChunks:
    """Spare chunks for /dev/nic batches, by size: one page (a few frames: ACKs), BATCH_BYTES
    bytes or HDR_WRITE_BYTES (a header batch of TSO segments going out), each holding at least
    that. Chunks come back from the driver with its replies; at most two of each are kept."""

    SIZES = (abi.PAGE, BATCH_BYTES, HDR_WRITE_BYTES)

    def __init__(self, sys: Any) -> None:
        self.sys = sys
        self.spare: dict[int, list[Memory]] = {size: [] for size in self.SIZES}

    async def get(self, nbytes: int) -> Memory | None:
        """A chunk of at least ``nbytes`` (at most HDR_WRITE_BYTES); None when memory is short."""
        size = next(size for size in self.SIZES if nbytes <= size)
        spare = self.spare[size]
        if spare:
            return spare.pop()
        try:
            return Memory((await self.sys.malloc(size // abi.PAGE))[0])
        except SyscallError:
            return None

    async def room(self, mem: Memory) -> int:
        """Bytes from ``mem.vaddr`` to the end of its chunk (0: not a chunk we hold)."""
        try:
            base, size, _ = await self.sys.chunk_info(mem.vaddr)
        except SyscallError:
            return 0
        return base + size - mem.vaddr

    async def put(self, mem: Memory, room: int | None = None) -> None:
        """A chunk back from the driver: kept with the largest of our sizes it holds (a
        virtio driver's receive buffer, handed over whole with its frame, is a page more than
        BATCH_BYTES: we send it back with the next batch, and it becomes a buffer again), else
        freed."""
        if room is None:
            room = await self.room(mem)
        size = next((size for size in reversed(self.SIZES) if size <= room < 2 * size), None)
        spare = self.spare.get(size) if size is not None else None
        if spare is not None and len(spare) < 2:
            spare.append(mem)
            return
        try:
            await self.sys.free(mem.vaddr)
        except SyscallError:
            pass


class NicClient:
    """/dev/nic open on `handle`. `counters` (the server's) gets frames_in, frames_out,
    nic_batches_in, nic_batches_out and nic_errors."""

    def __init__(self, proc: Any, handle: int, counters: dict[str, int], features: int = 0) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.handle = handle
        self.counters = counters
        self.chunks = BatchChunks(self.sys)
        self.features = features  # the driver's GET_FEATURES answer (nic_features)
        self.offloads: NicOffloads = offloads_from_features(features)  # what the card does for us
        self.headers = self.offloads != NO_OFFLOADS  # header batches (only worth it with offloads)
        # A large chunk for the next batch in: always with header batches (a card that
        # coalesces sends 64 KiB frames from a connection's first round trip on, and one
        # offered a page would have to be cut in software into MSS frames that come a page
        # at a time); with plain ones, while the last batch in was large.
        self.big = self.headers

    async def receive(self) -> list[tuple[VnetHdr, bytes]]:
        """The next batch of frames in (waiting for one; a failed request is retried after a
        pause). Raises SyscallError (CLOSED, INVALID_HANDLE) once /dev/nic is gone."""
        sys = self.sys
        while True:
            mem = await self.chunks.get(BATCH_BYTES if self.big else abi.PAGE)
            try:
                reply = await sys.rcall(self.handle, READ_FRAMES_HDR if self.headers else READ_FRAMES, BLOCKING,
                                        mem if mem is not None else 0)
            except SyscallError as e:
                self.counters["nic_errors"] += 1
                if isinstance(e.message, Message):
                    await discard(sys, e.message)  # our chunk came back with the error
                if e.code in (abi.CLOSED, abi.INVALID_HANDLE):
                    raise
                await self.proc.sleep(0.1)
                continue
            mem = reply.d3
            if reply.tag != abi.DATA or not isinstance(mem, Memory):
                if isinstance(mem, Memory):
                    await self.chunks.put(mem)
                else:
                    await discard(sys, reply)
                await self.proc.sleep(0.01)  # EMPTY: the driver had no thread to wait with
                continue
            return await self.batch_in(reply.d2 if isinstance(reply.d2, int) else 0, mem)

    async def batch_in(self, n: int, mem: Memory) -> list[tuple[VnetHdr, bytes]]:
        """The frames of the ``n``-byte batch in ``mem`` (a chunk back from the driver, kept
        for the next request)."""
        room = await self.chunks.room(mem)
        data = Chunk(self.sys, mem.vaddr, room).read(0, n) if 0 < n <= room else b""
        await self.chunks.put(mem, room)
        self.big = self.headers or n > abi.PAGE // 2
        self.counters["nic_batches_in"] += 1
        if self.headers:
            pairs = unpack_entries(split_hdr_frames(data), self.counters)
            self.counters["frames_in"] += len(pairs)
            return pairs
        frames = split_frames(data)
        self.counters["frames_in"] += len(frames)
        return [(NO_OFFLOAD, frame) for frame in frames]

    async def send(self, frames: list[tuple[VnetHdr, bytes]], exchange: bool = False) -> list[tuple[VnetHdr, bytes]]:
        """Put `frames` on the wire, in order, in WRITE_FRAMES batches. A batch that cannot go
        (no memory, the driver failed) is lost, as on a wire: TCP will resend. With
        ``exchange`` (for the one thread that reads, so frames in stay in order) and header
        batches, each batch goes as WRITE_READ_FRAMES_HDR and what the driver had queued comes
        back with it: the frames in, returned (else always none)."""
        sys = self.sys
        got: list[tuple[VnetHdr, bytes]] = []
        exchange = exchange and self.headers
        if self.headers:
            entries = [(PLAIN_HDR if hdr is NO_OFFLOAD else CSUM_ONLY_HDR if hdr is CSUM_ONLY else hdr.pack()) + frame
                       for hdr, frame in frames]
            batches = pack_hdr_frames(entries, HDR_WRITE_BYTES)  # several TSO segments a request
            request = WRITE_READ_FRAMES_HDR if exchange else WRITE_FRAMES_HDR
        else:
            plain = [frame for hdr, frame in frames if hdr == NO_OFFLOAD]
            if len(plain) != len(frames):
                self.counters["nic_errors"] += len(frames) - len(plain)  # work for a card we lack
            batches, request = pack_frames(plain, BATCH_BYTES), WRITE_FRAMES
        for batch, count in batches:
            # An exchange's chunk also carries frames back (header batches: a 64 KiB one, as in).
            mem = await self.chunks.get(max(len(batch), BATCH_BYTES if exchange else 0))
            if mem is None:
                self.counters["nic_errors"] += count  # no memory for it: lost, as on a wire
                continue
            Chunk(sys, mem.vaddr, len(batch)).write(0, batch)  # ours: get() gave at least that
            try:
                reply = await sys.rcall(self.handle, request, len(batch), mem)
            except SyscallError as e:
                self.counters["nic_errors"] += count  # lost, as on a wire; TCP will resend
                if isinstance(e.message, Message):
                    await discard(sys, e.message)  # the chunk came back to us
                continue
            self.counters["frames_out"] += count
            self.counters["nic_batches_out"] += 1
            back = reply.d3
            if not isinstance(back, Memory):
                continue
            if exchange and reply.tag == abi.DATA and isinstance(reply.d2, int) and reply.d2 > 0:
                got.extend(await self.batch_in(reply.d2, back))
            else:
                await self.chunks.put(back)
        return got
