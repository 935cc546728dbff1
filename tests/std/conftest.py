"""The harness of the std tests: run a test body as a root program in a small booted system."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio

from euralios.boot import boot

Body = Callable[[Any], Awaitable[Any]]


@pytest.fixture
def guest() -> Callable[[Body], Awaitable[Any]]:
    """`await guest(body)`: boot, run `body(proc)` as a root program, return what it returns.
    A failure inside the program (an assertion) is re-raised here instead of just ending it."""

    async def run(body: Body, timeout: float = 20.0) -> Any:
        async with boot(ramdisk=False) as system:
            box: dict[str, Any] = {}

            async def program(proc: Any) -> int:
                try:
                    box["value"] = await body(proc)
                except Exception as e:  # noqa: BLE001 - handed to the host side
                    box["exc"] = e
                    return 1
                return 0

            with trio.fail_after(timeout):
                status = await system.run(program)
            if "exc" in box:
                raise box["exc"]
            assert status == 0, system.klog()
            return box.get("value")

    return run
