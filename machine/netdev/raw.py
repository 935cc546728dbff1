"""``--net raw:NAME``: the NIC shares an existing host interface through an AF_PACKET socket.

The guest becomes one more station on NAME's Ethernet segment (a veth end, a bridge port, a
physical NIC): frames it sends leave through NAME, and every frame NAME receives is offered to it
(the NIC model's own address filter then picks what the guest sees). The socket puts NAME in
promiscuous mode for as long as it is open, because the guest's MAC is not the interface's. The
socket also sees the host's own outgoing frames, including the guest's; those are skipped, or the
guest would hear itself. A consequence shared with macvtap: the host itself cannot talk to the
guest through NAME. Needs CAP_NET_RAW.

Offloads: the socket asks for ``PACKET_VNET_HDR``, so every frame read or written starts with the
10-byte virtio-net header (:mod:`proto.wire.vnet`). A TSO frame from the guest (``send_gso``) is
handed to the kernel whole, which segments it for NAME (or lets NAME's driver do it); a large
frame NAME received (GRO, or a veth peer's TSO) comes with its header and goes to ``deliver_gso``,
or is segmented and checksummed here when the card takes only plain frames. A kernel that refuses
the option leaves it all to software (``offload_note`` says so); large frames then arrive as the
kernel has them, as before offloads.
"""

from __future__ import annotations

import errno
import socket
import struct

import trio

from machine.netdev import BackendError, Deliver, DeliverGso, HostQueueBackend
from machine.netdev.tap import BURST, READ_SIZE, RX_SIZE, check_ifname, denied
from proto.wire import DecodeError
from proto.wire.gso import check
from proto.wire.vnet import HDR_LEN_LEGACY, VnetHdr

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20+: the kernel skips our outgoing copies for us
PACKET_OUTGOING = 4
PACKET_VNET_HDR = 15
_PLAIN = VnetHdr().pack(HDR_LEN_LEGACY)
RCVBUF = 1 << 20


class RawBackend(HostQueueBackend):
    """An AF_PACKET SOCK_RAW socket bound to one interface, non-blocking."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.spec = f"raw:{name}"
        check_ifname(name, self.spec)
        self.name = name
        try:
            ifindex = socket.if_nametoindex(name)
        except OSError:
            raise BackendError(f"--net {self.spec}: no such interface {name!r}") from None
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise denied(self.spec, "CAP_NET_RAW") from None
        try:
            sock.bind((name, ETH_P_ALL))
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b""))
            try:
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                pass  # older kernel: run() filters by packet type instead
            self.vnet = self._vnet_hdr(sock)
        except OSError as e:
            sock.close()
            if e.errno in (errno.EPERM, errno.EACCES):
                raise denied(self.spec, "CAP_NET_RAW") from None
            raise BackendError(f"--net {self.spec}: {e.strerror}") from None
        self.sock: socket.socket | None = sock

    def _vnet_hdr(self, sock: socket.socket) -> bool:
        """Ask for the virtio-net header on every frame; without it offloads are software."""
        self.offload_note = ""
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        except OSError as e:
            self.offload_note = f"PACKET_VNET_HDR refused ({e.strerror}): offloads done in software"
            return False
        return True

    def source(self) -> socket.socket | None:
        return self.sock

    def read_burst(self, deliver: Deliver, deliver_gso: DeliverGso | None) -> None:
        """Up to BURST frames that can be read without waiting (our own sends skipped)."""
        size, skip = (RX_SIZE, HDR_LEN_LEGACY) if self.vnet else (READ_SIZE, 0)
        sock = self.sock
        assert sock is not None
        for _ in range(BURST):
            try:
                data, addr = sock.recvfrom(size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.error = e.strerror or str(e)
                return
            if addr[2] == PACKET_OUTGOING or len(data) <= skip:
                continue
            self.deliver_read(data, skip, deliver, deliver_gso)

    def send(self, frame: bytes) -> None:
        if self.sock is None:
            self.counters["tx_dropped"] += 1
            return
        try:
            if self.vnet:
                self.sock.sendmsg((_PLAIN, frame))
            else:
                self.sock.send(frame)
        except OSError:
            # full buffer, frame over the MTU, interface down: lost, as on a wire
            self.counters["tx_dropped"] += 1
            return
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        """The frame whole to the kernel with its header (it segments for NAME); software if
        the socket has no header, or for GSO without NEEDS_CSUM."""
        if self.sock is None or not self.vnet or (hdr.is_gso and not hdr.needs_csum):
            super().send_gso(hdr, frame)
            return
        try:
            check(hdr, frame)
        except DecodeError:
            self.count("tx_bad_offload")
            return
        try:
            self.sock.sendmsg((hdr.pack(HDR_LEN_LEGACY), frame))
        except OSError as e:
            self.count("tx_bad_offload" if e.errno == errno.EINVAL else "tx_dropped")
            return
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)

    def close(self) -> None:
        sock, self.sock = getattr(self, "sock", None), None
        if sock is not None:
            try:
                trio.lowlevel.notify_closing(sock)
            except RuntimeError:
                pass
            sock.close()
