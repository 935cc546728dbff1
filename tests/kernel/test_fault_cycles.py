"""A thousand mixed failures in a row, and the kernel is exactly where it started.

test_process.py checks each way of dying once; this file checks that they do not add up. Every
cycle starts one program (or a caller/server pair) that ends in one of the ways a process can
end badly:

* raise an exception;
* page-fault (write past the heap, read an unmapped page, write its own code);
* spin without a syscall until the watchdog kills it (only a handful: each costs the watchdog
  limit, 0.05 s here);
* exhaust its frame quota (a contiguous malloc is refused with MEMORY, then demand paging kills);
* exit normally while holding rendezvous, a copied handle, chunks and a still-running thread;
* die in the middle of send_receive (its server must get CLOSED when it replies);
* be the server that dies while a caller waits in send_receive (the caller must get CLOSED).

Each kill must be reported by exactly one kernel-log line naming that process, no other process
may die with it, and after the last cycle the free frames, live rendezvous, handles, kernel
threads, processes and trio tasks (the kernel nursery's children, and the host's) must all be
back at their baseline values: a leak of one frame or one task per thousand would show.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing

from euralios.boot import System, boot
from euralios.std import STDIN, STDOUT, Handle, Memory, Message, SyscallError
from euralios.std import abi as A

CYCLES = 1000
SPINNERS = {137, 411, 688, 950}  # the cycles that spin (watchdog kills cost 0.05 s each)
QUOTA = 24  # frames, for the quota-exhaustion program only
HEAP_END = 0x0000_0280_0060_0000 + 0x40_0000  # first page past the default heap (test_process)
CODE = 0x40_0000


def resources(system: System) -> dict[str, int]:
    """Everything a leak could show up in."""
    k = system.kernel
    return {
        "free_frames": k.frames.free_count,
        "rendezvous": k.rendezvous_live,
        "handles": sum(p.handles.count() for p in k.processes.values()),
        "kernel_threads": len(k.threads),
        "processes": len(k.processes),
        "kernel_tasks": len(k.nursery.child_tasks) if k.nursery is not None else -1,
        "host_tasks": len(system.nursery.child_tasks),
    }


async def settle(system: System) -> dict[str, int]:
    """Run one trivial program so boot's own lazily started threads exist, then measure."""

    async def nothing(proc: Any) -> int:
        await proc.print("settled")
        return 0

    await system.run(nothing)
    await trio.testing.wait_all_tasks_blocked()  # the console driver has finished with the print
    gc.collect()
    return resources(system)


# ------------------------------------------------------------------------------ the programs

async def raiser(proc: Any) -> int:
    raise ValueError(f"boom in {proc.args[0]}")


async def write_past_heap(proc: Any) -> int:
    proc.gate.store(HEAP_END + 0x1000, b"x")
    return 0


async def read_unmapped(proc: Any) -> int:
    proc.gate.load(0x10, 1)
    return 0


async def write_code(proc: Any) -> int:
    proc.gate.store(CODE, b"x")
    return 0


async def spinner(proc: Any) -> int:
    while True:
        pass


async def quota_hog(proc: Any) -> int:
    try:
        await proc.sys.malloc(QUOTA * 2, 0xFFFF_FFFF)  # contiguous, now: refused, not killed
        return 3
    except SyscallError as e:
        if e.code != A.MEMORY:
            return 4
    chunk = await proc.malloc(1 << 20)  # on demand: fine until touched
    for off in range(0, 1 << 20, 4096):
        chunk.write(off, b"x")
    return 5


async def hoarder(proc: Any) -> int:
    """Exits normally with everything still held: the kernel must take it all back."""
    sys = proc.sys
    for _ in range(3):
        await sys.new_rendezvous()
    await sys.copy_rendezvous(STDOUT)
    for size in (100, 9000):
        c = await proc.malloc(size)
        c.write(0, b"y" * size)
    await proc.spawn_thread(proc.sleep, 0.001)  # outlives main: the process ends with it
    return 7


FaultKind = tuple[str, Callable[[Any], Awaitable[int]], str]
SINGLES: list[FaultKind] = [
    ("raise", raiser, "ValueError: boom in raise"),
    ("pf-heap", write_past_heap, f"page fault at {HEAP_END + 0x1000:#018x}: not-present, write, user"),
    ("pf-read", read_unmapped, "page fault at 0x0000000000000010: not-present, read, user"),
    ("pf-code", write_code, f"page fault at {CODE:#018x}: protection, write, user"),
    ("quota", quota_hog, f"out of memory: frame quota of {QUOTA} frames reached"),
    ("hoard", hoarder, ""),
]


class Cycles:
    """Runs the cycles from the host and keeps the books: who was expected to die, and why."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.expected: dict[int, str] = {}  # pid -> the kill reason it must be reported with
        self.counts: dict[str, int] = {}

    def count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    async def single(self, kind: str, main: Callable[[Any], Awaitable[int]], reason: str) -> None:
        p = self.system.spawn(main, [kind], name=kind, quota=QUOTA if kind == "quota" else None)
        if reason:
            self.expected[p.pid] = reason
        await p.ended.wait()
        assert p.status == (7 if kind == "hoard" else 1), (kind, p.status)
        self.count(kind)

    async def caller_dies(self) -> None:
        """The caller is killed (by its own second thread) while its send_receive waits for the
        reply; the server's reply must then fail with CLOSED, and the chunk it was sent is its own."""
        got: dict[str, Any] = {}
        received, dead = trio.Event(), trio.Event()

        async def server(proc: Any) -> int:
            msg = await proc.sys.receive(STDIN)
            await proc.sys.free(msg.d3.vaddr)
            received.set()
            await dead.wait()  # answer only once the caller is gone
            try:
                await proc.sys.send(STDIN, Message(A.OK, 0, 0))
            except SyscallError as e:
                got["reply"] = e.code
            return 0

        async def caller(proc: Any) -> int:
            async def doom() -> None:
                await received.wait()
                raise RuntimeError("caller dies mid-call")

            await proc.spawn_thread(doom)
            chunk = await proc.malloc(4096)
            chunk.write(0, b"payload")
            await proc.sys.send_receive(STDOUT, Message(2, 7, Memory(chunk.vaddr)))
            return 0

        r = self.system.kernel.new_rendezvous(refs=2)
        s = self.system.spawn(server, ["server"], name="server", stdin=r)
        c = self.system.spawn(caller, ["caller"], name="caller", stdout=r)
        self.expected[c.pid] = "RuntimeError: caller dies mid-call"
        await c.ended.wait()
        dead.set()
        await s.ended.wait()
        assert (c.status, s.status, got.get("reply")) == (1, 0, A.CLOSED)
        self.count("caller-dies")

    async def server_dies(self) -> None:
        """The server takes the request and dies before answering: the caller, parked in
        send_receive, must be woken with CLOSED rather than wait for ever."""
        got: dict[str, Any] = {}

        async def server(proc: Any) -> int:
            await proc.sys.receive(STDIN)  # takes the handle and the chunk, and dies holding them
            raise RuntimeError("server dies mid-call")

        async def caller(proc: Any) -> int:
            mine, theirs = await proc.sys.new_rendezvous()
            chunk = await proc.malloc(100)
            try:
                await proc.sys.send_receive(STDOUT, Message(2, Handle(theirs), Memory(chunk.vaddr)))
            except SyscallError as e:
                got["call"] = e.code
            await proc.sys.close(mine)
            return 0

        r = self.system.kernel.new_rendezvous(refs=2)
        s = self.system.spawn(server, ["server"], name="server", stdin=r)
        c = self.system.spawn(caller, ["caller"], name="caller", stdout=r)
        self.expected[s.pid] = "RuntimeError: server dies mid-call"
        await s.ended.wait()
        await c.ended.wait()
        assert (s.status, c.status, got.get("call")) == (1, 0, A.CLOSED)
        self.count("server-dies")

    async def spin(self) -> None:
        p = self.system.spawn(spinner, ["spin"], name="spin")
        self.expected[p.pid] = "watchdog: ran 0.05 s without a syscall"
        with trio.fail_after(5):
            await p.ended.wait()
        assert p.status == 1
        self.count("spin")

    async def run(self, n: int) -> None:
        rest = 0
        for i in range(n):
            if i in SPINNERS:
                await self.spin()
                continue
            k = rest % (len(SINGLES) + 2)
            rest += 1
            if k < len(SINGLES):
                await self.single(*SINGLES[k])
            elif k == len(SINGLES):
                await self.caller_dies()
            else:
                await self.server_dies()


async def test_thousand_mixed_fault_cycles_each_killed_alone_and_everything_back_at_baseline() -> None:
    kills: list[str] = []

    def listen(line: str) -> None:
        if " killed: " in line:
            kills.append(line)

    async with boot(watchdog=0.05) as system:
        before = await settle(system)
        killed_before = system.kernel.killed_count
        system.kernel.klog.listeners.append(listen)
        cycles = Cycles(system)
        with trio.fail_after(25):
            await cycles.run(CYCLES)
        await trio.testing.wait_all_tasks_blocked()  # every killed thread has unwound
        gc.collect()
        after = resources(system)

        # Still a working system.
        async def alive(proc: Any) -> int:
            await proc.print("alive after the cycles")
            return 0

        assert await system.run(alive) == 0
        assert "alive after the cycles" in system.output()

    assert sum(cycles.counts.values()) == CYCLES
    assert cycles.counts["spin"] == len(SPINNERS)
    # One line per killed process, naming it and saying why; nobody else died.
    assert system.kernel.killed_count - killed_before == len(cycles.expected) == len(kills)
    reported: dict[int, str] = {}
    for line in kills:
        head, reason = line.split(" killed: ", 1)
        pid = int(head.split("pid ", 1)[1].split()[0])
        assert pid not in reported, f"pid {pid} reported twice"
        reported[pid] = reason
    assert reported == cycles.expected
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}


async def test_printing_to_a_dead_server_leaks_no_chunk() -> None:
    """A console whose driver died hands every WRITE's chunk back with CLOSED; proc.write must
    free it (init keeps logging while its console driver restarts), and a chunk that went down
    with a server that took it must not be freed twice (the error carries no message then)."""
    got: dict[str, Any] = {}

    async def writer(proc: Any) -> int:
        mine, theirs = await proc.sys.new_rendezvous()

        async def server(sproc: Any) -> int:
            await sproc.sys.receive(STDIN)  # take one request and die with it
            raise RuntimeError("server dies holding the chunk")

        child = await proc.exec(server, stdin=theirs)
        try:
            await proc.write("taken", handle=mine)
        except SyscallError as e:
            got["taken"] = (e.code, e.message)
        await child.wait()
        base = proc.sys.gate.kernel.processes[proc.pid].space.frames_owned
        for _ in range(50):
            try:
                await proc.write("x" * 5000, handle=mine)  # orphaned: the chunk comes back
            except SyscallError as e:
                got.setdefault("codes", set()).add(e.code)
        got["growth"] = proc.sys.gate.kernel.processes[proc.pid].space.frames_owned - base
        return 0

    async with boot() as system:
        assert await system.run(writer) == 0
    assert got["taken"] == (A.CLOSED, None)
    assert got["codes"] == {A.CLOSED}
    assert got["growth"] == 0
