"""Booting the whole system: init, the keyboard and console drivers, the virtual consoles.

`async with boot_full() as system` is what the `euralios` command (terminal UI and headless)
and end-to-end tests use. It does what the seed's kernel_thread_main does (spec §1.3): it parks
Long(INITRD, n, chunk) — the initial RAM disk, initrd() — and Long(VIDEO_MEMORY, n, chunk) — the
VGA text memory at 0xB8000 — on a fresh rendezvous and starts init with I/O privilege, that
rendezvous as its handle 1 and a fresh one as its stdin (handle 0). Everything after that is
init's doing (programs/init/).

The returned FullSystem is euralios.boot's System (so `run()`/`spawn()` on the serial console
still work) plus the screen and keyboard: `type()`, `screen_text()`, `wait_for_screen()`,
`cursor()`.

Kernel-log lines are mirrored to the system console (F1): the kernel feeds them to init's
handle 1 as Long(WRITE, n, chunk), as /dev/kmsg would (Kernel.klog_feed, merriwig/kmsg.py), and
init forwards each chunk to the F1 writer. This is how "a killed process prints one line on the
system console" (DESIGN §2) reaches the screen.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from euralios.boot import System, boot
from euralios.std import abi as std_abi
from euralios.std.protocols.shares import SHARES_ENV, Share
from euralios.std.protocols.shares import encode as encode_shares
from machine.board import Machine
from machine.share.options import ShareOption
from machine.ui.headless import HeadlessScreen, KeyPress, parse_keys, press
from merriwig.abi import D2_SHIFT, KIND_HANDLE, MSG_LONG
from merriwig.kernel import Kernel
from merriwig.kmsg import KlogFeed
from merriwig.message import KMessage
from merriwig.process import Process
from merriwig.rendezvous import Rendezvous
from programs.init import main as init_main

# The drivers and servers init starts, by their image names in sbin/: the module with their main.
SBIN = {
    "keyboard": "drivers/keyboard.py",
    "console": "drivers/console.py",
    "pci": "drivers/pci.py",
    "rtl8139": "drivers/rtl8139.py",
    "virtio_net": "drivers/virtio_net.py",
    "virtio_9p": "drivers/virtio_9p.py",
    "ramdisk": "vfs/ramdisk.py",
    "tcp": "net/server.py",
}


def initrd() -> bytes:
    """The initial RAM disk image: JSON {"bin/NAME": source, "sbin/NAME": source}. init starts
    its drivers and servers from the sbin/ images (it imports none of them), and writes all of
    them into /ramdisk/bin and /ramdisk/sbin so they can be listed, read, edited and run inside
    the OS."""
    import json

    from euralios.boot import ROOT

    # Every module directly in programs/ is a program (init is the package programs/init/, which
    # the glob does not pick up: the front door starts it, and it is no program to run again).
    files = {f"bin/{p.stem}": p.read_text() for p in sorted((ROOT / "programs").glob("*.py"))
             if not p.stem.startswith("_")}
    files["bin/hello"] = (ROOT / "examples" / "hello.py").read_text()
    files.update({f"sbin/{name}": (ROOT / path).read_text() for name, path in SBIN.items()})
    return json.dumps(files).encode()


KLOG_STYLE = ("\x1b[90m", "\x1b[0m")  # dark grey: kernel lines stand apart from init's


class FullSystem(System):
    """A fully booted EuraliOS: System plus the screen, the keyboard and init."""

    def __init__(self, machine: Machine, kernel: Kernel, nursery: trio.Nursery) -> None:
        super().__init__(machine, kernel, nursery)
        self.screen = HeadlessScreen(machine.vga)
        self.init: Process | None = None
        self.active_console = 2  # F-key number of the console on screen, as far as we know
        self.klog_feed: KlogFeed | None = None  # the kernel log to init's handle 1 (F1), if fed

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

    async def wait_for_screen(self, pattern: str | re.Pattern[str], timeout: float = 10.0, *,
                              printed: bool = False) -> re.Match[str]:
        """Wait until the screen matches `pattern` (multiline regex); trio.TooSlowError after
        `timeout` seconds. Wakes only when the screen changes (no polling). printed: match the
        screen as `euralios --headless` prints it (trailing blanks trimmed) too, as --expect does
        (HeadlessScreen.matches)."""
        return await self.screen.wait_for(pattern, timeout, printed=printed)

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
    isolation: str = "host",
    serial_login: bool = False,
    shares: list[ShareOption] | tuple[ShareOption, ...] = (),
) -> AsyncIterator[FullSystem]:
    """Boot the full system and yield a FullSystem; everything stops when the block exits.

    keymap: KEYMAP for the keyboard driver (us, uk). console_program: CONSOLE_PROGRAM for init
    (a VFS path; default /bin/login, falling back to the built-in echo). klog_console: mirror the
    kernel log to F1. machine: a Machine built by the caller (the terminal UI needs it before the
    boot). on_klog: called with every kernel-log line (e.g. `--verbose` copying it to stderr).
    isolation: "host" or "none" (see euralios.boot.boot). serial_login: init runs a login on the
    serial console too (`euralios --serial`): the host types into it with feed_input() and reads
    it with add_output_sink(). shares: host folders for the machine (when no machine is given),
    each mounted by init at /host/TAG (SHARES in its environment: euralios.std.protocols.shares)."""
    async with boot(mem, quota=quota, watchdog=watchdog, trace=trace, slice_ms=slice_ms, machine=machine,
                    system_class=FullSystem, ramdisk=False, isolation=isolation,
                    serial_tty=serial_login, shares=shares) as base:
        system = base
        assert isinstance(system, FullSystem)
        kernel = system.kernel
        if on_klog is not None:
            for _, line in list(kernel.klog.lines):
                on_klog(line)
            kernel.klog.listeners.append(on_klog)
        # init's handle 1, and a second reference: the klog feed's, or without one the host's
        # (kept, so that init's is never the last one). The initial RAM disk first: init starts
        # the keyboard driver from it before it takes the video memory for the console driver.
        video = kernel.new_rendezvous(refs=2)
        kernel.send_bytes(video, std_abi.INITRD, initrd())
        kernel.send_device_memory(video, std_abi.VIDEO_MEMORY, std_abi.VGA_TEXT, 1)
        env: dict[str, Any] = {"KEYMAP": keymap}
        if console_program is not None:
            env["CONSOLE_PROGRAM"] = console_program
        if net_args:
            env["NET_ARGS"] = " ".join(net_args)
        if system.machine.shares:
            env[SHARES_ENV] = encode_shares([Share(s.tag, s.readonly, s.user) for s in system.machine.shares])
        if serial_login:
            # The serial line for init's getty, handed over as the video memory is.
            system.console.incref()
            video.kernel_send(KMessage(MSG_LONG | (KIND_HANDLE << D2_SHIFT), std_abi.COMM_HANDLE, system.console, 0))
        if klog_console:
            system.klog_feed = kernel.klog_feed(video, wrap=KLOG_STYLE)
        system.init = kernel.spawn(init_main, name="init", args=["init"], env=env,
                                   stdout=video, io=True, vfs=system.vfs)
        yield system
