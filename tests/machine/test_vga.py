"""VGA text mode: cells/text from RAM at 0xB8000, CRTC cursor ports, change notification."""

from __future__ import annotations

import unicodedata

import pytest

from machine.memory import PhysicalMemory
from machine.ports import PortBus
from machine.vga import CGA_PALETTE, CP437, TEXT_BASE, VgaText


def make() -> tuple[VgaText, PhysicalMemory, PortBus]:
    mem = PhysicalMemory(2 * 1024 * 1024)
    bus = PortBus()
    return VgaText(mem, bus), mem, bus


def set_cursor(bus: PortBus, row: int, col: int) -> None:
    pos = 80 * row + col
    bus.write(0x3D4, 1, 0x0F)
    bus.write(0x3D5, 1, pos & 0xFF)
    bus.write(0x3D4, 1, 0x0E)
    bus.write(0x3D5, 1, pos >> 8)


def test_cells_and_text_read_video_memory() -> None:
    vga, mem, _ = make()
    mem.write(TEXT_BASE + (2 * 80 + 3) * 2, b"H\x1fi\x4e")
    mem.write(TEXT_BASE + (24 * 80 + 79) * 2, b"\xdb\x07")  # full block, bottom-right
    cells = vga.cells()
    assert len(cells) == 25 and all(len(r) == 80 for r in cells)
    assert cells[2][3] == ("H", 0x1F)
    assert cells[2][4] == ("i", 0x4E)
    assert cells[24][79] == ("█", 0x07)
    lines = vga.text().split("\n")
    assert len(lines) == 25 and all(len(line) == 80 for line in lines)
    assert lines[2] == "   Hi" + " " * 75
    assert lines[24].endswith("█")
    assert lines[0] == " " * 80  # zeroed memory (NUL) shows blank, as on the hardware


def test_cp437_mapping() -> None:
    assert len(CP437) == 256
    for b in range(0x20, 0x7F):
        assert CP437[b] == chr(b)
    assert CP437[0x00] == " "
    assert CP437[0x01] == "☺"
    assert CP437[0x7F] == "⌂"
    assert CP437[0x9C] == "£"
    assert CP437[0xC4] == "─"
    assert CP437[0xFE] == "■"
    # nothing a host terminal would interpret (0xFF is a no-break space)
    assert not any(unicodedata.category(ch).startswith("C") for ch in CP437)


def test_cursor_through_crtc_ports() -> None:
    vga, _, bus = make()
    assert vga.cursor == (0, 0)
    assert vga.cursor_visible
    set_cursor(bus, 12, 34)
    assert vga.cursor == (12, 34)
    assert vga.cursor_offset == 80 * 12 + 34
    bus.write(0x3D4, 1, 0x0E)
    assert bus.read(0x3D4, 1) == 0x0E
    assert bus.read(0x3D5, 1) == (80 * 12 + 34) >> 8


def test_cursor_disable_bit_and_shape() -> None:
    vga, _, bus = make()
    bus.write(0x3D4, 1, 0x0A)
    bus.write(0x3D5, 1, 0x20)
    assert not vga.cursor_visible
    bus.write(0x3D5, 1, 0x0D)
    assert vga.cursor_visible
    bus.write(0x3D4, 1, 0x0B)
    bus.write(0x3D5, 1, 0x0E)
    assert bus.read(0x3D5, 1) == 0x0E
    set_cursor(bus, 25, 0)  # off screen
    assert not vga.cursor_visible


def test_word_write_sets_index_and_data() -> None:
    vga, _, bus = make()
    bus.write(0x3D4, 2, 0x0F | (5 << 8))  # out dx, ax with al=index, ah=data
    assert vga.cursor == (0, 5)


def test_version_and_listeners_on_memory_writes() -> None:
    vga, mem, _ = make()
    calls: list[int] = []
    remove = vga.on_change(lambda: calls.append(vga.version))
    v0 = vga.version
    mem.write(TEXT_BASE + 10, b"x\x07")
    assert vga.version == v0 + 1
    assert calls == [v0 + 1]
    mem.write(TEXT_BASE + 4000, b"y")  # just past the text buffer
    mem.write(TEXT_BASE - 1, b"z")
    assert vga.version == v0 + 1
    mem.write(TEXT_BASE - 1, b"zz")  # overlaps the first byte
    assert vga.version == v0 + 2
    remove()
    mem.write(TEXT_BASE, b"q")
    assert vga.version == v0 + 3
    assert len(calls) == 2


def test_version_on_crtc_cursor_writes() -> None:
    vga, _, bus = make()
    calls: list[int] = []
    vga.on_change(lambda: calls.append(1))
    v0 = vga.version
    set_cursor(bus, 1, 2)  # low byte changes; high byte stays 0
    assert vga.version == v0 + 1
    set_cursor(bus, 1, 2)  # same position again: nothing changed
    assert vga.version == v0 + 1
    bus.write(0x3D4, 1, 0x0A)
    bus.write(0x3D5, 1, 0x20)  # cursor off
    assert vga.version == v0 + 2
    bus.write(0x3D4, 1, 0x13)  # a non-cursor register: no redraw needed
    bus.write(0x3D5, 1, 0x28)
    assert vga.version == v0 + 2
    assert len(calls) == 2


def test_notify_for_direct_buffer_writes_and_close() -> None:
    vga, mem, _ = make()
    v0 = vga.version
    mem.buf[TEXT_BASE] = ord("A")  # bypasses watches
    assert vga.version == v0
    vga.notify()
    assert vga.version == v0 + 1
    assert vga.cells()[0][0][0] == "A"
    vga.close()
    mem.write(TEXT_BASE, b"B")
    assert vga.version == v0 + 1


def test_ports_registered_once() -> None:
    _, mem, bus = make()
    with pytest.raises(ValueError):
        VgaText(mem, bus)


def test_palette() -> None:
    assert len(CGA_PALETTE) == 16
    assert CGA_PALETTE[0] == "#000000"
    assert CGA_PALETTE[4] == "#aa0000"
    assert CGA_PALETTE[6] == "#aa5500"  # brown, the CGA's adjusted dark yellow
    assert CGA_PALETTE[14] == "#ffff55"
    assert CGA_PALETTE[15] == "#ffffff"
