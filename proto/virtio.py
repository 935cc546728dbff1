"""The numbers of the virtio 1.2 specification this package speaks: status bits, feature bits,
PCI capability types, the common configuration layout and the legacy register layout.

One place, in proto/ (plain data, no I/O), so the device model (machine/virtio/), its tests, the
driver (drivers/virtio_net.py) and the stack (net/offloads.py maps feature bits to offloads) read
the same names. Section numbers are virtio 1.2's.
"""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag


class Status(IntFlag):
    """device_status (§2.1). The driver sets them in this order; writing 0 resets the device."""

    RESET = 0
    ACKNOWLEDGE = 1  # the guest noticed the device
    DRIVER = 2  # it knows how to drive it
    DRIVER_OK = 4  # the driver is set up: the device may use its queues
    FEATURES_OK = 8  # the driver accepted features; reads back clear if the device refused them
    NEEDS_RESET = 0x40  # set by the device: it hit an error it cannot recover from
    FAILED = 0x80  # set by the driver: it gave up on the device


class Feature(IntFlag):
    """Feature bits (§5.1.3 for the net ones, §6 for the reserved transport ones)."""

    NET_CSUM = 1 << 0  # the device takes frames with a partial checksum (NEEDS_CSUM) to finish
    NET_GUEST_CSUM = 1 << 1  # the driver takes received frames with a partial checksum
    NET_MAC = 1 << 5  # the device has a MAC address in its config space
    NET_GUEST_TSO4 = 1 << 7  # the driver takes large TCPv4 segments
    NET_HOST_TSO4 = 1 << 11  # the device takes large TCPv4 segments to cut
    NET_MRG_RXBUF = 1 << 15  # one received frame may span several receive buffers
    NET_STATUS = 1 << 16  # config space has a link status field
    NOTIFY_ON_EMPTY = 1 << 24  # (legacy) interrupt when a queue empties even if suppressed
    ANY_LAYOUT = 1 << 27  # (legacy) the device does not care how a message is split in buffers
    INDIRECT_DESC = 1 << 28  # descriptors may point at a table of descriptors
    EVENT_IDX = 1 << 29  # used_event / avail_event suppress notifications by index
    VERSION_1 = 1 << 32  # the modern interface (little-endian, FEATURES_OK, 12-byte net header)


#: Short names for the monitor and /tcp/stats, in bit order (what QEMU's and Linux's use).
FEATURE_NAMES: dict[Feature, str] = {
    Feature.NET_CSUM: "CSUM", Feature.NET_GUEST_CSUM: "GUEST_CSUM", Feature.NET_MAC: "MAC",
    Feature.NET_GUEST_TSO4: "GUEST_TSO4", Feature.NET_HOST_TSO4: "HOST_TSO4",
    Feature.NET_MRG_RXBUF: "MRG_RXBUF", Feature.NET_STATUS: "STATUS",
    Feature.NOTIFY_ON_EMPTY: "NOTIFY_ON_EMPTY", Feature.ANY_LAYOUT: "ANY_LAYOUT",
    Feature.INDIRECT_DESC: "INDIRECT_DESC", Feature.EVENT_IDX: "EVENT_IDX", Feature.VERSION_1: "VERSION_1",
}  # fmt: skip


def feature_names(bits: int) -> list[str]:
    """The names of the set bits of ``bits`` (unknown ones as ``bit N``)."""
    out = []
    for n in range(64):
        if bits >> n & 1:
            try:
                out.append(FEATURE_NAMES[Feature(1 << n)])
            except (ValueError, KeyError):
                out.append(f"bit {n}")
    return out


class CapType(IntEnum):
    """cfg_type of a vendor-specific PCI capability (§4.1.4)."""

    COMMON_CFG = 1
    NOTIFY_CFG = 2
    ISR_CFG = 3
    DEVICE_CFG = 4
    PCI_CFG = 5


PCI_CAP_VENDOR = 0x09  # PCI capability id of every virtio capability
VIRTIO_VENDOR = 0x1AF4
TRANSITIONAL_NET = 0x1000  # legacy/transitional device id of a network card (§4.1.2.1)
SUBSYSTEM_NET = 1  # the transitional device's subsystem device id: the virtio device id (net)
VIRTIO_ID_NET = 1
TRANSITIONAL_9P = 0x1009  # transitional device id of a 9P transport (§4.1.2.1: 0x1000 + id - 1)
MODERN_9P = 0x1049  # a non-transitional 9P device's id (0x1040 + 9): what a driver also accepts
VIRTIO_ID_9P = 9  # the virtio device id (and the transitional device's subsystem id)


class NinepFeature(IntFlag):
    """The 9P transport's own feature bits (virtio 1.2 §5.11.3); the transport ones are
    :class:`Feature`'s (bits 24 and up), so the two never collide."""

    MOUNT_TAG = 1 << 0  # the configuration space holds the mount tag


class Common(IntEnum):
    """Offsets in struct virtio_pci_common_cfg (§4.1.4.3)."""

    DEVICE_FEATURE_SELECT = 0x00  # le32 RW
    DEVICE_FEATURE = 0x04  # le32 RO: 32 bits of the offered features, chosen by the select
    DRIVER_FEATURE_SELECT = 0x08  # le32 RW
    DRIVER_FEATURE = 0x0C  # le32 RW
    CONFIG_MSIX_VECTOR = 0x10  # le16 RW (no MSI-X here: reads NO_VECTOR)
    NUM_QUEUES = 0x12  # le16 RO
    DEVICE_STATUS = 0x14  # u8 RW
    CONFIG_GENERATION = 0x15  # u8 RO
    QUEUE_SELECT = 0x16  # le16 RW
    QUEUE_SIZE = 0x18  # le16 RW (power of 2, at most the maximum it reads at reset)
    QUEUE_MSIX_VECTOR = 0x1A  # le16 RW (NO_VECTOR)
    QUEUE_ENABLE = 0x1C  # le16 RW (write 1 once the addresses are set)
    QUEUE_NOTIFY_OFF = 0x1E  # le16 RO
    QUEUE_DESC = 0x20  # le64 RW: descriptor table
    QUEUE_DRIVER = 0x28  # le64 RW: available ring
    QUEUE_DEVICE = 0x30  # le64 RW: used ring


COMMON_CFG_SIZE = 0x38
NO_VECTOR = 0xFFFF


class Legacy(IntEnum):
    """Registers of the legacy interface in I/O BAR0 (§4.1.4.8), without MSI-X."""

    HOST_FEATURES = 0x00  # le32 RO: features 0-31
    GUEST_FEATURES = 0x04  # le32 RW
    QUEUE_ADDRESS = 0x08  # le32 RW: page frame number (4096-byte pages) of the selected queue
    QUEUE_SIZE = 0x0C  # le16 RO
    QUEUE_SELECT = 0x0E  # le16 RW
    QUEUE_NOTIFY = 0x10  # le16 RW: write a queue index
    DEVICE_STATUS = 0x12  # u8 RW
    ISR_STATUS = 0x13  # u8 RO, read clears
    CONFIG = 0x14  # device-specific configuration from here


LEGACY_PAGE = 4096  # QUEUE_ADDRESS unit, and the used ring's alignment in the legacy layout


class Isr(IntFlag):
    """ISR status bits (§4.1.4.5): read-to-clear."""

    QUEUE = 1  # a used buffer notification
    CONFIG = 2  # the configuration changed (or the device needs a reset)


# -- the split virtqueue (§2.7): what driver and device both write ------------------------------

DESC_F_NEXT = 1  # the chain goes on at ``next``
DESC_F_WRITE = 2  # device-writable (a receive buffer)
DESC_F_INDIRECT = 4  # addr/len is a table of descriptors (INDIRECT_DESC)
AVAIL_F_NO_INTERRUPT = 1  # the driver does not want used-buffer interrupts (without EVENT_IDX)
USED_F_NO_NOTIFY = 1  # the device does not want kicks (without EVENT_IDX)
DESC_SIZE = 16  # addr le64, len le32, flags le16, next le16
DESC = struct.Struct("<QIHH")  # one descriptor, as both sides pack and unpack it
USED_ELEM_SIZE = 8  # id le32, len le32


def need_event(event: int, new: int, old: int) -> bool:
    """vring_need_event (§2.7.10): did the index move from ``old`` to ``new`` past ``event``?"""
    return (new - event - 1) & 0xFFFF < (new - old) & 0xFFFF


# -- virtio-net's device configuration (§5.1.4) -------------------------------------------------

NET_CFG_MAC = 0x00  # mac[6]
NET_CFG_STATUS = 0x06  # le16, with NET_STATUS
NET_S_LINK_UP = 1
