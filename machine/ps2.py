"""The PS/2 keyboard controller (8042) as the keyboard driver sees it: scan code set 1 on port 0x60.

Host front-ends turn key events into *physical key* presses and releases; this module turns those
into the exact byte stream a PC keyboard sends in scan code set 1 (make code on press, make|0x80
on release, a 0xE0 prefix for the extended keys), queues them in the controller's output FIFO and
raises IRQ 1 for each byte that reaches the head. Decoding (layouts, shift, caps lock...) is the
guest driver's job, exactly as on real hardware, so the front-end never interprets characters
beyond "which physical keys does typing this character on a US keyboard involve".

Ports:

* 0x60 data: reading pops the head of the FIFO. Reading an empty FIFO returns the last byte read,
  as a real controller's output register keeps its value. Writes (keyboard commands) are accepted
  and ignored: the guest drivers never configure the keyboard.
* 0x64 status: bit 0 = output buffer full (a byte is waiting); bit 2 (system flag, set after the
  BIOS self-test) is always on. Writes are controller commands: 0xFE pulses the output port's
  bit 0, the CPU's reset line (how a PC reboots: Linux's reboot=k), which calls `reset_line`
  (the Machine's reset); the other commands are accepted and ignored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

DATA_PORT = 0x60
STATUS_PORT = 0x64
KEYBOARD_IRQ = 1

CMD_PULSE_RESET = 0xFE  # controller command: pulse output port bit 0 (the CPU's RESET line) low

STATUS_OUTPUT_FULL = 0x01
STATUS_SYSTEM_FLAG = 0x04

EXTENDED = 0xE000  # marker in SCANCODES: the key is sent as E0 <low byte>
BREAK = 0x80

# Physical keys -> set 1 make codes. Character keys are named by what they type unshifted on a US
# keyboard. Codes >= 0xE000 are E0-prefixed extended keys.
SCANCODES: dict[str, int] = {
    "Escape": 0x01,
    "1": 0x02, "2": 0x03, "3": 0x04, "4": 0x05, "5": 0x06,
    "6": 0x07, "7": 0x08, "8": 0x09, "9": 0x0A, "0": 0x0B,
    "-": 0x0C, "=": 0x0D, "Backspace": 0x0E, "Tab": 0x0F,
    "q": 0x10, "w": 0x11, "e": 0x12, "r": 0x13, "t": 0x14,
    "y": 0x15, "u": 0x16, "i": 0x17, "o": 0x18, "p": 0x19,
    "[": 0x1A, "]": 0x1B, "Enter": 0x1C, "LeftCtrl": 0x1D,
    "a": 0x1E, "s": 0x1F, "d": 0x20, "f": 0x21, "g": 0x22,
    "h": 0x23, "j": 0x24, "k": 0x25, "l": 0x26, ";": 0x27, "'": 0x28, "`": 0x29,
    "LeftShift": 0x2A, "\\": 0x2B,
    "z": 0x2C, "x": 0x2D, "c": 0x2E, "v": 0x2F, "b": 0x30, "n": 0x31, "m": 0x32,
    ",": 0x33, ".": 0x34, "/": 0x35, "RightShift": 0x36, "KP*": 0x37, "LeftAlt": 0x38,
    " ": 0x39, "CapsLock": 0x3A,
    "F1": 0x3B, "F2": 0x3C, "F3": 0x3D, "F4": 0x3E, "F5": 0x3F,
    "F6": 0x40, "F7": 0x41, "F8": 0x42, "F9": 0x43, "F10": 0x44,
    "NumLock": 0x45, "ScrollLock": 0x46,
    "KP7": 0x47, "KP8": 0x48, "KP9": 0x49, "KP-": 0x4A,
    "KP4": 0x4B, "KP5": 0x4C, "KP6": 0x4D, "KP+": 0x4E,
    "KP1": 0x4F, "KP2": 0x50, "KP3": 0x51, "KP0": 0x52, "KP.": 0x53,
    "NonUSBackslash": 0x56,  # the extra ISO key left of Z (\ | on a UK keyboard)
    "F11": 0x57, "F12": 0x58,
    # E0-prefixed extended keys
    "KPEnter": EXTENDED | 0x1C, "RightCtrl": EXTENDED | 0x1D, "KP/": EXTENDED | 0x35,
    "RightAlt": EXTENDED | 0x38,
    "Home": EXTENDED | 0x47, "Up": EXTENDED | 0x48, "PageUp": EXTENDED | 0x49,
    "Left": EXTENDED | 0x4B, "Right": EXTENDED | 0x4D,
    "End": EXTENDED | 0x4F, "Down": EXTENDED | 0x50, "PageDown": EXTENDED | 0x51,
    "Insert": EXTENDED | 0x52, "Delete": EXTENDED | 0x53,
    "LeftMeta": EXTENDED | 0x5B, "RightMeta": EXTENDED | 0x5C, "Menu": EXTENDED | 0x5D,
}  # fmt: skip

ALIASES: dict[str, str] = {"Space": " "}

# Characters typed with Shift on a US keyboard -> the physical key that carries them.
SHIFTED: dict[str, str] = {
    **{c.upper(): c for c in "abcdefghijklmnopqrstuvwxyz"},
    **dict(zip('!@#$%^&*()_+{}|:"~<>?', "1234567890-=[]\\;'`,./", strict=True)),
}

# Control characters feed_text accepts, and the keys that produce them.
_TEXT_CONTROLS: dict[str, str] = {
    "\n": "Enter",
    "\r": "Enter",
    "\t": "Tab",
    "\b": "Backspace",
    "\x1b": "Escape",
}


class IrqLine(Protocol):
    """The part of machine.irq.IrqController the controller needs."""

    def raise_irq(self, line: int) -> None: ...


class PortRegistry(Protocol):
    """The part of machine.ports.PortBus the controller needs."""

    def register(self, ports: list[int], device: object) -> None: ...


def resolve(name: str) -> tuple[int, bool]:
    """Map a key name to ``(make code, needs shift)``; ValueError naming the key if unknown.

    Shifted characters ("A", "!") resolve to their physical key plus shift, because that is the
    only way a US keyboard can produce them."""
    name = ALIASES.get(name, name)
    code = SCANCODES.get(name)
    if code is not None:
        return code, False
    base = SHIFTED.get(name)
    if base is not None:
        return SCANCODES[base], True
    raise ValueError(f"unknown key name {name!r}")


def _make_bytes(code: int) -> bytes:
    return bytes((0xE0, code & 0xFF)) if code & EXTENDED else bytes((code,))


def _break_bytes(code: int) -> bytes:
    return bytes((0xE0, (code & 0xFF) | BREAK)) if code & EXTENDED else bytes((code | BREAK,))


class PS2Controller:
    """8042 keyboard controller with a scan code set 1 keyboard attached.

    ``irq`` receives ``raise_irq(1)`` each time a byte becomes available at the head of the
    FIFO. If ``bus`` is given the controller registers itself on ports 0x60 and 0x64."""

    PORTS = (DATA_PORT, STATUS_PORT)

    def __init__(self, irq: IrqLine, bus: PortRegistry | None = None) -> None:
        self._irq = irq
        self._fifo: deque[int] = deque()
        self._last = 0
        #: Called when the guest pulses the reset line (command 0xFE); the board wires it.
        self.reset_line: Callable[[], object] | None = None
        if bus is not None:
            bus.register(list(self.PORTS), self)

    # -- host side ---------------------------------------------------------------------------------

    def press(self, name: str) -> None:
        """Send the make code of the physical key ``name`` (no modifiers are added: "A" presses the
        A key only)."""
        code, _ = resolve(name)
        self._push(_make_bytes(code))

    def release(self, name: str) -> None:
        """Send the break code of the physical key ``name``."""
        code, _ = resolve(name)
        self._push(_break_bytes(code))

    def key(self, name: str, *, shift: bool = False, ctrl: bool = False, alt: bool = False) -> None:
        """Press and release one key with modifiers held around it, as a typist would: modifier
        makes first (Ctrl, Alt, Shift), the key's make and break, then modifier breaks in reverse."""
        code, needs_shift = resolve(name)  # resolve first so a bad name sends nothing
        mods = []
        if ctrl:
            mods.append(SCANCODES["LeftCtrl"])
        if alt:
            mods.append(SCANCODES["LeftAlt"])
        if shift or needs_shift:
            mods.append(SCANCODES["LeftShift"])
        out = bytearray()
        for m in mods:
            out += _make_bytes(m)
        out += _make_bytes(code) + _break_bytes(code)
        for m in reversed(mods):
            out += _break_bytes(m)
        self._push(bytes(out))

    def feed_text(self, text: str) -> None:
        """Type ``text`` on a US keyboard (newline -> Enter, tab -> Tab, backspace, escape).

        Every character is checked before anything is sent, so an untypeable character (e.g. "£")
        raises ValueError without leaving half the text queued."""
        names = [_TEXT_CONTROLS.get(ch, ch) for ch in text]
        for name in names:
            resolve(name)
        for name in names:
            self.key(name)

    def send_bytes(self, data: bytes) -> None:
        """Queue raw bytes as if the keyboard sent them (tests, unusual sequences like Pause)."""
        self._push(bytes(data))

    @property
    def queued(self) -> int:
        """Bytes waiting in the output FIFO."""
        return len(self._fifo)

    # -- guest side ----------------------------------------------------------------------------------

    def port_read(self, port: int, size: int) -> int:
        if port == DATA_PORT:
            if self._fifo:
                self._last = self._fifo.popleft()
                if self._fifo:
                    # The next byte moves into the output register: the controller interrupts again.
                    self._irq.raise_irq(KEYBOARD_IRQ)
            return self._last
        if port == STATUS_PORT:
            return STATUS_SYSTEM_FLAG | (STATUS_OUTPUT_FULL if self._fifo else 0)
        return 0xFF

    def port_write(self, port: int, size: int, value: int) -> None:
        """Controller command 0xFE resets the machine; other keyboard and controller commands
        are accepted and ignored (no guest driver configures the keyboard)."""
        if port == STATUS_PORT and value & 0xFF == CMD_PULSE_RESET and self.reset_line is not None:
            self.reset_line()

    # -- internals -------------------------------------------------------------------------------------

    def _push(self, data: bytes) -> None:
        if not data:
            return
        was_empty = not self._fifo
        self._fifo.extend(data)
        if was_empty:
            self._irq.raise_irq(KEYBOARD_IRQ)
