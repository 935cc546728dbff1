"""`proc`: the one argument of `async def main(proc)`, a program's only door to the system.

Everything here is built on `proc.sys` (the raw syscalls): console I/O is messages to the
stdout/stdin handles, files are messages to file servers, time comes from the kernel-info page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from euralios.std import abi, tty
from euralios.std.carried import discard
from euralios.std.chunk import Chunk
from euralios.std.errors import SyscallError
from euralios.std.fs import MODES, File, open_handle, send_bytes, split_parent, take_bytes
from euralios.std.message import Handle, Memory, Message
from euralios.std.syscalls import Gate, Sys
from euralios.std.time import microseconds

if TYPE_CHECKING:
    from euralios.std.net import DatagramSocket, Listener, Mux, Stream

STDIN = 0
STDOUT = 1


class Child:
    """A process this one started: its pid, and `wait()` for its exit status."""

    def __init__(self, proc: Proc, pid: int, notify: int, stdin: int | None) -> None:
        self.proc = proc
        self.pid = pid
        self.notify = notify
        self.stdin = stdin  # our end of the child's stdin, if we made one
        self.status: int | None = None
        self.ended = abi.ENDED_EXITED  # how it ended (abi.ENDED_*), once wait() has returned
        self.tty_entry: int | None = None  # its foreground entry on a console (stdin="tty")...
        self.tty_console = STDIN  # ...the reader handle it was pushed through

    async def wait(self) -> int:
        """Block until the child exits; returns its status (1 if it was killed)."""
        if self.status is None:
            while True:
                msg = await self.proc.sys.receive(self.notify)
                if msg.tag == abi.EXIT:
                    break
            status = msg.d3 if isinstance(msg.d3, int) else 1
            self.status = status - (1 << 64) if status >= 1 << 63 else status
            self.ended = (msg.d2 >> 32) & 0xFF if isinstance(msg.d2, int) else abi.ENDED_KILLED
            await self.proc.sys.close(self.notify)
            if self.tty_entry is not None:
                await tty.background(self.proc.sys, self.tty_console, self.tty_entry)
                self.tty_entry = None
        return self.status



class Proc:
    def __init__(self, gate: Gate, info: dict[str, Any]) -> None:
        self.sys = Sys(gate)
        self.gate = gate
        self.pid: int = info["pid"]
        self.name: str = info.get("name", "")
        self.args: list[str] = list(info.get("args") or [])
        self.env: dict[str, str] = dict(info.get("env") or {})
        self.user: str = info.get("user", "root")
        self._pending = ""
        #: stdin is a console's reader channel: keys are asked for (euralios.std.tty), not pushed.
        self.tty = self.env.get(tty.TTY_ENV) == "1"

    # ------------------------------------------------------------------ console
    async def write(self, data: bytes | str, handle: int = STDOUT) -> None:
        """Send raw text to a console-like handle (WRITE with a chunk; expects OK)."""
        if isinstance(data, str):
            data = data.encode()
        if not data:
            return
        mem = await send_bytes(self.sys, data)
        try:
            await self.sys.rcall(handle, abi.WRITE, len(data), mem)
        except SyscallError as e:
            # A console whose driver died hands the chunk back: free it, or every failed print
            # (init logging to a console being restarted) would cost a frame for ever.
            await discard(self.sys, e.message)
            raise

    async def print(self, *values: object, sep: str = " ", end: str = "\n", handle: int = STDOUT) -> None:
        await self.write(sep.join(str(v) for v in values) + end, handle)

    async def say(self, text: str) -> None:
        """A line for whoever reads our stdout, if anybody still does: a server's or a driver's
        log line (started before its console, or outliving it) must never kill the server."""
        try:
            await self.print(text)
        except SyscallError:
            pass

    async def read_key(self, handle: int = STDIN, isig: bool = True) -> int | None:
        """The next key code from stdin (None at end of input). Text sent as DATA is split into
        its characters. A pipe says its input has ended with Short(EMPTY) and may still send
        keys after it (a pager reading a pipeline's text, then what is typed). On a console,
        isig=False reads Ctrl+C as a key (code 3) instead of letting it interrupt this program."""
        if self.tty and handle == STDIN:
            return await tty.read_key(self.sys, handle, isig)
        if self._pending:
            c, self._pending = self._pending[0], self._pending[1:]
            return ord(c)
        while True:
            try:
                msg = await self.sys.receive(handle)
            except SyscallError as e:
                if e.code in (abi.CLOSED, abi.INVALID_HANDLE):
                    return None  # the other side is gone, or our stdin was closed: end of input
                raise
            if msg.tag == abi.CHAR and isinstance(msg.d2, int):
                return msg.d2
            if msg.tag == abi.EMPTY:
                return None  # a pipe's end of input (euralios/std/pipe.py); keys may follow
            if msg.tag == abi.WRITE and isinstance(msg.d3, Memory):
                text = (await take_bytes(self.sys, msg)).decode("utf-8", "replace")
                if text:
                    self._pending = text[1:]
                    return ord(text[0])

    async def read_line(self, echo: bool = True, handle: int = STDIN) -> str:
        """A line from stdin including its newline; "" at end of input. Echoes what is typed
        (and handles Backspace) like the seed's read_line; special keys are ignored. On a console
        the console edits and echoes the line (Ctrl+U, Ctrl+W too; Ctrl+D ends the input)."""
        if self.tty and handle == STDIN:
            return await tty.read_line(self.sys, handle, echo)
        buf: list[str] = []
        while True:
            code = await self.read_key(handle)
            if code is None:
                return "".join(buf)
            if code in (8, 127):
                if buf:
                    buf.pop()
                    if echo:
                        await self.write("\x08 \x08")
                continue
            if code > 0x10FFFF or (code < 32 and code not in (9, 10)):
                continue
            ch = chr(code)
            if echo:
                await self.write(ch)
            buf.append(ch)
            if ch == "\n":
                return "".join(buf)

    # ------------------------------------------------------------------ files
    def abspath(self, path: str) -> str:
        """Relative paths are taken from PWD, as the seed's library does."""
        if path.startswith("/"):
            return path
        cwd = self.env.get("PWD", "/")
        return cwd.rstrip("/") + "/" + path

    async def open(self, path: str, mode: str = "r") -> File:
        if mode not in MODES:
            raise ValueError(f"bad mode {mode!r}")
        path = self.abspath(path)
        handle, session = await open_handle(self.sys, path, MODES[mode])
        return File(self.sys, handle, path, session)

    async def read_file(self, path: str) -> bytes:
        async with await self.open(path) as f:
            return await f.read()

    async def write_file(self, path: str, data: bytes | str) -> None:
        async with await self.open(path, "w") as f:
            await f.write(data)

    async def listdir(self, path: str) -> list[str]:
        """Names in a directory, sorted (directories and files together)."""
        info = await self.stat_dir(path)
        names = [d["name"] for d in info.get("subdirs", [])] + [f["name"] for f in info.get("files", [])]
        return sorted(names)

    async def stat_dir(self, path: str) -> dict[str, Any]:
        async with await self.open(path) as f:
            return await f.query()

    async def _dir_request(self, tag: int, path: str, arg: str | None = None) -> None:
        parent, name = split_parent(self.abspath(path))
        async with await self.open(parent, "r+") as d:
            reply = await d.request(tag, name if arg is None else f"{name}\0{arg}")
        if reply.tag != abi.OK:
            raise SyscallError(abi.PARAM, reply)

    async def mkdir(self, path: str) -> None:
        await self._dir_request(abi.MKDIR, path)

    async def remove(self, path: str) -> None:
        await self._dir_request(abi.DELETE, path)

    async def rename(self, old: str, new: str) -> None:
        """Rename within one directory (`new` is a bare name or a path in the same directory)."""
        await self._dir_request(abi.RENAME, old, new.rsplit("/", 1)[-1])

    async def mounts(self) -> list[str]:
        return await self.sys.list_mounts()

    # ------------------------------------------------------------------ time
    def now(self) -> float:
        """Seconds since boot, from the kernel-info page (no syscall)."""
        return microseconds(self.gate) / 1e6

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            await self.sys.await_interrupt(0, max(1, int(seconds * 1e6)))
        else:
            await self.sys.yield_()

    # ------------------------------------------------------------------ memory and threads
    async def malloc(self, nbytes: int, max_physaddr: int = 0) -> Chunk:
        if nbytes <= 0:
            raise SyscallError(abi.PARAM, detail="malloc of 0 bytes")
        return await Chunk.allocate(self.sys, nbytes, max_physaddr)

    async def received(self, mem: Memory) -> Chunk:
        """The chunk a message brought, sized by the kernel (never by the length the sender
        claims): reading past its end is refused instead of killing this process."""
        return await Chunk.received(self.sys, mem)

    async def spawn_thread(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> int:
        """Start `await fn(*args)` as a new thread of this process; returns its tid."""
        return await self.sys.fork_thread(fn, args)

    # ------------------------------------------------------------------ processes
    async def exec(
        self,
        program: str | bytes | Callable[..., Awaitable[Any]],
        args: list[str] | None = None,
        vfs: str | dict[str, int] = "shared",
        io: bool = False,
        env: dict[str, str] | None = None,
        stdin: int | str | None = None,
        stdout: int | None = None,
        name: str = "",
        user: str = "",
        mounts: dict[str, int] | None = None,
        idle: bool = False,
        quota: int | None = None,
        controller: int | None = None,
    ) -> Child:
        """Start a program: a path to a file, its source bytes, or a coroutine function.

        stdin: a handle (moved to the child), "pipe" (a new rendezvous; we keep the other end as
        child.stdin), "tty" (the child reads the console in front of us: a foreground reader
        pushed through our own stdin before it starts, `controller` (moved) told INTERRUPT on
        Ctrl+C; a copy of our stdin when we are not reading a console), or None (a copy of ours). stdout: a handle (moved) or None (a copy of ours).
        vfs: "shared", "copy", "new", or {path: handle} for a new VFS with those mounts.
        mounts: {path: handle} added on top (a shared VFS is then copied first).
        idle: start it once the system is idle (abi.EXEC_IDLE): for work nobody waits for.
        quota: the child's frame quota (default: ours; only root may give more than it has)."""
        sys = self.sys
        if isinstance(program, str):
            image: bytes | Callable[..., Any] = await self.read_file(program)
            if not name:
                name = program.rsplit("/", 1)[-1]
            if args is None:
                args = [program]
        else:
            image = program
        if not image:
            raise SyscallError(abi.NO_DATA, detail="empty program")
        ours: int | None = None
        child_tty = self.tty
        entry: int | None = None
        if stdin == "tty":
            try:
                if not self.tty:
                    raise SyscallError(abi.PARAM, detail="stdin is not a console")
                # Through our own reader: only the program in front may put one in front of it.
                child_in, entry = await tty.foreground(sys, STDIN, controller)
                child_tty = True
            except SyscallError:
                stdin = None  # not in front of a console: share our stdin
                if controller is not None:
                    await sys.close(controller)
            controller = None
        if controller is not None:
            await sys.close(controller)
        if stdin is None:
            child_in = await sys.copy_rendezvous(STDIN)
        elif stdin == "pipe":
            ours, child_in = await sys.new_rendezvous()
            child_tty = False
        elif stdin != "tty":
            child_in = int(stdin)  # the caller knows what it is, and says so in env (TTY)
        env = dict(env or {})
        if not isinstance(stdin, int):
            env.pop(tty.TTY_ENV, None)
            if child_tty:
                env[tty.TTY_ENV] = "1"
        if stdout is None:
            stdout = await sys.copy_rendezvous(STDOUT)
        notify_keep, notify_give = await sys.new_rendezvous()
        params = bytearray()
        if isinstance(vfs, dict):
            params += b"N"
            for path, h in vfs.items():
                params += f"m{h}|{path}:".encode()
        else:
            params += {"shared": b"S", "copy": b"C", "new": b"N"}[vfs]
        for path, h in (mounts or {}).items():
            params += f"m{h}|{path}:".encode()
        params += f"X{notify_give}|".encode()
        if args:
            params += b"A" + "\x03".join(args).encode() + b"\0"
        if env:
            params += b"E" + "\x03".join(f"{k}={v}" for k, v in env.items()).encode() + b"\0"
        if name:
            params += b"n" + name.encode() + b"\0"
        if user:
            params += b"U" + user.encode() + b"\0"
        if quota is not None:
            params += f"Q{int(quota)}|".encode()
        try:
            pid = await sys.exec(image, child_in, stdout, bytes(params), (abi.EXEC_PERM_IO if io else 0) | (abi.EXEC_IDLE if idle else 0))
        except SyscallError:
            await sys.close(notify_keep)
            if entry is not None:
                await tty.background(sys, STDOUT, entry)
            for handle in (notify_give, child_in, stdout, ours):
                if handle is not None:
                    try:
                        await sys.close(handle)
                    except SyscallError:
                        pass
            raise
        child = Child(self, pid, notify_keep, ours)
        child.tty_entry = entry
        return child

    async def run(self, program: str | bytes | Callable[..., Awaitable[Any]], args: list[str] | None = None,
                  **kw: Any) -> int:
        """exec and wait: the child's exit status."""
        child = await self.exec(program, args, **kw)
        return await child.wait()

    async def connect(self, host: str, port: int) -> Stream:
        """A TCP connection through the stack at /tcp (euralios.std.net.Stream)."""
        from euralios.std.net import connect

        return await connect(self, host, port)

    async def listen(self, port: int) -> Listener:
        """A listening TCP port (euralios.std.net.Listener: `await listener.accept()`)."""
        from euralios.std.net import listen

        return await listen(self, port)

    async def mux(self) -> Mux:
        """Many TCP sockets on one session, select/poll style (euralios.std.net.Mux)."""
        from euralios.std.net import mux

        return await mux(self)

    async def udp_bind(self, port: int = 0) -> DatagramSocket:
        """A bound UDP socket (euralios.std.net.DatagramSocket: `recvfrom`, `sendto`); port 0
        picks an ephemeral one."""
        from euralios.std.net import udp_bind

        return await udp_bind(self, port)

    async def udp_connect(self, host: str, port: int) -> DatagramSocket:
        """A UDP socket connected to host:port (euralios.std.net.DatagramSocket: `send`, `recv`)."""
        from euralios.std.net import udp_connect

        return await udp_connect(self, host, port)

    async def connect_handle(self, path: str, flags: int = abi.O_WRITE) -> int:
        """A raw handle to a path (a device, a server session), for message-level protocols."""
        return (await open_handle(self.sys, self.abspath(path), flags))[0]

    async def exit(self, status: int = 0) -> None:  # pragma: no cover - convenience
        raise SystemExit(status)


__all__ = ["Proc", "Child", "Handle", "Memory", "Message", "SyscallError", "STDIN", "STDOUT"]
