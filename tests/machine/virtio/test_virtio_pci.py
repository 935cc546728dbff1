"""virtio-pci as a driver meets it: config space ids, the capability walk, BAR4 through MMIO,
feature negotiation with bad drivers refused, reset, and the legacy interface through port I/O."""

from __future__ import annotations

import pytest
from virtio_driver import Cfg, LegacyDriver, ModernDriver

from machine.board import Machine
from machine.netdev import NoneBackend
from machine.virtio.net import OFFERED
from proto.virtio import CapType, Common, Feature, Legacy, Status

A, D, FOK, DOK = Status.ACKNOWLEDGE, Status.DRIVER, Status.FEATURES_OK, Status.DRIVER_OK
BASIC = Feature.VERSION_1 | Feature.NET_MAC | Feature.NET_STATUS


@pytest.fixture
def machine() -> Machine:
    return Machine("4M", nic=NoneBackend(), card="virtio")


def test_transitional_identity_in_config_space(machine: Machine) -> None:
    cfg = Cfg(machine)
    assert cfg.read(0x00) == 0x1000_1AF4
    assert cfg.read(0x08) >> 8 == 0x020000 and cfg.read(0x08) & 0xFF == 0  # class, revision 0
    assert cfg.read(0x2C) == 0x0001_1AF4  # subsystem: virtio device id 1, net
    assert cfg.read(0x3C, 1) == 11 and cfg.read(0x3D, 1) == 1  # IRQ 11, pin A
    assert cfg.bar(0) == 0xC000 and cfg.read(0x10) & 1
    assert cfg.read(0x20) & 0xF == 0xC  # BAR4: 64-bit, prefetchable memory
    assert cfg.bar(4) == 0xFE00_0000
    # BAR4 sizing as firmware does it: all ones in both halves, read back the mask
    cfg.write(0x20, 0xFFFF_FFFF)
    cfg.write(0x24, 0xFFFF_FFFF)
    assert cfg.read(0x20) == 0xFFFF_C00C and cfg.read(0x24) == 0xFFFF_FFFF  # 16 KiB
    cfg.write(0x20, 0xFE00_000C)
    cfg.write(0x24, 0)
    assert cfg.bar(4) == 0xFE00_0000


def test_capability_walk_finds_every_structure(machine: Machine) -> None:
    caps = Cfg(machine).caps()
    assert {t: (bar, off, length) for t, (_, bar, off, length, _) in caps.items()} == {
        CapType.COMMON_CFG: (4, 0x0000, 0x1000), CapType.ISR_CFG: (4, 0x1000, 0x1000),
        CapType.DEVICE_CFG: (4, 0x2000, 0x1000), CapType.NOTIFY_CFG: (4, 0x3000, 0x1000)}
    assert caps[CapType.NOTIFY_CFG][4] == 4  # notify_off_multiplier
    assert Cfg(machine).read(0x34, 1) == 0x70  # newest first, as QEMU links them


def test_offered_features_read_in_two_halves_and_config(machine: Machine) -> None:
    drv = ModernDriver(machine)
    assert drv.offered() == int(OFFERED)
    drv.set_common(Common.DEVICE_FEATURE_SELECT, 4, 1)
    assert drv.common(Common.DEVICE_FEATURE, 4) == 1  # VERSION_1 is bit 32
    drv.set_common(Common.DEVICE_FEATURE_SELECT, 4, 7)
    assert drv.common(Common.DEVICE_FEATURE, 4) == 0
    assert drv.common(Common.NUM_QUEUES, 2) == 2
    assert drv.common(Common.CONFIG_MSIX_VECTOR, 2) == 0xFFFF
    mac = bytes(drv.device_cfg(i, 1) for i in range(6))
    assert mac == bytes.fromhex("525400123456")
    assert drv.device_cfg(6, 2) == 1  # LINK_UP
    assert machine.memory.read(drv.cfg.bar(4) + 0x2000, 6) == mac  # a 6-byte load, split


def test_a_good_negotiation(machine: Machine) -> None:
    drv = ModernDriver(machine)
    assert drv.negotiate(BASIC | Feature.EVENT_IDX)
    assert machine.nic.features == BASIC | Feature.EVENT_IDX  # type: ignore[union-attr]
    drv.set_common(Common.DRIVER_FEATURE_SELECT, 4, 0)
    assert drv.common(Common.DRIVER_FEATURE, 4) == int(BASIC | Feature.EVENT_IDX) & 0xFFFF_FFFF


@pytest.mark.parametrize("features, why", [
    (BASIC | (1 << 40), "not offered"),
    (Feature.NET_MAC, "VERSION_1"),
    (BASIC | Feature.NET_HOST_TSO4, "HOST_TSO4 without CSUM"),
    (BASIC | Feature.NET_GUEST_TSO4, "GUEST_TSO4 without GUEST_CSUM"),
])
def test_a_driver_accepting_what_it_may_not_is_refused(machine: Machine, features: int, why: str) -> None:
    drv = ModernDriver(machine)
    assert not drv.negotiate(features)
    assert not drv.status & FOK
    assert why in (machine.nic.error or "")  # type: ignore[union-attr]
    drv.set_status(A | D | FOK | DOK)  # pressing on regardless
    assert not drv.status & DOK


def test_skipping_a_step_does_not_stick(machine: Machine) -> None:
    drv = ModernDriver(machine)
    drv.set_status(0)
    drv.accept(BASIC)
    drv.set_status(A | FOK)  # FEATURES_OK before DRIVER
    assert drv.status == A
    drv.set_status(A | D | DOK)  # DRIVER_OK before FEATURES_OK
    assert drv.status == A | D
    drv.set_status(D)  # bits cannot be cleared but by a reset
    assert drv.status == A | D
    drv.set_status(A | D | FOK)
    assert drv.status == A | D | FOK
    drv.accept(BASIC | Feature.NET_CSUM)  # after FEATURES_OK the features are frozen
    assert machine.nic.features == BASIC  # type: ignore[union-attr]


def test_reset_clears_everything(machine: Machine) -> None:
    drv = ModernDriver(machine)
    rx, tx = drv.start(BASIC, queue_size=16)
    assert drv.status == A | D | FOK | DOK
    drv.set_status(0)
    assert drv.status == 0
    assert machine.nic.features == 0  # type: ignore[union-attr]
    drv.set_common(Common.QUEUE_SELECT, 2, 1)
    assert drv.common(Common.QUEUE_ENABLE, 2) == 0 and drv.common(Common.QUEUE_SIZE, 2) == 256
    assert drv.common(Common.QUEUE_DESC, 4) == 0


def test_queue_configuration(machine: Machine) -> None:
    drv = ModernDriver(machine)
    drv.negotiate(BASIC)
    drv.set_common(Common.QUEUE_SELECT, 2, 0)
    drv.set_common(Common.QUEUE_SIZE, 2, 100)  # not a power of two: ignored
    assert drv.common(Common.QUEUE_SIZE, 2) == 256
    drv.set_common(Common.QUEUE_SIZE, 2, 64)
    assert drv.common(Common.QUEUE_SIZE, 2) == 64
    drv.set_common(Common.QUEUE_DESC, 4, 0x1008)  # misaligned descriptor table
    drv.set_common(Common.QUEUE_DRIVER, 4, 0x2000)
    drv.set_common(Common.QUEUE_DEVICE, 4, 0x3000)
    drv.set_common(Common.QUEUE_ENABLE, 2, 1)
    assert drv.common(Common.QUEUE_ENABLE, 2) == 0  # refused
    drv.set_common(Common.QUEUE_DESC, 4, 0x1000)
    drv.set_common(Common.QUEUE_ENABLE, 2, 1)
    assert drv.common(Common.QUEUE_ENABLE, 2) == 1
    assert drv.common(Common.QUEUE_NOTIFY_OFF, 2) == 0
    drv.set_common(Common.QUEUE_DESC, 4, 0x5000)  # live: frozen
    assert drv.common(Common.QUEUE_DESC, 4) == 0x1000
    drv.set_common(Common.QUEUE_SELECT, 2, 9)  # no such queue
    assert drv.common(Common.QUEUE_SIZE, 2) == 0


def test_mmio_bar_moves_and_hides_with_the_command_register(machine: Machine) -> None:
    drv = ModernDriver(machine)
    cfg, mem = drv.cfg, machine.memory
    assert mem.read_uint(0xFE00_0000 + Common.NUM_QUEUES, 2) == 2
    cfg.write(0x20, 0xFE10_000C)  # move BAR4
    assert mem.read_uint(0xFE10_0000 + Common.NUM_QUEUES, 2) == 2
    assert mem.cpu_read(0xFE00_0000 + Common.NUM_QUEUES, 2) == b"\xff\xff"  # nothing there now
    cfg.write(0x04, 0x0005, 2)  # memory space off
    assert mem.cpu_read(0xFE10_0000 + Common.NUM_QUEUES, 2) == b"\xff\xff"
    mem.cpu_write(0xFE10_0000 + Common.DEVICE_STATUS, b"\x01")  # vanishes
    cfg.write(0x04, 0x0007, 2)
    assert mem.read_uint(0xFE10_0000 + Common.DEVICE_STATUS, 1) == 0
    # a 64-bit BAR can live above 4 GiB
    cfg.write(0x24, 0x1)
    assert mem.read_uint(0x1_FE10_0000 + Common.NUM_QUEUES, 2) == 2


def test_legacy_driver_sequence(machine: Machine) -> None:
    drv = LegacyDriver(machine)
    assert drv.io == 0xC000
    drv.set_reg(Legacy.DEVICE_STATUS, 1, 0)
    drv.set_reg(Legacy.DEVICE_STATUS, 1, A)
    drv.set_reg(Legacy.DEVICE_STATUS, 1, A | D)
    host = drv.reg(Legacy.HOST_FEATURES, 4)
    assert host == int(OFFERED) & 0xFFFF_FFFF  # no VERSION_1 through the legacy door
    drv.set_reg(Legacy.GUEST_FEATURES, 4, Feature.NET_MAC | Feature.NET_STATUS)
    assert drv.reg(Legacy.GUEST_FEATURES, 4) == Feature.NET_MAC | Feature.NET_STATUS
    mac = bytes(drv.reg(Legacy.CONFIG + i, 1) for i in range(6))
    assert mac == bytes.fromhex("525400123456")
    assert drv.reg(Legacy.CONFIG + 6, 2) == 1
    rx = drv.setup_queue(0, 0x100)
    drv.setup_queue(1, 0x110)
    drv.set_reg(Legacy.QUEUE_SELECT, 2, 0)
    assert drv.reg(Legacy.QUEUE_ADDRESS, 4) == 0x100 and drv.reg(Legacy.QUEUE_SIZE, 2) == 256
    drv.set_reg(Legacy.DEVICE_STATUS, 1, A | D | DOK)  # no FEATURES_OK in the legacy interface
    assert drv.reg(Legacy.DEVICE_STATUS, 1) == A | D | DOK
    nic = machine.nic
    assert nic.legacy and nic.hdr_len == 10  # type: ignore[union-attr]
    assert rx.used == 0x100000 + ((16 * 256 + 6 + 512 + 4095) & ~4095)
    drv.set_reg(Legacy.DEVICE_STATUS, 1, 0)
    assert drv.reg(Legacy.DEVICE_STATUS, 1) == 0 and not nic.legacy  # type: ignore[union-attr]
