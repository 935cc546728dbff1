"""The kernel log fed to a rendezvous (merriwig/kmsg.py): lines arrive as the kernel's own
Long(WRITE, n, chunk) messages, a reader that stops reading costs a bounded backlog and a
dropped count, and a feed whose reader has gone gives everything back."""

from __future__ import annotations

import trio
from trio.testing import wait_all_tasks_blocked

from euralios.boot import boot
from euralios.std import STDIN, Memory
from euralios.std import abi as A
from merriwig.kmsg import BACKLOG


async def test_lines_reach_the_reader_as_kernel_write_messages() -> None:
    got: list[tuple[int, str]] = []

    async def reader(proc):
        while len(got) < 2:
            msg = await proc.sys.receive(STDIN)
            assert isinstance(msg.d3, Memory)
            got.append((msg.tag, proc.gate.load(msg.d3.vaddr, msg.d2).decode()))
            await proc.sys.free(msg.d3.vaddr)
        return 0

    async with boot() as system:
        k = system.kernel
        r = k.new_rendezvous(refs=2)  # the reader's stdin and the feed's
        k.klog_feed(r, first=len(k.klog.lines), wrap=("<", ">"))
        k.log("first line")
        child = system.spawn(reader, stdin=r)
        await trio.sleep(0.05)
        k.log("second line")
        with trio.fail_after(5):
            await child.ended.wait()
    assert got == [(A.WRITE, "<first line>\n"), (A.WRITE, "<second line>\n")]


async def test_a_reader_that_never_reads_costs_a_bounded_backlog_and_the_rest_is_dropped() -> None:
    async with boot() as system:
        k = system.kernel
        await trio.sleep(0.05)
        frames, live = k.frames.free_count, k.rendezvous_live
        r = k.new_rendezvous(refs=2)  # the host's reference stands for a reader that never reads
        feed = k.klog_feed(r, first=len(k.klog.lines))
        with trio.fail_after(10):
            for i in range(BACKLOG):
                k.log(f"line {i}")
                await wait_all_tasks_blocked()  # one message per line
            assert len(r.senders) == BACKLOG and feed.dropped == 0
            for i in range(10):
                k.log(f"more {i}")
                await wait_all_tasks_blocked()
        assert len(r.senders) == BACKLOG and feed.dropped == 10
        r.decref()  # the reader goes: the next line ends the feed, which drops its reference
        k.log("nobody reads this")
        await trio.sleep(0.01)
        assert r.refs == 0 and not r.senders
        assert (k.frames.free_count, k.rendezvous_live) == (frames, live)
