"""The /dev/nic protocol: raw Ethernet frames (served by drivers/rtl8139.py and
drivers/virtio_net.py, spoken by net/nic.py).

    Short(READ, flags, 0)                -> Long(DATA, len, chunk): the oldest frame, or EMPTY
    Long(WRITE, len, chunk)              -> Short(OK, len, 0): one frame sent
    Short/Long(READ_FRAMES, flags, [chunk]) -> Long(DATA, len, chunk): a batch of the queued
                                            frames that fit, in the caller's chunk when it sent
                                            one (it comes back, to carry the next batch)
    Long(WRITE_FRAMES, len, chunk)       -> Long(OK, frames, chunk): every frame of a batch sent
    Short(GET_MAC_ADDRESS, 0, 0)         -> Short(MAC_ADDRESS, mac, 0), octet 0 in the low byte
    Short(GET_FEATURES, 0, 0)            -> Short(FEATURES, bits, 0): the virtio feature bits
                                            the card negotiated (proto/virtio.py's Feature);
                                            0 from a card that is no virtio card (RTL8139)
    Short/Long(READ_FRAMES_HDR, ...)     -> as READ_FRAMES, in a *header batch*
    Long(WRITE_FRAMES_HDR, len, chunk)   -> as WRITE_FRAMES, from a header batch
    Long(WRITE_READ_FRAMES_HDR, len, chunk) -> Long(DATA, n, chunk): the header batch of len
                                            bytes sent (as WRITE_FRAMES_HDR), then the same
                                            chunk back with a header batch of the frames queued
                                            by then, n bytes: as many as fit whole, never
                                            waiting and never cutting one (n is 0 when none is
                                            queued or the oldest does not fit the chunk)

A header batch in (READ_FRAMES_HDR with a chunk, WRITE_READ_FRAMES_HDR) may come back in
*another* chunk than the caller's: a virtio driver hands over the receive buffer a large frame
was placed in, a one-entry header batch, and keeps the caller's chunk as a buffer in its place
(drivers/virtio_flip.py), only when the caller's chunk could hold that batch too. Either way
the caller gets one chunk for the one it sent: net/nic.py keeps it for its next batch, which
is how the buffers go round.

``flags & BLOCKING``: wait for a frame instead of answering EMPTY. A *batch* is frames back to
back, each a u16 little-endian length and its bytes (no CRC): pack_frames/take_batch build one,
split_frames reads one. A *header batch* has a virtio-net header (12 bytes, proto/wire/vnet.py's
VnetHdr: what is left to do, a checksum or a TCP segmentation) between each length and its frame;
the length counts the frame alone, so a TSO segment up to HDR_FRAME_MAX fits. Only a driver
whose FEATURES offer offloads serves header batches (the others answer ERROR_UNKNOWN_MESSAGE);
a plain READ_FRAMES always gets complete frames, whatever the card did (the driver finishes the
work in software). Batches travel in chunks of at most BATCH_BYTES, but for a header batch going
out (WRITE_FRAMES_HDR, WRITE_READ_FRAMES_HDR), which may be up to HDR_WRITE_BYTES: four TSO
segments in one request (a longer one is refused with ERROR_INVALID_VALUE, nothing sent); the
frames an exchange brings back are at most BATCH_BYTES. WRITE_READ_FRAMES_HDR is a
header client's WRITE_FRAMES_HDR and non-blocking READ_FRAMES_HDR in one round trip (the ACKs
for a batch in, going out, bring back what arrived meanwhile); a malformed batch is refused
with ERROR_INVALID_VALUE, nothing sent and the chunk freed, as for WRITE_FRAMES_HDR.
"""

from __future__ import annotations

from collections import deque

GET_MAC_ADDRESS = 260
WRITE_FRAMES = 261
READ_FRAMES = 262
GET_FEATURES = 263
READ_FRAMES_HDR = 264
WRITE_FRAMES_HDR = 265
WRITE_READ_FRAMES_HDR = 266
MAC_ADDRESS = 300
FEATURES = 301
BLOCKING = 1  # READ / READ_FRAMES flag: wait for a frame
BATCH_BYTES = 64 * 1024  # the largest batch chunk (16 pages), either way

MAX_FRAME = 0xFFFF  # the most a u16 length prefix can say (the 2 in the loops below is its size)
VNET_HDR_BYTES = 12  # the header in a header batch: proto/wire/vnet.py's HDR_LEN (checked by a test)
HDR_FRAME_MAX = BATCH_BYTES - 2 - VNET_HDR_BYTES  # the largest frame one header batch carries
HDR_WRITE_BYTES = 4 * BATCH_BYTES  # the largest header batch going out (WRITE_FRAMES_HDR and exchange)


def take_batch(queue: deque[bytes], room: int) -> tuple[bytes, int]:
    """Frames from the front of ``queue`` as one batch of at most ``room`` bytes, and how many
    it holds: as many as fit, and always the first (a caller's room holds any one frame, so a
    batch always makes progress). Empty when the queue is."""
    if not queue:
        return b"", 0
    frame = queue.popleft()
    parts = [len(frame).to_bytes(2, "little"), frame]
    used = 2 + len(frame)
    while queue and used + 2 + len(queue[0]) <= room:
        frame = queue.popleft()
        parts.append(len(frame).to_bytes(2, "little"))
        parts.append(frame)
        used += 2 + len(frame)
    return b"".join(parts), len(parts) // 2


def pack_frames(frames: list[bytes], limit: int) -> list[tuple[bytes, int]]:
    """``frames`` as consecutive batches of at most ``limit`` bytes: [(batch, frames in it)]."""
    queue = deque(frames)
    out: list[tuple[bytes, int]] = []
    while queue:
        out.append(take_batch(queue, limit))
    return out


def split_frames(data: bytes, max_length: int = MAX_FRAME) -> list[bytes]:
    """The frames of a batch, in order, up to the first entry that is not one: a length of 0
    or over ``max_length``, or a frame cut short by the end of ``data`` (a truncated last frame
    is dropped). ``packed_size(frames) == len(data)`` says the whole batch was well formed."""
    frames = []
    pos, n = 0, len(data)
    while pos + 2 <= n:
        length = data[pos] | data[pos + 1] << 8
        pos += 2
        if not 0 < length <= max_length or pos + length > n:
            break
        frames.append(data[pos:pos + length])
        pos += length
    return frames


def packed_size(frames: list[bytes]) -> int:
    """The bytes ``frames`` take in a batch."""
    return 2 * len(frames) + sum(map(len, frames))


def take_hdr_batch(queue: deque[bytes], room: int) -> tuple[bytes, int]:
    """take_batch for a header batch: each entry of ``queue`` is a header and its frame
    (VNET_HDR_BYTES + frame), each goes out as the frame's u16 length and the entry."""
    if not queue:
        return b"", 0
    parts: list[bytes] = []
    used = 0
    while queue and (not parts or used + 2 + len(queue[0]) <= room):
        entry = queue.popleft()
        parts.append((len(entry) - VNET_HDR_BYTES).to_bytes(2, "little"))
        parts.append(entry)
        used += 2 + len(entry)
    return b"".join(parts), len(parts) // 2


def pack_hdr_frames(entries: list[bytes], limit: int) -> list[tuple[bytes, int]]:
    """Header + frame ``entries`` as consecutive header batches of at most ``limit`` bytes."""
    queue = deque(entries)
    out: list[tuple[bytes, int]] = []
    while queue:
        out.append(take_hdr_batch(queue, limit))
    return out


def split_hdr_frames(data: bytes, max_length: int = HDR_FRAME_MAX) -> list[bytes]:
    """The header + frame entries of a header batch, up to the first that is not one (as
    split_frames). ``packed_hdr_size(entries) == len(data)`` says it was well formed."""
    entries = []
    pos, n = 0, len(data)
    while pos + 2 <= n:
        length = data[pos] | data[pos + 1] << 8
        pos += 2
        end = pos + VNET_HDR_BYTES + length
        if not 0 < length <= max_length or end > n:
            break
        entries.append(data[pos:end])
        pos = end
    return entries


def packed_hdr_size(entries: list[bytes]) -> int:
    """The bytes header + frame ``entries`` take in a header batch."""
    return 2 * len(entries) + sum(map(len, entries))
