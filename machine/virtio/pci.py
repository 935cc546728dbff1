"""virtio over PCI (virtio 1.2 §4.1), a transitional device laid out as QEMU's virtio-pci.

Identity: vendor 0x1AF4, the transitional device id (0x1000 for net), revision 0, subsystem
0x1AF4 and the virtio device id (1 for net), INTx pin A. Two doors to the same device
(machine/virtio/device.py):

Modern interface: vendor-specific capabilities (id 0x09) in configuration space, linked from 0x34,
each ``cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2], offset le32, length le32``,
pointing into BAR4, a 64-bit prefetchable memory BAR of 16 KiB, as QEMU lays it out:

    cfg_type            cap at   BAR4 offset  length   what
    COMMON_CFG  (1)     0x40     0x0000       0x1000   struct virtio_pci_common_cfg (spec.Common)
    ISR_CFG     (3)     0x50     0x1000       0x1000   one byte, read to clear
    DEVICE_CFG  (4)     0x60     0x2000       0x1000   the device's config (net: mac, status, ...)
    NOTIFY_CFG  (2)     0x70     0x3000       0x1000   + notify_off_multiplier le32 = 4 (cap_len 20)

The list is linked newest first (0x34 -> 0x70 -> 0x60 -> 0x50 -> 0x40), so a driver must walk it
and pick each cfg_type, not assume the offsets. Queue ``q``'s notify address is BAR4 + 0x3000 +
queue_notify_off(q) * 4, where queue_notify_off(q) = q; write the queue index there (le16).
Common-config fields take their natural width (§4.1.3.1); a 64-bit field may be written as two
aligned 32-bit halves; other writes are ignored. There is no MSI-X: the vector registers read
NO_VECTOR (0xFFFF), so a driver knows to use INTx and the ISR.

Legacy interface: I/O BAR0 (32 bytes, or the next power of two that holds a larger device
config, as QEMU sizes it: ``legacy_io_size``), the registers of spec.Legacy then the device config at
0x14 (§4.1.4.8). Its queue layout is fixed by QUEUE_ADDRESS (a 4096-byte page number): the
descriptor table there, the available ring right after it, the used ring at the next 4096-byte
boundary (§2.7.2 legacy interfaces); the queue size is the maximum and cannot be changed.

Both BARs decode only while the command register enables I/O or memory space, and DMA waits for
bus mastering, as the PCI layer says (machine/pci.py).
"""

from __future__ import annotations

import struct

from machine.pci import Bar, PciFunction
from machine.virtio.device import VirtioDevice
from proto.virtio import (
    COMMON_CFG_SIZE,
    LEGACY_PAGE,
    NO_VECTOR,
    PCI_CAP_VENDOR,
    VIRTIO_VENDOR,
    CapType,
    Common,
    Legacy,
)

IO_SIZE = 32
MEM_SIZE = 0x4000
NOTIFY_MULTIPLIER = 4
REGION = 0x1000
COMMON_OFFSET, ISR_OFFSET, DEVICE_OFFSET, NOTIFY_OFFSET = 0x0000, 0x1000, 0x2000, 0x3000
MODERN_BAR = 4

# common-config field widths (offset -> bytes)
_COMMON_WIDTH = {Common.DEVICE_FEATURE_SELECT: 4, Common.DEVICE_FEATURE: 4, Common.DRIVER_FEATURE_SELECT: 4,
                 Common.DRIVER_FEATURE: 4, Common.CONFIG_MSIX_VECTOR: 2, Common.NUM_QUEUES: 2,
                 Common.DEVICE_STATUS: 1, Common.CONFIG_GENERATION: 1, Common.QUEUE_SELECT: 2,
                 Common.QUEUE_SIZE: 2, Common.QUEUE_MSIX_VECTOR: 2, Common.QUEUE_ENABLE: 2,
                 Common.QUEUE_NOTIFY_OFF: 2, Common.QUEUE_DESC: 8, Common.QUEUE_DRIVER: 8, Common.QUEUE_DEVICE: 8}
_LEGACY_WIDTH = {Legacy.HOST_FEATURES: 4, Legacy.GUEST_FEATURES: 4, Legacy.QUEUE_ADDRESS: 4,
                 Legacy.QUEUE_SIZE: 2, Legacy.QUEUE_SELECT: 2, Legacy.QUEUE_NOTIFY: 2,
                 Legacy.DEVICE_STATUS: 1, Legacy.ISR_STATUS: 1}


def legacy_io_size(config_len: int) -> int:
    """BAR0's size: the legacy registers and the device config, rounded up to a power of two."""
    size = Legacy.CONFIG + config_len
    return max(IO_SIZE, 1 << (size - 1).bit_length())


def _cap(cfg_type: CapType, offset: int, length: int, extra: bytes = b"") -> bytes:
    """A virtio capability's body after cap_vndr and cap_next."""
    return struct.pack("<BBBB2xII", 16 + len(extra), cfg_type, MODERN_BAR, 0, offset, length) + extra


class VirtioPci:
    """The PCI function of one virtio device: configuration space, BAR0 (legacy) and BAR4
    (modern). ``pci`` is what the board plugs into the host bridge."""

    def __init__(self, device: VirtioDevice, pci_device_id: int, class_code: int, *, io_base: int,
                 mem_base: int, irq_line: int, name: str, io_size: int = IO_SIZE) -> None:
        self.device = device
        self.device_feature_select = 0
        self.driver_feature_select = 0
        self.queue_select = 0
        self.pci = PciFunction(
            VIRTIO_VENDOR, pci_device_id, class_code, revision=0, irq_line=irq_line, irq_pin=1,
            subsystem=(VIRTIO_VENDOR, device.device_id), name=name, io=_Legacy(self),
            bars={0: Bar("io", io_size, io_base), MODERN_BAR: Bar("mem", MEM_SIZE, mem_base, prefetchable=True,
                                                                   wide=True)},
            mmio={MODERN_BAR: _Modern(self)})
        self.caps = {
            CapType.COMMON_CFG: self.pci.add_capability(PCI_CAP_VENDOR, _cap(CapType.COMMON_CFG, COMMON_OFFSET, REGION)),
            CapType.ISR_CFG: self.pci.add_capability(PCI_CAP_VENDOR, _cap(CapType.ISR_CFG, ISR_OFFSET, REGION)),
            CapType.DEVICE_CFG: self.pci.add_capability(PCI_CAP_VENDOR, _cap(CapType.DEVICE_CFG, DEVICE_OFFSET, REGION)),
            CapType.NOTIFY_CFG: self.pci.add_capability(
                PCI_CAP_VENDOR, _cap(CapType.NOTIFY_CFG, NOTIFY_OFFSET, REGION, struct.pack("<I", NOTIFY_MULTIPLIER))),
        }
        device.bus_master = lambda: self.pci.bus_master
        device.intx_enabled = lambda: self.pci.intx_enabled
        self.bad_accesses = 0  # register accesses of the wrong width or offset, ignored

    # -- the modern common configuration -------------------------------------------------------------

    def _queue(self):  # type: ignore[no-untyped-def]
        q = self.queue_select
        return self.device.queues[q] if q < len(self.device.queues) else None

    def common_field(self, reg: Common) -> int:
        d = self.device
        q = self._queue()
        if reg is Common.DEVICE_FEATURE_SELECT:
            return self.device_feature_select
        if reg is Common.DEVICE_FEATURE:
            sel = self.device_feature_select
            return (d.offered >> (32 * sel)) & 0xFFFF_FFFF if sel < 2 else 0
        if reg is Common.DRIVER_FEATURE_SELECT:
            return self.driver_feature_select
        if reg is Common.DRIVER_FEATURE:
            sel = self.driver_feature_select
            return (d.driver_features >> (32 * sel)) & 0xFFFF_FFFF if sel < 2 else 0
        if reg in (Common.CONFIG_MSIX_VECTOR, Common.QUEUE_MSIX_VECTOR):
            return NO_VECTOR
        if reg is Common.NUM_QUEUES:
            return len(d.queues)
        if reg is Common.DEVICE_STATUS:
            return int(d.status)
        if reg is Common.CONFIG_GENERATION:
            return d.config_generation
        if reg is Common.QUEUE_SELECT:
            return self.queue_select
        if q is None:
            return 0
        if reg is Common.QUEUE_SIZE:
            return q.size
        if reg is Common.QUEUE_ENABLE:
            return int(q.enabled)
        if reg is Common.QUEUE_NOTIFY_OFF:
            return q.index
        if reg is Common.QUEUE_DESC:
            return q.desc
        if reg is Common.QUEUE_DRIVER:
            return q.driver
        return q.device

    def common_read(self, offset: int, size: int) -> int:
        image = b"".join(self.common_field(Common(o)).to_bytes(w, "little") for o, w in _COMMON_WIDTH.items())
        return int.from_bytes(image[offset:offset + size].ljust(size, b"\0"), "little")

    def common_write(self, offset: int, size: int, value: int) -> None:
        reg, part = _field_at(_COMMON_WIDTH, offset, size)
        if reg is None:
            self.bad_accesses += 1
            return
        reg = Common(reg)
        d = self.device
        q = self._queue()
        if reg is Common.DEVICE_FEATURE_SELECT:
            self.device_feature_select = value
        elif reg is Common.DRIVER_FEATURE_SELECT:
            self.driver_feature_select = value
        elif reg is Common.DRIVER_FEATURE:
            d.write_driver_features(value, self.driver_feature_select)
        elif reg is Common.DEVICE_STATUS:
            d.write_status(value)
        elif reg is Common.QUEUE_SELECT:
            self.queue_select = value
        elif q is None or q.enabled or d.status & 4:
            pass  # no such queue, or it is live: its configuration is frozen (§4.1.4.3.2)
        elif reg is Common.QUEUE_SIZE:
            if value and not value & (value - 1) and value <= q.max_size:
                q.size = value
        elif reg is Common.QUEUE_ENABLE:
            if value == 1:
                if q.layout_error() is None:
                    q.enabled = True
                else:
                    self.bad_accesses += 1
        elif reg in (Common.QUEUE_DESC, Common.QUEUE_DRIVER, Common.QUEUE_DEVICE):
            attr = {Common.QUEUE_DESC: "desc", Common.QUEUE_DRIVER: "driver", Common.QUEUE_DEVICE: "device"}[reg]
            old = getattr(q, attr)
            shift = 32 * part
            width_mask = ((1 << (8 * size)) - 1) << shift
            setattr(q, attr, (old & ~width_mask) | ((value << shift) & width_mask))
        # read-only fields (DEVICE_FEATURE, NUM_QUEUES, CONFIG_GENERATION, QUEUE_NOTIFY_OFF) and the
        # MSI-X vectors (no MSI-X: they keep reading NO_VECTOR) ignore writes

    # -- the legacy registers ------------------------------------------------------------------------

    def legacy_read(self, offset: int, size: int) -> int:
        d = self.device
        q = self._queue()
        regs = struct.pack("<IIIHHHBB", d.offered & 0xFFFF_FFFF, d.driver_features & 0xFFFF_FFFF,
                           q.desc // LEGACY_PAGE if q is not None and q.enabled else 0,
                           q.max_size if q is not None else 0, self.queue_select, 0, int(d.status), int(d.isr))
        if offset <= Legacy.ISR_STATUS < offset + size:
            d.read_isr()  # reading ISR clears it
        image = regs + d.config_bytes()
        return int.from_bytes(image[offset:offset + size].ljust(size, b"\xff"), "little")

    def legacy_write(self, offset: int, size: int, value: int) -> None:
        d = self.device
        if offset >= Legacy.CONFIG:
            return  # the device configs here (net, 9P) are read-only
        reg, _ = _field_at(_LEGACY_WIDTH, offset, size, split64=False)
        if reg is None:
            self.bad_accesses += 1
            return
        if reg == Legacy.GUEST_FEATURES:
            d.write_legacy_features(value)
        elif reg == Legacy.QUEUE_ADDRESS:
            q = self._queue()
            if q is None or d.status & 4:
                return
            d.legacy = True
            if value == 0:
                q.reset()
                return
            q.size = q.max_size
            q.desc = value * LEGACY_PAGE
            q.driver = q.desc + 16 * q.size
            q.device = (q.driver + 6 + 2 * q.size + LEGACY_PAGE - 1) & ~(LEGACY_PAGE - 1)
            q.enabled = q.layout_error() is None
            if not q.enabled:
                self.bad_accesses += 1
        elif reg == Legacy.QUEUE_SELECT:
            self.queue_select = value
        elif reg == Legacy.QUEUE_NOTIFY:
            d.kick(value)
        elif reg == Legacy.DEVICE_STATUS:
            d.write_status(value, legacy=True)


def _field_at(widths: dict, offset: int, size: int, split64: bool = True) -> tuple[int | None, int]:
    """(field offset, which 32-bit half) for a write that is a natural access to one field."""
    width = widths.get(offset)
    if width == size:
        return offset, 0
    if split64 and size == 4:
        if widths.get(offset) == 8:
            return offset, 0
        if widths.get(offset - 4) == 8:
            return offset - 4, 1
    return None, 0


class _Modern:
    """BAR4: the four modern regions."""

    def __init__(self, t: VirtioPci) -> None:
        self.t = t

    def mmio_read(self, offset: int, size: int) -> int:
        if size == 8:  # two 32-bit accesses, low first, as the bus would split it
            return self.mmio_read(offset, 4) | self.mmio_read(offset + 4, 4) << 32
        region, off = offset & ~(REGION - 1), offset & (REGION - 1)
        t = self.t
        if region == COMMON_OFFSET:
            return t.common_read(off, size) if off < COMMON_CFG_SIZE else 0
        if region == ISR_OFFSET:
            return t.device.read_isr() if off == 0 else 0
        if region == DEVICE_OFFSET:
            data = t.device.config_bytes()[off:off + size]
            return int.from_bytes(data.ljust(size, b"\0"), "little")
        return 0  # notify: write-only

    def mmio_write(self, offset: int, size: int, value: int) -> None:
        t = self.t
        if size == 8:
            self.mmio_write(offset, 4, value & 0xFFFF_FFFF)
            self.mmio_write(offset + 4, 4, value >> 32)
            return
        region, off = offset & ~(REGION - 1), offset & (REGION - 1)
        if region == COMMON_OFFSET:
            t.common_write(off, size, value)
        elif region == NOTIFY_OFFSET:
            if off % NOTIFY_MULTIPLIER == 0:
                t.device.kick(off // NOTIFY_MULTIPLIER)
            else:
                t.bad_accesses += 1
        # ISR and the net config are read-only


class _Legacy:
    """BAR0: the legacy registers, as an I/O device of the PCI window."""

    def __init__(self, t: VirtioPci) -> None:
        self.t = t

    def io_read(self, offset: int, size: int) -> int:
        return self.t.legacy_read(offset, size)

    def io_write(self, offset: int, size: int, value: int) -> None:
        self.t.legacy_write(offset, size, value)
