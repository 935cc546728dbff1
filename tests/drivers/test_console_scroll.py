"""Scrollback through a booted system: the console driver's SCROLL message, and Shift+PgUp /
Shift+PgDn routed by init (typing returns to the bottom; output does not move the view)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio.testing
from sessions import run_client

from euralios.std import Handle, SyscallError, abi
from euralios.std.fs import send_bytes, take_bytes
from euralios.system_boot import FullSystem, boot_full


@pytest.fixture
async def system() -> AsyncIterator[FullSystem]:
    async with boot_full(console_program="/bin/echo") as s:
        await s.wait_for_screen(r"^> ", 10)
        await trio.testing.wait_all_tasks_blocked()
        yield s




async def open_console(proc: Any, lines: int = 0) -> tuple[int, int]:
    reply = await proc.sys.rcall(1, abi.OPEN_READWRITE, lines)
    assert reply.tag == abi.COMM_HANDLE and isinstance(reply.d2, Handle) and isinstance(reply.d3, int)
    return reply.d2.number, reply.d3


async def query(proc: Any, handle: int) -> dict[str, Any]:
    reply = await proc.sys.rcall(handle, abi.QUERY)
    return json.loads(await take_bytes(proc.sys, reply))


async def scroll(proc: Any, cid: int, delta: int) -> int:
    reply = await proc.sys.rcall(1, abi.SCROLL, cid, delta, expect=abi.OK)
    return reply.d2


def numbered(n: int, start: int = 0) -> str:
    """n lines "line NNN" (a write of its own, not typed)."""
    return "".join(f"line {i:03}\n" for i in range(start, start + n))


async def test_scroll_shows_the_history_and_hides_the_cursor(system: FullSystem) -> None:
    async def body(proc: Any, out: dict[str, Any]) -> None:
        writer, cid = await open_console(proc)
        await proc.sys.rcall(1, abi.WRITE, cid, 0)  # activate
        await proc.write(numbered(100), writer)  # screen: lines 076..099, the cursor on row 24
        out["live"] = system.screen_lines()
        out["back"] = await scroll(proc, cid, 12)
        out["shown"] = system.screen_lines()
        out["cursor"] = system.cursor_visible()
        out["query"] = await query(proc, writer)
        await proc.write(numbered(5, start=100), writer)  # output: the view stays put
        out["after_output"] = system.screen_lines()
        out["offset_after_output"] = (await query(proc, writer))["scrolled"]
        out["forward"] = await scroll(proc, cid, (1 << 64) - 5)  # -5 as a two's complement word
        out["top"] = await scroll(proc, cid, 10**6)
        out["top_lines"] = system.screen_lines()
        out["bottom"] = await scroll(proc, cid, 0)
        out["bottom_lines"] = system.screen_lines()
        await trio.testing.wait_all_tasks_blocked()  # the cursor registers are programmed after the text
        out["cursor_back"] = system.cursor_visible()
        for bad in ((99, 1), (-1, 1)):
            try:
                await proc.sys.rcall(1, abi.SCROLL, *bad)
            except SyscallError as e:
                out.setdefault("errors", []).append(e.code)
        out["unknown_when_long"] = (await proc.sys.rcall(1, abi.SCROLL, cid, await send_bytes(proc.sys, b"not a number"))).tag

    out = await run_client(system, body)
    assert out["live"][0] == "line 076" and out["live"][23] == "line 099"
    assert out["back"] == 12
    assert out["shown"][0] == "line 064" and out["shown"][12] == "line 076" and out["shown"][24] == "line 088"
    assert out["cursor"] is False
    assert out["query"]["scrolled"] == 12 and out["query"]["scrollback"] == 100 + 2 - 25
    assert out["query"]["cursor_visible"] is True  # the program's wish is unchanged
    assert out["after_output"] == out["shown"] and out["offset_after_output"] == 17
    assert out["forward"] == 12
    assert out["top"] == 100 + 2 + 5 - 25 and out["top_lines"][:2] == ["", "line 000"]
    assert out["bottom"] == 0 and out["bottom_lines"][23] == "line 104"
    assert out["cursor_back"] is True
    assert out["errors"] == [abi.PARAM, abi.PARAM]
    assert out["unknown_when_long"] == abi.ERROR_UNKNOWN_MESSAGE
    assert system.process("console") is not None


async def test_open_asks_for_the_scrollback_size(system: FullSystem) -> None:
    async def body(proc: Any, out: dict[str, Any]) -> None:
        for lines in (30, 10**9, 0):
            writer, _ = await open_console(proc, lines)
            await proc.write(numbered(11000), writer)
            out[lines] = (await query(proc, writer))["scrollback"]

    out = await run_client(system, body)
    assert out == {30: 30, 10**9: 10000, 0: 1000}


async def test_shift_pgup_scrolls_back_and_typing_returns_to_the_bottom(system: FullSystem) -> None:
    # echo shows each line twice ("> n07" as typed, then "n07"): 12 lines fill the screen.
    await system.type("".join(f"n{i:02}\n" for i in range(40)))
    await system.wait_for_screen(r"^n39 *\n> ", 10)
    await trio.testing.wait_all_tasks_blocked()
    live = system.screen_text()
    assert system.screen_lines()[0] == "> n28"
    await system.type("{Shift+PgUp}")  # half a screen: 12 rows, 6 lines
    await system.wait_for_screen(r"\A> n22 *\n", 5)
    await trio.testing.wait_all_tasks_blocked()
    assert not system.cursor_visible()
    await system.type("{Shift+PgUp}{Shift+PgUp}")
    await system.wait_for_screen(r"\A> n10 *\n", 5)
    assert "n39" not in system.screen_text()
    await system.type("{Shift+PgDn}{Shift+PgDn}{Shift+PgDn}")  # one more than needed: clamped
    await system.wait_for_screen(r"\A> n28 *\n", 5)
    await trio.testing.wait_all_tasks_blocked()
    assert system.screen_text() == live and system.cursor_visible()
    await system.type("{Shift+PgUp}x")  # the key returns to the bottom and reaches the program
    await system.wait_for_screen(r"^n39 *\n> x *$", 5)
    await trio.testing.wait_all_tasks_blocked()
    assert system.cursor_visible() and system.screen_lines()[0] == "> n28"
    assert "5;2~" not in system.screen_text()  # the scroll keys never reach the program


async def test_the_system_console_keeps_the_whole_boot_log(system: FullSystem) -> None:
    async def chatter(proc: Any) -> int:
        for i in range(60):  # the kernel log is mirrored to F1: its boot lines scroll away
            await proc.sys.debug_write(f"filler {i:02}")
        return 0

    assert await system.run(chatter) == 0
    await system.type("{F1}")
    await system.wait_for_screen(r"filler 59", 5)
    assert "Merriwig starting" not in system.screen_text()
    await system.type("{Shift+PgUp}" * 100)  # far more than the log: clamped to its start
    await system.wait_for_screen(r"\[kernel\] Merriwig starting", 10)
    await trio.testing.wait_all_tasks_blocked()  # every key handled: the view is at the top
    assert "[init] Starting EuraliOS" in system.screen_text() and "filler 59" not in system.screen_text()
    await system.type("{Shift+PgDn}" * 100)
    await system.wait_for_screen(r"filler 59", 5)
    assert "Merriwig starting" not in system.screen_text()
