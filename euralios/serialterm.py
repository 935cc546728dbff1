"""`euralios --serial`: the host terminal as the machine's serial line (QEMU's -nographic).

No full-screen UI: what the guest writes to COM1 goes to our stdout, what is typed on our stdin
goes to COM1, and init runs a login on that line (a tty, drivers/ttyserve.py), so a learner can
use EuraliOS over ssh, in a pipe or under `script`. The VGA consoles still exist (the monitor's
screendump shows them). On a terminal, stdin is put in raw mode so every key -- Ctrl+C
included -- reaches the guest, and "\\n" is shown as "\\r\\n" (the ONLCR a raw terminal no longer
does); Ctrl-] quits, as telnet's escape. The session ends when the guest powers off
(`shutdown`, status 0), on Ctrl-] or the monitor's quit (0), or when init ends (1).
"""

from __future__ import annotations

import argparse
import os
import sys
import termios
import tty
from collections.abc import AsyncIterator
from typing import Any

import trio

QUIT_KEY = 0x1D  # Ctrl-]


async def serial_session(opts: argparse.Namespace, vm: Any) -> int:
    fd_in, fd_out = sys.stdin.fileno(), sys.stdout.fileno()
    raw = os.isatty(fd_in)
    saved = termios.tcgetattr(fd_in) if raw else None

    def sink(data: bytes) -> None:
        if raw:
            data = data.replace(b"\n", b"\r\n")
        try:
            os.write(fd_out, data)
        except OSError:
            pass  # our reader went away: the guest runs on

    vm.on_boot.append(lambda system: system.add_output_sink(sink))
    try:
        if raw:
            tty.setraw(fd_in)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(vm.run)
            if getattr(opts, "monitor", None):
                from euralios.frontend import _serve_monitor

                await _serve_monitor(vm, opts.monitor, nursery)
            nursery.start_soon(_keys, vm, fd_in)
            await vm.ended.wait()
            nursery.cancel_scope.cancel()
    finally:
        if saved is not None:
            termios.tcsetattr(fd_in, termios.TCSADRAIN, saved)
            os.write(fd_out, b"\r\n")
    return vm.status or 0


async def stdin_chunks(fd: int) -> AsyncIterator[bytes]:
    """What arrives on a host fd, as it arrives, without a thread (wait until it is readable);
    ends at end of input or an error."""
    while True:
        try:
            await trio.lowlevel.wait_readable(fd)
            data = os.read(fd, 4096)
        except OSError:
            return
        if not data:
            return
        yield data


async def _keys(vm: Any, fd: int) -> None:
    """Our stdin -> the serial line of whichever machine is booted (a reset makes a new one).
    End of input leaves the guest running, as a serial line whose terminal hung up."""
    async for data in stdin_chunks(fd):
        if QUIT_KEY in data:
            data = data[: data.index(QUIT_KEY)]
            if data and vm.system is not None:
                vm.system.feed_input(data)
            vm.quit()
            return
        system = await vm.booted(vm.boots or 1)
        system.feed_input(data)
