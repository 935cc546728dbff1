"""virtio-9p-pci through its own doors: PCI identity, the mount tag in both config spaces,
feature negotiation, 9P requests through the queue (modern and legacy), bad chains -> NEEDS_RESET
and a device that works again after a reset, read-only shares, and the board's slots and lines."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import trio
from virtio_driver import Cfg, DriverQueue, LegacyDriver, ModernDriver

from machine.board import SHARE_IRQS, Machine
from machine.share.options import ShareOption
from machine.virtio.ninep import VirtioNinep
from proto.ninep import (
    NOTAG,
    VERSION,
    OpenFlag,
    Rlerror,
    Rread,
    Rversion,
    Rwalk,
    Tlcreate,
    Tlopen,
    Tread,
    Tversion,
    Twalk,
    attach,
    decode,
    encode,
)
from proto.virtio import Feature, Legacy, NinepFeature, Status

SLOT = 4
FEATURES = NinepFeature.MOUNT_TAG | Feature.VERSION_1
ALL_OK = Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "hello.txt").write_text("hello from the host\n")
    return tmp_path


class Rig:
    """A machine with shares, the device's worker running, and a trio.Event per interrupt."""

    def __init__(self, machine: Machine, nursery: trio.Nursery) -> None:
        self.machine = machine
        self.irq = trio.Event()
        self.lines: list[int] = []
        machine.irq.set_handler(self._on_irq)
        for device in machine.ninep:
            nursery.start_soon(device.run)

    def _on_irq(self, line: int) -> None:
        self.machine.irq.acknowledge(line)
        self.lines.append(line)
        self.irq.set()

    async def interrupt(self) -> None:
        await self.irq.wait()
        self.irq = trio.Event()

    @property
    def device(self) -> VirtioNinep:
        return self.machine.ninep[0]


async def rpc(rig: Rig, drv: ModernDriver | LegacyDriver, q: DriverQueue, msg, tag: int = 1,  # type: ignore[no-untyped-def]
              room: int = 8192):
    """One request through the queue: T buffer, R buffer, kick, wait for the interrupt."""
    frame = encode(msg, tag)
    out = alloc(drv, len(frame))
    drv.mem.write(out, frame)
    back = alloc(drv, room)
    head = q.add([(out, len(frame), False), (back, room, True)])
    kick(drv, q)
    await rig.interrupt()
    isr(drv)
    used = q.take_used()
    assert [h for h, _ in used] == [head]
    rtag, reply = decode(drv.mem.read(back, used[0][1]))
    assert rtag == tag
    return reply


def alloc(drv: ModernDriver | LegacyDriver, n: int) -> int:
    if isinstance(drv, ModernDriver):
        return drv.alloc(n, 16)
    addr = drv.next_free  # type: ignore[attr-defined]
    drv.next_free = addr + ((n + 15) & ~15)  # type: ignore[attr-defined]
    return addr


def kick(drv: ModernDriver | LegacyDriver, q: DriverQueue) -> None:
    if isinstance(drv, ModernDriver):
        drv.notify(q.index)
    else:
        drv.set_reg(Legacy.QUEUE_NOTIFY, 2, q.index)


def isr(drv: ModernDriver | LegacyDriver) -> int:
    return drv.isr() if isinstance(drv, ModernDriver) else drv.reg(Legacy.ISR_STATUS, 1)


def modern(machine: Machine, slot: int = SLOT) -> tuple[ModernDriver, DriverQueue]:
    drv = ModernDriver(machine, slot=slot)
    assert drv.negotiate(FEATURES)
    q = drv.setup_queue(0)
    drv.set_status(ALL_OK)
    return drv, q


async def session(rig: Rig, drv: ModernDriver | LegacyDriver, q: DriverQueue) -> None:
    r = await rpc(rig, drv, q, Tversion(65536, VERSION), tag=NOTAG)
    assert r == Rversion(65536, VERSION)
    r = await rpc(rig, drv, q, attach(1, "root"))
    assert not isinstance(r, Rlerror), r


def test_pci_identity_and_config_tag(folder: Path) -> None:
    machine = Machine("4M", shares=[ShareOption(str(folder), "hostdir")])
    cfg = Cfg(machine, SLOT)
    assert (cfg.read(0x00, 2), cfg.read(0x02, 2)) == (0x1AF4, 0x1009)
    assert (cfg.read(0x2C, 2), cfg.read(0x2E, 2)) == (0x1AF4, 9)  # subsystem: virtio id 9 (9P)
    assert cfg.read(0x08) >> 8 == 0x000200  # QEMU's class_id 0x0002
    assert cfg.read(0x3D, 1) == 1 and cfg.read(0x3C, 1) == SHARE_IRQS[0]
    drv = ModernDriver(machine, slot=SLOT)
    assert drv.offered() & NinepFeature.MOUNT_TAG
    assert drv.device_cfg(0, 2) == 7
    assert bytes(drv.device_cfg(2 + i, 1) for i in range(7)) == b"hostdir"
    legacy = LegacyDriver(machine, slot=SLOT)
    assert legacy.reg(Legacy.CONFIG, 2) == 7
    assert bytes(legacy.reg(Legacy.CONFIG + 2 + i, 1) for i in range(7)) == b"hostdir"
    assert legacy.reg(Legacy.HOST_FEATURES, 4) & 1  # MOUNT_TAG on the legacy door too
    assert machine.ninep[0].pci.bars[0].size == 64  # 0x14 of registers + the 34-byte config, as QEMU sizes it


def test_modern_negotiation_needs_version_1(folder: Path) -> None:
    machine = Machine("4M", shares=[ShareOption(str(folder), "t")])
    drv = ModernDriver(machine, slot=SLOT)
    assert not drv.negotiate(NinepFeature.MOUNT_TAG)
    assert drv.negotiate(FEATURES)
    assert machine.ninep[0].info()["negotiated"] == ["MOUNT_TAG", "VERSION_1"]


async def test_version_attach_walk_read_through_the_queue(folder: Path) -> None:
    machine = Machine("4M", shares=[ShareOption(str(folder), "hostdir")])
    async with trio.open_nursery() as nursery:
        rig = Rig(machine, nursery)
        drv, q = modern(machine)
        await session(rig, drv, q)
        r = await rpc(rig, drv, q, Twalk(1, 2, ("hello.txt",)))
        assert isinstance(r, Rwalk) and len(r.wqids) == 1
        assert not isinstance(await rpc(rig, drv, q, Tlopen(2, OpenFlag.RDONLY)), Rlerror)
        r = await rpc(rig, drv, q, Tread(2, 0, 4096))
        assert r == Rread(b"hello from the host\n")
        r = await rpc(rig, drv, q, Twalk(1, 3, ("missing",)))
        assert isinstance(r, Rlerror) and r.ecode == errno.ENOENT  # an error reply, the device goes on
        assert rig.lines and set(rig.lines) == {SHARE_IRQS[0]}
        assert machine.ninep[0].status & Status.NEEDS_RESET == 0
        nursery.cancel_scope.cancel()


async def test_two_requests_in_one_kick_come_back_in_order(folder: Path) -> None:
    machine = Machine("4M", shares=[ShareOption(str(folder), "hostdir")])
    async with trio.open_nursery() as nursery:
        rig = Rig(machine, nursery)
        drv, q = modern(machine)
        await session(rig, drv, q)
        heads, backs = [], []
        for tag, newfid in ((5, 7), (6, 8)):
            frame = encode(Twalk(1, newfid, ("hello.txt",)), tag)
            out, back = drv.alloc(len(frame), 16), drv.alloc(512, 16)
            drv.mem.write(out, frame)
            heads.append(q.add([(out, len(frame), False), (back, 512, True)], publish=False))
            backs.append(back)
        q.publish()
        drv.notify(0)
        used: list[tuple[int, int]] = []
        while len(used) < 2:
            await rig.interrupt()
            drv.isr()
            used += q.take_used()
        assert [h for h, _ in used] == heads
        assert [decode(drv.mem.read(b, n))[0] for b, (_, n) in zip(backs, used, strict=True)] == [5, 6]
        nursery.cancel_scope.cancel()


async def test_legacy_interface_serves_requests_too(folder: Path) -> None:
    machine = Machine("4M", shares=[ShareOption(str(folder), "hostdir")])
    async with trio.open_nursery() as nursery:
        rig = Rig(machine, nursery)
        drv = LegacyDriver(machine, slot=SLOT)
        drv.set_reg(Legacy.DEVICE_STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER)
        drv.set_reg(Legacy.GUEST_FEATURES, 4, int(NinepFeature.MOUNT_TAG))
        q = drv.setup_queue(0, 0x100)
        drv.next_free = 0x11_0000  # type: ignore[attr-defined]
        drv.set_reg(Legacy.DEVICE_STATUS, 1, Status.ACKNOWLEDGE | Status.DRIVER | Status.DRIVER_OK)
        await session(rig, drv, q)
        r = await rpc(rig, drv, q, Twalk(1, 2, ("hello.txt",)))
        assert isinstance(r, Rwalk)
        assert machine.ninep[0].legacy
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("chain", ["no reply room", "no header", "reply too big"])
async def test_a_bad_chain_sets_needs_reset_and_a_reset_brings_it_back(folder: Path, chain: str) -> None:
    machine = Machine("4M", shares=[ShareOption(str(folder), "hostdir")])
    async with trio.open_nursery() as nursery:
        rig = Rig(machine, nursery)
        drv, q = modern(machine)
        frame = encode(Tversion(65536, VERSION), NOTAG)
        out = drv.alloc(len(frame), 16)
        drv.mem.write(out, frame)
        back = drv.alloc(64, 16)
        if chain == "no reply room":
            q.add([(out, len(frame), False)])
        elif chain == "no header":
            q.add([(out, 3, False), (back, 64, True)])
        else:  # Rversion is 21 bytes: room for an Rlerror (11) but not for it
            q.add([(out, len(frame), False), (back, 12, True)])
        drv.notify(0)
        await rig.interrupt()  # the configuration interrupt of NEEDS_RESET
        assert drv.isr() & 2
        device = machine.ninep[0]
        assert drv.status & Status.NEEDS_RESET
        assert device.error and "9P" in device.error
        assert q.take_used() == []
        # the driver resets and starts again: the device works
        drv2, q2 = modern(machine)
        assert not drv2.status & Status.NEEDS_RESET
        await session(rig, drv2, q2)
        nursery.cancel_scope.cancel()


async def test_a_bad_message_is_answered_not_fatal(folder: Path) -> None:
    machine = Machine("4M", shares=[ShareOption(str(folder), "hostdir")])
    async with trio.open_nursery() as nursery:
        rig = Rig(machine, nursery)
        drv, q = modern(machine)
        await session(rig, drv, q)
        bogus = (11).to_bytes(4, "little") + bytes([250]) + (9).to_bytes(2, "little") + b"\0\0\0\0"
        out, back = drv.alloc(len(bogus), 16), drv.alloc(256, 16)
        drv.mem.write(out, bogus)
        q.add([(out, len(bogus), False), (back, 256, True)])
        drv.notify(0)
        await rig.interrupt()
        drv.isr()
        [(_, n)] = q.take_used()
        tag, reply = decode(drv.mem.read(back, n))
        assert tag == 9 and isinstance(reply, Rlerror)
        assert not drv.status & Status.NEEDS_RESET
        nursery.cancel_scope.cancel()


async def test_reset_ends_the_session(folder: Path) -> None:
    machine = Machine("4M", shares=[ShareOption(str(folder), "hostdir")])
    async with trio.open_nursery() as nursery:
        rig = Rig(machine, nursery)
        drv, q = modern(machine)
        await session(rig, drv, q)
        server = machine.ninep[0].server
        assert server.fids == 1
        drv2, q2 = modern(machine)  # negotiate() starts with a reset
        await session(rig, drv2, q2)  # requests queue behind the session's end: fid 1 is new again
        assert server.fids == 1
        r = await rpc(rig, drv2, q2, Twalk(1, 2, ("hello.txt",)))
        assert isinstance(r, Rwalk)
        nursery.cancel_scope.cancel()


async def test_readonly_share_refuses_changes(folder: Path) -> None:
    machine = Machine("4M", shares=[ShareOption(str(folder), "ro", readonly=True)])
    async with trio.open_nursery() as nursery:
        rig = Rig(machine, nursery)
        drv, q = modern(machine)
        await session(rig, drv, q)
        r = await rpc(rig, drv, q, Twalk(1, 2, ()))
        assert isinstance(r, Rwalk)
        r = await rpc(rig, drv, q, Tlcreate(2, "new.txt", OpenFlag.WRONLY, 0o644, 0))
        assert isinstance(r, Rlerror) and r.ecode == errno.EROFS
        assert not (folder / "new.txt").exists()
        nursery.cancel_scope.cancel()


async def test_each_share_its_own_slot_bars_and_line(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("other")
    (other / "b.txt").write_text("second\n")
    machine = Machine("4M", shares=[ShareOption(str(folder), "a"), ShareOption(str(other), "b")])
    a, b = Cfg(machine, SLOT), Cfg(machine, SLOT + 1)
    assert a.bar(0) != b.bar(0) and a.bar(4) != b.bar(4)
    assert a.bar(4) > 0xFE00_4000 and b.bar(0) >= a.bar(0) + 0x40  # past the NIC's, no overlap
    assert a.read(0x3C, 1) != b.read(0x3C, 1)
    async with trio.open_nursery() as nursery:
        rig = Rig(machine, nursery)
        drv, q = modern(machine, SLOT + 1)
        await session(rig, drv, q)
        r = await rpc(rig, drv, q, Twalk(1, 2, ("b.txt",)))
        assert isinstance(r, Rwalk)
        assert set(rig.lines) == {SHARE_IRQS[1]}
        nursery.cancel_scope.cancel()


def test_board_refuses_duplicate_tags(folder: Path) -> None:
    with pytest.raises(ValueError, match="tag 'x'"):
        Machine("4M", shares=[ShareOption(str(folder), "x"), ShareOption(str(folder), "x")])
