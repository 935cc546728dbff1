"""Memory-mapped I/O: PCI memory BARs decoded past RAM, the CPU's open bus, DMA's bus error."""

from __future__ import annotations

import pytest

from machine.board import Machine
from machine.memory import BusError, PhysicalMemory
from machine.netdev import NoneBackend
from machine.pci import CMD_MEMORY, Bar, PciFunction, PciHost


class Regs:
    """A device window that records its accesses."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int, int, int]] = []

    def mmio_read(self, offset: int, size: int) -> int:
        self.log.append(("r", offset, size, 0))
        return 0x1122_3344_5566_7788 & ((1 << (8 * size)) - 1)

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        self.log.append(("w", offset, size, value))


def host_with(bar: Bar) -> tuple[PhysicalMemory, PciFunction, Regs]:
    mem = PhysicalMemory(2 << 20)
    regs = Regs()
    host = PciHost(mem.mmio)
    fn = host.add(4, 0, PciFunction(0x1234, 0x5678, 0xFF0000, bars={0: bar}, mmio={0: regs}))
    return mem, fn, regs


def test_accesses_reach_the_device_with_size_and_offset() -> None:
    mem, fn, regs = host_with(Bar("mem", 4096, 0xFEB0_0000))
    assert mem.read_uint(0xFEB0_0010, 4) == 0x5566_7788
    mem.write_uint(0xFEB0_0020, 2, 0xBEEF)
    mem.write(0xFEB0_0030, b"\x01\x02\x03\x04\x05\x06")  # a 6-byte store: 4 + 2, aligned
    assert mem.read(0xFEB0_0008, 8) == (0x1122_3344_5566_7788).to_bytes(8, "little")  # one 8-byte access
    assert regs.log == [("r", 0x10, 4, 0), ("w", 0x20, 2, 0xBEEF), ("w", 0x30, 4, 0x0403_0201),
                        ("w", 0x34, 2, 0x0605), ("r", 8, 8, 0)]


def test_bar_moves_and_memory_space_bit_hides() -> None:
    mem, fn, regs = host_with(Bar("mem", 4096, 0xFEB0_0000))
    fn.write(0x10, 4, 0xFEC0_0000)
    assert mem.cpu_read(0xFEB0_0000, 4) == b"\xff" * 4  # the old place floats high
    assert mem.read_uint(0xFEC0_0000, 1) == 0x88
    with pytest.raises(BusError):
        mem.read(0xFEB0_0000, 4)  # a device's DMA to nowhere is a bus error, loudly
    fn.write(0x04, 2, 0)  # Memory Space off
    assert mem.cpu_read(0xFEC0_0000, 1) == b"\xff"
    mem.cpu_write(0xFEC0_0000, b"x")  # vanishes
    fn.write(0x04, 2, CMD_MEMORY)
    assert mem.read_uint(0xFEC0_0000, 1) == 0x88
    assert [e for e in regs.log if e[0] == "w"] == []


def test_ram_is_untouched_and_wins() -> None:
    mem, fn, regs = host_with(Bar("mem", 4096, 0x1000))  # a BAR moved into RAM is shadowed
    mem.write(0x1000, b"ram")
    assert mem.read(0x1000, 3) == b"ram" and regs.log == []
    with pytest.raises(BusError):
        mem.read(mem.size - 2, 4)  # straddling the top of RAM


def test_64_bit_bar_sizing_and_placement() -> None:
    mem, fn, regs = host_with(Bar("mem", 0x4000, 0xFE00_0000, prefetchable=True, wide=True))
    assert fn.bar_value(0) == 0xFE00_000C and fn.bar_value(1) == 0
    fn.write(0x10, 4, 0xFFFF_FFFF)
    fn.write(0x14, 4, 0xFFFF_FFFF)
    assert fn.bar_value(0) == 0xFFFF_C00C and fn.bar_value(1) == 0xFFFF_FFFF
    fn.write(0x10, 4, 0)
    fn.write(0x14, 4, 2)
    assert mem.read_uint(0x2_0000_0004, 4) == 0x5566_7788
    with pytest.raises(ValueError):
        PciFunction(1, 2, 3, bars={5: Bar("mem", 16, 0, wide=True)})


def test_rtl8139_registers_are_also_memory_mapped_in_bar1() -> None:
    machine = Machine("4M", nic=NoneBackend())
    assert machine.memory.read(0xFEBF_1000, 6) == bytes.fromhex("525400123456")
