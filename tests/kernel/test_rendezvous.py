"""Rendezvous IPC at the register level: every state, FIFO queues, reply routing, CLOSED.

Where the order of threads matters (a receiver parked before the send, senders queued one by
one), a thread waits with `idle()`: trio's wait_all_tasks_blocked, which returns once every
other thread has run until it blocks -- the state each test sets up, reached without a guess
at how long that takes."""

from __future__ import annotations

import trio
import trio.testing

from euralios.boot import boot
from euralios.std import Handle, Memory, Message, SyscallError
from euralios.std import abi as A


async def idle() -> None:
    """Return once every other thread has run until it blocks."""
    await trio.testing.wait_all_tasks_blocked()


async def run(main, **kw) -> tuple[int, str]:
    async with boot(**kw) as system:
        status = await system.run(main)
        return status, system.output()


async def test_send_to_waiting_receiver_delivers_and_sender_continues() -> None:
    log: list[object] = []

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()

        async def receiver():
            log.append(await proc.gate.syscall(A.RECEIVE, h2))

        await proc.spawn_thread(receiver)
        await idle()  # the receiver is now parked
        log.append(await proc.gate.syscall(A.SEND | (h1 << 32), 1, 2, 3))
        await idle()
        return 0

    status, _ = await run(main)
    assert status == 0
    assert log == [(0, 0, 0, 0), (0, 1, 2, 3)]


async def test_second_sender_queues_in_fifo_order_instead_of_send_blocking() -> None:
    got: list[int] = []

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()

        async def sender(n):
            await proc.sys.send(h1, Message(n))

        for n in (1, 2, 3):
            await proc.spawn_thread(sender, n)
            await idle()  # each parks before the next arrives
        # All three are parked in the queue; none got SEND_BLOCKING.
        for _ in range(3):
            got.append((await proc.sys.receive(h2)).tag)
        return 0

    assert (await run(main))[0] == 0
    assert got == [1, 2, 3]


async def test_send_receive_replies_are_routed_to_the_calling_thread() -> None:
    answers: dict[int, int] = {}

    async def main(proc):
        client, server = await proc.sys.new_rendezvous()

        async def serve():
            for _ in range(2):
                req = await proc.sys.receive(server)
                assert req.reply
                await idle()  # the other caller is waiting too when this one is answered
                await proc.sys.send(server, Message(req.tag * 10))

        async def call(n):
            answers[n] = (await proc.sys.send_receive(client, Message(n))).tag

        await proc.spawn_thread(call, 1)
        await proc.spawn_thread(call, 2)
        await proc.spawn_thread(serve)
        await idle()
        return 0

    assert (await run(main))[0] == 0
    assert answers == {1: 10, 2: 20}


async def test_receive_while_owing_a_reply_is_recv_blocking() -> None:
    codes: list[int] = []

    async def main(proc):
        client, server = await proc.sys.new_rendezvous()

        async def call():
            reply = await proc.sys.send_receive(client, Message(7))
            codes.append(reply.tag)

        await proc.spawn_thread(call)
        await proc.sys.receive(server)
        rax, *_ = await proc.gate.syscall(A.RECEIVE, server)
        codes.append(rax)
        # The server framework's rescue: an ERROR reply reaches the waiting caller.
        await proc.sys.send(server, Message(A.ERROR, 0, 0))
        await idle()
        return 0

    assert (await run(main))[0] == 0
    assert codes == [A.RECV_BLOCKING, A.ERROR]


async def test_closed_when_only_one_reference_remains() -> None:
    results: list[int] = []

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()
        await proc.sys.close(h2)
        rax, *_ = await proc.gate.syscall(A.SEND | (h1 << 32), 1, 2, 3)
        results.append(rax & 0x7F)
        rax, *_ = await proc.gate.syscall(A.RECEIVE, h1)
        results.append(rax)  # the seed blocked forever here [quirk]
        return 0

    assert (await run(main))[0] == 0
    assert results == [A.CLOSED, A.CLOSED]


async def test_close_wakes_a_waiting_receiver_with_closed() -> None:
    results: list[object] = []

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()

        async def waiter():
            try:
                await proc.sys.receive(h1)
            except SyscallError as e:
                results.append(e.code)

        await proc.spawn_thread(waiter)
        await idle()
        await proc.sys.close(h2)
        await idle()
        return 0

    assert (await run(main))[0] == 0
    assert results == [A.CLOSED]


async def test_waiting_sender_gets_its_message_and_handle_back_on_close() -> None:
    results: list[object] = []

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()
        x1, x2 = await proc.sys.new_rendezvous()

        async def sender():
            try:
                await proc.sys.send(h1, Message(6, Handle(x2), 0))
            except SyscallError as e:
                results.append((e.code, e.message))

        await proc.spawn_thread(sender)
        await idle()
        await proc.sys.close(h2)
        await idle()
        returned = results[0][1]
        # The handle came back (at the lowest free slot) and still works.
        await proc.sys.close(returned.d2.number)
        return 0

    assert (await run(main))[0] == 0
    code, msg = results[0]
    assert code == A.CLOSED and msg.tag == 6 and isinstance(msg.d2, Handle)


async def test_handles_and_chunks_move_with_the_message() -> None:
    seen: dict[str, object] = {}

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()
        extra1, extra2 = await proc.sys.new_rendezvous()
        chunk = await proc.malloc(100)
        chunk.write(0, b"moved")
        before = proc.sys.gate.process.handles.count() if hasattr(proc.sys.gate, "process") else None

        async def other():
            msg = await proc.sys.receive(h2)
            seen["ctrl_kinds"] = (type(msg.d2).__name__, type(msg.d3).__name__)
            seen["data"] = proc.gate.load(msg.d3.vaddr, 5)
            await proc.sys.free(msg.d3.vaddr)

        await proc.spawn_thread(other)
        await idle()
        await proc.sys.send(h1, Message(6, Handle(extra2), Memory(chunk.vaddr)))
        seen["handles_after_send"] = proc.sys.gate.process.handles.count()
        await idle()
        seen["before"] = before
        return 0

    assert (await run(main))[0] == 0
    assert seen["ctrl_kinds"] == ("Handle", "Memory")
    assert seen["data"] == b"moved"
    # Same process here, so the handle left one slot and came back in another: count unchanged.
    assert seen["handles_after_send"] == seen["before"]


async def test_sender_loses_handle_and_chunk_to_another_process() -> None:
    seen: dict[str, object] = {}

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()
        extra1, extra2 = await proc.sys.new_rendezvous()

        async def child(cproc):
            msg = await cproc.sys.receive(0)
            seen["child_data"] = cproc.gate.load(msg.d3.vaddr, 5)
            await cproc.sys.send(msg.d2.number, Message(99))  # use the handle it was given
            return 0

        c = await proc.exec(child, stdin=h2)
        chunk = await proc.malloc(100)
        chunk.write(0, b"moved")
        await proc.sys.send(h1, Message(6, Handle(extra2), Memory(chunk.vaddr)))
        for what, call in (("close", proc.sys.close(extra2)), ("free", proc.sys.free(chunk.vaddr))):
            try:
                await call
            except SyscallError as e:
                seen[what] = e.code
        seen["reply"] = (await proc.sys.receive(extra1)).tag
        await c.wait()
        return 0

    assert (await run(main))[0] == 0
    assert seen == {"child_data": b"moved", "close": A.INVALID_HANDLE, "free": A.DOUBLEFREE, "reply": 99}


async def test_invalid_handle_in_message_fails_and_moves_nothing() -> None:
    out: list[object] = []

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()
        chunk = await proc.malloc(10)
        rax, *_ = await proc.gate.syscall(
            A.SEND | A.MSG_LONG | (A.KIND_HANDLE << A.D2_SHIFT) | (A.KIND_MEMORY << A.D3_SHIFT) | (h1 << 32),
            6, 42, chunk.vaddr)
        out.append(rax)
        chunk.write(0, b"still mine")  # would be a page fault if the chunk had moved
        out.append(chunk.read(0, 10))
        rax, *_ = await proc.gate.syscall(A.RECEIVE, 99)
        out.append(rax)
        return 0

    assert (await run(main))[0] == 0
    assert out == [A.INVALID_HANDLE, b"still mine", A.INVALID_HANDLE]


async def test_long_message_of_values_reads_as_short_and_error_kind_cannot_be_forged() -> None:
    out: list[object] = []

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()

        async def rx():
            out.append(await proc.gate.syscall(A.RECEIVE, h2))
            out.append(await proc.gate.syscall(A.RECEIVE, h2))

        await proc.spawn_thread(rx)
        await proc.gate.syscall(A.SEND | A.MSG_LONG | (h1 << 32), 2, 5, 7)
        await proc.gate.syscall(A.SEND | A.MSG_LONG | (A.KIND_ERROR << A.D2_SHIFT) | (h1 << 32), 2, 11, 0)
        await idle()
        return 0

    assert (await run(main))[0] == 0
    assert out == [(0, 2, 5, 7), (0, 2, 11, 0)]


async def test_receiver_with_no_free_chunk_slot_gets_nomemslots_error_word() -> None:
    out: list[object] = []

    async def main(proc):
        h1, h2 = await proc.sys.new_rendezvous()

        async def child(cproc):
            for _ in range(511):
                await cproc.sys.malloc(1)
            out.append(await cproc.gate.syscall(A.RECEIVE, 0))
            return 0

        c = await proc.exec(child, stdin=h2)
        chunk = await proc.malloc(10)
        await proc.sys.send(h1, Message(2, 10, Memory(chunk.vaddr)))
        await c.wait()
        return 0

    assert (await run(main))[0] == 0
    rax, rdi, rsi, rdx = out[0]
    assert rax & 0x1F00 == A.MSG_LONG | (A.KIND_ERROR << A.D3_SHIFT)
    assert rdx == A.NOMEMSLOTS


async def test_ipc_between_processes_survives_peer_death() -> None:
    """A server that dies with a caller waiting: the caller gets CLOSED, not a hang."""

    async def main(proc):
        mine, theirs = await proc.sys.new_rendezvous()

        async def dying(cproc):
            await cproc.sys.receive(0)
            raise RuntimeError("server crashed mid-request")

        await proc.exec(dying, stdin=theirs)
        with trio.fail_after(5):
            try:
                await proc.sys.send_receive(mine, Message(1))
            except SyscallError as e:
                return 10 + e.code
        return 0

    status, _ = await run(main)
    assert status == 10 + A.CLOSED


async def test_clients_of_a_dead_server_get_closed_even_while_it_stays_mounted() -> None:
    """The mount keeps the server's rendezvous referenced, so only the kernel's knowledge that
    its server died can keep clients from waiting forever."""
    out: list[int] = []

    async def server(proc):
        await proc.sys.receive(0)  # serve one request badly: die without answering
        raise RuntimeError("server bug")

    async def main(proc):
        mine, theirs = await proc.sys.new_rendezvous()
        await proc.sys.mount("/svc", mine)
        child = await proc.exec(server, stdin=theirs)
        for _ in range(3):
            h, _ = await proc.sys.open("/svc")
            with trio.fail_after(5):
                try:
                    await proc.sys.send_receive(h, Message(1))
                except SyscallError as e:
                    out.append(e.code)
            await proc.sys.close(h)
        await child.wait()
        return 0

    async with boot() as system:
        assert await system.run(main) == 0
    assert out == [A.CLOSED, A.CLOSED, A.CLOSED]
