"""The emulated PC: RAM, MMU, port bus, interrupt lines and the devices, wired together.

Like QEMU's machine model, this knows nothing of any operating system: the kernel programs it
through ports, interrupts and physical memory, as a CPU would.
"""

from __future__ import annotations

import trio

from machine.irq import IrqController
from machine.memory import PhysicalMemory
from machine.mmu import MMU
from machine.pit import PIT
from machine.ports import PortBus
from machine.ps2 import PS2Controller
from machine.serial import Serial
from machine.vga import VgaText


def parse_size(text: str | int) -> int:
    """'64M', '128m', '1G', '65536' -> bytes."""
    if isinstance(text, int):
        return text
    t = text.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    num = t[:-1] if t[-1:] in "KMG" else t
    try:
        return int(num) * mult
    except ValueError:
        raise ValueError(f"bad memory size {text!r} (try 64M)") from None


class Machine:
    def __init__(self, mem: str | int = "64M") -> None:
        self.memory = PhysicalMemory(parse_size(mem))
        self.mmu = MMU(self.memory)
        self.ports = PortBus()
        self.irq = IrqController()
        self.pit = PIT(self.irq)
        self.ports.register(range(0x40, 0x44), self.pit)
        self.serial = Serial(self.irq)
        self.ports.register(self.serial.ports, self.serial)
        self.keyboard = PS2Controller(self.irq, self.ports)
        self.vga = VgaText(self.memory, self.ports)
        self.halted = trio.Event()

    async def run(self) -> None:
        """Run the devices that have a life of their own (the timer)."""
        await self.pit.run()
