"""Processes and threads.

A Process owns an address space, a handle table, a VFS (mount table, possibly shared) and its
threads; a Thread is one trio task. A process ends when its last thread ends; killing a process
cancels every thread of it. Whatever the way it ends, `Kernel.reap` then releases every frame,
chunk and handle, so a crashing program dies alone and gives everything back.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING, Any

import trio

from merriwig import abi
from merriwig.errors import KillReason, SyscallFail
from merriwig.namespace import Namespace

if TYPE_CHECKING:
    from merriwig.confine.relay import ConfinedProcess
    from merriwig.memory.space import AddressSpace
    from merriwig.rendezvous import Rendezvous
    from merriwig.syscalls import Gate


class HandleTable:
    """A process' capability table: small integers naming rendezvous references.

    Adding uses the lowest free slot (spec §3.1). Each occupied slot holds one counted reference."""

    __slots__ = ("slots",)

    def __init__(self) -> None:
        self.slots: list[Rendezvous | None] = []

    def add(self, r: Rendezvous) -> int:
        """Insert a reference the caller already counted; returns its handle number."""
        slots = self.slots
        for i, s in enumerate(slots):
            if s is None:
                slots[i] = r
                return i
        slots.append(r)
        return len(slots) - 1

    def put(self, h: int, r: Rendezvous) -> None:
        """Place a reference at a given number (a new process' stdin/stdout)."""
        while len(self.slots) <= h:
            self.slots.append(None)
        assert self.slots[h] is None
        self.slots[h] = r

    def get(self, h: int) -> Rendezvous:
        try:
            r = self.slots[h] if h >= 0 else None
        except (IndexError, TypeError):
            r = None
        if r is None:
            raise SyscallFail(abi.INVALID_HANDLE, f"invalid handle {h}")
        return r

    def take(self, h: int) -> Rendezvous:
        """Remove and return a reference (it moves to a message, a mount or a child)."""
        r = self.get(h)
        self.slots[h] = None
        return r

    def count(self) -> int:
        return sum(1 for s in self.slots if s is not None)

    def close_all(self) -> None:
        slots = self.slots
        self.slots = []
        for r in slots:
            if r is not None:
                r.decref()


class Process:
    """A running program."""

    gate: Gate  # its syscall gate, made by the kernel right after the process (it needs it)

    def __init__(
        self,
        kernel: Any,
        pid: int,
        name: str,
        space: AddressSpace,
        vfs: Namespace[Rendezvous],
        *,
        user: str = "root",
        io: bool = False,
        parent: int = 0,
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        kernel_process: bool = False,
    ) -> None:
        self.kernel = kernel
        self.pid = pid
        self.name = name
        self.space = space
        self.vfs = vfs
        self.user = user
        self.io = io
        self.kernel_process = kernel_process  # the kernel's own (/proc): its failures are not kills
        self.parent = parent
        self.args = list(args or [])
        self.env = dict(env or {})
        self.handles = HandleTable()
        self.threads: dict[int, Thread] = {}
        self.status: int | None = None
        self.killed: KillReason | None = None
        self.exit_notify: list[Rendezvous] = []
        self.ended = trio.Event()
        self.started = time.monotonic()
        self.cpu_done = 0.0  # CPU seconds of threads that have exited
        self.confined: ConfinedProcess | None = None  # its worker, when its Python runs confined
        self.image: bytes | None = None  # its program's source, for the lines of a crash report
        self.tell_console = True  # write why it died on its stdout (`euralios run` prints it on stderr)

    @property
    def alive(self) -> bool:
        return self.status is None

    @property
    def cpu_time(self) -> float:
        return self.cpu_done + sum(t.cpu for t in self.threads.values())

    def __repr__(self) -> str:
        return f"<Process {self.pid} {self.name!r} threads={len(self.threads)}>"


class ThreadState(enum.StrEnum):
    """Where a thread is: what /proc/ps shows, and what the watchdog and CPU accounting check
    (only a RUNNING thread is executing user code)."""

    READY = "ready"  # created, its task not started yet
    RUNNING = "running"  # executing user code
    SYSCALL = "syscall"  # in the kernel, in a syscall (the ones that may block say which:)
    RECEIVE = "receive"
    SEND = "send"
    SEND_RECEIVE = "send_receive"
    AWAIT_INTERRUPT = "await_interrupt"
    PARKED = "stopped"  # at a syscall's door while the VM is stopped (the monitor's stop)
    DEAD = "dead"  # its task has ended


class Thread:
    """One thread of a process: a trio task plus the kernel's bookkeeping for it."""

    __slots__ = (
        "tid", "process", "scope", "stack_slot", "stack_top", "cpu", "resumed", "slice_start",
        "syscalls", "owes", "main", "task", "state", "last_sender", "__weakref__",
    )

    def __init__(self, tid: int, process: Process, stack_slot: int, stack_top: int, main: bool) -> None:
        self.tid = tid
        self.process = process
        self.scope = trio.CancelScope()
        self.stack_slot = stack_slot
        self.stack_top = stack_top
        self.cpu = 0.0
        self.resumed = 0.0
        self.slice_start = 0.0
        self.syscalls = 0
        self.owes: set[Rendezvous] = set()
        self.main = main
        self.task: Any = None
        self.state = ThreadState.READY
        # Who sent the message this thread received last (None: the kernel). Only kernel
        # servers such as /proc look at it, to decide what the sender may do.
        self.last_sender: Thread | None = None

    def __repr__(self) -> str:
        return f"<Thread {self.tid} of pid {self.process.pid}>"

