"""What the NIC driver tests share (tests/drivers/test_nic.py, test_virtio_net.py): frames,
starting a driver from its source, running a test program, one frame in and out of /dev/nic."""

from __future__ import annotations

from typing import Any

import trio

from euralios.boot import System, program_source
from euralios.std import Memory, Message, abi
from euralios.std.fs import send_bytes, take_bytes

MAC = bytes.fromhex("525400123456")
PEER = bytes.fromhex("020000000002")
BROADCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, n: int, size: int = 100) -> bytes:
    body = n.to_bytes(4, "big") * ((size - 14) // 4 + 1)
    return dst + src + b"\x88\xb5" + body[: size - 14]


def start_server(system: System, path: str, mount: str, args: list[str] | None = None) -> Any:
    """Start a driver from its source as a root program with I/O privilege, serving at ``mount``."""
    r = system.kernel.new_rendezvous(refs=2)  # one for the driver's stdin, one for the mount
    system.vfs.mount(mount, r)
    name = path.rsplit("/", 1)[-1].removesuffix(".py")
    return system.spawn(program_source(path), [name, *(args or [])], io=True, name=name, stdin=r)


async def run(system: System, program: Any) -> None:
    """Run a test program; a failed assert inside it kills it, so re-raise what it recorded."""
    failure: list[BaseException] = []

    async def main(proc: Any) -> int:
        try:
            await program(proc)
        except BaseException as e:  # noqa: BLE001 - carried back to pytest below
            failure.append(e)
            return 1
        return 0

    with trio.fail_after(20):
        status = await system.run(main)
    if failure:
        raise failure[0]
    assert status == 0, system.output()


async def write_frame(proc: Any, h: int, data: bytes) -> Message:
    return await proc.sys.rcall(h, abi.WRITE, len(data), await send_bytes(proc.sys, data))


async def read_frame(proc: Any, h: int, blocking: bool = True) -> bytes | None:
    reply = await proc.sys.rcall(h, abi.READ, 1 if blocking else 0, 0)
    if reply.tag == abi.EMPTY:
        assert (reply.d2, reply.d3) == (0, 0)
        return None
    assert reply.tag == abi.DATA and isinstance(reply.d3, Memory)
    return await take_bytes(proc.sys, reply)


