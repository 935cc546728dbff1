"""The kernel's half of a confined process: its worker, a reader for the channel, a relay per thread.

A confined process is an ordinary kernel Process -- handle table, address space, quota, VFS,
threads that are trio tasks -- whose Python runs in a worker (merriwig/confine/runtime.py). Each
of its threads' tasks runs `relay()`: it waits for that thread's next syscall from the worker,
makes it through the process' own gate (so scheduling, tracing, the killed check and every
handler are exactly the in-process ones) and sends the registers back. One reader task takes the
channel's frames: stores and loads it serves at once against the process' page tables (a fault
kills the process, as a user-mode access in-process does), syscalls and thread ends it queues for
their thread's relay.

The watchdog for a confined thread is a deadline, not a sampler: from the moment a syscall
returns to the worker until the thread's next syscall arrives, a thread may compute for
`Watchdog.limit` seconds; past that its process is killed and its worker SIGKILLed -- which
stops even one long call into C, and which the program cannot catch. Until then it computes on
another host CPU while the system goes on.

Everything the worker sends is hostile: frames are parsed by channel.decode (ProtocolError for
anything malformed), a thread id must be one of the process' threads, at most QUEUE frames may
wait per thread. Any violation kills the process; the kernel carries on.
"""

from __future__ import annotations

import math
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

QUEUE = 4  # frames that may wait for one thread (a worker sends one syscall at a time per thread)
_CAUSES = {ch.Cause.CRASH: KillCause.CRASH, ch.Cause.BAD_IMAGE: KillCause.BAD_IMAGE}


class _Killed(Exception):
    """The process died while the reader served a frame: stop reading."""


class ConfinedProcess:
    """One confined process' worker and channel, seen from the kernel."""

    def __init__(self, kernel: Kernel, proc: Process, worker: Worker) -> None:
        self.kernel = kernel
        self.proc = proc
        self.worker = worker
        self.sock = worker.channel
        self._send_lock = trio.Lock()
        self._queues: dict[int, tuple[trio.MemorySendChannel[ch.Event], trio.MemoryReceiveChannel[ch.Event]]] = {}
        self.closed = False

    # ------------------------------------------------------------------ start and end
    async def start(self, thread: Thread, image: bytes, meta: dict[str, Any]) -> None:
        """Hand the worker its first thread and its image."""
        tp = self.kernel.timepage
        frame = ch.encode_start(thread.tid, thread.stack_top, origin_ns(), tp.boot_tsc, len(image), meta)
        await self._send(frame)
        for off in range(0, len(image), ch.MAX_PIECE):
            await self._send(ch.encode_image(image[off:off + ch.MAX_PIECE]))

    def close(self) -> None:
        """The process is gone: SIGKILL the worker (harmless if it already left)."""
        if not self.closed:
            self.closed = True
            self.worker.kill()

    def _kill(self, reason: str, cause: KillCause) -> None:
        self.kernel.kill(self.proc, reason, cause)
        self.close()

    # ------------------------------------------------------------------ the channel
    async def _send(self, frame: bytes) -> None:
        async with self._send_lock:
            await self.sock.send(frame)

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

    async def read(self) -> None:
        """The reader task: serve memory, queue syscalls, until the worker or the process ends."""
        proc = self.proc
        try:
            while proc.killed is None and not proc.space.destroyed:
                frame = await self.sock.recv(ch.MAX_FRAME + 1)
                if not frame:
                    break
                event = ch.decode(frame)
                if isinstance(event, ch.Syscall | ch.Stores | ch.Load):
                    self._apply(event.stores)
                if isinstance(event, ch.Load):
                    try:
                        data = proc.space.read(event.vaddr, event.n)
                    except (PageFault, GeneralProtection, QuotaExceeded, OutOfFrames) as e:
                        self.kernel.fault(proc, e)
                        self.close()
                        return
                    await self._send(ch.encode_loaded(data))
                elif isinstance(event, ch.Syscall | ch.Exited | ch.Crashed):
                    try:
                        self._queue(event.tid)[0].send_nowait(event)
                    except trio.WouldBlock:
                        raise ch.ProtocolError(f"thread {event.tid} sent more than {QUEUE} frames unanswered") from None
                elif not isinstance(event, ch.Stores):
                    raise ch.ProtocolError(f"{type(event).__name__} from a worker")
        except _Killed:
            return
        except ch.ProtocolError as e:
            self._kill(f"confined worker broke the channel protocol: {e}", KillCause.CRASH)
            return
        except (OSError, trio.ClosedResourceError, trio.BrokenResourceError):
            pass
        if proc.killed is None and not proc.space.destroyed and not self.closed:
            # The worker ended without its threads ending: a signal (the CPU rlimit), or it died.
            status = await self.worker.wait()
            self._kill(f"confined worker {_status(status)}", KillCause.CRASH)

    # ------------------------------------------------------------------ one thread
    async def relay(self, main: bool = False) -> Any:
        """The body of every thread of a confined process (its trio task)."""
        kernel = self.kernel
        t = kernel.task_threads[trio.lowlevel.current_task()]
        _, queue = self._queue(t.tid)
        gate = self.proc.gate
        watchdog = kernel.watchdog
        limit = watchdog.limit if watchdog is not None else math.inf
        while True:
            event: ch.Event | None = None
            with trio.move_on_after(limit):
                event = await queue.receive()
            if event is None:
                self._kill(f"watchdog: ran {limit:g} s without a syscall", KillCause.WATCHDOG)
                return None
            if isinstance(event, ch.Exited):
                return event.status
            if isinstance(event, ch.Crashed):
                self._kill(event.text, _CAUSES[event.cause])
                return None
            assert isinstance(event, ch.Syscall)
            rax, rdi, rsi, rdx = event.regs
            extra = 0
            if rax & 0xFF == abi.FORK_THREAD:
                # The new thread's kernel task is another relay; its code is the worker's.
                regs = await gate.syscall(rax, self.relay, (), 0)
                if not regs[0] & 0xFF:
                    extra = kernel.threads[regs[1]].stack_top
            else:
                regs = await gate.syscall(rax, rdi, rsi, rdx)
            if watchdog is not None and watchdog.running is t:
                watchdog.running = None  # it computes in the worker now, not in this interpreter
            await self._send(ch.encode_reply(t.tid, regs, extra))


def _status(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        why = {"SIGXCPU": " (CPU time limit)", "SIGKILL": "", "SIGSEGV": " (segmentation fault)"}.get(name, "")
        return f"killed by {name}{why}"
    return f"exited with status {status}"
