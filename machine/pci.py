"""PCI bus 0 of a QEMU ``-machine pc`` (i440FX + PIIX3), reached through configuration mechanism #1.

Software finds PCI devices the way it does on a PC: write ``0x8000_0000 | bus<<16 | slot<<11 |
function<<8 | register`` to the address port 0xCF8 (a 32-bit access), then read or write the data
ports 0xCFC-0xCFF with 8-, 16- or 32-bit accesses at the byte lane of the register (port 0xCFE
with a 16-bit read returns config bytes 2-3 of the addressed dword). A slot or function with no
device reads all ones, which is how drivers know it is empty.

Each function has a 256-byte configuration space (type 0 header) plus a per-byte write mask, as
hardware and QEMU's ``pci.c`` have: only writable bits change, so a driver can size a BAR by
writing all ones and reading back the size mask, then restore it. The state is the one a PC's
firmware leaves behind (SeaBIOS on QEMU): BARs assigned, I/O and memory decoding enabled, the
interrupt line register filled in (11 for the NIC), bus mastering left to the driver.

I/O BARs are live: the host bridge forwards ports 0xC000-0xFFFF (the window SeaBIOS allocates PCI
I/O space from) to whichever function decodes them, i.e. has the port inside an I/O BAR and the I/O
space bit of its command register set. Moving a BAR or clearing the bit moves or hides the device's
registers immediately, as on real hardware.

Memory BARs are live the same way: a function given ``mmio={index: device}`` answers loads and
stores inside memory BAR ``index`` while the Memory Space bit (CMD_MEMORY) is set; the host
bridge keeps the machine's MMIO map (machine/mmio.py, consulted by PhysicalMemory for addresses
past RAM) in step with every BAR and command write. A memory BAR is 32-bit or, with
``Bar(wide=True)``, 64-bit: it then takes two BAR slots (the upper dword in the next one), as
QEMU's virtio-pci modern BAR4 does. A memory BAR without a device behind it decodes nothing.

Capabilities (``add_capability``) form the standard list at 0x34 with the Capabilities List bit
in the status register, linked newest first as QEMU's ``pci_add_capability`` links them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from machine.mmio import MmioBus, MmioDevice

CONFIG_ADDRESS = 0xCF8
CONFIG_DATA = 0xCFC
IO_WINDOW = range(0xC000, 0x10000)

ENABLE_BIT = 0x8000_0000

# type 0 header offsets
VENDOR_ID = 0x00
DEVICE_ID = 0x02
COMMAND = 0x04
STATUS = 0x06
REVISION = 0x08
PROG_IF = 0x09
SUBCLASS = 0x0A
CLASS = 0x0B
CACHE_LINE = 0x0C
LATENCY = 0x0D
HEADER_TYPE = 0x0E
BAR0 = 0x10
SUBSYSTEM_VENDOR = 0x2C
SUBSYSTEM_ID = 0x2E
CAPABILITIES = 0x34
INTERRUPT_LINE = 0x3C
INTERRUPT_PIN = 0x3D

# command register bits
CMD_IO = 0x0001
CMD_MEMORY = 0x0002
CMD_BUS_MASTER = 0x0004
CMD_PARITY = 0x0040
CMD_SERR = 0x0100
CMD_INTX_DISABLE = 0x0400
_CMD_WRITABLE = CMD_IO | CMD_MEMORY | CMD_BUS_MASTER | CMD_PARITY | CMD_SERR | CMD_INTX_DISABLE

# status register bits
STATUS_CAP_LIST = 0x0010

MULTIFUNCTION = 0x80

# QEMU gives every device without its own subsystem ids these (pci_init_default_subsystem_id).
QEMU_SUBSYSTEM = (0x1AF4, 0x1100)


class IoDevice(Protocol):
    """A device whose registers sit behind an I/O BAR; offsets are relative to the BAR base."""

    def io_read(self, offset: int, size: int) -> int: ...

    def io_write(self, offset: int, size: int, value: int) -> None: ...


@dataclass(frozen=True)
class Bar:
    """One base address register: I/O, 32-bit or (``wide``) 64-bit memory space, a power-of-two
    size, an address."""

    kind: str  # "io" or "mem"
    size: int
    address: int
    prefetchable: bool = False
    wide: bool = False  # a 64-bit memory BAR: two slots, the upper dword in the next one

    def __post_init__(self) -> None:
        if self.kind not in ("io", "mem"):
            raise ValueError(f"BAR kind must be 'io' or 'mem', not {self.kind!r}")
        if self.wide and self.kind != "mem":
            raise ValueError("only a memory BAR can be 64-bit")
        minimum = 4 if self.kind == "io" else 16
        if self.size < minimum or self.size & (self.size - 1):
            raise ValueError(f"BAR size must be a power of two >= {minimum}, not {self.size}")
        if self.address % self.size:
            raise ValueError(f"BAR address {self.address:#x} not aligned to its size {self.size:#x}")

    @property
    def flags(self) -> int:
        """The read-only low bits: bit 0 set for I/O space; type and prefetchable for memory."""
        if self.kind == "io":
            return 0x1
        return (0x8 if self.prefetchable else 0x0) | (0x4 if self.wide else 0x0)


class PciFunction:
    """One PCI function: its configuration space, write mask, and the I/O device behind BAR0-5."""

    def __init__(
        self,
        vendor: int,
        device: int,
        class_code: int,
        *,
        revision: int = 0,
        multifunction: bool = False,
        bars: dict[int, Bar] | None = None,
        irq_line: int = 0xFF,
        irq_pin: int = 0,
        subsystem: tuple[int, int] = QEMU_SUBSYSTEM,
        io: IoDevice | None = None,
        mmio: dict[int, MmioDevice] | None = None,
        command: int | None = None,
        name: str = "",
    ) -> None:
        """``class_code`` is the 24-bit class << 16 | subclass << 8 | prog-if. ``command`` defaults
        to what firmware leaves: I/O and memory decoding on where the function has such BARs.
        ``io`` answers the I/O BARs; ``mmio`` maps a memory BAR's index to the device behind it."""
        self.name = name
        self.io = io
        self.mmio: dict[int, MmioDevice] = dict(mmio or {})
        self._cap_bodies: dict[int, bytes] = {}
        self.bars: dict[int, Bar] = dict(bars or {})
        self.config = bytearray(256)
        self.wmask = bytearray(256)
        self.bus: PciHost | None = None
        c = self.config
        c[VENDOR_ID:VENDOR_ID + 2] = vendor.to_bytes(2, "little")
        c[DEVICE_ID:DEVICE_ID + 2] = device.to_bytes(2, "little")
        c[REVISION] = revision
        c[PROG_IF:PROG_IF + 3] = class_code.to_bytes(3, "little")
        c[HEADER_TYPE] = MULTIFUNCTION if multifunction else 0
        c[SUBSYSTEM_VENDOR:SUBSYSTEM_VENDOR + 2] = subsystem[0].to_bytes(2, "little")
        c[SUBSYSTEM_ID:SUBSYSTEM_ID + 2] = subsystem[1].to_bytes(2, "little")
        c[INTERRUPT_LINE] = irq_line
        c[INTERRUPT_PIN] = irq_pin
        self.wmask[COMMAND:COMMAND + 2] = _CMD_WRITABLE.to_bytes(2, "little")
        self.wmask[CACHE_LINE] = 0xFF
        self.wmask[LATENCY] = 0xFF
        self.wmask[INTERRUPT_LINE] = 0xFF  # a scratch register for the OS (the wiring is fixed)
        for index, bar in self.bars.items():
            if not 0 <= index <= 5:
                raise ValueError(f"BAR index must be 0..5, not {index}")
            off = BAR0 + 4 * index
            c[off:off + 4] = ((bar.address & 0xFFFF_FFFF) | bar.flags).to_bytes(4, "little")
            self.wmask[off:off + 4] = (~(bar.size - 1) & 0xFFFF_FFFF & ~0xF if bar.kind == "mem"
                                       else ~(bar.size - 1) & 0xFFFF_FFFC).to_bytes(4, "little")
            if bar.wide:
                if index == 5 or index + 1 in self.bars:
                    raise ValueError(f"64-bit BAR{index} needs BAR{index + 1} free for its upper half")
                c[off + 4:off + 8] = (bar.address >> 32).to_bytes(4, "little")
                self.wmask[off + 4:off + 8] = b"\xff" * 4
            elif bar.address >> 32:
                raise ValueError(f"32-bit BAR{index} cannot hold {bar.address:#x}")
        for index in self.mmio:
            if index not in self.bars or self.bars[index].kind != "mem":
                raise ValueError(f"mmio device for BAR{index}, which is not a memory BAR")
        if command is None:
            command = (CMD_IO if any(b.kind == "io" for b in self.bars.values()) else 0) | \
                      (CMD_MEMORY if any(b.kind == "mem" for b in self.bars.values()) else 0)
        c[COMMAND:COMMAND + 2] = (command & _CMD_WRITABLE).to_bytes(2, "little")

    def __repr__(self) -> str:
        return f"<PciFunction {self.vendor:04X}:{self.device:04X} {self.name}>"

    # -- identity --------------------------------------------------------------------------------

    @property
    def vendor(self) -> int:
        return self.read(VENDOR_ID, 2)

    @property
    def device(self) -> int:
        return self.read(DEVICE_ID, 2)

    @property
    def command(self) -> int:
        return self.read(COMMAND, 2)

    @property
    def bus_master(self) -> bool:
        """Whether the function may start DMA (a device checks this before touching RAM)."""
        return bool(self.config[COMMAND] & CMD_BUS_MASTER)

    @property
    def intx_enabled(self) -> bool:
        """False when the driver set Interrupt Disable: the device must not assert INTx."""
        return not self.config[COMMAND + 1] & (CMD_INTX_DISABLE >> 8)

    def bar_value(self, index: int) -> int:
        """The current raw value of BAR ``index`` (as software reads it)."""
        return self.read(BAR0 + 4 * index, 4)

    def bar_address(self, index: int) -> int:
        """The address BAR ``index`` decodes at now (both halves of a 64-bit BAR)."""
        bar = self.bars[index]
        if bar.kind == "io":
            return self.bar_value(index) & 0xFFFF_FFFC
        low = self.bar_value(index) & 0xFFFF_FFF0
        return low | (self.bar_value(index + 1) << 32 if bar.wide else 0)

    def mem_bases(self) -> Iterator[tuple[int, int, int]]:
        """(BAR index, base address, size) of every memory BAR, as currently programmed."""
        for index, bar in self.bars.items():
            if bar.kind == "mem":
                yield index, self.bar_address(index), bar.size

    def add_capability(self, cap_id: int, body: bytes) -> int:
        """Put a capability (``cap_id``, next pointer, then ``body``) in config space, linked at the
        head of the list as QEMU does; returns its offset. Read-only to software."""
        offset = 0x40
        node = self.config[CAPABILITIES]
        while node:  # the first free dword-aligned offset after every capability so far
            length = 2 + len(self._cap_bodies[node])
            offset = max(offset, (node + length + 3) & ~3)
            node = self.config[node + 1]
        if offset + 2 + len(body) > 256:
            raise ValueError("no room left in configuration space for the capability")
        self.config[offset] = cap_id
        self.config[offset + 1] = self.config[CAPABILITIES]
        self.config[offset + 2:offset + 2 + len(body)] = body
        self._cap_bodies[offset] = bytes(body)
        self.config[CAPABILITIES] = offset
        self.config[STATUS] |= STATUS_CAP_LIST
        return offset

    def io_bases(self) -> Iterator[tuple[int, int]]:
        """(base port, size) of every I/O BAR, as currently programmed."""
        for index, bar in self.bars.items():
            if bar.kind == "io":
                yield self.bar_value(index) & 0xFFFF_FFFC, bar.size

    # -- configuration space access --------------------------------------------------------------

    def read(self, offset: int, size: int) -> int:
        """Little-endian read of ``size`` bytes of configuration space (no side effects)."""
        return int.from_bytes(self.config[offset:offset + size], "little")

    def write(self, offset: int, size: int, value: int) -> None:
        """Store the writable bits of ``value``; read-only bits keep their value, as in hardware."""
        changed = False
        for i in range(size):
            o = offset + i
            mask = self.wmask[o]
            if not mask:
                continue
            b = (value >> (8 * i)) & 0xFF
            new = (self.config[o] & ~mask) | (b & mask)
            if new != self.config[o]:
                self.config[o] = new
                changed = changed or COMMAND <= o < COMMAND + 2 or BAR0 <= o < BAR0 + 24
        if changed and self.bus is not None:
            self.bus.decoding_changed()


class PciHost:
    """The host bridge's configuration mechanism #1 and the PCI I/O window.

    Register the host on the port bus at :data:`config_ports` and its :attr:`window` at
    :data:`IO_WINDOW` (``Machine`` does both)."""

    config_ports = range(CONFIG_ADDRESS, CONFIG_ADDRESS + 8)

    def __init__(self, mmio: MmioBus | None = None) -> None:
        """``mmio``: the machine's memory-mapped I/O map (``PhysicalMemory.mmio``) that enabled
        memory BARs are routed into; a host of its own when none is given (tests)."""
        self.address = 0
        self.functions: dict[tuple[int, int, int], PciFunction] = {}
        self.window = IoWindow()
        self.mmio = mmio if mmio is not None else MmioBus()

    def add(self, slot: int, function: int, fn: PciFunction, bus: int = 0) -> PciFunction:
        """Plug ``fn`` in at bus:slot.function (bus 0 is the only bus this machine has)."""
        if not (0 <= slot < 32 and 0 <= function < 8 and 0 <= bus < 256):
            raise ValueError(f"bad PCI location {bus:02x}:{slot:02x}.{function}")
        key = (bus, slot, function)
        if key in self.functions:
            raise ValueError(f"PCI location {bus:02x}:{slot:02x}.{function} already holds {self.functions[key]!r}")
        fn.bus = self
        self.functions[key] = fn
        self.decoding_changed()
        return fn

    def find(self, vendor: int, device: int) -> PciFunction | None:
        """The first function with these ids (host-side convenience for tests and the board)."""
        for fn in self.functions.values():
            if fn.vendor == vendor and fn.device == device:
                return fn
        return None

    def _selected(self) -> PciFunction | None:
        a = self.address
        if not a & ENABLE_BIT:
            return None
        return self.functions.get(((a >> 16) & 0xFF, (a >> 11) & 0x1F, (a >> 8) & 0x7))

    def port_read(self, port: int, size: int) -> int:
        """0xCF8 (dword): the latched address; 0xCFC+n: config data at byte lane n."""
        ones = (1 << (8 * size)) - 1
        if port < CONFIG_DATA:
            return self.address if port == CONFIG_ADDRESS and size == 4 else ones
        lane = port - CONFIG_DATA
        fn = self._selected()
        if fn is None or lane + size > 4:
            return ones  # nothing there (or an access straddling the dword): the bus floats high
        return fn.read((self.address & 0xFC) + lane, size)

    def port_write(self, port: int, size: int, value: int) -> None:
        if port < CONFIG_DATA:
            if port == CONFIG_ADDRESS and size == 4:
                self.address = value & 0x80FF_FFFC  # reserved bits 30-24 and 1-0 read back as 0
            return
        lane = port - CONFIG_DATA
        fn = self._selected()
        if fn is not None and lane + size <= 4:
            fn.write((self.address & 0xFC) + lane, size, value)

    def decoding_changed(self) -> None:
        """Recompute which function answers each port of the I/O window (a BAR or command changed)."""
        routes: dict[int, tuple[IoDevice, int]] = {}
        for fn in self.functions.values():
            if fn.io is None or not fn.config[COMMAND] & CMD_IO:
                continue
            for base, size in fn.io_bases():
                for port in range(base, base + size):
                    if port in IO_WINDOW and port not in routes:
                        routes[port] = (fn.io, base)
        self.window.routes = routes
        regions: list[tuple[int, int, MmioDevice]] = []
        for fn in self.functions.values():
            if not fn.mmio or not fn.config[COMMAND] & CMD_MEMORY:
                continue
            for index, base, size in fn.mem_bases():
                device = fn.mmio.get(index)
                if device is not None and base:  # a BAR at 0 is unassigned, never decoded
                    regions.append((base, base + size, device))
        self.mmio.map(regions)


class IoWindow:
    """Ports 0xC000-0xFFFF as the host bridge forwards them to PCI: each port goes to the function
    whose enabled I/O BAR covers it, with the offset into that BAR; unclaimed ports float high."""

    def __init__(self) -> None:
        self.routes: dict[int, tuple[IoDevice, int]] = {}

    def port_read(self, port: int, size: int) -> int:
        route = self.routes.get(port)
        if route is None:
            return (1 << (8 * size)) - 1
        device, base = route
        return device.io_read(port - base, size)

    def port_write(self, port: int, size: int, value: int) -> None:
        route = self.routes.get(port)
        if route is not None:
            device, base = route
            device.io_write(port - base, size, value)


def i440fx_functions() -> Iterable[tuple[int, int, PciFunction]]:
    """(slot, function, PciFunction) of QEMU's ``-machine pc`` chipset and VGA, without a NIC.

    Ids, classes and revisions are QEMU's (spec §15); addresses are where SeaBIOS puts them."""
    yield 0, 0, PciFunction(0x8086, 0x1237, 0x060000, revision=0x02, name="i440FX host bridge")
    yield 1, 0, PciFunction(0x8086, 0x7000, 0x060100, multifunction=True, name="PIIX3 ISA bridge")
    yield 1, 1, PciFunction(0x8086, 0x7010, 0x010180, bars={4: Bar("io", 16, 0xC100)},
                            command=CMD_IO | CMD_BUS_MASTER, name="PIIX3 IDE")
    yield 1, 3, PciFunction(0x8086, 0x7113, 0x068000, revision=0x03, irq_line=9, irq_pin=1,
                            name="PIIX4 ACPI")
    yield 2, 0, PciFunction(0x1234, 0x1111, 0x030000, revision=0x02,
                            bars={0: Bar("mem", 16 << 20, 0xFD00_0000, prefetchable=True),
                                  2: Bar("mem", 4096, 0xFEBF_0000)},
                            name="QEMU standard VGA")
