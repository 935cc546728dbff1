"""Serving requests on a rendezvous: the one receive-and-answer loop every server runs.

A server receives a request, works out its answer and sends it back; the rules around that are
the same for every server, and each got them wrong at some point, so they live here once:

* a reply goes only to a sender that waits for one (the message came with REPLY_EXPECTED,
  `Message.reply`); anything a reply would have carried to a sender that does not wait (a
  chunk, a handle) is given back, or it leaks for the life of the server;
* a reply that cannot be delivered (the caller died or dropped its handle meanwhile) comes back
  to us, or never left: it is given back too, and serving goes on;
* CLOSED on receive means every client and the mount are gone: the loop ends;
* RECV_BLOCKING on receive means we still owe a waiting caller a reply (a bug of ours: a request
  taken and never answered). The caller is answered (`owed`) so it is free and we do not spin;
* a SyscallError while handling a request (no memory for a reply chunk, a length longer than
  its chunk) is answered ERROR(code): one bad request must not end the server.

Two ways to use it. `serve` runs the whole loop round a handler that turns a request into its
reply (None: nothing to say; Last(reply): answer, then stop serving, as a session's CLOSE does):

    async def handle(msg: Message) -> Message | Last | None: ...
    await serve(sys, STDIN, handle)

`Requests` is the loop's receiving half, for code that waits for one particular message or
answers inline:

    requests = Requests(sys, handle)
    async for msg in requests:
        ...
        await requests.reply(msg, answer)

What is *in* a request stays the handler's to give back (`discard`): some handlers keep a chunk
a request brought and send it back in the reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from euralios.std import abi
from euralios.std.carried import discard
from euralios.std.errors import SyscallError
from euralios.std.message import Message

if TYPE_CHECKING:
    from euralios.std.syscalls import Sys

OWED = Message(abi.ERROR, abi.PARAM, 0)  # the default answer to a caller we forgot to answer


@dataclass(frozen=True, slots=True)
class Last:
    """A handler's answer that also ends the loop once it is sent (a session's CLOSE)."""

    reply: Message | None = None


Handler = Callable[[Message], Awaitable[Message | Last | None]]


class OnError(Enum):
    """What a receive error other than CLOSED and RECV_BLOCKING does to the loop."""

    END = "end"  # the handle is unusable: stop serving it (a session thread just ends)
    RAISE = "raise"  # let it propagate (the process dies and its supervisor restarts it)


async def reply(sys: Sys, handle: int, request: Message, response: Message | None) -> None:
    """Answer `request` (received on `handle`) with `response`, by the rules above: sent only
    if the sender waits, given back (`discard`) if nobody waits or it cannot be delivered."""
    if response is None:
        return
    if not request.reply:
        await discard(sys, response)  # e.g. a QUERY sent without waiting: drop the listing
        return
    try:
        await sys.send(handle, response)
    except SyscallError as e:
        await discard(sys, e.message if isinstance(e.message, Message) else response)


class Requests:
    """The messages received on `handle`, as an async iterator that ends at CLOSED.

    owed: the answer to a caller left waiting (RECV_BLOCKING). on_error: what any other receive
    error does (OnError)."""

    __slots__ = ("sys", "handle", "owed", "on_error")

    def __init__(self, sys: Sys, handle: int, owed: Message = OWED, on_error: OnError = OnError.END) -> None:
        self.sys = sys
        self.handle = handle
        self.owed = owed
        self.on_error = on_error

    def __aiter__(self) -> Requests:
        return self

    async def __anext__(self) -> Message:
        while True:
            try:
                return await self.sys.receive(self.handle)
            except SyscallError as e:
                if not await self.failed(e):
                    raise StopAsyncIteration from None

    async def failed(self, e: SyscallError) -> bool:
        """After receive raised `e`: True to receive again, False when serving is over."""
        if e.code == abi.CLOSED:
            return False  # unmounted, and nobody holds a handle
        if e.code == abi.RECV_BLOCKING:
            try:
                await self.sys.send(self.handle, self.owed)
            except SyscallError:
                pass
            return True
        if self.on_error is OnError.RAISE:
            raise e
        return False

    async def reply(self, request: Message, response: Message | None) -> None:
        """`reply` on this loop's handle."""
        await reply(self.sys, self.handle, request, response)


async def serve(sys: Sys, handle: int, handler: Handler, owed: Message = OWED,
                on_error: OnError = OnError.END) -> None:
    """Serve `handle` until CLOSED or a Last answer: each request's reply is what `handler`
    returns (None: no reply); a SyscallError it raises is answered ERROR(code) and serving goes
    on. (The loop of `Requests`, written out: servers' hot path, one coroutine less a request.)"""
    requests = Requests(sys, handle, owed, on_error)
    receive = sys.receive
    while True:
        try:
            msg = await receive(handle)
        except SyscallError as e:
            if await requests.failed(e):
                continue
            return
        try:
            response = await handler(msg)
        except SyscallError as e:
            response = Message(abi.ERROR, e.code, 0)
        if isinstance(response, Last):
            await reply(sys, handle, msg, response.reply)
            return
        await reply(sys, handle, msg, response)
