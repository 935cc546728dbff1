"""The syscall gate: the only way user code enters the kernel (spec §2).

A program's threads share one Gate per process (like the `syscall` instruction, it finds the
current thread itself). The ABI stays at the register level — `syscall(rax, rdi, rsi, rdx)`
returns `(rax, rdi, rsi, rdx)` — so control bits, the 0x80 "error with message" flag and the
error numbers are exactly the seed's and testable; euralios.std turns them into Python.

Besides the syscalls the gate is the CPU's user mode: `load`/`store` read and write the
process' virtual memory through the MMU (a fault kills the process unless demand paging resolves
it), and `rdtsc` reads the time-stamp counter for the time page arithmetic.

Scheduling happens here (DESIGN.md §2): every syscall charges the CPU time used since the thread
last left the kernel, and a syscall that finds the thread's slice spent yields to the other
runnable threads before doing its work. Trio tasks cannot be interrupted mid-step, so pre-emption
happens at syscall boundaries: each thread has a time slice (Kernel.slice, 10 ms by default).
Trio runs the runnable tasks in batches, so ready threads take turns: round robin at the
granularity of a syscall. A thread that never makes a syscall is the watchdog's
(merriwig/watchdog.py).
"""

from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING, Any

import trio

from machine.mmu import GeneralProtection, PageFault
from machine.tsc import rdtsc
from merriwig import abi
from merriwig.errors import OutOfFrames, ProcessKilled, QuotaExceeded, SpaceError, SyscallFail, ThreadExit
from merriwig.memory.space import device_chunk, free_chunk
from merriwig.message import KMessage, take
from merriwig.process import Thread, ThreadState

if TYPE_CHECKING:
    from merriwig.kernel import Kernel
    from merriwig.process import Process

Regs = tuple[int, int, int, int]
_perf = time.perf_counter
_current_task = trio.lowlevel.current_task
_checkpoint = trio.lowlevel.checkpoint
MAX_PATH = 4096
_SYSCALL = ThreadState.SYSCALL  # module constants: the syscall path sets one twice a call
_RUNNING = ThreadState.RUNNING


class Gate:
    """The syscall instruction and user-mode memory access for one process."""

    __slots__ = ("kernel", "process", "pid", "_threads", "_space")

    def __init__(self, kernel: Kernel, process: Process) -> None:
        self.kernel = kernel
        self.process = process
        self.pid = process.pid
        self._threads = kernel.task_threads
        self._space = process.space

    # ------------------------------------------------------------------ CPU user mode
    def _thread(self) -> Thread:
        t = self._threads.get(_current_task())
        if t is None or t.process is not self.process:
            raise RuntimeError("syscall from outside this process' threads")
        return t

    def load(self, vaddr: int, n: int) -> bytes:
        """A user-mode read of n bytes at vaddr."""
        try:
            return self._space.read(vaddr, n)
        except (PageFault, GeneralProtection, QuotaExceeded, OutOfFrames) as e:
            raise self.kernel.fault(self.process, e) from None

    def store(self, vaddr: int, data: bytes | bytearray | memoryview) -> None:
        """A user-mode write at vaddr."""
        try:
            self._space.write(vaddr, data)
        except (PageFault, GeneralProtection, QuotaExceeded, OutOfFrames) as e:
            raise self.kernel.fault(self.process, e) from None

    @staticmethod
    def rdtsc() -> int:
        return rdtsc()

    def stack(self) -> tuple[int, int]:
        """(lowest address, top) of the current thread's stack, as RSP would tell a C program."""
        t = self._thread()
        top = t.stack_top
        return top - 7 * 4096, top

    # ------------------------------------------------------------------ the gate
    async def syscall(self, rax: int, rdi: Any = 0, rsi: Any = 0, rdx: Any = 0) -> Regs:
        t = self._threads.get(_current_task())
        proc = self.process
        if t is None or t.process is not proc:
            raise RuntimeError("syscall from outside this process' threads")
        kernel = self.kernel
        if kernel.stopped is not None:
            await kernel.park(t)  # the VM is stopped: wait at the door, as a halted CPU would
        now = _perf()
        t.cpu += now - t.resumed
        t.syscalls += 1
        if proc.killed is not None:
            raise ProcessKilled(proc.killed.detail)
        if now - t.slice_start > kernel.slice:
            # Slice spent: let the other runnable threads go first (pre-emption point).
            kernel.preemptions += 1
            await _checkpoint()
            t.slice_start = _perf()
        n = rax & 0xFF
        handler = _HANDLERS.get(n)
        tracer = kernel.tracer
        t0 = _perf() if tracer is not None else 0.0
        try:
            if handler is None:
                kernel.log(f"[kernel] pid {proc.pid} ({proc.name}): unknown syscall {n}")
                result: Regs = (abi.PARAM, 0, 0, 0)
            else:
                t.state = _SYSCALL
                result = await handler(self, t, rax, rdi, rsi, rdx)
        except SyscallFail as e:
            result = (e.code, 0, 0, 0)
        except (TypeError, ValueError, OverflowError, IndexError, AttributeError):
            # Garbage in a register (a str where a number belongs...): the seed's PARAM, and
            # the kernel carries on.
            result = (abi.PARAM, 0, 0, 0)
        finally:
            t.state = _RUNNING
        if tracer is not None:
            tracer.syscall(proc.pid, t.tid, abi.SYSCALL_NAMES.get(n, f"sys{n:#x}"), t0, _perf(),
                           {"rax": rax & 0xFFFF, "d1": rdi if isinstance(rdi, int) else 0, "ret": result[0]})
        if proc.killed is not None:
            raise ProcessKilled(proc.killed.detail)
        now = _perf()
        t.resumed = now
        if now - t.slice_start > kernel.slice * 4:
            t.slice_start = now  # it blocked for a while: a fresh slice
        watchdog = kernel.watchdog
        if watchdog is not None:
            watchdog.running = t  # back in the thread's own code until its next syscall
        return result

    # ------------------------------------------------------------------ helpers
    def copy_in(self, ptr: int, n: int) -> bytes:
        """The kernel reading a buffer a syscall points at. A bad pointer is the caller's error
        (PARAM, like EFAULT), not a fault that kills it: the kernel validates user pointers."""
        try:
            return self._space.read(ptr, n)
        except (PageFault, GeneralProtection):
            raise SyscallFail(abi.PARAM, f"bad user pointer {ptr!r}") from None
        except (QuotaExceeded, OutOfFrames):
            raise SyscallFail(abi.MEMORY) from None

    def copy_out(self, ptr: int, data: bytes) -> None:
        try:
            self._space.write(ptr, data)
        except (PageFault, GeneralProtection):
            raise SyscallFail(abi.PARAM, f"bad user pointer {ptr!r}") from None
        except (QuotaExceeded, OutOfFrames):
            raise SyscallFail(abi.MEMORY) from None

    def read_str(self, ptr: int, length: int) -> str:
        if length <= 0 or length > MAX_PATH:
            raise SyscallFail(abi.PARAM)
        raw = self.copy_in(ptr, length)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise SyscallFail(abi.UTF8) from None


# ---------------------------------------------------------------------- handlers
async def sys_fork_thread(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    if not callable(rdi):
        raise SyscallFail(abi.PARAM)
    try:
        tid = g.kernel.start_thread(g.process, rdi, rsi if isinstance(rsi, tuple) else ())
    except SpaceError:
        raise SyscallFail(abi.MEMALLOC) from None
    return 0, tid, 0, 0


async def sys_exit_thread(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    raise ThreadExit()


async def sys_debug_write(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    if rsi > 0:
        text = g.copy_in(rdi, min(rsi, 65536)).decode("utf-8", "replace")
        g.kernel.debug_write(g.process, text)
    return rax, rdi, rsi, rdx


async def sys_receive(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    r = g.process.handles.get(rdi)
    t.state = ThreadState.RECEIVE
    return await r.receive(t)


async def _send(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any, want_reply: bool) -> Regs:
    proc = g.process
    r = proc.handles.get(rax >> 32)
    msg: KMessage = take(proc, rax, rdi, rsi, rdx)
    t.state = ThreadState.SEND_RECEIVE if want_reply else ThreadState.SEND
    return await r.send(t, msg, want_reply)


async def sys_send(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    return await _send(g, t, rax, rdi, rsi, rdx, False)


async def sys_send_receive(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    return await _send(g, t, rax, rdi, rsi, rdx, True)


async def sys_open(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    if rsi <= 0:
        raise SyscallFail(abi.PARAM)
    path = g.read_str(rdi, rsi)
    try:
        r, matched = g.process.vfs.resolve(path)
    except KeyError:
        raise SyscallFail(abi.NOTFOUND) from None
    r.incref()
    return 0, g.process.handles.add(r), len(path[:matched].encode()), 0


async def sys_malloc(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    try:
        vaddr, phys = g.process.space.malloc(rdi, rsi or None)
    except (SpaceError, QuotaExceeded, OutOfFrames):
        return abi.MEMORY, 0, 0, 0
    return 0, vaddr, phys, 0


async def sys_free(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    try:
        g.process.space.free(rdi)
    except SpaceError:
        raise SyscallFail(abi.PARAM) from None
    except KeyError:
        raise SyscallFail(abi.DOUBLEFREE) from None
    return 0, 0, 0, 0


async def sys_chunk_info(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    """(base, size in bytes, physical start) of the chunk containing RDI (EuraliOS-py extension).

    A chunk arrives as a bare address; without its size a receiver cannot check the length a
    message claims, and reading past the end is a page fault that kills it (one bad client
    could kill any server). Errors: PARAM outside the chunk area, NOTFOUND for an empty slot."""
    try:
        base, size, phys = g.process.space.chunk_info(rdi)
    except SpaceError:
        raise SyscallFail(abi.PARAM) from None
    except KeyError:
        raise SyscallFail(abi.NOTFOUND) from None
    return 0, base, size, phys


async def sys_yield(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    await _checkpoint()
    t.slice_start = _perf()
    return rax, rdi, rsi, rdx


async def sys_new_rendezvous(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    r = g.kernel.new_rendezvous(refs=2)
    h1 = g.process.handles.add(r)
    h2 = g.process.handles.add(r)
    return 0, h1, h2, 0


async def sys_copy_rendezvous(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    r = g.process.handles.get(rdi)
    r.incref()
    return 0, g.process.handles.add(r), 0, 0


async def sys_exec(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    pid = await g.kernel.exec_syscall(g.process, t, rax, rdi, rsi, rdx)
    return 0, pid, 0, 0


async def sys_mount(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    path = g.read_str(rdi, rsi)
    g.kernel.check_mount(g.process, path)
    r = g.process.handles.take(rax >> 32)
    g.process.vfs.mount(path, r)
    g.kernel.log_mount(g.process, path)
    return 0, 0, 0, 0


async def sys_list_mounts(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    data = g.process.vfs.to_json().encode()
    try:
        vaddr, _ = g.process.space.malloc(max(1, -(-len(data) // 4096)))
    except (SpaceError, QuotaExceeded, OutOfFrames):
        return abi.MEMORY, 0, 0, 0
    g.copy_out(vaddr, data)
    return 0, vaddr, len(data), 0


async def sys_umount(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    path = g.read_str(rdi, rsi)
    g.kernel.check_mount(g.process, path, removing=True)
    try:
        r = g.process.vfs.umount(path)
    except KeyError:
        raise SyscallFail(abi.NOTFOUND) from None
    r.decref()
    return 0, 0, 0, 0


async def sys_close(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    try:
        r = g.process.handles.take(rdi)
    except SyscallFail:
        return abi.INVALID_HANDLE, 0, 0, 0
    r.decref()
    return 0, 0, 0, 0


async def sys_await_interrupt(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    t.state = ThreadState.AWAIT_INTERRUPT
    fired = await g.kernel.interrupts.wait(g.process, rdi, rsi)
    return 0, int(fired), 0, 0


async def sys_port_in(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    g.kernel.check_io(g.process, rdi, rsi)
    return 0, g.kernel.machine.ports.read(rdi, rsi), 0, 0


async def sys_port_out(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    g.kernel.check_io(g.process, rdi, rsi)
    g.kernel.machine.ports.write(rdi, rsi, rdx)
    return 0, 0, 0, 0


async def sys_reboot(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    """reboot (Linux's reboot(2)): root only. The kernel, which owns the hardware, does what a
    PC kernel does -- RESTART pulses the keyboard controller's reset line (out 0x64, 0xFE:
    Linux's reboot=k), POWER_OFF writes the ACPI soft-off (outw 0x604, 0x2000) -- so programs
    need no I/O privilege and the machine model alone decides what a reset or power-off is.
    Neither returns: the caller waits until the machine it runs on is torn down."""
    if rdi not in (abi.REBOOT_QUERY, abi.REBOOT_RESTART, abi.REBOOT_POWER_OFF):
        raise SyscallFail(abi.PARAM)
    proc = g.process
    if proc.user != "root":
        raise SyscallFail(abi.NOT_PERMITTED, "reboot: only root may restart or power off")
    if rdi == abi.REBOOT_QUERY:
        return 0, 0, 0, 0
    kernel = g.kernel
    ports = kernel.machine.ports
    if rdi == abi.REBOOT_RESTART:
        kernel.log(f"[kernel] reboot: Restarting system (pid {proc.pid}, {proc.name})")
        ports.write(0x64, 1, 0xFE)
    else:
        kernel.log(f"[kernel] reboot: Power down (pid {proc.pid}, {proc.name})")
        ports.write(0x604, 2, 0x2000)
    await trio.sleep_forever()
    return 0, 0, 0, 0  # pragma: no cover - the machine is gone


_VIO = struct.Struct("<HBBI")


async def sys_port_vio(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    """Vectored port I/O (EuraliOS-py; MINIX's SYS_VDEVIO): RSI entries of (u16 port, u8 size,
    u8 op, u32 value) at RDI, done in order as if by as many port_in / port_out calls; an "in"
    (op 0) stores its value back in its entry. A driver's burst of register accesses (hand four
    transmit descriptors to the card, then read their status) costs one kernel entry instead of
    one each. A bad entry stops the vector with PARAM (the ones before it were done, as on the
    hardware); RDI comes back as the number done."""
    kernel = g.kernel
    proc = g.process
    if not proc.io:
        kernel.check_io(proc, 0, 1)  # kills it: port I/O without I/O privilege
    if not isinstance(rsi, int) or not 0 < rsi <= abi.PORT_VIO_MAX:
        raise SyscallFail(abi.PARAM)
    raw = bytearray(g.copy_in(rdi, rsi * 8))
    ports = kernel.machine.ports
    unpack, pack = _VIO.unpack_from, _VIO.pack_into
    reads = False
    done = 0
    error = 0
    for off in range(0, rsi * 8, 8):
        port, size, op, value = unpack(raw, off)
        if size not in (1, 2, 4) or op > 1:
            error = abi.PARAM
            break
        if op:
            ports.write(port, size, value)
        else:
            pack(raw, off, port, size, op, ports.read(port, size))
            reads = True
        done += 1
    if reads:
        g.copy_out(rdi, bytes(raw[: done * 8]))
    return error, done, 0, 0


async def sys_map_phys(g: Gate, t: Thread, rax: int, rdi: Any, rsi: Any, rdx: Any) -> Regs:
    """Map device memory for a driver (like mmap of /dev/mem): I/O privilege only, and never
    RAM the frame allocator manages — only the legacy area below 1 MiB or addresses past RAM."""
    if not g.process.io:
        raise SyscallFail(abi.PARAM, "map_phys needs I/O privilege")
    if not isinstance(rdi, int) or not isinstance(rsi, int) or rdi % 4096 or not 0 < rsi <= 512:
        raise SyscallFail(abi.PARAM)
    end = rdi + rsi * 4096
    low = g.kernel.frames.start
    if not (end <= low or rdi >= g.kernel.machine.memory.size):
        raise SyscallFail(abi.PARAM, "map_phys: that is RAM, not device memory")
    try:
        chunk = device_chunk(g.kernel.memctx, rdi, rsi)
    except (SpaceError, OutOfFrames):
        return abi.MEMORY, 0, 0, 0
    try:
        vaddr = g.process.space.attach(chunk)
    except SpaceError:
        free_chunk(g.kernel.memctx, chunk)
        return abi.MEMORY, 0, 0, 0
    return 0, vaddr, 0, 0


_HANDLERS = {
    abi.FORK_THREAD: sys_fork_thread,
    abi.EXIT_THREAD: sys_exit_thread,
    abi.DEBUG_WRITE: sys_debug_write,
    abi.RECEIVE: sys_receive,
    abi.SEND: sys_send,
    abi.SEND_RECEIVE: sys_send_receive,
    abi.OPEN: sys_open,
    abi.MALLOC: sys_malloc,
    abi.FREE: sys_free,
    abi.YIELD: sys_yield,
    abi.NEW_RENDEZVOUS: sys_new_rendezvous,
    abi.COPY_RENDEZVOUS: sys_copy_rendezvous,
    abi.EXEC: sys_exec,
    abi.MOUNT: sys_mount,
    abi.LIST_MOUNTS: sys_list_mounts,
    abi.UMOUNT: sys_umount,
    abi.CLOSE: sys_close,
    abi.AWAIT_INTERRUPT: sys_await_interrupt,
    abi.PORT_IN: sys_port_in,
    abi.PORT_OUT: sys_port_out,
    abi.CHUNK_INFO: sys_chunk_info,
    abi.MAP_PHYS: sys_map_phys,
    abi.PORT_VIO: sys_port_vio,
    abi.REBOOT: sys_reboot,
}
