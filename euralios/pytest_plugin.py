"""pytest fixtures for testing your own EuraliOS programs (installed with the package).

    async def test_hello(euralios_system):
        result = await euralios_system.run(my_main, ["hello"])
        assert result == 0                      # the exit status (result.status)
        assert "Hello" in result.output         # what my_main printed

No configuration is needed beyond pytest-trio being installed (`pip install 'euralios[test]'`):
the plugin runs every `async def` test that uses one of its fixtures under trio (pytest-trio's
`trio` mark, added for you), with or without `trio_mode` in your pytest configuration. A plain
`def` test that asks for one of them fails with one line saying to make it `async def`, and
without pytest-trio one line says to install it.

Fixtures
--------
* `euralios_system`: the small system booted (kernel, serial console, RAM disk at /ramdisk).
* `euralios_usernet`: the small system on the root-free `user` network (QEMU slirp's
  addresses: the guest 10.0.2.15 by DHCP, the host 10.0.2.2), the stack's address already
  taken (`await net.system.network_ready()` returns it at once). A `UserNetGuest`: `system`,
  `router`, `address`, `host_port(guest_port, proto)` for a `hostfwd` rule's host side.
* `euralios_tap`: the small system on a tap in a private network namespace (root), with a
  packet-level view of the wire (below). A `TapGuest`.

Both network fixtures take options by indirect parametrisation (a dict of
euralios.testnet.usernet_guest's / tap_guest's keywords), or call those context managers
yourself for several guests in one test:

    @pytest.mark.parametrize("euralios_usernet", [{"hostfwd": ["udp:127.0.0.1:0-:7777"]}], indirect=True)
    async def test_echo(euralios_usernet): ...

    @pytest.mark.parametrize("euralios_tap", [{"dhcp": True, "mac": "52:54:00:aa:bb:cc",
                                               "impair": "loss=5,seed=1", "pcap": "/tmp/x.pcap"}],
                             indirect=True)
    async def test_lossy(euralios_tap): ...

usernet options: hostfwd (QEMU rules; host port 0 picks a free one), hosts, restrict, mac,
pcap, impair, tcp_args, wait, log. tap options: guest_ip, host_ip, prefix (addresses), mac,
dhcp (dnsmasq on the tap hands out guest_ip), impair, pcap, tcp_args, wait.

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
network namespace with a tap interface in it (the host side, 10.0.2.2/24 by default, so nothing
leaks onto your machine's networks), boots the small system with its RTL8139 wired to that tap
and the network started (pci, rtl8139, tcp; static 10.0.2.15/24, gateway and DNS 10.0.2.2, or
DHCP from dnsmasq with `dhcp`), and hands the test a `TapGuest`:

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
* `system` is the guest (euralios.boot.System: `await system.run(main)`, `output()`, `klog()`);
  `dnsmasq_log` the path of dnsmasq's log with `dhcp`.
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

import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest
import trio

from euralios.boot import System, boot
from euralios.netns import Netns, netns_unavailable
from euralios.std import Chunk, Handle, Message, abi
from euralios.testnet import GUEST_MAC, TapGuest, UserNetGuest, tap_guest, usernet_guest

__all__ = ["Netns", "netns_unavailable", "TapGuest", "UserNetGuest", "GUEST_MAC", "wait_until",
           "wait_until_blocking", "wait_screen", "trimmed_screen", "build_message", "FIXTURES", "NOT_ASYNC",
           "NO_PYTEST_TRIO"]

T = TypeVar("T")

# The fixtures that boot a system: a test using one runs under trio.
FIXTURES = ("euralios_system", "euralios_usernet", "euralios_tap")
NOT_ASYNC = ("{name} uses {fixtures}: the euralios fixtures boot EuraliOS under trio, so write the test as "
             "`async def` (the euralios plugin runs it with pytest-trio; no trio_mode needed)")


# ---------------------------------------------------------------------------------- trio, for you

def _is_async(item: pytest.Item) -> bool:
    func = getattr(item, "obj", None)
    inner = getattr(getattr(func, "hypothesis", None), "inner_test", None)
    return inspect.iscoroutinefunction(inner or func)


def _ours(item: pytest.Item) -> list[str]:
    return [f for f in FIXTURES if f in getattr(item, "fixturenames", ())]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every async test that uses our fixtures as a trio test (pytest-trio runs those
    whatever trio_mode says), unless it has the mark already (trio_mode, or its own)."""
    for item in items:
        if _ours(item) and _is_async(item) and item.get_closest_marker("trio") is None:
            item.add_marker(pytest.mark.trio)


NO_PYTEST_TRIO = ("{name} uses {fixtures}, which need pytest-trio to run async tests: "
                  "pip install pytest-trio (or pip install 'euralios[test]')")


def pytest_runtest_setup(item: pytest.Item) -> None:
    ours = _ours(item)
    if ours and not _is_async(item):
        pytest.fail(NOT_ASYNC.format(name=item.name, fixtures=", ".join(ours)), pytrace=False)
    if ours and not item.config.pluginmanager.hasplugin("trio"):
        pytest.fail(NO_PYTEST_TRIO.format(name=item.name, fixtures=", ".join(ours)), pytrace=False)


# ---------------------------------------------------------------------------------- fixtures

@pytest.fixture
async def euralios_system() -> AsyncIterator[System]:
    """A booted small system (kernel and serial console), shut down after the test."""
    async with boot() as system:
        yield system


def _options(request: pytest.FixtureRequest, fixture: str) -> dict[str, Any]:
    options = getattr(request, "param", None) or {}
    if not isinstance(options, dict):
        raise TypeError(f"{fixture}: indirect parameters are a dict of options, not {options!r}")
    return options


@pytest.fixture
async def euralios_usernet(request: pytest.FixtureRequest) -> AsyncIterator[UserNetGuest]:
    """A guest on the root-free user network, its address taken (see the module docstring)."""
    async with usernet_guest(**_options(request, "euralios_usernet")) as net:
        yield net


@pytest.fixture
async def euralios_tap(request: pytest.FixtureRequest) -> AsyncIterator[TapGuest]:
    """A guest booted on a tap in a private network namespace (see the module docstring)."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(f"euralios_tap: {reason}")
    if os.geteuid() != 0:
        pytest.fail("euralios_tap needs root (CAP_NET_ADMIN) to make a network namespace and a tap")
    async with tap_guest(**_options(request, "euralios_tap")) as tap:
        yield tap


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
