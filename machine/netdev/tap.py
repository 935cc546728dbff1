"""``--net tap:NAME``: the NIC's wire is a Linux TAP interface, as with QEMU's ``-netdev tap``.

Opening /dev/net/tun and asking for ``IFF_TAP | IFF_NO_PI`` attaches to the tap NAME, creating it
(for as long as the file stays open) if it does not exist, and the interface is brought up. The
host then sees an ordinary Ethernet interface: add it to a bridge, give it an address, run dnsmasq
or tcpdump on it. Every read from the fd is one whole frame the host sent to the guest; every write
is one frame from the guest. Creating a tap needs CAP_NET_ADMIN; attaching to a persistent tap
made for you (``ip tuntap add mode tap user $USER``) does not.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

import trio

from machine.netdev import Backend, BackendError, Deliver

TUN_DEVICE = "/dev/net/tun"
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
IFNAMSIZ = 16
READ_SIZE = 65536
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


class TapBackend(Backend):
    """A TAP interface: a non-blocking fd whose reads and writes are whole Ethernet frames."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.spec = f"tap:{name}"
        raw = check_ifname(name, self.spec)
        self.error = ""
        try:
            fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BackendError(f"--net {self.spec}: {TUN_DEVICE} not found (no TUN/TAP support here); "
                               "use --net user") from None
        except PermissionError:
            raise denied(self.spec, "CAP_NET_ADMIN") from None
        try:
            ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", raw, IFF_TAP | IFF_NO_PI))
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

    async def run(self, deliver: Deliver) -> None:
        stats = self.counters
        while self.fd >= 0:
            await trio.lowlevel.wait_readable(self.fd)
            for _ in range(BURST):
                try:
                    frame = os.read(self.fd, READ_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    # The interface went away (deleted under us): the cable is cut. Stop reading
                    # rather than spin on an fd that stays readable with an error.
                    self.error = e.strerror or str(e)
                    await trio.sleep_forever()
                if not frame:
                    break
                stats["rx_frames"] += 1
                stats["rx_bytes"] += len(frame)
                deliver(frame)

    def send(self, frame: bytes) -> None:
        try:
            os.write(self.fd, frame)
        except OSError:
            # EAGAIN (host not reading), EIO (interface down), EBADF (closed): the frame is lost
            self.counters["tx_dropped"] += 1
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
