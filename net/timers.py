"""The server's timer thread: runs the stack's timers when they are due, and is idle otherwise.

It sleeps until the next deadline (the stack's, or a waiting thread's), at most TIMER_CAP at a
time while that deadline is within NEAR seconds (a new, earlier deadline may appear meanwhile
and a sleep cannot be cut short). When nothing is pending it parks in a receive on its own
rendezvous; a far deadline (a DHCP renewal, TIME-WAIT) is left to an alarm thread sleeping
until it, which then wakes the timer. So an idle stack is idle. Whoever adds a deadline calls
`check`, which wakes the parked timer when that deadline needs it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from euralios.std import SyscallError
from euralios.std.sync import Wakeup

TIMER_CAP = 0.05  # longest sleep while a deadline is near
NEAR = 1.0  # deadlines further than this are left to an alarm thread
MAX_ALARMS = 3


class Timer:
    """`run` is the timer thread: each round it awaits `tick()` (due timers, output, wake-ups),
    then waits for `deadline()`. `counters`: timer_wakeups, timer_parks, alarms_started."""

    def __init__(self, proc: Any, counters: dict[str, int], deadline: Callable[[], float | None],
                 tick: Callable[[], Awaitable[None]]) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.counters = counters
        self.deadline = deadline
        self.tick = tick
        self.parked_on: Wakeup | None = None  # where the timer parks (after open)
        self.alarms: list[float] = []

    async def open(self) -> None:
        """The rendezvous the parked timer waits on (before `run` or `check`)."""
        self.parked_on = await Wakeup.new(self.sys)

    @property
    def parked(self) -> bool:
        return self.parked_on is not None and self.parked_on.sleeping > 0

    async def run(self) -> None:
        while True:
            self.counters["timer_wakeups"] += 1
            await self.tick()
            d = self.deadline()
            now = self.proc.now()
            if d is not None and d - now <= NEAR:
                await self.proc.sleep(min(max(d - now, 0.001), TIMER_CAP))
                continue
            if d is not None and not await self._arm(d):
                await self.proc.sleep(TIMER_CAP)  # no alarm thread to spare: keep an eye on it
                continue
            assert self.parked_on is not None, "Timer.open() comes before run()"
            self.counters["timer_parks"] += 1
            await self.parked_on.sleep()

    async def check(self) -> None:
        """Wake the parked timer if a deadline now needs it (near, or not covered by an alarm)."""
        if not self.parked:
            return
        d = self.deadline()
        if d is None or (d - self.proc.now() > NEAR and self._covers(d)):
            return
        await self.wake()

    async def wake(self) -> None:
        if self.parked_on is not None:
            await self.parked_on.wake()

    def _covers(self, d: float) -> bool:
        return any(t <= d + 0.01 for t in self.alarms)

    async def _arm(self, d: float) -> bool:
        if self._covers(d):
            return True
        if len(self.alarms) >= MAX_ALARMS:
            return False
        self.alarms.append(d)
        try:
            await self.proc.spawn_thread(self._alarm, d)
        except SyscallError:
            self.alarms.remove(d)
            return False
        self.counters["alarms_started"] += 1
        return True

    async def _alarm(self, target: float) -> None:
        try:
            await self.proc.sleep(max(0.0, target - self.proc.now()))
        finally:
            self.alarms.remove(target)
        await self.wake()
