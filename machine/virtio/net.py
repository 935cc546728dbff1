"""virtio-net-pci (virtio 1.2 §5.1), QEMU's default network card, transitional.

PCI: 1AF4:1000, subsystem 1AF4:0001, class 0x020000, INTx pin A on IRQ 11; BAR0 I/O (legacy, 32
bytes at 0xC000), BAR4 64-bit prefetchable memory (modern, 16 KiB at 0xFE000000): see
machine/virtio/pci.py for the capability layout a driver walks.

Features offered: VERSION_1, CSUM, GUEST_CSUM, MAC, GUEST_TSO4, HOST_TSO4, MRG_RXBUF, STATUS,
EVENT_IDX, INDIRECT_DESC, and ANY_LAYOUT (a legacy driver's; the device reads a chain as one byte
stream anyway). Dependencies checked at FEATURES_OK (§5.1.3.1): HOST_TSO4 needs CSUM, GUEST_TSO4
needs GUEST_CSUM. Device config: mac[6], status le16 (LINK_UP), max_virtqueue_pairs le16 (1).

Queues: 0 receive, 1 transmit, 256 entries each. Every frame in either direction starts with a
virtio-net header (proto/wire/vnet.py's VnetHdr): 12 bytes with VERSION_1 or MRG_RXBUF, 10 for a
legacy driver without MRG_RXBUF.

Transmit (queue 1 kicked): each chain is read as header + frame. A header without offloads sends
``backend.send(frame)``; one with NEEDS_CSUM or a GSO type sends ``backend.send_gso(hdr, frame)``
(the backend finishes the checksum or cuts the segments), provided the driver negotiated CSUM /
HOST_TSO4, else the frame is dropped and counted. The chain goes back used with length 0.

Receive: :meth:`VirtioNet.run` runs ``backend.run(deliver)``, or ``backend.run(deliver,
deliver_gso)`` once the driver has negotiated GUEST_CSUM or GUEST_TSO4 (the backend may then hand
over large or unchecksummed frames with their header); the run is restarted when that changes
(DRIVER_OK, reset). A large segment the driver did not agree to take whole (GUEST_CSUM without
GUEST_TSO4: the backend got a ``deliver_gso`` all the same) is cut into frames here first. A
frame is written as header + frame into receive buffers: with MRG_RXBUF over
as many buffers as it needs (``num_buffers`` in the first header says how many), else into one
buffer that must hold it all. No buffer, or too little room: the frame is dropped and counted (a
card cannot push back on the wire), and the buffers stay offered. Frames arriving before
DRIVER_OK are dropped. There is no address filter: QEMU's card starts promiscuous and this one
has no control queue to change that.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import trio

from machine.irq import IrqController
from machine.memory import PhysicalMemory
from machine.virtio.device import VirtioDevice
from machine.virtio.pci import VirtioPci
from machine.virtio.queue import runs
from proto.virtio import NET_S_LINK_UP, TRANSITIONAL_NET, VIRTIO_ID_NET, Feature, feature_names
from proto.wire import DecodeError
from proto.wire.gso import wire_frames
from proto.wire.vnet import HDR_LEN, HDR_LEN_LEGACY, GsoType, VnetHdr

RX, TX = 0, 1
IRQ_LINE = 11
IO_BASE = 0xC000
MEM_BASE = 0xFE00_0000
DEFAULT_MAC = "52:54:00:12:34:56"
ETH_MAX = 1518  # a frame without offloads: 1514 + an 802.1Q tag
GSO_MAX = 65550  # the largest frame a header may describe (Linux's and QEMU's bound)
CLASS_ETHERNET = 0x020000

OFFERED = (Feature.VERSION_1 | Feature.NET_CSUM | Feature.NET_GUEST_CSUM | Feature.NET_MAC
           | Feature.NET_GUEST_TSO4 | Feature.NET_HOST_TSO4 | Feature.NET_MRG_RXBUF | Feature.NET_STATUS
           | Feature.EVENT_IDX | Feature.INDIRECT_DESC | Feature.ANY_LAYOUT)

Deliver = Callable[[bytes], object]
DeliverGso = Callable[[VnetHdr, bytes], object]


def _parse_mac(mac: str | bytes | None) -> bytes:
    if mac is None:
        mac = DEFAULT_MAC
    if isinstance(mac, bytes | bytearray):
        if len(mac) != 6:
            raise ValueError(f"a MAC address has 6 bytes, not {len(mac)}")
        return bytes(mac)
    try:
        raw = bytes(int(p, 16) for p in mac.replace("-", ":").split(":"))
    except ValueError:
        raw = b""
    if len(raw) != 6:
        raise ValueError(f"bad MAC address {mac!r} (try 52:54:00:12:34:56)")
    return raw


class VirtioNet(VirtioDevice):
    """The card. ``transmit``/``transmit_gso`` are the wire out (the board sets them from the
    backend's ``send``/``send_gso``); :meth:`run` is the wire in."""

    device_id = VIRTIO_ID_NET
    offered = int(OFFERED)
    name = "virtio-net-pci"

    def __init__(self, memory: PhysicalMemory, irq: IrqController | None, mac: str | bytes | None = None,
                 line: int = IRQ_LINE, io_base: int = IO_BASE, mem_base: int = MEM_BASE) -> None:
        super().__init__(memory, irq, line, queues=2)
        self.mac = _parse_mac(mac)
        self.link_up = True
        self.transmit: Deliver = lambda frame: None
        self.transmit_gso: DeliverGso = self._no_offload_wire
        self.transport = VirtioPci(self, TRANSITIONAL_NET, CLASS_ETHERNET, io_base=io_base, mem_base=mem_base,
                                   irq_line=line, name="virtio-net")
        self.pci = self.transport.pci
        self.counters.update(dict.fromkeys(
            ("rx_frames", "rx_bytes", "rx_gso", "rx_software_gso", "rx_not_ready", "rx_no_buffer", "rx_too_long",
             "rx_offload_refused",
             "tx_frames", "tx_bytes", "tx_gso", "tx_csum", "tx_bad_header", "tx_offload_refused", "tx_too_long", "tx_wire_no_offload"), 0))
        self._mode_changed = trio.Event()
        self._rx_offloads = False  # what the running backend.run was given
        self._pump: Callable[[], None] = lambda: None  # the running backend's pump

    # -- the device's rules ------------------------------------------------------------------------

    def check_features(self, accepted: int) -> str | None:
        if accepted & Feature.NET_HOST_TSO4 and not accepted & Feature.NET_CSUM:
            return "HOST_TSO4 without CSUM"
        if accepted & Feature.NET_GUEST_TSO4 and not accepted & Feature.NET_GUEST_CSUM:
            return "GUEST_TSO4 without GUEST_CSUM"
        return None

    def config_bytes(self) -> bytes:
        return self.mac + struct.pack("<HH", NET_S_LINK_UP if self.link_up else 0, 1)

    @property
    def hdr_len(self) -> int:
        """The header size this driver speaks (§5.1.6.1)."""
        modern = self.has(Feature.VERSION_1) or self.has(Feature.NET_MRG_RXBUF)
        return HDR_LEN if modern else HDR_LEN_LEGACY

    def set_link(self, up: bool) -> None:
        """Plug or unplug the cable: the status field changes and the driver is told."""
        if up != self.link_up:
            self.link_up = up
            self.config_changed()

    def negotiated(self) -> list[str]:
        """The agreed feature names (for `info network` and /tcp/stats)."""
        return feature_names(self.features)

    def stats(self) -> dict[str, int]:
        return dict(self.counters)

    def info(self) -> dict[str, Any]:
        """What the monitor shows: offered and negotiated features, status, why a reset is needed."""
        return {"offered": feature_names(self.offered), "negotiated": self.negotiated(),
                "status": int(self.status), "legacy": self.legacy, "error": self.error}

    def on_driver_ok(self) -> None:
        self._check_mode()
        # Frames the driver queued for sending before DRIVER_OK go now.
        self.run_safely(self._transmit_all)

    def on_reset(self) -> None:
        self._check_mode()

    def _wants_offloads(self) -> bool:
        return self.driver_ok and bool(self.features & (Feature.NET_GUEST_CSUM | Feature.NET_GUEST_TSO4))

    def _check_mode(self) -> None:
        if self._wants_offloads() != self._rx_offloads:
            self._mode_changed.set()

    # -- transmit ----------------------------------------------------------------------------------

    def _no_offload_wire(self, hdr: VnetHdr, frame: bytes) -> None:
        """A wire that cannot finish offloads: the frame is lost (and counted)."""
        self.counters["tx_wire_no_offload"] += 1

    def queue_notify(self, index: int) -> None:
        if index == TX and self._transmit_all():
            self._pump()  # the host's answer, if it is already there (Backend.pump)
        # RX kicks need nothing: frames are placed as they arrive, never held back

    def _transmit_all(self) -> bool:
        """Every chain the driver offered, sent; whether there was any."""
        q = self.queues[TX]
        if not self.ready(q):
            return False
        used = []
        try:
            while (chain := q.pop()) is not None:
                data = chain.read(self.dma, GSO_MAX + HDR_LEN + 1)
                used.append((chain.head, 0))
                self._transmit_one(data)
        finally:
            self.used(q, used)
        return bool(used)

    def _transmit_one(self, data: bytes) -> None:
        c = self.counters
        n = self.hdr_len
        try:
            hdr = VnetHdr.unpack(data, n)
        except DecodeError:
            c["tx_bad_header"] += 1
            return
        frame = data[n:]
        if len(frame) > GSO_MAX:
            c["tx_too_long"] += 1
            return
        if hdr.is_gso or hdr.needs_csum:
            if (hdr.needs_csum and not self.has(Feature.NET_CSUM)) or \
                    (hdr.is_gso and (hdr.gso_type is not GsoType.TCPV4 or not self.has(Feature.NET_HOST_TSO4))):
                c["tx_offload_refused"] += 1
                return
            c["tx_gso" if hdr.is_gso else "tx_csum"] += 1
            c["tx_frames"] += 1
            c["tx_bytes"] += len(frame)
            self.transmit_gso(hdr, frame)
            return
        if len(frame) > ETH_MAX:
            c["tx_too_long"] += 1
            return
        c["tx_frames"] += 1
        c["tx_bytes"] += len(frame)
        self.transmit(frame)

    # -- receive -----------------------------------------------------------------------------------

    def receive(self, frame: bytes) -> bool:
        """A complete frame from the wire (the backend's ``deliver``); True if it was placed."""
        if len(frame) > ETH_MAX:
            self.counters["rx_too_long"] += 1
            return False
        return self._receive(VnetHdr(), frame)

    def receive_gso(self, hdr: VnetHdr, frame: bytes) -> bool:
        """A large or unchecksummed frame with its header (the backend's ``deliver_gso``)."""
        c = self.counters
        if hdr.is_gso and hdr.gso_type is GsoType.TCPV4 and not self.has(Feature.NET_GUEST_TSO4):
            # A backend may hand over large frames whenever it has a deliver_gso, which the card
            # gives it for GUEST_CSUM alone too: the segments the driver cannot take whole are
            # cut here, as a card without large receive would see them on its wire. (Refusing
            # them instead loses every large frame, retransmissions included: a hang.)
            c["rx_software_gso"] += 1
            try:
                pieces = wire_frames(hdr, frame)
            except DecodeError:
                c["rx_offload_refused"] += 1
                return False
            placed = True
            for piece in pieces:
                placed = self.receive(piece) and placed
            return placed
        if (hdr.needs_csum and not self.has(Feature.NET_GUEST_CSUM)) or \
                (hdr.is_gso and (hdr.gso_type is not GsoType.TCPV4 or not self.has(Feature.NET_GUEST_TSO4))):
            c["rx_offload_refused"] += 1
            return False
        if len(frame) > (GSO_MAX if hdr.is_gso else ETH_MAX):
            c["rx_too_long"] += 1
            return False
        if hdr.is_gso:
            c["rx_gso"] += 1
        return self._receive(hdr, frame)

    def _receive(self, hdr: VnetHdr, frame: bytes) -> bool:
        q = self.queues[RX]
        if not self.ready(q):
            self.counters["rx_not_ready"] += 1
            return False
        placed = [False]

        def work() -> None:
            placed[0] = self._place(hdr, frame)

        self.run_safely(work)
        return placed[0]

    def _place(self, hdr: VnetHdr, frame: bytes) -> bool:
        q = self.queues[RX]
        n = self.hdr_len
        total = n + len(frame)
        merge = self.has(Feature.NET_MRG_RXBUF)
        chains = []
        room = 0
        first = q.pop()
        if first is not None:
            chains.append(first)
            room = first.write_size
            # With MRG_RXBUF, as many more buffers as the frame needs (guessed from the first's
            # size and popped at once; any popped beyond the need go back).
            while merge and room < total:
                more = q.pop_many(-(-(total - room) // max(first.write_size, 1)))
                if not more:
                    break
                for i, chain in enumerate(more):
                    if room >= total:
                        q.unpop(len(more) - i)
                        break
                    chains.append(chain)
                    room += chain.write_size
        if room < total:
            q.unpop(len(chains))
            self.counters["rx_no_buffer"] += 1
            return False
        head = hdr.pack(n, num_buffers=len(chains))
        data = memoryview(head + frame)
        used = []
        pieces: list[tuple[int, int]] = []  # (addr, len) in frame order, over every chain
        left = len(data)
        for chain in chains:
            w = chain.writable
            if len(w) == 1:  # a driver's receive buffer: one descriptor
                addr, size = w[0]
                take = size if size < left else left
                if take > 0:
                    if pieces and pieces[-1][0] + pieces[-1][1] == addr:  # adjacent: one stretch
                        pieces[-1] = (pieces[-1][0], pieces[-1][1] + take)
                    else:
                        pieces.append((addr, take))
                    used.append((chain.head, take))
                    left -= take
                else:
                    used.append((chain.head, 0))
                continue
            written = 0
            for addr, size in w:
                take = min(size, left - written)
                if take <= 0:
                    break
                pieces.append((addr, take))
                written += take
            used.append((chain.head, written))
            left -= written
        # One DMA write per stretch of adjacent buffers (a driver's slots usually are), not one
        # per 2 KiB buffer of a 64 KiB frame.
        pos = 0
        for addr, size in runs(pieces):
            self.dma.write(addr, data[pos:pos + size])
            pos += size
        self.counters["rx_frames"] += 1
        self.counters["rx_bytes"] += len(frame)
        self.used(q, used)
        return True

    # -- the wire in -------------------------------------------------------------------------------

    async def run(self, backend: Any) -> None:
        """Run the backend's receive side for as long as the machine runs, restarting it with or
        without ``deliver_gso`` when the driver's receive offloads change."""
        while True:
            self._mode_changed = trio.Event()
            self._rx_offloads = self._wants_offloads()
            self._pump = getattr(backend, "pump", self._pump)
            with trio.CancelScope() as scope:
                async with trio.open_nursery() as nursery:
                    if self._rx_offloads:
                        nursery.start_soon(backend.run, self.receive, self.receive_gso)
                    else:
                        nursery.start_soon(backend.run, self.receive)
                    await self._mode_changed.wait()
                    scope.cancel()
