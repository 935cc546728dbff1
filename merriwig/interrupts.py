"""Interrupt routing: IRQ lines from the machine to kernel handlers and to waiting threads.

A user driver sleeps in await_interrupt(line) until that line fires. Improvements over the seed
(spec §7.2), which woke every waiter on every keyboard interrupt and checked no permission:
waiters register per line, waiting on a device line needs I/O privilege, and an interrupt that
fires while nobody waits stays pending and is delivered to the next waiter (none is lost).

Line 0 (the timer) is special: any thread may wait on it with a timeout, which is how
`proc.sleep` works without a sleep syscall. The timeout (RSI, in microseconds) is an extension
of the seed's await_interrupt; 0 means no timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import trio

from machine.irq import IrqController
from merriwig import abi
from merriwig.errors import SyscallFail

if TYPE_CHECKING:
    from merriwig.process import Process

NLINES = 16


class InterruptRouter:
    def __init__(self, irq: IrqController) -> None:
        self.irq = irq
        self.events: list[trio.Event] = [trio.Event() for _ in range(NLINES)]
        self.handlers: dict[int, list[Callable[[int], None]]] = {}
        self.delivered = [0] * NLINES
        irq.set_handler(self._on_irq)

    def add_handler(self, line: int, fn: Callable[[int], None]) -> None:
        """A kernel-side handler (e.g. the timer updating the time page)."""
        self.handlers.setdefault(line, []).append(fn)

    def _on_irq(self, line: int) -> None:
        for fn in self.handlers.get(line, ()):
            fn(line)
        if line == 0 and line not in self.handlers:
            self.irq.acknowledge(0)
        ev = self.events[line]
        if ev.statistics().tasks_waiting:
            self.irq.acknowledge(line)
            self.delivered[line] += 1
            self.events[line] = trio.Event()
            ev.set()
        elif line in self.handlers:
            self.irq.acknowledge(line)

    async def wait(self, proc: Process, line: Any, timeout_us: Any) -> bool:
        """Block until `line` fires (True) or the timeout passes (False)."""
        if not isinstance(line, int) or not 0 <= line < NLINES:
            raise SyscallFail(abi.PARAM)
        if not isinstance(timeout_us, int) or timeout_us < 0:
            raise SyscallFail(abi.PARAM)
        if line != 0 and not proc.io:
            raise SyscallFail(abi.PARAM, "await_interrupt on a device line needs I/O privilege")
        if line != 0 and self.irq.pending(line):
            self.irq.acknowledge(line)
            self.delivered[line] += 1
            return True
        if line == 0:
            if not timeout_us:
                raise SyscallFail(abi.PARAM, "waiting on the timer needs a timeout")
            await trio.sleep(timeout_us / 1e6)  # sleep: a trio timer, no tick is involved
            return False
        ev = self.events[line]
        if timeout_us:
            with trio.move_on_after(timeout_us / 1e6):
                await ev.wait()
                return True
            return False
        await ev.wait()
        return True
