"""Booting a system from Python: `async with euralios.boot(...) as system`.

This is the host side: it builds the emulated machine, starts the kernel with euralios.std's
program entry, starts the console driver and hands scripts and tests a `System` to run programs
on, type keys into and read the screen of.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio
import trio.testing

from euralios.std.runtime import entry
from machine.board import Machine
from machine.netdev import Backend
from machine.share.options import ShareOption
from merriwig.confine.service import Confinement, Isolation
from merriwig.kernel import Kernel
from merriwig.namespace import Namespace
from merriwig.process import Process

ROOT = Path(__file__).resolve().parent.parent


# The host's own services, by module: the drivers and servers init (or the small system) starts,
# and login. Their images are trusted: started by root or the host they run in-process, as the
# trusted base (DESIGN.md 1b); every other program image runs confined, even root's.
SERVICES = ("drivers/keyboard.py", "drivers/console.py", "drivers/serial.py", "drivers/pci.py",
            "drivers/rtl8139.py", "drivers/virtio_net.py", "drivers/virtio_9p.py", "vfs/ramdisk.py",
            "net/server.py", "programs/login.py")


# The driver of each network card model (machine.board's names): its module and process name.
NIC_DRIVERS = {"rtl8139": ("drivers/rtl8139.py", "rtl8139"), "virtio-net-pci": ("drivers/virtio_net.py", "virtio_net")}


def program_source(module_path: str) -> bytes:
    """The source bytes of a user-space program module, e.g. 'drivers/serial.py'."""
    return (ROOT / module_path).read_bytes()


class System:
    """A booted EuraliOS: the machine, the kernel, and helpers for scripts and tests."""

    def __init__(self, machine: Machine, kernel: Kernel, nursery: trio.Nursery) -> None:
        self.machine = machine
        self.kernel = kernel
        self.nursery = nursery
        self.vfs: Namespace = Namespace()
        self.vfs.holders = 1  # the host's own hold: the system VFS outlives every process
        self.console_out = bytearray()
        self._console_changed = trio.Event()
        self._output_sinks: list[Callable[[bytes], None]] = []
        self.console: Any = None  # rendezvous the serial console driver serves
        self.keyin: Any = None  # rendezvous the console driver sends typed keys to
        self._pci = False  # drivers/pci started at /pci (by start_network or start_shares)
        machine.serial.output = self._on_serial

    # ------------------------------------------------------------------ console
    def _on_serial(self, data: bytes) -> None:
        self.console_out += data
        for sink in self._output_sinks:
            sink(data)
        ev = self._console_changed
        self._console_changed = trio.Event()
        ev.set()

    def add_output_sink(self, fn: Callable[[bytes], None]) -> None:
        self._output_sinks.append(fn)

    def output(self) -> str:
        """Everything written to the serial console so far."""
        return self.console_out.decode("utf-8", "replace")

    async def wait_for_output(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """Wait until the serial console output matches `pattern`."""
        rx = re.compile(pattern)
        with trio.fail_after(timeout):
            while True:
                m = rx.search(self.output())
                if m:
                    return m
                await self._console_changed.wait()

    def feed_input(self, text: str | bytes) -> None:
        """Type into the serial console (the stdin of programs started with run())."""
        self.machine.serial.feed(text.encode() if isinstance(text, str) else text)

    # ------------------------------------------------------------------ programs
    def start_ramdisk(self) -> None:
        """A RAM disk mounted at /ramdisk (the small system of `euralios run`)."""
        r = self.kernel.new_rendezvous(refs=2)  # the mount's reference and the server's stdin
        self.kernel.spawn(program_source("vfs/ramdisk.py"), name="ramdisk", args=["ramdisk", "--quiet"], stdin=r,
                          vfs=self.vfs)
        self.vfs.mount("/ramdisk", r)

    def start_network(self, tcp_args: list[str] | None = None, *, log: str = "console") -> None:
        """The network of the small system: drivers/pci at /pci, the card's driver (NIC_DRIVERS) at /dev/nic and
        the TCP/IP stack (net/server.py) at /tcp, as the full boot's init starts them.

        Needs a machine with a network card (`boot(nic=backend)`). tcp_args: the stack's options
        (e.g. ["--static", "10.0.2.15/24,gw=10.0.2.2"]; DHCP by default). log: where their
        start-up lines go, "console" (the serial console, like the rest of a boot log) or "klog"
        (the kernel log only, so `euralios run` output stays the program's own)."""
        if self.machine.nic is None:
            raise RuntimeError("start_network needs a network card: boot(nic=backend)")
        sink = None
        if log == "klog":
            r = self.kernel.new_rendezvous(refs=1)
            self.kernel.spawn(_klog_sink, name="netlog", args=["netlog"], stdin=r, vfs=self.vfs)
            sink = r
        services = [] if self._pci else [("drivers/pci.py", "/pci", "pci", ["pci"], True)]
        self._pci = True
        driver = NIC_DRIVERS[self.machine.card]
        services += [(driver[0], "/dev/nic", driver[1], [driver[1]], True),
                     ("net/server.py", "/tcp", "tcp", ["tcp", *(tcp_args or [])], False)]
        for path, mount, name, args, io in services:
            r = self.kernel.new_rendezvous(refs=2)  # the mount's reference and the server's stdin
            self.vfs.mount(mount, r)
            if sink is not None:
                sink.incref()
            self.spawn(program_source(path), args, io=io, name=name, stdin=r, stdout=sink)

    def _log_sink(self, log: str) -> Any:
        """Where one driver's start-up lines go: None (the serial console) or, for "klog", a
        rendezvous (its reference for the driver's stdout) whose lines end in the kernel log."""
        if log != "klog":
            return None
        r = self.kernel.new_rendezvous(refs=2)  # the sink's stdin and the driver's stdout
        self.kernel.spawn(_klog_sink, name="netlog", args=["netlog"], stdin=r, vfs=self.vfs)
        return r

    def start_pci(self, *, log: str = "console") -> None:
        """drivers/pci at /pci, once (start_network and start_shares both need it)."""
        if self._pci:
            return
        self._pci = True
        r = self.kernel.new_rendezvous(refs=2)
        self.vfs.mount("/pci", r)
        self.spawn(program_source("drivers/pci.py"), ["pci"], io=True, name="pci", stdin=r,
                   stdout=self._log_sink(log))

    def start_shares(self, *, log: str = "console") -> None:
        """The small system's host folders: drivers/virtio_9p.py for each of the machine's
        shares, mounted at /host/TAG, as the full boot's init starts them. log: as for
        start_network."""
        if not self.machine.shares:
            return
        self.start_pci(log=log)
        for share in self.machine.shares:
            r = self.kernel.new_rendezvous(refs=2)  # the mount's reference and the driver's stdin
            self.vfs.mount(f"/host/{share.tag}", r)
            args = ["virtio_9p", share.tag, *(["--readonly"] if share.readonly else [])]
            self.spawn(program_source("drivers/virtio_9p.py"), args, io=True, name=f"9p-{share.tag}", stdin=r,
                       stdout=self._log_sink(log))

    async def _start_console(self, tty: bool = False) -> None:
        k = self.kernel
        self.console = k.new_rendezvous(refs=1)  # the host keeps one reference
        self.keyin = k.new_rendezvous(refs=1)
        self.console.incref()
        self.keyin.incref()
        k.spawn(program_source("drivers/serial.py"), name="serial", stdin=self.console, stdout=self.keyin,
                io=True, vfs=self.vfs, args=["serial", "--tty"] if tty else ["serial"])

    def spawn(
        self,
        program: bytes | str | Callable[..., Awaitable[Any]],
        args: list[str] | None = None,
        *,
        user: str = "root",
        io: bool = False,
        name: str = "",
        quota: int | None = None,
        stdin: Any = None,
        stdout: Any = None,
    ) -> Process:
        """Start a program on the serial console (stdin/stdout) with the system VFS."""
        if isinstance(program, str):
            path = Path(program)
            image: Any = path.read_bytes()
            name = name or path.stem
        else:
            image = program
            name = name or getattr(program, "__name__", "program")
        if stdin is None:
            self.keyin.incref()
            stdin = self.keyin
        if stdout is None:
            self.console.incref()
            stdout = self.console
        return self.kernel.spawn(image, name=name, args=args if args is not None else [name or "program"],
                                 stdin=stdin, stdout=stdout, vfs=self.vfs, io=io, user=user, quota=quota)

    async def run(self, program: bytes | str | Callable[..., Awaitable[Any]], args: list[str] | None = None,
                  *, capture: bool = True, **kw: Any) -> RunResult:
        """Run a program to completion on the serial console; its status and what it printed.

        program: the source bytes of a program, a path to one, or an `async def main(proc)`
        (run in-process, as host scripting); args: its argv (default [name]); the keywords
        are `spawn`'s (user, io, name, quota, stdin, stdout).

        The result is a RunResult: the exit status as an int (1 if it was killed, so
        `assert await system.run(main) == 0` reads as before) with `.status` and `.output`,
        the text the program wrote on its stdout (its prints, a crash report), taken from
        its own stdout, not the console shared with every other program. The text still
        reaches the console (`output()`). capture=False: the program writes to the console
        directly and `.output` is ""."""
        if not capture or kw.get("stdout") is not None:
            proc = self.spawn(program, args, **kw)
            await proc.ended.wait()
            assert proc.status is not None
            return RunResult(proc.status, "")
        out = self.kernel.new_rendezvous(refs=2)  # the program's stdout and the tee's stdin
        self.console.incref()
        captured = bytearray()
        tee_done = trio.Event()
        self.kernel.spawn(_tee(captured, tee_done), name="run-output", args=["run-output"], stdin=out,
                          stdout=self.console, vfs=self.vfs)
        proc = self.spawn(program, args, stdout=out, **kw)
        await proc.ended.wait()
        assert proc.status is not None
        # What it wrote is in: every WRITE it made was answered, and the tee ends when the last
        # holder of its stdout does; a child still holding it must not hold us up, so an idle
        # system (the tee waiting with nothing in flight) is as good.
        async with trio.open_nursery() as nursery:
            async def settled() -> None:
                await trio.testing.wait_all_tasks_blocked(0.005)
                nursery.cancel_scope.cancel()

            async def ended() -> None:
                await tee_done.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(settled)
            nursery.start_soon(ended)
        return RunResult(proc.status, captured.decode("utf-8", "replace"))

    async def network_ready(self, timeout: float = 30.0) -> str:
        """Wait until the TCP/IP stack has an address -- a DHCP lease, its static address, or
        its fallback -- and return it ("10.0.2.15/24"). Woken by what the stack prints (on
        the console, or the kernel log with start_network(log="klog")), never by a clock;
        TimeoutError after `timeout` seconds saying what the stack last said."""
        woke = [trio.Event()]

        def wake(_: object) -> None:
            woke[0].set()

        self.add_output_sink(wake)
        self.kernel.klog.listeners.append(wake)
        try:
            with trio.move_on_after(timeout):
                while True:
                    woke[0] = trio.Event()
                    for text in (self.output(), self.klog()):
                        m = NET_READY.search(text)
                        if m:
                            return m.group("address")
                    await woke[0].wait()
        finally:
            self._output_sinks.remove(wake)
            self.kernel.klog.listeners.remove(wake)
        said = [line for line in (self.output() + "\n" + self.klog()).splitlines() if "[tcp]" in line]
        raise TimeoutError(f"the network was not ready after {timeout:g} s; the stack said: "
                           + (" | ".join(said[-3:]) if said else "nothing (is it started? start_network())"))

    # ------------------------------------------------------------------ introspection
    def stats(self) -> dict[str, Any]:
        return self.kernel.stats()

    def klog(self) -> str:
        return self.kernel.klog.text()


class RunResult(int):
    """What System.run returns: the exit status, as the int it is (so `== 0` and `assert
    status == 0` work as they always did), with `.status` and `.output` (what it printed)."""

    output: str

    def __new__(cls, status: int, output: str = "") -> RunResult:
        self = super().__new__(cls, status)
        self.output = output
        return self

    @property
    def status(self) -> int:
        return int(self)

    def __repr__(self) -> str:
        return f"RunResult(status={int(self)}, output={self.output!r})"


# What the stack prints once it has an address (net/server.py's report_events).
NET_READY = re.compile(r"\[tcp\] (?:DHCP|static|no DHCP answer; using static)[: ]+(?P<address>[0-9.]+/\d+)")


def _tee(into: bytearray, done: trio.Event) -> Callable[[Any], Awaitable[int]]:
    """A stdout for System.run: every request goes on to the console (handle 1) as it came,
    its answer back to the program, and the text of each WRITE and CHAR is kept in `into`.
    `done` is set when the last holder of this stdout is gone."""

    async def run_output(proc: Any) -> int:
        from euralios.std import STDIN, STDOUT, Chunk, Memory, Message, SyscallError, abi, discard

        sys = proc.sys
        try:
            while True:
                try:
                    msg = await sys.receive(STDIN)
                except SyscallError:
                    return 0
                if msg.tag == abi.WRITE and isinstance(msg.d3, Memory) and isinstance(msg.d2, int):
                    try:
                        chunk = await Chunk.received(sys, msg.d3)
                        if 0 < msg.d2 <= chunk.size:
                            into.extend(chunk.read(0, msg.d2))
                    except SyscallError:
                        pass
                elif msg.tag == abi.CHAR and isinstance(msg.d2, int) and 0 < msg.d2 < 0x110000:
                    into.extend(chr(msg.d2).encode("utf-8", "replace"))
                onward = Message(msg.tag, msg.d2, msg.d3)
                answer: Message = Message(abi.OK, msg.d2 if isinstance(msg.d2, int) else 0, 0)
                try:
                    if msg.reply:
                        answer = await sys.send_receive(STDOUT, onward)
                    else:
                        await sys.send(STDOUT, onward)
                except SyscallError as e:
                    await discard(sys, e.message)
                    answer = Message(abi.ERROR, e.code, 0)
                if msg.reply:
                    try:
                        await sys.send(STDIN, answer)
                    except SyscallError:
                        pass
        finally:
            done.set()

    return run_output


async def _klog_sink(proc: Any) -> int:
    """A stdout that writes into the kernel log: what start_network(log="klog") gives drivers."""
    from euralios.std import STDIN, Chunk, Memory, Message, SyscallError, abi

    sys = proc.sys
    while True:
        try:
            msg = await sys.receive(STDIN)
        except SyscallError:
            return 0
        if isinstance(msg.d3, Memory):
            n = msg.d2 if isinstance(msg.d2, int) else 0
            text = ""
            try:
                chunk = await Chunk.received(sys, msg.d3)
                if 0 < n <= chunk.size:  # never read past the chunk
                    text = chunk.read(0, n).decode("utf-8", "replace")
                await sys.free(msg.d3.vaddr)
            except SyscallError:
                pass
            for line in text.splitlines():
                if line.strip():
                    await sys.debug_write(line)
        if msg.reply:
            try:
                await sys.send(STDIN, Message(abi.OK, msg.d2 if isinstance(msg.d2, int) else 0, 0))
            except SyscallError:
                pass


@asynccontextmanager
async def boot(
    mem: str | int = "64M",
    *,
    quota: int | None = None,
    watchdog: float = 2.0,
    trace: str | None = None,
    slice_ms: float = 10.0,
    machine: Machine | None = None,
    system_class: type[System] = System,
    nic: Backend | None = None,
    mac: str | None = None,
    card: str = "rtl8139",
    ramdisk: bool = True,
    isolation: Isolation | str = Isolation.HOST,
    serial_tty: bool = False,
    shares: list[ShareOption] | tuple[ShareOption, ...] = (),
) -> AsyncIterator[System]:
    """Boot a small system: kernel, serial console driver. Stops everything on exit.

    machine: a Machine the caller built (a front-end that must show its screen from the start);
    system_class: a System subclass to hand back (euralios.system_boot's FullSystem);
    nic, mac, card: a frame backend (machine.netdev) to wire a network card to, its MAC address
    and which card (``--nic``: "rtl8139", the default, or "virtio-net-pci"/"virtio"), when no
    machine is given. The NIC drivers are not started here (start_network does that);
    ramdisk: mount a RAM disk at /ramdisk (the full boot's init starts its own);
    serial_tty: the serial line is a terminal from the start (a login runs on it: `--serial`).
    shares: host folders (machine.share.options.ShareOption, or parse_share("DIR,tag=x")) the
    machine gets a virtio-9p device for, when no machine is given; the full boot's init mounts
    each at /host/TAG (this small system mounts none: see System.start_shares).
    isolation: "host" (programs from files run in confined host workers) or "none" (everything
    in the kernel's interpreter, unconfined: SECURITY.md)."""
    machine = machine or Machine(mem, nic=nic, mac=mac, card=card, shares=shares)
    kernel = Kernel(machine, entry, quota=quota, watchdog=watchdog, slice_ms=slice_ms, trace=trace is not None,
                    confinement=Confinement(Isolation(isolation)))
    for service in SERVICES:
        kernel.confinement.trust(program_source(service))  # type: ignore[union-attr]
    if kernel.tracer is not None:  # the 9P each host folder's device serves, decoded, in the trace
        for device in machine.ninep:
            device.on_exchange = partial(kernel.tracer.ninep, f"virtio-9p {device.tag}")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(machine.run)
        await nursery.start(kernel.run)
        system = system_class(machine, kernel, nursery)
        system.vfs.mount("/proc", kernel.start_procfs())
        await system._start_console(serial_tty)
        if ramdisk:
            system.start_ramdisk()
        try:
            yield system
        finally:
            if trace is not None and kernel.tracer is not None:
                kernel.tracer.write(trace)
            nursery.cancel_scope.cancel()
