"""The console as a tty, from a program's side: reading keys and lines, starting a job in front.

A program whose stdin is a console (the environment says TTY=1) does not wait for keys pushed at
it: it *asks* -- READ_KEY for one key, READ_LINE for a line the console edits and echoes -- so
the console only ever hands keys to a reader that is reading (drivers/tty.py says why). Other
stdins (pipes, a test feeding text) keep the push protocol: CHAR and WRITE messages received.

`foreground()` is how login and the shell put a program in front: a fresh reader channel is
given to the console through our own reader (stdin) *before* the program starts, so nothing it
reads can go to anyone else; only the reader in front may do this (a process left behind by a
logged-out user cannot put itself in front of the next login). `background()` pops it when the
program is gone. Ctrl+C is sent, as INTERRUPT, to the controller handle given with it. The
console's owner (init) pushes its first reader, its getty entry, on the console's writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from euralios.std import abi
from euralios.std.carried import discard
from euralios.std.errors import SyscallError
from euralios.std.fs import take_bytes
from euralios.std.message import Handle, Memory, Message

if TYPE_CHECKING:
    from euralios.std.syscalls import Sys

TTY_ENV = "TTY"  # environment variable: "1" when stdin is a console's reader channel
ECHO = abi.TTY_ECHO
ISIG = abi.TTY_ISIG


async def read_key(sys: Sys, handle: int, isig: bool = True) -> int | None:
    """The next key typed on the console (None: the console is gone)."""
    try:
        reply = await sys.rcall(handle, abi.READ_KEY, ISIG if isig else 0)
    except SyscallError as e:
        if e.code in (abi.CLOSED, abi.INVALID_HANDLE):
            return None
        raise
    if reply.tag == abi.CHAR and isinstance(reply.d2, int):
        return reply.d2
    return None


async def read_line(sys: Sys, handle: int, echo: bool = True, isig: bool = True) -> str:
    """A line edited (and echoed, if asked) by the console, with its newline; "" at end of input
    (Ctrl+D on an empty line, or the console gone)."""
    try:
        reply = await sys.rcall(handle, abi.READ_LINE, (ECHO if echo else 0) | (ISIG if isig else 0))
    except SyscallError as e:
        if e.code in (abi.CLOSED, abi.INVALID_HANDLE):
            return ""
        raise
    if reply.tag == abi.DATA and isinstance(reply.d3, Memory):
        return (await take_bytes(sys, reply)).decode("utf-8", "replace")
    return ""


async def foreground(sys: Sys, console: int, controller: int | None = None) -> tuple[int, int]:
    """Push a new foreground reader through `console` (our reader handle on top, or an empty
    console's writer); returns the handle to give
    the program as its stdin and the entry's number (for :func:`background` once the program is
    gone). `controller` (moved to the console) is told INTERRUPT on Ctrl+C. SyscallError when
    `console` is not a console (it refuses FOREGROUND)."""
    ours, theirs = await sys.new_rendezvous()
    ctl: Handle | int = Handle(controller) if controller is not None else 0
    try:
        reply = await sys.rcall(console, abi.FOREGROUND, Handle(ours), ctl, expect=abi.OK)
    except SyscallError as e:
        if isinstance(e.message, Message) and e.message.tag == abi.FOREGROUND:
            await discard(sys, e.message)  # not delivered: the handles came back to us
        await sys.close(theirs)
        raise
    return theirs, reply.d2 if isinstance(reply.d2, int) else 0


async def background(sys: Sys, console: int, entry: int) -> None:
    """The program of foreground entry `entry` is gone: the console gives its keys to the
    reader below (errors ignored: a console that went away has no entry left either)."""
    try:
        await sys.rcall(console, abi.BACKGROUND, entry)
    except SyscallError:
        pass


def interrupt_message() -> Message:
    return Message(abi.INTERRUPT, 0, 0)
