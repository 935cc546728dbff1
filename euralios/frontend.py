"""Front-ends for a full boot: the headless runner and the prompt_toolkit terminal UI.

`euralios --headless --type KEYS --expect REGEX ...` boots, performs the steps in order (typing
is queued at once; an expect waits, event-driven, until the screen matches: the screen as it is
printed, each row's trailing blanks trimmed, so `(?m)^\\$$` is a bare prompt; or, for patterns
written against them, the 80-column rows), lets the screen settle (nothing drawn for 0.15 s),
prints the final 80x25 screen (trailing blanks removed) and exits 0. A step that times out prints the screen, then
`euralios: timed out waiting for REGEX` on stderr, and exits 1. Bad input (an unknown key name,
a bad regex, a bad --net/--mac/--impair, a backend the host refuses) is one line on stderr and
exit status 2, before booting.

The network: `--net SPEC` builds the NIC's wire with machine.netdev.make_backend (wrapped by
`--impair` and `--pcap`) and the machine gets an RTL8139 on it (`--mac` sets its address); init
then starts the driver and the TCP/IP stack (/tcp), which asks DHCP. `--net none` is QEMU's
`-nic none`: no network card, so init starts no driver, no stack and no DHCP client (one that asks
a wire nobody answers would retry for as long as the system runs).

Without --headless the terminal UI (machine/ui/terminal.py) shows the VGA screen in the host
terminal and feeds it every key; Ctrl-] quits.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import deque
from typing import Any

import trio


class NetError(Exception):
    """A network option is wrong or the host refuses the backend (one line for the user)."""


def network(opts: argparse.Namespace) -> tuple[Any, str | None]:
    """(backend, mac) from --net/--mac/--pcap/--impair; (None, None) when there is no --net or
    it is `none` (no network card).

    Built before booting, so a bad spec or a refused tap is reported before anything starts."""
    from machine.netdev import BackendError, make_backend
    from machine.rtl8139 import mac_text, parse_mac

    spec = getattr(opts, "net", None)
    mac = getattr(opts, "mac", None)
    pcap, impair = getattr(opts, "pcap", None), getattr(opts, "impair", None)
    if spec is None:
        for name, value in (("--mac", mac), ("--pcap", pcap), ("--impair", impair)):
            if value is not None:
                raise NetError(f"{name} needs --net")
        return None, None
    if mac is not None:
        try:
            raw = parse_mac(mac)
        except ValueError as e:
            raise NetError(f"--mac {mac}: {e}") from None
        if raw[0] & 1:
            raise NetError(f"--mac {mac}: a multicast address cannot be a card's address")
        mac = mac_text(raw)
    if spec.strip() == "none":
        # QEMU's -nic none: no network card at all. init then says "no network card" and starts
        # neither the driver nor the TCP/IP stack, so no DHCP client asks a wire that cannot answer.
        for name, value in (("--mac", mac), ("--pcap", pcap), ("--impair", impair), ("--ip", getattr(opts, "ip", None))):
            if value is not None:
                raise NetError(f"{name} needs a network card (--net none has none)")
        return None, None
    hosts = getattr(opts, "hosts", None)
    ip = getattr(opts, "ip", None)
    if ip is not None:
        import ipaddress

        try:
            ipaddress.IPv4Interface(ip.split(",")[0])
        except ValueError:
            raise NetError(f"--ip {ip}: not an address/prefix such as 10.0.3.5/24") from None
    try:
        extra = {"hosts": hosts} if hosts is not None else {}
        return make_backend(spec, pcap=pcap, impair=impair, **extra), mac
    except OSError as e:
        raise NetError(f"--hosts {hosts}: {e.strerror or e}") from None
    except (ValueError, BackendError) as e:
        raise NetError(str(e)) from None


def net_args(opts: argparse.Namespace) -> list[str]:
    """Options for the guest's TCP/IP stack: a static address from --ip, else DHCP."""
    ip = getattr(opts, "ip", None)
    return ["--static", ip] if ip else []


def _error(text: str) -> int:
    print(f"euralios: {text}", file=sys.stderr)
    return 2


def _check(opts: argparse.Namespace) -> str | None:
    """Everything that can be wrong with the options, found before booting."""
    from machine.ui.headless import KeySpecError, parse_keys

    for kind, arg in opts.steps:
        if kind == "type":
            try:
                parse_keys(arg, escapes=True)
            except KeySpecError as e:
                return f"--type {arg!r}: {e}"
        else:
            try:
                re.compile(arg, re.MULTILINE)
            except re.error as e:
                return f"--expect {arg!r}: bad regular expression: {e}"
    if opts.steps and not opts.headless:
        return "--type and --expect need --headless"
    if opts.timeout <= 0:
        return "--timeout must be positive"
    return None


def _boot_options(opts: argparse.Namespace) -> dict[str, Any]:
    return {"quota": opts.quota, "watchdog": opts.watchdog, "trace": opts.trace, "isolation": opts.isolation}


def main(opts: argparse.Namespace) -> int:
    problem = _check(opts)
    if problem is not None:
        return _error(problem)
    if not opts.headless and not (sys.stdin.isatty() and sys.stdout.isatty()):
        return _error("the terminal UI needs a terminal (use --headless for scripts)")
    try:
        backend, mac = network(opts)
    except NetError as e:
        return _error(str(e))
    try:
        if opts.headless:
            return trio.run(_headless, opts, backend, mac)
        return _terminal(opts, backend, mac)
    finally:
        if backend is not None:
            backend.close()


async def _headless(opts: argparse.Namespace, backend: Any = None, mac: str | None = None) -> int:
    from euralios.system_boot import boot_full
    from machine.board import Machine

    def on_klog(line: str) -> None:
        if opts.verbose or " killed: " in line:
            print(line, file=sys.stderr, flush=True)

    machine = Machine(opts.mem, nic=backend, mac=mac)
    async with boot_full(opts.mem, machine=machine, on_klog=on_klog, net_args=net_args(opts),
                         **_boot_options(opts)) as system:
        for kind, arg in opts.steps:
            if kind == "type":
                await system.type(arg, escapes=True)
                continue
            try:
                await system.wait_for_screen(arg, opts.timeout, printed=True)
            except trio.TooSlowError:
                _print_screen(system.screen.render())
                print(f"euralios: timed out waiting for {arg}", file=sys.stderr, flush=True)
                return 1
        # Let what the last steps started finish drawing (typed keys, the rest of a line).
        await system.settle(quiet=0.15, limit=min(opts.timeout, 2.0))
        _print_screen(system.screen.render())
    return 0


def _print_screen(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `euralios --headless ... | head`: the reader has had enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _terminal(opts: argparse.Namespace, backend: Any = None, mac: str | None = None) -> int:
    from euralios.system_boot import FullSystem, boot_full
    from machine.board import Machine
    from machine.ui.headless import KeyPress
    from machine.ui.terminal import run_terminal

    machine = Machine(opts.mem, nic=backend, mac=mac)
    holder: dict[str, FullSystem] = {}
    klog: deque[str] = deque(maxlen=2000)  # the UI owns the terminal: --verbose prints it afterwards

    async def guest() -> str:
        async with boot_full(machine=machine, on_klog=klog.append, net_args=net_args(opts), **_boot_options(opts)) as system:
            holder["system"] = system
            assert system.init is not None
            with trio.CancelScope() as scope:
                async def halted() -> None:
                    await machine.halted.wait()
                    scope.cancel()

                system.nursery.start_soon(halted)
                await system.init.ended.wait()
                return f"init exited with status {system.init.status}"
            return "the machine halted"

    def on_key(key: KeyPress) -> None:
        system = holder.get("system")
        if system is not None:
            system.press([key])
        else:
            machine.keyboard.key(key.name, shift=key.shift, ctrl=key.ctrl, alt=key.alt)

    def status() -> str:
        system = holder.get("system")
        console = f"F{system.active_console}" if system is not None else "booting"
        return f" EuraliOS  console {console}  net {opts.net}  {opts.mem} RAM"

    reason = run_terminal(machine, guest, on_key=on_key, status=status)
    if opts.verbose:
        print("\n".join(klog), file=sys.stderr)
    if reason:  # the system stopped by itself, not by Ctrl-]
        print(f"euralios: {reason}", file=sys.stderr)
        return 1
    return 0
