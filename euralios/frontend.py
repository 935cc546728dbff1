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
`--impair` and `--pcap`) and the machine gets a network card on it, QEMU's `-nic model=`:
`--nic rtl8139` (the default) or `--nic virtio-net-pci` (alias `virtio`; its driver is not written
yet, so init only says so); `--mac` sets its address; with an RTL8139 init
then starts the driver and the TCP/IP stack (/tcp), which asks DHCP. `--net none` is QEMU's
`-nic none`: no network card, so init starts no driver, no stack and no DHCP client (one that asks
a wire nobody answers would retry for as long as the system runs).

Without --headless the terminal UI (machine/ui/terminal.py) shows the VGA screen in the host
terminal and feeds it every key; Ctrl-] quits, Ctrl-] c toggles to the monitor and back.

The monitor (euralios/monitor/): QEMU's HMP commands (info status/processes/tlb/mem/pci/network/
irq, x, xp, screendump, sendkey, stop, cont, system_reset, quit, help), in the terminal UI on
Ctrl-] c, and with `--monitor unix:PATH` on a unix socket (QEMU's `unix:PATH,server,nowait` is
accepted) or `--monitor stdio` (headless only; end of input is quit). A full boot runs in a Vm:
a reset (the monitor's system_reset, the guest's `reboot`) boots a fresh machine in the same
process; a power-off (`shutdown`) or `quit` ends euralios with status 0. With --monitor,
--headless runs its steps and then waits for that end before printing the screen.
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
    nic = getattr(opts, "nic", None)
    if nic is not None:
        from machine.board import parse_nic

        try:
            opts.nic = parse_nic(nic)
        except ValueError as e:
            raise NetError(str(e)) from None
    if spec is None:
        for name, value in (("--mac", mac), ("--pcap", pcap), ("--impair", impair), ("--nic", nic)):
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
        for name, value in (("--mac", mac), ("--pcap", pcap), ("--impair", impair), ("--ip", getattr(opts, "ip", None)),
                            ("--nic", nic)):
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


def nic_model(opts: argparse.Namespace) -> str:
    """The card --nic chose (after network() checked it): rtl8139 unless told otherwise."""
    return getattr(opts, "nic", None) or "rtl8139"


def shares(opts: argparse.Namespace) -> list[Any]:
    """The --share / -virtfs folders (the CLI checked them: folders exist, tags unique)."""
    return list(getattr(opts, "shares", None) or [])


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
    if getattr(opts, "serial", False) and (opts.headless or opts.steps):
        return "--serial is its own front end: without --headless, --type or --expect"
    if getattr(opts, "serial", False) and getattr(opts, "monitor", None) == "stdio":
        return "--serial uses stdio for the line: give the monitor a socket (--monitor unix:PATH)"
    if opts.steps and not opts.headless:
        return "--type and --expect need --headless"
    if opts.timeout <= 0:
        return "--timeout must be positive"
    monitor = getattr(opts, "monitor", None)
    if monitor is not None:
        from euralios.monitor.server import SpecError, parse_spec

        try:
            kind, _ = parse_spec(monitor)
        except SpecError as e:
            return str(e)
        if kind == "stdio" and not opts.headless:
            return "--monitor stdio needs --headless (the terminal UI has the monitor on Ctrl-] c)"
    return None


def _boot_options(opts: argparse.Namespace) -> dict[str, Any]:
    return {"quota": opts.quota, "watchdog": opts.watchdog, "trace": opts.trace, "isolation": opts.isolation}


def main(opts: argparse.Namespace) -> int:
    problem = _check(opts)
    if problem is not None:
        return _error(problem)
    if not opts.headless and not getattr(opts, "serial", False) and not (sys.stdin.isatty() and sys.stdout.isatty()):
        return _error("the terminal UI needs a terminal (use --headless for scripts)")
    try:
        backend, mac = network(opts)
    except NetError as e:
        return _error(str(e))
    try:
        if getattr(opts, "serial", False):
            from euralios.serialterm import serial_session

            return trio.run(serial_session, opts, _vm(opts, backend, mac, _klog_to_stderr(opts), serial_login=True))
        if opts.headless:
            return trio.run(_headless, opts, backend, mac)
        return _terminal(opts, backend, mac)
    finally:
        if backend is not None:
            backend.close()


def _klog_to_stderr(opts: argparse.Namespace) -> Any:
    def on_klog(line: str) -> None:
        if opts.verbose:
            print(line, file=sys.stderr, flush=True)

    return on_klog


def _vm(opts: argparse.Namespace, backend: Any, mac: str | None, on_klog: Any, serial_login: bool = False) -> Any:
    """The Vm for a full boot: a fresh Machine around the NIC's wire and boot_full on it, again
    after every reset (euralios/monitor/vm.py)."""
    from euralios.monitor.vm import Vm
    from euralios.system_boot import boot_full
    from machine.board import Machine

    def make_machine(wire: Any) -> Machine:
        return Machine(opts.mem, nic=wire, mac=mac, card=nic_model(opts), shares=shares(opts))

    def boot(machine: Machine) -> Any:
        return boot_full(opts.mem, machine=machine, on_klog=on_klog, net_args=net_args(opts),
                         serial_login=serial_login, **_boot_options(opts))

    return Vm(make_machine, boot, backend)


async def _serve_monitor(vm: Any, spec: str, nursery: trio.Nursery) -> None:
    from euralios.monitor.server import parse_spec, serve_stdio, serve_unix

    kind, path = parse_spec(spec)
    if kind == "unix":
        await nursery.start(serve_unix, vm, path)
    else:
        await nursery.start(serve_stdio, vm)


async def _headless(opts: argparse.Namespace, backend: Any = None, mac: str | None = None) -> int:
    from euralios.monitor.server import SpecError
    from euralios.monitor.vm import VmEnded

    def on_klog(line: str) -> None:
        if opts.verbose or " killed: " in line:
            print(line, file=sys.stderr, flush=True)

    vm = _vm(opts, backend, mac, on_klog)
    status = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(vm.run)
        try:
            system = await vm.booted()
        except VmEnded:
            return 1
        if opts.monitor:
            try:
                await _serve_monitor(vm, opts.monitor, nursery)
            except SpecError as e:
                vm.quit()
                return _error(str(e))
        try:
            for kind, arg in opts.steps:
                if kind == "type":
                    system = await vm.booted()
                    await system.type(arg, escapes=True)
                    continue
                try:
                    await vm.wait_for_screen(arg, opts.timeout, printed=True)
                except trio.TooSlowError:
                    _print_screen(vm.system.screen.render())
                    print(f"euralios: timed out waiting for {arg}", file=sys.stderr, flush=True)
                    status = 1
                    break
            else:
                if opts.monitor:
                    await vm.ended.wait()  # the monitor decides: quit, or the guest powers off
                else:
                    # Let what the last steps started finish drawing (typed keys, the rest of a line).
                    with trio.move_on_after(min(opts.timeout, 2.0) + 0.5):
                        await vm.system.settle(quiet=0.15, limit=min(opts.timeout, 2.0))
                _print_screen(vm.system.screen.render())
                if vm.ended.is_set():
                    status = vm.status or 0
                    if vm.reason and vm.reason.startswith("init"):
                        print(f"euralios: {vm.reason}", file=sys.stderr, flush=True)
        except VmEnded:  # powered off (or quit, or init ended) before an --expect matched
            _print_screen(vm.system.screen.render())
            print(f"euralios: the machine stopped ({vm.reason}) while waiting for {arg}", file=sys.stderr, flush=True)
            status = 1
        vm.quit()
        nursery.cancel_scope.cancel()
    return status


def _print_screen(text: str) -> None:
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `euralios --headless ... | head`: the reader has had enough
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _terminal(opts: argparse.Namespace, backend: Any = None, mac: str | None = None) -> int:
    from euralios.monitor.commands import Monitor
    from machine.board import Machine
    from machine.ui.headless import KeyPress
    from machine.ui.terminal import TerminalUI, run_terminal

    klog: deque[str] = deque(maxlen=2000)  # the UI owns the terminal: --verbose prints it afterwards
    vm = _vm(opts, backend, mac, klog.append)
    first: list[Machine] = [Machine(opts.mem, nic=backend, mac=mac, card=nic_model(opts), shares=shares(opts))]  # shown from the start
    uis: list[TerminalUI] = []

    def make_machine(wire: Any) -> Machine:
        machine = first.pop() if first else Machine(opts.mem, nic=wire, mac=mac, card=nic_model(opts), shares=shares(opts))
        for ui in uis:
            ui.set_machine(machine)  # a reset: the screen and keyboard are the new machine's
        return machine

    shown = first[0]
    vm.make_machine = make_machine

    async def guest() -> str | None:
        async with trio.open_nursery() as nursery:
            if opts.monitor:
                await _serve_monitor(vm, opts.monitor, nursery)
            await vm.run()
            nursery.cancel_scope.cancel()
        if vm.reason in ("quit", "poweroff"):
            return None  # asked for: exit status 0
        return vm.reason

    def on_key(key: KeyPress) -> None:
        system = vm.system
        if system is not None:
            system.press([key])
        elif vm.machine is not None:
            vm.machine.keyboard.key(key.name, shift=key.shift, ctrl=key.ctrl, alt=key.alt)

    def status() -> str:
        system = vm.system
        console = f"F{system.active_console}" if system is not None else "booting"
        paused = "  PAUSED" if system is not None and not vm.running else ""
        return f" EuraliOS  console {console}  net {opts.net}  {opts.mem} RAM{paused}"

    reason = run_terminal(shown, guest, on_key=on_key, status=status, monitor=Monitor(vm).execute,
                          on_ui=uis.append)
    if opts.verbose:
        print("\n".join(klog), file=sys.stderr)
    if reason:  # the system stopped by itself, not by Ctrl-], quit or a power-off
        print(f"euralios: {reason}", file=sys.stderr)
        return 1
    return 0
