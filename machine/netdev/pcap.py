"""``--pcap FILE``: record every frame the NIC sends and receives, for Wireshark or tcpdump -r.

A wrapper backend: frames pass through unchanged and a copy of each goes to a classic pcap file
(link type Ethernet), written with scapy's PcapWriter and flushed after every frame so the file is
complete even if the emulator is killed. Classic pcap has no direction field; both directions are
in one file in the order they happened, as a capture on the guest's interface would show them.

With offloads the file shows frames as the guest sent them and as it was handed them -- a 64 KiB
TSO frame is one record, its TCP checksum still the pseudo-header's partial sum -- which is what
tcpdump shows on a Linux interface with offloads on (Wireshark marks such checksums "unverified,
partial"). The snapshot length is large enough for such frames.
"""

from __future__ import annotations

from pathlib import Path

from machine.netdev import Backend, BackendError, Deliver, DeliverGso, Wrapper
from proto.wire.vnet import VnetHdr

DLT_EN10MB = 1
SNAPLEN = 262144  # tcpdump's default: whole 64 KiB GSO frames fit


class PcapBackend(Wrapper):
    """Tee both directions of ``inner`` into a pcap file."""

    def __init__(self, inner: Backend, path: str | Path) -> None:
        super().__init__(inner)
        from scapy.utils import PcapWriter  # scapy is slow to import: only when capturing

        self.path = Path(path)
        try:
            self.writer: PcapWriter | None = PcapWriter(str(self.path), linktype=DLT_EN10MB, sync=True,
                                                         snaplen=SNAPLEN)
        except OSError as e:
            raise BackendError(f"--pcap {path}: {e.strerror}") from None
        self.frames = 0

    def _record(self, frame: bytes) -> None:
        if self.writer is not None:
            self.writer.write(bytes(frame))
            self.frames += 1

    async def run(self, deliver: Deliver, deliver_gso: DeliverGso | None = None) -> None:
        def tee(frame: bytes) -> None:
            self._record(frame)
            deliver(frame)

        tee_gso: DeliverGso | None = None
        if deliver_gso is not None:
            gso = deliver_gso

            def tee_gso(hdr: VnetHdr, frame: bytes) -> None:
                self._record(frame)
                gso(hdr, frame)

        await self.inner.run(tee, tee_gso)

    def send(self, frame: bytes) -> None:
        self._record(frame)
        self.inner.send(frame)

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        self._record(frame)
        self.inner.send_gso(hdr, frame)

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.inner.stats, pcap_frames=self.frames)

    def close(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()
        super().close()
