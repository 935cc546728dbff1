"""Serving the monitor: on a unix socket (`--monitor unix:PATH`) and on stdio (`--monitor stdio`).

Line-based, as a script wants it: the server sends the banner and QEMU's "(qemu) " prompt, reads
one command per line and answers with the command's output and the prompt again. Differences
from QEMU's socket monitor, on purpose: lines end in \\n (QEMU's in \\r\\n), and nothing typed is
echoed (QEMU runs its line editor on the socket). Any number of clients may connect; each has
its own session (selected process, last dump format). A client that goes away ends only its
session. `quit` ends euralios (the Vm), whichever front end it came from.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import trio

from euralios.monitor.commands import BANNER, PROMPT, Monitor

MAX_LINE = 4096


class SpecError(ValueError):
    """A --monitor value that cannot be served (one line for the user)."""


def parse_spec(spec: str) -> tuple[str, str]:
    """`unix:PATH` (QEMU's `unix:PATH,server,nowait` accepted too) or `stdio` -> (kind, path)."""
    if spec == "stdio":
        return "stdio", ""
    if spec.startswith("unix:"):
        path, *options = spec[5:].split(",")
        for opt in options:
            if opt not in ("server", "nowait", "server=on", "wait=off", "server=yes", "wait=no"):
                raise SpecError(f"--monitor {spec}: unknown option {opt!r} (the socket is always a "
                                "server that does not wait for a client)")
        if not path:
            raise SpecError(f"--monitor {spec}: needs a path: unix:PATH")
        return "unix", path
    raise SpecError(f"--monitor {spec}: use unix:PATH or stdio")


async def _session(vm: Any, stream: trio.abc.Stream) -> None:
    monitor = Monitor(vm)
    buf = bytearray()
    try:
        await stream.send_all(f"{BANNER}\n{PROMPT}".encode())
        while True:
            data = await stream.receive_some(4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                raw, _, rest = bytes(buf).partition(b"\n")
                buf = bytearray(rest)
                line = raw.decode("utf-8", "replace").rstrip("\r")
                await stream.send_all((monitor.execute(line) + PROMPT).encode())
            if len(buf) > MAX_LINE:
                buf.clear()
                await stream.send_all(f"line too long (more than {MAX_LINE} bytes)\n{PROMPT}".encode())
    except (trio.BrokenResourceError, trio.ClosedResourceError, ConnectionError):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def serve_unix(vm: Any, path: str, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """Listen on the unix socket `path` (replacing a stale socket file) until cancelled."""
    try:
        if os.path.exists(path) and not os.path.isdir(path):
            import stat

            if stat.S_ISSOCK(os.stat(path).st_mode):
                os.unlink(path)
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(path)
        sock.listen(8)
    except OSError as e:
        raise SpecError(f"--monitor unix:{path}: {e.strerror or e}") from None
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started(path)
            while True:
                stream = await listener.accept()
                nursery.start_soon(_session, vm, stream)
    finally:
        await listener.aclose()
        try:
            os.unlink(path)
        except OSError:
            pass


async def serve_stdio(vm: Any, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The monitor on stdin/stdout; end of input is `quit`, as closing the monitor ends the run."""
    monitor = Monitor(vm)
    out = sys.stdout
    out.write(f"{BANNER}\n{PROMPT}")
    out.flush()
    task_status.started()
    fd = sys.stdin.fileno()
    buf = b""
    while True:
        await trio.lowlevel.wait_readable(fd)
        data = os.read(fd, 4096)
        if not data:
            vm.quit()
            return
        buf += data
        while b"\n" in buf:
            raw, _, buf = buf.partition(b"\n")
            out.write(monitor.execute(raw.decode("utf-8", "replace").rstrip("\r")) + PROMPT)
            out.flush()
