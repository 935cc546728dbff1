"""euralios.std.serve: the request loop every server runs, driven by a test server."""

from __future__ import annotations

from typing import Any

from euralios.std import STDIN, Message, SyscallError, abi
from euralios.std.fs import send_bytes, take_bytes
from euralios.std.serve import Last, serve

ECHO, FAIL, BLOB, SILENT, LAST = 1, 2, 3, 4, 5
LAST_STATUS = 77


async def toy_server(proc: Any) -> int:
    """Echo d2 + 1; FAIL raises; BLOB answers a chunk; SILENT says nothing; LAST ends serving."""
    sys = proc.sys

    async def handle(msg: Message) -> Message | Last | None:
        if msg.tag == ECHO:
            return Message(abi.OK, msg.d2 + 1 if isinstance(msg.d2, int) else 0, 0)
        if msg.tag == FAIL:
            raise SyscallError(abi.NOMEMSLOTS)
        if msg.tag == BLOB:
            return Message(abi.DATA, 4, await send_bytes(sys, b"blob"))
        if msg.tag == SILENT:
            return None
        if msg.tag == LAST:
            return Last(Message(abi.OK, 0, 0))
        return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)

    await serve(sys, STDIN, handle)
    return LAST_STATUS if proc.args[1:] == ["last"] else 0


async def start(proc: Any, last: bool = False) -> tuple[int, Any]:
    ours, theirs = await proc.sys.new_rendezvous()
    child = await proc.exec(toy_server, args=["server", *(["last"] if last else [])], stdin=theirs)
    return ours, child


async def test_replies_go_to_waiting_callers_only(guest: Any) -> None:
    async def body(proc: Any) -> None:
        sys = proc.sys
        h, child = await start(proc)
        assert await sys.send_receive(h, Message(ECHO, 41, 0)) == Message(abi.OK, 42, 0)
        await sys.send(h, Message(BLOB, 0, 0))  # nobody waits: the blob is given back, not sent
        reply = await sys.send_receive(h, Message(BLOB, 0, 0))
        assert await take_bytes(sys, reply) == b"blob"
        assert await sys.send_receive(h, Message(ECHO, 1, 0)) == Message(abi.OK, 2, 0)
        await sys.close(h)
        assert await child.wait() == 0  # CLOSED ends the loop

    await guest(body)


async def test_a_failing_request_is_answered_and_serving_goes_on(guest: Any) -> None:
    async def body(proc: Any) -> None:
        sys = proc.sys
        h, child = await start(proc)
        assert await sys.send_receive(h, Message(FAIL, 0, 0)) == Message(abi.ERROR, abi.NOMEMSLOTS, 0)
        assert await sys.send_receive(h, Message(ECHO, 7, 0)) == Message(abi.OK, 8, 0)
        await sys.close(h)
        assert await child.wait() == 0

    await guest(body)


async def test_a_caller_left_waiting_is_answered(guest: Any) -> None:
    """A request answered with None while its sender waits: the server's next receive says it
    owes a reply (RECV_BLOCKING), and the loop frees the caller with ERROR(PARAM)."""

    async def body(proc: Any) -> None:
        sys = proc.sys
        h, child = await start(proc)
        assert await sys.send_receive(h, Message(SILENT, 0, 0)) == Message(abi.ERROR, abi.PARAM, 0)
        assert await sys.send_receive(h, Message(ECHO, 0, 0)) == Message(abi.OK, 1, 0)
        await sys.close(h)
        assert await child.wait() == 0

    await guest(body)


async def test_last_answers_then_ends_the_loop(guest: Any) -> None:
    async def body(proc: Any) -> None:
        sys = proc.sys
        h, child = await start(proc, last=True)
        assert await sys.send_receive(h, Message(LAST, 0, 0)) == Message(abi.OK, 0, 0)
        assert await child.wait() == LAST_STATUS
        await sys.close(h)

    await guest(body)
