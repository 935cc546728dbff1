"""Kernel limits every process meets, confined or not: integer message words, a frame reserve
only root's processes may use, frame quotas a session hands down, a per-user process limit."""

from __future__ import annotations

from typing import Any

import trio

from euralios.boot import System, boot
from euralios.std import Message, SyscallError, abi


class Sneaky:
    """An object that would run code in whoever compared it."""

    ran = False

    def __eq__(self, other: object) -> bool:
        Sneaky.ran = True
        return False

    __hash__ = object.__hash__


async def test_message_words_are_integers_and_nothing_else(euralios_system: System) -> None:
    got: dict[str, Any] = {}

    async def prog(proc: Any) -> int:
        h1, h2 = await proc.sys.new_rendezvous()
        codes = []
        for bad in ("text", 1.5, Sneaky(), 1 << 64, -(1 << 63) - 1):
            rax, *_ = await proc.gate.syscall(abi.SEND | (h1 << 32), 7, bad, 0)
            codes.append(rax & 0xFF)
        got["codes"] = codes

        async def receiver() -> None:
            got["msg"] = await proc.sys.receive(h2)

        await proc.spawn_thread(receiver)
        await proc.sys.send(h1, Message(7, True, -1))  # a bool is an integer; so is -1
        while "msg" not in got:
            await proc.sys.yield_()
        return 0

    assert await euralios_system.run(prog) == 0
    assert got["codes"] == [abi.PARAM] * 5
    assert got["msg"].d2 == 1 and type(got["msg"].d2) is int and got["msg"].d3 == -1
    assert not Sneaky.ran


async def test_users_cannot_take_the_frames_kept_for_root() -> None:
    held = trio.Event()
    report: dict[str, Any] = {}

    async def hog(proc: Any) -> int:
        chunks = 0
        while True:
            try:
                await proc.sys.malloc(16, 0xFFFF_FFFF)  # contiguous: the frames are taken now
                chunks += 1
            except SyscallError as e:
                report["error"] = e.code
                break
        report["chunks"] = chunks
        held.set()
        await proc.sleep(60)
        return 0

    async def root_prog(proc: Any) -> int:
        chunk = await proc.malloc(32 * 4096)
        for page in range(32):
            chunk.write(page * 4096, b"root can still allocate")
        return 0

    async with boot("16M") as system:
        kernel = system.kernel
        hog_proc = system.spawn(hog, user="user", name="hog")
        with trio.fail_after(20):
            await held.wait()
        assert report["error"] == abi.MEMORY and report["chunks"] > 10
        assert kernel.frames.free_count >= kernel.memctx.reserve > 0
        assert await system.run(root_prog) == 0
        kernel.kill(hog_proc, "test over")


async def test_a_session_quota_is_handed_down_and_cannot_be_raised(euralios_system: System) -> None:
    seen: dict[str, Any] = {}

    async def grandchild(proc: Any) -> int:
        return 0

    async def session(proc: Any) -> int:
        child = await proc.exec(grandchild)
        seen["child_quota"] = kernel.processes[child.pid].space.quota
        await child.wait()
        try:
            await proc.exec(grandchild, quota=500)
        except SyscallError as e:
            seen["raise"] = e.code
        child = await proc.exec(grandchild, quota=50)
        seen["lower_quota"] = kernel.processes[child.pid].space.quota
        await child.wait()
        return 0

    async def root(proc: Any) -> int:
        child = await proc.exec(session, user="user", quota=100)
        return await child.wait()

    kernel = euralios_system.kernel
    assert await euralios_system.run(root) == 0
    assert seen == {"child_quota": 100, "raise": abi.PARAM, "lower_quota": 50}


async def test_a_fork_bomb_meets_the_process_limit_and_the_system_answers(euralios_system: System) -> None:
    system = euralios_system
    kernel = system.kernel
    kernel.user_processes = 12
    refused: list[int] = []
    peak = [0]

    def users() -> int:
        return sum(1 for p in kernel.processes.values() if p.user == "user")

    async def bomb(proc: Any) -> int:
        children = []
        for _ in range(2):
            try:
                children.append(await proc.exec(bomb))
            except SyscallError as e:
                refused.append(e.code)
            peak[0] = max(peak[0], users())
        for c in children:
            await c.wait()
        return 0

    async def root(proc: Any) -> int:
        child = await proc.exec(bomb, user="user")
        return await child.wait()

    with trio.fail_after(30):
        assert await system.run(root) == 0
    assert refused and set(refused) == {abi.MEMALLOC}
    assert peak[0] <= 12
    assert users() == 0
    assert await system.run(_zero) == 0


async def _zero(proc: Any) -> int:
    return 0
