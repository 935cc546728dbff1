"""PCI configuration mechanism #1, the QEMU i440FX table, BAR sizing and I/O BAR decoding."""

from __future__ import annotations

import pytest

from machine.board import Machine
from machine.netdev import NoneBackend
from machine.pci import CMD_BUS_MASTER, CMD_IO, Bar, PciFunction, PciHost
from machine.ports import PortBus


def cfg_address(slot: int, function: int = 0, reg: int = 0, bus: int = 0) -> int:
    return 0x8000_0000 | bus << 16 | slot << 11 | function << 8 | (reg & 0xFC)


class Cfg:
    """Config access through the real ports, as a driver does it."""

    def __init__(self, ports: PortBus) -> None:
        self.ports = ports

    def read(self, slot: int, function: int, reg: int, size: int = 4, bus: int = 0) -> int:
        self.ports.write(0xCF8, 4, cfg_address(slot, function, reg, bus))
        return self.ports.read(0xCFC + (reg & 3), size)

    def write(self, slot: int, function: int, reg: int, value: int, size: int = 4) -> None:
        self.ports.write(0xCF8, 4, cfg_address(slot, function, reg))
        self.ports.write(0xCFC + (reg & 3), size, value)


@pytest.fixture
def machine() -> Machine:
    return Machine("4M", nic=NoneBackend())


@pytest.fixture
def cfg(machine: Machine) -> Cfg:
    return Cfg(machine.ports)


def test_qemu_pc_table(cfg: Cfg) -> None:
    found = {}
    for slot in range(32):
        for function in range(8):
            ids = cfg.read(slot, function, 0)
            if ids != 0xFFFF_FFFF:
                found[(slot, function)] = (ids & 0xFFFF, ids >> 16, cfg.read(slot, function, 8) >> 8)
    assert found == {
        (0, 0): (0x8086, 0x1237, 0x060000),
        (1, 0): (0x8086, 0x7000, 0x060100),
        (1, 1): (0x8086, 0x7010, 0x010180),
        (1, 3): (0x8086, 0x7113, 0x068000),
        (2, 0): (0x1234, 0x1111, 0x030000),
        (3, 0): (0x10EC, 0x8139, 0x020000),
    }


def test_header_type_marks_the_multifunction_isa_bridge(cfg: Cfg) -> None:
    assert (cfg.read(1, 0, 0x0C) >> 16) & 0xFF == 0x80
    assert (cfg.read(0, 0, 0x0C) >> 16) & 0xFF == 0x00
    assert (cfg.read(3, 0, 0x0C) >> 16) & 0xFF == 0x00


def test_nic_bar_irq_subsystem(cfg: Cfg) -> None:
    assert cfg.read(3, 0, 0x10) == 0xC001  # I/O space at 0xC000
    assert cfg.read(3, 0, 0x3C) & 0xFFFF == 0x010B  # INTA#, routed to IRQ 11
    assert cfg.read(3, 0, 0x2C) == 0x1100_1AF4  # QEMU's default subsystem ids
    assert cfg.read(3, 0, 0x08) & 0xFF == 0x20  # revision


def test_byte_lanes_of_the_data_port(cfg: Cfg) -> None:
    # 0xCFE as a 16-bit read is bytes 2-3 of the addressed dword; 0xCFD one byte.
    assert cfg.read(3, 0, 0x02, size=2) == 0x8139
    assert cfg.read(3, 0, 0x00, size=2) == 0x10EC
    assert cfg.read(3, 0, 0x01, size=1) == 0x10
    assert cfg.read(3, 0, 0x0B, size=1) == 0x02  # class byte
    # an access straddling the dword floats high rather than wrapping into the next one
    assert cfg.read(3, 0, 0x03, size=2) == 0xFFFF


def test_absent_devices_and_buses_read_all_ones(cfg: Cfg) -> None:
    assert cfg.read(4, 0, 0) == 0xFFFF_FFFF
    assert cfg.read(1, 2, 0) == 0xFFFF_FFFF  # function 2 of the PIIX3 is not there
    assert cfg.read(0, 0, 0, bus=1) == 0xFFFF_FFFF
    assert cfg.read(31, 7, 0, size=2) == 0xFFFF


def test_address_register_reads_back_and_needs_the_enable_bit(machine: Machine) -> None:
    ports = machine.ports
    ports.write(0xCF8, 4, 0x8000_1803)  # low two bits are reserved
    assert ports.read(0xCF8, 4) == 0x8000_1800
    ports.write(0xCF8, 4, 0x0000_1800)  # enable bit clear: configuration cycles are not generated
    assert ports.read(0xCFC, 4) == 0xFFFF_FFFF
    ports.write(0xCF8, 2, 0x1234)  # only a 32-bit access reaches the address register
    assert ports.read(0xCF8, 4) == 0x0000_1800


def test_io_bar_sizing_like_hardware(cfg: Cfg) -> None:
    original = cfg.read(3, 0, 0x10)
    cfg.write(3, 0, 0x10, 0xFFFF_FFFF)
    mask = cfg.read(3, 0, 0x10)
    assert mask == 0xFFFF_FF01  # bit 0: I/O space (read-only); 256 bytes decoded
    assert (~(mask & ~3) & 0xFFFF_FFFF) + 1 == 256
    cfg.write(3, 0, 0x10, original)
    assert cfg.read(3, 0, 0x10) == 0xC001


def test_memory_bar_sizing(cfg: Cfg) -> None:
    cfg.write(2, 0, 0x10, 0xFFFF_FFFF)
    mask = cfg.read(2, 0, 0x10)
    assert mask & 0xF == 0x8  # prefetchable 32-bit memory
    assert (~(mask & ~0xF) & 0xFFFF_FFFF) + 1 == 16 << 20
    cfg.write(2, 0, 0x10, 0xFD00_0000)
    assert cfg.read(2, 0, 0x10) == 0xFD00_0008


def test_read_only_registers_ignore_writes(cfg: Cfg) -> None:
    cfg.write(3, 0, 0x00, 0x1234_5678)
    cfg.write(3, 0, 0x08, 0)
    assert cfg.read(3, 0, 0x00) == 0x8139_10EC
    assert cfg.read(3, 0, 0x08) >> 8 == 0x020000
    cfg.write(3, 0, 0x3D, 7, size=1)  # interrupt pin is wired, not programmable
    assert cfg.read(3, 0, 0x3D, size=1) == 1
    cfg.write(3, 0, 0x3C, 5, size=1)  # interrupt line is a scratch register for the OS
    assert cfg.read(3, 0, 0x3C, size=1) == 5


def test_command_register_bus_master_and_io_enable(machine: Machine, cfg: Cfg) -> None:
    nic = machine.nic
    assert nic is not None
    assert cfg.read(3, 0, 0x04, size=2) == 0x0003  # firmware enabled I/O and memory decoding
    assert not nic.pci.bus_master
    cfg.write(3, 0, 0x04, 0x0007, size=2)
    assert nic.pci.bus_master
    assert cfg.read(3, 0, 0x04, size=2) & CMD_BUS_MASTER
    assert machine.ports.read(0xC000, 1) == 0x52  # IDR0 through the I/O BAR
    cfg.write(3, 0, 0x04, 0x0004, size=2)  # I/O decoding off: the registers vanish
    assert machine.ports.read(0xC000, 1) == 0xFF
    cfg.write(3, 0, 0x04, 0x0005, size=2)
    assert machine.ports.read(0xC000, 1) == 0x52


def test_moving_an_io_bar_moves_the_registers(machine: Machine, cfg: Cfg) -> None:
    cfg.write(3, 0, 0x10, 0xD001)
    assert machine.ports.read(0xD000, 4) == 0x1200_5452
    assert machine.ports.read(0xC000, 4) == 0xFFFF_FFFF
    cfg.write(3, 0, 0x10, 0xFFFF_FFFF)  # while sizing, the BAR points outside port space
    assert machine.ports.read(0xD000, 1) == 0xFF


def test_machine_without_nic_has_no_8139() -> None:
    cfg = Cfg(Machine("4M").ports)
    assert cfg.read(3, 0, 0) == 0xFFFF_FFFF
    assert cfg.read(2, 0, 0) == 0x1111_1234


def test_host_rejects_double_plugging_and_bad_bars() -> None:
    host = PciHost()
    host.add(5, 0, PciFunction(0x1AF4, 0x1000, 0x020000))
    with pytest.raises(ValueError):
        host.add(5, 0, PciFunction(0x1AF4, 0x1001, 0x020000))
    with pytest.raises(ValueError):
        Bar("io", 100, 0xC000)  # not a power of two
    with pytest.raises(ValueError):
        Bar("io", 256, 0xC010)  # not aligned
    assert host.find(0x1AF4, 0x1000) is not None and host.find(1, 2) is None


def test_io_window_routes_to_the_device_with_offsets() -> None:
    class Regs:
        def __init__(self) -> None:
            self.log: list[tuple] = []

        def io_read(self, offset: int, size: int) -> int:
            self.log.append(("r", offset, size))
            return offset

        def io_write(self, offset: int, size: int, value: int) -> None:
            self.log.append(("w", offset, size, value))

    host = PciHost()
    regs = Regs()
    fn = host.add(4, 0, PciFunction(0x1AF4, 0x1000, 0x020000, bars={0: Bar("io", 32, 0xC040)}, io=regs))
    assert fn.command & CMD_IO
    assert host.window.port_read(0xC045, 1) == 5
    host.window.port_write(0xC05F, 2, 0xBEEF)
    assert host.window.port_read(0xC060, 1) == 0xFF  # one past the BAR
    assert regs.log == [("r", 5, 1), ("w", 0x1F, 2, 0xBEEF)]
