"""Threads of one process waiting for each other, over private rendezvous.

A thread that has nothing to do until another thread of its process changes something (a key
queued, a frame arrived, a connection's state moved) must sleep in the kernel, not spin: it
receives on a rendezvous nobody else holds, and the thread that made the change sends it a
wake-up there. The threads of a process run one at a time between syscalls, so the sleeper's
"check, then mark myself asleep" and the waker's "look, then send" never interleave halfway: no
lock is needed and no wake-up is lost, provided the sleeper is marked asleep in the same step as
it decides to sleep -- which is what these classes do.

* `Wakeup`: sleepers on one rendezvous, each `wake()` starts one of them (first come, first
  woken). For one thread waiting for work (a forwarder, a timer thread) or a pool of them
  (readers waiting for frames: one wake per frame).
* `Condition`: each waiter sleeps until its own predicate holds, or its deadline passes, on a
  rendezvous of its own, so `notify()` wakes exactly the threads that can go on.
* `Channel`: words handed from one thread to another, one at a time (an input thread routing
  keys to the main loop), with an end marker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from euralios.std import abi
from euralios.std.errors import SyscallError
from euralios.std.message import Message

if TYPE_CHECKING:
    from euralios.std.syscalls import Sys

WAKE = Message(abi.OK, 0, 0)  # what a wake-up says: nothing (nobody else can see it)


class Wakeup:
    """Threads sleeping until another thread of the process wakes them.

    `sleeping` counts the sleepers not yet woken: a waker looks at it (and at the state the
    sleepers wait on) to decide whether to wake one. A wake with nobody asleep is not kept, so a
    sleeper checks its condition before it sleeps and again once woken."""

    __slots__ = ("sys", "_send", "_recv", "sleeping")

    def __init__(self, sys: Sys, send: int, recv: int) -> None:
        self.sys = sys
        self._send = send
        self._recv = recv
        self.sleeping = 0

    @classmethod
    async def new(cls, sys: Sys) -> Wakeup:
        """A Wakeup on a fresh private rendezvous."""
        send, recv = await sys.new_rendezvous()
        return cls(sys, send, recv)

    async def sleep(self) -> None:
        """Sleep until a wake(). SyscallError if the rendezvous fails (the process is going
        down); the sleeper is then no longer counted."""
        self.sleeping += 1
        try:
            await self.sys.receive(self._recv)
        except SyscallError:
            self.sleeping -= 1
            raise

    async def wake(self) -> bool:
        """Wake the longest sleeper, if there is one (False: nobody was asleep)."""
        if not self.sleeping:
            return False
        self.sleeping -= 1
        await self.sys.send(self._send, WAKE)
        return True

    async def close(self) -> None:
        """Give back the rendezvous, once nobody sleeps here any more (a sleeper left would be
        woken with an error)."""
        for h in (self._send, self._recv):
            try:
                await self.sys.close(h)
            except SyscallError:
                pass


class Channel:
    """Integers handed from one thread of the process to another over a private rendezvous.

    put() waits until a get() takes the value (a rendezvous, as the name says): a reader that
    stops reading holds the writer up, as a full pipe does, and nothing piles up unread.
    put(None) says the input has ended; get() then answers None."""

    __slots__ = ("sys", "_send", "_recv")

    def __init__(self, sys: Sys, send: int, recv: int) -> None:
        self.sys = sys
        self._send = send
        self._recv = recv

    @classmethod
    async def new(cls, sys: Sys) -> Channel:
        send, recv = await sys.new_rendezvous()
        return cls(sys, send, recv)

    async def put(self, value: int | None) -> None:
        await self.sys.send(self._send, Message(abi.EMPTY) if value is None else Message(abi.CHAR, value))

    async def get(self) -> int | None:
        msg = await self.sys.receive(self._recv)
        return msg.d2 if msg.tag == abi.CHAR and isinstance(msg.d2, int) else None


class _Waiter:
    """One parked thread: its rendezvous, what it waits for, and until when."""

    __slots__ = ("send", "recv", "cond", "deadline", "parked")

    def __init__(self, send: int, recv: int) -> None:
        self.send = send
        self.recv = recv
        self.cond: Callable[[], object] = lambda: True
        self.deadline: float | None = None
        self.parked = False


class Condition:
    """Threads waiting until their predicate over shared state holds.

    clock: seconds, the time deadlines are in (proc.now). on_timed_park: awaited when a waiter
    with a deadline has parked, just before it sleeps -- the place to make sure some thread
    will notice the deadline (wake a timer thread, arm an alarm): Condition keeps no timer of
    its own. Rendezvous are pooled: one per thread that ever waited at once, reused after."""

    __slots__ = ("sys", "clock", "on_timed_park", "_parked", "_pool")

    def __init__(self, sys: Sys, clock: Callable[[], float],
                 on_timed_park: Callable[[], Awaitable[None]] | None = None) -> None:
        self.sys = sys
        self.clock = clock
        self.on_timed_park = on_timed_park
        self._parked: list[_Waiter] = []
        self._pool: list[_Waiter] = []

    def __len__(self) -> int:
        """How many threads are parked."""
        return len(self._parked)

    async def wait_until(self, cond: Callable[[], object], timeout: float | None = None) -> bool:
        """Block this thread until cond() is true (True) or `timeout` seconds pass (False).
        cond() is only re-checked when someone calls notify()."""
        if cond():
            return True
        deadline = None if timeout is None else self.clock() + timeout
        if self._pool:
            w = self._pool.pop()
        else:
            w = _Waiter(*await self.sys.new_rendezvous())
        try:
            while True:
                if cond():
                    return True
                if deadline is not None and self.clock() >= deadline:
                    return False
                w.cond, w.deadline, w.parked = cond, deadline, True
                self._parked.append(w)
                if deadline is not None and self.on_timed_park is not None:
                    await self.on_timed_park()
                await self.sys.receive(w.recv)
        finally:
            if w.parked:
                w.parked = False
                self._parked.remove(w)
            self._pool.append(w)

    async def notify(self) -> int:
        """After a change to the shared state: wake every parked thread whose predicate now
        holds or whose deadline has passed. Returns how many were woken."""
        if not self._parked:
            return 0
        now = self.clock()
        woken = 0
        for w in list(self._parked):
            if w.parked and (w.cond() or (w.deadline is not None and now >= w.deadline)):
                w.parked = False
                self._parked.remove(w)
                woken += 1
                try:
                    await self.sys.send(w.send, WAKE)
                except SyscallError:
                    pass  # only when the process is going down
        return woken

    def earliest_deadline(self) -> float | None:
        """The nearest deadline of a parked thread (None: nobody waits with one)."""
        deadlines = [w.deadline for w in self._parked if w.deadline is not None]
        return min(deadlines) if deadlines else None
