"""Ring 3: what runs inside a confined worker -- the program, its threads, and a gate that is a channel.

The zygote forks a worker, the worker confines itself (steps.py) and then calls `main(channel)`
here with the channel as the only thing it holds. From then on this is a CPU in user mode: the
kernel sends START (the first thread's stack, the image, the program's info), the program's
module is loaded (merriwig/loader.py, the same allowlist as in-process) and `main(proc)` runs as
a coroutine whose every `await` is a syscall.

The gate a program sees here has the in-process gate's shape (euralios.std.syscalls.Gate):
`syscall` sends the registers over the channel and suspends the calling thread until the relay
answers; `load` asks the kernel for bytes from the process' own page tables and waits (other
threads' answers that arrive meanwhile are queued); `store` is write-behind: stores are buffered
and travel with the next frame, so a string argument pushed on the stack costs no extra trip. A
fault on any of them kills the process in the kernel, which SIGKILLs this worker; nothing here
needs to handle it. The kernel-info page (time without a syscall, spec §8) is computed here from
the TSC, as a vDSO would: it is read-only and the same arithmetic as the kernel's.

Threads are coroutines scheduled by a small loop (no trio: it would cost megabytes per worker
and threads the filter forbids): a thread runs until it awaits a syscall, then the next ready
one runs; with none ready the loop blocks on the channel. A thread's exception is reported as
CRASHED and the kernel kills the process, as an exception in an in-process thread does.
"""

from __future__ import annotations

import importlib
import resource
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any

from machine.tsc import PIT_HZ, TSC_PER_PIT
from merriwig import abi, layout
from merriwig.confine import channel as ch
from merriwig.crash import crash_report, reason
from merriwig.errors import LoaderError
from merriwig.loader import load

Regs = tuple[int, int, int, int]
STORE_PIECE = 32 * 1024  # one store record at most
STORE_RECORDS = 1024  # records in the write buffer before it is sent
_TSC_HZ = PIT_HZ * TSC_PER_PIT
_INFO = struct.Struct("<QQQ")
_PAGE = layout.PAGE
_STACK_BYTES = 7 * _PAGE


class ThreadExit(BaseException):
    """exit_thread: unwinds the calling thread (its finally blocks run), as in the kernel."""


class _Call:
    """What a thread's coroutine yields to the scheduler: one syscall's registers."""

    __slots__ = ("regs",)

    def __init__(self, regs: Regs) -> None:
        self.regs = regs

    def __await__(self) -> Generator[_Call, ch.Reply, ch.Reply]:
        reply = yield self
        return reply


class _Thread:
    __slots__ = ("tid", "coro", "stack_top")

    def __init__(self, tid: int, coro: Coroutine[Any, Any, Any], stack_top: int) -> None:
        self.tid = tid
        self.coro = coro
        self.stack_top = stack_top


def _word(value: Any) -> int | None:
    """A register's integer, or None: only integers fit in a register."""
    return int(value) if isinstance(value, int) else None


class Runtime:
    """The worker's CPU: the gate the program calls and the loop that runs its threads."""

    def __init__(self, sock: socket.socket, start: ch.Start) -> None:
        self.sock = sock
        self.tsc_origin = start.tsc_origin
        self.boot_tsc = start.boot_tsc
        self.threads: dict[int, _Thread] = {}
        self.ready: deque[tuple[_Thread, Any]] = deque()
        self.current: _Thread | None = None
        self.stores: list[ch.Store] = []
        self.stored = 0
        self.early: deque[ch.Reply] = deque()  # replies that came while a load waited
        self.name = "program"  # the program's name and source, for a crash report's lines
        self.image: bytes | None = None

    # ------------------------------------------------------------------ the gate: CPU user mode
    async def syscall(self, rax: Any, rdi: Any = 0, rsi: Any = 0, rdx: Any = 0) -> Regs:
        n = _word(rax)
        if n is not None and n & 0xFF == abi.FORK_THREAD:
            return await self._fork_thread(rdi, rsi)
        if n is not None and n & 0xFF == abi.EXIT_THREAD:
            raise ThreadExit()
        if type(rdi) is not int or type(rsi) is not int or type(rdx) is not int or n is None:
            rdi, rsi, rdx = _word(rdi), _word(rsi), _word(rdx)
            if n is None or rdi is None or rsi is None or rdx is None:
                # Garbage in a register (a function where a number belongs...): the kernel's
                # PARAM, answered here because nothing but integers can cross the channel.
                return abi.PARAM, 0, 0, 0
        reply = await _Call((n, rdi, rsi, rdx))
        return reply.regs

    def load(self, vaddr: int, n: int) -> bytes:
        vaddr, n = int(vaddr), int(n)
        if n <= 0:
            return b""
        if layout.KERNEL_INFO <= vaddr and vaddr + n <= layout.KERNEL_INFO + _PAGE:
            off = vaddr - layout.KERNEL_INFO
            return self._info_page(off + n)[off:off + n]
        out = bytearray()
        tid = self.current.tid if self.current is not None else 0
        while n > 0:
            piece = min(n, ch.MAX_PIECE)
            self._send(ch.encode_load(tid, vaddr, piece, self._take_stores()))
            out += self._wait_loaded()
            vaddr += piece
            n -= piece
        return bytes(out)

    def store(self, vaddr: int, data: bytes | bytearray | memoryview) -> None:
        vaddr = int(vaddr)
        data = bytes(data)
        for off in range(0, len(data), STORE_PIECE):
            piece = data[off:off + STORE_PIECE]
            if self.stored + len(piece) > ch.STORE_FLUSH or len(self.stores) >= STORE_RECORDS:
                tid = self.current.tid if self.current is not None else 0
                self._send(ch.encode_stores(tid, self._take_stores()))
            self.stores.append((vaddr + off, piece))
            self.stored += len(piece)

    def stack(self) -> tuple[int, int]:
        if self.current is None:
            raise RuntimeError("stack() outside a thread")
        top = self.current.stack_top
        return top - _STACK_BYTES, top

    def rdtsc(self) -> int:
        return (time.perf_counter_ns() - self.tsc_origin) * _TSC_HZ // 1_000_000_000

    # ------------------------------------------------------------------ helpers
    def _info_page(self, n: int) -> bytes:
        """The kernel-info page as the timer would leave it at this instant (merriwig/timepage.py)."""
        ticks = max(0, self.rdtsc() - self.boot_tsc) // TSC_PER_PIT
        page = _INFO.pack(ticks, self.boot_tsc + ticks * TSC_PER_PIT, TSC_PER_PIT)
        return page + bytes(max(0, n - len(page)))

    def _take_stores(self) -> list[ch.Store]:
        stores, self.stores, self.stored = self.stores, [], 0
        return stores

    def _send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def _recv(self) -> ch.Event:
        frame = self.sock.recv(ch.MAX_FRAME + 1)
        if not frame:
            raise SystemExit(0)  # the kernel closed the channel: the process is over
        return ch.decode(frame)

    def _wait_loaded(self) -> bytes:
        while True:
            event = self._recv()
            if isinstance(event, ch.Loaded):
                return event.data
            if isinstance(event, ch.Reply):
                self.early.append(event)
            else:
                raise ch.ProtocolError(f"unexpected {type(event).__name__} during a load")

    async def _fork_thread(self, fn: Any, args: Any) -> Regs:
        if not callable(fn):
            return abi.PARAM, 0, 0, 0
        reply = await _Call((abi.FORK_THREAD, 0, 0, 0))
        if reply.regs[0] & 0xFF:
            return reply.regs
        tid = reply.regs[1]
        thread = _Thread(tid, _thread_body(fn, args if isinstance(args, tuple) else ()), reply.extra)
        self.threads[tid] = thread
        self.ready.append((thread, None))
        return 0, tid, 0, 0

    # ------------------------------------------------------------------ the scheduler
    def run(self, tid: int, stack_top: int, first: Coroutine[Any, Any, Any]) -> None:
        """Run the process' threads until none is left (or one crashed: the kernel kills us)."""
        self.threads[tid] = _Thread(tid, first, stack_top)
        self.ready.append((self.threads[tid], None))
        while self.threads:
            while self.ready:
                thread, value = self.ready.popleft()
                if not self._step(thread, value):
                    return
            if not self.threads:
                break
            if self.early:
                event = self.early.popleft()
            else:
                frame = self.sock.recv(ch.MAX_FRAME + 1)
                fast = ch.reply_of(frame)
                if fast is not None:
                    event = ch.Reply(*fast)
                else:
                    if not frame:
                        raise SystemExit(0)  # the kernel closed the channel: the process is over
                    got = ch.decode(frame)
                    if not isinstance(got, ch.Reply):
                        raise ch.ProtocolError(f"unexpected {type(got).__name__}")
                    event = got
            waiting = self.threads.get(event.tid)
            if waiting is None:
                raise ch.ProtocolError(f"a reply for thread {event.tid}, which is not waiting")
            self.ready.append((waiting, event))

    def _step(self, thread: _Thread, value: Any) -> bool:
        """Run one thread until its next syscall; False once the process must stop."""
        self.current = thread
        try:
            yielded = thread.coro.send(value)
        except StopIteration as stop:
            return self._ended(thread, stop.value)
        except ThreadExit:
            return self._ended(thread, None)
        except SystemExit as e:
            code = e.code
            return self._ended(thread, code if isinstance(code, int) else (0 if code is None else 1))
        except LoaderError as e:
            return self._crashed(thread, ch.Cause.BAD_IMAGE, str(e))
        except BaseException as e:  # noqa: BLE001 - a program's failure is reported, never escapes
            # the reason (one line, for the kernel log), then the report for its console
            return self._crashed(thread, ch.Cause.CRASH,
                                 reason(e).replace("\n", " ") + "\n" + crash_report(e, self.name, self.image))
        finally:
            self.current = None
        if type(yielded) is not _Call:
            thread.coro.close()
            return self._crashed(thread, ch.Cause.CRASH,
                                 f"RuntimeError: awaited {type(yielded).__name__}, which is not a system call")
        rax, rdi, rsi, rdx = yielded.regs
        self._send(ch.encode_syscall(thread.tid, rax, rdi, rsi, rdx, self._take_stores()))
        return True

    def _ended(self, thread: _Thread, result: Any) -> bool:
        del self.threads[thread.tid]
        if self.stores:
            self._send(ch.encode_stores(thread.tid, self._take_stores()))
        self._send(ch.encode_exited(thread.tid, result if isinstance(result, int) else 0))
        return True

    def _crashed(self, thread: _Thread, cause: ch.Cause, text: str) -> bool:
        self._send(ch.encode_crashed(thread.tid, cause, text))
        return False


async def _thread_body(fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
    await fn(*args)


def _receive_start(sock: socket.socket) -> tuple[ch.Start, bytes]:
    frame = sock.recv(ch.MAX_FRAME + 1)
    start = ch.decode(frame) if frame else None
    if not isinstance(start, ch.Start):
        raise ch.ProtocolError("the first frame is not START")
    image = bytearray()
    while len(image) < start.image_len:
        piece = ch.decode(sock.recv(ch.MAX_FRAME + 1))
        if not isinstance(piece, ch.ImagePiece):
            raise ch.ProtocolError("expected the image")
        image += piece.data
    return start, bytes(image)


def main(sock: socket.socket) -> None:
    """The worker's entry (the zygote runs it once the worker is confined)."""
    sys.stdout = sys.stderr = None  # type: ignore[assignment]  # print() has no host terminal to reach
    start, image = _receive_start(sock)
    runtime = Runtime(sock, start)
    meta = start.meta
    runtime.name, runtime.image = str(meta.get("name") or "program"), image
    lower = int(meta.get("lower_memory") or 0)
    if lower > 0:
        # A spare made with the largest limit: bring the address space down to this process' own.
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if resource.RLIM_INFINITY not in (soft, hard):
            resource.setrlimit(resource.RLIMIT_AS, (soft - lower, hard - lower))
    module, _, name = str(meta["entry"]).partition(":")
    entry = getattr(importlib.import_module(module), name)  # preloaded by the zygote

    async def first() -> Any:
        main = load(image, str(meta.get("name") or "program"), io=bool(meta.get("io")))
        return await entry(runtime, main, meta["info"])

    try:
        runtime.run(start.tid, start.stack_top, first())
    except ch.ProtocolError:
        pass  # the kernel sent something we do not understand: nothing sensible is left to do
