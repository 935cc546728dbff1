"""Isolation, case by case: what a `user` program cannot reach or do, on the full system.

Each case runs a program inside a `user` login's VFS (the one login builds) and checks the
operation fails in the stated way while the system carries on.
"""

from __future__ import annotations

import trio

from euralios.std import Memory, Message, SyscallError
from euralios.std import abi as A
from euralios.system_boot import boot_full


async def as_user(system, program) -> tuple[int, dict]:
    """Start `program` as user with login's user VFS (/bin read-only, home as /ramdisk, /proc)."""
    out: dict = {}

    async def launcher(proc):
        mounts = {}
        for path, target, mode in (("/bin", "/ramdisk/bin", "r"), ("/ramdisk", "/ramdisk/user", "r+"),
                                   ("/proc", "/proc", "r")):
            mounts[path] = (await proc.open(target, mode)).handle
        child = await proc.exec(program, ["case"], vfs=mounts, user="user")
        return await child.wait()

    status = await system.run(launcher)
    return status, out


async def test_user_cannot_reach_devices_other_homes_or_the_password_store() -> None:
    seen: dict[str, int] = {}

    async def case(proc):
        for path in ("/dev/nic", "/pci", "/ramdisk/root", "/etc/passwd.json", "/ramdisk/../root"):
            try:
                await proc.open(path)
                seen[path] = 0
            except SyscallError as e:
                seen[path] = e.code
        return 0

    async with boot_full() as system:
        await system.wait_for_screen("login: ", 10)
        status, _ = await as_user(system, case)
    assert status == 0
    assert seen["/dev/nic"] == A.NOTFOUND and seen["/pci"] == A.NOTFOUND
    assert seen["/ramdisk/root"] == A.NOTFOUND and seen["/etc/passwd.json"] == A.NOTFOUND
    assert seen["/ramdisk/../root"] in (A.PARAM, A.NOTFOUND)


async def test_user_cannot_mount_over_existing_paths_or_write_bin() -> None:
    seen: dict[str, int] = {}

    async def case(proc):
        h1, h2 = await proc.sys.new_rendezvous()
        for path in ("/bin", "/ramdisk"):
            try:
                await proc.sys.mount(path, await proc.sys.copy_rendezvous(h1))
                seen[path] = 0
            except SyscallError as e:
                seen[path] = e.code
        await proc.sys.mount("/mine", h1)  # a new path in its own VFS is fine
        seen["/mine"] = 0
        try:
            await proc.write_file("/bin/evil", "x")
        except SyscallError as e:
            seen["write /bin"] = e.code
        return 0

    async with boot_full() as system:
        await system.wait_for_screen("login: ", 10)
        status, _ = await as_user(system, case)
        assert status == 0
        assert "/bin" in [p for p in system.vfs.paths()]  # the system's /bin is untouched
    assert seen == {"/bin": A.DENIED, "/ramdisk": A.DENIED, "/mine": 0, "write /bin": A.DENIED}


async def test_handles_memory_time_and_code_pages_are_protected() -> None:
    seen: dict[str, object] = {}

    async def case(proc):
        # A handle number it was not given.
        rax, *_ = await proc.gate.syscall(A.SEND | (40 << 32), 1, 0, 0)
        seen["foreign handle"] = rax & 0x7F
        # A chunk it sent away is gone from its address space.
        h1, h2 = await proc.sys.new_rendezvous()
        chunk = await proc.malloc(100)

        async def taker():
            msg = await proc.sys.receive(h2)
            await proc.sys.free(msg.d3.vaddr)

        await proc.spawn_thread(taker)
        await proc.sys.send(h1, Message(2, 100, Memory(chunk.vaddr)))
        try:
            await proc.sys.chunk_info(chunk.vaddr)
        except SyscallError as e:
            seen["sent chunk"] = e.code
        return 0

    async def poke_time(proc):
        proc.gate.store(A.KERNEL_INFO, b"\0")

    async def poke_code(proc):
        proc.gate.store(0x40_0000, b"\0")

    async def read_other(proc):
        # Another process' heap address means nothing here: it is this process' own
        # (zero-filled) page, never the other's data.
        return proc.gate.load(0x280_0060_0000, 1)[0]

    async def port_io(proc):
        await proc.sys.port_out(0x60, 0xFF)
        return 0

    async with boot_full() as system:
        await system.wait_for_screen("login: ", 10)
        assert (await as_user(system, case))[0] == 0
        assert (await as_user(system, poke_time))[0] == 1
        assert (await as_user(system, poke_code))[0] == 1
        assert (await as_user(system, read_other))[0] == 0
        assert (await as_user(system, port_io))[0] == 1
        log = system.klog()
        with trio.fail_after(5):
            await system.wait_for_screen("login: ", 5)  # the console still works
    assert seen["foreign handle"] == A.INVALID_HANDLE
    assert seen["sent chunk"] in (A.NOTFOUND, A.PARAM)
    assert "page fault at 0x0000000004fff000: protection, write, user" in log
    assert "page fault at 0x0000000000400000: protection, write, user" in log
    assert "general protection fault: port I/O without I/O privilege" in log
