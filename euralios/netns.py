"""Private network namespaces with a tap: the guest's wire for packet tests (root only).

`Netns` makes a namespace and a persistent tap in it (the host side has an address there, so
nothing leaks onto the machine's own networks), runs host programs and sockets inside it, and
gives the guest its end of the tap. The pytest plugin's `euralios_tap` fixture is built on it;
tests that need more (dnsmasq, several daemons) use it directly.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003

__all__ = ["Netns", "netns_unavailable", "CLONE_NEWNET", "ETH_P_ALL"]


def netns_unavailable() -> str | None:
    """Why a private netns with a tap cannot be made here (None when it can)."""
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun on this host (TUN/TAP support is needed for a tap interface)"
    ip = shutil.which("ip")
    if ip is None:
        return "no `ip` command (install iproute2 for `ip netns`)"
    r = subprocess.run([ip, "netns", "help"], capture_output=True, text=True)
    if "Usage" not in r.stdout + r.stderr:
        return "this `ip` has no `netns` support"
    return None


class Netns:
    """A private network namespace with a persistent tap, the guest's wire (root only).

    The tap exists before the guest boots, so host daemons (dnsmasq) can bind to it first; the
    guest attaches to it from a thread that has entered the namespace (`backend()`)."""

    def __init__(self, name: str | None = None, tap: str | None = None, host_ip: str = "10.0.2.2",
                 prefix: int = 24) -> None:
        tag = uuid.uuid4().hex[:6]
        self.name = name or f"eurns-{tag}"
        self.tap = tap or f"eurtap{tag[:4]}"
        self.host_ip = host_ip
        self.prefix = prefix
        self.ip = shutil.which("ip") or "ip"
        self.created = False
        self._resources: list[Any] = []

    # -------------------------------------------------------------- life
    def create(self) -> Netns:
        if os.geteuid() != 0:
            raise PermissionError("a network namespace and a tap need root (CAP_NET_ADMIN): run the tests as root")
        subprocess.run([self.ip, "netns", "add", self.name], check=True, capture_output=True)
        self.created = True
        try:
            for cmd in (["link", "set", "lo", "up"],
                        ["tuntap", "add", "dev", self.tap, "mode", "tap"],
                        ["addr", "add", f"{self.host_ip}/{self.prefix}", "dev", self.tap],
                        ["link", "set", self.tap, "up"]):
                subprocess.run([self.ip, "-n", self.name, *cmd], check=True, capture_output=True)
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self) -> None:
        """Close what we opened in it and remove the namespace (its tap goes with it)."""
        for r in reversed(self._resources):
            try:
                r.close()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
        self._resources.clear()
        if self.created:
            subprocess.run([self.ip, "netns", "del", self.name], capture_output=True)
            self.created = False

    def __enter__(self) -> Netns:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.delete()

    # -------------------------------------------------------------- inside it
    def run(self, fn: Callable[[], T]) -> T:
        """Call fn() in a thread that has entered the namespace (sockets and taps it opens stay
        in the namespace whichever thread uses them afterwards)."""
        result: list[Any] = []
        error: list[BaseException] = []

        def body() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns: {os.strerror(err)}")
                finally:
                    os.close(fd)
                result.append(fn())
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                error.append(e)

        t = threading.Thread(target=body, name=f"netns-{self.name}")
        t.start()
        t.join()
        if error:
            raise error[0]
        return result[0]

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
        """A socket that lives in the namespace (closed with it)."""
        s = self.run(lambda: socket.socket(family, type, proto))
        self._resources.append(s)
        return s

    def packet_socket(self) -> socket.socket:
        """An AF_PACKET socket on the tap: every frame to and from the guest, and a way to send."""
        s = self.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((self.tap, ETH_P_ALL))
        return s

    def backend(self, pcap: str | None = None, impair: str | None = None) -> Any:
        """The guest's end of the tap (machine.netdev's tap backend, as `--net tap:NAME`)."""
        from machine.netdev import make_backend

        return self.run(lambda: make_backend(f"tap:{self.tap}", pcap=pcap, impair=impair))

    def host_mac(self) -> str:
        """The tap's MAC address on the namespace side."""
        out = subprocess.run([self.ip, "-n", self.name, "-o", "link", "show", self.tap], capture_output=True,
                             text=True, check=True).stdout
        return out.split("link/ether", 1)[1].split()[0]

    def exec(self, cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run a host program inside the namespace to completion (text output captured)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        return subprocess.run([self.ip, "netns", "exec", self.name, *cmd], **kw)

    def popen(self, cmd: list[str], **kw: Any) -> subprocess.Popen[str]:
        """Start a host program inside the namespace (stopped when the namespace is deleted)."""
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.STDOUT)
        kw.setdefault("text", True)
        p = subprocess.Popen([self.ip, "netns", "exec", self.name, *cmd], **kw)
        self._resources.append(_Terminate(p))
        return p


class _Terminate:
    def __init__(self, p: subprocess.Popen[str]) -> None:
        self.p = p

    def close(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
