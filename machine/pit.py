"""The 8253/8254 programmable interval timer, channel 0, driving IRQ 0.

Programmed through ports 0x43 (mode/command) and 0x40 (divisor, low byte then high byte) as on a
PC. In rate-generator/square-wave mode it raises IRQ 0 every divisor/1193182 seconds; a divisor
of 0 means 65536 (18.2065 Hz, the seed's rate). Ticks come from a trio timer (`run`), so the
host sleeps between them: no polling. While `paused` (the monitor's `stop`) the counter does
not run: no tick, no IRQ 0; `resume()` starts a fresh period.
"""

from __future__ import annotations

import trio

from machine.irq import IrqController
from machine.tsc import PIT_HZ

IRQ_TIMER = 0


class PIT:
    def __init__(self, irq: IrqController) -> None:
        self.irq = irq
        self.divisor = 0
        self.periodic = False
        self.ticks = 0
        self._latch: list[int] = []
        self._changed = trio.Event()
        self.paused = False

    def pause(self) -> None:
        """Stop counting (the VM is stopped): no tick fires until resume()."""
        self.paused = True
        self._wake()

    def resume(self) -> None:
        self.paused = False
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    @property
    def period(self) -> float:
        return (self.divisor or 65536) / PIT_HZ

    def port_read(self, port: int, size: int) -> int:
        return 0xFF

    def port_write(self, port: int, size: int, value: int) -> None:
        if port == 0x43:
            mode = (value >> 1) & 7
            self.periodic = mode in (2, 3)
            self._latch = []
        elif port == 0x40:
            self._latch.append(value & 0xFF)
            if len(self._latch) == 2:
                self.divisor = self._latch[0] | (self._latch[1] << 8)
                self._latch = []
                self._wake()

    async def run(self) -> None:
        """Raise IRQ 0 at the programmed rate while in periodic mode; sleep otherwise."""
        while True:
            if not self.periodic or self.paused:
                await self._changed.wait()
                continue
            deadline = trio.current_time() + self.period
            while self.periodic and not self.paused:
                changed = self._changed
                with trio.move_on_at(deadline):
                    await changed.wait()  # reprogrammed or paused: look again
                    break
                self.ticks += 1
                self.irq.raise_irq(IRQ_TIMER)
                deadline += self.period
                now = trio.current_time()
                if deadline < now:  # host was busy: skip missed ticks rather than bursting
                    deadline = now + self.period
