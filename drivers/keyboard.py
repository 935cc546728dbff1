"""Keyboard driver: PS/2 scan codes -> key codes sent to stdout (spec §11.4, DESIGN §5).

init starts it with I/O privilege; its stdout is a copy of init's stdin, so every key arrives at
init as Short(CHAR, code, 0), which forwards it to the active console. init supervises it: a
crashed driver is restarted with a new copy (programs/init/services.py). The driver sleeps in
await_interrupt(1) until the controller raises IRQ 1, then drains every byte waiting in the
controller (status port 0x64 bit 0) through drivers.keymap's decoder. Draining the whole FIFO on
each interrupt is what makes the driver robust to bursts (a pasted line, a typed script): an
interrupt that fired while we were busy stays pending in the kernel, so none is lost either.

Environment: KEYMAP=us|uk (default us). An unknown layout falls back to US with a note in the
kernel log rather than leaving the machine without a keyboard.
"""

from __future__ import annotations

from drivers.keymap import LAYOUTS, KeyboardDecoder
from euralios.std import STDOUT, Message, SyscallError, abi

DATA_PORT = 0x60
STATUS_PORT = 0x64
OUTPUT_FULL = 0x01
IRQ = 1


async def main(proc) -> int:
    sys = proc.sys
    layout = proc.env.get("KEYMAP", "us").lower()
    if layout not in LAYOUTS:
        await sys.debug_write(f"[keyboard] unknown KEYMAP {layout!r}, using us")
        layout = "us"
    decoder = KeyboardDecoder(layout)
    while True:
        # Drain first, wait after: a driver restarted by init after its predecessor died between
        # taking IRQ 1 and reading the data port finds bytes already waiting, and the controller
        # interrupts only when its FIFO goes from empty to non-empty -- so waiting first would
        # leave the keyboard dead for good.
        while await sys.port_in(STATUS_PORT) & OUTPUT_FULL:
            code = decoder.feed(await sys.port_in(DATA_PORT))
            if code is None:
                continue
            try:
                await sys.send(STDOUT, Message(abi.CHAR, code, 0))
            except SyscallError as e:
                if e.code == abi.CLOSED:
                    return 0  # nobody reads keys any more (init has gone)
                raise
        await sys.await_interrupt(IRQ)
