"""Run a test's body as a program inside a booted system and get its failures back on the host.

An assertion that fails inside a guest program only ends that program (exit status 1); the test
would see a status, not the assertion. ``run_body`` carries the exception out and re-raises it,
so pytest shows the real failure with its guest-side traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio


async def run_body(system: Any, body: Callable[[Any], Awaitable[Any]], *, timeout: float = 20.0,
                   detail: Callable[[], str] | None = None) -> Any:
    """``body(proc)`` as a root program of ``system``; what it returned. A failure inside is
    re-raised here; a non-zero exit without one fails with ``detail()`` (the kernel log unless
    told otherwise) as the message."""
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
    assert status == 0, (detail or system.klog)()
    return box.get("value")
