"""The kernel log fed to a rendezvous, as Linux's /dev/kmsg feeds its reader.

A KlogFeed is a kernel task: it posts kernel-log lines -- those already in the ring from the
`first`-th on, then each as it is logged -- to whoever receives on a rendezvous, as messages
the kernel itself sends: Long(tag, n, chunk) with the text in the chunk (tag WRITE by default,
a writer's message, so a reader that shows text on a console just forwards it). Lines logged
while one message waits for the run loop go out together in the next.

The reader may be slow or stop reading. At most `backlog` messages wait on the rendezvous;
past that, and when there is no memory for a message, lines are counted in `dropped` instead of
queued (the ring still has them, for dmesg). The feed holds one reference to the rendezvous;
when that is the last one (the reader has gone) the feed drops it and ends.

This is how "a killed process prints one line on the system console" (DESIGN.md §2) reaches the
screen: the front door feeds the log to init, which shows it on the system console (F1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from merriwig import abi
from merriwig.errors import OutOfFrames, SpaceError
from merriwig.message import bytes_message

if TYPE_CHECKING:
    from merriwig.kernel import Kernel
    from merriwig.rendezvous import Rendezvous

BACKLOG = 64  # messages parked for the reader at most; beyond, lines are counted as dropped


class KlogFeed:
    """Posts the kernel log on one rendezvous (see the module docstring); Kernel.klog_feed starts it."""

    def __init__(self, kernel: Kernel, r: Rendezvous, *, tag: int = abi.MSG_WRITE, first: int = 0,
                 wrap: tuple[str, str] = ("", ""), backlog: int = BACKLOG) -> None:
        self.kernel = kernel
        self.rendezvous = r
        self.tag = tag
        self.first = first
        self.wrap = wrap  # put around every line (the front door colours kernel lines)
        self.backlog = backlog
        self.dropped = 0  # lines not delivered: reader too far behind, or no memory

    async def run(self) -> None:
        klog = self.kernel.klog
        pending: list[str] = [line for _, line in list(klog.lines)[self.first:]]
        wake = trio.Event()

        def listener(line: str) -> None:
            pending.append(line)
            wake.set()

        klog.listeners.append(listener)
        r = self.rendezvous
        before, after = self.wrap
        try:
            while True:
                if not pending:
                    await wake.wait()
                    wake = trio.Event()
                lines, pending[:] = list(pending), []
                if r.refs <= 1:
                    r.decref()  # the reader has gone
                    return
                if len(r.senders) >= self.backlog:
                    self.dropped += len(lines)
                    continue
                text = "".join(f"{before}{line}{after}\n" for line in lines)
                try:
                    msg = bytes_message(self.kernel.memctx, self.tag, text.encode("utf-8", "replace"))
                except (OutOfFrames, SpaceError):
                    self.dropped += len(lines)  # no memory for it: the ring still has it
                    continue
                r.kernel_send(msg)
                await trio.sleep(0)
        finally:
            klog.listeners.remove(listener)
