"""Port bus dispatch and the interrupt controller."""

from __future__ import annotations

import pytest

from machine.irq import IrqController
from machine.ports import PortBus


class Recorder:
    def __init__(self, value: int = 0x12345678) -> None:
        self.value = value
        self.reads: list[tuple[int, int]] = []
        self.writes: list[tuple[int, int, int]] = []

    def port_read(self, port: int, size: int) -> int:
        self.reads.append((port, size))
        return self.value

    def port_write(self, port: int, size: int, value: int) -> None:
        self.writes.append((port, size, value))


def test_dispatch_to_registered_device() -> None:
    bus = PortBus()
    dev = Recorder()
    bus.register([0x60, 0x64], dev)
    assert bus.read(0x60, 4) == 0x12345678
    assert bus.read(0x64, 1) == 0x78  # masked to the access size
    bus.write(0x64, 2, 0xABCD)
    assert dev.reads == [(0x60, 4), (0x64, 1)]
    assert dev.writes == [(0x64, 2, 0xABCD)]
    assert bus.device_at(0x60) is dev
    assert bus.device_at(0x61) is None


@pytest.mark.parametrize(("size", "ones"), [(1, 0xFF), (2, 0xFFFF), (4, 0xFFFFFFFF)])
def test_unclaimed_ports_float_high_and_ignore_writes(size: int, ones: int) -> None:
    bus = PortBus()
    assert bus.read(0x1234, size) == ones
    bus.write(0x1234, size, 0)  # no error, no effect


def test_write_value_masked_to_size() -> None:
    bus = PortBus()
    dev = Recorder()
    bus.register(range(0x3D4, 0x3D6), dev)
    bus.write(0x3D4, 1, 0x1FF)
    assert dev.writes == [(0x3D4, 1, 0xFF)]


def test_double_registration_rejected_atomically() -> None:
    bus = PortBus()
    a, b = Recorder(), Recorder()
    bus.register([0x60], a)
    with pytest.raises(ValueError):
        bus.register([0x61, 0x60], b)
    assert bus.device_at(0x61) is None  # nothing of the failed call stuck
    with pytest.raises(ValueError):
        bus.register([0x70, 0x70], b)


@pytest.mark.parametrize(("port", "size"), [(0x60, 3), (0x60, 8), (-1, 1), (0x10000, 1)])
def test_bad_access_rejected(port: int, size: int) -> None:
    bus = PortBus()
    with pytest.raises(ValueError):
        bus.read(port, size)
    with pytest.raises(ValueError):
        bus.write(port, size, 0)


def test_irq_raise_calls_handler_and_marks_pending() -> None:
    irq = IrqController()
    seen: list[int] = []
    irq.set_handler(seen.append)
    assert not irq.pending(1)
    irq.raise_irq(1)
    assert seen == [1]
    assert irq.pending(1)
    assert irq.counts[1] == 1
    irq.raise_irq(1)  # every raise is delivered, even while pending
    assert seen == [1, 1]
    assert irq.counts[1] == 2
    irq.acknowledge(1)
    assert not irq.pending(1)
    assert irq.counts[1] == 2  # counters survive EOI


def test_irq_without_handler_stays_pending() -> None:
    irq = IrqController()
    irq.raise_irq(11)
    assert irq.pending(11)
    assert not irq.pending(1)


def test_masked_line_pends_until_unmasked() -> None:
    irq = IrqController()
    seen: list[int] = []
    irq.set_handler(seen.append)
    irq.mask(1)
    assert irq.is_masked(1)
    irq.raise_irq(1)
    assert seen == []
    assert irq.pending(1)
    irq.unmask(1)
    assert seen == [1]
    irq.unmask(1)  # already unmasked: no second delivery
    assert seen == [1]


def test_unmask_without_pending_delivers_nothing() -> None:
    irq = IrqController()
    seen: list[int] = []
    irq.set_handler(seen.append)
    irq.mask(3)
    irq.raise_irq(3)
    irq.acknowledge(3)
    irq.unmask(3)
    assert seen == []


@pytest.mark.parametrize("line", [-1, 16, 100])
def test_bad_line_rejected(line: int) -> None:
    irq = IrqController()
    with pytest.raises(ValueError):
        irq.raise_irq(line)
    with pytest.raises(ValueError):
        irq.pending(line)
