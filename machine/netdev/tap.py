"""``--net tap:NAME``: the NIC's wire is a Linux TAP interface, as with QEMU's ``-netdev tap``.

Opening /dev/net/tun and asking for ``IFF_TAP | IFF_NO_PI`` attaches to the tap NAME, creating it
(for as long as the file stays open) if it does not exist, and the interface is brought up. The
host then sees an ordinary Ethernet interface: add it to a bridge, give it an address, run dnsmasq
or tcpdump on it. Every read from the fd is one whole frame the host sent to the guest; every write
is one frame from the guest. Creating a tap needs CAP_NET_ADMIN; attaching to a persistent tap
made for you (``ip tuntap add mode tap user $USER``) does not.

Offloads, as QEMU's tap netdev uses them: the fd is opened with ``IFF_VNET_HDR`` and a 12-byte
header (``TUNSETVNETHDRSZ``), so every read and write starts with a virtio-net header
(:mod:`proto.wire.vnet`). A 64 KiB TSO frame from the guest (``send_gso``) goes to the kernel
whole, and the kernel segments and checksums it (or hands it to a local socket as it is). What the
host sends depends on ``TUNSETOFFLOAD``, set when ``run`` starts: with a ``deliver_gso``,
``TUN_F_CSUM | TUN_F_TSO4``, so the host's TSO/GRO frames (up to 64 KiB, checksum partial) reach
the guest whole; without one, 0, so the kernel does all of it and the card sees exactly the frames
it saw before offloads (anything large that still arrives is segmented here). A kernel that
refuses the header or the offloads leaves the work to software; ``offload_note`` says why.
Frames are read with room for 64 KiB plus the header.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

import trio

from machine.netdev import BackendError, Deliver, DeliverGso, HostQueueBackend
from proto.wire import DecodeError
from proto.wire.gso import check
from proto.wire.vnet import HDR_LEN, HDR_LEN_LEGACY, VnetHdr

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFNAMSIZ = 16
READ_SIZE = 65536
RX_SIZE = HDR_LEN + 65536 + 256  # a 64 KiB GSO frame from the host, its header, VLAN tags
BURST = 64  # frames read per wakeup before letting other tasks run


def check_ifname(name: str, spec: str) -> bytes:
    """An interface name as the kernel accepts it (1-15 bytes, no '/', ':' or blanks)."""
    raw = name.encode()
    if not 0 < len(raw) < IFNAMSIZ or any(c in name for c in "/: \t\n") or name in (".", ".."):
        raise ValueError(f"--net {spec}: {name!r} is not a valid interface name (1-15 characters)")
    return raw


def denied(spec: str, capability: str) -> BackendError:
    """The one-line refusal every privileged backend gives when the user lacks rights."""
    return BackendError(f"--net {spec}: permission denied (needs root or {capability}); use --net user")


class TapBackend(HostQueueBackend):
    """A TAP interface: a non-blocking fd whose reads and writes are whole Ethernet frames."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.spec = f"tap:{name}"
        raw = check_ifname(name, self.spec)
        try:
            fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BackendError(f"--net {self.spec}: {TUN_DEVICE} not found (no TUN/TAP support here); "
                               "use --net user") from None
        except PermissionError:
            raise denied(self.spec, "CAP_NET_ADMIN") from None
        try:
            ifr = self._attach(fd, raw)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EPERM, errno.EACCES):
                raise denied(self.spec, "CAP_NET_ADMIN") from None
            if e.errno == errno.EBUSY:
                raise BackendError(f"--net {self.spec}: {name} is in use by another program") from None
            if e.errno == errno.EINVAL:
                raise BackendError(f"--net {self.spec}: {name} exists and is not a tap interface") from None
            raise BackendError(f"--net {self.spec}: {e.strerror}") from None
        self.fd = fd
        self.name = ifr[:IFNAMSIZ].rstrip(b"\0").decode()
        self._bring_up()

    def _attach(self, fd: int, name: bytes) -> bytes:
        """TUNSETIFF with the virtio-net header if the kernel takes it, else without.

        ``hdr_size`` is then 12 (TUNSETVNETHDRSZ accepted), 10 (the kernel's default size) or 0."""
        self.hdr_size = 0
        self.offloads = 0
        self.offload_note = ""
        try:
            ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name, IFF_TAP | IFF_NO_PI))
            self.offload_note = "the kernel refused IFF_VNET_HDR: offloads done in software"
            return ifr
        try:
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", HDR_LEN))
            self.hdr_size = HDR_LEN
        except OSError:
            self.hdr_size = HDR_LEN_LEGACY
        self._plain = VnetHdr().pack(self.hdr_size)
        return ifr

    def _set_offloads(self, large: bool) -> None:
        """What the host may hand us: large unchecksummed frames only if the card takes them."""
        if not self.hdr_size:
            return
        wanted = TUN_F_CSUM | TUN_F_TSO4 if large else 0
        try:
            fcntl.ioctl(self.fd, TUNSETOFFLOAD, wanted)
            self.offloads = wanted
        except OSError as e:
            self.offloads = 0
            self.offload_note = f"TUNSETOFFLOAD refused ({e.strerror}): the kernel segments for us"

    def _bring_up(self) -> None:
        """Set IFF_UP, as ``ip link set NAME up`` would; a tap that is down drops every frame.

        Without the right to do so (a persistent tap prepared by an administrator) the tap is used
        as it is: whoever made it decides whether it is up."""
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                ifr = struct.pack("16sH22x", self.name.encode(), 0)
                flags = struct.unpack_from("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
                if not flags & IFF_UP:
                    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH22x", self.name.encode(), flags | IFF_UP))
        except OSError:
            pass

    async def run(self, deliver: Deliver, deliver_gso: DeliverGso | None = None) -> None:
        self._set_offloads(deliver_gso is not None)
        await super().run(deliver, deliver_gso)

    def source(self) -> int | None:
        return self.fd if self.fd >= 0 else None

    def read_burst(self, deliver: Deliver, deliver_gso: DeliverGso | None) -> None:
        """Up to BURST frames that can be read without waiting."""
        size, skip = (RX_SIZE, self.hdr_size) if self.hdr_size else (READ_SIZE, 0)
        fd = self.fd
        for _ in range(BURST):
            try:
                data = os.read(fd, size)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                self.error = e.strerror or str(e)
                return
            if len(data) <= skip:
                return
            self.deliver_read(data, skip, deliver, deliver_gso)

    def send(self, frame: bytes) -> None:
        try:
            if self.hdr_size:
                os.writev(self.fd, (self._plain, frame))
            else:
                os.write(self.fd, frame)
        except OSError:
            # EAGAIN (host not reading), EIO (interface down), EBADF (closed): the frame is lost
            self.counters["tx_dropped"] += 1
            return
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        """The frame whole to the kernel, which segments and checksums it; software if the
        kernel took no header, or for GSO without NEEDS_CSUM (which not every kernel accepts)."""
        if not self.hdr_size or (hdr.is_gso and not hdr.needs_csum):
            super().send_gso(hdr, frame)
            return
        try:
            check(hdr, frame)
        except DecodeError:
            self.count("tx_bad_offload")
            return
        try:
            os.writev(self.fd, (hdr.pack(self.hdr_size), frame))
        except OSError as e:
            self.count("tx_bad_offload" if e.errno == errno.EINVAL else "tx_dropped")
            return
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)

    def close(self) -> None:
        fd, self.fd = getattr(self, "fd", -1), -1
        if fd >= 0:
            try:
                trio.lowlevel.notify_closing(fd)
            except RuntimeError:
                pass  # not inside trio: nobody can be waiting on it
            os.close(fd)
