"""The monitor on a booted system, driven through its unix socket as a script would: status,
stop/cont (the kernel's counters, not the clock, show nothing ran), x/xp, sendkey, screendump,
system_reset, quit; and the reboot and shutdown programs typed as root and as user."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from euralios.monitor.commands import PROMPT
from euralios.monitor.server import serve_unix
from euralios.monitor.vm import Vm
from euralios.pytest_plugin import wait_until
from euralios.std import Chunk
from euralios.system_boot import FullSystem, boot_full
from machine.board import Machine
from merriwig.process import ThreadState

ROOT = Path(__file__).resolve().parents[2]


class Client:
    """A monitor connection: send a line, get what came back before the next prompt."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""

    async def _until_prompt(self) -> str:
        with trio.fail_after(10):
            while not self.buf.endswith(PROMPT.encode()):
                data = await self.stream.receive_some(65536)
                assert data, "the monitor closed the connection"
                self.buf += data
        text, self.buf = self.buf[: -len(PROMPT)].decode(), b""
        return text

    async def cmd(self, line: str) -> str:
        await self.stream.send_all(line.encode() + b"\n")
        return await self._until_prompt()


@pytest.fixture
async def vm(nursery: trio.Nursery) -> AsyncIterator[Vm]:
    v = Vm(lambda wire: Machine("64M", nic=wire), lambda m: boot_full(machine=m))
    nursery.start_soon(v.run)
    await v.booted()
    yield v
    v.quit()


@pytest.fixture
async def mon(vm: Vm, nursery: trio.Nursery, tmp_path: Path) -> Client:
    path = str(tmp_path / "monitor.sock")
    await nursery.start(serve_unix, vm, path)
    client = Client(await trio.open_unix_socket(path))
    banner = await client._until_prompt()
    assert banner == "EuraliOS monitor - type 'help' for more information\n"
    return client


async def login(vm: Vm, name: str) -> FullSystem:
    await vm.wait_for_screen(r"login:$", 10)
    system = vm.system
    assert system is not None
    await system.type(f"{name}\n")
    await vm.wait_for_screen(r"^#$" if name == "root" else r"^\$$", 10)
    return system


def syscalls(proc: Any) -> int:
    return sum(t.syscalls for t in proc.threads.values())


async def test_status_stop_and_cont_hold_every_thread_and_the_timer(vm: Vm, mon: Client) -> None:
    assert await mon.cmd("info status") == "VM status: running\n"
    system = vm.system
    assert system is not None
    value = 0x1122_3344_5566_7788
    where: dict[str, int] = {}

    async def ticker(proc: Any) -> int:
        vaddr, _ = await proc.sys.malloc(1)
        Chunk(proc.sys, vaddr, 4096).write(0, value.to_bytes(8, "little"))
        where["vaddr"] = vaddr
        while True:
            await proc.sleep(0.002)

    proc = system.spawn(ticker, name="ticker")
    await wait_until(lambda: syscalls(proc) > 20, timeout=10, what="the ticker ticking")

    assert await mon.cmd("stop") == ""
    assert await mon.cmd("info status") == "VM status: paused\n"
    await wait_until(lambda: all(t.state is ThreadState.PARKED for t in proc.threads.values()),
                     timeout=10, what="the ticker parked at its next syscall")
    ticks, timer_irqs, before = system.machine.pit.ticks, system.machine.irq.counts[0], syscalls(proc)
    await mon.cmd("sendkey a")  # the keyboard raises IRQ 1; it waits at the PIC
    await trio.testing.wait_all_tasks_blocked(0.05)
    assert syscalls(proc) == before
    assert (system.machine.pit.ticks, system.machine.irq.counts[0]) == (ticks, timer_irqs)
    assert system.machine.irq.pending(1)
    assert "stopped" in await mon.cmd("info processes")

    # While stopped the memory is still there to look at: x through the ticker's page tables,
    # xp at the physical address they give.
    vaddr = where["vaddr"]
    out = await mon.cmd(f"x/2xg {proc.pid}:{vaddr:#x}")
    assert out == f"{vaddr:016x}: 0x1122334455667788 0x0000000000000000\n"
    leaf = system.machine.mmu.walk(proc.space.root, vaddr)[-1][2]
    phys = leaf & 0x000F_FFFF_FFFF_F000
    assert await mon.cmd(f"xp/2xw {phys:#x}") == f"{phys:016x}: 0x55667788 0x11223344\n"
    assert await mon.cmd(f"cpu {proc.pid}") == ""
    assert await mon.cmd(f"x/1xb {vaddr + 7:#x}") == f"{vaddr + 7:016x}: 0x11\n"
    tlb = await mon.cmd("info tlb")
    assert re.search(rf"^{vaddr:016x}: {phys:016x} X--DA--UW$", tlb, re.M), tlb
    mem = await mon.cmd(f"info mem {proc.pid}")
    ranges = [(int(a, 16), int(b, 16), prot) for a, b, _, prot in re.findall(
        r"^([0-9a-f]{16})-([0-9a-f]{16}) ([0-9a-f]{16}) (\S{3})$", mem, re.M)]
    assert [prot for a, b, prot in ranges if a <= vaddr < b] == ["urw"], mem  # the heap page
    assert await mon.cmd("x/2xg 0:0x1000") == "no process 0\n"
    assert await mon.cmd(f"x/1xg {proc.pid}:0x10") == "0000000000000010: Cannot access memory\n"

    assert await mon.cmd("cont") == ""
    assert await mon.cmd("info status") == "VM status: running\n"
    await wait_until(lambda: syscalls(proc) > before + 5, timeout=10, what="the ticker ticking again")
    await vm.wait_for_screen(r"login: a$", 10)  # the held key arrived after cont


async def test_sendkey_screendump_pci_and_bad_input(vm: Vm, mon: Client, tmp_path: Path) -> None:
    await vm.wait_for_screen(r"login:$", 10)
    for key in ("r", "o", "o", "t", "ret"):
        assert await mon.cmd(f"sendkey {key}") == ""
    await vm.wait_for_screen(r"^#$", 10)
    assert await mon.cmd("sendkey shift-e") == ""
    await vm.wait_for_screen(r"^# E$", 10)
    dump = tmp_path / "screen.txt"
    assert await mon.cmd(f"screendump {dump}") == ""
    assert vm.system is not None
    assert dump.read_text() == vm.system.screen.render() + "\n"
    assert "login: root" in dump.read_text()

    assert await mon.cmd("sendkey ctrl-nokey") == "invalid parameter: nokey\n"
    assert await mon.cmd("screendump /nonexistent/dir/x") == \
        "Could not open '/nonexistent/dir/x': No such file or directory\n"
    assert await mon.cmd("frobnicate") == "unknown command: 'frobnicate'\n"
    assert await mon.cmd("info frob") == "unknown command: 'info frob'\n"
    assert await mon.cmd("x/4z 0x1000") == "invalid char in format: 'z'\n"
    assert await mon.cmd("") == ""
    pci = await mon.cmd("info pci")
    assert "  Bus  0, device   1, function 3:\n    Bridge: PCI device 8086:7113\n" in pci
    assert await mon.cmd("info network") == ""  # no network card, as QEMU with -nic none
    assert (await mon.cmd("info irq")).startswith("IRQ statistics for isa-i8259:\n")
    assert "info tlb [PID] -- " in await mon.cmd("help info")
    assert "system_reset -- " in await mon.cmd("help")


async def test_system_reset_boots_afresh_and_quit_ends_it(vm: Vm, mon: Client) -> None:
    first = await login(vm, "root")
    await first.type("echo before\n")
    await vm.wait_for_screen(r"^before$", 10)
    assert await mon.cmd("system_reset") == ""
    second = await vm.booted(2)
    assert second is not first and second.machine is not first.machine
    await vm.wait_for_screen(r"login:$", 10)
    assert "before" not in second.screen.render()
    assert await mon.cmd("info status") == "VM status: running\n"
    assert await mon.cmd("quit") == ""
    with trio.fail_after(10):
        await vm.ended.wait()
    assert (vm.status, vm.reason, vm.boots) == (0, "quit", 2)


async def test_reboot_and_shutdown_as_root(vm: Vm) -> None:
    system = await login(vm, "root")
    await system.type("reboot\n")
    again = await vm.booted(2)
    await vm.wait_for_screen(r"login:$", 10)
    assert "reboot: Restarting system" in system.klog()
    assert again.machine.halt_reason is None and system.machine.halt_reason == "reset"
    system = await login(vm, "root")
    await system.type("shutdown\n")
    with trio.fail_after(10):
        await vm.ended.wait()
    assert (vm.status, vm.reason) == (0, "poweroff")
    assert "System halted." in system.screen.render()


async def test_reboot_and_shutdown_are_refused_to_a_user(vm: Vm) -> None:
    system = await login(vm, "user")
    for program in ("reboot", "shutdown"):
        await system.type(f"{program}\n")
        await vm.wait_for_screen(rf"^{program}: operation not permitted\n\[{program}: exit status 1\]\n\$$", 10)
    assert vm.boots == 1 and not vm.ended.is_set() and system.machine.halt_reason is None


def test_monitor_on_stdio_and_quit_exit_status() -> None:
    r = subprocess.run([sys.executable, "-m", "euralios", "--headless", "--net", "none", "--monitor", "stdio"],
                       cwd=ROOT, input="info status\nstop\ninfo status\nquit\n", capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("EuraliOS monitor - type 'help' for more information\n(qemu) VM status: running\n"
                               "(qemu) (qemu) VM status: paused\n(qemu) ")
    bad = subprocess.run([sys.executable, "-m", "euralios", "--monitor", "stdio"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode == 2 and "needs --headless" in bad.stderr
