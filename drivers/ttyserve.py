"""The tty protocol served by a driver: foreground readers, their requests, Ctrl+C.

drivers/tty.py is the line discipline (sans-IO); this is the part with I/O, shared by the two
drivers whose lines are terminals -- the console driver (one tty per virtual console) and the
serial driver (the line on COM1, `euralios --serial`) -- so the protocol lives once:

| Message (on a reader handle) | Answer |
|---|---|
| Short(READ_KEY, mode) | Short(CHAR, code), when a key is typed |
| Short(READ_LINE, mode) | Long(DATA, n, Memory(line)), or Short(EMPTY) at end of input, at Enter |
| Long(FOREGROUND, Handle(reader), Handle(controller) or Value(0)) | only from the reader on top: a new reader above it (its child's stdin); OK(entry number), else ERROR(DENIED) |
| Short(BACKGROUND, entry) | that reader (pushed by this one) has no program any more: pop it; OK, or ERROR(PARAM) |

| Message (on the terminal's writer handle) | Answer |
|---|---|
| Long(FOREGROUND, ...) | only while the terminal has no reader at all: its owner's first reader (init's getty entry, pushed before any program runs there); ERROR(DENIED) after |

Why pushes go through readers (security): every program printing on a console holds its
writer, so if the writer could push, a process left behind by a logged-out user could put itself
in front of the next `login:` and read the password typed there. Only the program in front can
put another in front of itself, and an entry whose program is gone takes its channel with it.

Each reader gets a thread of its own (a thread owes one reply at a time); Ctrl+C for a job is
Short(INTERRUPT) sent to its controller from a short-lived thread, so no program can hold the
driver up. `render(tid, bytes)` is the driver's: it shows the discipline's echo.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from drivers.tty import Entry, Kind, Mode, Output, Tty
from euralios.std import Handle, Message, SyscallError, abi, discard
from euralios.std.fs import send_bytes
from euralios.std.sync import Wakeup

KINDS = {abi.READ_KEY: Kind.KEY, abi.READ_LINE: Kind.LINE}


class TtyServer:
    """The terminals of one driver, by id (a console number; 0 for a serial line)."""

    def __init__(self, proc, render: Callable[[int, bytes], Awaitable[None]]) -> None:
        self.proc = proc
        self.sys = proc.sys
        self.render = render
        self.ttys: dict[int, Tty] = {}
        self.entries: dict[int, tuple[int, Entry]] = {}  # entry number -> (terminal, entry)
        self.next_entry = 1

    def add(self, tid: int) -> Tty:
        tty = self.ttys[tid] = Tty()
        return tty

    def remove(self, tid: int) -> None:
        self.ttys.pop(tid, None)

    def status(self, tid: int) -> dict[str, int]:
        """What QUERY tells of a terminal's input."""
        tty = self.ttys[tid]
        return {"readers": len(tty.stack), "typeahead": len(tty.queue), "dropped": tty.dropped}

    async def key(self, tid: int, code: int) -> None:
        """A key typed on terminal `tid`."""
        await self.apply(tid, self.ttys[tid].key(code))

    async def request(self, tid: int, msg: Message) -> Message | None:
        """FOREGROUND on terminal `tid`'s writer (its owner's first reader); None: not a tty
        request."""
        if msg.tag == abi.FOREGROUND and msg.is_long and isinstance(msg.d2, Handle) and msg.reply:
            if self.ttys[tid].stack:
                await discard(self.sys, msg)
                return Message(abi.ERROR, abi.DENIED, 0)
            return await self.foreground(tid, msg, None)
        if msg.tag in (abi.FOREGROUND, abi.BACKGROUND):
            await discard(self.sys, msg)
            return Message(abi.ERROR, abi.DENIED, 0)
        return None

    async def reader_request(self, tid: int, entry: Entry, msg: Message) -> Message:
        """FOREGROUND / BACKGROUND from the program reading through `entry`."""
        tty = self.ttys[tid]
        if msg.tag == abi.FOREGROUND and msg.is_long and isinstance(msg.d2, Handle):
            if tty.top is not entry:
                await discard(self.sys, msg)
                return Message(abi.ERROR, abi.DENIED, 0)  # only the reader in front
            return await self.foreground(tid, msg, entry)
        if msg.tag == abi.BACKGROUND and not msg.is_long:
            found = self.entries.get(msg.d2) if isinstance(msg.d2, int) else None
            if found is None or found[0] != tid or found[1].parent is not entry:
                return Message(abi.ERROR, abi.PARAM, 0)
            await self.drop(tid, found[1])
            return Message(abi.OK, 0, 0)
        await discard(self.sys, msg)
        return Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)

    # ------------------------------------------------------------------ readers
    async def foreground(self, tid: int, msg: Message, parent: Entry | None) -> Message:
        """FOREGROUND: a new reader in front of terminal `tid`, served by a thread of its own."""
        sys = self.sys
        assert isinstance(msg.d2, Handle)
        entry = Entry(msg.d2.number, msg.d3.number if isinstance(msg.d3, Handle) else None)
        entry.parent = parent
        try:
            wakeup = await Wakeup.new(sys)
        except SyscallError as e:
            await discard(sys, msg)
            return Message(abi.ERROR, e.code, 0)
        number = self.next_entry
        self.next_entry += 1
        try:
            await self.proc.spawn_thread(self.serve_entry, tid, number, entry, wakeup)
        except SyscallError as e:  # out of threads: this terminal gets no new reader, the rest live
            await discard(sys, msg)
            await wakeup.close()
            return Message(abi.ERROR, e.code, 0)
        self.entries[number] = (tid, entry)
        entry.wakeup = wakeup
        await self.apply(tid, self.ttys[tid].push(entry))
        return Message(abi.OK, number, 0)

    async def drop(self, tid: int, entry: Entry) -> None:
        """The entry's program is gone: pop it; its thread ends at its next wake-up."""
        if entry.gone:
            return
        await self.apply(tid, self.ttys[tid].pop(entry))
        if entry.wakeup is not None:
            await entry.wakeup.wake()

    async def apply(self, tid: int, out: Output) -> None:
        """Do what the line discipline asked: echo, hand answers over, signal controllers."""
        if out.echo:
            await self.render(tid, bytes(out.echo))
        for entry in out.ready:
            if entry.wakeup is not None:
                await entry.wakeup.wake()
        for controller in out.signal:
            try:
                await self.proc.spawn_thread(self.signal, controller)
            except SyscallError:
                pass  # out of threads: this Ctrl+C is lost, the terminal lives

    async def signal(self, controller: int) -> None:
        """Tell a job's controller that Ctrl+C was typed (a thread: it may be slow to listen)."""
        try:
            await self.sys.send(controller, Message(abi.INTERRUPT, 0, 0))
        except SyscallError:
            pass

    async def serve_entry(self, tid: int, number: int, entry: Entry, wakeup: Wakeup) -> None:
        """One foreground reader: take its READ_KEY / READ_LINE requests, answer each when the
        line discipline has met it. Ends when the reader is gone (its channel closed, or the
        program that pushed it said BACKGROUND)."""
        sys = self.sys
        tty = self.ttys[tid]
        try:
            while not entry.gone:
                try:
                    msg = await sys.receive(entry.channel)
                except SyscallError:
                    break  # the reader is gone
                kind = KINDS.get(msg.tag)
                if entry.gone or kind is None or msg.is_long or not isinstance(msg.d2, int) or not msg.reply:
                    answer = await self.reader_request(tid, entry, msg) if not entry.gone else None
                    if answer is None:
                        await discard(sys, msg)
                    if msg.reply:
                        await sys.send(entry.channel, answer or Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0))
                    elif answer is not None:
                        await discard(sys, answer)
                    continue
                await self.apply(tid, tty.request(entry, kind, Mode(msg.d2 & (Mode.ECHO | Mode.ISIG))))
                while entry.answer is None and not entry.gone:
                    await wakeup.sleep()
                if entry.gone:
                    break  # the reply we owe dies with this thread: the reader gets CLOSED
                reply = await self.answer_message(tty.answered(entry))
                try:
                    await sys.send(entry.channel, reply)
                except SyscallError:
                    await discard(sys, reply)
                    await self.apply(tid, tty.undeliverable(entry))  # it died meanwhile
                    break
        finally:
            self.entries.pop(number, None)
            if not entry.gone:
                await self.apply(tid, tty.pop(entry))
            for h in (entry.channel, entry.controller):
                if h is not None:
                    try:
                        await sys.close(h)
                    except SyscallError:
                        pass
            await wakeup.close()

    async def answer_message(self, answer: int | str | None) -> Message:
        if isinstance(answer, int):
            return Message(abi.CHAR, answer, 0)
        if not answer:
            return Message(abi.EMPTY, 0, 0)  # end of input
        data = answer.encode("utf-8", "replace")
        try:
            return Message(abi.DATA, len(data), await send_bytes(self.sys, data))
        except SyscallError as e:
            return Message(abi.ERROR, e.code, 0)
