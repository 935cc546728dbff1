"""The kernel's half of a confined process: its worker, a reader for the channel, a relay per thread.

A confined process is an ordinary kernel Process -- handle table, address space, quota, VFS,
threads that are trio tasks -- whose Python runs in a worker (merriwig/confine/runtime.py). Each
of its threads' tasks runs `relay()`: it waits for that thread's next syscall from the worker,
makes it through the process' own gate (so scheduling, tracing, the killed check and every
handler are exactly the in-process ones) and sends the registers back. One reader task takes the
channel's frames: stores and loads it serves at once against the process' page tables (a fault
kills the process, as a user-mode access in-process does), syscalls and thread ends it queues for
their thread's relay.

The watchdog for a confined thread is a deadline, not a sampler (Deadlines): from the moment a
syscall returns to the worker until the thread's next frame arrives, a thread may compute for
`Watchdog.limit` seconds; past that its process is killed and its worker SIGKILLed -- which
stops even one long call into C, and which the program cannot catch. Until then it computes on
another host CPU while the system goes on.

Everything the worker sends is hostile: frames are parsed by channel.decode (ProtocolError for
anything malformed), a thread id must be one of the process' threads, at most QUEUE frames may
wait per thread. Any violation kills the process; the kernel carries on.
"""

from __future__ import annotations

import math
import os
import signal
from typing import TYPE_CHECKING, Any

import trio

from machine.mmu import GeneralProtection, PageFault
from machine.tsc import origin_ns
from merriwig import abi
from merriwig.confine import channel as ch
from merriwig.errors import KillCause, OutOfFrames, QuotaExceeded

if TYPE_CHECKING:
    from merriwig.confine.client import Worker
    from merriwig.kernel import Kernel
    from merriwig.process import Process, Thread

SPREAD = 0.01  # seconds a confined thread computes before its worker may use every CPU
SHARE_AFTER = 16  # syscalls a worker makes before it joins the kernel's CPU (a short program never does)
FAIRNESS = 16  # frames the reader takes in a row before it lets other tasks run
QUEUE = 4  # frames that may wait for one thread (a worker sends one syscall at a time per thread)
#: How long the reader, at the channel's end, waits for the relays to take the frames it queued
#: (a thread's last Exited) before it judges the worker dead: only a worker that broke the
#: protocol (frames for a thread that is in a syscall) makes it wait that long.
DRAIN_S = 2.0
_CAUSES = {ch.Cause.CRASH: KillCause.CRASH, ch.Cause.BAD_IMAGE: KillCause.BAD_IMAGE}


class _Killed(Exception):
    """The process died while the reader served a frame: stop reading."""


class ConfinedProcess:
    """One confined process' worker and channel, seen from the kernel."""

    def __init__(self, kernel: Kernel, proc: Process, worker: Worker) -> None:
        self.kernel = kernel
        self.proc = proc
        self.worker = worker
        self.fd = worker.channel.fileno()  # non-blocking (trio made it so); read and written directly
        self._send_lock = trio.Lock()
        self._queues: dict[int, tuple[trio.MemorySendChannel[ch.Event], trio.MemoryReceiveChannel[ch.Event]]] = {}
        self.closed = False
        self._unwaited = 0  # frames read since the reader last waited
        self._queued = 0  # frames the reader queued that no relay has taken yet
        self._drained: trio.Event | None = None  # set when _queued falls to 0 (the reader waits)
        self.solo = True  # one thread: its relay reads the channel (see relay())
        self.spread = False  # may run on every CPU (Deadlines)
        self._until_shared = SHARE_AFTER  # syscalls before it moves to the kernel's CPU

    # ------------------------------------------------------------------ start and end
    async def start(self, thread: Thread, image: bytes, meta: dict[str, Any]) -> None:
        """Hand the worker its first thread and its image."""
        tp = self.kernel.timepage
        frame = ch.encode_start(thread.tid, thread.stack_top, origin_ns(), tp.boot_tsc, len(image), meta)
        await self._send(frame)
        for off in range(0, len(image), ch.MAX_PIECE):
            await self._send(ch.encode_image(image[off:off + ch.MAX_PIECE]))

    def any_cpu(self) -> None:
        try:
            os.sched_setaffinity(self.worker.pid, range(os.cpu_count() or 1))
        except OSError:
            pass

    def spread_out(self) -> None:
        """It computes: let the host run it on any CPU, beside the kernel."""
        self.spread = True
        self.any_cpu()

    def close(self) -> None:
        """The process is gone: SIGKILL the worker (harmless if it already left)."""
        if not self.closed:
            self.closed = True
            self.worker.kill()

    def _kill(self, reason: str, cause: KillCause, report: str = "") -> None:
        self.kernel.kill(self.proc, reason, cause, report)
        self.close()

    # ------------------------------------------------------------------ the channel
    async def _send(self, frame: bytes) -> None:
        """One frame to the worker: a plain write when the socket has room (almost always: the
        worker reads as it goes), a wait otherwise. Trio's socket methods would cost two
        scheduler passes per frame. A frame for a worker that is gone is dropped: the reader
        sees it go and kills the process with its status."""
        try:
            os.write(self.fd, frame)
            return
        except BlockingIOError:
            pass
        except OSError:
            return
        async with self._send_lock:  # one waiter on the fd at a time
            while True:
                await trio.lowlevel.wait_writable(self.fd)
                try:
                    os.write(self.fd, frame)
                    return
                except BlockingIOError:
                    continue
                except OSError:
                    return

    async def _recv(self) -> bytes:
        fd = self.fd
        self._unwaited += 1
        if self._unwaited >= FAIRNESS:
            self._unwaited = 0
            await trio.lowlevel.checkpoint()  # a worker sending frames non-stop must not starve the kernel
        while True:
            try:
                return os.read(fd, ch.MAX_FRAME + 1)
            except BlockingIOError:
                self._unwaited = 0
                await trio.lowlevel.wait_readable(fd)

    def _queue(self, tid: int) -> tuple[trio.MemorySendChannel[ch.Event], trio.MemoryReceiveChannel[ch.Event]]:
        q = self._queues.get(tid)
        if q is None:
            if tid not in self.proc.threads:
                raise ch.ProtocolError(f"frame for thread {tid}, not one of this process'")
            q = self._queues[tid] = trio.open_memory_channel[ch.Event](QUEUE)
        return q

    def _apply(self, stores: list[ch.Store]) -> None:
        space = self.proc.space
        try:
            for vaddr, data in stores:
                space.write(vaddr, data)
        except (PageFault, GeneralProtection, QuotaExceeded, OutOfFrames) as e:
            self.kernel.fault(self.proc, e)
            self.close()
            raise _Killed() from None

    def _memory(self, event: ch.Event) -> bytes | None:
        """Serve a frame's memory side at once: its stores, and a load's bytes (None if none).
        A fault kills the process, as a user-mode access in-process does (_Killed)."""
        if isinstance(event, ch.Syscall | ch.Stores | ch.Load):
            self._apply(event.stores)
        if isinstance(event, ch.Load):
            try:
                return self.proc.space.read(event.vaddr, event.n)
            except (PageFault, GeneralProtection, QuotaExceeded, OutOfFrames) as e:
                self.kernel.fault(self.proc, e)
                self.close()
                raise _Killed() from None
        return None

    async def _worker_gone(self) -> None:
        """EOF on the channel while the process lives: a signal (the CPU rlimit) or a death."""
        proc = self.proc
        if proc.killed is None and not proc.space.destroyed and not self.closed:
            status = await self.worker.wait()
            self._kill(f"confined worker {_status(status)}", KillCause.CRASH)

    async def read(self) -> None:
        """The reader task of a process with more than one thread: serve memory, queue each
        thread's syscalls and ends for its relay, until the worker or the process ends."""
        proc = self.proc
        try:
            while proc.killed is None and not proc.space.destroyed:
                frame = await self._recv()
                if not frame:
                    break
                event = ch.decode(frame)
                data = self._memory(event)
                if data is not None:
                    await self._send(ch.encode_loaded(data))
                elif isinstance(event, ch.Syscall | ch.Exited | ch.Crashed):
                    try:
                        self._queue(event.tid)[0].send_nowait(event)
                    except trio.WouldBlock:
                        raise ch.ProtocolError(f"thread {event.tid} sent more than {QUEUE} frames unanswered") from None
                    self._queued += 1
                elif not isinstance(event, ch.Stores):
                    raise ch.ProtocolError(f"{type(event).__name__} from a worker")
        except _Killed:
            return
        except ch.ProtocolError as e:
            self._kill(f"confined worker broke the channel protocol: {e}", KillCause.CRASH)
            return
        except (OSError, trio.ClosedResourceError, trio.BrokenResourceError):
            pass
        # The worker's last frames (the main thread's Exited, sent just before it left) may still
        # wait in the queues: the relays take them first, or a program that returned 0 would be
        # reported "killed: confined worker exited with status 0" whenever the EOF won the race.
        if self._queued:
            self._drained = trio.Event()
            with trio.move_on_after(DRAIN_S):
                await self._drained.wait()
        await self._worker_gone()

    # ------------------------------------------------------------------ one thread
    async def relay(self) -> Any:
        """The body of every thread of a confined process (its trio task).

        While the process has one thread, that thread's relay reads the channel itself (solo):
        with one thread nothing can arrive while it is in a syscall, and a hand-over from a
        reader task would cost a scheduler pass per syscall. The first fork_thread starts the
        reader task, and from then on every relay takes its frames from its queue."""
        kernel = self.kernel
        t = kernel.task_threads[trio.lowlevel.current_task()]
        deadlines = kernel.confined_deadlines
        try:
            while True:
                if deadlines is not None:
                    deadlines.computing(t, self)  # in its worker now, until its next frame
                try:
                    event = await (self._next_solo(t) if self.solo else self._next(t))
                except _Killed:
                    return None
                except ch.ProtocolError as e:
                    self._kill(f"confined worker broke the channel protocol: {e}", KillCause.CRASH)
                    return None
                finally:
                    if deadlines is not None:
                        deadlines.stopped(t)
                if event is None:
                    await self._worker_gone()
                    return None
                if isinstance(event, ch.Exited):
                    return event.status
                if isinstance(event, ch.Crashed):
                    line, _, report = event.text.partition("\n")  # the reason, then its console's report
                    self._kill(line, _CAUSES[event.cause], report=report or line)
                    return None
                assert isinstance(event, ch.Syscall)
                await self._syscall(t, event)
        finally:
            self._queues.pop(t.tid, None)

    async def _next(self, t: Thread) -> ch.Event | None:
        """The thread's next syscall or end, from its queue."""
        _, queue = self._queue(t.tid)
        event = await queue.receive()
        self._queued -= 1
        if not self._queued and self._drained is not None:
            self._drained.set()
        return event

    async def _next_solo(self, t: Thread) -> ch.Event | None:
        """The only thread's next syscall or end, read from the channel; memory frames on the
        way are served here. None: the worker is gone."""
        while True:
            try:
                frame = await self._recv()
            except (OSError, trio.ClosedResourceError):
                return None
            if not frame:
                return None
            event = ch.decode(frame)
            data = self._memory(event)
            if data is not None:
                await self._send(ch.encode_loaded(data))
                continue
            if isinstance(event, ch.Stores):
                continue
            if not isinstance(event, ch.Syscall | ch.Exited | ch.Crashed) or event.tid != t.tid:
                raise ch.ProtocolError(f"{type(event).__name__} for thread {getattr(event, 'tid', '?')}")
            return event

    async def _syscall(self, t: Thread, event: ch.Syscall) -> None:
        """Make one syscall through the process' gate and send the registers back."""
        kernel = self.kernel
        gate = self.proc.gate
        rax, rdi, rsi, rdx = event.regs
        extra = 0
        if rax & 0xFF == abi.FORK_THREAD:
            # The new thread's kernel task is another relay; its code is the worker's. From now
            # on a reader task takes the frames (it starts before the worker hears of the thread).
            regs = await gate.syscall(rax, self.relay, (), 0)
            if not regs[0] & 0xFF:
                extra = kernel.threads[regs[1]].stack_top
                if self.solo:
                    self.solo = False
                    assert kernel.nursery is not None
                    kernel.nursery.start_soon(self.read, name=f"{self.proc.name}/channel")
        else:
            regs = await gate.syscall(rax, rdi, rsi, rdx)
        if self._until_shared:
            self._until_shared -= 1
            if not self._until_shared and not self.spread:
                share_cpu(self.worker.pid)
        watchdog = kernel.watchdog
        if watchdog is not None and watchdog.running is t:
            watchdog.running = None  # it computes in the worker now, not in this interpreter
        await self._send(ch.encode_reply(t.tid, regs, extra))


class Deadlines:
    """The watchdog for confined threads, and where their workers run: one task for the whole
    kernel, asleep until the earliest moment a thread computing in its worker passes SPREAD or
    the limit.

    A relay says `computing(t)` when it hands a syscall's answer back to the worker and
    `stopped(t)` when the thread's next frame arrives: two dictionary operations per syscall,
    where a deadline per call would cost a cancel scope. With no confined thread computing the
    task waits on an event, so an idle system sleeps.

    A worker that has made SHARE_AFTER syscalls moves to the kernel's CPU (`share_cpu`): a
    program that mostly makes syscalls then hands each one over without waking another CPU, which
    on a virtual machine costs more than the syscall (half the round trip, measured); a short
    program never moves (moving it costs more than it would gain). One that computes for SPREAD
    seconds without a syscall is given every CPU, so it runs in parallel and the kernel goes on
    beside it."""

    def __init__(self, kernel: Kernel, limit: float) -> None:
        self.kernel = kernel
        self.limit = limit
        self.since: dict[Thread, tuple[float, ConfinedProcess]] = {}
        self._someone = trio.Event()

    def computing(self, t: Thread, confined: ConfinedProcess) -> None:
        self.since[t] = (trio.current_time(), confined)
        if not self._someone.is_set():
            self._someone.set()

    def stopped(self, t: Thread) -> None:
        self.since.pop(t, None)

    async def run(self) -> None:
        while True:
            if not self.since:
                self._someone = trio.Event()
                await self._someone.wait()
                continue
            now = trio.current_time()
            wake = math.inf
            for t, (started, confined) in list(self.since.items()):
                ran = now - started
                if ran >= self.limit:
                    self.since.pop(t, None)
                    confined._kill(f"watchdog: ran {self.limit:g} s without a syscall", KillCause.WATCHDOG)
                    continue
                if not confined.spread:
                    if ran >= SPREAD:
                        confined.spread_out()
                    else:
                        wake = min(wake, started + SPREAD)
                wake = min(wake, started + self.limit)
            if wake < math.inf:
                await trio.sleep_until(wake)


def share_cpu(worker_pid: int) -> bool:
    """Put a worker on the CPU the kernel's thread is bound to (see Deadlines)."""
    try:
        os.sched_setaffinity(worker_pid, os.sched_getaffinity(0))
        return True
    except OSError:
        return False


def _status(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        why = {"SIGXCPU": " (CPU time limit)", "SIGKILL": "", "SIGSEGV": " (segmentation fault)"}.get(name, "")
        return f"killed by {name}{why}"
    return f"exited with status {status}"
