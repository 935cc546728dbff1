"""The monitor's sans-IO formatters against hand-built page tables and known devices: the exact
lines QEMU's target/i386/monitor.c, memory_dump and info pci would print."""

from __future__ import annotations

import pytest

from euralios.monitor import devices, memdump, pagetables, sendkey
from machine.memory import PhysicalMemory
from machine.pci import PciHost, i440fx_functions
from machine.rtl8139 import Rtl8139

P, RW, US, PWT, PCD, A, D, PS, G, NX = 1, 2, 4, 8, 16, 32, 64, 128, 256, 1 << 63


@pytest.fixture
def tables() -> PhysicalMemory:
    """PML4 0x1000: [0] -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000 with three 4 KiB pages, PD[1] a
    2 MiB page; [511] -> PDPT 0x8000 whose [511] is a 1 GiB page (the top of the upper half)."""
    m = PhysicalMemory(4 << 20)
    w = m.write_u64
    w(0x1000, 0x2000 | P | RW | US)
    w(0x2000, 0x3000 | P | RW | US)
    w(0x3000, 0x4000 | P | RW | US)
    w(0x4000 + 8 * 1, 0x5000 | P | US | A)
    w(0x4000 + 8 * 2, 0x6000 | P | RW | US | A | D | NX)
    w(0x4000 + 8 * 3, 0x7000 | P | RW | PS)  # bit 7 of a 4 KiB entry is PAT: QEMU shows no P
    w(0x3000 + 8 * 1, 0x200000 | P | RW | PS | G)
    w(0x1000 + 8 * 511, 0x8000 | P | RW | US)
    w(0x8000 + 8 * 511, 0x4000_0000 | P | PS | RW | US | PCD | PWT)
    return m


def test_info_tlb_prints_one_line_per_present_leaf(tables: PhysicalMemory) -> None:
    assert pagetables.tlb_lines(tables.read, 0x1000) == [
        "0000000000001000: 0000000000005000 ----A--U-",
        "0000000000002000: 0000000000006000 X--DA--UW",
        "0000000000003000: 0000000000007000 --------W",
        "0000000000200000: 0000000000200000 -GP-----W",
        "ffffffffc0000000: 0000000040000000 --P--CTUW",
    ]


def test_info_mem_prints_ranges_of_equal_protection(tables: PhysicalMemory) -> None:
    assert pagetables.mem_lines(tables.read, 0x1000) == [
        "0000000000001000-0000000000002000 0000000000001000 ur-",
        "0000000000002000-0000000000003000 0000000000001000 urw",
        "0000000000003000-0000000000004000 0000000000001000 -rw",
        "0000000000200000-0000000000400000 0000000000200000 -rw",
        # QEMU flushes the last range at 1 << 48 and sign-extends both ends separately
        "ffffffffc0000000-0001000000000000 0000000040000000 urw",
    ]


def test_info_mem_joins_adjacent_pages_and_ands_the_levels() -> None:
    m = PhysicalMemory(4 << 20)
    m.write_u64(0x1000, 0x2000 | P | US)  # the PML4 entry is read-only: nothing below is writable
    m.write_u64(0x2000, 0x3000 | P | RW | US)
    m.write_u64(0x3000, 0x4000 | P | RW | US)
    for i in range(4):
        m.write_u64(0x4000 + 8 * i, (0x10000 + i * 0x1000) | P | RW | US)
    assert pagetables.mem_lines(m.read, 0x1000) == ["0000000000000000-0000000000004000 0000000000004000 ur-"]
    assert pagetables.tlb_lines(m.read, 0x1000)[3] == "0000000000003000: 0000000000013000 -------UW"


def _reader(data: bytes, base: int):  # type: ignore[no-untyped-def]
    def read(addr: int, n: int) -> bytes | None:
        if addr < base or addr + n > base + len(data):
            return None
        return data[addr - base:addr - base + n]
    return read


def test_x_formats_as_qemu() -> None:
    data = bytes(range(1, 33))
    read = _reader(data, 0x1000)
    last = memdump.DumpFormat()
    f = memdump.parse_format("4xg", last)
    assert memdump.dump_lines(read, 0x1000, f) == [
        "0000000000001000: 0x0807060504030201 0x100f0e0d0c0b0a09",
        "0000000000001010: 0x1817161514131211 0x201f1e1d1c1b1a19",
    ]
    assert (last.format, last.size) == ("x", 8)  # remembered, as QEMU's default_fmt_*
    assert memdump.dump_lines(read, 0x1000, memdump.parse_format("2", last)) == [
        "0000000000001000: 0x0807060504030201 0x100f0e0d0c0b0a09"]
    assert memdump.dump_lines(read, 0x1000, memdump.parse_format("3xb", last)) == [
        "0000000000001000: 0x01 0x02 0x03"]
    assert memdump.dump_lines(read, 0x1000, memdump.parse_format("2uh", last)) == [
        "0000000000001000:   513  1027"]
    assert memdump.dump_lines(read, 0x1000, memdump.parse_format("2ob", last)) == [
        "0000000000001000:  01  02"]


def test_x_chars_signed_and_errors() -> None:
    read = _reader(b"Hi'\n\x00\xff\xff\xff\xff\xff\xff\xff\xff", 0)
    last = memdump.DumpFormat()
    assert memdump.dump_lines(read, 0, memdump.parse_format("5cb", last)) == [
        "0000000000000000: 'H' 'i' '\\'' '\\n' '\\x00'"]
    assert memdump.dump_lines(read, 5, memdump.parse_format("1dg", last)) == [
        "0000000000000005:                   -1"]
    assert memdump.dump_lines(read, 0x100, memdump.parse_format("1xg", last)) == [
        "0000000000000100: Cannot access memory"]
    with pytest.raises(memdump.FormatError, match="invalid char in format: 'z'"):
        memdump.parse_format("4z", last)
    with pytest.raises(memdump.FormatError, match="disassembly"):
        memdump.parse_format("i", last)


def test_info_pci_prints_qemus_device_blocks() -> None:
    host = PciHost()
    for slot, function, fn in i440fx_functions():
        host.add(slot, function, fn)
    nic = Rtl8139(PhysicalMemory(4 << 20), irq=None)  # type: ignore[arg-type]
    host.add(3, 0, nic.pci)
    lines = devices.pci_lines(host.functions)
    assert lines[:4] == ["  Bus  0, device   0, function 0:", "    Host bridge: PCI device 8086:1237",
                         "      PCI subsystem 1af4:1100", '      id ""']
    at = lines.index("  Bus  0, device   3, function 0:")
    assert lines[at:at + 7] == [
        "  Bus  0, device   3, function 0:",
        "    Ethernet controller: PCI device 10ec:8139",
        "      PCI subsystem 1af4:1100",
        "      IRQ 11, pin A",
        "      BAR0: I/O at 0xc000 [0xc0ff].",
        "      BAR1: 32 bit memory at 0xfebf1000 [0xfebf10ff].",
        '      id ""',
    ]
    assert "      BAR0: 32 bit prefetchable memory at 0xfd000000 [0xfdffffff]." in lines
    assert "    Bridge: PCI device 8086:7113" in lines


def test_info_irq_and_network() -> None:
    counts = [0] * 16
    counts[0], counts[1], counts[11] = 7, 2, 3
    assert devices.irq_lines(counts) == ["IRQ statistics for isa-i8259:", " 0: 7", " 1: 2",
                                         "IRQ statistics for isa-i8259:", " 3: 3"]
    from machine.netdev import NoneBackend

    nic = Rtl8139(PhysicalMemory(4 << 20), irq=None, mac="52:54:00:12:34:56")  # type: ignore[arg-type]
    assert devices.network_lines(nic, NoneBackend()) == [
        "rtl8139.0: index=0,type=nic,model=rtl8139,macaddr=52:54:00:12:34:56",
        " \\ none.0: index=0,type=none,none"]
    assert devices.network_lines(None, None) == []


def test_sendkey_holds_modifiers_around_the_key() -> None:
    keys = sendkey.parse_keys("ctrl-alt-delete")
    assert sendkey.scan_bytes(keys) == bytes([0x1D, 0x38, 0xE0, 0x53, 0xE0, 0xD3, 0xB8, 0x9D])
    assert sendkey.scan_bytes(sendkey.parse_keys("a")) == bytes([0x1E, 0x9E])
    assert sendkey.scan_bytes(sendkey.parse_keys("0x1e")) == bytes([0x1E, 0x9E])
    assert sendkey.scan_bytes(sendkey.parse_keys("0xc8")) == bytes([0xE0, 0x48, 0xE0, 0xC8])  # Up
    with pytest.raises(sendkey.SendkeyError, match="invalid parameter: nokey"):
        sendkey.parse_keys("ctrl-nokey")


def test_info_pci_and_network_show_the_virtio_card() -> None:
    from machine.netdev import NoneBackend
    from machine.virtio.net import VirtioNet

    host = PciHost()
    nic = VirtioNet(PhysicalMemory(4 << 20), irq=None)
    host.add(3, 0, nic.pci)
    assert devices.pci_lines(host.functions) == [
        "  Bus  0, device   3, function 0:",
        "    Ethernet controller: PCI device 1af4:1000",
        "      PCI subsystem 1af4:0001",
        "      IRQ 11, pin A",
        "      BAR0: I/O at 0xc000 [0xc01f].",
        "      BAR4: 64 bit prefetchable memory at 0xfe000000 [0xfe003fff].",
        '      id ""']
    lines = devices.network_lines(nic, NoneBackend())
    assert lines[0] == "virtio-net-pci.0: index=0,type=nic,model=virtio-net-pci,macaddr=52:54:00:12:34:56"
    assert lines[1].startswith(" features offered: CSUM GUEST_CSUM MAC") and "VERSION_1" in lines[1]
    assert lines[2] == " features negotiated: (none: no driver yet)"
    assert lines[-1] == " \\ none.0: index=0,type=none,none"
