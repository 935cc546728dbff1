"""A backend whose other end is Python code: tests, benchmarks and scripted peers.

``inject(frame)`` puts a frame on the wire towards the guest (held until the machine runs, so a
script may prepare traffic before boot); frames the guest sends collect in ``sent`` (and go to the
optional ``on_send`` callback, e.g. a peer that answers). Not a ``--net`` choice: it only makes
sense with a Python program holding the object.
"""

from __future__ import annotations

from collections.abc import Callable

import trio

from machine.netdev import Backend, Deliver


class MemoryBackend(Backend):
    spec = "memory"

    def __init__(self, keep: bool = True, on_send: Callable[[bytes], object] | None = None) -> None:
        super().__init__()
        self.keep = keep
        self.on_send = on_send
        self.sent: list[bytes] = []
        self._deliver: Deliver | None = None
        self._pending: list[bytes] = []
        self._changed = trio.Event()

    def inject(self, frame: bytes) -> None:
        """A frame from the outside towards the guest."""
        if self._deliver is None:
            self._pending.append(bytes(frame))
            return
        self.counters["rx_frames"] += 1
        self.counters["rx_bytes"] += len(frame)
        self._deliver(bytes(frame))

    async def run(self, deliver: Deliver) -> None:
        self._deliver = deliver
        try:
            pending, self._pending = self._pending, []
            for frame in pending:
                self.inject(frame)
            await trio.sleep_forever()
        finally:
            self._deliver = None

    def send(self, frame: bytes) -> None:
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)
        if self.keep:
            self.sent.append(bytes(frame))
        if self.on_send is not None:
            self.on_send(frame)
        ev, self._changed = self._changed, trio.Event()
        ev.set()

    async def wait_sent(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """Wait until the guest has sent at least ``count`` frames in all; returns ``sent``."""
        with trio.fail_after(timeout):
            while self.counters["tx_frames"] < count:
                await self._changed.wait()
        return self.sent
