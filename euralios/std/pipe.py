"""Pipes: the bytes one process prints, read by another as its stdin (`a | b`).

A program prints by sending `Long(WRITE, n, chunk)` to its stdout and waiting for OK, and reads
stdin by receiving `CHAR` keys or `WRITE` text (proc.read_key). A pipe joins the two with two
rendezvous and a server between them, two threads of the process that made it (the shell):

* intake: receives the writers' WRITEs, queues their chunks (no copy: a chunk's pages move on to
  the reader) and answers OK at once while the pipe holds at most `limit` bytes, so a writer is
  held up by a slow reader only once that much is waiting (a full pipe, as on Unix);
* output: sends the queue to the reader's stdin, in order.

The ends: when every writer has dropped its handle (exited), the reader is sent `Short(EMPTY)`
after the last text: end of input (read_key answers None). When the reader has gone, every
write is answered ERROR(CLOSED), so a writer that prints for ever (`yes | head`) stops. Keys
may be queued too (`put_key`, the shell forwarding what is typed to the last stage of a
pipeline): they go after the end of input, so a pager reads all its text, then its keys.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from euralios.std import abi
from euralios.std.carried import discard
from euralios.std.errors import SyscallError
from euralios.std.message import Memory, Message
from euralios.std.serve import reply
from euralios.std.sync import Wakeup

if TYPE_CHECKING:
    from euralios.std.syscalls import Sys

PIPE_BUFFER = 64 * 1024  # bytes a pipe holds before a writer waits
END_OF_INPUT = Message(abi.EMPTY, 0, 0)  # to the reader: no writer is left


class Pipe:
    """One pipe. `Pipe.open(proc)` makes it and starts its threads; give `write_end` to the
    writer (exec's stdout) and `read_end` to the reader (exec's stdin): exec moves them."""

    def __init__(self, sys: Sys, intake: int, output: int, limit: int, data: Wakeup, room: Wakeup) -> None:
        self.sys = sys
        self._in = intake  # our handle on the writers' rendezvous: WRITEs arrive here
        self._out = output  # our handle on the reader's rendezvous: we send to it
        self.limit = limit
        self.queue: deque[Message] = deque()  # text not yet taken by the reader
        self.keys: deque[int] = deque()  # keys for the reader, once its text has ended
        self.buffered = 0  # bytes of text in the queue
        self.writers_gone = False
        self.reader_gone = False
        self.closed = False
        self._data = data  # the output thread sleeps here until there is something to send
        self._room = room  # the intake thread sleeps here while the pipe is full
        self.write_end = -1
        self.read_end = -1
        self._threads = 2
        self.unread_keys: list[int] = []  # keys queued for a reader that left without them

    @classmethod
    async def open(cls, proc: Any, limit: int = PIPE_BUFFER) -> Pipe:
        sys = proc.sys
        w_ours, w_theirs = await sys.new_rendezvous()
        r_ours, r_theirs = await sys.new_rendezvous()
        pipe = cls(sys, w_ours, r_ours, limit, await Wakeup.new(sys), await Wakeup.new(sys))
        pipe.write_end, pipe.read_end = w_theirs, r_theirs
        await proc.spawn_thread(pipe._intake)
        await proc.spawn_thread(pipe._output)
        return pipe

    # ------------------------------------------------------------------ the owner's side
    async def put_key(self, code: int) -> None:
        """Queue a key for the reader, to follow the end of its input. SyscallError(CLOSED)
        once the reader has gone (the key is then somebody else's)."""
        if self.reader_gone or self.closed:
            raise SyscallError(abi.CLOSED, detail="the pipe's reader has gone")
        self.keys.append(code)
        await self._data.wake()

    async def close(self) -> None:
        """Stop serving: both our handles are dropped (a reader still reading sees the end of
        its input; a writer still writing, CLOSED) and the threads end; unsent text is freed."""
        if self.closed:
            return
        self.closed = True
        for h in (self._in, self._out):
            try:
                await self.sys.close(h)
            except SyscallError:
                pass
        await self._data.wake()
        await self._room.wake()

    # ------------------------------------------------------------------ the threads
    async def _intake(self) -> None:
        sys = self.sys
        while not self.closed:
            try:
                msg = await sys.receive(self._in)
            except SyscallError as e:
                if e.code == abi.RECV_BLOCKING:  # a reply we owe (never, but do not spin on it)
                    try:
                        await sys.send(self._in, Message(abi.ERROR, abi.PARAM, 0))
                    except SyscallError:
                        pass
                    continue
                break  # CLOSED: every writer is gone (or we closed)
            if msg.tag != abi.WRITE or not isinstance(msg.d3, Memory):
                await discard(sys, msg)
                await reply(sys, self._in, msg, Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0))
                continue
            if self.reader_gone or self.closed:
                await discard(sys, msg)
                await reply(sys, self._in, msg, Message(abi.ERROR, abi.CLOSED, 0))
                continue
            n = msg.d2 if isinstance(msg.d2, int) else 0
            self.queue.append(Message(abi.WRITE, n, msg.d3))
            self.buffered += n
            await self._data.wake()
            while self.buffered > self.limit and not (self.reader_gone or self.closed):
                await self._room.sleep()
            await reply(sys, self._in, msg, Message(abi.OK, n, 0))
        self.writers_gone = True
        await self._data.wake()
        await self._ended()

    async def _output(self) -> None:
        sys = self.sys
        eof_sent = False
        while True:
            while not self.queue and not (self.writers_gone and (not eof_sent or self.keys)) and not self.closed:
                await self._data.sleep()
            if self.closed:
                break
            if self.queue:
                msg = self.queue.popleft()
            elif not eof_sent:
                msg = END_OF_INPUT
            else:
                msg = Message(abi.CHAR, self.keys.popleft(), 0)
            try:
                await sys.send(self._out, msg)
            except SyscallError as e:
                self._unsent(msg)
                await discard(sys, e.message if isinstance(e.message, Message) else msg)  # back to us
                self.reader_gone = True
                break
            if msg is END_OF_INPUT:
                eof_sent = True
            elif msg.tag == abi.WRITE:
                self.buffered -= msg.d2 if isinstance(msg.d2, int) else 0
                if self.buffered <= self.limit:
                    await self._room.wake()
        self.reader_gone = True
        while self.queue:
            await discard(sys, self.queue.popleft())
        self.unread_keys.extend(self.keys)
        self.keys.clear()
        self.buffered = 0
        await self._room.wake()
        if not self.closed:
            try:
                await sys.close(self._out)  # nobody reads: the reader's handle is all that is left
            except SyscallError:
                pass
            self._out = -1
        await self._ended()

    def _unsent(self, msg: Message) -> None:
        if msg.tag == abi.CHAR and isinstance(msg.d2, int):
            self.unread_keys.append(msg.d2)

    async def _ended(self) -> None:
        """A thread is done; the last one gives back the wake-up rendezvous."""
        self._threads -= 1
        if self._threads == 0:
            await self._data.close()
            await self._room.close()
