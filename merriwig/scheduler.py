"""Scheduling policy and the watchdog.

Trio tasks cannot be interrupted mid-step, so pre-emption happens at syscall boundaries: each
thread has a time slice (Kernel.slice, 10 ms by default) and a syscall that finds it spent yields
to the other runnable threads (see syscalls.Gate.syscall). Trio runs the runnable tasks in
batches, so ready threads take turns: round robin at the granularity of a syscall.

A thread that computes without ever making a syscall cannot be pre-empted that way. The watchdog
is a host thread that, while the system is busy, samples every 250 ms which EuraliOS thread the
interpreter is executing (from the main thread's Python stack) and whether that thread has made a
syscall since; after `limit` seconds without one it raises WatchdogKill inside it
(PyThreadState_SetAsyncExc), which kills that thread's process alone. While trio sleeps in its
I/O wait the watchdog waits on an event: an idle system wakes nobody.

Limits, stated plainly: the exception lands at the next bytecode boundary, so a single long call
into C (say `sum(range(10**12))`) is only stopped when it returns; and if the thread makes its
first syscall in the microseconds between the check and the injection, the kill still lands
(on that thread, inside its syscall) — it was over its limit anyway.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from typing import Any

import trio

from merriwig.errors import WatchdogKill


class _BusyInstrument(trio.abc.Instrument):
    """Tells the watchdog when trio is about to sleep in its I/O wait and when it wakes."""

    def __init__(self, wd: Watchdog) -> None:
        self.wd = wd

    def before_io_wait(self, timeout: float) -> None:
        if timeout > 0 and self.wd.busy.is_set():
            self.wd.busy.clear()

    def after_io_wait(self, timeout: float) -> None:
        if not self.wd.busy.is_set():
            self.wd.busy.set()


class Watchdog:
    def __init__(self, kernel: Any, limit: float, period: float = 0.25) -> None:
        self.kernel = kernel
        self.limit = limit
        self.period = min(period, limit / 4)
        self.busy = threading.Event()
        self.busy.set()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._instrument = _BusyInstrument(self)
        self._main_ident = threading.get_ident()
        self.kills = 0

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

    def _running_thread(self) -> Any:
        """The EuraliOS thread whose code the interpreter's main thread is executing, if any."""
        frame = sys._current_frames().get(self._main_ident)
        from merriwig.kernel import Kernel  # local: only to find _run_thread's code object

        target = Kernel._run_thread.__code__
        depth = 0
        while frame is not None and depth < 200:
            if frame.f_code is target:
                return frame.f_locals.get("thread")
            frame = frame.f_back
            depth += 1
        return None

    def _loop(self) -> None:
        last: tuple[Any, int] | None = None
        since = 0.0
        while not self._stop:
            self.busy.wait()
            if self._stop:
                return
            time.sleep(self.period)
            t = self._running_thread()
            if t is None:
                last = None
                continue
            key = (t, t.syscalls)
            now = time.monotonic()
            if last is None or last[0] is not key[0] or last[1] != key[1]:
                last, since = key, now
                continue
            if now - since >= self.limit and t.state == "running":
                ret = ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._main_ident), ctypes.py_object(WatchdogKill)
                )
                if ret == 1:
                    self.kills += 1
                last = None
