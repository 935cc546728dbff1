"""The watchdog: a thread that computes for too long without a syscall is killed.

Trio tasks cannot be interrupted mid-step, so pre-emption happens at syscall boundaries (see
syscalls.Gate.syscall). A thread that computes without ever making a syscall cannot be pre-empted
that way. The watchdog is a host thread that, while the system is busy, samples every 250 ms which
EuraliOS thread the interpreter is executing and whether that thread has made a syscall since;
after `limit` seconds without one it raises WatchdogKill inside it (PyThreadState_SetAsyncExc),
which kills that thread's process alone. While trio sleeps in its I/O wait the watchdog waits on
an event: an idle system wakes nobody.

Which thread is executing is a named hook, `Watchdog.running`: a trio instrument sets it as each
task's step begins (the thread whose trio task it is, or None for the kernel's and the machine's
own tasks) and clears it before trio waits for I/O; the kernel sets it itself in a thread's first
step, which begins before the task is in its task map. Nothing depends on the kernel's method
names.

Limits, stated plainly: the exception lands at the next bytecode boundary, so a single long call
into C (say `sum(range(10**12))`) is only stopped when it returns; and if the thread makes its
first syscall in the microseconds between the check and the injection, the kill still lands
(on that thread, inside its syscall) — it was over its limit anyway.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import trio

from merriwig.errors import WatchdogKill
from merriwig.process import ThreadState

if TYPE_CHECKING:
    from merriwig.process import Thread


class _Instrument(trio.abc.Instrument):
    """Keeps `running` and `busy` up to date from trio's run loop.

    Two hooks, as many calls per IPC round trip as the I/O-wait pair they replace: before each
    task step (the hot path: a dict lookup and an attribute test) and before each I/O wait."""

    def __init__(self, wd: Watchdog) -> None:
        self.wd = wd
        self.threads = wd.threads
        self.asleep = False  # busy was cleared for an I/O wait and no step has begun since

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.wd.running = self.threads.get(task)
        if self.asleep:
            self.asleep = False
            self.wd.busy.set()

    def before_io_wait(self, timeout: float) -> None:
        self.wd.running = None
        if timeout > 0 and not self.asleep:
            self.asleep = True
            self.wd.busy.clear()


class Watchdog:
    """threads: the kernel's map from trio task to the EuraliOS thread it runs."""

    def __init__(self, threads: Mapping[Any, Thread], limit: float, period: float = 0.25) -> None:
        self.threads = threads
        self.limit = limit
        self.period = min(period, limit / 4)
        self.running: Thread | None = None  # the thread whose step trio is running, if any
        self.busy = threading.Event()
        self.busy.set()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._instrument = _Instrument(self)
        self._main_ident = threading.get_ident()

    def start(self) -> None:
        self._main_ident = threading.get_ident()
        trio.lowlevel.add_instrument(self._instrument)
        self._thread = threading.Thread(target=self._loop, name="euralios-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self.busy.set()
        try:
            trio.lowlevel.remove_instrument(self._instrument)
        except (KeyError, RuntimeError):
            pass

    def _loop(self) -> None:
        last: tuple[Thread, int] | None = None
        since = 0.0
        while not self._stop:
            self.busy.wait()
            if self._stop:
                return
            time.sleep(self.period)
            t = self.running
            if t is None:
                last = None
                continue
            key = (t, t.syscalls)
            now = time.monotonic()
            if last is None or last[0] is not key[0] or last[1] != key[1]:
                last, since = key, now
                continue
            if now - since >= self.limit and t.state is ThreadState.RUNNING:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._main_ident), ctypes.py_object(WatchdogKill)
                )
                last = None
