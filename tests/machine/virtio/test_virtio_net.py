"""virtio-net through its queues: transmit and receive via a recording backend (plain, offloads,
MRG_RXBUF, legacy header), interrupts and ISR, NEEDS_RESET on bad descriptors, the receive run
restarted for offloads, and a driver's MAP_PHYS mapping of BAR4 reaching the device."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing
from virtio_driver import LegacyDriver, ModernDriver

from machine.board import Machine
from machine.netdev import Backend
from proto.virtio import Common, Feature, Legacy, Status
from proto.wire.vnet import GsoType, HdrFlags, VnetHdr

BASIC = Feature.VERSION_1 | Feature.NET_MAC | Feature.NET_STATUS
OFFLOADS = Feature.NET_CSUM | Feature.NET_HOST_TSO4 | Feature.NET_GUEST_CSUM | Feature.NET_GUEST_TSO4
FRAME = bytes.fromhex("525400123456" "525400abcdef" "0800") + bytes(range(46))


class Recorder(Backend):
    """A wire that records what the card sends and hands frames in when told."""

    spec = "recorder"

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []
        self.sent_gso: list[tuple[VnetHdr, bytes]] = []
        self.runs: list[bool] = []  # per run: was deliver_gso given
        self.deliver = None
        self.deliver_gso = None
        self.started = trio.Event()

    async def run(self, deliver, deliver_gso=None) -> None:  # type: ignore[no-untyped-def, override]
        self.deliver, self.deliver_gso = deliver, deliver_gso
        self.runs.append(deliver_gso is not None)
        self.started.set()
        await trio.sleep_forever()

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        self.sent_gso.append((hdr, frame))


def card(features: int = BASIC, queue_size: int = 16):  # type: ignore[no-untyped-def]
    wire = Recorder()
    machine = Machine("4M", nic=wire, card="virtio-net-pci")
    drv = ModernDriver(machine)
    rx, tx = drv.start(features, queue_size)
    return machine, wire, drv, rx, tx


def send(drv: ModernDriver, tx, hdr: VnetHdr, frame: bytes, split: bool = False) -> int:  # type: ignore[no-untyped-def]
    buf = drv.alloc(12 + len(frame))
    drv.mem.write(buf, hdr.pack(12) + frame)
    parts = [(buf, 12, False), (buf + 12, len(frame), False)] if split else [(buf, 12 + len(frame), False)]
    head = tx.add(parts)
    drv.notify(1)
    return head


def test_transmit_plain_frames_and_used_ring() -> None:
    machine, wire, drv, rx, tx = card()
    heads = [send(drv, tx, VnetHdr(), FRAME), send(drv, tx, VnetHdr(), FRAME[::-1], split=True)]
    assert wire.sent == [FRAME, FRAME[::-1]] and wire.sent_gso == []
    assert tx.take_used() == [(heads[0], 0), (heads[1], 0)]
    nic = machine.nic
    assert nic.counters["tx_frames"] == 2 and nic.counters["tx_bytes"] == 2 * len(FRAME)  # type: ignore[union-attr]


def test_transmit_with_offloads_goes_to_send_gso() -> None:
    machine, wire, drv, rx, tx = card(BASIC | OFFLOADS)
    big = FRAME + bytes(20000)
    hdr = VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, 54, 1448, 34, 16)
    send(drv, tx, hdr, big)
    assert wire.sent_gso == [(hdr, big)] and wire.sent == []
    assert machine.nic.counters["tx_gso"] == 1  # type: ignore[union-attr]


def test_transmit_offload_not_negotiated_is_dropped() -> None:
    machine, wire, drv, rx, tx = card()
    send(drv, tx, VnetHdr(HdrFlags.NEEDS_CSUM, csum_start=34, csum_offset=16), FRAME)
    send(drv, tx, VnetHdr(), FRAME + bytes(3000))  # too long without TSO
    assert wire.sent == wire.sent_gso == []
    c = machine.nic.counters  # type: ignore[union-attr]
    assert c["tx_offload_refused"] == 1 and c["tx_too_long"] == 1
    assert len(tx.take_used()) == 2  # the buffers still come back


def rx_buffers(drv: ModernDriver, rx, count: int, size: int) -> list[int]:  # type: ignore[no-untyped-def]
    bufs = [drv.alloc(size, 16) for _ in range(count)]
    for b in bufs:
        rx.add([(b, size, True)])
    return bufs


def test_receive_into_one_buffer_with_the_header() -> None:
    machine, wire, drv, rx, tx = card()
    bufs = rx_buffers(drv, rx, 2, 2048)
    assert machine.nic.receive(FRAME)  # type: ignore[union-attr]
    [(head, n)] = rx.take_used()
    assert n == 12 + len(FRAME)
    data = drv.mem.read(bufs[0], n)
    assert VnetHdr.unpack(data) == VnetHdr(num_buffers=1) and data[12:] == FRAME
    assert drv.isr() == 1 and drv.isr() == 0  # read to clear
    assert machine.irq.counts[11] == 1


def test_receive_too_big_for_one_buffer_is_dropped_and_the_buffer_kept() -> None:
    machine, wire, drv, rx, tx = card()
    rx_buffers(drv, rx, 1, 64)
    nic = machine.nic
    assert not nic.receive(FRAME + bytes(100))  # type: ignore[union-attr]
    assert rx.take_used() == [] and nic.counters["rx_no_buffer"] == 1  # type: ignore[union-attr]
    assert nic.receive(FRAME[:50])  # type: ignore[union-attr]  # fits: the same buffer is still there
    assert len(rx.take_used()) == 1


def test_receive_merged_over_buffers_with_num_buffers() -> None:
    machine, wire, drv, rx, tx = card(BASIC | Feature.NET_MRG_RXBUF | OFFLOADS)
    bufs = rx_buffers(drv, rx, 8, 1024)
    big = FRAME + bytes(range(256)) * 12  # 3132 bytes + header: 4 buffers
    hdr = VnetHdr(HdrFlags.NEEDS_CSUM, GsoType.TCPV4, 54, 1448, 34, 16)
    assert machine.nic.receive_gso(hdr, big)  # type: ignore[union-attr]
    used = rx.take_used()
    assert [n for _, n in used] == [1024, 1024, 1024, 12 + len(big) - 3072]
    data = b"".join(drv.mem.read(bufs[i], n) for i, (_, n) in enumerate(used))
    got = VnetHdr.unpack(data)
    assert got.num_buffers == 4 and got.gso_type is GsoType.TCPV4 and got.gso_size == 1448
    assert data[12:] == big


def test_receive_offload_frames_need_the_guest_features() -> None:
    machine, wire, drv, rx, tx = card()
    rx_buffers(drv, rx, 4, 2048)
    hdr = VnetHdr(HdrFlags.NEEDS_CSUM, csum_start=34, csum_offset=16)
    assert not machine.nic.receive_gso(hdr, FRAME)  # type: ignore[union-attr]
    assert machine.nic.counters["rx_offload_refused"] == 1  # type: ignore[union-attr]


def test_frames_before_driver_ok_are_dropped_and_kicks_ignored() -> None:
    wire = Recorder()
    machine = Machine("4M", nic=wire, card="virtio")
    drv = ModernDriver(machine)
    assert drv.negotiate(BASIC)
    _rx, tx = drv.setup_queue(0, 16), drv.setup_queue(1, 16)
    nic = machine.nic
    assert not nic.receive(FRAME)  # type: ignore[union-attr]
    buf = drv.alloc(100)
    drv.mem.write(buf, VnetHdr().pack() + FRAME)
    tx.add([(buf, 12 + len(FRAME), False)])
    drv.notify(1)
    assert wire.sent == [] and nic.counters["kicks_ignored"] == 1  # type: ignore[union-attr]
    drv.set_status(Status.ACKNOWLEDGE | Status.DRIVER | Status.FEATURES_OK | Status.DRIVER_OK)
    assert wire.sent == [FRAME]  # what was queued goes once the driver is ready


def test_event_idx_both_ways_through_the_card() -> None:
    machine, wire, drv, rx, tx = card(BASIC | Feature.EVENT_IDX)
    tx.set_used_event(1)  # interrupt only once the used index passes 1
    send(drv, tx, VnetHdr(), FRAME)
    assert tx.avail_event() == 1  # the device asks for a kick at the next offer
    assert drv.isr() == 0
    send(drv, tx, VnetHdr(), FRAME)
    assert drv.isr() == 1
    assert tx.avail_event() == 2


def test_bad_descriptor_sets_needs_reset_and_the_machine_lives() -> None:
    machine, wire, drv, rx, tx = card()
    tx.write_desc(0, 0x7FFF_0000, 64, 0)  # far outside 4 MiB of RAM
    tx.offer(0)
    drv.notify(1)
    nic = machine.nic
    assert drv.status & Status.NEEDS_RESET
    assert "outside RAM" in (nic.error or "")  # type: ignore[union-attr]
    assert drv.isr() == 2  # a configuration change interrupt tells the driver
    assert not nic.receive(FRAME)  # type: ignore[union-attr]  # queues are dead until the reset
    rx2, tx2 = drv.start(BASIC, 16)  # reset and start over: it works again
    send(drv, tx2, VnetHdr(), FRAME)
    assert wire.sent == [FRAME]


def test_link_status_change_interrupts() -> None:
    machine, wire, drv, rx, tx = card()
    gen = drv.common(Common.CONFIG_GENERATION, 1)
    machine.nic.set_link(False)  # type: ignore[union-attr]
    assert drv.device_cfg(6, 2) == 0 and drv.isr() == 2
    assert drv.common(Common.CONFIG_GENERATION, 1) != gen


def test_legacy_driver_speaks_the_10_byte_header() -> None:
    wire = Recorder()
    machine = Machine("4M", nic=wire, card="virtio")
    drv = LegacyDriver(machine)
    A, D, DOK = Status.ACKNOWLEDGE, Status.DRIVER, Status.DRIVER_OK
    drv.set_reg(Legacy.DEVICE_STATUS, 1, A)
    drv.set_reg(Legacy.DEVICE_STATUS, 1, A | D)
    drv.set_reg(Legacy.GUEST_FEATURES, 4, Feature.NET_MAC)
    rx, tx = drv.setup_queue(0, 0x100), drv.setup_queue(1, 0x110)
    drv.set_reg(Legacy.DEVICE_STATUS, 1, A | D | DOK)
    buf = 0x200000
    machine.memory.write(buf, VnetHdr().pack(10) + FRAME)
    tx.add([(buf, 10 + len(FRAME), False)])
    drv.set_reg(Legacy.QUEUE_NOTIFY, 2, 1)
    assert wire.sent == [FRAME]
    rx.add([(0x210000, 2048, True)])
    assert machine.nic.receive(FRAME)  # type: ignore[union-attr]
    [(_, n)] = rx.take_used()
    assert n == 10 + len(FRAME) and machine.memory.read(0x210000 + 10, len(FRAME)) == FRAME
    assert drv.reg(Legacy.ISR_STATUS, 1) == 1 and drv.reg(Legacy.ISR_STATUS, 1) == 0


@asynccontextmanager
async def running(wire: Recorder) -> AsyncIterator[Machine]:
    """A virtio-net machine on ``wire``, running (its receive run started) while the block lasts."""
    machine = Machine("4M", nic=wire, card="virtio")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(machine.run)
        await wire.started.wait()
        yield machine
        nursery.cancel_scope.cancel()


async def test_the_receive_run_restarts_with_deliver_gso_when_offloads_are_negotiated() -> None:
    wire = Recorder()
    async with running(wire) as machine:
        assert wire.runs == [False]
        drv = ModernDriver(machine)
        rx, tx = drv.start(BASIC | OFFLOADS | Feature.NET_MRG_RXBUF, 16)
        await trio.testing.wait_all_tasks_blocked()
        assert wire.runs == [False, True]
        rx_buffers(drv, rx, 4, 2048)
        hdr = VnetHdr(HdrFlags.DATA_VALID)
        assert wire.deliver_gso is not None and wire.deliver_gso(hdr, FRAME)
        drv.set_status(0)
        await trio.testing.wait_all_tasks_blocked()
        assert wire.runs == [False, True, False]


class Answering(Recorder):
    """A host that answers every frame at once: the answer waits in its queue until pump()."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[bytes] = []
        self.pumps = 0

    def send(self, frame: bytes) -> None:
        super().send(frame)
        self.queued.append(frame[::-1])

    def pump(self) -> None:
        self.pumps += 1
        while self.queued and self.deliver is not None:
            self.deliver(self.queued.pop(0))


async def test_a_transmit_kick_takes_in_what_the_host_has_already_answered() -> None:
    wire = Answering()
    async with running(wire) as machine:
        drv = ModernDriver(machine)
        rx, tx = drv.start(BASIC, 16)
        await trio.testing.wait_all_tasks_blocked()
        bufs = rx_buffers(drv, rx, 2, 2048)
        send(drv, tx, VnetHdr(), FRAME)
        # No checkpoint since the kick: the answer is already in the receive ring, interrupt raised.
        [(head, n)] = rx.take_used()
        assert drv.mem.read(bufs[0] + 12, n - 12) == FRAME[::-1]
        assert wire.pumps == 1 and drv.isr() == 1
        drv.notify(1)  # a kick with nothing to send asks the host for nothing
        drv.notify(0)  # nor does a receive kick
        assert wire.pumps == 1


async def test_a_driver_maps_bar4_with_map_phys_and_drives_the_card() -> None:
    from euralios.boot import boot

    wire = Recorder()
    seen: dict[str, int] = {}

    async def driver(proc):  # type: ignore[no-untyped-def]
        gate = proc.sys.gate
        base = await proc.sys.map_phys(0xFE00_0000, 4)
        seen["queues"] = int.from_bytes(gate.load(base + Common.NUM_QUEUES, 2), "little")
        gate.store(base + Common.DEVICE_STATUS, bytes([Status.ACKNOWLEDGE]))
        seen["status"] = gate.load(base + Common.DEVICE_STATUS, 1)[0]
        seen["mac0"] = gate.load(base + 0x2000, 6)[0]
        return 0

    async with boot("16M", nic=wire, card="virtio") as system:
        system.machine.pci.functions[(0, 3, 0)].write(0x04, 2, 0x7)
        assert await system.run(driver, io=True) == 0
    assert seen == {"queues": 2, "status": 1, "mac0": 0x52}


def test_info_struct() -> None:
    machine, wire, drv, rx, tx = card(BASIC | Feature.EVENT_IDX)
    info = machine.nic.info()  # type: ignore[union-attr]
    assert info["negotiated"] == ["MAC", "STATUS", "EVENT_IDX", "VERSION_1"]
    assert "HOST_TSO4" in info["offered"]
    assert struct.calcsize("<HH") == 4
