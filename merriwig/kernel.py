"""The Merriwig kernel: process table, thread lifecycle, exec, faults and resource release.

Every thread is a task in the kernel's trio nursery. The kernel never lets a program's failure
escape: an exception or a fault in a thread kills that thread's process (every thread of it),
prints one line on the system console and in the klog, and gives back every frame, chunk and
handle. Waiters on the dead process' rendezvous are woken with CLOSED by the closed rule.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from machine.mmu import GeneralProtection, PageFault
from merriwig import abi, layout
from merriwig.confine.client import ConfinementRefused
from merriwig.confine.relay import ConfinedProcess, Deadlines
from merriwig.confine.service import Confinement, worker_limits
from merriwig.crash import crash_report, reason
from merriwig.errors import (
    KillCause,
    KillReason,
    LoaderError,
    OutOfFrames,
    ProcessKilled,
    QuotaExceeded,
    SpaceError,
    SyscallFail,
    ThreadExit,
    WatchdogKill,
)
from merriwig.exec import Umount, VfsBase, VfsStep, parse_exec_params
from merriwig.interrupts import InterruptRouter
from merriwig.klog import KernelLog
from merriwig.kmsg import KlogFeed
from merriwig.loader import load
from merriwig.memory.frames import FrameAllocator
from merriwig.memory.space import AddressSpace, MemoryContext, device_chunk
from merriwig.message import KMessage, bytes_message
from merriwig.namespace import Namespace
from merriwig.process import Process, Thread, ThreadState
from merriwig.rendezvous import Rendezvous
from merriwig.syscalls import Gate
from merriwig.timepage import TimePage
from merriwig.trace import Tracer
from merriwig.watchdog import Watchdog

_ENDINGS = {KillCause.REQUEST: abi.ENDED_KILLED, KillCause.INTERRUPT: abi.ENDED_INTERRUPTED,
            KillCause.CRASH: abi.ENDED_CRASHED, KillCause.BAD_IMAGE: abi.ENDED_CRASHED,
            KillCause.FAULT: abi.ENDED_FAULT, KillCause.OUT_OF_MEMORY: abi.ENDED_OUT_OF_MEMORY,
            KillCause.WATCHDOG: abi.ENDED_WATCHDOG, KillCause.CONFINEMENT: abi.ENDED_REFUSED}
IDLE_CUSHION = 0.005  # seconds every other task must have been blocked for an EXEC_IDLE start

UserEntry = Callable[[Gate, Callable[..., Awaitable[Any]], dict[str, Any]], Awaitable[Any]]
LOW_MEMORY = 1 << 20  # frames below 1 MiB: legacy area (VGA text memory, BIOS) never allocated


def _pin_to_one_cpu() -> set[int] | None:
    """Bind this (the kernel's trio) thread to one CPU, which new confined workers share until
    they compute (merriwig/confine/relay.py, Deadlines). Returns the affinity to restore."""
    try:
        allowed = os.sched_getaffinity(0)
        if len(allowed) > 1:
            os.sched_setaffinity(0, {min(allowed)})
            return allowed
    except OSError:
        pass
    return None


class Kernel:
    def __init__(
        self,
        machine: Any,
        user_entry: UserEntry,
        *,
        quota: int | None = None,
        watchdog: float = 2.0,
        slice_ms: float = 10.0,
        trace: bool = False,
        confinement: Confinement | None = None,
        reserve: int | None = None,
        user_processes: int = 64,
    ) -> None:
        self.machine = machine
        self.user_entry = user_entry
        self.quota = quota
        self.slice = slice_ms / 1000.0
        self.klog = KernelLog()
        mem = machine.memory
        self.frames = FrameAllocator(LOW_MEMORY, (mem.size - LOW_MEMORY) // layout.PAGE)
        info = self.frames.allocate()
        mem.zero(info, layout.PAGE)
        # Frames kept for root's processes (default 1/64 of RAM, at least 64): see AddressSpace.
        reserve = max(64, self.frames.nframes // 64) if reserve is None else reserve
        self.memctx = MemoryContext(mem, machine.mmu, self.frames, info, reserve)
        self.user_processes = user_processes  # live processes one user other than root may have
        self.timepage = TimePage(mem, info)
        self.interrupts = InterruptRouter(machine.irq)
        self.interrupts.add_handler(0, lambda _line: self.timepage.update())
        self.tracer: Tracer | None = Tracer() if trace else None
        self.processes: dict[int, Process] = {}
        self.threads: dict[int, Thread] = {}
        self.task_threads: dict[Any, Thread] = {}
        self._next_pid = 0
        self._next_tid = 0
        self._next_rid = 0
        self.rendezvous_live = 0
        self.preemptions = 0
        self.killed_count = 0
        self.nursery: trio.Nursery | None = None
        self.watchdog = Watchdog(watchdog) if watchdog else None
        # Which programs run confined, and the zygote that starts their workers (None: all in-process).
        self.confinement = confinement
        self.confined_deadlines = Deadlines(self, watchdog) if confinement is not None and watchdog else None
        if confinement is not None:
            confinement.log = self.log
        self.started = time.monotonic()
        # Set while the VM is stopped (the monitor's `stop`): every thread parks at its next
        # syscall, the gate being this CPU's instruction boundary. `parked` counts them.
        self.stopped: trio.Event | None = None
        self.parked = 0
        isolation = confinement.mode if confinement is not None else "none"
        ram = f"{mem.size >> 20} MiB" if mem.size % (1 << 20) == 0 else f"{mem.size >> 10} KiB"
        self.log(f"[kernel] Merriwig starting: {ram} RAM, {self.frames.nframes} frames, "
                 f"{self.frames.levels} levels, isolation {isolation}")

    # ------------------------------------------------------------------ ids and logging
    def next_rendezvous_id(self) -> int:
        self._next_rid += 1
        return self._next_rid

    def new_rendezvous(self, refs: int = 0) -> Rendezvous:
        return Rendezvous(self, refs)

    def log(self, line: str) -> None:
        self.klog.log(line)

    def debug_write(self, proc: Process, text: str) -> None:
        for line in text.rstrip("\n").split("\n"):
            self.log(line)

    def log_mount(self, proc: Process, path: str) -> None:
        self.log(f"[kernel] pid {proc.pid} ({proc.name}) mounted {path or '/'}")

    # ------------------------------------------------------------------ running
    async def run(self, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The kernel's main task: owns the nursery every thread runs in."""
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            if self.watchdog is not None:
                self.watchdog.start()
            pinned = None
            if self.confinement is not None:
                nursery.start_soon(self.confinement.run, name="confinement")
                pinned = _pin_to_one_cpu()
            if self.confined_deadlines is not None:
                nursery.start_soon(self.confined_deadlines.run, name="confined-watchdog")
            # Program the PIT like the seed: channel 0, rate generator, divisor 0 (65536).
            ports = self.machine.ports
            ports.write(0x43, 1, 0x34)
            ports.write(0x40, 1, 0)
            ports.write(0x40, 1, 0)
            try:
                task_status.started(self)
                await trio.sleep_forever()
            finally:
                if self.watchdog is not None:
                    self.watchdog.stop()
                if pinned is not None:
                    os.sched_setaffinity(0, pinned)

    # ------------------------------------------------------------------ stop and cont
    def stop(self) -> None:
        """The CPU stops: from now on each thread parks on entering its next syscall (a thread
        already blocked in one returns to its own code when woken, and parks at the next)."""
        if self.stopped is None:
            self.stopped = trio.Event()

    def cont(self) -> None:
        """The CPU runs again: every parked thread carries on into its syscall."""
        stopped, self.stopped = self.stopped, None
        if stopped is not None:
            stopped.set()

    async def park(self, t: Thread) -> None:
        """Hold thread `t` at the syscall door until cont(); the time parked is not its CPU time."""
        while self.stopped is not None:
            stopped = self.stopped
            now = time.perf_counter()
            t.cpu += max(0.0, now - t.resumed)
            state, t.state = t.state, ThreadState.PARKED
            self.parked += 1
            try:
                await stopped.wait()
            finally:
                self.parked -= 1
                t.state = state
                t.resumed = t.slice_start = time.perf_counter()

    # ------------------------------------------------------------------ processes
    def spawn(
        self,
        image: bytes | Callable[..., Awaitable[Any]],
        *,
        name: str = "",
        args: list[str] | None = None,
        env: dict[str, str] | None = None,
        stdin: Rendezvous | None = None,
        stdout: Rendezvous | None = None,
        vfs: Namespace[Rendezvous] | None = None,
        io: bool = False,
        user: str = "root",
        parent: int = 0,
        exit_notify: list[Rendezvous] | None = None,
        quota: int | None = None,
        kernel: bool = False,
        idle: bool = False,
        by_root: bool = True,
    ) -> Process:
        """Create a process and start its first thread. stdin/stdout references are consumed.
        `idle`: the first thread loads and runs the program only once every other task has
        blocked (or after abi.IDLE_START_MAX seconds) -- see abi.EXEC_IDLE.
        `by_root`: the host or an in-process root process (init, login) starts it: a trusted image
        then runs in-process (merriwig/confine/service.py); any other image runs confined, and
        so does every image a confined process starts, root's included."""
        assert self.nursery is not None, "kernel not running"
        if not name:
            name = getattr(image, "__name__", "program") if callable(image) else "program"
        space = AddressSpace(self.memctx, quota if quota is not None else self.quota, privileged=user == "root")
        try:
            code = image if isinstance(image, bytes) else f"<function {name}>".encode()
            space.load_code(code)
        except (SpaceError, QuotaExceeded, OutOfFrames) as e:
            space.destroy()
            # Everything handed to the new process goes back: nothing leaks on failure.
            for r in [stdin, stdout, *(exit_notify or [])]:
                if r is not None:
                    r.decref()
            if vfs is not None and vfs.holders == 0:
                self.release_vfs(vfs)
            raise SyscallFail(abi.MEMORY, str(e)) from None
        self._next_pid += 1
        vfs = vfs if vfs is not None else Namespace()
        vfs.holders += 1
        proc = Process(self, self._next_pid, name, space, vfs,
                       user=user, io=io, parent=parent, args=args, env=env, kernel_process=kernel)
        proc.gate = Gate(self, proc)
        proc.image = image if isinstance(image, bytes) else None
        for h, r in ((0, stdin), (1, stdout)):
            if r is None:
                r = self.new_rendezvous(refs=1)
            proc.handles.put(h, r)
        proc.exit_notify = list(exit_notify or [])
        self.processes[proc.pid] = proc
        info = {"pid": proc.pid, "name": name, "args": proc.args, "env": proc.env, "user": user}
        confined = (self.confinement is not None and not kernel
                    and self.confinement.confines(image, by_root=by_root))

        async def first_thread() -> Any:
            if idle:
                from trio.testing import wait_all_tasks_blocked  # no timer, no polling: the run loop tells

                with trio.move_on_after(abi.IDLE_START_MAX):
                    await wait_all_tasks_blocked(IDLE_CUSHION)
            if kernel:
                return await image()  # type: ignore[operator]
            if confined:
                assert isinstance(image, bytes)
                return await self._run_confined(proc, image, name, info)
            main = load(image, name, io=proc.io) if isinstance(image, bytes) else image
            return await self.user_entry(proc.gate, main, info)

        self.start_thread(proc, first_thread, (), main=True)
        return proc

    async def _run_confined(self, proc: Process, image: bytes, name: str, info: dict[str, Any]) -> Any:
        """The first thread of a confined process: start its worker, hand it the image, relay."""
        assert self.confinement is not None
        try:
            worker, lower = await self.confinement.spawn(worker_limits(proc.space.quota))
        except ConfinementRefused as e:
            self.kill(proc, str(e), KillCause.CONFINEMENT)
            return None
        confined = proc.confined = ConfinedProcess(self, proc, worker)  # reap() SIGKILLs it from now on
        confined.any_cpu()  # a worker waited on the zygote's CPUs; its program may start anywhere
        if proc.killed is not None:
            confined.close()
            return None
        thread = self.task_threads[trio.lowlevel.current_task()]
        entry = f"{self.user_entry.__module__}:{self.user_entry.__qualname__}"
        meta = {"entry": entry, "name": name, "io": proc.io, "info": info, "lower_memory": lower}
        await confined.start(thread, image, meta)
        return await confined.relay()

    def start_thread(self, proc: Process, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...] = (), main: bool = False) -> int:
        slot, top = proc.space.alloc_stack()
        self._next_tid += 1
        t = Thread(self._next_tid, proc, slot, top, main)
        proc.threads[t.tid] = t
        self.threads[t.tid] = t
        if self.tracer is not None:
            self.tracer.name_thread(proc.pid, t.tid, proc.name)
        assert self.nursery is not None
        self.nursery.start_soon(self._run_thread, t, fn, args, name=f"{proc.name}/{t.tid}")
        return t.tid

    async def _run_thread(self, thread: Thread, fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        task = trio.lowlevel.current_task()
        thread.task = task
        self.task_threads[task] = thread
        if self.watchdog is not None:
            self.watchdog.running = thread  # this first step began before the task was known
        proc = thread.process
        thread.resumed = thread.slice_start = time.perf_counter()
        thread.state = ThreadState.RUNNING
        result: Any = None
        try:
            with thread.scope:
                if proc.killed is not None:
                    return
                try:
                    result = await fn(*args)
                except (ThreadExit, ProcessKilled):
                    pass
                except WatchdogKill:
                    limit = self.watchdog.limit if self.watchdog else 0
                    self.kill(proc, f"watchdog: ran {limit:g} s without a syscall", KillCause.WATCHDOG)
                except (trio.Cancelled, KeyboardInterrupt):
                    raise
                except SystemExit as e:
                    result = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                except (PageFault, GeneralProtection) as e:
                    self.kill(proc, str(e), KillCause.FAULT)
                except LoaderError as e:
                    self.kill(proc, str(e), KillCause.BAD_IMAGE, report=str(e))
                except BaseException as e:  # noqa: BLE001 - a program's failure must not escape
                    self.kill(proc, reason(e), KillCause.CRASH, report=crash_report(e, proc.name, proc.image))
        finally:
            thread.cpu += max(0.0, time.perf_counter() - thread.resumed) if thread.state is ThreadState.RUNNING else 0.0
            self._thread_done(thread, result)

    def _thread_done(self, thread: Thread, result: Any) -> None:
        proc = thread.process
        self.task_threads.pop(thread.task, None)
        self.threads.pop(thread.tid, None)
        proc.threads.pop(thread.tid, None)
        proc.cpu_done += thread.cpu
        thread.state = ThreadState.DEAD
        for r in list(thread.owes):
            r.replier_gone(thread.tid)
        thread.owes.clear()
        if not proc.space.destroyed:
            proc.space.free_stack(thread.stack_slot)
        if thread.main and proc.killed is None:
            proc.status = result if isinstance(result, int) else 0
        if not proc.threads:
            self.reap(proc)

    def fault(self, proc: Process, exc: BaseException) -> ProcessKilled:
        """A user-mode access failed: kill the process; returns the exception to raise."""
        if isinstance(exc, QuotaExceeded):
            reason, cause = f"out of memory: {exc}", KillCause.OUT_OF_MEMORY
        elif isinstance(exc, OutOfFrames):
            reason, cause = "out of memory: no free frames", KillCause.OUT_OF_MEMORY
        else:
            reason, cause = str(exc), KillCause.FAULT
        self.kill(proc, reason, cause)
        return ProcessKilled(reason)

    def kill(self, proc: Process, reason: str, cause: KillCause = KillCause.REQUEST, report: str = "") -> None:
        """Kill every thread of a process; the last one to unwind releases its resources.
        `reason` is the one line for the kernel log; `report` what its console is told (by
        default `Killed: reason`; nothing for a request or an interrupt: the one who asked says)."""
        if proc.killed is not None or proc.space.destroyed:
            return
        if proc.kernel_process:
            self.log(f"[kernel] kernel thread failure in pid {proc.pid}: {reason}")
            return
        proc.killed = KillReason(cause, reason, report)
        self.killed_count += 1
        self.log(f"[kernel] pid {proc.pid} ({proc.name}) killed: {reason}")
        for t in list(proc.threads.values()):
            t.scope.cancel()

    def reap(self, proc: Process) -> None:
        """The last thread is gone: release everything and tell whoever asked."""
        if proc.killed is not None:
            proc.status = 1
        elif proc.status is None:
            proc.status = 0
        for r in proc.handles.slots:
            if r is not None and r.server_pid == proc.pid and r.refs > 1:
                r.server_died()
        if proc.confined is not None:
            proc.confined.close()
        if proc.killed is not None:
            self._tell_its_console(proc, proc.killed)
        proc.handles.close_all()
        self.release_vfs(proc.vfs)
        proc.space.destroy()
        self.processes.pop(proc.pid, None)
        ended = _ENDINGS.get(proc.killed.cause, abi.ENDED_KILLED) if proc.killed is not None else abi.ENDED_EXITED
        for r in proc.exit_notify:
            r.kernel_send(KMessage(0, abi.MSG_EXIT, proc.pid | ended << 32, proc.status & 0xFFFF_FFFF_FFFF_FFFF))
            r.decref()
        proc.exit_notify = []
        proc.ended.set()

    def _tell_its_console(self, proc: Process, killed: KillReason) -> None:
        """Write why it died on its stdout, where it ran (a crash: the traceback of its own
        source), unless someone asked for it (they say so themselves: `Killed`, `^C`)."""
        if killed.cause in (KillCause.REQUEST, KillCause.INTERRUPT) or not proc.tell_console:
            return
        text = killed.report or f"Killed: {killed.detail}"
        try:
            stdout = proc.handles.get(1)
        except SyscallFail:
            return
        try:
            self.send_bytes(stdout, abi.MSG_WRITE, (text.rstrip("\n") + "\n").encode())
        except (OutOfFrames, SpaceError):
            pass  # no memory for the words: the kernel log has the line

    # ------------------------------------------------------------------ VFS references
    @staticmethod
    def copy_vfs(vfs: Namespace[Rendezvous]) -> Namespace[Rendezvous]:
        """A snapshot: every mount in it is a new reference to the same rendezvous."""
        new = vfs.copy()
        for r in new.targets():
            r.incref()
        return new

    @staticmethod
    def release_vfs(vfs: Namespace[Rendezvous]) -> None:
        """A holder is gone; the last one drops the mounts' references."""
        vfs.holders -= 1
        if vfs.holders <= 0:
            for r in vfs.clear():
                r.decref()

    # ------------------------------------------------------------------ exec
    async def exec_syscall(self, proc: Process, t: Thread, rax: int, rdi: Any, rsi: int, rdx: int) -> int:
        """exec (spec §6.2) with the seed's parameter string, plus extensions (merriwig/exec.py):
        `X<handle>|` exit notification, `U<user>NUL` owner (root only), `n<name>NUL` name."""
        gate = proc.gate
        flags = (rax >> 8) & 0xFF
        param_len = (rax >> 16) & 0xFFFF
        bin_len = rax >> 32
        if flags & abi.EXEC_FUNCTION_IMAGE:
            if not callable(rdi):
                raise SyscallFail(abi.PARAM)
            image: Any = rdi
        else:
            if bin_len == 0:
                raise SyscallFail(abi.PARAM)
            image = gate.copy_in(rdi, bin_len)
        params = parse_exec_params(gate.copy_in(rdx, param_len) if param_len else b"")
        # Validate the whole request before taking anything from the caller.
        stdin_h, stdout_h = (rsi >> 32) & 0xFFFF_FFFF, rsi & 0xFFFF_FFFF
        if stdin_h == stdout_h:
            raise SyscallFail(abi.PARAM, "stdin and stdout must be different handles")
        proc.handles.get(stdin_h)
        proc.handles.get(stdout_h)
        if params.user and params.user != proc.user and proc.user != "root":
            raise SyscallFail(abi.PARAM, "only root may start a process as another user")
        user = params.user or proc.user
        if user != "root" and sum(1 for p in self.processes.values() if p.user == user) >= self.user_processes:
            raise SyscallFail(abi.MEMALLOC, f"{user} already has {self.user_processes} processes")
        quota = proc.space.quota
        if params.quota is not None:
            if proc.user != "root" and quota is not None and params.quota > quota:
                raise SyscallFail(abi.PARAM, "a child's frame quota cannot exceed its parent's")
            quota = params.quota
        vfs = self._child_vfs(proc, params.vfs)
        try:
            for h in [m.handle for m in params.mounts] + list(params.notify):
                proc.handles.get(h)
        except SyscallFail:
            if vfs is not proc.vfs:
                self.release_vfs(vfs)
            raise
        # Commit: take the handles.
        stdin = proc.handles.take(stdin_h)
        stdout = proc.handles.take(stdout_h)
        for m in params.mounts:
            vfs.mount(m.path, proc.handles.take(m.handle))
        notify_r = [proc.handles.take(h) for h in params.notify]
        io = bool(flags & abi.EXEC_PERM_IO) and proc.io
        args = params.args
        name = params.name
        if not name:
            name = args[0].rsplit("/", 1)[-1] if args and args[0] else getattr(image, "__name__", "program")
        child = self.spawn(image, name=name, args=args, env=params.env, stdin=stdin, stdout=stdout, vfs=vfs,
                           io=io, user=user, parent=proc.pid, exit_notify=notify_r, quota=quota,
                           idle=bool(flags & abi.EXEC_IDLE),
                           by_root=proc.user == "root" and proc.confined is None)
        return child.pid

    def _child_vfs(self, proc: Process, steps: tuple[VfsStep, ...]) -> Namespace[Rendezvous]:
        """The child's VFS: the exec clauses replayed in order. A clause that changes the table
        (a mount or an umount) first copies the caller's, whose own table exec never touches;
        mounts are only placed by the caller once every handle checked out."""
        vfs = proc.vfs
        try:
            for step in steps:
                if isinstance(step, VfsBase):
                    if vfs is not proc.vfs:
                        self.release_vfs(vfs)  # a later S, C or N replaces an earlier copy
                    if step is VfsBase.SHARED:
                        vfs = proc.vfs
                    elif step is VfsBase.COPY:
                        vfs = self.copy_vfs(proc.vfs)
                    else:
                        vfs = Namespace()
                    continue
                if vfs is proc.vfs:
                    vfs = self.copy_vfs(proc.vfs)
                if isinstance(step, Umount):
                    try:
                        vfs.umount(step.path).decref()
                    except KeyError:
                        raise SyscallFail(abi.PARAM, f"exec: nothing mounted at {step.path}") from None
        except SyscallFail:
            if vfs is not proc.vfs:
                self.release_vfs(vfs)
            raise
        return vfs

    def start_procfs(self) -> Rendezvous:
        """Start /proc (the kernel's file server); returns the rendezvous to mount."""
        from merriwig.procfs import ProcFS

        self.procfs = ProcFS(self)
        return self.procfs.start()

    def send_device_memory(self, r: Rendezvous, tag: int, phys: int, pages: int) -> None:
        """Give device memory to whoever receives on `r`, as the seed's kernel parks the VGA
        memory for init: Long(tag, Value(bytes), Memory(chunk)) sent by the kernel itself."""
        chunk = device_chunk(self.memctx, phys, pages)
        ctrl = abi.MSG_LONG | (abi.KIND_MEMORY << abi.D3_SHIFT)
        r.kernel_send(KMessage(ctrl, tag, pages * layout.PAGE, chunk))

    def send_bytes(self, r: Rendezvous, tag: int, data: bytes) -> None:
        """Give `data` to whoever receives on `r`, as the kernel parks a boot image for init:
        Long(tag, len(data), Memory(chunk)) sent by the kernel itself. OutOfFrames if no memory."""
        r.kernel_send(bytes_message(self.memctx, tag, data))

    def klog_feed(self, r: Rendezvous, *, tag: int = abi.MSG_WRITE, first: int = 0,
                  wrap: tuple[str, str] = ("", "")) -> KlogFeed:
        """Feed the kernel log, from its `first`-th line on, to whoever receives on `r`, as
        /dev/kmsg does (merriwig/kmsg.py). One reference to `r` becomes the feed's."""
        assert self.nursery is not None, "kernel not running"
        feed = KlogFeed(self, r, tag=tag, first=first, wrap=wrap)
        self.nursery.start_soon(feed.run, name="klog-feed")
        return feed

    # ------------------------------------------------------------------ checks
    def check_io(self, proc: Process, port: Any, size: Any) -> None:
        if not proc.io:
            reason = "general protection fault: port I/O without I/O privilege"
            self.kill(proc, reason, KillCause.FAULT)
            raise ProcessKilled(reason)
        if not isinstance(port, int) or not 0 <= port <= 0xFFFF or size not in (1, 2, 4):
            raise SyscallFail(abi.PARAM)

    def check_mount(self, proc: Process, path: str, removing: bool = False) -> None:
        """Only root may mount over or remove an existing mount; anyone may add a new path
        in their own VFS (a `user` shell's VFS is private to its session)."""
        if proc.user == "root":
            return
        if path in proc.vfs:
            raise SyscallFail(abi.DENIED, "permission denied: mount point exists")

    # ------------------------------------------------------------------ statistics
    def stats(self) -> dict[str, Any]:
        return {
            "processes": len(self.processes),
            "threads": len(self.threads),
            "frames_free": self.frames.free_count,
            "frames_used": self.frames.used_count,
            "rendezvous": self.rendezvous_live,
            "preemptions": self.preemptions,
            "killed": self.killed_count,
            "uptime": time.monotonic() - self.started,
        }
