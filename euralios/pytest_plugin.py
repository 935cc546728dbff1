"""pytest fixtures for testing your own EuraliOS programs (installed with the package).

    async def test_hello(euralios_system):
        status = await euralios_system.run(my_main, ["hello"])
        assert status == 0
        assert "Hello" in euralios_system.output()

Tests must run under pytest-trio (set `trio_mode = true` in your pytest configuration).

Waiting: on conditions, never on the clock
------------------------------------------
A test that sleeps "to let things settle" is slow when the sleep is long and flaky when the
machine is busy. Wait for the thing itself:

* in-process work (guest threads, the emulated devices, a backend's tasks):
  `await trio.testing.wait_all_tasks_blocked()`, from the test or from a test's guest program,
  returns once every other task is waiting. A task asleep on a timer counts as waiting, so for
  work a timer will do (a delayed ACK) wait for its result instead. The PIT ticks every 55 ms,
  so a `cushion` (seconds every task must stay blocked) must be shorter than that; give one
  above the kernel's 5 ms when a program started with EXEC_IDLE (init's TCP/IP stack) must
  get its turn first.
* something the system says: `await wait_screen(system, pattern)` (a FullSystem's screen,
  woken by screen changes), `system.wait_for_output(pattern)` (the serial console),
  `process.ended.wait()`, a `kernel.klog.listeners` callback that sets a `trio.Event`.
* only where nothing announces the condition (a host program getting ready, a counter in
  another process): `await wait_until(predicate, timeout=..., what="...")` looks every
  `interval` seconds until `predicate()` is true (it may be async; inside a guest program pass
  `sleep=proc.sleep`), and on timeout fails the test saying what it waited for (plus
  `detail()`, e.g. a log file's text). `wait_until_blocking` is the same for synchronous tests
  (a CLI subprocess, tmux).

Packet tests: `euralios_tap`
----------------------------
The `euralios_tap` fixture puts a booted guest on a real Linux network: it makes a private
network namespace with a tap interface in it (the host side, 10.0.2.2/24, so nothing leaks onto
your machine's networks), boots the small system with its RTL8139 wired to that tap and the
network started (pci, rtl8139, tcp; static 10.0.2.15/24, gateway and DNS 10.0.2.2), and hands
the test a `TapGuest`:

    async def test_guest_answers_ping(euralios_tap):
        reply = await euralios_tap.exchange(
            Ether(dst=euralios_tap.guest_mac) / IP(src=euralios_tap.host_ip, dst=euralios_tap.guest_ip)
            / ICMP(id=7, seq=1),
            lambda f: ICMP in f and f[ICMP].type == 0 and f[ICMP].id == 7)
        assert reply[IP].src == euralios_tap.guest_ip

* `send(pkt)` puts a frame (scapy packet or bytes) on the wire towards the guest;
  `sniff(match, timeout)` returns the next frame *from the guest* for which `match(Ether)` is
  true; `exchange(pkt, match)` does both without a race. They use an AF_PACKET socket on the
  tap inside the namespace.
* `system` is the guest (euralios.boot.System: `await system.run(main)`, `output()`, `klog()`).
* `netns` is the `Netns`: `netns.exec([...])`/`netns.popen([...])` run host programs inside it
  (ping, dnsmasq, a server), `netns.socket(...)` makes a socket that lives in it (a host-side
  TCP server for the guest to connect to), `netns.run(fn)` calls fn inside it.
* The namespace's kernel owns 10.0.2.2: it answers the guest's ARP and pings, and it resets
  TCP segments you forge from 10.0.2.2 that it knows nothing about (harmless when you only
  watch the guest's answers, as in examples/test_packet_example.py).

Needs root (CAP_NET_ADMIN: namespaces and taps). The fixture skips, saying why, only when the
host has no /dev/net/tun or no usable `ip netns` (iproute2); as an ordinary user it fails with
the reason, so a CI run cannot go green by quietly skipping the network.
"""

from __future__ import annotations

import ctypes
import inspect
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio

from euralios.boot import System, boot
from euralios.std import Chunk, Handle, Message, abi

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
GUEST_MAC = "52:54:00:12:34:56"


@pytest.fixture
async def euralios_system() -> AsyncIterator[System]:
    """A booted small system (kernel and serial console), shut down after the test."""
    async with boot() as system:
        yield system


# ---------------------------------------------------------------------------------- namespaces

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


# ---------------------------------------------------------------------------------- the fixture

class TapGuest:
    """What `euralios_tap` hands a test: the guest, its addresses, and a packet-level view of
    the wire from the host side (see the module docstring)."""

    def __init__(self, netns: Netns, system: System, guest_ip: str, guest_mac: str) -> None:
        self.netns = netns
        self.system = system
        self.guest_ip = guest_ip
        self.guest_mac = guest_mac
        self.host_ip = netns.host_ip
        self.host_mac = netns.host_mac()
        raw = netns.packet_socket()
        raw.setblocking(False)
        self.sock = trio.socket.from_stdlib_socket(raw)

    async def send(self, pkt: Any) -> None:
        """Put one frame on the wire towards the guest (scapy packet or bytes)."""
        await self.sock.send(bytes(pkt))

    async def sniff(self, match: Callable[[Any], bool] = lambda f: True, timeout: float = 5.0) -> Any:
        """The next frame from the guest that `match` accepts, as a scapy Ether."""
        from scapy.layers.l2 import Ether

        with trio.fail_after(timeout):
            while True:
                data, addr = await self.sock.recvfrom(65536)
                if addr[2] == PACKET_OUTGOING:
                    continue  # sent by the namespace (ourselves included), not by the guest
                frame = Ether(data)
                if match(frame):
                    return frame

    async def exchange(self, pkt: Any, match: Callable[[Any], bool], timeout: float = 5.0) -> Any:
        """Send `pkt` and return the first frame from the guest that `match` accepts (the
        sniffer is listening before the frame leaves, so a quick answer is never missed)."""
        result: list[Any] = []
        async with trio.open_nursery() as nursery:
            async def catch() -> None:
                result.append(await self.sniff(match, timeout))

            nursery.start_soon(catch)
            await trio.sleep(0)
            await self.send(pkt)
        return result[0]


@pytest.fixture
async def euralios_tap() -> AsyncIterator[TapGuest]:
    """A guest booted on a tap in a private network namespace (see the module docstring)."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"euralios_tap: {reason}")
    if os.geteuid() != 0:
        pytest.fail("euralios_tap needs root (CAP_NET_ADMIN) to make a network namespace and a tap")
    guest_ip = "10.0.2.15"
    with Netns() as ns:
        backend = ns.backend()
        async with boot(nic=backend, mac=GUEST_MAC) as system:
            system.start_network(["--static", f"{guest_ip}/{ns.prefix},gw={ns.host_ip},dns={ns.host_ip}"])
            await system.wait_for_output(r"\[tcp\] static", 15)
            yield TapGuest(ns, system, guest_ip, GUEST_MAC)


async def build_message(proc: Any, tag: int, specs: tuple) -> tuple[Message, list[int]]:
    """A message for server fuzzing from word specs, made inside the guest program `proc`.

    Each spec is ("val", n) a plain value; ("len", lie) the length of the message's chunk plus
    `lie`, clamped to 64 bits; ("mem", data, pages) a chunk of at least `pages` pages holding
    `data`; anything else a handle to a new rendezvous. Returns the message and our ends of the
    rendezvous it carries (for the caller to close)."""
    sys = proc.sys
    data_len = next((len(w[1]) for w in specs if w[0] == "mem"), 0)
    keep: list[int] = []
    words: list[Any] = []
    for w in specs:
        if w[0] == "val":
            words.append(w[1])
        elif w[0] == "len":
            words.append(min(max(0, data_len + w[1]), 2**64 - 1))
        elif w[0] == "mem":
            chunk = await Chunk.allocate(sys, max(w[2] * abi.PAGE, len(w[1])))
            if w[1]:
                chunk.write(0, w[1])
            words.append(chunk.memory)
        else:
            a, b = await sys.new_rendezvous()
            keep.append(a)
            words.append(Handle(b))
    return Message(tag, words[0], words[1]), keep


def trimmed_screen(system: Any) -> str:
    """A FullSystem's screen as a person reads it: trailing blanks of each line (and blank
    lines at the bottom) removed, so that `$` in a pattern means "end of what is shown"."""
    return "\n".join(system.screen_lines()).rstrip("\n")


async def wait_screen(system: Any, pattern: str, timeout: float = 10) -> str:
    """Wait until the trimmed screen matches `pattern` (multiline), woken by screen changes
    only; the screen text. On timeout an AssertionError shows the screen."""
    import re

    rx = re.compile(pattern, re.MULTILINE)
    changed = trio.Event()

    def on_change() -> None:
        changed.set()

    remove = system.machine.vga.on_change(on_change)
    try:
        with trio.fail_after(timeout):
            while not rx.search(trimmed_screen(system)):
                await changed.wait()
                changed = trio.Event()
    except trio.TooSlowError:
        raise AssertionError(f"timed out waiting for {pattern!r}; screen:\n{trimmed_screen(system)}") from None
    finally:
        remove()
    return trimmed_screen(system)


def _timed_out(what: str, timeout: float, detail: Callable[[], str] | None) -> AssertionError:
    text = f"timed out after {timeout:g} s waiting for {what}"
    return AssertionError(text + (f"\n{detail()}" if detail is not None else ""))


async def wait_until(predicate: Callable[[], T | Awaitable[T]], *, timeout: float, what: str,
                     interval: float = 0.01, sleep: Callable[[float], Awaitable[Any]] = trio.sleep,
                     detail: Callable[[], str] | None = None) -> T:
    """Look at `predicate()` every `interval` seconds until it is truthy; that value.

    For conditions nothing announces (see the module docstring: prefer an event). `predicate`
    may return an awaitable (a guest program reading /tcp/stats); it should answer at once, as
    the deadline is checked between looks, never by cancelling one. `sleep` is how to wait
    between looks: trio.sleep on the host, `proc.sleep` inside a guest program. On timeout an
    AssertionError names `what` (and adds `detail()`), so the test fails saying why."""
    deadline = trio.current_time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result  # type: ignore[return-value]
        if trio.current_time() >= deadline:
            raise _timed_out(what, timeout, detail)
        await sleep(interval)


def wait_until_blocking(predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.02,
                        detail: Callable[[], str] | None = None) -> T:
    """`wait_until` for synchronous tests driving host programs (blocks the calling thread)."""
    deadline = time.monotonic() + timeout
    while True:
        if result := predicate():
            return result
        if time.monotonic() >= deadline:
            raise _timed_out(what, timeout, detail)
        time.sleep(interval)
