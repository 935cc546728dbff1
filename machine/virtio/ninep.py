"""virtio-9p-pci (virtio 1.2 §5.11, "9P transport"), QEMU's ``-virtfs``: one host folder per device.

PCI: 1AF4:1009 (transitional; a non-transitional device would be 1AF4:1049), subsystem
1AF4:0009, class 0x000200 (QEMU's ``class_id = 0x2``), revision 0, INTx pin A. BAR0 I/O (legacy,
64 bytes: the registers and the config), BAR4 64-bit prefetchable memory (modern, 16 KiB): the
capability layout is machine/virtio/pci.py's. The board gives each share its own slot, BARs and
IRQ line (machine/board.py).

Features offered: MOUNT_TAG (bit 0), VERSION_1, INDIRECT_DESC, EVENT_IDX, ANY_LAYOUT. Device
config: ``tag_len`` le16 then ``tag_len`` bytes of tag, not NUL-terminated (at most
:data:`MAX_TAG_LEN` bytes: QEMU's MAX_TAG_LEN 32 less its NUL).

One request queue (0) of :data:`QUEUE_SIZE` entries (QEMU's MAX_REQ). Each chain the driver
offers is one request: the device-readable descriptors hold a T-message, the device-writable
ones the room for its R-message. The device answers it with the ShareServer
(machine/share/server.py) and puts the chain in the used ring with the number of bytes written,
then interrupts (ISR bit 0). Requests are answered in the order they were offered, one at a time.

A chain that cannot carry a request is the driver's bug and, as in QEMU's virtio-9p-device.c
(virtio_error), the device stops: DEVICE_NEEDS_RESET and a configuration interrupt, until the
driver resets it. That is a chain with fewer than 7 readable bytes (no 9P header), fewer than
11 writable bytes (not even room for an Rlerror), or a reply longer than the room given (the
driver promised msize bytes at Tversion). A message that is well framed by the queue but bad
as 9P (a size field that disagrees with the bytes, an unknown type, more than msize) is the
server's to answer, with Rlerror to its tag, and the device goes on.

Why the host file I/O runs in a thread. A kick arrives inside the guest's port or MMIO write,
which runs in the trio loop that is the whole machine (every CPU thread, timer and device).
File system calls on the host can block for milliseconds or longer (a cold disk, a network home
directory, a huge directory listing): done in the kick, they would stall every process of the
guest. So the kick only pops and checks chains (guest RAM, quick) and queues them; a task of
:meth:`VirtioNinep.run` hands each request to ``trio.to_thread.run_sync`` and writes the reply
when the thread is done. One request at a time, in order: the ShareServer keeps the session's
fids and is not thread-safe, which is also how a single-threaded device backend behaves.

Reset: outstanding requests are dropped (their replies, if a thread is still busy, are thrown
away: the queue they belonged to is gone) and the 9P session ends (every fid clunked), as
QEMU's v9fs_reset does; the driver starts again with Tversion.

Watching: ``on_exchange``, when set (``boot(trace=...)`` sets it to the kernel's tracer), is told
each request frame, its reply and when the server started and finished it (perf_counter
seconds). The device knows nothing of traces; a hook keeps the machine below the kernel.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from machine.irq import IrqController
from machine.memory import PhysicalMemory
from machine.share import ShareServer
from machine.virtio.device import VirtioDevice
from machine.virtio.pci import VirtioPci, legacy_io_size
from machine.virtio.queue import Chain
from proto.ninep import HEADER_LEN
from proto.virtio import TRANSITIONAL_9P, VIRTIO_ID_9P, Feature, NinepFeature

REQUESTS = 0
QUEUE_SIZE = 128
MAX_TAG_LEN = 31
CLASS_9P = 0x000200  # QEMU's virtio-9p-pci class_id 0x0002: base class 0, subclass 2
RLERROR_LEN = HEADER_LEN + 4  # the smallest reply there is
# (request frame, reply frame or None, start, end): see on_exchange in the module docstring
Exchange = Callable[[bytes, bytes | None, float, float], None]
CONFIG_LEN = 2 + MAX_TAG_LEN + 1  # what QEMU reserves (sizeof config + MAX_TAG_LEN); BAR0 is sized by it

OFFERED = (NinepFeature.MOUNT_TAG | Feature.VERSION_1 | Feature.INDIRECT_DESC | Feature.EVENT_IDX
           | Feature.ANY_LAYOUT)

_NAMES = {NinepFeature.MOUNT_TAG: "MOUNT_TAG", Feature.INDIRECT_DESC: "INDIRECT_DESC",
          Feature.EVENT_IDX: "EVENT_IDX", Feature.ANY_LAYOUT: "ANY_LAYOUT", Feature.VERSION_1: "VERSION_1"}


def feature_names(bits: int) -> list[str]:
    """The names of the set 9P-device feature bits, in bit order."""
    return [name for flag, name in sorted(_NAMES.items(), key=lambda kv: int(kv[0])) if bits & flag]


def tag_bytes(tag: str) -> bytes:
    """The tag as config bytes; ValueError (one line) when it cannot be one."""
    raw = tag.encode()
    if not raw:
        raise ValueError("a mount tag cannot be empty")
    if len(raw) > MAX_TAG_LEN:
        raise ValueError(f"mount tag {tag!r} is {len(raw)} bytes, longer than the {MAX_TAG_LEN} QEMU allows")
    return raw


@dataclass(slots=True)
class _Request:
    generation: int
    chain: Chain
    frame: bytes


class VirtioNinep(VirtioDevice):
    """One share: ``server`` answers the requests, ``tag`` is what the guest mounts it by."""

    device_id = VIRTIO_ID_9P
    offered = int(OFFERED)
    name = "virtio-9p-pci"

    def __init__(self, memory: PhysicalMemory, irq: IrqController | None, server: ShareServer, tag: str, *,
                 line: int, io_base: int, mem_base: int) -> None:
        super().__init__(memory, irq, line, queues=1, queue_size=QUEUE_SIZE)
        self.tag = tag
        self._tag = tag_bytes(tag)
        self.server = server
        self.transport = VirtioPci(self, TRANSITIONAL_9P, CLASS_9P, io_base=io_base, mem_base=mem_base,
                                   irq_line=line, name=f"virtio-9p {tag}", io_size=legacy_io_size(CONFIG_LEN))
        self.pci = self.transport.pci
        self.generation = 0  # moves on at every reset: replies of an older one are dropped
        self._requests: deque[_Request | None] = deque()  # None: end the 9P session (a reset)
        self._more = trio.Event()
        self.on_exchange: Exchange | None = None
        self.counters.update(dict.fromkeys(("requests", "replies", "dropped", "bytes_in", "bytes_out"), 0))

    # -- the device's rules ------------------------------------------------------------------------

    def config_bytes(self) -> bytes:
        return struct.pack("<H", len(self._tag)) + self._tag

    def queue_notify(self, index: int) -> None:
        if index != REQUESTS:
            return
        q = self.queues[REQUESTS]
        while (chain := q.pop()) is not None:
            if chain.read_size < HEADER_LEN:
                self.needs_reset(f"9P request {chain.head}: {chain.read_size} readable bytes, no 9P header")
                return
            if chain.write_size < RLERROR_LEN:
                self.needs_reset(f"9P request {chain.head}: {chain.write_size} writable bytes, "
                                 f"no room for a reply")
                return
            size = int.from_bytes(chain.read(self.dma, 4), "little")
            # The size field says how much is the message; more than msize is read only far
            # enough for the server to see it is too long (it answers EMSGSIZE).
            frame = chain.read(self.dma, min(max(size, HEADER_LEN), self.server.max_msize + 1))
            self.counters["requests"] += 1
            self.counters["bytes_in"] += len(frame)
            self._requests.append(_Request(self.generation, chain, frame))
        self._more.set()

    def on_reset(self) -> None:
        self.generation += 1
        self.counters["dropped"] += sum(r is not None for r in self._requests)
        self._requests.clear()
        self._requests.append(None)  # the session ends, in order with any request in a thread
        self._more.set()

    # -- the worker --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Answer queued requests for as long as the machine runs (see the module docstring)."""
        while True:
            while not self._requests:
                self._more = trio.Event()
                await self._more.wait()
            request = self._requests.popleft()
            if request is None:
                await trio.to_thread.run_sync(self.server.close)
                continue
            started = time.perf_counter()
            reply = await trio.to_thread.run_sync(self.server.handle_frame, request.frame)
            if self.on_exchange is not None:
                self.on_exchange(request.frame, reply, started, time.perf_counter())
            if request.generation != self.generation or not self.driver_ok:
                self.counters["dropped"] += 1
                continue
            self.run_safely(partial(self._answer, request, reply))

    def _answer(self, request: _Request, reply: bytes | None) -> None:
        chain = request.chain
        if reply is None:  # handle_frame's "no tag to answer": excluded by the kick's checks
            reply = b""
        if len(reply) > chain.write_size:
            tag = int.from_bytes(request.frame[5:7], "little")
            self.needs_reset(f"9P reply to tag {tag}: {len(reply)} bytes, the request gave room for "
                             f"{chain.write_size}")
            return
        written = chain.write(self.dma, reply)
        self.counters["replies"] += 1
        self.counters["bytes_out"] += written
        self.used(self.queues[REQUESTS], [(chain.head, written)])

    # -- for the monitor ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        return {"tag": self.tag, "path": self.server.path, "readonly": self.server.readonly,
                "offered": feature_names(self.offered), "negotiated": feature_names(self.features),
                "status": int(self.status), "legacy": self.legacy, "error": self.error, **self.counters}

    def close(self) -> None:
        self.server.close()
