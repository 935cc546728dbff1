"""The watchdog: a thread that computes for too long without a syscall is killed.

Trio tasks cannot be interrupted mid-step, so pre-emption happens at syscall boundaries (see
syscalls.Gate.syscall). A thread that computes without ever making a syscall cannot be pre-empted
that way. The watchdog is a host thread that, while the system is busy, samples every 250 ms which
EuraliOS thread the interpreter is executing and whether that thread has made a syscall since;
after `limit` seconds without one it raises WatchdogKill inside it (PyThreadState_SetAsyncExc),
which kills that thread's process alone. While trio sleeps in its I/O wait the watchdog waits on
an event: an idle system wakes nobody.

Which thread is executing is a named hook, `Watchdog.running`: the kernel sets it when a thread's
first step begins and whenever a syscall returns to a thread (from then until its next syscall
that thread is what the interpreter runs: EuraliOS code leaves trio only through syscalls), and
the trio instrument clears it before trio waits for I/O. A thread found in a syscall (blocked)
is never killed. Nothing depends on the kernel's method names.

Limits, stated plainly: the exception lands at the next bytecode boundary, so a single long call
into C (say `sum(range(10**12))`) is only stopped when it returns; and if the thread makes its
first syscall in the microseconds between the check and the injection, the kill still lands
(on that thread, inside its syscall) — it was over its limit anyway.
"""

from __future__ import annotations

import ctypes
import threading
import time
from typing import TYPE_CHECKING

import trio

from merriwig.errors import WatchdogKill
from merriwig.process import ThreadState

if TYPE_CHECKING:
    from merriwig.process import Thread


class _Instrument(trio.abc.Instrument):
    """Tells the watchdog when trio is about to sleep in its I/O wait and when it wakes: one call
    each per I/O wait, nothing per task step (a per-step hook cost the network stack ~13% CPU)."""

    def __init__(self, wd: Watchdog) -> None:
        self.wd = wd

    def before_io_wait(self, timeout: float) -> None:
        self.wd.running = None
        if timeout > 0 and self.wd.busy.is_set():
            self.wd.busy.clear()

    def after_io_wait(self, timeout: float) -> None:
        if not self.wd.busy.is_set():
            self.wd.busy.set()


class Watchdog:
    """limit: seconds a thread may run without a syscall; period: how often it is sampled."""

    def __init__(self, limit: float, period: float = 0.25) -> None:
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
