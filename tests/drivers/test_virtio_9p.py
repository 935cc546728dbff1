"""drivers/virtio_9p.py on a small system: it finds its device by mount tag, and root reads,
creates and lists files of the host folder at /host/TAG through it; a read-only share refuses
writes; several requests in flight at once come back to the right callers."""

from __future__ import annotations

from pathlib import Path

import pytest

from euralios.boot import boot
from euralios.std import SyscallError, abi
from machine.share.options import ShareOption


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "shared"
    d.mkdir()
    (d / "hello.txt").write_text("hello from the host\n")
    return d


async def test_root_reads_writes_and_lists_a_share(folder: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.txt").write_text("second share\n")
    seen: dict[str, object] = {}

    async def script(proc) -> int:  # type: ignore[no-untyped-def]
        seen["hello"] = await proc.read_file("/host/src/hello.txt")
        await proc.write_file("/host/src/new.txt", "made in the guest\n")
        seen["listing"] = sorted(await proc.listdir("/host/src"))
        seen["b"] = await proc.read_file("/host/docs/b.txt")
        return 0

    async with boot("32M", shares=[ShareOption(str(folder), "src"), ShareOption(str(other), "docs")]) as system:
        system.start_shares()
        assert await system.run(script) == 0
    assert seen["hello"] == b"hello from the host\n"
    assert (folder / "new.txt").read_text() == "made in the guest\n"
    assert "hello.txt" in seen["listing"] and "new.txt" in seen["listing"]  # type: ignore[operator]
    assert seen["b"] == b"second share\n"
    src, docs = system.machine.ninep
    assert src.counters["replies"] > 3 and docs.counters["replies"] > 2  # through each device
    assert src.status & 4 and not src.status & 0x40  # DRIVER_OK, no NEEDS_RESET


async def test_readonly_share_refuses_writes(folder: Path) -> None:
    seen: dict[str, object] = {}

    async def script(proc) -> int:  # type: ignore[no-untyped-def]
        seen["hello"] = await proc.read_file("/host/ro/hello.txt")
        try:
            await proc.write_file("/host/ro/new.txt", "nope")
        except SyscallError as e:
            seen["error"] = e
        return 0

    async with boot("32M", shares=[ShareOption(str(folder), "ro", readonly=True)]) as system:
        system.start_shares()
        assert await system.run(script) == 0
    assert seen["hello"] == b"hello from the host\n"
    error = seen.get("error")
    assert isinstance(error, SyscallError) and error.code == abi.DENIED
    assert not (folder / "new.txt").exists()


async def test_transport_multiplexes_requests_and_fails_cleanly_when_the_device_stops(folder: Path) -> None:
    import trio

    from drivers.virtio_9p import MOUNT_TAG, VirtioTransport, find
    from drivers.virtio_legacy import enable_bus_master
    from proto.ninep import NOTAG, VERSION, Rversion, Rwalk, Tversion, Twalk, attach, decode, encode
    from vfs.ninep import TransportError

    seen: dict[str, object] = {}
    stop = trio.Event()

    async def script(proc) -> int:  # type: ignore[no-untyped-def]
        found = await find(proc, "src")
        assert found is not None
        device, address = found
        await enable_bus_master(proc.sys, address)
        assert await device.start(MOUNT_TAG) == MOUNT_TAG
        queue = await device.queue(proc, 0)
        await device.driver_ok()
        t = VirtioTransport(proc, queue)
        await proc.spawn_thread(t.interrupts)
        assert decode(await t.rpc(encode(Tversion(65536, VERSION), NOTAG)))[1] == Rversion(65536, VERSION)
        await t.rpc(encode(attach(1), 1))
        replies: dict[int, object] = {}
        done = 0

        async def walk(tag: int) -> None:
            nonlocal done
            replies[tag] = decode(await t.rpc(encode(Twalk(1, 10 + tag, ("hello.txt",)), tag)))
            done += 1
            await t.changed.notify()

        for tag in (2, 3, 4):
            await proc.spawn_thread(walk, tag)
        await t.changed.wait_until(lambda: done == 3)
        seen["replies"] = replies
        seen["slots"] = len(t.slots)
        stop.set()  # the host breaks the device now
        await t.changed.wait_until(lambda: t.failed is not None)  # the interrupt thread's news
        try:
            await t.rpc(encode(Twalk(1, 20, ()), 5))
        except TransportError as e:
            seen["failed"] = str(e)
        return 0

    async with boot("32M", shares=[ShareOption(str(folder), "src")]) as system:
        system.start_pci()

        async def breaker() -> None:
            await stop.wait()
            system.machine.ninep[0].needs_reset("broken by the test")

        system.nursery.start_soon(breaker)
        assert await system.run(script, io=True) == 0
    replies = seen["replies"]
    assert isinstance(replies, dict) and sorted(replies) == [2, 3, 4]
    assert all(tag == t and isinstance(r, Rwalk) for t, (tag, r) in replies.items())
    assert seen["slots"] == 3  # three requests were in flight at once, each its own chain
    assert "reset" in str(seen["failed"])


async def test_trace_shows_the_9p_a_file_read_becomes(folder: Path, tmp_path: Path) -> None:
    """boot(trace=...) with a share: reading a host file puts each 9P request the device served
    in the trace, decoded (title, tag, type, fields), with its reply, on the device's track."""
    import json

    path = tmp_path / "trace.json"

    async def script(proc) -> int:  # type: ignore[no-untyped-def]
        assert await proc.read_file("/host/src/hello.txt") == b"hello from the host\n"
        return 0

    async with boot("32M", shares=[ShareOption(str(folder), "src")], trace=str(path)) as system:
        system.start_shares()
        assert await system.run(script) == 0
    events = json.loads(path.read_text())["traceEvents"]
    tracks = {e["pid"] for e in events if e["ph"] == "M" and e["args"]["name"] == "virtio-9p src"}
    assert len(tracks) == 1
    ninep = [e for e in events if e.get("cat") == "9p"]
    assert ninep and all(e["pid"] in tracks for e in ninep)
    requests = [e for e in ninep if e["ph"] == "X"]
    replies = [e for e in ninep if e["ph"] == "i"]
    assert len(requests) == len(replies)  # each request and its reply
    by_type = {}
    for e in requests:
        by_type.setdefault(e["args"]["type"], []).append(e)
    version = by_type["Tversion"][0]
    assert version["args"]["tag"] == "NOTAG" and version["args"]["msize"] >= 128 * 1024
    assert version["args"]["reply"].startswith("Rversion msize=")
    att = by_type["Tattach"][0]["args"]
    assert att["fid"] == 0 and att["afid"] == "NOFID"
    walks = [e for e in by_type["Twalk"] if e["args"]["wnames"] == ["hello.txt"]]
    assert walks and walks[0]["name"] == "Twalk fid=0 newfid=1 wnames=['hello.txt']"
    assert walks[0]["args"]["reply"] == "Rwalk qids=1"
    opened = by_type["Tlopen"][0]["args"]
    assert opened["fid"] == 1 and opened["reply"].startswith("Rlopen ")
    read = by_type["Tread"][0]
    assert read["args"]["fid"] == 1 and read["args"]["offset"] == 0 and read["dur"] >= 0
    rread = next(e for e in replies if e["args"]["type"] == "Rread")
    assert rread["name"] == "Rread count=20" and rread["args"]["tag"] == read["args"]["tag"]
    assert rread["args"]["count"] == 20 and "hello from the host" in rread["args"]["data"]
    assert rread["ts"] >= read["ts"]
