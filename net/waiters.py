"""A condition variable for the server's threads: wait until a condition on the stack holds.

The stack (net/stack.py) is one object shared by every thread of the /tcp process; the threads
take turns at syscalls, so it needs no lock, but a thread that needs something of it (a
connection's bytes, send-buffer room, a finished handshake) must sleep until someone else's
input or timer makes it true. It parks on a private rendezvous (a Waiter, pooled) with its
condition; whoever changes the stack calls `wake`, which re-checks every parked condition (and
deadline) and sends each waiter whose one holds a wake-up message. A deadline makes the timer
thread (net/timers.py) look at the earliest one, through `on_deadline`.

(euralios.std is growing a general condition variable; this one is the server's until then.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from euralios.std import Message, SyscallError, abi

WAKE = Message(abi.READ, 0, 0)


class Waiter:
    """A private rendezvous a thread parks on until its condition holds (or its deadline)."""

    __slots__ = ("send", "recv", "cond", "deadline", "parked")

    def __init__(self, send: int, recv: int) -> None:
        self.send = send
        self.recv = recv
        self.cond: Callable[[], object] = lambda: True
        self.deadline: float | None = None
        self.parked = False


class WaitQueue:
    """The parked Waiters (`parked`) and the spare ones (`pool`) of one process.

    `counters["wakeups"]` counts the wake-ups sent; `on_deadline()` is awaited when a thread
    parks with a deadline, so the timer knows to wake in time."""

    def __init__(self, proc: Any, counters: dict[str, int], on_deadline: Callable[[], Awaitable[None]]) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.counters = counters
        self.on_deadline = on_deadline
        self.parked: list[Waiter] = []
        self.pool: list[Waiter] = []

    async def wait_until(self, cond: Callable[[], object], timeout: float | None = None) -> bool:
        """Block this thread until cond() is true (True) or `timeout` seconds pass (False)."""
        if cond():
            return True
        deadline = None if timeout is None else self.proc.now() + timeout
        w = self.pool.pop() if self.pool else Waiter(*await self.sys.new_rendezvous())
        try:
            while True:
                if cond():
                    return True
                if deadline is not None and self.proc.now() >= deadline:
                    return False
                w.cond, w.deadline, w.parked = cond, deadline, True
                self.parked.append(w)
                if deadline is not None:
                    await self.on_deadline()
                await self.sys.receive(w.recv)
        finally:
            if w.parked:
                w.parked = False
                self.parked.remove(w)
            self.pool.append(w)

    async def wake(self) -> None:
        """Wake every parked thread whose condition now holds or whose deadline has passed."""
        if not self.parked:
            return
        now = self.proc.now()
        for w in list(self.parked):
            if w.parked and (w.cond() or (w.deadline is not None and now >= w.deadline)):
                w.parked = False
                self.parked.remove(w)
                self.counters["wakeups"] += 1
                try:
                    await self.sys.send(w.send, WAKE)
                except SyscallError:
                    pass  # only when the process is going down

    def deadline(self) -> float | None:
        """The earliest deadline of a parked thread (None: none has one)."""
        best = None
        for w in self.parked:
            if w.deadline is not None and (best is None or w.deadline < best):
                best = w.deadline
        return best
