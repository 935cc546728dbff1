"""The 9P client and its nodes (vfs/ninep/) against machine.share.ShareServer, in-process.

No system is booted: the nodes are driven as vfs/server.py drives them (find, refresh, read,
write, make_file ... with opened()/closed() around a session), and every request goes over the
wire (encode -> ShareServer.handle_frame -> decode) through a Transport. What a node says is
checked against the host folder itself.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest
from ninep import ShareTransport

from euralios.std import abi
from machine.share import ShareServer
from vfs.ninep import Client, LinkDown, NinepDir, NinepFile, RemoteError, Tree, fs_code
from vfs.protocol import FsError


async def tree_on(folder: Path, readonly: bool = False, max_message: int = 8192) -> tuple[Tree, ShareTransport]:
    transport = ShareTransport(ShareServer(folder, readonly=readonly), max_message)
    client = Client(transport)
    await client.connect(256 * 1024)
    return Tree(client), transport


async def file_at(d: NinepDir, *names: str) -> NinepFile:
    node = d
    for n in names:
        found = await node.find(n)
        assert found is not None, n
        node = found  # type: ignore[assignment]
    assert isinstance(node, NinepFile)
    return node


async def test_msize_is_bounded_by_the_transport_and_io_is_cut_to_it(tmp_path: Path) -> None:
    data = random.Random(1).randbytes(50_000)
    (tmp_path / "big").write_bytes(data)
    tree, transport = await tree_on(tmp_path, max_message=8192)
    assert tree.client.msize == 8192  # asked 256 KiB, the transport carries 8 KiB frames
    f = await file_at(tree.root, "big")
    f.opened()
    await f.refresh()
    assert f.size() == len(data)
    before = transport.calls
    assert await f.read(0, len(data)) == data
    assert transport.calls - before >= len(data) // tree.client.iounit  # many Treads, none too big
    new = random.Random(2).randbytes(30_000)
    assert await f.write(10_000, new) == len(new)
    await f.closed()
    assert (tmp_path / "big").read_bytes() == data[:10_000] + new + data[40_000:]
    assert tree.client.fids_in_use == 0  # every fid walked was clunked


async def test_lookup_is_lazy_and_listing_reads_one_directory(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "deep.txt").write_text("deep")
    (tmp_path / "top.txt").write_text("hello")
    tree, transport = await tree_on(tmp_path)
    before = transport.calls
    a = await tree.root.find("a")
    assert isinstance(a, NinepDir) and transport.calls - before == 2  # Twalk + Tclunk, nothing read
    assert await tree.root.find("missing") is None
    await tree.root.refresh()
    assert {n: type(v).__name__ for n, v in tree.root.entries()} == {"a": "NinepDir", "top.txt": "NinepFile"}
    info = tree.root.info()
    assert b'"size": 5' in info
    f = await file_at(tree.root, "a", "b", "deep.txt")
    f.opened()
    assert await f.read(0, 100) == b"deep"
    await f.closed()
    assert tree.client.fids_in_use == 0


async def test_create_mkdir_rename_delete_follow_the_file_protocol(tmp_path: Path) -> None:
    tree, _ = await tree_on(tmp_path)
    root = tree.root
    f = await root.make_file("new.txt")
    assert (tmp_path / "new.txt").read_bytes() == b""
    f.opened()
    await f.write(0, b"one")
    assert await f.append(b"two") == 3
    await f.closed()
    assert (tmp_path / "new.txt").read_bytes() == b"onetwo"
    await root.make_dir("d")
    assert (tmp_path / "d").is_dir()
    with pytest.raises(FsError) as e:
        await root.make_dir("d")
    assert e.value.code == abi.EXISTS
    with pytest.raises(FsError) as e:
        await root.rename("new.txt", "d")  # a file onto a directory: EXISTS, not replaced
    assert e.value.code == abi.EXISTS
    (tmp_path / "other").write_text("old")
    await root.rename("new.txt", "other")  # a file onto a file replaces it
    assert (tmp_path / "other").read_text() == "onetwo" and not (tmp_path / "new.txt").exists()
    with pytest.raises(FsError) as e:
        await root.rename("nothing", "x")
    assert e.value.code == abi.NOTFOUND
    (tmp_path / "d" / "inside").write_text("x")
    with pytest.raises(FsError) as e:
        await root.remove("d")
    assert e.value.code == abi.NOT_EMPTY
    d = await root.find("d")
    assert isinstance(d, NinepDir)
    await d.remove("inside")
    await root.remove("d")  # AT_REMOVEDIR for a directory
    await root.remove("other")
    assert sorted(os.listdir(tmp_path)) == []
    with pytest.raises(FsError) as e:
        await root.remove("other")
    assert e.value.code == abi.NOTFOUND
    assert tree.client.fids_in_use == 0


async def test_errno_maps_to_the_file_protocols_errors(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "f").write_text("x")
    tree, _ = await tree_on(tmp_path, readonly=True)
    with pytest.raises(FsError) as e:
        await tree.root.make_file("g")
    assert e.value.code == abi.DENIED  # EROFS: the share is read-only
    f = await file_at(tree.root, "f")
    f.opened()
    with pytest.raises(FsError) as e:
        await f.write(0, b"y")
    assert e.value.code == abi.DENIED
    assert await f.read(0, 10) == b"x"  # reading is still fine
    await f.closed()
    with pytest.raises(RemoteError) as re:
        async with tree.client.walk_to(("f", "below")):
            pass
    assert re.value.code == abi.NOT_DIR
    assert fs_code(39) == abi.NOT_EMPTY and fs_code(21) == abi.IS_DIR and fs_code(1) == abi.DENIED
    assert fs_code(13) == abi.DENIED and fs_code(17) == abi.EXISTS and fs_code(2) == abi.NOTFOUND


async def test_a_vanished_folder_and_a_dead_transport_are_errors(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    (share / "f").write_text("data")
    tree, transport = await tree_on(share)
    f = await file_at(tree.root, "f")
    shutil.rmtree(share)
    await tree.root.refresh()
    assert list(tree.root.entries()) == []  # a removed directory lists empty, as on the host
    with pytest.raises(FsError) as e:
        await f.refresh()
    assert e.value.code == abi.NOTFOUND
    with pytest.raises(FsError) as e:
        await tree.root.make_file("g")
    assert e.value.code == abi.NOTFOUND
    assert not share.exists()  # nothing was made anywhere
    transport.vanish()
    told: list[LinkDown] = []

    async def down(x: LinkDown) -> None:
        told.append(x)

    tree.client.on_down = down
    for _ in range(2):
        with pytest.raises(LinkDown) as ld:
            await tree.root.find("f")
        assert ld.value.code == abi.RESET
    assert len(told) == 1  # said once


async def test_paths_deeper_than_one_twalk_walk_on_in_place(tmp_path: Path) -> None:
    """A Twalk carries at most 16 names: a 20-deep path is walked 16 + 4, and a missing name
    past the first 16 still answers NOTFOUND without leaking the half-walked fid."""
    names = [f"d{i}" for i in range(20)]
    deep = tmp_path.joinpath(*names)
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_bytes(b"leaf")
    tree, _ = await tree_on(tmp_path)
    f = await file_at(tree.root, *names, "leaf.txt")
    f.opened()
    assert await f.read(0, 10) == b"leaf"
    await f.closed()
    with pytest.raises(RemoteError) as e:
        await tree.client.walk((*names[:18], "nope", "x"))
    assert e.value.code == abi.NOTFOUND
    assert tree.client.fids_in_use == 0
    assert tree.client.transport.server.fids == 1  # type: ignore[attr-defined]  # the root alone
