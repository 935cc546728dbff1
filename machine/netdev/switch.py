"""``--net switch:NAME``: machines on one host joined by a virtual Ethernet switch, no root needed.

Like QEMU's socket/dgram netdev, the wire is a Unix datagram socket; unlike it, any number of
``euralios`` instances can join without agreeing on addresses beforehand. One of them is the
**hub**: it holds the well-known address of the switch NAME (Linux: the abstract socket
``@euralios-switch/NAME``, which needs no file and vanishes with its owner; elsewhere a socket
file under the temp directory). Every other member binds a private address and sends its frames
to the hub, which forwards them -- to the member that owns the destination MAC when it has learnt
it (a learning switch), else to everyone -- and delivers what is meant for its own guest.

Datagrams carry one type byte before the payload: ``F`` a frame, ``J`` join, ``L`` leave, ``H``
"the hub is leaving", ``G`` a frame with offload work left (a 12-byte virtio-net header, then
the frame: up to 64 KiB, see :mod:`proto.wire.vnet`). Why a hub rather than a mesh: a mesh needs every member to find every other,
which means a directory to scan; with a hub the only shared fact is one name.

Hand-over: the first instance to bind the name becomes the hub. A hub that closes releases the
name first and then tells every member (``H``); each member tries to bind the name, one wins and
the others join it. A hub that dies without a word is noticed by the first member that fails to
send to it, which does the same. Frames in flight during a hand-over are lost, as when a real
switch reboots. Nothing polls: every socket is awaited with ``wait_readable``.

Offloads: a frame with work left crosses the switch whole, as one ``G`` datagram, to every port
it goes to; the port at the end cuts it into checksummed segments (:mod:`proto.wire.gso`) if its
card takes only plain frames (its ``run`` got no ``deliver_gso``). So a 64 KiB TSO frame is one
datagram between two virtio guests, an RTL8139 guest on the same switch sees ordinary frames,
and no port's socket queue (net.unix.max_dgram_qlen datagrams, 10 by default) meets a burst of
45 segments that it would mostly drop.

Abstract sockets have no file permissions: any process of this host can join a switch (as any
can reach a QEMU socket netdev on localhost); the socket-file fallback has the file's.

Addresses are not the switch's business: give each guest its own with the front door's ``--ip``
(e.g. ``--ip 10.0.3.5/24``) -- a DHCP server program a guest could run is not written yet.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import tempfile
import uuid

import trio

from machine.netdev import Backend, BackendError, Deliver, DeliverGso
from proto.wire import DecodeError
from proto.wire.gso import MAX_GSO_FRAME, check, wire_frames
from proto.wire.vnet import HDR_LEN, VnetHdr

FRAME, JOIN, LEAVE, HUB_LEAVING, GSO_FRAME = b"F", b"J", b"L", b"H", b"G"
MAX_DATAGRAM = 1 + HDR_LEN + MAX_GSO_FRAME
MAX_MEMBERS = 64
BURST = 64
_ABSTRACT = sys.platform == "linux"

Address = str | bytes


def hub_address(name: str) -> Address:
    """The switch's well-known address."""
    if _ABSTRACT:
        return b"\0euralios-switch/" + name.encode()
    return os.path.join(tempfile.gettempdir(), f"euralios-switch-{name}.sock")


def _member_address(name: str) -> Address:
    tag = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
    if _ABSTRACT:
        return b"\0euralios-switch/" + name.encode() + b"/" + tag.encode()
    return os.path.join(tempfile.gettempdir(), f"euralios-switch-{name}-{tag}.sock")


def check_name(name: str) -> str:
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"--net switch:{name}: a switch name is 1-64 letters, digits, '-', '_' or '.'")
    return name


class SwitchBackend(Backend):
    """One port of the switch NAME; ``is_hub`` says whether this instance forwards for the others."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = check_name(name)
        self.spec = f"switch:{name}"
        self.hub_addr = hub_address(name)
        self.sock: socket.socket | None = None
        self.addr: Address = b""
        self.is_hub = False
        self.members: dict[Address, None] = {}  # hub only: member addresses, in join order
        self.macs: dict[bytes, Address | None] = {}  # hub only: MAC -> member (None: our guest)
        self._deliver: Deliver | None = None
        self._deliver_gso: DeliverGso | None = None
        self.events = dict.fromkeys(("forwarded", "flooded", "dropped", "hub_changes"), 0)
        self._elect()

    @property
    def stats(self) -> dict[str, int]:
        return {**self.counters, **self.events, "members": len(self.members)}

    # ------------------------------------------------------------------ roles

    def _bind(self, addr: Address) -> socket.socket | None:
        """A datagram socket bound to ``addr``, or None if the address is taken."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.bind(addr)
        except OSError as e:
            s.close()
            if e.errno == errno.EADDRINUSE:
                return None
            raise BackendError(f"--net {self.spec}: cannot bind: {e.strerror or e}") from None
        s.setblocking(False)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        return s

    def _elect(self) -> None:
        """Become the hub if the name is free, else (stay) a member and join the hub.

        Binding the name is the election: the kernel lets exactly one socket have it."""
        for _ in range(5):
            s = self._bind(self.hub_addr)
            if s is None and not _ABSTRACT and self._stale_file():
                continue
            if s is not None:
                self._swap(s, self.hub_addr, hub=True)
                return
            if self.sock is None or self.is_hub:
                member = self._bind(_member_address(self.name))
                if member is None:
                    continue
                self._swap(member, member.getsockname(), hub=False)
            if self._to_hub(JOIN):
                return
            # the hub vanished between our two attempts: try again
        raise BackendError(f"--net {self.spec}: cannot join or become the hub")

    def _stale_file(self) -> bool:
        """A socket file left by a hub that crashed (nobody receives on it): remove it."""
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            probe.connect(self.hub_addr)
            return False
        except OSError as e:
            if e.errno == errno.ECONNREFUSED:
                try:
                    os.unlink(self.hub_addr)
                except OSError:
                    pass
                return True
            return False
        finally:
            probe.close()

    def _swap(self, s: socket.socket, addr: Address, hub: bool) -> None:
        """Start using ``s``; the run loop, waiting on the old socket, is woken to follow."""
        old = self.sock
        self.sock, self.addr, self.is_hub = s, addr, hub
        self.members.clear()
        self.macs.clear()
        if old is not None:
            self.events["hub_changes"] += 1
            self._close_socket(old)

    @staticmethod
    def _close_socket(s: socket.socket) -> None:
        try:
            trio.lowlevel.notify_closing(s)
        except RuntimeError:
            pass  # not inside trio: nobody is waiting on it
        try:
            addr = s.getsockname()
        except OSError:
            addr = None
        s.close()
        if isinstance(addr, str) and addr:
            try:
                os.unlink(addr)  # a socket file (non-Linux): abstract names need no cleanup
            except OSError:
                pass

    def _to_hub(self, message: bytes) -> bool:
        """Send to the hub; False if it is gone (nobody bound to the name any more)."""
        assert self.sock is not None
        try:
            self.sock.sendto(message, self.hub_addr)
            return True
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            self.events["dropped"] += 1  # full buffer at the hub: the frame is lost
            return True

    # ------------------------------------------------------------------ frames

    def send(self, frame: bytes) -> None:
        if self.sock is None:
            self.counters["tx_dropped"] += 1
            return
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)
        if self.is_hub:
            self._forward(frame, None)
        elif not self._to_hub(FRAME + frame):
            try:
                self._elect()  # the hub died: take over or join whoever did, then resend
            except BackendError:
                self.counters["tx_dropped"] += 1
                return
            if self.is_hub:
                self._forward(frame, None)
            else:
                self._to_hub(FRAME + frame)

    def send_gso(self, hdr: VnetHdr, frame: bytes) -> None:
        """A frame with offload work left: across the switch whole, cut up only by a port whose
        card needs plain frames."""
        if self.sock is None:
            self.counters["tx_dropped"] += 1
            return
        try:
            check(hdr, frame)
        except DecodeError:
            self.count("tx_bad_offload")
            return
        self.counters["tx_frames"] += 1
        self.counters["tx_bytes"] += len(frame)
        message = GSO_FRAME + hdr.pack(HDR_LEN) + frame
        if self.is_hub:
            self._forward(frame, None, hdr)
        elif not self._to_hub(message):
            try:
                self._elect()
            except BackendError:
                self.counters["tx_dropped"] += 1
                return
            if self.is_hub:
                self._forward(frame, None, hdr)
            else:
                self._to_hub(message)

    def _forward(self, frame: bytes, origin: Address | None, hdr: VnetHdr | None = None) -> None:
        """Hub: deliver or pass on a frame from ``origin`` (None: our own guest); ``hdr`` for a
        frame with offload work left, which goes on whole."""
        if len(frame) < 14:
            return
        src = frame[6:12]
        if not src[0] & 1:
            self.macs[src] = origin
        dst = frame[:6]
        out = _Outgoing(frame, hdr)
        if not dst[0] & 1 and dst in self.macs:
            port = self.macs[dst]
            if port != origin:
                self.events["forwarded"] += 1
                self._port_send(port, out)
            return
        self.events["flooded"] += 1
        if origin is not None:
            self._port_send(None, out)
        for member in list(self.members):
            if member != origin:
                self._port_send(member, out)

    def _port_send(self, port: Address | None, out: _Outgoing) -> None:
        if port is None:
            if self._deliver is None:
                return
            if out.hdr is not None and self._deliver_gso is not None:
                self.counters["rx_frames"] += 1
                self.counters["rx_bytes"] += len(out.frame)
                self._deliver_gso(out.hdr, out.frame)
                return
            for piece in out.pieces():
                self._receive(piece)
            return
        assert self.sock is not None
        try:
            self.sock.sendto(FRAME + out.frame if out.hdr is None else out.gso_message(), port)
        except (ConnectionRefusedError, FileNotFoundError):
            self._drop_member(port)  # it went away without saying so
        except OSError:
            self.events["dropped"] += 1

    def _drop_member(self, member: Address) -> None:
        self.members.pop(member, None)
        for mac in [m for m, p in self.macs.items() if p == member]:
            del self.macs[mac]

    def _receive(self, frame: bytes) -> None:
        assert self._deliver is not None
        self.counters["rx_frames"] += 1
        self.counters["rx_bytes"] += len(frame)
        self._deliver(frame)

    def _datagram(self, data: bytes, sender: Address) -> None:
        kind, body = data[:1], data[1:]
        if self.is_hub:
            if kind in (FRAME, GSO_FRAME):
                if sender not in self.members:
                    self._join(sender)
                if sender not in self.members:
                    return
                if kind == FRAME:
                    self._forward(body, sender)
                else:
                    gso = self._gso_datagram(body)
                    if gso is not None:
                        self._forward(gso[1], sender, gso[0])
            elif kind == JOIN:
                self._join(sender)
            elif kind == LEAVE:
                self._drop_member(sender)
        elif kind == FRAME:
            if sender == self.hub_addr and self._deliver is not None:
                self._receive(body)
        elif kind == GSO_FRAME:
            gso = self._gso_datagram(body) if sender == self.hub_addr and self._deliver is not None else None
            if gso is not None:
                self._port_send(None, _Outgoing(gso[1], gso[0]))
        elif kind == HUB_LEAVING:
            try:
                self._elect()
            except BackendError:
                pass  # the next send() tries again

    def _gso_datagram(self, body: bytes) -> tuple[VnetHdr, bytes] | None:
        """A G datagram's header and frame, or None (counted) if another switch port sent nonsense."""
        try:
            hdr = VnetHdr.unpack(body, HDR_LEN)
            frame = body[HDR_LEN:]
            check(hdr, frame)
        except DecodeError:
            self.count("rx_bad_offload")
            return None
        return hdr, frame

    def _join(self, sender: Address) -> None:
        if not sender:
            return  # an unbound socket cannot be answered
        if sender not in self.members and len(self.members) < MAX_MEMBERS:
            self.members[sender] = None

    async def run(self, deliver: Deliver, deliver_gso: DeliverGso | None = None) -> None:
        self._deliver, self._deliver_gso = deliver, deliver_gso
        try:
            while True:
                sock = self.sock
                if sock is None:
                    await trio.sleep_forever()  # closed: the wire is cut
                try:
                    await trio.lowlevel.wait_readable(sock)
                except trio.ClosedResourceError:
                    continue  # replaced by an election: wait on the new socket
                for _ in range(BURST):
                    if self.sock is not sock:
                        break
                    try:
                        data, sender = sock.recvfrom(MAX_DATAGRAM)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if data:
                        self._datagram(data, sender)
        finally:
            self._deliver = self._deliver_gso = None

    def close(self) -> None:
        """Leave the switch: a member says goodbye; a hub gives up the name, then tells the
        members (from a throw-away socket) so that one of them takes over at once."""
        sock, self.sock = self.sock, None
        if sock is None:
            return
        if self.is_hub:
            members = list(self.members)
            self._close_socket(sock)
            if members:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as tell:
                    tell.setblocking(False)
                    for member in members:
                        try:
                            tell.sendto(HUB_LEAVING, member)
                        except OSError:
                            pass
        else:
            try:
                sock.sendto(LEAVE, self.hub_addr)
            except OSError:
                pass
            self._close_socket(sock)
        self.members.clear()
        self.macs.clear()


class _Outgoing:
    """One frame on its way: whole, and (cut at most once) as the segments a plain card gets."""

    __slots__ = ("frame", "hdr", "_pieces")

    def __init__(self, frame: bytes, hdr: VnetHdr | None) -> None:
        self.frame, self.hdr = frame, hdr
        self._pieces: list[bytes] | None = None

    def pieces(self) -> list[bytes]:
        if self._pieces is None:
            self._pieces = [self.frame] if self.hdr is None else wire_frames(self.hdr, self.frame)
        return self._pieces

    def gso_message(self) -> bytes:
        assert self.hdr is not None
        return GSO_FRAME + self.hdr.pack(HDR_LEN) + self.frame
