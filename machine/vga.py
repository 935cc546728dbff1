"""VGA 80x25 colour text mode: the text buffer at physical 0xB8000 and the CRTC cursor registers.

The text buffer is ordinary RAM inside :class:`~machine.memory.PhysicalMemory` (char byte then
attribute byte per cell, row-major), so the kernel and a mapped user driver write it like any
memory. This class only *interprets* it for front-ends and watches it, so that the UI can redraw
when something changes (``version`` / ``on_change``) instead of polling.

CRTC registers are reached through index port 0x3D4 and data port 0x3D5:

* 0x0A cursor start scan line; bit 5 set = cursor disabled
* 0x0B cursor end scan line
* 0x0E / 0x0F cursor location high / low byte, as the offset ``80 * row + col``

Attribute bytes are ``background << 4 | foreground`` with 16 background colours (blink disabled,
as the seed's default colours use background 15).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

TEXT_BASE = 0xB8000
COLS = 80
ROWS = 25
TEXT_SIZE = COLS * ROWS * 2

CRTC_INDEX = 0x3D4
CRTC_DATA = 0x3D5
REG_CURSOR_START = 0x0A
REG_CURSOR_END = 0x0B
REG_CURSOR_HIGH = 0x0E
REG_CURSOR_LOW = 0x0F
CURSOR_DISABLE = 0x20
_CRTC_REGS = 0x19  # registers 0x00-0x18 exist on a VGA CRTC

_CURSOR_REGS = (REG_CURSOR_START, REG_CURSOR_END, REG_CURSOR_HIGH, REG_CURSOR_LOW)

#: The 16 CGA/VGA text colours as RGB, indexed by colour number (attribute nibble).
CGA_PALETTE: tuple[str, ...] = (
    "#000000", "#0000aa", "#00aa00", "#00aaaa", "#aa0000", "#aa00aa", "#aa5500", "#aaaaaa",
    "#555555", "#5555ff", "#55ff55", "#55ffff", "#ff5555", "#ff55ff", "#ffff55", "#ffffff",
)  # fmt: skip

# Code page 437 as the VGA character generator draws it. 0x20-0x7E are ASCII; 0x80-0xFF follow
# Python's cp437 codec. The control range 0x01-0x1F and 0x7F are drawn as glyphs (smileys, arrows,
# house) by the hardware, and NUL as a blank; using those instead of raw control characters keeps
# cells()/text() safe to print on a host terminal and to match with regular expressions.
_LOW_GLYPHS = " ☺☻♥♦♣♠•◘○◙♂♀♪♫☼►◄↕‼¶§▬↨↑↓→←∟↔▲▼"
CP437: tuple[str, ...] = tuple(
    _LOW_GLYPHS[b] if b < 0x20 else "⌂" if b == 0x7F else bytes((b,)).decode("cp437") for b in range(256)
)
_TRANSLATE = {b: _LOW_GLYPHS[b] for b in range(0x20)} | {0x7F: "⌂"}


def decode_cp437(data: bytes | bytearray) -> str:
    """Text-mode characters -> str, using the glyphs the VGA shows (see CP437)."""
    return bytes(data).decode("cp437").translate(_TRANSLATE)


class Memory(Protocol):
    """The part of machine.memory.PhysicalMemory the VGA needs."""

    def read(self, paddr: int, n: int) -> bytes: ...

    def add_write_watch(self, start: int, end: int, callback: Callable[[], object]) -> object: ...

    def remove_write_watch(self, token: object) -> None: ...


class PortRegistry(Protocol):
    def register(self, ports: list[int], device: object) -> None: ...


class VgaText:
    """Colour text mode over ``memory`` at 0xB8000 plus the CRTC cursor registers.

    If ``bus`` is given the CRTC registers itself on ports 0x3D4/0x3D5. Initial CRTC state is the
    BIOS's: cursor at offset 0, an underline cursor (scan lines 14-15), enabled."""

    PORTS = (CRTC_INDEX, CRTC_DATA)

    def __init__(self, memory: Memory, bus: PortRegistry | None = None) -> None:
        self._memory = memory
        self._regs = bytearray(_CRTC_REGS)
        self._regs[REG_CURSOR_START] = 0x0E
        self._regs[REG_CURSOR_END] = 0x0F
        self._index = 0
        #: Incremented on every change of text memory or of the cursor (position, shape, on/off).
        self.version = 0
        self._listeners: list[Callable[[], object]] = []
        self._watch = memory.add_write_watch(TEXT_BASE, TEXT_BASE + TEXT_SIZE, self.notify)
        if bus is not None:
            bus.register(list(self.PORTS), self)

    def close(self) -> None:
        """Stop watching RAM (the board is being torn down)."""
        if self._watch is not None:
            self._memory.remove_write_watch(self._watch)
            self._watch = None

    # -- change notification ------------------------------------------------------------------------

    def on_change(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call ``callback()`` after every change; returns a function that unregisters it.

        Callbacks run synchronously inside the guest's write, so they should only schedule a
        redraw, not draw."""
        self._listeners.append(callback)

        def remove() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return remove

    def notify(self) -> None:
        """Record a change and tell listeners. Called by the RAM write watch; also public for code
        that writes the text buffer through ``PhysicalMemory.buf`` directly (which bypasses
        watches)."""
        self.version += 1
        for cb in tuple(self._listeners):
            cb()

    # -- CRTC ports -----------------------------------------------------------------------------------

    def port_read(self, port: int, size: int) -> int:
        if port == CRTC_INDEX:
            return self._index
        if port == CRTC_DATA:
            return self._regs[self._index] if self._index < _CRTC_REGS else 0xFF
        return 0xFF

    def port_write(self, port: int, size: int, value: int) -> None:
        if port == CRTC_INDEX:
            self._index = value & 0xFF
            if size >= 2:  # ``out dx, ax`` writes index and data in one go, a common idiom
                self._write_reg((value >> 8) & 0xFF)
        elif port == CRTC_DATA:
            self._write_reg(value & 0xFF)

    def _write_reg(self, value: int) -> None:
        index = self._index
        if index >= _CRTC_REGS:
            return
        old = self._regs[index]
        self._regs[index] = value
        if index in _CURSOR_REGS and old != value:
            self.notify()

    # -- views for front-ends ---------------------------------------------------------------------------

    @property
    def cursor_offset(self) -> int:
        """The raw cursor location register (80 * row + col when on screen)."""
        return (self._regs[REG_CURSOR_HIGH] << 8) | self._regs[REG_CURSOR_LOW]

    @property
    def cursor(self) -> tuple[int, int]:
        """Cursor ``(row, col)`` decoded from the location registers."""
        return divmod(self.cursor_offset, COLS)

    @property
    def cursor_visible(self) -> bool:
        """Drawn by the hardware: not disabled (bit 5 of register 0x0A) and on screen."""
        return not (self._regs[REG_CURSOR_START] & CURSOR_DISABLE) and self.cursor_offset < COLS * ROWS

    def raw(self) -> bytes:
        """The 4000 bytes of text memory (char, attribute per cell)."""
        return self._memory.read(TEXT_BASE, TEXT_SIZE)

    def cells(self) -> list[list[tuple[str, int]]]:
        """25 rows of 80 ``(char, attribute)`` pairs, chars decoded as the VGA draws them."""
        raw = self.raw()
        chars = decode_cp437(raw[0::2])
        attrs = raw[1::2]
        return [[(chars[i], attrs[i]) for i in range(r * COLS, (r + 1) * COLS)] for r in range(ROWS)]

    def text(self) -> str:
        """The screen as 25 lines of exactly 80 characters joined by newlines."""
        chars = decode_cp437(self.raw()[0::2])
        return "\n".join(chars[r * COLS : (r + 1) * COLS] for r in range(ROWS))
