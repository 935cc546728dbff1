"""A host folder mounted through vfs.ninep in a booted system, over an in-process ShareServer.

Each test boots a small system and starts serve_ninep as a server process whose Transport calls
machine.share.ShareServer.handle_frame (the 9P server over a temporary host folder), mounted at
/mnt/share; a root program then uses the std API (proc.open/read/write/listdir/mkdir/remove/
rename), and what it sees is checked against the host folder with os and pathlib.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ninep import ShareTransport

from euralios.boot import System, boot
from euralios.std import STDIN, Message, SyscallError, abi
from machine.share import ShareServer
from tests.support.guest import run_body
from vfs.ninep import serve_ninep

MNT = "/mnt/share"
Body = Callable[[Any, System], Awaitable[Any]]


async def with_share(folder: Path, body: Body, *, readonly: bool = False, writable: bool = True,
                     transport: ShareTransport | None = None, timeout: float = 30.0) -> Any:
    """Boot, serve `folder` over 9P at /mnt/share, run body(proc, system) as a root program."""
    transport = transport or ShareTransport(ShareServer(folder, readonly=readonly), 65536)
    async with boot() as system:

        async def server(proc: Any) -> int:
            return await serve_ninep(proc, STDIN, transport, writable=writable)

        async def prog(proc: Any) -> Any:
            mine, theirs = await proc.sys.new_rendezvous()
            await proc.exec(server, stdin=theirs, name="ninep")
            await proc.sys.mount(MNT, mine)
            return await body(proc, system)

        value = await run_body(system, prog, timeout=timeout)
        assert "[vfs.server]" not in system.klog(), system.klog()  # no server bug was hit
        return value


def box_pid(system: System) -> int:
    return next(p.pid for p in system.kernel.processes.values() if p.name == "ninep")


async def code_of(coro: Awaitable[Any]) -> int:
    with pytest.raises(SyscallError) as e:
        await coro
    return e.value.code


async def test_files_read_and_write_byte_exact_both_ways(tmp_path: Path) -> None:
    host_data = random.Random(3).randbytes(300_000)  # many Treads, many READ replies
    (tmp_path / "from_host.bin").write_bytes(host_data)
    ours = random.Random(4).randbytes(200_000)

    async def body(proc: Any, system: System) -> None:
        assert await proc.read_file(f"{MNT}/from_host.bin") == host_data
        await proc.write_file(f"{MNT}/from_os.bin", ours)
        async with await proc.open(f"{MNT}/from_os.bin", "r+") as f:
            f.offset = 0
            await f.write(b"HEAD")  # a write at the session position, over the start
        async with await proc.open(f"{MNT}/from_os.bin", "a") as f:
            await f.write(b"TAIL")
        async with await proc.open(f"{MNT}/from_host.bin") as f:
            assert (await f.query())["size"] == len(host_data)
        await trio.testing.wait_all_tasks_blocked()  # the last session's thread has ended

    transport = ShareTransport(ShareServer(tmp_path), 65536)
    await with_share(tmp_path, body, transport=transport)
    assert (tmp_path / "from_os.bin").read_bytes() == b"HEAD" + ours[4:] + b"TAIL"
    assert transport.server.fids == 1  # every session closed: only the root fid is left


async def test_list_create_rename_delete_mkdir_rmdir(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("alpha")
    (tmp_path / "b.txt").write_text("bee")

    async def body(proc: Any, system: System) -> None:
        info = await proc.stat_dir(MNT)
        assert info["subdirs"] == [{"name": "docs"}] and info["files"] == [{"name": "b.txt", "size": 3}]
        assert await proc.listdir(f"{MNT}/docs") == ["a.txt"]
        await proc.write_file(f"{MNT}/docs/new.txt", "new")
        await proc.rename(f"{MNT}/docs/new.txt", "renamed.txt")
        await proc.mkdir(f"{MNT}/docs/sub")
        await proc.mkdir(f"{MNT}/empty")
        assert await proc.listdir(f"{MNT}/docs") == ["a.txt", "renamed.txt", "sub"]
        await proc.remove(f"{MNT}/docs/a.txt")
        await proc.remove(f"{MNT}/empty")  # rmdir

    await with_share(tmp_path, body)
    assert sorted(os.listdir(tmp_path / "docs")) == ["renamed.txt", "sub"]
    assert (tmp_path / "docs" / "renamed.txt").read_text() == "new"
    assert not (tmp_path / "empty").exists() and (tmp_path / "docs" / "sub").is_dir()


async def test_errors_are_the_file_protocols(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "f").write_text("file")

    async def body(proc: Any, system: System) -> None:
        assert await code_of(proc.read_file(f"{MNT}/missing")) == abi.NOTFOUND
        assert await code_of(proc.remove(f"{MNT}/full")) == abi.NOT_EMPTY
        assert await code_of(proc.mkdir(f"{MNT}/full")) == abi.EXISTS
        assert await code_of(proc.read_file(f"{MNT}/f/below")) == abi.NOT_DIR
        async with await proc.open(f"{MNT}/full") as d:  # a directory session
            reply = await proc.sys.send_receive(d.handle, Message(abi.READ, 0, 10))
            assert reply.tag == abi.ERROR and reply.d2 == abi.IS_DIR

    await with_share(tmp_path, body)
    assert (tmp_path / "full" / "x").exists()


@pytest.mark.parametrize("how", ["mount", "share"])
async def test_read_only_is_refused_cleanly(tmp_path: Path, how: str) -> None:
    """writable=False refuses before asking; a read-only share answers EROFS: both are DENIED."""
    (tmp_path / "keep.txt").write_text("keep")

    async def body(proc: Any, system: System) -> None:
        assert await proc.read_file(f"{MNT}/keep.txt") == b"keep"
        assert await code_of(proc.write_file(f"{MNT}/keep.txt", "changed")) == abi.DENIED
        assert await code_of(proc.write_file(f"{MNT}/new.txt", "x")) == abi.DENIED
        assert await code_of(proc.mkdir(f"{MNT}/d")) == abi.DENIED
        assert await code_of(proc.remove(f"{MNT}/keep.txt")) == abi.DENIED
        assert await code_of(proc.rename(f"{MNT}/keep.txt", "other")) == abi.DENIED
        assert await proc.listdir(MNT) == ["keep.txt"]

    await with_share(tmp_path, body, readonly=how == "share", writable=how == "share")
    assert os.listdir(tmp_path) == ["keep.txt"] and (tmp_path / "keep.txt").read_text() == "keep"


async def test_a_vanishing_share_gives_errors_not_crashes(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "f.txt").write_text("data")
    transport = ShareTransport(ShareServer(share), 65536)

    async def body(proc: Any, system: System) -> None:
        f = await proc.open(f"{MNT}/f.txt")
        shutil.rmtree(share)  # the host folder goes away mid-use
        assert await code_of(proc.read_file(f"{MNT}/f.txt")) == abi.NOTFOUND
        assert await proc.listdir(MNT) == []
        assert await code_of(proc.write_file(f"{MNT}/g.txt", "x")) == abi.NOTFOUND
        transport.vanish()  # then the link itself dies
        assert await code_of(f.read()) == abi.RESET  # an open session answers the failure
        await f.close()
        # New requests through the mount answer the failure at once instead of hanging.
        assert await code_of(proc.read_file(f"{MNT}/f.txt")) == abi.RESET
        assert await code_of(proc.listdir(MNT)) == abi.RESET
        assert "9P: the share went away" in system.klog()
        server = system.kernel.processes[box_pid(system)]
        await proc.sys.umount(MNT)  # the only way out: the server ends with the mount
        with trio.fail_after(5):
            await server.ended.wait()
        assert server.status == 1  # it says the transport failed

    await with_share(share, body, transport=transport)


# ---------------------------------------------------------------- the model check
NAMES = st.sampled_from(["a", "b", "c", "d"])
OPS = st.lists(st.one_of(
    st.tuples(st.just("write"), NAMES, st.binary(max_size=3000)),
    st.tuples(st.just("append"), NAMES, st.binary(max_size=500)),
    st.tuples(st.just("read"), NAMES),
    st.tuples(st.just("rename"), NAMES, NAMES),
    st.tuples(st.just("delete"), NAMES),
    st.tuples(st.just("mkdir"), NAMES),
    st.tuples(st.just("list"),),
), min_size=1, max_size=25)


@given(OPS)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
async def test_random_operations_agree_with_the_host_folder(ops: list[tuple[Any, ...]]) -> None:
    """Random create/write/append/read/rename/delete/mkdir through the mount: every answer the
    OS gets (data or error code) and the final tree are what a model of the folder predicts, and
    the host folder is that model."""
    folder = Path(tempfile.mkdtemp(prefix="euralios-9p-"))
    model: dict[str, bytes | None] = {}  # name -> file bytes, None for a directory

    def expect(op: tuple[Any, ...]) -> tuple[str, Any]:
        kind, *args = op
        if kind in ("write", "append"):
            name, data = args
            if name in model and model[name] is None:
                return "err", abi.IS_DIR
            old = model.get(name) or b""
            model[name] = data if kind == "write" else old + data
            return "ok", None
        if kind == "read":
            if args[0] not in model:
                return "err", abi.NOTFOUND
            return ("err", abi.IS_DIR) if model[args[0]] is None else ("data", model[args[0]])
        if kind == "rename":
            old, new = args
            if old not in model:
                return "err", abi.NOTFOUND
            if old != new and new in model and (model[old] is None or model[new] is None):
                return "err", abi.EXISTS
            model[new] = model.pop(old)
            return "ok", None
        if kind == "delete":
            if args[0] not in model:
                return "err", abi.NOTFOUND
            del model[args[0]]  # directories here are always empty
            return "ok", None
        if kind == "mkdir":
            if args[0] in model:
                return "err", abi.EXISTS
            model[args[0]] = None
            return "ok", None
        return "list", sorted(model)

    async def run(proc: Any, op: tuple[Any, ...]) -> tuple[str, Any]:
        kind, *args = op
        p = f"{MNT}/{args[0]}" if args else MNT
        try:
            if kind == "write":
                await proc.write_file(p, args[1])
            elif kind == "append":
                async with await proc.open(p, "a") as f:
                    await f.write(args[1])
            elif kind == "read":
                async with await proc.open(p) as f:
                    if (await f.query())["type"] == "dir":
                        await f.read()  # a READ to a directory session: IS_DIR
                    return "data", await f.read()
            elif kind == "rename":
                await proc.rename(p, args[1])
            elif kind == "delete":
                await proc.remove(p)
            elif kind == "mkdir":
                await proc.mkdir(p)
            else:
                return "list", await proc.listdir(MNT)
        except SyscallError as e:
            return "err", e.code
        return "ok", None

    async def body(proc: Any, system: System) -> None:
        for op in ops:
            want = expect(op)
            got = await run(proc, op)
            assert got == want, (op, got, want)

    try:
        await with_share(folder, body)
        host = {p.name: (None if p.is_dir() else p.read_bytes()) for p in folder.iterdir()}
        assert host == model
    finally:
        shutil.rmtree(folder, ignore_errors=True)
