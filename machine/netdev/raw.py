"""``--net raw:NAME``: the NIC shares an existing host interface through an AF_PACKET socket.

The guest becomes one more station on NAME's Ethernet segment (a veth end, a bridge port, a
physical NIC): frames it sends leave through NAME, and every frame NAME receives is offered to it
(the NIC model's own address filter then picks what the guest sees). The socket puts NAME in
promiscuous mode for as long as it is open, because the guest's MAC is not the interface's. The
socket also sees the host's own outgoing frames, including the guest's; those are skipped, or the
guest would hear itself. A consequence shared with macvtap: the host itself cannot talk to the
guest through NAME. Needs CAP_NET_RAW.
"""

from __future__ import annotations

import errno
import socket
import struct

import trio

from machine.netdev import Backend, BackendError, Deliver
from machine.netdev.tap import BURST, READ_SIZE, check_ifname, denied

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23  # Linux 4.20+: the kernel skips our outgoing copies for us
PACKET_OUTGOING = 4
RCVBUF = 1 << 20


class RawBackend(Backend):
    """An AF_PACKET SOCK_RAW socket bound to one interface, non-blocking."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.spec = f"raw:{name}"
        check_ifname(name, self.spec)
        self.name = name
        self.error = ""
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
        except OSError as e:
            sock.close()
            if e.errno in (errno.EPERM, errno.EACCES):
                raise denied(self.spec, "CAP_NET_RAW") from None
            raise BackendError(f"--net {self.spec}: {e.strerror}") from None
        self.sock: socket.socket | None = sock

    async def run(self, deliver: Deliver) -> None:
        stats = self.counters
        while self.sock is not None:
            sock = self.sock
            await trio.lowlevel.wait_readable(sock)
            for _ in range(BURST):
                try:
                    frame, addr = sock.recvfrom(READ_SIZE)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as e:
                    self.error = e.strerror or str(e)  # interface gone: the cable is cut
                    await trio.sleep_forever()
                if addr[2] == PACKET_OUTGOING:
                    continue
                stats["rx_frames"] += 1
                stats["rx_bytes"] += len(frame)
                deliver(frame)

    def send(self, frame: bytes) -> None:
        if self.sock is None:
            self.counters["tx_dropped"] += 1
            return
        try:
            self.sock.send(frame)
        except OSError:
            # full buffer, frame over the MTU, interface down: lost, as on a wire
            self.counters["tx_dropped"] += 1
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
