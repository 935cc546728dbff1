"""Random syscall sequences with random arguments from several processes.

Whatever the programs pass, the kernel never raises to the host, and its invariants hold
afterwards: no frame is owned by two address spaces, frame accounting adds up, every handle-table
entry refers to a live rendezvous whose reference count covers it, and when the programs are
gone everything is back at its baseline.
"""

from __future__ import annotations

import gc

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from euralios.boot import boot
from euralios.std import abi as A

NUMBERS = [A.FORK_THREAD, A.DEBUG_WRITE, A.RECEIVE, A.SEND, A.SEND_RECEIVE, A.OPEN, A.MALLOC, A.FREE, A.YIELD,
           A.NEW_RENDEZVOUS, A.COPY_RENDEZVOUS, A.EXEC, A.MOUNT, A.LIST_MOUNTS, A.UMOUNT, A.CLOSE,
           A.AWAIT_INTERRUPT, A.PORT_IN, A.PORT_OUT, A.CHUNK_INFO, A.PORT_VIO, 0x77]
WORDS = st.one_of(
    st.integers(0, 8),  # small handles / sizes
    st.sampled_from([0x280_4000_0000, 0x280_8000_0123, 0x280_0060_0000, 0x4FF_F000, 0x40_0000, 0x10]),
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([None, "x", b"y", 1.5]),
)
CTRL = st.sampled_from([0, A.MSG_LONG, A.MSG_LONG | (A.KIND_HANDLE << A.D2_SHIFT),
                        A.MSG_LONG | (A.KIND_MEMORY << A.D3_SHIFT),
                        A.MSG_LONG | (A.KIND_HANDLE << A.D2_SHIFT) | (A.KIND_HANDLE << A.D3_SHIFT),
                        A.MSG_LONG | (A.KIND_ERROR << A.D2_SHIFT)])
CALL = st.tuples(st.sampled_from(NUMBERS), CTRL, st.integers(0, 6), WORDS, WORDS, WORDS)
PROGRAM = st.lists(CALL, min_size=1, max_size=25)


def make_program(calls):
    async def fuzz(proc):
        for number, ctrl, handle, rdi, rsi, rdx in calls:
            rax = number | ctrl | (handle << 32)
            if number in (A.SEND, A.SEND_RECEIVE, A.RECEIVE, A.AWAIT_INTERRUPT):
                # Blocking calls may legitimately wait forever: bound them.
                with trio.move_on_after(0.01):
                    await proc.gate.syscall(rax, rdi, rsi, rdx)
            elif number == A.FORK_THREAD:
                async def child():
                    await proc.sys.yield_()

                await proc.gate.syscall(rax, child if rdi == 0 else rdi, (), 0)
            elif number == A.EXEC:
                await proc.gate.syscall(rax, rdi, rsi, rdx)
            else:
                await proc.gate.syscall(rax, rdi, rsi, rdx)
        return 0

    return fuzz


def check_invariants(system) -> None:
    k = system.kernel
    owned: dict[int, int] = {}
    total = 0
    for p in k.processes.values():
        seen = 0
        for _vaddr, paddr, flags in p.space.mappings():
            if flags & (1 << 9):  # borrowed (kernel-info page, device memory)
                continue
            assert paddr not in owned or owned[paddr] == p.pid, f"frame {paddr:#x} owned twice"
            owned[paddr] = p.pid
            seen += 1
        assert seen <= p.space.frames_owned
        total += p.space.frames_owned
        for r in p.handles.slots:
            if r is not None:
                assert r.refs >= 1
    assert total <= k.frames.used_count


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PROGRAM, min_size=1, max_size=3))
async def test_random_syscalls_never_crash_the_kernel(programs) -> None:
    gc.collect()  # each example boots a machine: let the last one's memory go before the next
    async with boot(watchdog=0) as system:
        async def settle(proc):
            await proc.print("ok")
            return 0

        await system.run(settle)
        await trio.testing.wait_all_tasks_blocked()  # the console driver has finished with the print
        base = (system.kernel.frames.free_count, len(system.kernel.processes))
        procs = [system.spawn(make_program(calls), name=f"fuzz{i}") for i, calls in enumerate(programs)]
        with trio.fail_after(20):
            for p in procs:
                await p.ended.wait()
        # Children the fuzzers exec'd may still run (or block): kill what is left of them.
        left = [p for p in system.kernel.processes.values()
                if p.parent in {q.pid for q in procs} or p.name.startswith("fuzz")]
        for p in left:
            system.kernel.kill(p, "fuzz cleanup")
        with trio.fail_after(5):
            for p in left:
                await p.ended.wait()
        await trio.testing.wait_all_tasks_blocked()
        check_invariants(system)
        assert system.kernel.processes  # the system is alive
        assert await system.run(settle) == 0
        assert (system.kernel.frames.free_count, len(system.kernel.processes)) == base
