"""Typed sessions on a booted system, shared by the tests that log in and type commands: keys
go in through the PS/2 keyboard, results are read from VGA memory."""

from __future__ import annotations

import re
from typing import Any
from weakref import WeakKeyDictionary

from euralios.pytest_plugin import wait_screen as wait
from euralios.system_boot import FullSystem

PROMPTS: WeakKeyDictionary[FullSystem, str] = WeakKeyDictionary()  # who is logged in: root's `#`


def prompt(system: FullSystem) -> str:
    """The shell prompt's character as a regex: `#` for root, `$` for anyone else."""
    return PROMPTS.get(system, r"\$")


async def login(system: FullSystem, name: str) -> None:
    await wait(system, r"login:$", 10)
    await system.type(f"{name}\n")
    PROMPTS[system] = "#" if name == "root" else r"\$"
    await wait(system, prompt(system) + r" ?$", 10)


async def run(system: FullSystem, line: str, expect: str | None = None, timeout: float = 10) -> str:
    """Clear the screen, type a command line, wait until the shell prompts again after it;
    check `expect` (a multiline regex) against the screen and return the screen."""
    await system.type("clear\n")
    p = prompt(system)
    await wait(system, rf"\A{p}$", timeout)
    await system.type(line + "\n")
    text = await wait(system, rf"\A{p} " + re.escape(line) + rf"\n(?:.*\n)*{p}\Z", timeout)
    if expect is not None:
        assert re.search(expect, text, re.MULTILINE), f"{expect!r} not on screen:\n{text}"
    return text


async def run_client(system: FullSystem, body: Any) -> dict[str, Any]:
    """Run `body(proc, out)` as a program whose stdout is the console driver's main handle."""
    out: dict[str, Any] = {}

    async def client(proc: Any) -> int:
        await body(proc, out)
        return 0

    status = await system.run(client, stdout=system.console_driver_handle())
    assert status == 0, system.klog()
    return out
