"""PS/2 controller: key names -> scan code set 1, FIFO, status port, IRQ 1."""

from __future__ import annotations

import pytest

from machine.irq import IrqController
from machine.ports import PortBus
from machine.ps2 import SCANCODES, PS2Controller


def make() -> tuple[PS2Controller, PortBus, list[int]]:
    irq = IrqController()
    raised: list[int] = []
    irq.set_handler(raised.append)
    bus = PortBus()
    kbd = PS2Controller(irq, bus)
    return kbd, bus, raised


def drain(bus: PortBus) -> bytes:
    out = bytearray()
    while bus.read(0x64, 1) & 1:
        out.append(bus.read(0x60, 1))
    return bytes(out)


# Scan code set 1 make codes of a PC/AT keyboard, written out independently of machine.ps2.
EXPECTED_MAKE = {
    "Escape": b"\x01", "1": b"\x02", "2": b"\x03", "3": b"\x04", "4": b"\x05", "5": b"\x06",
    "6": b"\x07", "7": b"\x08", "8": b"\x09", "9": b"\x0a", "0": b"\x0b", "-": b"\x0c", "=": b"\x0d",
    "Backspace": b"\x0e", "Tab": b"\x0f", "q": b"\x10", "w": b"\x11", "e": b"\x12", "r": b"\x13",
    "t": b"\x14", "y": b"\x15", "u": b"\x16", "i": b"\x17", "o": b"\x18", "p": b"\x19",
    "[": b"\x1a", "]": b"\x1b", "Enter": b"\x1c", "LeftCtrl": b"\x1d", "a": b"\x1e", "s": b"\x1f",
    "d": b"\x20", "f": b"\x21", "g": b"\x22", "h": b"\x23", "j": b"\x24", "k": b"\x25", "l": b"\x26",
    ";": b"\x27", "'": b"\x28", "`": b"\x29", "LeftShift": b"\x2a", "\\": b"\x2b", "z": b"\x2c",
    "x": b"\x2d", "c": b"\x2e", "v": b"\x2f", "b": b"\x30", "n": b"\x31", "m": b"\x32", ",": b"\x33",
    ".": b"\x34", "/": b"\x35", "RightShift": b"\x36", "KP*": b"\x37", "LeftAlt": b"\x38", " ": b"\x39",
    "CapsLock": b"\x3a", "F1": b"\x3b", "F2": b"\x3c", "F3": b"\x3d", "F4": b"\x3e", "F5": b"\x3f",
    "F6": b"\x40", "F7": b"\x41", "F8": b"\x42", "F9": b"\x43", "F10": b"\x44", "NumLock": b"\x45",
    "ScrollLock": b"\x46", "KP7": b"\x47", "KP8": b"\x48", "KP9": b"\x49", "KP-": b"\x4a",
    "KP4": b"\x4b", "KP5": b"\x4c", "KP6": b"\x4d", "KP+": b"\x4e", "KP1": b"\x4f", "KP2": b"\x50",
    "KP3": b"\x51", "KP0": b"\x52", "KP.": b"\x53", "NonUSBackslash": b"\x56", "F11": b"\x57",
    "F12": b"\x58",
    "KPEnter": b"\xe0\x1c", "RightCtrl": b"\xe0\x1d", "KP/": b"\xe0\x35", "RightAlt": b"\xe0\x38",
    "Home": b"\xe0\x47", "Up": b"\xe0\x48", "PageUp": b"\xe0\x49", "Left": b"\xe0\x4b",
    "Right": b"\xe0\x4d", "End": b"\xe0\x4f", "Down": b"\xe0\x50", "PageDown": b"\xe0\x51",
    "Insert": b"\xe0\x52", "Delete": b"\xe0\x53", "LeftMeta": b"\xe0\x5b", "RightMeta": b"\xe0\x5c",
    "Menu": b"\xe0\x5d",
}  # fmt: skip


def break_of(make: bytes) -> bytes:
    return make[:-1] + bytes((make[-1] | 0x80,))


def test_table_covers_every_key() -> None:
    assert set(SCANCODES) == set(EXPECTED_MAKE)


@pytest.mark.parametrize("name", sorted(EXPECTED_MAKE))
def test_key_sends_make_then_break(name: str) -> None:
    kbd, bus, _ = make()
    kbd.key(name)
    make_code = EXPECTED_MAKE[name]
    assert drain(bus) == make_code + break_of(make_code)


@pytest.mark.parametrize("name", sorted(EXPECTED_MAKE))
def test_press_release_raw(name: str) -> None:
    kbd, bus, _ = make()
    kbd.press(name)
    assert drain(bus) == EXPECTED_MAKE[name]
    kbd.release(name)
    assert drain(bus) == break_of(EXPECTED_MAKE[name])


def test_shifted_characters_imply_shift() -> None:
    kbd, bus, _ = make()
    kbd.key("A")
    assert drain(bus) == b"\x2a\x1e\x9e\xaa"
    kbd.key("!")
    assert drain(bus) == b"\x2a\x02\x82\xaa"
    kbd.key('"')
    assert drain(bus) == b"\x2a\x28\xa8\xaa"
    kbd.key("~")
    assert drain(bus) == b"\x2a\x29\xa9\xaa"


def test_modifier_ordering() -> None:
    kbd, bus, _ = make()
    kbd.key("s", ctrl=True)
    assert drain(bus) == b"\x1d\x1f\x9f\x9d"
    kbd.key("x", ctrl=True, alt=True, shift=True)
    # makes Ctrl, Alt, Shift; key; breaks in reverse order
    assert drain(bus) == b"\x1d\x38\x2a\x2d\xad\xaa\xb8\x9d"
    kbd.key("Up", shift=True)
    assert drain(bus) == b"\x2a\xe0\x48\xe0\xc8\xaa"
    kbd.key("A", shift=True)  # shift only once
    assert drain(bus) == b"\x2a\x1e\x9e\xaa"


def test_space_alias_and_unknown_names() -> None:
    kbd, bus, _ = make()
    kbd.key("Space")
    assert drain(bus) == b"\x39\xb9"
    for bad in ("Foo", "F13", "£", "", "ab"):
        with pytest.raises(ValueError, match="unknown key"):
            kbd.key(bad)
        with pytest.raises(ValueError):
            kbd.press(bad)
    assert kbd.queued == 0


def test_feed_text() -> None:
    kbd, bus, _ = make()
    kbd.feed_text("hI\n")
    assert drain(bus) == b"\x23\xa3" + b"\x2a\x17\x97\xaa" + b"\x1c\x9c"
    with pytest.raises(ValueError):
        kbd.feed_text("ok£")
    assert kbd.queued == 0  # nothing of the rejected text was queued


def test_status_port_and_empty_read() -> None:
    kbd, bus, _ = make()
    assert bus.read(0x64, 1) & 1 == 0
    kbd.press("a")
    assert bus.read(0x64, 1) & 1 == 1
    assert bus.read(0x60, 1) == 0x1E
    assert bus.read(0x64, 1) & 1 == 0
    assert bus.read(0x60, 1) == 0x1E  # empty: the output register keeps the last byte
    bus.write(0x60, 1, 0xF4)  # commands are accepted and ignored
    bus.write(0x64, 1, 0xAE)
    assert kbd.queued == 0


def test_irq1_raised_per_available_byte() -> None:
    kbd, bus, raised = make()
    kbd.key("Up")  # 4 bytes queued at once
    assert raised == [1]  # queue went non-empty
    kbd.key("a")  # queue already non-empty: no new interrupt yet
    assert raised == [1]
    total = kbd.queued
    assert total == 6
    for n in range(total):
        bus.read(0x60, 1)
        remaining = total - n - 1
        assert len(raised) == 1 + min(n + 1, total - 1)
        assert kbd.queued == remaining
    assert raised == [1] * total  # one interrupt per byte that reached the head
    kbd.press("b")
    assert raised == [1] * (total + 1)


def test_irq_counts_and_ack_flow() -> None:
    irq = IrqController()
    bus = PortBus()
    kbd = PS2Controller(irq, bus)
    kbd.feed_text("ab")
    got = []
    while irq.pending(1):
        irq.acknowledge(1)
        got.append(bus.read(0x60, 1))
    assert bytes(got) == b"\x1e\x9e\x30\xb0"
    assert irq.counts[1] == 4
