"""The console driver through a booted full system: VGA text memory, colours, scrolling, the
hardware cursor, virtual consoles switched with F-keys, and the driver's message protocol."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio.testing
from sessions import run_client

from euralios.std import Handle, Message, SyscallError, abi
from euralios.std.fs import send_bytes, take_bytes
from euralios.system_boot import FullSystem, boot_full

PROMPT = r"^> "
WHITE_ON_WHITE = 0xFF
BLACK_ON_WHITE = 0xF0


@pytest.fixture
async def system() -> AsyncIterator[FullSystem]:
    async with boot_full(console_program="/bin/echo") as s:
        await s.wait_for_screen(PROMPT, 10)
        await trio.testing.wait_all_tasks_blocked()  # the cursor registers are programmed just after the text
        yield s


def row_of(system: FullSystem, text: str) -> int:
    for i, line in enumerate(system.screen_lines()):
        if text in line:
            return i
    raise AssertionError(f"{text!r} not on screen:\n{system.screen.render()}")


def prompt_row(system: FullSystem) -> int:
    """The last line holding echo's prompt."""
    lines = system.screen_lines()
    return max(i for i, line in enumerate(lines) if line == ">" or line.startswith("> "))


def attrs(system: FullSystem, row: int, col: int, n: int) -> set[int]:
    return {system.cell(row, c)[1] for c in range(col, col + n)}


async def test_boot_shows_the_echo_console_on_f2(system: FullSystem) -> None:
    # The welcome's title is bold blue (light blue, 9) on white; the prompt is black on white.
    r = row_of(system, "Welcome to EuraliOS!")
    assert attrs(system, r, 0, len("Welcome to EuraliOS!")) == {0xF9}
    prompt = prompt_row(system)
    assert system.cell(prompt, 0) == (">", BLACK_ON_WHITE)
    assert system.cursor() == (prompt, 2) and system.cursor_visible()
    assert system.cell(0, 0) == (" ", WHITE_ON_WHITE)  # the first row starts blank


async def test_f1_shows_the_coloured_boot_log_and_kernel_lines(system: FullSystem) -> None:
    await system.type("{F1}")
    await system.wait_for_screen(r"\[init\] Starting EuraliOS\.\.\.", 5)
    await system.wait_for_screen(r"\[init\] console F2: echo \(pid \d+\)", 5)
    await system.wait_for_screen(r"\[kernel\] Merriwig starting", 5)  # kernel log mirrored to F1
    r = row_of(system, "[init] Starting EuraliOS...")
    assert attrs(system, r, 0, 6) == {0xF2}  # "[init]" dark green
    assert attrs(system, r, 7, len("Starting EuraliOS...")) == {0xF1}  # dark blue
    k = row_of(system, "[kernel] Merriwig starting")
    assert attrs(system, k, 0, 8) == {0xF8}  # kernel lines in dark grey
    assert "keyboard driver: pid" in system.screen_text()
    assert "console driver: pid" in system.screen_text()


async def test_keys_typed_on_f1_are_ignored(system: FullSystem) -> None:
    await system.type("{F1}")
    await system.wait_for_screen(r"Starting EuraliOS", 5)
    await system.type("lost keys\n{F2}kept\n")
    await system.wait_for_screen(r"^kept *\n> ", 5)
    assert "lost" not in system.screen_text()


async def test_cursor_follows_typing_and_backspace(system: FullSystem) -> None:
    prompt = prompt_row(system)
    await system.type("abc")
    await system.wait_for_screen(r"^> abc", 5)
    await trio.testing.wait_all_tasks_blocked()  # the driver has also moved the cursor
    assert system.cursor() == (prompt, 5)
    await system.type("{Backspace}")
    await system.wait_for_screen(r"^> ab +\n", 5)
    await trio.testing.wait_all_tasks_blocked()  # the driver has also moved the cursor
    assert system.cursor() == (prompt, 4)
    assert system.cell(prompt, 4) == (" ", BLACK_ON_WHITE)  # erased with a space in the text colour


async def test_output_scrolls_and_the_new_bottom_line_is_blank(system: FullSystem) -> None:
    await system.type("".join(f"line {i:02}\n" for i in range(20)))
    await system.wait_for_screen(r"^line 19 *\n> ", 10)
    await trio.testing.wait_all_tasks_blocked()  # the driver has also moved the cursor
    lines = system.screen_lines()
    assert "Welcome to EuraliOS!" not in system.screen_text()  # scrolled off the top
    assert lines[24] == ">" and system.cursor() == (24, 2)
    assert lines[23] == "line 19" and lines[22] == "> line 19"
    assert lines[0] == "> line 08"
    assert attrs(system, 24, 2, 78) == {WHITE_ON_WHITE}  # the line scrolled in is blank


async def test_each_console_keeps_its_screen_when_switching(system: FullSystem) -> None:
    await system.type("first\n")
    await system.wait_for_screen(r"^first *\n> ", 5)
    await trio.testing.wait_all_tasks_blocked()  # the driver has also moved the cursor
    f2 = system.screen_text()
    await system.type("{F3}")  # a new console with its own echo
    await system.wait_for_screen(r"This console runs echo.*\n> *\n *\n", 5)  # nothing typed yet
    assert "first" not in system.screen_text()
    assert system.active_console == 3
    await system.type("third\n")
    await system.wait_for_screen(r"^third *\n> ", 5)
    await system.type("{F2}")
    await system.wait_for_screen(r"^first *\n> ", 5)
    await trio.testing.wait_all_tasks_blocked()  # the driver has also moved the cursor
    assert system.screen_text() == f2
    await system.type("{F3}")
    await system.wait_for_screen(r"^third *\n> ", 5)
    assert "first" not in system.screen_text()


async def test_f4_and_f5_each_start_their_own_program(system: FullSystem) -> None:
    await system.type("{F4}four\n")
    await system.wait_for_screen(r"^four *\n> ", 5)
    await system.type("{F5}five\n")
    await system.wait_for_screen(r"^five *\n> ", 5)
    assert "four" not in system.screen_text()
    await system.type("{F1}")
    await system.wait_for_screen(r"console F5: echo", 5)
    assert "console F4: echo" in system.screen_text()


# --------------------------------------------------------------------------- driver protocol


async def open_console(proc: Any) -> tuple[int, int]:
    reply = await proc.sys.rcall(1, abi.OPEN_READWRITE)
    assert reply.tag == abi.COMM_HANDLE and isinstance(reply.d2, Handle) and isinstance(reply.d3, int)
    return reply.d2.number, reply.d3


async def query(proc: Any, handle: int) -> dict[str, Any]:
    reply = await proc.sys.rcall(handle, abi.QUERY)
    assert reply.tag == abi.JSON
    return json.loads(await take_bytes(proc.sys, reply))


async def test_writer_renders_colours_cursor_control_and_chars(system: FullSystem) -> None:
    async def body(proc: Any, out: dict[str, Any]) -> None:
        writer, cid = await open_console(proc)
        out["cid"] = cid
        assert (await proc.sys.rcall(1, abi.WRITE, cid, 0)).tag == abi.OK  # activate
        await proc.write("\x1b[2J\x1b[H\x1b[31mred\x1b[0m \x1b[1;44;33mbold\x1b[m\n", writer)
        for ch in "hi!":
            await proc.sys.send(writer, Message(abi.CHAR, ord(ch), 0))  # echo path: no reply
        await proc.write("\x1b[10;20HX\x1b[?25l", writer)
        out["hidden"] = await query(proc, writer)
        await proc.write("\x1b[?25h", writer)
        out["shown"] = await query(proc, writer)

    out = await run_client(system, body)
    assert out["cid"] == 2  # 0 system console, 1 the F2 console, then ours
    lines = system.screen_lines()
    assert lines[0] == "red bold" and lines[1] == "hi!"
    assert attrs(system, 0, 0, 3) == {0xF4}  # red on white
    assert attrs(system, 0, 4, 4) == {0x1E}  # bold yellow on blue
    assert system.cell(0, 3)[1] == BLACK_ON_WHITE
    assert system.cell(9, 19) == ("X", BLACK_ON_WHITE)
    assert out["hidden"] == {"id": 2, "active": True, "rows": 25, "cols": 80, "cursor": [9, 20],
                             "cursor_visible": False, "wrap_pending": False, "scrollback": 0, "scrolled": 0,
                             "readers": 0, "typeahead": 0, "dropped": 0}
    assert out["shown"]["cursor_visible"] is True
    assert system.cursor() == (9, 20) and system.cursor_visible()


async def test_a_full_row_waits_in_column_80_and_a_newline_takes_no_extra_row(system: FullSystem) -> None:
    async def body(proc: Any, out: dict[str, Any]) -> None:
        writer, cid = await open_console(proc)
        assert (await proc.sys.rcall(1, abi.WRITE, cid, 0)).tag == abi.OK  # activate
        await proc.write("\x1b[2J\x1b[H" + "a" * 80, writer)
        out["full"] = await query(proc, writer)
        await proc.write("\n" + "b" * 80 + "\n" + "c" * 80, writer)
        out["after"] = await query(proc, writer)

    out = await run_client(system, body)
    assert out["full"]["cursor"] == [0, 79] and out["full"]["wrap_pending"] is True
    assert system.screen_lines()[:4] == ["a" * 80, "b" * 80, "c" * 80, ""]
    assert out["after"]["cursor"] == [2, 79] and out["after"]["wrap_pending"] is True
    await trio.testing.wait_all_tasks_blocked()  # the cursor registers are programmed just after the text
    assert system.cursor() == (2, 79)  # the hardware cursor stays on the last column too


async def test_inactive_console_is_shown_only_when_activated(system: FullSystem) -> None:
    before = system.screen_text()

    async def body(proc: Any, out: dict[str, Any]) -> None:
        writer, cid = await open_console(proc)
        await proc.write("\x1b[2J\x1b[Hhidden text", writer)
        out["mid"] = system.screen_text()
        out["cid"] = cid
        reply = await proc.sys.rcall(1, abi.WRITE, cid, 0)
        out["activate"] = reply.tag

    out = await run_client(system, body)
    assert out["mid"] == before  # writing to an inactive console leaves the screen alone
    assert out["activate"] == abi.OK
    assert system.screen_lines()[0] == "hidden text"


async def test_main_handle_errors_and_query(system: FullSystem) -> None:
    async def body(proc: Any, out: dict[str, Any]) -> None:
        try:
            await proc.sys.rcall(1, abi.WRITE, 99, 0)
        except SyscallError as e:
            out["unknown_id"] = e.code
        reply = await proc.sys.rcall(1, abi.QUERY)
        out["status"] = json.loads(await take_bytes(proc.sys, reply))
        reply = await proc.sys.rcall(1, 12345)
        out["unknown_tag"] = reply.tag
        writer, _ = await open_console(proc)
        reply = await proc.sys.rcall(writer, 4242)
        out["writer_unknown"] = reply.tag
        # A chunk and a handle in a message nobody wants come back to the system, not leak.
        mem = await send_bytes(proc.sys, b"x" * 5000)
        a, b = await proc.sys.new_rendezvous()
        reply = await proc.sys.send_receive(writer, Message(4243, Handle(b), mem))
        out["carried"] = reply.tag
        out["closed"] = False
        try:
            await proc.sys.send(a, Message(abi.CHAR, 1, 0))
        except SyscallError as e:
            out["closed"] = e.code == abi.CLOSED
        await proc.sys.rcall(writer, abi.CLOSE_TAG)

    out = await run_client(system, body)
    assert out["unknown_id"] == abi.PARAM  # ERROR reply; the active console stays
    assert out["status"] == {"consoles": 2, "active": 1}
    assert out["unknown_tag"] == abi.ERROR_UNKNOWN_MESSAGE
    assert out["writer_unknown"] == abi.ERROR_UNKNOWN_MESSAGE
    assert out["carried"] == abi.ERROR_UNKNOWN_MESSAGE
    assert out["closed"]  # the driver closed the handle it was sent
    assert "Welcome to EuraliOS!" in system.screen_text()  # F2 still on screen


async def test_more_consoles_than_threads_is_an_error_not_a_dead_driver(system: FullSystem) -> None:
    """Each console costs the driver a writer thread, and a process has 64: asking for more must
    be refused (ERROR), not kill the driver -- every screen would go with it."""
    driver = system.process("console")
    assert driver is not None

    async def body(proc: Any, out: dict[str, Any]) -> None:
        codes: list[int] = []
        for _ in range(70):
            try:
                await open_console(proc)
            except SyscallError as e:
                codes.append(e.code)
        out["refused"] = codes
        reply = await proc.sys.rcall(1, abi.QUERY)
        out["status"] = json.loads(await take_bytes(proc.sys, reply))

    out = await run_client(system, body)
    assert out["refused"] and set(out["refused"]) == {abi.MEMALLOC}
    assert system.process("console") is driver and driver.killed is None
    assert out["status"]["consoles"] == 70 + 2 - len(out["refused"])


async def test_every_chunk_sent_to_a_writer_is_freed(system: FullSystem) -> None:
    driver = system.process("console")
    assert driver is not None

    async def body(proc: Any, out: dict[str, Any]) -> None:
        writer, _ = await open_console(proc)
        await proc.write("warm up\n", writer)
        out["before"] = driver.space.frames_owned
        for i in range(50):
            await proc.write(f"line {i} " + "x" * 6000 + "\n", writer)  # two pages each
        out["after"] = driver.space.frames_owned

    out = await run_client(system, body)
    assert out["after"] == out["before"]


async def test_a_lying_length_cannot_kill_the_driver(system: FullSystem) -> None:
    async def body(proc: Any, out: dict[str, Any]) -> None:
        writer, cid = await open_console(proc)
        await proc.sys.rcall(1, abi.WRITE, cid, 0)
        mem = await send_bytes(proc.sys, b"short")
        reply = await proc.sys.send_receive(writer, Message(abi.WRITE, 1 << 30, mem))
        out["reply"] = reply.tag

    out = await run_client(system, body)
    assert out["reply"] == abi.OK
    assert system.process("console") is not None
    assert system.screen_lines()[1].startswith("short")


async def test_writer_closed_by_all_clients_keeps_its_screen(system: FullSystem) -> None:
    async def body(proc: Any, out: dict[str, Any]) -> None:
        writer, cid = await open_console(proc)
        out["cid"] = cid
        await proc.write("still here", writer)
        await proc.sys.close(writer)
        await proc.sys.rcall(1, abi.WRITE, cid, 0)

    await run_client(system, body)
    assert "still here" in system.screen_text()


async def test_video_memory_must_come_first() -> None:
    """A driver sent something else first refuses it and keeps waiting for VIDEO_MEMORY."""
    async with boot_full(console_program="/bin/echo") as system:
        await system.wait_for_screen(PROMPT, 10)
        from euralios.boot import program_source

        r = system.kernel.new_rendezvous(refs=1)
        r.incref()
        driver = system.kernel.spawn(program_source("drivers/console.py"), name="console2", stdin=r, io=True)
        out: dict[str, Any] = {}

        async def client(proc: Any) -> int:
            try:
                await proc.sys.rcall(1, abi.OPEN_READWRITE)
            except SyscallError as e:
                out["early"] = e.code
            mem = await send_bytes(proc.sys, b"tiny")
            try:
                await proc.sys.rcall(1, abi.VIDEO_MEMORY, 100, mem)
            except SyscallError as e:
                out["small"] = e.code

            out["alive"] = driver.alive
            return 0

        assert await system.run(client, stdout=r) == 0
        assert out == {"early": abi.PARAM, "small": abi.PARAM, "alive": True}
        await driver.ended.wait()  # its last client gone, it gives up waiting
        assert driver.killed is None and driver.status == 1


# --------------------------------------------------------------------------- init's consoles
async def test_a_killed_console_program_is_reported_on_f1_and_restarted(system: FullSystem) -> None:
    echo = system.process("echo")
    assert echo is not None
    system.kernel.kill(echo, "killed by the test")
    await system.wait_for_screen(r"echo exited with status 1; starting a new one", 5)
    await system.wait_for_screen(r"starting a new one *\nWelcome to EuraliOS!(.|\n)*^> ", 5)
    await system.type("again\n")
    await system.wait_for_screen(r"^again *\n> ", 5)
    await system.type("{F1}")
    await system.wait_for_screen(rf"\[kernel\] pid {echo.pid} \(echo\) killed: killed by the test", 5)


async def test_a_crashing_program_is_reported_on_the_system_console(system: FullSystem) -> None:
    async def crash(proc: Any) -> int:
        return 1 // 0

    assert await system.run(crash) == 1
    await system.type("{F1}")
    await system.wait_for_screen(r"\[kernel\] pid \d+ \(crash\) killed: ZeroDivisionError", 5)


async def test_console_program_falls_back_to_echo_with_a_note() -> None:
    async with boot_full(console_program="/proc/no-such-program") as system:
        await system.wait_for_screen(PROMPT, 10)
        await system.type("{F1}")
        await system.wait_for_screen(r"CONSOLE_PROGRAM /proc/no-such-program: .*; using echo", 5)
