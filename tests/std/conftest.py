"""The harness of the std tests: run a test body as a root program in a small booted system."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from euralios.boot import boot
from tests.support.guest import run_body

Body = Callable[[Any], Awaitable[Any]]


@pytest.fixture
def guest() -> Callable[[Body], Awaitable[Any]]:
    """`await guest(body)`: boot, run `body(proc)` as a root program, return what it returns.
    A failure inside the program (an assertion) is re-raised here instead of just ending it."""

    async def run(body: Body, timeout: float = 20.0) -> Any:
        async with boot(ramdisk=False) as system:
            return await run_body(system, body, timeout=timeout)

    return run
