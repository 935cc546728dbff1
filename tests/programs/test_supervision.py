"""Supervision: init restarts a crashed server with back-off, re-mounts it, and logs it; clients
see a clear error for requests in flight and work again after the restart; storms are capped."""

from __future__ import annotations

import trio

from euralios.std import SyscallError
from euralios.std import abi as A
from euralios.system_boot import FullSystem, boot_full
from machine.board import Machine
from machine.netdev.memory import MemoryBackend


def pid_of(system: FullSystem, name: str) -> int:
    p = system.process(name)
    assert p is not None, f"no {name} process"
    return p.pid


async def test_ramdisk_crash_mid_use_is_restarted_remounted_and_refilled() -> None:
    out: dict[str, object] = {}

    async def client(proc):
        f = await proc.open("/ramdisk/notes.txt", "w")
        await f.write("before the crash")
        proc.sys.gate.kernel.kill(proc.sys.gate.kernel.processes[out["ramdisk"]], "test: crash the RAM disk")
        try:
            await f.write("in flight")
        except SyscallError as e:
            out["in_flight"] = e.code
        # Once restarted (it takes the back-off delay), the path works again and /bin is back.
        for _ in range(100):
            try:
                await proc.write_file("/ramdisk/after.txt", "after")
                break
            except SyscallError:
                await proc.sleep(0.05)
        out["after"] = await proc.read_file("/ramdisk/after.txt")
        for _ in range(100):  # init refills the new RAM disk, then points /bin at it
            try:
                if "shell" in await proc.listdir("/bin"):
                    out["bin"] = True
                    break
            except SyscallError:
                pass
            await proc.sleep(0.05)
        return 0

    async with boot_full(console_program="/bin/echo") as system:
        await system.wait_for_screen(r"^> ", 10)
        out["ramdisk"] = pid_of(system, "ramdisk")
        with trio.fail_after(20):
            assert await system.run(client) == 0
        log = system.kernel.klog.text()
        await system.type("{F1}")
        await system.wait_for_screen(r"ramdisk restarted as pid \d+, mounted at /ramdisk", 10)
    assert out["in_flight"] == A.CLOSED
    assert out["after"] == b"after"
    assert out["bin"] is True
    assert "(ramdisk) killed: test: crash the RAM disk" in log


async def test_network_stack_and_nic_driver_restart_and_work_again() -> None:
    nic = MemoryBackend()
    machine = Machine("64M", nic=nic)
    async with boot_full(machine=machine, console_program="/bin/echo",
                         net_args=["--static", "10.0.2.15/24,gw=10.0.2.2"]) as system:
        await system.wait_for_screen(r"^> ", 10)
        with trio.fail_after(15):
            while system.process("tcp") is None:
                await trio.sleep(0.05)
        for name in ("tcp", "rtl8139"):
            old = pid_of(system, name)
            system.kernel.kill(system.kernel.processes[old], f"test: crash {name}")
            with trio.fail_after(15):
                while system.process(name) is None or system.process(name).pid == old:
                    await trio.sleep(0.05)
        stats: list[bytes] = []

        async def client(proc):
            for _ in range(100):
                try:
                    stats.append(await proc.read_file("/tcp/stats"))
                    return 0
                except SyscallError:
                    await proc.sleep(0.05)
            return 1

        with trio.fail_after(15):
            assert await system.run(client) == 0
        assert stats and stats[0].startswith(b"{")
        await system.type("{F1}")
        await system.wait_for_screen(r"rtl8139 restarted as pid \d+, mounted at /dev/nic", 10)


async def test_restart_storm_is_capped() -> None:
    async with boot_full(console_program="/bin/echo") as system:
        await system.wait_for_screen(r"^> ", 10)
        for _ in range(6):
            with trio.fail_after(10):
                while (p := system.process("pci")) is None:
                    await trio.sleep(0.05)
            system.kernel.kill(p, "test: storm")
            with trio.fail_after(10):
                while system.process("pci") is p:
                    await trio.sleep(0.02)
        await system.type("{F1}")
        await system.wait_for_screen(r"pci crashed 6 times in 30 s: giving up", 10)
        await trio.sleep(0.5)
        assert system.process("pci") is None
