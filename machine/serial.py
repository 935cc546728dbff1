"""A 16550-style UART (COM1 at 0x3F8, IRQ 4): the console of `euralios run`.

Bytes written to the transmit register go to the host (a callback: stdout, a buffer); bytes the
host feeds arrive in the receive FIFO and raise IRQ 4 when the receive interrupt is enabled.
Registers: +0 RBR/THR, +1 IER (bit 0 receive interrupt), +5 LSR (bit 0 data ready, bit 5 THR
empty, bit 6 transmitter empty). Enough of the chip for a polled or interrupt-driven console.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from machine.irq import IrqController

COM1 = 0x3F8
IRQ_COM1 = 4


class Serial:
    def __init__(self, irq: IrqController, base: int = COM1, line: int = IRQ_COM1) -> None:
        self.irq = irq
        self.base = base
        self.line = line
        self.rx: deque[int] = deque()
        self.ier = 0
        self.output: Callable[[bytes], None] = lambda data: None
        self.transmitted = 0

    @property
    def ports(self) -> range:
        return range(self.base, self.base + 8)

    def feed(self, data: bytes) -> None:
        """Host -> guest: queue received bytes and interrupt if the guest asked for it."""
        was_empty = not self.rx
        self.rx.extend(data)
        if data and was_empty and self.ier & 1:
            self.irq.raise_irq(self.line)

    def port_read(self, port: int, size: int) -> int:
        reg = port - self.base
        if reg == 0:
            value = self.rx.popleft() if self.rx else 0
            if self.rx and self.ier & 1:
                self.irq.raise_irq(self.line)
            return value
        if reg == 1:
            return self.ier
        if reg == 5:
            return (1 if self.rx else 0) | 0x60
        return 0

    def port_write(self, port: int, size: int, value: int) -> None:
        reg = port - self.base
        if reg == 0:
            data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            self.transmitted += len(data)
            self.output(data)
        elif reg == 1:
            self.ier = value & 0x0F
            if self.ier & 1 and self.rx:
                self.irq.raise_irq(self.line)
