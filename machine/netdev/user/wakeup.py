"""The doorbell the ``user`` router's tasks sleep on instead of polling."""

from __future__ import annotations

import trio

__all__ = ["Wakeup"]


class Wakeup:
    """A one-waiter doorbell: ``set()`` wakes the task in ``wait()``, and does nothing (leaves no
    stale flag) when nobody waits -- the waiter always re-checks its condition before waiting, and
    trio cannot switch tasks between that check and the wait, so no wake-up is ever lost."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event: trio.Event | None = None

    def set(self) -> None:
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        self._event = event = trio.Event()
        try:
            await event.wait()
        finally:
            self._event = None
