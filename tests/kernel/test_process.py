"""Processes: crash isolation, faults, the watchdog, quotas, and exact resource release."""

from __future__ import annotations

import gc

import trio
import trio.testing

from euralios.boot import boot
from euralios.std import Memory, Message, SyscallError
from euralios.std import abi as A
from merriwig.abi import IDLE_START_MAX
from merriwig.errors import KillCause, KillReason


async def settle(system) -> tuple[int, int, int, int]:
    """Baseline after boot has finished starting its own threads (the console driver's)."""

    async def nothing(proc):
        await proc.print("settled")
        return 0

    await system.run(nothing)
    await trio.testing.wait_all_tasks_blocked()  # the console driver has finished with the print
    return resources(system)


def resources(system) -> tuple[int, int, int, int]:
    k = system.kernel
    return k.frames.free_count, k.rendezvous_live, len(k.threads), len(k.processes)


async def test_exception_kills_only_that_process_with_a_one_line_report() -> None:
    async def crash(proc):
        raise ValueError("boom")

    async def healthy(proc):
        await proc.print("still here")
        return 0

    async with boot() as system:
        before = await settle(system)
        assert await system.run(crash) == 1
        assert await system.run(healthy) == 0
        assert "still here" in system.output()
        lines = [ln for ln in system.klog().splitlines() if "killed" in ln]
        assert len(lines) == 1
        assert lines[0].endswith("(crash) killed: ValueError: boom")
        assert await settle(system) == before  # settled: a crash report on the console is freed by then


async def test_page_fault_kills_with_x86_description() -> None:
    async def wild(proc):
        proc.gate.store(0x0000_0280_0060_0000 + 0x40_0000 + 0x1000, b"x")  # just past the heap
        return 0

    async with boot() as system:
        assert await system.run(wild) == 1  # the first report on the console grows its tables once
        before = await settle(system)
        assert await system.run(wild) == 1
        assert "killed: page fault at 0x0000028000a01000: not-present, write, user" in system.klog()
        assert await settle(system) == before  # the report on the console is a message it frees
        assert "Killed: page fault at 0x0000028000a01000: not-present, write, user" in system.output()


async def test_writing_the_time_page_or_code_is_a_protection_fault() -> None:
    async def poke_time(proc):
        proc.gate.store(A.KERNEL_INFO, b"x")

    async def poke_code(proc):
        proc.gate.store(0x40_0000, b"x")

    async with boot() as system:
        assert await system.run(poke_time) == 1
        assert await system.run(poke_code) == 1
        log = system.klog()
        assert "page fault at 0x0000000004fff000: protection, write, user" in log
        assert "page fault at 0x0000000000400000: protection, write, user" in log


async def test_port_io_without_privilege_is_a_general_protection_kill() -> None:
    async def sneaky(proc):
        await proc.sys.port_in(0x60)
        return 0

    async def driver(proc):
        return await proc.sys.port_in(0x64) & 0xFF

    async with boot() as system:
        assert await system.run(sneaky) == 1
        assert "general protection fault: port I/O without I/O privilege" in system.klog()
        assert await system.run(driver, io=True) == 0x04  # PS/2 status: self-test passed, empty
        assert "(driver) killed" not in system.klog()


async def test_watchdog_kills_a_spinning_thread_and_the_system_lives() -> None:
    async def spin(proc):
        while True:
            pass

    async def after(proc):
        await proc.print("alive")
        return 0

    async with boot(watchdog=0.5) as system:
        before = await settle(system)
        with trio.fail_after(10):
            assert await system.run(spin) == 1
        assert "killed: watchdog: ran 0.5 s without a syscall" in system.klog()
        assert await system.run(after) == 0
        assert await settle(system) == before  # settled: a crash report on the console is freed by then


async def test_watchdog_knows_the_running_thread_from_its_first_step_on() -> None:
    """The watchdog's `running` hook names the thread trio is stepping (no stack walking, so no
    dependence on kernel method names), from a thread's very first step and after syscalls."""
    seen: list[bool] = []

    async def prog(proc):
        k = proc.gate.kernel
        me = k.task_threads[trio.lowlevel.current_task()]
        seen.append(k.watchdog.running is me)
        await proc.sys.yield_()
        seen.append(k.watchdog.running is me)
        return 0

    async with boot(watchdog=0.5) as system:
        proc = system.spawn(prog)
        await proc.ended.wait()
        assert proc.status == 0
        running = system.kernel.watchdog.running  # another thread's, or None: never the ended one's
        assert running is None or running.process is not proc
    assert seen == [True, True]


async def test_quota_exhaustion_fails_malloc_then_kills_on_demand_paging() -> None:
    codes: list[int] = []

    async def hog(proc):
        try:
            await proc.sys.malloc(64, 0xFFFF_FFFF)  # contiguous: needs 64 frames now
        except SyscallError as e:
            codes.append(e.code)
        chunk = await proc.malloc(1 << 20)  # on demand: fine until touched
        for off in range(0, 1 << 20, 4096):
            chunk.write(off, b"x")
        return 0

    async with boot(quota=32) as system:
        assert await system.run(hog) == 1  # the first report on the console grows its tables once
        codes.clear()
        before = await settle(system)
        assert await system.run(hog) == 1
        assert codes == [A.MEMORY]
        assert "killed: out of memory: frame quota of 32 frames reached" in system.klog()
        assert await settle(system) == before  # the report on the console is a message it frees


async def test_every_kill_records_its_cause_beside_the_reported_line() -> None:
    async def crash(proc):
        raise ValueError("boom")

    async def wild(proc):
        proc.gate.store(0x0000_0280_0060_0000 + 0x40_0000 + 0x1000, b"x")

    async def sneaky(proc):
        await proc.sys.port_in(0x60)

    async def hog(proc):
        chunk = await proc.malloc(1 << 20)
        for off in range(0, 1 << 20, 4096):
            chunk.write(off, b"x")

    async def spin(proc):
        while True:
            pass

    async def idle(proc):
        await proc.sys.receive(0)

    async with boot(watchdog=0.5) as system:
        procs = {cause: system.spawn(fn, quota=32 if fn is hog else None) for cause, fn in (
            (KillCause.CRASH, crash), (KillCause.FAULT, wild), (KillCause.OUT_OF_MEMORY, hog),
            (KillCause.WATCHDOG, spin), (KillCause.REQUEST, idle))}
        procs[KillCause.BAD_IMAGE] = system.spawn(b"x = 1\n", name="nomain")
        gp = system.spawn(sneaky)
        await trio.sleep(0.05)
        system.kernel.kill(procs[KillCause.REQUEST], "test kill")
        with trio.fail_after(10):
            for p in [*procs.values(), gp]:
                await p.ended.wait()
        for cause, p in procs.items():
            assert p.killed is not None and p.killed.cause is cause, (cause, p.killed)
            assert f"({p.name}) killed: {p.killed.detail}" in system.klog()
        assert gp.killed == KillReason(KillCause.FAULT, "general protection fault: port I/O without I/O privilege")


async def test_exit_with_handles_and_chunks_held_releases_everything() -> None:
    async def hoarder(proc):
        for _ in range(5):
            await proc.sys.new_rendezvous()
        for _ in range(5):
            c = await proc.malloc(10000)
            c.write(0, b"x" * 10000)
        await proc.spawn_thread(proc.sleep, 0.01)  # outlives main: the process ends with it
        return 7

    async with boot() as system:
        before = await settle(system)
        assert await system.run(hoarder) == 7  # returns when the last thread has ended
        await trio.testing.wait_all_tasks_blocked()
        assert await settle(system) == before  # settled: a crash report on the console is freed by then


async def test_killed_mid_send_receive_releases_and_peer_sees_closed() -> None:
    async def main(proc):
        mine, theirs = await proc.sys.new_rendezvous()

        async def caller(cproc):
            chunk = await cproc.malloc(4096)
            await cproc.sys.send_receive(0, Message(2, 4096, Memory(chunk.vaddr)))

        child = await proc.exec(caller, stdin=theirs)
        msg = await proc.sys.receive(mine)  # the child now waits for our reply
        await proc.sys.free(msg.d3.vaddr)
        proc.sys.gate.kernel.kill(proc.sys.gate.kernel.processes[child.pid], "test kill")
        status = await child.wait()
        try:
            await proc.sys.send(mine, Message(8))
        except SyscallError as e:
            return 100 + e.code + status
        return 0

    async with boot() as system:
        before = await settle(system)
        assert await system.run(main) == 100 + A.CLOSED + 1
        assert await settle(system) == before  # settled: a crash report on the console is freed by then


async def test_thousand_spawn_exit_cycles_leave_frames_handles_and_tasks_at_baseline() -> None:
    async def nothing(proc):
        return 0

    async def crasher(proc):
        raise RuntimeError("x")

    async def main(proc):
        for i in range(1000):
            c = await proc.exec(crasher if i % 10 == 0 else nothing)
            await c.wait()
        return 0

    async with boot() as system:
        gc.collect()
        before = await settle(system)
        tasks_before = len(system.nursery.child_tasks)
        kernel_tasks_before = len(system.kernel.nursery.child_tasks)
        assert await system.run(main) == 0
        await trio.testing.wait_all_tasks_blocked()  # the last child's tasks have unwound
        assert await settle(system) == before  # settled: a crash report on the console is freed by then
        assert len(system.nursery.child_tasks) == tasks_before
        assert len(system.kernel.nursery.child_tasks) == kernel_tasks_before
        assert system.kernel.killed_count == 100


async def test_threads_share_the_process_and_process_ends_with_last_thread() -> None:
    seen: list[int] = []

    async def main(proc):
        async def worker(n):
            await proc.sleep(0.02)  # the behaviour under test: the workers outlive main
            seen.append(n)

        for n in range(3):
            await proc.spawn_thread(worker, n)
        return 5  # main returns first; the process lives until the workers end

    async with boot() as system:
        proc = system.spawn(main)
        await proc.ended.wait()
        assert proc.status == 5
        assert sorted(seen) == [0, 1, 2]


async def test_cpu_time_is_accounted_per_thread() -> None:
    async def busy(proc):
        x = 0
        for _ in range(20):
            for i in range(20000):
                x += i
            await proc.sys.yield_()
        return 0

    async with boot() as system:
        p = system.spawn(busy)
        pid = p.pid
        await p.ended.wait()
        assert p.cpu_time > 0.005
        assert pid not in system.kernel.processes


async def test_idle_start_waits_until_every_other_thread_has_blocked() -> None:
    """exec(idle=True) (abi.EXEC_IDLE, as systemd's Type=idle): the child runs only after
    the busy work already under way has finished and blocked; a normal child interleaves."""
    order: list[str] = []

    async def busy(proc):
        for i in range(30):
            order.append(f"busy{i}")
            await proc.sys.yield_()
        return 0

    async def marker(proc):
        order.append(proc.args[0])
        return 0

    async def main(proc):
        b = await proc.exec(busy)
        late = await proc.exec(marker, args=["idle"], idle=True)
        early = await proc.exec(marker, args=["normal"])
        statuses = [await c.wait() for c in (b, late, early)]
        return sum(statuses)

    async with boot() as system:
        assert await system.run(main) == 0
    assert order.index("normal") < order.index("busy29")  # round robin: it ran among the busy
    assert order.index("idle") > order.index("busy29")  # it waited for them to be done


async def test_idle_start_is_not_starved_by_a_process_that_never_blocks() -> None:
    """A process that never blocks would keep an idle start waiting for ever: it is capped at
    abi.IDLE_START_MAX seconds."""
    started: list[float] = []

    async def spinner(proc):
        while True:
            await proc.sys.yield_()

    async def marker(proc):
        started.append(trio.current_time())
        return 0

    async def main(proc):
        s = await proc.exec(spinner)
        t0 = trio.current_time()
        child = await proc.exec(marker, idle=True)
        await child.wait()
        proc.sys.gate.kernel.kill(proc.sys.gate.kernel.processes[s.pid], "test: done spinning")
        return 0 if started and started[0] - t0 >= IDLE_START_MAX - 0.1 else 1

    async with boot() as system:
        assert await system.run(main) == 0
