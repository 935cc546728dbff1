"""The C runtime's `_start`, for Python programs: build `proc` and call `main(proc)`.

The kernel calls `entry` as a new process' first code (euralios.boot hands it to the kernel, so
the kernel never imports user space). main's return value is the exit status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from euralios.std.proc import Proc
from euralios.std.syscalls import Gate


async def entry(gate: Gate, main: Callable[[Proc], Awaitable[Any]], info: dict[str, Any]) -> int:
    proc = Proc(gate, info)
    result = await main(proc)
    if isinstance(result, bool):
        return int(result)
    return result if isinstance(result, int) else 0
