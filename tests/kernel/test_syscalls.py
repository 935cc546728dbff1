"""Every syscall's success and error paths, at the register level; the VFS mount table."""

from __future__ import annotations

import json

import trio
import trio.testing

from euralios.boot import boot
from euralios.std import SyscallError
from euralios.std import abi as A
from merriwig import abi as K
from merriwig.namespace import Namespace
from merriwig.timepage import microseconds


async def run(main, **kw) -> int:
    async with boot(**kw) as system:
        return await system.run(main)


def test_std_abi_matches_the_kernel_abi() -> None:
    shared = [n for n in dir(K) if n.isupper() and hasattr(A, n)]
    assert len(shared) > 40
    for name in shared:
        assert getattr(A, name) == getattr(K, name), name
    assert A.EXIT == K.MSG_EXIT


def test_namespace_longest_whole_component_match() -> None:
    ns: Namespace[str] = Namespace()
    ns.mount("/a", "A")
    ns.mount(" /a/b/ ", "AB")
    assert ns.resolve("/a/b/c") == ("AB", 4)
    assert ns.resolve("/a/bc") == ("A", 2)
    assert ns.resolve("/a") == ("A", 2)
    for bad in ("/ab", "", "a"):
        try:
            ns.resolve(bad)
        except KeyError:
            continue
        raise AssertionError(bad)
    ns.mount("/", "ROOT")
    assert ns.resolve("/zzz") == ("ROOT", 0)
    copy = ns.copy()
    assert ns.umount("/a/b/") == "AB"
    assert copy.resolve("/a/b/c") == ("AB", 4)
    assert json.loads(ns.to_json()) == ["/a", "/"]


async def test_open_mount_umount_list_mounts_errors() -> None:
    out: dict[str, object] = {}

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()
        await proc.sys.mount(" /x/ ", h1)
        out["mounts"] = await proc.sys.list_mounts()
        out["open"] = await proc.sys.open("/x/y/z")
        for name, coro in (("empty", proc.gate.syscall(A.OPEN, 0, 0)),
                           ("missing", proc.sys.open("/nope")),
                           ("umount_missing", proc.sys.umount("/nope")),
                           ("mount_bad_handle", proc.sys.mount("/q", 77))):
            try:
                r = await coro
                out[name] = r[0] if isinstance(r, tuple) else r
            except SyscallError as e:
                out[name] = e.code
        bad = b"\xff\xfe"
        lo, top = proc.gate.stack()
        proc.gate.store(top - 2, bad)
        out["utf8"] = (await proc.gate.syscall(A.OPEN, top - 2, 2))[0]
        await proc.sys.umount("/x/")
        out["after"] = await proc.sys.list_mounts()
        return 0

    assert await run(main) == 0
    assert out["mounts"] == ["/proc", "/ramdisk", "/x"]
    assert out["open"][1] == 2  # matched "/x"
    assert out["empty"] == A.PARAM
    assert out["missing"] == A.NOTFOUND
    assert out["umount_missing"] == A.NOTFOUND
    assert out["mount_bad_handle"] == A.INVALID_HANDLE
    assert out["utf8"] == A.UTF8
    assert out["after"] == ["/proc", "/ramdisk"]


async def test_malloc_free_and_chunk_addresses() -> None:
    out: list[object] = []

    async def main(proc):
        out.append(await proc.gate.syscall(A.MALLOC, 1, 0))
        out.append(await proc.gate.syscall(A.MALLOC, 1, 0))
        out.append((await proc.gate.syscall(A.FREE, 0x280_4000_0123))[0])
        out.append((await proc.gate.syscall(A.MALLOC, 1, 0))[1])
        out.append((await proc.gate.syscall(A.FREE, 0x280_C000_0000))[0])
        out.append((await proc.gate.syscall(A.FREE, 0x1000))[0])
        out.append((await proc.gate.syscall(A.MALLOC, 0, 0))[0])
        _, v, phys, _ = await proc.gate.syscall(A.MALLOC, 3, 0xFFFF_FFFF)
        out.append(phys != 0 and phys + 3 * 4096 <= 0xFFFF_FFFF)
        return 0

    assert await run(main) == 0
    assert out[0] == (0, 0x280_4000_0000, 0, 0)
    assert out[1] == (0, 0x280_8000_0000, 0, 0)
    assert out[2] == 0
    assert out[3] == 0x280_4000_0000
    assert out[4] == A.DOUBLEFREE
    assert out[5] == A.PARAM
    assert out[6] == A.MEMORY
    assert out[7] is True


async def test_handles_copy_close_and_invalid() -> None:
    out: list[object] = []

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()
        out.append((h1, h2))
        h3 = await proc.sys.copy_rendezvous(h1)
        out.append(h3)
        out.append((await proc.gate.syscall(A.COPY_RENDEZVOUS, 1234))[0])
        out.append((await proc.gate.syscall(A.CLOSE, 1234))[0])
        await proc.sys.close(h3)
        out.append((await proc.sys.new_rendezvous())[0])  # lowest free slot reused
        return 0

    assert await run(main) == 0
    assert out[0] == (2, 3)
    assert out[1] == 4
    assert out[2] == A.INVALID_HANDLE
    assert out[3] == A.INVALID_HANDLE
    assert out[4] == 4


async def test_garbage_registers_give_param_and_kernel_survives() -> None:
    out: list[int] = []

    async def main(proc):
        for regs in ((A.MALLOC, "x", 0), (A.OPEN, -5, 10), (A.RECEIVE, None), (A.SEND | (55 << 32), 1, 2, 3), (A.DEBUG_WRITE, -5, 3),
                     (0x77,), (A.AWAIT_INTERRUPT, 3, 0), (A.AWAIT_INTERRUPT, 0, 0), (A.EXEC, 0, 0, 0),
                     (A.FORK_THREAD, 5)):
            out.append((await proc.gate.syscall(*regs))[0] & 0x7F)
        return 0

    async with boot() as system:
        assert await system.run(main) == 0
        assert system.kernel.processes  # the console driver still runs
    assert out[0] == A.PARAM
    assert all(code != 0 for code in out), out


async def test_exec_parameters_vfs_modes_args_env_and_errors() -> None:
    seen: dict[str, object] = {}

    async def child(proc):
        seen[proc.args[0]] = (proc.args, proc.env, await proc.mounts())
        return 0

    async def main(proc):
        a1, a2 = await proc.sys.new_rendezvous()
        await proc.sys.mount("/a", a1)
        b1, b2 = await proc.sys.new_rendezvous()
        await proc.sys.mount("/b", b1)
        await proc.run(child, ["copy", "x y"], vfs="copy", env={"PWD": "/a"})
        c = await proc.exec(child, ["shared"], vfs="shared")
        await c.wait()
        await proc.run(child, ["new"], vfs="new")
        h1, h2 = await proc.sys.new_rendezvous()
        await proc.run(child, ["mounted"], vfs={"/only": h1})
        for params in (b"Z", b"-/nope:"):
            stdin = await proc.sys.copy_rendezvous(0)
            stdout = await proc.sys.copy_rendezvous(1)
            try:
                await proc.sys.exec(child, stdin, stdout, params)
            except SyscallError as e:
                seen[params.decode()] = e.code
        try:
            await proc.sys.exec(b"", 0, 1)
        except SyscallError as e:
            seen["empty"] = e.code
        seen["parent"] = await proc.mounts()
        return 0

    assert await run(main) == 0
    assert seen["copy"] == (["copy", "x y"], {"PWD": "/a"}, ["/proc", "/ramdisk", "/a", "/b"])
    assert seen["shared"][2] == ["/proc", "/ramdisk", "/a", "/b"]
    assert seen["new"][2] == []
    assert seen["mounted"][2] == ["/only"]
    assert seen["Z"] == A.PARAM and seen["-/nope:"] == A.PARAM and seen["empty"] == A.PARAM
    assert seen["parent"] == ["/proc", "/ramdisk", "/a", "/b"]


async def test_io_privilege_is_inherited_never_gained() -> None:
    out: list[int] = []

    async def child(proc):
        try:
            await proc.sys.port_in(0x64)
            return 0
        except SyscallError:
            return 3

    async def main(proc):
        out.append(await proc.run(child, io=True))
        return 0

    async with boot() as system:
        assert await system.run(main) == 0  # main itself has no I/O privilege
        assert out == [1]  # so its child was killed on port I/O: privilege not gained
        assert "general protection fault" in system.klog()


async def test_time_page_formula_and_clock_advances() -> None:
    assert microseconds(655360, 0, 2275) == 549254
    assert microseconds(65536, 74547200, 2275) == 82388
    times: list[float] = []

    async def main(proc):
        times.append(proc.now())
        await proc.sleep(0.2)  # the behaviour under test: the clock across a real sleep
        times.append(proc.now())
        return 0

    assert await run(main) == 0
    assert 0.2 <= times[1] - times[0] < 1.0  # a full sleep, not cut short by a timer tick


async def test_debug_write_goes_to_the_kernel_log() -> None:
    async def main(proc):
        await proc.sys.debug_write("hello klog")
        return 0

    async with boot() as system:
        assert await system.run(main) == 0
        assert "hello klog" in system.klog()


async def test_fork_thread_limit_is_64_live_threads_and_slots_are_reused() -> None:
    out: list[object] = []

    async def main(proc):
        gate = proc.gate
        done = []
        release = trio.Event()

        async def short():
            done.append(1)

        async def parked():
            await release.wait()

        tids = []
        for _ in range(63):
            tids.append((await gate.syscall(A.FORK_THREAD, parked, ()))[1])
        out.append((await gate.syscall(A.FORK_THREAD, parked, ()))[0])
        out.append(len(set(tids)))
        release.set()
        await trio.testing.wait_all_tasks_blocked()  # the 63 have ended
        for _ in range(100):  # more than 64 over the lifetime: slots are reused
            await gate.syscall(A.FORK_THREAD, short, ())
            await trio.testing.wait_all_tasks_blocked()  # that one has ended
        out.append(len(done))
        return 0

    assert await run(main) == 0
    assert out == [A.MEMALLOC, 63, 100]


async def test_trace_writes_perfetto_json(tmp_path) -> None:
    path = tmp_path / "trace.json"

    async def main(proc):
        await proc.print("traced")
        return 0

    async with boot(trace=str(path)) as system:
        assert await system.run(main) == 0
    data = json.loads(path.read_text())
    names = {e["name"] for e in data["traceEvents"]}
    assert {"send_receive", "malloc", "receive"} <= names
    assert any(e["ph"] == "M" and e["args"]["name"] == "main" for e in data["traceEvents"])


async def test_map_phys_maps_device_memory_for_drivers_only() -> None:
    out: dict[str, object] = {}

    async def driver(proc):
        vaddr = await proc.sys.map_phys(0xB8000, 1)
        proc.gate.store(vaddr, b"D\x1f")
        for name, args in (("ram", (0x200000, 1)), ("unaligned", (0xB8001, 1))):
            try:
                await proc.sys.map_phys(*args)
            except SyscallError as e:
                out[name] = e.code
        return 0

    async def plain(proc):
        try:
            await proc.sys.map_phys(0xB8000, 1)
        except SyscallError as e:
            return e.code
        return 0

    async with boot() as system:
        assert await system.run(driver, io=True) == 0
        assert system.machine.memory.read(0xB8000, 2) == b"D\x1f"
        assert await system.run(plain) == A.PARAM
    assert out == {"ram": A.PARAM, "unaligned": A.PARAM}


async def test_port_vio_does_a_vector_of_port_accesses_in_order() -> None:
    """PORT_VIO (MINIX's vdevio): ins and outs in order in one call, each "in" reading what the
    outs before it set up; a bad entry stops the vector with PARAM after the ones before it; an
    empty or oversized vector or a bad pointer is PARAM; without I/O privilege it kills."""
    seen: dict[str, object] = {}

    async def driver(proc):
        sys = proc.sys
        # VGA CRTC: index 0x3D4, data 0x3D5. Set the cursor's low byte, read it back, twice.
        seen["vio"] = await sys.port_vio([(0x3D4, 1, 0x0F), (0x3D5, 1, 0x42), (0x3D4, 1, 0x0F), (0x3D5, 1, None),
                                          (0x3D5, 1, 0x17), (0x3D5, 1, None), (0x3D4, 1, None)])
        seen["single"] = await sys.port_in(0x3D5)
        seen["outs_only"] = await sys.port_vio([(0x3D4, 1, 0x0E), (0x3D5, 1, 0x01)])
        seen["high"] = await sys.port_in(0x3D5)
        # A bad size stops the vector: the entry before it was done, the one after it was not.
        lo, top = proc.gate.stack()
        raw = bytes.fromhex("d403 01 01 0f000000" "d503 03 01 99000000" "d503 01 01 55000000")
        addr = top - len(raw)
        proc.gate.store(addr, raw)
        rax, done, _, _ = await proc.gate.syscall(A.PORT_VIO, addr, 3)
        seen["bad"] = (rax, done, await sys.port_in(0x3D4), await sys.port_in(0x3D5))
        seen["empty"] = (await proc.gate.syscall(A.PORT_VIO, addr, 0))[0]
        seen["big"] = (await proc.gate.syscall(A.PORT_VIO, addr, A.PORT_VIO_MAX + 1))[0]
        seen["pointer"] = (await proc.gate.syscall(A.PORT_VIO, 0x10, 1))[0]
        return 0

    async def sneaky(proc):
        await proc.sys.port_vio([(0x3D4, 1, None)])
        return 0

    async with boot() as system:
        assert await system.run(driver, io=True) == 0
        assert await system.run(sneaky) == 1
        assert "general protection fault: port I/O without I/O privilege" in system.klog()
    assert seen["vio"] == [0x42, 0x17, 0x0F]
    assert seen["single"] == 0x17
    assert seen["outs_only"] == [] and seen["high"] == 0x01
    assert seen["bad"] == (A.PARAM, 1, 0x0F, 0x17)
    assert seen["empty"] == seen["big"] == seen["pointer"] == A.PARAM


async def test_reboot_is_root_only_and_drives_the_machine_reset_and_power_off() -> None:
    async with boot() as system:
        out: dict[str, object] = {}

        async def user_main(proc):
            for cmd in (A.REBOOT_QUERY, A.REBOOT_RESTART, A.REBOOT_POWER_OFF):
                try:
                    await proc.sys.reboot(cmd)
                except SyscallError as e:
                    out.setdefault("user", []).append(e.code)  # type: ignore[union-attr]
            out["bad"] = (await proc.gate.syscall(A.REBOOT, 7))[0]
            return 0

        assert await system.run(user_main, user="user") == 0
        assert out["user"] == [A.NOT_PERMITTED] * 3 and out["bad"] == A.PARAM
        assert system.machine.halt_reason is None

        async def root_main(proc):
            await proc.sys.reboot(A.REBOOT_QUERY)
            out["query"] = system.machine.halt_reason
            await proc.sys.reboot(A.REBOOT_RESTART)  # never returns

        p = system.spawn(root_main)
        with trio.fail_after(10):
            await system.machine.halted.wait()
        assert out["query"] is None and system.machine.halt_reason == "reset"
        assert "reboot: Restarting system" in system.klog()
        system.kernel.kill(p, "test over")
    async with boot() as system:
        async def off(proc):
            await proc.sys.reboot(A.REBOOT_POWER_OFF)

        system.spawn(off)
        with trio.fail_after(10):
            await system.machine.halted.wait()
        assert system.machine.halt_reason == "poweroff"


async def test_stop_parks_threads_at_their_next_syscall_and_cont_releases_them() -> None:
    async with boot() as system:
        kernel = system.kernel
        count = [0]

        async def spinner(proc):
            while True:
                await proc.sys.yield_()
                count[0] += 1

        p = system.spawn(spinner)
        while count[0] < 10:
            await trio.sleep(0)
        kernel.stop()
        await trio.testing.wait_all_tasks_blocked()
        seen = count[0]
        assert kernel.parked == 1 and [t.state.value for t in p.threads.values()] == ["stopped"]
        await trio.testing.wait_all_tasks_blocked()
        assert count[0] == seen
        kernel.cont()
        while count[0] < seen + 10:
            await trio.sleep(0)
        assert kernel.parked == 0
        kernel.kill(p, "test over")
