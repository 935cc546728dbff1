"""Keyboard driver: PS/2 scan codes -> key codes sent to stdout (spec §11.4, DESIGN §5).

init starts it with I/O privilege; its stdout is a copy of init's stdin, so every key arrives at
init as Short(CHAR, code, 0), which forwards it to the active console. init supervises it: a
crashed driver is restarted with a new copy (programs/init/services.py). The driver sleeps in
await_interrupt(1) until the controller raises IRQ 1, then drains every byte waiting in the
controller (status port 0x64 bit 0) through drivers.keymap's decoder. Draining the whole FIFO on
each interrupt is what makes the driver robust to bursts (a pasted line, a typed script): an
interrupt that fired while we were busy stays pending in the kernel, so none is lost either.

Keys go straight to the console driver once init gives us its handle (Long(COMM_HANDLE,
Handle(console)) on our stdin): one hop less for every key typed, which is most of what typing
latency is made of. If the console driver dies, keys go to init again (our stdout) until init
hands us the new one.

Environment: KEYMAP=us|uk (default us). An unknown layout falls back to US with a note in the
kernel log rather than leaving the machine without a keyboard.
"""

from __future__ import annotations

from drivers.keymap import LAYOUTS, KeyboardDecoder
from euralios.std import STDIN, STDOUT, Handle, Message, SyscallError, abi, discard

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
    target = [STDOUT]  # where keys go: init, or the console driver init told us about
    told: list[int] = []  # a console driver init told us about, not yet switched to

    async def control() -> None:
        """init's messages on our stdin: the console driver to send keys to."""
        while True:
            try:
                msg = await sys.receive(STDIN)
            except SyscallError:
                return
            if msg.tag == abi.COMM_HANDLE and isinstance(msg.d2, Handle):
                for h in told:
                    await sys.close(h)
                told[:] = [msg.d2.number]
            else:
                await discard(sys, msg)
            if msg.reply:
                await sys.send(STDIN, Message(abi.OK, 0, 0))

    async def deliver(code: int) -> bool:
        """Send one key on; False when nobody reads keys any more (init has gone)."""
        if told:
            # Switch only once init has passed on every key we gave it (it answers a call
            # after the keys before it), so no key overtakes another on its way.
            try:
                await sys.rcall(STDOUT, abi.QUERY)
            except SyscallError:
                pass
            old, target[0] = target[0], told.pop()
            if old != STDOUT:
                await sys.close(old)
        while True:
            try:
                await sys.send(target[0], Message(abi.CHAR, code, 0))
                return True
            except SyscallError as e:
                if e.code != abi.CLOSED:
                    raise
                if target[0] == STDOUT:
                    return False
                dead, target[0] = target[0], STDOUT  # the console driver died: init again
                await sys.close(dead)

    await proc.spawn_thread(control)
    while True:
        # Drain first, wait after: a driver restarted by init after its predecessor died between
        # taking IRQ 1 and reading the data port finds bytes already waiting, and the controller
        # interrupts only when its FIFO goes from empty to non-empty -- so waiting first would
        # leave the keyboard dead for good.
        while await sys.port_in(STATUS_PORT) & OUTPUT_FULL:
            code = decoder.feed(await sys.port_in(DATA_PORT))
            if code is None:
                continue
            if not await deliver(code):
                await sys.close(STDIN)  # ends the control thread, and so the driver
                return 0  # nobody reads keys any more (init has gone)
            # Let the console show the key before we drain the rest (a key's break code
            # waits right behind it). Twice: the send woke the console into the scheduler's
            # next batch, and trio runs each batch in a random order, so after one yield we
            # would go first half the time and put the break code's port reads in front of
            # the echo (a hot key's latency 52 -> 42 us).
            await sys.yield_()
            await sys.yield_()
        await sys.await_interrupt(IRQ)
