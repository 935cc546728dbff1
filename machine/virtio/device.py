"""A virtio device's transport-independent core: status, feature negotiation, queues, ISR.

Both interfaces of a transitional device (machine/virtio/pci.py: the modern capabilities and the
legacy I/O BAR) drive this one object, so they cannot disagree.

Status (virtio 1.2 §2.1, §3.1.1). The driver sets ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK in
that order. A write that sets a bit whose predecessor is not set keeps the bits that are in
order and drops the rest (a driver that skips a step finds the bit clear when it reads back).
Bits cannot be cleared except by writing 0, which resets the device: status, features, queues,
ISR, as after power-on. FAILED may be set at any time; NEEDS_RESET is the device's and ignored in
writes.

Features (§2.2, §3.1.1). The driver reads the offered 64 bits in two 32-bit halves and writes the
ones it accepts, then sets FEATURES_OK. The device refuses (FEATURES_OK reads back clear, and
the accepted features stay unusable) a set that has a bit it did not offer, that lacks
VERSION_1 on the modern interface (§6.1: the device may; this one does, since it keeps no legacy
behaviour on the modern interface), or that breaks a device rule (``check_features``, e.g. a
net feature accepted without the one it depends on). Feature writes after FEATURES_OK are
ignored. The legacy interface has no FEATURES_OK (§4.1.4.8): the guest's feature word is taken
when written, masked to what was offered (the unoffered bits are counted, not kept).

Queues are used only after DRIVER_OK (§3.1.1: "the device MUST NOT consume buffers or send any
used buffer notifications before DRIVER_OK"): a kick before that is ignored, and counted. DMA
also needs bus mastering in the PCI command register. A :class:`QueueError` or DmaError while
processing sets NEEDS_RESET (§2.1.2) and, if DRIVER_OK was set, a configuration-change
interrupt; the device then ignores its queues until the driver resets it. ``error`` says why.

Interrupts: one INTx line per device (no MSI-X in this machine), asserted while ISR is non-zero
(bit 0 used buffers, bit 1 configuration change); reading ISR returns and clears it and lowers
the line. As with machine/rtl8139.py the controller takes one raise per event, so the line is
raised when ISR goes from 0 to non-zero.
"""

from __future__ import annotations

from collections.abc import Callable

from machine.irq import IrqController
from machine.memory import PhysicalMemory
from machine.virtio.dma import Dma, DmaError
from machine.virtio.queue import QueueError, SplitQueue
from proto.virtio import Feature, Isr, Status

_DRIVER_OK = int(Status.DRIVER_OK)
_OK_OR_RESET = int(Status.DRIVER_OK | Status.NEEDS_RESET)

_ORDER = ((Status.DRIVER, Status.ACKNOWLEDGE), (Status.FEATURES_OK, Status.DRIVER),
          (Status.DRIVER_OK, Status.FEATURES_OK))


class VirtioDevice:
    """Subclasses say what they offer (``offered``), check what the driver accepted
    (:meth:`check_features`), give their configuration space (:meth:`config_bytes`) and handle
    kicks (:meth:`queue_notify`)."""

    #: The virtio device id (1 for net) and the transitional PCI ids.
    device_id = 0
    offered: int = 0
    name = "virtio"

    def __init__(self, memory: PhysicalMemory, irq: IrqController | None, line: int,
                 queues: int, queue_size: int = 256) -> None:
        self.memory = memory
        self.dma = Dma(memory)
        self.irq = irq
        self.line = line
        self.queues = [SplitQueue(self.dma, i, queue_size) for i in range(queues)]
        #: Whether the function may master the bus (the PCI transport sets this to its own test).
        self.bus_master: Callable[[], bool] = lambda: True
        self.intx_enabled: Callable[[], bool] = lambda: True
        self.status = Status.RESET
        self.driver_features = 0  # what the driver wrote
        self.features = 0  # what was agreed: usable from FEATURES_OK (or a legacy write) on
        self.legacy = False  # the driver is using the legacy interface
        self.isr = Isr(0)
        self.config_generation = 0
        self.error: str | None = None  # why the device needs a reset
        self.counters: dict[str, int] = dict.fromkeys(
            ("interrupts", "kicks", "kicks_ignored", "features_refused", "needs_reset"), 0)

    # -- status ------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Writing 0 to device_status (or power-on): back to the initial state."""
        self.status = Status.RESET
        self.driver_features = 0
        self.features = 0
        self.legacy = False
        self.error = None
        self.isr = Isr(0)
        for q in self.queues:
            q.reset()
        self.on_reset()

    def write_status(self, value: int, legacy: bool = False) -> None:
        """A driver's write of device_status through either interface."""
        value &= 0xFF
        if value == 0:
            self.reset()
            return
        new = Status(value) & ~Status.NEEDS_RESET
        keep = self.status | new  # bits never clear except by reset
        for bit, needs in _ORDER:
            if legacy and bit is Status.DRIVER_OK:
                needs = Status.DRIVER  # legacy drivers have no FEATURES_OK step
            if keep & bit and not keep & needs:
                keep &= ~bit
        if keep & Status.FEATURES_OK and not self.status & Status.FEATURES_OK:
            if legacy or not self._accept_features():
                keep &= ~Status.FEATURES_OK  # refused: reads back clear (§3.1.1 step 6)
                keep &= ~Status.DRIVER_OK
        if legacy:
            self.legacy = True
        was_ok = bool(self.status & Status.DRIVER_OK)
        self.status = Status(keep) | (self.status & Status.NEEDS_RESET)
        if self.status & Status.DRIVER_OK and not was_ok:
            self._configure_queues()
            self.on_driver_ok()

    def _accept_features(self) -> bool:
        accepted = self.driver_features
        problem = None
        if accepted & ~self.offered:
            problem = "a feature that was not offered"
        elif not accepted & Feature.VERSION_1:
            problem = "no VERSION_1 on the modern interface"
        else:
            problem = self.check_features(accepted)
        if problem is not None:
            self.counters["features_refused"] += 1
            self.error = f"features {accepted:#x} refused: {problem}"
            return False
        self.error = None
        self.features = accepted
        return True

    def write_driver_features(self, value: int, select: int) -> None:
        """The modern driver_feature register: 32 bits at ``select`` (0 low, 1 high)."""
        if self.status & Status.FEATURES_OK or select > 1:
            return  # frozen once accepted (§3.1.1); only 64 feature bits exist
        shift = 32 * select
        mask = 0xFFFF_FFFF << shift
        self.driver_features = (self.driver_features & ~mask) | ((value & 0xFFFF_FFFF) << shift)

    def write_legacy_features(self, value: int) -> None:
        """The legacy GUEST_FEATURES register: taken at once, masked to the offered low bits."""
        if self.status & Status.DRIVER_OK:
            return
        self.legacy = True
        value &= 0xFFFF_FFFF
        if value & ~self.offered:
            self.counters["features_refused"] += 1
        self.driver_features = value
        self.features = value & self.offered
        problem = self.check_features(self.features)
        if problem is not None:
            self.counters["features_refused"] += 1
            self.error = f"features {value:#x}: {problem}"

    def has(self, feature: Feature) -> bool:
        return bool(self.features & int(feature))  # int: an IntFlag operation costs ~5x more

    @property
    def driver_ok(self) -> bool:
        return int(self.status) & _OK_OR_RESET == _DRIVER_OK

    def needs_reset(self, reason: str) -> None:
        """Stop using the queues until a reset, and tell the driver (§2.1.2)."""
        if self.status & Status.NEEDS_RESET:
            return
        self.error = reason
        self.counters["needs_reset"] += 1
        self.status |= Status.NEEDS_RESET
        if self.status & Status.DRIVER_OK:
            self.interrupt(Isr.CONFIG)

    def _configure_queues(self) -> None:
        event_idx = self.has(Feature.EVENT_IDX)
        indirect = self.has(Feature.INDIRECT_DESC)
        for q in self.queues:
            q.event_idx = event_idx
            q.indirect = indirect
        for q in self.queues:
            if q.enabled:
                try:
                    q.want_kicks()
                except QueueError as e:
                    self.needs_reset(str(e))
                    return

    # -- queues ------------------------------------------------------------------------------------

    def kick(self, index: int) -> None:
        """The driver notified queue ``index`` (QUEUE_NOTIFY or a write to its notify address)."""
        self.counters["kicks"] += 1
        if index >= len(self.queues) or not self.ready(self.queues[index]):
            self.counters["kicks_ignored"] += 1
            return
        self.run_safely(lambda: self.queue_notify(index))

    def ready(self, queue: SplitQueue) -> bool:
        """Whether the device may use ``queue`` now (DRIVER_OK, no pending reset, enabled, bus
        master)."""
        return self.driver_ok and queue.enabled and self.bus_master()

    def run_safely(self, work: Callable[[], object]) -> None:
        """Run queue work; a driver's mistake becomes NEEDS_RESET, never an exception."""
        try:
            work()
        except (QueueError, DmaError) as e:
            self.needs_reset(str(e))

    def used(self, queue: SplitQueue, used: list[tuple[int, int]]) -> None:
        """Push ``used`` chains and interrupt if the driver asked for it; re-arm kicks."""
        if not used:
            return
        queue.push(used)
        queue.want_kicks()
        if queue.wants_interrupt():
            self.interrupt(Isr.QUEUE)

    # -- interrupts --------------------------------------------------------------------------------

    def interrupt(self, cause: Isr) -> None:
        was = self.isr
        self.isr |= cause
        if not was and self.irq is not None and self.intx_enabled():
            self.counters["interrupts"] += 1
            self.irq.raise_irq(self.line)

    def read_isr(self) -> int:
        """ISR status: read and clear (the line goes low)."""
        value = int(self.isr)
        self.isr = Isr(0)
        return value

    def config_changed(self) -> None:
        """The device changed its configuration (e.g. the link): a new generation, and an
        interrupt once the driver is running."""
        self.config_generation = (self.config_generation + 1) & 0xFF
        if self.status & Status.DRIVER_OK:
            self.interrupt(Isr.CONFIG)

    # -- for subclasses ----------------------------------------------------------------------------

    def check_features(self, accepted: int) -> str | None:
        """Why ``accepted`` is not a valid combination, or None."""
        return None

    def config_bytes(self) -> bytes:
        """The device-specific configuration space, little-endian."""
        return b""

    def queue_notify(self, index: int) -> None:
        """The driver kicked a ready queue: take what it offered."""

    def on_driver_ok(self) -> None:
        """DRIVER_OK was just set (the queues are configured)."""

    def on_reset(self) -> None:
        """The device was just reset."""
