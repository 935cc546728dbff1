"""The /dev/nic protocol: raw Ethernet frames (served by drivers/rtl8139.py, spoken by net/nic.py).

    Short(READ, flags, 0)                -> Long(DATA, len, chunk): the oldest frame, or EMPTY
    Long(WRITE, len, chunk)              -> Short(OK, len, 0): one frame sent
    Short/Long(READ_FRAMES, flags, [chunk]) -> Long(DATA, len, chunk): a batch of the queued
                                            frames that fit, in the caller's chunk when it sent
                                            one (it comes back, to carry the next batch)
    Long(WRITE_FRAMES, len, chunk)       -> Long(OK, frames, chunk): every frame of a batch sent
    Short(GET_MAC_ADDRESS, 0, 0)         -> Short(MAC_ADDRESS, mac, 0), octet 0 in the low byte

``flags & BLOCKING``: wait for a frame instead of answering EMPTY. A *batch* is frames back to
back, each a u16 little-endian length and its bytes (no CRC): pack_frames/take_batch build one,
split_frames reads one. Batches travel in chunks of at most BATCH_BYTES.
"""

from __future__ import annotations

from collections import deque

GET_MAC_ADDRESS = 260
WRITE_FRAMES = 261
READ_FRAMES = 262
MAC_ADDRESS = 300
BLOCKING = 1  # READ / READ_FRAMES flag: wait for a frame
BATCH_BYTES = 64 * 1024  # the largest batch chunk (16 pages), either way

MAX_FRAME = 0xFFFF  # the most a u16 length prefix can say (the 2 in the loops below is its size)


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
