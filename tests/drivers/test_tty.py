"""The console's line discipline (drivers/tty.py), sans-IO: type-ahead, foreground readers, echo."""

from __future__ import annotations

import trio

from drivers.tty import CTRL_C, QUEUE_LIMIT, Entry, Kind, Mode, Tty

COOKED = Mode.ECHO | Mode.ISIG


def typed(tty: Tty, text: str) -> bytes:
    echo = bytearray()
    for ch in text:
        echo += tty.key(ord(ch)).echo
    return bytes(echo)


def test_keys_typed_before_anyone_reads_wait_in_order_for_the_reader() -> None:
    tty = Tty()
    assert typed(tty, "root\n") == b""  # nobody reads yet: nothing echoed, nothing lost
    login = Entry(channel=1)
    tty.push(login)
    out = tty.request(login, Kind.LINE, COOKED)
    assert login.answer == "root\n" and out.ready == [login] and out.echo == b"root\n"
    assert tty.answered(login) == "root\n"


def test_keys_go_only_to_a_reader_that_is_reading_and_the_rest_wait_for_the_next() -> None:
    """login has read its line and starts the shell: what is typed meanwhile is the shell's."""
    tty = Tty()
    login = Entry(channel=1)
    tty.push(login)
    tty.request(login, Kind.LINE, COOKED)
    typed(tty, "root\n")
    tty.answered(login)
    typed(tty, "echo two\n")  # login is not reading: nothing is handed to it
    assert login.answer is None and len(tty.queue) == 9
    shell = Entry(channel=2, controller=7)
    tty.push(shell)
    keys = []
    for _ in range(9):
        tty.request(shell, Kind.KEY, Mode(0))
        keys.append(tty.answered(shell))
    assert "".join(map(chr, keys)) == "echo two\n"  # in order, none echoed by the console


def test_a_popped_reader_hands_type_ahead_to_the_one_below() -> None:
    tty = Tty()
    shell, prog = Entry(channel=1, controller=9), Entry(channel=2, controller=9)
    tty.push(shell)
    tty.request(shell, Kind.KEY, Mode(0))  # the shell waits at its prompt...
    tty.push(prog)  # ...and started a program that never reads
    typed(tty, "ls")
    assert shell.answer is None
    out = tty.pop(prog)
    assert out.ready == [shell] and tty.answered(shell) == ord("l")


def test_line_editing_backspace_ctrl_u_ctrl_w_and_end_of_input() -> None:
    tty = Tty()
    e = Entry(channel=1)
    tty.push(e)
    tty.request(e, Kind.LINE, COOKED)
    assert typed(tty, "ab\bc") == b"ab\b \bc"
    assert typed(tty, " two words\x17") == b" two words" + b"\b \b" * 5
    assert typed(tty, "\x15") == b"\b \b" * 7  # Ctrl+U erases what is left: "ac two "
    typed(tty, "ok\r")
    assert tty.answered(e) == "ok\n"
    tty.request(e, Kind.LINE, COOKED)
    tty.key(4)  # Ctrl+D on an empty line: end of input
    assert tty.answered(e) == ""


def test_no_echo_for_passwords() -> None:
    tty = Tty()
    e = Entry(channel=1)
    tty.push(e)
    tty.request(e, Kind.LINE, Mode.ISIG)
    assert typed(tty, "secret\n") == b"" and tty.answered(e) == "secret\n"


def test_ctrl_c_signals_the_job_controller_and_flushes_its_input() -> None:
    tty = Tty()
    shell, job = Entry(channel=1), Entry(channel=2, controller=42)
    tty.push(shell)
    tty.push(job)
    typed(tty, "xyz")
    out = tty.key(CTRL_C)
    assert out.signal == [42] and not tty.queue
    # A program reading keys without ISIG gets Ctrl+C as a key (the shell's line editor).
    tty.pop(job)
    tty.request(shell, Kind.KEY, Mode(0))
    assert tty.key(CTRL_C).signal == [] and tty.answered(shell) == CTRL_C


def test_ctrl_c_typed_while_the_job_starts_interrupts_it_when_pushed() -> None:
    tty = Tty()
    shell = Entry(channel=1, controller=5)
    tty.push(shell)
    tty.request(shell, Kind.KEY, Mode(0))
    tty.key(ord("\n"))
    tty.answered(shell)
    tty.key(CTRL_C)  # the shell is busy starting the program: queued
    out = tty.push(Entry(channel=2, controller=5))
    assert out.signal == [5] and not tty.queue


def test_a_reader_that_died_before_its_answer_gives_the_keys_back() -> None:
    tty = Tty()
    shell, prog = Entry(channel=1), Entry(channel=2)
    tty.push(shell)
    tty.push(prog)
    tty.request(prog, Kind.LINE, COOKED)
    typed(tty, "ls\n")
    assert prog.answer == "ls\n"
    tty.undeliverable(prog)
    tty.request(shell, Kind.KEY, Mode(0))
    assert tty.answered(shell) == ord("l") and list(tty.queue) == [ord("s"), 10]


def test_the_queue_is_bounded() -> None:
    tty = Tty()
    for _ in range(QUEUE_LIMIT + 10):
        tty.key(ord("a"))
    assert len(tty.queue) == QUEUE_LIMIT and tty.dropped == 10


# --------------------------------------------------------------------------- on the booted driver
async def test_only_the_reader_in_front_can_put_a_program_in_front() -> None:
    """A process holding a console's writer (every program printing there) cannot push itself
    in front of a login -- the owner's first reader and then the reader on top only; a typed
    line reaches the reader on top, edited by the console."""
    from euralios.std import Handle, SyscallError, abi, tty
    from euralios.system_boot import boot_full

    out: dict[str, object] = {}

    async def client(proc) -> int:  # noqa: ANN001
        sys = proc.sys
        reply = await sys.rcall(1, abi.OPEN_READWRITE)
        assert isinstance(reply.d2, Handle)
        writer, cid = reply.d2.number, reply.d3
        await sys.rcall(1, abi.WRITE, cid, 0)  # on screen: typed keys are its
        getty, _ = await tty.foreground(sys, writer)  # the owner's first reader
        try:
            await tty.foreground(sys, writer)
        except SyscallError as e:
            out["writer again"] = e.code
        child, entry = await tty.foreground(sys, getty)  # through the reader in front
        try:
            await tty.foreground(sys, getty)  # getty is no longer in front
        except SyscallError as e:
            out["not in front"] = e.code
        out["ready"] = True
        out["line"] = await tty.read_line(sys, child)
        await tty.background(sys, getty, entry)
        again, _ = await tty.foreground(sys, getty)  # in front again once its child is gone
        out["again"] = again > 0
        return 0

    async with boot_full(console_program="/bin/echo") as system:
        await system.wait_for_screen(r"^> ", 10)
        async with trio.open_nursery() as nursery:
            async def run() -> None:
                out["status"] = await system.run(client, stdout=system.console_driver_handle())
            nursery.start_soon(run)
            await system.settle(0.2, 5)
            await system.type("ls -x\b\bl\n")
    assert out["writer again"] == abi.DENIED and out["not in front"] == abi.DENIED
    assert out["line"] == "ls l\n" and out["again"] is True and out["status"] == 0
