"""The RAM disk server (vfs/ramdisk.py on vfs/server.py), through a booted system.

Each test boots a small system, starts the ramdisk from its *source* (as init does) on a fresh
rendezvous mounted at /ramdisk, and drives it with the std API (proc.open/read/write/listdir/
mkdir/remove/rename) or, where the exact reply matters, with raw messages. Spec §16.4 rows 46-53
are covered with the seed's quirks fixed: writes go at the session's position (not always at 0),
an empty file reads as b"" (not error 16), deleting works in any writable directory (not only the
mount root), listings are sorted (not reversed), and a server serves any number of sessions over
its lifetime (not 64 threads a lifetime).
"""

from __future__ import annotations

import json
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from euralios.boot import System, boot, program_source
from euralios.pytest_plugin import build_message
from euralios.std import Handle, Memory, Message, SyscallError, abi, discard
from euralios.std.fs import send_bytes, take_bytes
from tests.support.guest import run_body

RAMDISK = program_source("vfs/ramdisk.py")
Body = Callable[[Any, System, int], Awaitable[Any]]


# ---------------------------------------------------------------- harness
async def start_ramdisk(proc: Any, path: str = "/ramdisk", args: list[str] | None = None) -> int:
    """exec the ramdisk on a new rendezvous and mount the other end; returns its pid."""
    h1, h2 = await proc.sys.new_rendezvous()
    child = await proc.exec(RAMDISK, args=["ramdisk", *(args or [])], stdin=h2, name="ramdisk")
    await proc.sys.mount(path, h1)
    return child.pid


async def with_ramdisk(body: Body, args: list[str] | None = None, timeout: float = 20.0) -> Any:
    """Boot, start a ramdisk, run body(proc, system, ramdisk_pid) as a root program; re-raise
    its failure here (an assertion inside a program would otherwise just kill the program)."""
    async with boot() as system:

        async def prog(proc: Any) -> Any:
            return await body(proc, system, await start_ramdisk(proc, args=args))

        value = await run_body(system, prog, timeout=timeout)
        assert "[vfs.server]" not in system.klog(), system.klog()  # no server bug was hit
        return value


async def raw(proc: Any, handle: int, tag: int, d2: Any = 0, d3: Any = 0) -> Message:
    """send_receive a raw message and return the raw reply (no error mapping)."""
    return await proc.sys.send_receive(handle, Message(tag, d2, d3))


async def named(proc: Any, handle: int, tag: int, payload: bytes, length: int | None = None) -> Message:
    """A request carrying bytes in a chunk: Long(tag, V(len), M(bytes))."""
    mem = await send_bytes(proc.sys, payload)
    return await raw(proc, handle, tag, len(payload) if length is None else length, mem)


async def drop(proc: Any, reply: Message) -> None:
    """Release what a reply brought: free a chunk, close a session handle."""
    if isinstance(reply.d3, Memory):
        await proc.sys.free(reply.d3.vaddr)
    if isinstance(reply.d2, Handle):
        try:
            await proc.sys.send(reply.d2.number, Message(abi.CLOSE_TAG))
        except SyscallError:
            pass
        await proc.sys.close(reply.d2.number)


def threads(system: System, pid: int) -> int:
    return len(system.kernel.processes[pid].threads)


async def settle(system: System, pid: int, want: int) -> None:
    """Let ended sessions' threads finish (they end asynchronously), then check the ramdisk
    runs `want` threads."""
    await trio.testing.wait_all_tasks_blocked()
    assert threads(system, pid) == want


async def code_of(coro: Awaitable[Any]) -> int:
    with pytest.raises(SyscallError) as e:
        await coro
    return e.value.code


# ---------------------------------------------------------------- directories
async def test_nested_directories_and_query() -> None:
    async def body(proc: Any, system: System, pid: int) -> None:
        for d in ("/ramdisk/bin", "/ramdisk/root", "/ramdisk/user", "/ramdisk/a", "/ramdisk/a/b",
                  "/ramdisk/a/b/c"):
            await proc.mkdir(d)
        await proc.write_file("/ramdisk/a/b/c/deep.txt", "deep")
        await proc.write_file("/ramdisk/a/z", "zz")
        await proc.write_file("/ramdisk/a/m", "")
        info = await proc.stat_dir("/ramdisk")
        assert [d["name"] for d in info["subdirs"]] == ["a", "bin", "root", "user"]  # §16.4 row 46, sorted
        assert info["files"] == [] and info["type"] == "dir"
        a = await proc.stat_dir("/ramdisk/a")
        assert a == {"name": "a", "type": "dir", "subdirs": [{"name": "b"}],
                     "files": [{"name": "m", "size": 0}, {"name": "z", "size": 2}]}
        assert await proc.listdir("/ramdisk/a/b/c") == ["deep.txt"]
        assert await proc.read_file("/ramdisk/a/b/c/deep.txt") == b"deep"
        # Paths with doubled slashes, '.' and a trailing slash name the same places.
        assert await proc.read_file("/ramdisk/a//b/./c/deep.txt") == b"deep"
        assert (await proc.stat_dir("/ramdisk/a/b/"))["name"] == "b"
        async with await proc.open("/ramdisk/a/b/c/deep.txt") as f:
            assert await f.query() == {"name": "deep.txt", "type": "file", "size": 4}

    await with_ramdisk(body)


async def test_open_empty_path_and_dotdot() -> None:
    """Opening a directory's own path ('/', '') gives a session on it (the seed's server thread
    panicked, killing the ramdisk, §13.4 item 19); '..' cannot climb out of a session."""
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.mkdir("/ramdisk/d")
        mount, _ = await proc.sys.open("/ramdisk")
        for path in (b"/", b"", b"/./"):
            reply = await named(proc, mount, abi.OPEN_TAG, path)
            assert reply.tag == abi.COMM_HANDLE, (path, reply)
            q = await raw(proc, reply.d2.number, abi.QUERY)
            assert json.loads(await take_bytes(proc.sys, q))["subdirs"] == [{"name": "d"}]
            await drop(proc, reply)
        dsess = await proc.connect_handle("/ramdisk/d", 0)
        assert await named(proc, dsess, abi.OPEN_TAG, b"../d") == Message(abi.ERROR, abi.PARAM, 0)
        await proc.sys.send(dsess, Message(abi.CLOSE_TAG))
        # The server is still there.
        assert await proc.listdir("/ramdisk") == ["d"]

    await with_ramdisk(body)


# ---------------------------------------------------------------- reading and writing
async def test_writes_follow_the_position_and_empty_reads_empty() -> None:
    """§16.4 rows 47-49 with the quirks fixed."""
    async def body(proc: Any, system: System, pid: int) -> None:
        async with await proc.open("/ramdisk/f", "w") as f:
            assert await f.write("abc") == 3
            assert await f.write("de") == 2
        assert await proc.read_file("/ramdisk/f") == b"abcde"
        h = await proc.connect_handle("/ramdisk/f", 0)
        reply = await raw(proc, h, abi.READ, 2, 2)
        assert (reply.tag, reply.d2) == (abi.DATA, 2)
        assert await take_bytes(proc.sys, reply) == b"cd"
        assert await raw(proc, h, abi.READ, 10, 100) == Message(abi.ERROR, abi.NO_DATA, 0)
        assert await raw(proc, h, abi.READ, 5, 100) == Message(abi.ERROR, abi.NO_DATA, 0)
        await proc.sys.send(h, Message(abi.CLOSE_TAG))
        await proc.sys.close(h)
        # create again: truncated, and an empty file reads as b"" (row 48's error 16 was a quirk)
        async with await proc.open("/ramdisk/f", "w"):
            pass
        assert await proc.read_file("/ramdisk/f") == b""
        assert (await proc.stat_dir("/ramdisk"))["files"] == [{"name": "f", "size": 0}]

    await with_ramdisk(body)


async def test_position_semantics() -> None:
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.write_file("/ramdisk/f", "abcdef")
        async with await proc.open("/ramdisk/f", "r+") as f:  # no truncation: overwrite at 0
            await f.write("XY")
            assert await f.read(2) == b"cd"  # reads continue from the position...
            await f.write("Z")  # ...and move it: this lands at 4
        assert await proc.read_file("/ramdisk/f") == b"XYcdZf"

        # O_APPEND writes at the end, wherever other sessions left it.
        app = await proc.open("/ramdisk/f", "a")
        other = await proc.open("/ramdisk/f", "r+")
        await app.write("1")
        await other.write("----")
        await app.write("2")
        assert await proc.read_file("/ramdisk/f") == b"----Zf12"
        # Truncated under an appender: the next append starts the file again.
        await proc.write_file("/ramdisk/f", "new")
        await app.write("!")
        assert await proc.read_file("/ramdisk/f") == b"new!"
        await app.close()

        # A writer whose position is past the end (the file was truncated meanwhile) leaves a
        # zero-filled gap: never the stale bytes of the freed storage.
        await proc.write_file("/ramdisk/g", b"\xee" * 5000)
        async with await proc.open("/ramdisk/g", "r+") as g:
            assert len(await g.read(4000)) == 4000
            await proc.write_file("/ramdisk/g", "")
            await g.write("Q")
        assert await proc.read_file("/ramdisk/g") == bytes(4000) + b"Q"
        # Writing in the middle of a multi-extent file.
        await other.write(b"." * 10)  # other's position is 4: bytes 4..13
        assert await proc.read_file("/ramdisk/f") == b"new!" + b"." * 10
        await other.close()

    await with_ramdisk(body)


async def test_one_mib_file_is_byte_exact() -> None:
    async def body(proc: Any, system: System, pid: int) -> None:
        rng = random.Random(1)
        data = rng.randbytes(1 << 20)
        await proc.write_file("/ramdisk/big", data)
        assert await proc.read_file("/ramdisk/big") == data
        async with await proc.open("/ramdisk/big") as f:
            assert (await f.query())["size"] == 1 << 20
            got = bytearray()
            for n in (1, 4095, 4097, 65536, 100_000, 1 << 20):
                got += await f.read(n)
            assert bytes(got) == data
            assert await f.read(10) == b""
        # The same bytes written in uneven pieces (many extents) and appended.
        async with await proc.open("/ramdisk/pieces", "w") as f:
            pos = 0
            while pos < len(data):
                n = rng.choice((1, 7, 300, 4096, 5000, 70_000))
                await f.write(data[pos : pos + n])
                pos += n
        assert await proc.read_file("/ramdisk/pieces") == data
        async with await proc.open("/ramdisk/app", "a") as f:
            for i in range(0, len(data), 65_000):
                await f.write(data[i : i + 65_000])
        assert await proc.read_file("/ramdisk/app") == data
        # Overwrite a range crossing extent boundaries, read one window raw.
        patch = rng.randbytes(200_000)
        async with await proc.open("/ramdisk/pieces", "r+") as f:
            await f.read(300_001)
            await f.write(patch)
        want = data[:300_001] + patch + data[500_001:]
        assert await proc.read_file("/ramdisk/pieces") == want

    await with_ramdisk(body, timeout=30)


async def test_lying_length_is_refused_and_server_lives() -> None:
    """A WRITE/OPEN whose length is longer than the chunk carrying it is PARAM: reading past the
    chunk would be a page fault, and the fault would kill everyone's file system."""
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.write_file("/ramdisk/f", "x")
        h = await proc.connect_handle("/ramdisk/f", abi.O_WRITE)
        assert await named(proc, h, abi.WRITE, b"abc", length=1 << 20) == Message(abi.ERROR, abi.PARAM, 0)
        assert await named(proc, h, abi.WRITE, b"abc", length=4097) == Message(abi.ERROR, abi.PARAM, 0)
        assert await named(proc, h, abi.WRITE, b"abc", length=4096) == Message(abi.OK, 4096, 0)
        mount, _ = await proc.sys.open("/ramdisk")
        assert await named(proc, mount, abi.OPEN_TAG, b"f", length=5000) == Message(abi.ERROR, abi.PARAM, 0)
        assert await named(proc, mount, abi.MKDIR, b"\xff") == Message(abi.ERROR, abi.UTF8, 0)
        assert await raw(proc, h, abi.WRITE, 3, 5) == Message(abi.ERROR, abi.PARAM, 0)
        await proc.sys.send(h, Message(abi.CLOSE_TAG))
        assert (await proc.read_file("/ramdisk/f"))[:3] == b"abc"
        assert system.kernel.processes[pid].killed is None

    await with_ramdisk(body)


# ---------------------------------------------------------------- delete and rename
async def test_delete_and_rename() -> None:
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.mkdir("/ramdisk/d")
        await proc.mkdir("/ramdisk/d/sub")
        await proc.write_file("/ramdisk/d/a", "A")
        await proc.write_file("/ramdisk/d/b", "B")
        # Deleting inside a sub-directory works (the seed only allowed it at the mount root).
        await proc.remove("/ramdisk/d/a")
        assert await proc.listdir("/ramdisk/d") == ["b", "sub"]
        assert await code_of(proc.remove("/ramdisk/d/a")) == abi.NOTFOUND
        assert await code_of(proc.read_file("/ramdisk/d/a")) == abi.NOTFOUND
        # Non-empty directories are refused (NOT_EMPTY); empty ones go.
        await proc.write_file("/ramdisk/d/sub/x", "x")
        assert await code_of(proc.remove("/ramdisk/d/sub")) == abi.NOT_EMPTY
        await proc.remove("/ramdisk/d/sub/x")
        await proc.remove("/ramdisk/d/sub")
        assert await proc.listdir("/ramdisk/d") == ["b"]
        # Rename within a directory; a file renamed onto a file replaces it.
        await proc.rename("/ramdisk/d/b", "c")
        assert await proc.listdir("/ramdisk/d") == ["c"]
        assert await proc.read_file("/ramdisk/d/c") == b"B"
        await proc.write_file("/ramdisk/d/e", "E")
        await proc.rename("/ramdisk/d/e", "c")
        assert await proc.listdir("/ramdisk/d") == ["c"]
        assert await proc.read_file("/ramdisk/d/c") == b"E"
        await proc.rename("/ramdisk/d/c", "c")  # onto itself: nothing happens
        assert await code_of(proc.rename("/ramdisk/d/nope", "x")) == abi.NOTFOUND
        await proc.mkdir("/ramdisk/d/dir")
        assert await code_of(proc.rename("/ramdisk/d/c", "dir")) == abi.EXISTS
        assert await code_of(proc.rename("/ramdisk/d/dir", "c")) == abi.EXISTS
        await proc.rename("/ramdisk/d/dir", "dir2")
        async with await proc.open("/ramdisk/d/dir2") as dsess:
            assert (await dsess.query())["name"] == "dir2"
        dh = await proc.connect_handle("/ramdisk/d", abi.O_WRITE)
        assert await named(proc, dh, abi.RENAME, b"c\0a/b") == Message(abi.ERROR, abi.PARAM, 0)
        assert await named(proc, dh, abi.RENAME, b"c") == Message(abi.ERROR, abi.PARAM, 0)
        assert await named(proc, dh, abi.DELETE, b"..") == Message(abi.ERROR, abi.PARAM, 0)
        await proc.sys.send(dh, Message(abi.CLOSE_TAG))

    await with_ramdisk(body)


async def test_deleted_file_lives_while_open() -> None:
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.write_file("/ramdisk/f", "still here")
        f = await proc.open("/ramdisk/f", "r+")
        await proc.remove("/ramdisk/f")
        assert await proc.listdir("/ramdisk") == []
        assert await f.read() == b"still here"
        await f.write("!")
        f.offset = 0
        assert await f.read() == b"still here!"
        await f.close()
        # A new file of that name is a different file.
        await proc.write_file("/ramdisk/f", "new")
        assert await proc.read_file("/ramdisk/f") == b"new"
        # A deleted directory takes no new entries through a session still open on it.
        await proc.mkdir("/ramdisk/gone")
        d = await proc.connect_handle("/ramdisk/gone", abi.O_WRITE)
        await proc.remove("/ramdisk/gone")
        assert await named(proc, d, abi.MKDIR, b"x") == Message(abi.ERROR, abi.NOTFOUND, 0)
        assert await named(proc, d, abi.OPEN_TAG | abi.O_WRITE | abi.O_CREATE, b"y") == Message(
            abi.ERROR, abi.NOTFOUND, 0)
        await proc.sys.send(d, Message(abi.CLOSE_TAG))

    await with_ramdisk(body)


# ---------------------------------------------------------------- errors
async def test_error_codes() -> None:
    """§16.4 rows 50-51, plus clashes between files and directories."""
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.mkdir("/ramdisk/bin")
        await proc.write_file("/ramdisk/bin/shell", "#!")
        mount, _ = await proc.sys.open("/ramdisk")
        assert await named(proc, mount, abi.MKDIR, b"bin") == Message(abi.ERROR, abi.EXISTS, 0)
        assert await named(proc, mount, abi.MKDIR, b"a/b") == Message(abi.ERROR, abi.PARAM, 0)
        assert await named(proc, mount, abi.MKDIR, b"") == Message(abi.ERROR, abi.PARAM, 0)
        assert await code_of(proc.open("/ramdisk/bin/shell/x")) == abi.NOT_DIR
        assert await code_of(proc.open("/ramdisk/nope/x")) == abi.NOTFOUND
        assert await code_of(proc.open("/ramdisk/nope")) == abi.NOTFOUND
        assert await code_of(proc.open("/ramdisk/nope/x", "w")) == abi.NOTFOUND
        assert await code_of(proc.mkdir("/ramdisk/bin/shell")) == abi.EXISTS  # a file has the name
        assert await code_of(proc.mkdir("/ramdisk/nope/x")) == abi.NOTFOUND
        assert await code_of(proc.open("/ramdisk/bin", "w")) == abi.IS_DIR  # truncate a directory
        assert await code_of(proc.open("/ramdisk/bin", "a")) == abi.IS_DIR
        assert await named(proc, mount, abi.OPEN_TAG, b"\xc3(") == Message(abi.ERROR, abi.UTF8, 0)
        # File requests to a directory and directory requests to a file.
        async with await proc.open("/ramdisk/bin") as d:
            assert await code_of(d.read()) == abi.IS_DIR
        fh = await proc.connect_handle("/ramdisk/bin/shell", 0)
        assert await named(proc, fh, abi.MKDIR, b"x") == Message(abi.ERROR, abi.NOT_DIR, 0)
        assert await named(proc, fh, abi.OPEN_TAG, b"x") == Message(abi.ERROR, abi.NOT_DIR, 0)
        assert await raw(proc, fh, 999, 1, 2) == Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
        assert await raw(proc, mount, 999, 1, 2) == Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
        await proc.sys.send(fh, Message(abi.CLOSE_TAG))
        # "x" mode (write+create) on an existing directory opens the directory.
        async with await proc.open("/ramdisk/bin", "x") as d:
            assert (await d.query())["type"] == "dir"

    await with_ramdisk(body)


async def test_read_only_sessions_refuse_mutations() -> None:
    """§16.4 row 52: a directory opened read-only answers every mutation ERROR_DENIED (std: 17)
    and still answers QUERY; a file opened read-only refuses writes."""
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.mkdir("/ramdisk/bin")
        await proc.write_file("/ramdisk/bin/shell", "sh")
        ro = await proc.connect_handle("/ramdisk/bin", 0)
        denied = Message(abi.ERROR_DENIED, 0, 0)
        assert await named(proc, ro, abi.OPEN_READWRITE, b"shell") == denied
        assert await named(proc, ro, abi.OPEN_TAG | abi.O_CREATE, b"new") == denied
        assert await named(proc, ro, abi.OPEN_TAG | abi.O_TRUNCATE, b"shell") == denied
        assert await named(proc, ro, abi.DELETE, b"shell") == denied
        assert await named(proc, ro, abi.MKDIR, b"x") == denied
        assert await named(proc, ro, abi.RENAME, b"shell\0sh") == denied
        q = await raw(proc, ro, abi.QUERY)
        assert q.tag == abi.JSON
        assert json.loads(await take_bytes(proc.sys, q))["files"] == [{"name": "shell", "size": 2}]
        # Read-only opens below a read-only directory still work, and give read-only sessions.
        sub = await named(proc, ro, abi.OPEN_TAG, b"shell")
        assert sub.tag == abi.COMM_HANDLE
        assert await named(proc, sub.d2.number, abi.WRITE, b"zz") == denied
        await drop(proc, sub)
        await proc.sys.send(ro, Message(abi.CLOSE_TAG))
        # Through std: the same refusals as error 17, and nothing changed.
        async with await proc.open("/ramdisk/bin") as d:
            assert await code_of(d.request(abi.MKDIR, "x")) == abi.DENIED
            assert await code_of(d.request(abi.DELETE, "shell")) == abi.DENIED
        async with await proc.open("/ramdisk/bin/shell") as f:
            assert await code_of(f.write("overwrite")) == abi.DENIED
        assert await proc.read_file("/ramdisk/bin/shell") == b"sh"
        assert await proc.listdir("/ramdisk/bin") == ["shell"]

    await with_ramdisk(body)


async def test_read_only_mount() -> None:
    async def body(proc: Any, system: System, pid: int) -> None:
        assert await code_of(proc.mkdir("/ramdisk/x")) == abi.DENIED
        assert await code_of(proc.write_file("/ramdisk/f", "x")) == abi.DENIED
        assert await proc.listdir("/ramdisk") == []

    await with_ramdisk(body, args=["--read-only"])


async def test_capacity_limit_is_an_error_not_a_crash() -> None:
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.write_file("/ramdisk/a", bytes(40_000))
        assert await code_of(proc.write_file("/ramdisk/b", bytes(40_000))) == abi.MEMALLOC
        await proc.remove("/ramdisk/a")
        await proc.write_file("/ramdisk/b", bytes(60_000))
        assert len(await proc.read_file("/ramdisk/b")) == 60_000
        # A 1 GiB sparse chunk claiming 1 GiB of data is refused before a byte of it is read
        # (reading would fill the server with zeroed frames).
        frames = system.kernel.processes[pid].space.frames_owned
        h = await proc.connect_handle("/ramdisk/b", abi.O_WRITE | abi.O_APPEND)
        vaddr, _ = await proc.sys.malloc(512 * 512)
        reply = await raw(proc, h, abi.WRITE, 1 << 30, Memory(vaddr))
        assert reply == Message(abi.ERROR, abi.MEMALLOC, 0)
        await proc.sys.send(h, Message(abi.CLOSE_TAG))
        assert system.kernel.processes[pid].space.frames_owned < frames + 64

    await with_ramdisk(body, args=["--capacity", "64K"])


# ---------------------------------------------------------------- sessions and threads
async def test_sessions_close_and_threads_return_to_baseline() -> None:
    """§16.4 row 53: CLOSE ends the session thread and a later send gets CLOSED (12). Dropping
    the handle, or dying with sessions open, ends them too."""
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.write_file("/ramdisk/f", "data")
        await proc.mkdir("/ramdisk/d")
        await settle(system, pid, 1)
        base = threads(system, pid)
        handles_base = system.kernel.processes[pid].handles.count()

        h = await proc.connect_handle("/ramdisk/f", 0)
        assert threads(system, pid) == base + 1
        await proc.sys.send(h, Message(abi.CLOSE_TAG))
        assert await code_of(proc.sys.send(h, Message(abi.READ, 0, 1))) == abi.CLOSED
        await proc.sys.close(h)
        await settle(system, pid, base)

        # Ten sessions at once; closed by dropping the handle only (no CLOSE message).
        hs = [await proc.connect_handle("/ramdisk/f", 0) for _ in range(10)]
        hs.append(await proc.connect_handle("/ramdisk/d", 0))
        assert threads(system, pid) == base + 11
        for h in hs:
            await proc.sys.close(h)
        await settle(system, pid, base)

        # A client that dies holding sessions.
        async def leaker(p: Any) -> int:
            for _ in range(5):
                await p.connect_handle("/ramdisk/f", abi.O_WRITE)
            return 0

        assert await proc.run(leaker) == 0
        await settle(system, pid, base)
        assert system.kernel.processes[pid].handles.count() == handles_base

        # Far more sessions over its lifetime than it has thread stacks (the seed's 64-thread
        # lifetime limit is gone).
        for _ in range(150):
            async with await proc.open("/ramdisk/f") as f:
                assert await f.read() == b"data"
        await settle(system, pid, base)

    await with_ramdisk(body, timeout=30)


async def test_concurrent_session_limit_is_an_error() -> None:
    """A process has 64 thread stacks, so at most 63 sessions are open at once: the next OPEN is
    answered MEMALLOC (4), and works again as soon as one closes."""
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.write_file("/ramdisk/f", "x")
        open_: list[Any] = []
        code = 0
        for _ in range(70):
            try:
                open_.append(await proc.open("/ramdisk/f"))
            except SyscallError as e:
                code = e.code
                break
        assert code == abi.MEMALLOC and len(open_) == 63
        await open_.pop().close()
        async with await proc.open("/ramdisk/f") as f:
            assert await f.read() == b"x"
        for f in open_:
            await f.close()
        await settle(system, pid, 1)

    await with_ramdisk(body)


async def test_many_files_not_limited_by_chunk_slots() -> None:
    """640 files (a process has 511 chunk slots): file data shares a few arena chunks."""
    async def body(proc: Any, system: System, pid: int) -> None:
        await proc.mkdir("/ramdisk/many")
        n = 640
        for i in range(n):
            await proc.write_file(f"/ramdisk/many/f{i:04d}", f"file {i} " * (i % 7 + 1))
        names = await proc.listdir("/ramdisk/many")
        assert names == [f"f{i:04d}" for i in range(n)]
        for i in range(0, n, 37):
            assert await proc.read_file(f"/ramdisk/many/f{i:04d}") == (f"file {i} " * (i % 7 + 1)).encode()
        chunks = sum(1 for c in system.kernel.processes[pid].space.chunks if c is not None)
        assert chunks <= 2, chunks
        for i in range(n):
            await proc.remove(f"/ramdisk/many/f{i:04d}")
        await proc.remove("/ramdisk/many")
        assert await proc.listdir("/ramdisk") == []

    await with_ramdisk(body, timeout=30)


async def test_quiet_console() -> None:
    """One start line, nothing per request."""
    async with boot() as system:
        async def prog(proc: Any) -> int:
            await start_ramdisk(proc)
            for i in range(20):
                await proc.write_file(f"/ramdisk/{i}", "x")
                await proc.read_file(f"/ramdisk/{i}")
            return 0

        assert await system.run(prog) == 0
        assert system.output() == "[ramdisk] Starting ramdisk\n"


# ---------------------------------------------------------------- the allocator, directly
def test_arena_allocator_first_fit_and_merge() -> None:
    """Arenas in isolation (a fake proc): first fit, merging on free, arenas returned when empty."""
    from vfs.ramdisk import GRAIN, Arenas

    class FakeChunk:
        def __init__(self, vaddr: int) -> None:
            self.vaddr = vaddr

    class FakeSys:
        def __init__(self) -> None:
            self.freed: list[int] = []

        async def free(self, vaddr: int) -> None:
            self.freed.append(vaddr)

    class FakeProc:
        def __init__(self) -> None:
            self.sys = FakeSys()
            self.next = 1 << 30

        async def malloc(self, n: int) -> FakeChunk:
            self.next += 1 << 30
            return FakeChunk(self.next)

    async def scenario() -> None:
        proc = FakeProc()
        a = Arenas(proc, capacity=1 << 20, arena_bytes=4096)
        x = await a.alloc(100)
        y = await a.alloc(1000)
        z = await a.alloc(64)
        assert x == (2 << 30, 128) and y == (x[0] + 128, 1024) and z == (y[0] + 1024, GRAIN)
        a.free(*y)
        assert await a.alloc(500) == (y[0], 512)  # first fit reuses the hole
        a.free(y[0], 512)
        a.free(*x)
        assert a.holes == 2  # [x..y) merged, and the tail after z
        big = await a.alloc(4096)  # no hole fits: a second arena
        assert big[0] == 3 << 30 and len(a.arenas) == 2
        a.free(*z)
        await a.trim()
        assert proc.sys.freed == [2 << 30] and a.arenas == [3 << 30]
        a.free(*big)
        await a.trim()
        assert a.arenas == [3 << 30] and a.used == 0  # the last arena stays
        with pytest.raises(Exception) as e:
            small = Arenas(proc, capacity=256, arena_bytes=4096)
            await small.alloc(200)
            await small.alloc(100)
        assert getattr(e.value, "code", None) == abi.MEMALLOC

    trio.run(scenario)


# ---------------------------------------------------------------- fuzz
# A message is built from a tag and two word specs:
#   ("val", n)            a plain value
#   ("len", delta)        the length of the message's chunk payload plus delta (lies included)
#   ("mem", bytes, pages) a fresh chunk of `pages` pages holding bytes
#   ("handle",)           a fresh rendezvous end (the other end is closed afterwards)
PAYLOADS = [b"f", b"/f", b"sub", b"sub/f", b"new", b"f\0g", b"g\0f", b"sub\0f", b"new\0f", b"..", b".",
            b"/", b"", b"\xff\xfe", b"a" * 300, b"f/x", b"x" * 5000]
payload = st.one_of(st.sampled_from(PAYLOADS), st.binary(max_size=40))
OPEN_TAGS = list(range(abi.OPEN_TAG, abi.OPEN_TAG + 16))
NAMED_TAGS = [abi.WRITE, abi.MKDIR, abi.DELETE, abi.RENAME, *OPEN_TAGS]
SHORT_TAGS = [abi.READ, abi.QUERY, abi.CLOSE_TAG]
OTHER_TAGS = [abi.OK, abi.ERROR, abi.COMM_HANDLE, abi.JSON, 0, 3, 5, 9, 128, 133, 134, 2**64 - 1]
LIES = st.one_of(st.just(0), st.integers(-2, 2), st.sampled_from([4096, 4097, 8193, 1 << 20, 2**63]))

any_word = st.one_of(
    st.tuples(st.just("val"), st.one_of(st.integers(0, 5000), st.integers(0, 2**64 - 1))),
    st.tuples(st.just("len"), LIES),
    st.tuples(st.just("mem"), payload, st.integers(1, 2)),
    st.tuples(st.just("handle")),
)
random_message = st.tuples(
    st.one_of(st.sampled_from(NAMED_TAGS + SHORT_TAGS + OTHER_TAGS), st.integers(0, 2**64 - 1)),
    any_word, any_word)
# Well-formed requests, their lengths sometimes lying, one word sometimes swapped for another kind.
named_request = st.tuples(
    st.one_of(st.just(abi.WRITE), st.sampled_from(NAMED_TAGS)),
    st.one_of(st.tuples(st.just("len"), LIES), any_word),
    st.one_of(st.tuples(st.just("mem"), payload, st.integers(1, 2)), any_word))
short_request = st.tuples(
    st.sampled_from(SHORT_TAGS),
    st.one_of(st.tuples(st.just("val"), st.integers(0, 10)), any_word),
    st.one_of(st.tuples(st.just("val"), st.integers(0, 1 << 21)), any_word))
fuzz_message = st.tuples(
    st.one_of(named_request, named_request, short_request, random_message),
    st.sampled_from(["mount", "file", "dir"]),
    st.booleans(),  # wait for a reply (send_receive) or not (send)
)
REPLY_TAGS = {abi.OK, abi.DATA, abi.JSON, abi.COMM_HANDLE, abi.ERROR, abi.ERROR_DENIED,
              abi.ERROR_UNKNOWN_MESSAGE}


@given(st.lists(fuzz_message, min_size=1, max_size=30))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
async def test_fuzz_raw_messages_never_kill_the_server(script: list) -> None:
    """Random and mutated messages (values, chunks with lying lengths, handles) to the mount, a
    file session and a directory session: every waiting sender gets a well-formed answer, the
    server stays alive, leaks no chunk, handle or thread, and a normal file op works after."""
    async def body(proc: Any, system: System, pid: int) -> None:
        sys = proc.sys
        await proc.mkdir("/ramdisk/sub")
        await proc.write_file("/ramdisk/f", "hello")
        targets = {
            "mount": (await sys.open("/ramdisk"))[0],
            "file": await proc.connect_handle("/ramdisk/f", abi.O_WRITE),
            "dir": await proc.connect_handle("/ramdisk/sub", abi.O_WRITE),
        }
        for (tag, w2, w3), where, wait in script:
            msg, keep = await build_message(proc, tag, (w2, w3))
            err: SyscallError | None = None
            try:
                if wait:
                    reply = await sys.send_receive(targets[where], msg)
                    assert reply.tag in REPLY_TAGS, reply
                    await drop(proc, reply)
                else:
                    await sys.send(targets[where], msg)
            except SyscallError as e:
                err = e
            for a in keep:
                await sys.close(a)
            # Check before the next send: a dead server shows as a hang (the mount keeps its
            # rendezvous open, so nobody gets CLOSED).
            server = system.kernel.processes.get(pid)
            assert server is not None and server.killed is None, system.klog()
            if err is not None:
                # Only a session this script itself CLOSEd may refuse: then open a fresh one.
                assert err.code == abi.CLOSED and where != "mount", err
                await discard(proc.sys, err.message)
                await sys.close(targets[where])
                if where == "file":
                    targets[where] = await proc.connect_handle("/ramdisk/f", abi.O_WRITE | abi.O_CREATE)
                else:
                    targets[where] = await named_session(proc, "/ramdisk")
        for name, h in targets.items():
            if name != "mount":
                try:
                    await sys.send(h, Message(abi.CLOSE_TAG))
                except SyscallError:
                    pass
            await sys.close(h)
        # Alive, and still a file system.
        assert system.kernel.processes[pid].killed is None
        await proc.write_file("/ramdisk/after", "ok")
        assert await proc.read_file("/ramdisk/after") == b"ok"
        await settle(system, pid, 1)
        server = system.kernel.processes[pid]
        assert server.handles.count() == 2  # stdin and stdout: no session handle left behind
        assert sum(1 for c in server.space.chunks if c is not None) == 1  # the one arena

    await with_ramdisk(body)


async def named_session(proc: Any, path: str) -> int:
    """A writable directory session on the mount root (connect_handle would give the mount)."""
    mount, _ = await proc.sys.open(path)
    reply = await named(proc, mount, abi.OPEN_TAG | abi.O_WRITE, b"/")
    await proc.sys.close(mount)
    assert reply.tag == abi.COMM_HANDLE
    return reply.d2.number


# ---------------------------------------------------------------- the framework on its own
async def test_framework_minimal_read_only_server() -> None:
    """vfs/server.py's docstring example: a two-class tree is a working, read-only file server;
    a node that raises an unexpected exception costs one ERROR reply, not the server."""
    from vfs.server import DirNode, FileNode, serve

    class Hello(FileNode):
        name = "hello"

        def size(self) -> int:
            return 6

        async def read(self, offset: int, n: int) -> bytes:
            return b"hello\n"[offset : offset + n]

    class Broken(FileNode):
        name = "broken"

        def size(self) -> int:
            return 1

        async def read(self, offset: int, n: int) -> bytes:
            raise RuntimeError("bug in a node")

    class Root(DirNode):
        name = "/"

        def __init__(self) -> None:
            self.files = {"hello": Hello(), "broken": Broken()}

        def lookup(self, name: str) -> Any:
            return self.files.get(name)

        def entries(self) -> Any:
            return self.files.items()

    async def server(proc: Any) -> int:
        await serve(proc, 0, Root(), writable=False)
        return 0

    async with boot() as system:
        async def prog(proc: Any) -> int:
            h1, h2 = await proc.sys.new_rendezvous()
            await proc.exec(server, stdin=h2, name="hello-server")
            await proc.sys.mount("/hello", h1)
            assert await proc.read_file("/hello/hello") == b"hello\n"
            assert await proc.listdir("/hello") == ["broken", "hello"]
            assert await code_of(proc.write_file("/hello/hello", "x")) == abi.DENIED
            assert await code_of(proc.mkdir("/hello/d")) == abi.DENIED
            assert await code_of(proc.read_file("/hello/broken")) == abi.PARAM
            assert await proc.read_file("/hello/hello") == b"hello\n"
            return 0

        with trio.fail_after(10):
            assert await system.run(prog) == 0, system.klog()
        assert "RuntimeError: bug in a node" in system.klog()
