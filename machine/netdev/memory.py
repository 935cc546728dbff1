"""A backend whose other end is Python code: tests, benchmarks and scripted peers.

``inject(frame)`` puts a frame on the wire towards the guest (held until the machine runs, so a
script may prepare traffic before boot); frames the guest sends collect in ``sent`` (and go to the
optional ``on_send`` callback, e.g. a peer that answers). Not a ``--net`` choice: it only makes
sense with a Python program holding the object.

Offloads: with ``gso=True`` the far end takes frames as the guest sent them -- ``send_gso``
collects ``(hdr, frame)`` in ``sent_gso`` -- else the base class segments them into ``sent``.
``inject_gso(hdr, frame)`` offers a large or unchecksummed frame to the guest: to ``deliver_gso``
if the card gave one, else segmented and checksummed here first, as every backend must.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from machine.netdev import Backend, Deliver, DeliverGso
from proto.wire import DecodeError
from proto.wire.gso import wire_frames
from proto.wire.vnet import VnetHdr


class MemoryBackend(Backend):
    spec = "memory"

    def __init__(self, keep: bool = True, on_send: Callable[[bytes], object] | None = None,
                 gso: bool = False) -> None:
        super().__init__()
        self.keep = keep
        self.on_send = on_send
        self.gso = gso
        self.sent: list[bytes] = []
        self.sent_gso: list[tuple[VnetHdr, bytes]] = []
        self._deliver: Deliver | None = None
        self._deliver_gso: DeliverGso | None = None
        self._pending: list[tuple[VnetHdr | None, bytes]] = []
        self._changed = trio.Event()

    def inject(self, frame: bytes) -> None:
        """A frame from the outside towards the guest."""
        if self._deliver is None:
            self._pending.append((None, bytes(frame)))
            return
        self.counters["rx_frames"] += 1
        self.counters["rx_bytes"] += len(frame)
        self._deliver(bytes(frame))

    def inject_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        """A frame towards the guest with offload work left (large, or its checksum not done)."""
        if self._deliver is None:
            self._pending.append((hdr, bytes(frame)))
            return
        if self._deliver_gso is not None:
            self.counters["rx_frames"] += 1
            self.counters["rx_bytes"] += len(frame)
            self._deliver_gso(hdr, bytes(frame))
            return
        try:
            pieces = wire_frames(hdr, frame)
        except DecodeError:
            self.count("rx_bad_offload")
            return
        for piece in pieces:
            self.inject(piece)

    async def run(self, deliver: Deliver, deliver_gso: DeliverGso | None = None) -> None:
        self._deliver, self._deliver_gso = deliver, deliver_gso
        try:
            pending, self._pending = self._pending, []
            for hdr, frame in pending:
                if hdr is None:
                    self.inject(frame)
                else:
                    self.inject_gso(hdr, frame)
            await trio.sleep_forever()
        finally:
            self._deliver = self._deliver_gso = None

    def send(self, frame: bytes) -> None:
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)
        if self.keep:
            self.sent.append(bytes(frame))
        if self.on_send is not None:
            self.on_send(frame)
        ev, self._changed = self._changed, trio.Event()
        ev.set()

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        if not self.gso:
            super().send_gso(hdr, frame)
            return
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)
        if self.keep:
            self.sent_gso.append((hdr, bytes(frame)))
        ev, self._changed = self._changed, trio.Event()
        ev.set()

    async def wait_sent(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """Wait until the guest has sent at least ``count`` frames in all; returns ``sent``."""
        with trio.fail_after(timeout):
            while self.counters["tx_frames"] < count:
                await self._changed.wait()
        return self.sent
