"""The terminal line discipline of one console, sans-IO: typed keys, who reads them, and echo.

Why it exists (issue 15): keys used to pass keyboard driver -> init -> a forwarder -> login ->
shell -> program, each hop a blocking send, so a key typed while a program was starting waited
in a send to a reader that had stopped reading -- and the console was lost. Now, as on Unix, the
console itself keeps each console's input and knows its *foreground reader*:

* Keys arrive with :meth:`Tty.key` and wait in a bounded queue (type-ahead is kept, in order).
* Readers stack up: whoever starts a program in front pushes an :class:`Entry` for it (login
  for its shell, the shell for each command); the top entry is the foreground. When its
  program is gone the entry is popped and the keys typed meanwhile go to the one below.
* Readers *pull*: an entry gets keys only while it has a :class:`Request` pending (a READ_KEY
  for one key, a READ_LINE for an edited line), so a key is never handed to a program that has
  stopped reading. A line is edited here (Backspace, Ctrl+U, Ctrl+W) and echoed when the
  request asks for echo -- the console echoes, not the program, which is what makes typing fast.
* Ctrl+C with ISIG is not a key: it flushes the input and tells the entry's controller (the
  shell that started the job) to interrupt it.

Nothing here performs I/O: every call returns the :class:`Output` the console driver must act on
(bytes to render, entries whose answer is ready, controllers to signal).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag
from typing import Any

from euralios.std.keys import MAX_UNICODE

QUEUE_LIMIT = 4096  # keys typed ahead and not yet read; beyond this they are dropped (a full buffer)
LINE_LIMIT = 4096  # characters in one edited line
CTRL_C = 3
CTRL_D = 4
CTRL_U = 21
CTRL_W = 23
BACKSPACES = (8, 127)
ENTERS = (10, 13)


class Mode(IntFlag):
    """What a read asks of the discipline (the bits of a READ_KEY / READ_LINE request)."""

    ECHO = 1  # READ_LINE: show what is typed
    ISIG = 2  # Ctrl+C interrupts the job instead of being read


class Kind(IntEnum):
    KEY = 1  # one key code, as typed
    LINE = 2  # an edited line ending in "\n" ("" at Ctrl+D on an empty line: end of input)


@dataclass
class Request:
    kind: Kind
    mode: Mode


@dataclass(eq=False)
class Entry:
    """One foreground reader: the program an entry was pushed for, and the controller (a handle
    number in the driver, or None) told about Ctrl+C. `answer` is set when its request is met:
    an int key code, or a str line."""

    channel: int
    controller: int | None = None
    request: Request | None = None
    answer: int | str | None = None
    isig: bool = True  # as its last request asked (before any: on)
    line: list[str] = field(default_factory=list)
    taken: list[int] = field(default_factory=list)  # the keys its pending request consumed
    gone: bool = False
    wakeup: Any = None  # the driver's: where the entry's thread waits for its answer
    parent: Entry | None = None  # the reader that pushed it (None: the terminal's owner)


@dataclass
class Output:
    """What the driver must do after a call: render `echo`, wake the entries in `ready` (their
    answer is set), tell each controller in `signal` to interrupt its job."""

    echo: bytearray = field(default_factory=bytearray)
    ready: list[Entry] = field(default_factory=list)
    signal: list[int] = field(default_factory=list)


class Tty:
    """One console's input: the queue of keys, the stack of readers, the line being edited."""

    def __init__(self) -> None:
        self.queue: deque[int] = deque()
        self.stack: list[Entry] = []
        self.dropped = 0  # keys lost to a full queue (shown by the driver's QUERY)

    @property
    def top(self) -> Entry | None:
        return self.stack[-1] if self.stack else None

    # ------------------------------------------------------------------ events
    def push(self, entry: Entry) -> Output:
        """A new foreground reader (its program starts now). The old top keeps its request
        pending until it is on top again. A Ctrl+C waiting in the queue interrupts the new job."""
        self.stack.append(entry)
        out = Output()
        if entry.controller is not None and CTRL_C in self.queue:
            # Ctrl+C typed while its job was being started (after the Enter that started it):
            # it is for this job, and takes what was typed before it along, as on Unix.
            while self.queue.popleft() != CTRL_C:
                pass
            out.signal.append(entry.controller)
        return out

    def pop(self, entry: Entry) -> Output:
        """`entry`'s program is gone: the reader below (if it was on top) gets the type-ahead."""
        entry.gone = True
        if entry in self.stack:
            self.stack.remove(entry)
        out = Output()
        self._pump(out)
        return out

    def request(self, entry: Entry, kind: Kind, mode: Mode) -> Output:
        """`entry`'s program waits for a key or a line."""
        entry.request = Request(kind, mode)
        entry.isig = bool(mode & Mode.ISIG)
        entry.answer = None
        entry.taken.clear()
        out = Output()
        self._pump(out)
        return out

    def answered(self, entry: Entry) -> int | str | None:
        """The answer the driver now sends (the request is over)."""
        answer, entry.answer, entry.request = entry.answer, None, None
        entry.taken.clear()
        return answer

    def undeliverable(self, entry: Entry) -> Output:
        """`entry`'s program died before its answer reached it: the keys it took go back to the
        front of the queue, for the reader below, and the entry is popped."""
        self.queue.extendleft(reversed(entry.taken))
        entry.taken.clear()
        entry.answer = entry.request = None
        entry.line.clear()
        return self.pop(entry)

    def key(self, code: int) -> Output:
        """A key typed on this console."""
        out = Output()
        top = self.top
        if code == CTRL_C and top is not None and top.controller is not None and top.isig:
            # The job is interrupted; what was typed for it goes with it, as on Unix.
            self.queue.clear()
            if top.line and top.request is not None and top.request.mode & Mode.ECHO:
                out.echo += b"^C\n"
            top.line.clear()
            out.signal.append(top.controller)
            return out
        if len(self.queue) >= QUEUE_LIMIT:
            self.dropped += 1
            return out
        self.queue.append(code)
        self._pump(out)
        return out

    # ------------------------------------------------------------------ the discipline
    def _pump(self, out: Output) -> None:
        """Feed queued keys to the foreground reader while it has a request pending."""
        top = self.top
        if top is None:
            return
        while self.queue and top.request is not None and top.answer is None:
            code = self.queue.popleft()
            top.taken.append(code)
            if top.request.kind == Kind.KEY:
                top.answer = code
            else:
                self._edit(top, code, out)
            if top.answer is not None:
                out.ready.append(top)

    def _edit(self, entry: Entry, code: int, out: Output) -> None:
        """One key of a READ_LINE: edit the line, echo if asked, answer it at Enter."""
        assert entry.request is not None
        echo = bool(entry.request.mode & Mode.ECHO)
        line = entry.line
        if code in ENTERS:
            entry.answer = "".join(line) + "\n"
            line.clear()
            if echo:
                out.echo += b"\n"
        elif code in BACKSPACES:
            if line:
                line.pop()
                if echo:
                    out.echo += b"\b \b"
        elif code == CTRL_U:
            if echo:
                out.echo += b"\b \b" * len(line)
            line.clear()
        elif code == CTRL_W:
            n = len(line)
            while n and line[n - 1] == " ":
                n -= 1
            while n and line[n - 1] != " ":
                n -= 1
            if echo:
                out.echo += b"\b \b" * (len(line) - n)
            del line[n:]
        elif code == CTRL_D:
            if not line:
                entry.answer = ""  # end of input
        elif (code >= 32 or code == 9) and code <= MAX_UNICODE and len(line) < LINE_LIMIT:
            ch = chr(code)
            line.append(ch)
            if echo:
                out.echo += ch.encode("utf-8", "replace")
        # other control characters and special keys (arrows, F-keys) mean nothing in a line
