"""Booting the whole system: init, the keyboard and console drivers, the virtual consoles.

`async with boot_full() as system` is what the `euralios` command (terminal UI and headless)
and end-to-end tests use. It does what the seed's kernel_thread_main does (spec §1.3): it parks
Long(VIDEO_MEMORY, n, chunk) — the VGA text memory at 0xB8000 — on a fresh rendezvous and starts
init with I/O privilege, that rendezvous as its handle 1 and a fresh one as its stdin (handle 0).
Everything after that is init's doing (programs/init.py).

The returned FullSystem is euralios.boot's System (so `run()`/`spawn()` on the serial console
still work) plus the screen and keyboard: `type()`, `screen_text()`, `wait_for_screen()`,
`cursor()`.

Kernel-log lines are mirrored to the system console (F1): a host task posts them on init's
handle 1 as Long(WRITE, n, chunk), the way a kernel would feed /dev/kmsg, and init forwards each
chunk to the F1 writer. This is how "a killed process prints one line on the system console"
(DESIGN §2) reaches the screen.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from euralios.boot import System, boot, program_source
from euralios.std import abi as std_abi
from machine.board import Machine
from machine.ui.headless import HeadlessScreen, KeyPress, parse_keys, press
from merriwig import abi, layout
from merriwig.errors import OutOfFrames, QuotaExceeded, SpaceError
from merriwig.kernel import Kernel
from merriwig.memory.space import AddressSpace
from merriwig.message import KMessage
from merriwig.process import Process
from merriwig.rendezvous import Rendezvous

LIBRARIES = ("init", "lineedit", "supervisor")  # modules in programs/ that are not programs for /bin


def initrd() -> bytes:
    """The initial RAM disk image: JSON {"bin/NAME": source} of the built-in programs, which
    init writes into /ramdisk/bin so they can be listed, read, edited and run inside the OS."""
    import json

    from euralios.boot import ROOT

    files = {f"bin/{p.stem}": p.read_text() for p in sorted((ROOT / "programs").glob("*.py"))
             if p.stem not in LIBRARIES and not p.stem.startswith("_")}
    files["bin/hello"] = (ROOT / "examples" / "hello.py").read_text()
    return json.dumps(files).encode()
KLOG_BACKLOG = 64  # messages parked for init at most; beyond, lines are counted as dropped
KLOG_STYLE = ("\x1b[90m", "\x1b[0m")  # dark grey: kernel lines stand apart from init's


class FullSystem(System):
    """A fully booted EuraliOS: System plus the screen, the keyboard and init."""

    def __init__(self, machine: Machine, kernel: Kernel, nursery: trio.Nursery) -> None:
        super().__init__(machine, kernel, nursery)
        self.screen = HeadlessScreen(machine.vga)
        self.init: Process | None = None
        self.video: Rendezvous | None = None  # init's handle 1 (VIDEO_MEMORY, then klog lines)
        self.active_console = 2  # F-key number of the console on screen, as far as we know
        self.klog_dropped = 0

    # ------------------------------------------------------------------ keyboard
    def press(self, keys: list[KeyPress]) -> None:
        """Press keys on the PS/2 keyboard; F1-F5 also update `active_console` (init's
        console switching keys)."""
        for k in keys:
            if not (k.shift or k.ctrl or k.alt) and k.name in ("F1", "F2", "F3", "F4", "F5"):
                self.active_console = int(k.name[1:])
        press(self.machine.keyboard, keys)

    async def type(self, keys: str, *, escapes: bool = False) -> None:
        """Type a key script ({Enter} {F2} {Ctrl+S} ..., see machine.ui.headless) on the
        keyboard. The keys are queued in the controller at once; the guest reads them."""
        self.press(parse_keys(keys, escapes=escapes))
        await trio.lowlevel.checkpoint()

    # ------------------------------------------------------------------ screen
    def screen_text(self) -> str:
        """The 80x25 screen as 25 lines of 80 characters."""
        return self.machine.vga.text()

    def screen_lines(self) -> list[str]:
        """The 25 screen lines without trailing blanks."""
        return self.screen.lines()

    def cursor(self) -> tuple[int, int]:
        """Hardware cursor (row, col)."""
        return self.machine.vga.cursor

    def cursor_visible(self) -> bool:
        return self.machine.vga.cursor_visible

    def cell(self, row: int, col: int) -> tuple[str, int]:
        """(character, attribute byte) of one screen cell."""
        return self.machine.vga.cells()[row][col]

    async def wait_for_screen(self, pattern: str | re.Pattern[str], timeout: float = 10.0) -> re.Match[str]:
        """Wait until the screen matches `pattern` (multiline regex); trio.TooSlowError after
        `timeout` seconds. Wakes only when the screen changes (no polling)."""
        return await self.screen.wait_for(pattern, timeout)

    async def settle(self, quiet: float = 0.2, limit: float = 5.0) -> bool:
        """Wait until the screen has not changed for `quiet` seconds."""
        return await self.screen.settle(quiet, limit)

    # ------------------------------------------------------------------ introspection for tests
    def process(self, name: str) -> Process | None:
        """The live process called `name` (lowest pid first), if any."""
        for p in sorted(self.kernel.processes.values(), key=lambda p: p.pid):
            if p.name == name:
                return p
        return None

    def console_driver_handle(self) -> Rendezvous:
        """A new reference to the console driver's main rendezvous, to give a test program as
        its stdin or stdout (it can then open consoles itself)."""
        driver = self.process("console")
        if driver is None:
            raise RuntimeError("the console driver is not running")
        r = driver.handles.get(0)
        r.incref()
        return r

    # ------------------------------------------------------------------ kernel log -> F1
    def kernel_text(self, data: bytes) -> KMessage:
        """Long(WRITE, n, chunk) holding `data`, built as the kernel builds a message: the text
        goes into fresh frames through a scratch address space, and the chunk is detached from
        it (its frames then belong to the message, and to whoever receives it)."""
        space = AddressSpace(self.kernel.memctx)
        try:
            vaddr, _ = space.malloc(max(1, -(-len(data) // layout.PAGE)))
            space.write(vaddr, data)
            chunk = space.detach(vaddr)
        finally:
            space.destroy()
        return KMessage(abi.MSG_LONG | (abi.KIND_MEMORY << abi.D3_SHIFT), abi.MSG_WRITE, len(data), chunk)

    async def mirror_klog(self, first: int = 0) -> None:
        """Post kernel-log lines (from the `first`-th line on) to init's handle 1, batched."""
        pending: list[str] = [line for _, line in list(self.kernel.klog.lines)[first:]]
        wake = trio.Event()

        def listener(line: str) -> None:
            pending.append(line)
            wake.set()

        self.kernel.klog.listeners.append(listener)
        try:
            while True:
                if not pending:
                    await wake.wait()
                    wake = trio.Event()
                lines, pending[:] = list(pending), []
                r = self.video
                if r is None or r.refs <= 1:
                    return  # init has gone
                if len(r.senders) >= KLOG_BACKLOG:
                    self.klog_dropped += len(lines)
                    continue
                text = "".join(f"{KLOG_STYLE[0]}{line}{KLOG_STYLE[1]}\n" for line in lines)
                try:
                    msg = self.kernel_text(text.encode("utf-8", "replace"))
                except (OutOfFrames, QuotaExceeded, SpaceError):
                    self.klog_dropped += len(lines)  # no memory for it: the ring still has it
                    continue
                r.kernel_send(msg)
                await trio.sleep(0)
        finally:
            self.kernel.klog.listeners.remove(listener)


@asynccontextmanager
async def boot_full(
    mem: str | int = "64M",
    *,
    quota: int | None = None,
    watchdog: float = 2.0,
    trace: str | None = None,
    slice_ms: float = 10.0,
    keymap: str = "us",
    console_program: str | None = None,
    net_args: list[str] | None = None,
    klog_console: bool = True,
    machine: Machine | None = None,
    on_klog: Callable[[str], None] | None = None,
) -> AsyncIterator[FullSystem]:
    """Boot the full system and yield a FullSystem; everything stops when the block exits.

    keymap: KEYMAP for the keyboard driver (us, uk). console_program: CONSOLE_PROGRAM for init
    (a VFS path; default /bin/login, falling back to the built-in echo). klog_console: mirror the
    kernel log to F1. machine: a Machine built by the caller (the terminal UI needs it before the
    boot). on_klog: called with every kernel-log line (e.g. `--verbose` copying it to stderr)."""
    async with boot(mem, quota=quota, watchdog=watchdog, trace=trace, slice_ms=slice_ms, machine=machine,
                    system_class=FullSystem, ramdisk=False) as base:
        system = base
        assert isinstance(system, FullSystem)
        kernel = system.kernel
        if on_klog is not None:
            for _, line in list(kernel.klog.lines):
                on_klog(line)
            kernel.klog.listeners.append(on_klog)
        video = kernel.new_rendezvous(refs=2)  # init's handle 1, plus the host's reference
        kernel.send_device_memory(video, std_abi.VIDEO_MEMORY, std_abi.VGA_TEXT, 1)
        image = system.kernel_text(initrd())
        image.d1 = std_abi.INITRD
        video.kernel_send(image)
        system.video = video
        env: dict[str, Any] = {"KEYMAP": keymap}
        if console_program is not None:
            env["CONSOLE_PROGRAM"] = console_program
        if net_args:
            env["NET_ARGS"] = " ".join(net_args)
        if klog_console:
            system.nursery.start_soon(system.mirror_klog, 0)
        system.init = kernel.spawn(program_source("programs/init.py"), name="init", args=["init"], env=env,
                                   stdout=video, io=True, vfs=system.vfs)
        yield system
