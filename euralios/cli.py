"""The `euralios` command.

    euralios [--mem 64M] [--net user|tap:NAME|raw:NAME|none] ...     boot with the terminal UI
    euralios --headless --type KEYS --expect REGEX ... [--timeout S]  boot with no UI
    euralios [--headless] --monitor unix:PATH|stdio                   ... with QEMU's monitor (HMP)
    euralios run [--net SPEC] [--isolated] PROGRAM.py [ARGS...]      run one program, exit with its status
    python -m euralios ...                                             the same (euralios/__main__.py)

Isolation (both forms): --isolation host (the default) runs every program exec'd from a file in a
confined host worker (merriwig/confine/); --isolation none runs everything in the kernel's own
interpreter, unconfined, and the kernel's first line says so. `euralios run` runs PROGRAM itself
in-process, as host scripting, unless --isolated.

Network options (both forms): --net SPEC (the NIC's wire: every form is in NET_FORMS, which --help
prints),
--nic MODEL (the card: rtl8139, the default, or virtio-net-pci alias virtio, driven by
drivers/virtio_net with checksum and TCP segmentation offloads), --mac MAC (the card's address), --pcap FILE (record every frame), --impair SPEC (loss, delay,
reorder... on the wire). A full boot has a network by default (--net user); `euralios run` only
with --net, and then starts pci, the card's driver and the TCP/IP stack (/tcp) before the program.

Host folders (full boot): --share DIR[,tag=NAME][,readonly=on][,user=on], repeatable, or QEMU's
-virtfs local,path=DIR,mount_tag=NAME,security_model=none[,readonly=on]; init mounts each at
/host/TAG (SHARE_FORMS, which --help prints, says the rest).

A bad option prints one line and exits with status 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from machine.board import MAX_SHARES, parse_size
from machine.share.options import ShareOption, check_shares, parse_share, parse_virtfs


def _mem(text: str) -> str:
    try:
        size = parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if size < 4 << 20 or size % 4096:
        raise argparse.ArgumentTypeError(f"memory size {text!r} must be at least 4M and a multiple of 4K")
    return text


def _option(parse):  # type: ignore[no-untyped-def]
    """An argparse type from one of machine.share.options' parsers (its message, one line)."""
    def convert(text: str) -> ShareOption:
        try:
            return parse(text)  # type: ignore[no-any-return]
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None

    return convert


SHARE_FORMS = f"""\
host folders (--share, repeatable; at most {MAX_SHARES}), each mounted in the guest at /host/TAG:
  --share DIR[,tag=NAME][,readonly=on][,user=on]
                   tag: the name in the guest (default: the folder's name; letters, digits,
                   '.', '_', '-', at most 31 bytes); readonly=on: every change is refused;
                   user=on: the account `user` sees it too (root always does)
  -virtfs local,path=DIR,mount_tag=NAME,security_model=none[,readonly=on]
                   QEMU's form of the same (security_model none or mapped-xattr, both meaning:
                   files are the host user's who runs euralios; no owners or xattrs are mapped)
"""


def _shares(p: argparse.ArgumentParser) -> None:
    p.add_argument("--share", dest="shares", action="append", type=_option(parse_share), default=[],
                   metavar="DIR[,tag=NAME][,readonly=on][,user=on]",
                   help="share a host folder with the guest at /host/TAG (see 'host folders' below)")
    p.add_argument("-virtfs", dest="shares", action="append", type=_option(parse_virtfs),
                   metavar="local,path=DIR,mount_tag=NAME,security_model=none[,readonly=on]",
                   help="QEMU's form of --share")


def check_share_list(p: argparse.ArgumentParser, opts: argparse.Namespace) -> None:
    """Tags unique, not too many: else one line and exit 2."""
    found = list(getattr(opts, "shares", None) or [])
    try:
        check_shares(found)
    except ValueError as e:
        p.error(str(e))
    if len(found) > MAX_SHARES:
        p.error(f"at most {MAX_SHARES} --share folders (one interrupt line each), not {len(found)}")


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"euralios: {message}\n")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mem", type=_mem, default="64M", help="physical RAM (default 64M)")
    p.add_argument("--quota", type=int, default=None, help="per-process frame quota (frames of 4 KiB)")
    p.add_argument("--watchdog", type=float, default=2.0,
                   help="kill a thread running this many seconds without a syscall (0: off)")
    p.add_argument("--trace", metavar="FILE", help="write syscalls and IPC as Perfetto/Chrome trace JSON")
    p.add_argument("--verbose", "-v", action="store_true", help="copy the kernel log to stderr")
    p.add_argument("--isolation", choices=("host", "none"), default="host",
                   help="host: programs from files run in confined host workers (default); "
                        "none: everything in the kernel's interpreter, unconfined (SECURITY.md)")


# Every --net form, for both parsers' --help (machine/netdev's FACTORIES and user/options.py).
NET_FORMS = """\
network backends (--net SPEC):
  user[,OPTIONS]   a built-in router on 10.0.2.0/24 like QEMU's slirp, no root: DHCP, DNS from
                   the host, guest TCP/UDP relayed to host sockets. OPTIONS, comma-separated:
                     hostfwd=tcp:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT  forward a host port
                                      into the guest (repeatable; udp: for a UDP port)
                     restrict=on|off  on: the guest reaches only the router's DHCP, DNS and
                                      hostfwd, nothing beyond (default off)
                     hosts=FILE       names (ADDRESS NAME... lines) its DNS server answers
                     domainname=NAME  the domain its DHCP and DNS give (default euralios.internal)
  tap:NAME         the host's tap interface NAME (needs the right to open /dev/net/tun)
  raw:NAME         a raw packet socket on the host interface NAME (needs CAP_NET_RAW)
  switch:NAME      a virtual Ethernet switch NAME joining every euralios on this host that
                   names it, no root (no DHCP server on it: give each --ip 10.0.3.N/24)
  none             a network card with a cable to nowhere (no DHCP is asked)
"""


def _network(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--net", default=default, metavar="SPEC",
                   help="the network card's wire: user[,OPTIONS], tap:NAME, raw:NAME, switch:NAME or none "
                        "(see 'network backends' below)" + (f"; default {default}" if default else ""))
    p.add_argument("--nic", metavar="MODEL",
                   help="the network card, as QEMU's -nic model=: rtl8139 (default) or virtio-net-pci (alias virtio), "
                        "which takes QEMU's feature properties: virtio,csum=off,host_tso4=off,...")
    p.add_argument("--mac", metavar="MAC", help="the network card's MAC address (default 52:54:00:12:34:56)")
    p.add_argument("--pcap", metavar="FILE", help="record every frame the network card sends and receives")
    p.add_argument("--impair", metavar="SPEC", help="impair the wire: loss=%%,delay=ms,reorder=%%,dup=%%,corrupt=%%,seed=N")
    p.add_argument("--ip", metavar="ADDR/PREFIX[,gw=A,dns=A]",
                   help="the guest's static address (e.g. 10.0.3.5/24 on a switch) instead of DHCP")
    p.add_argument("--hosts", metavar="FILE", help="--net user: a hosts table (ADDRESS NAME...) for its DNS server")


RUN_USAGE = "euralios run [--net SPEC] [--isolated] [OPTIONS] PROGRAM.py [ARGS...]"
RUN_SUMMARY = "boot a small system and run one program as root; exit with its status"


def build_parser() -> argparse.ArgumentParser:
    from euralios.monitor.commands import HELP, INFO_HELP

    monitor = "".join(f"  {name + (' ' + args if args else ''):<22} {text}\n" for name, args, text in HELP)
    monitor += "".join(f"  info {name + (' ' + args if args else ''):<17} {text}\n" for name, args, text in INFO_HELP)
    epilog = (f"subcommands:\n  run              {RUN_SUMMARY}\n"
              f"                   usage: {RUN_USAGE}\n"
              f"                   (euralios run --help for its options)\n\n{NET_FORMS}\n{SHARE_FORMS}\n"
              "monitor commands (--monitor, or Ctrl-] c in the terminal UI; QEMU's HMP):\n" + monitor)
    p = _Parser(prog="euralios", description="EuraliOS-py: an actor-model OS on an emulated PC",
                usage="%(prog)s [OPTIONS]                (boot with the terminal UI)\n"
                      "       %(prog)s --headless [--type KEYS] [--expect REGEX] ... [OPTIONS]\n"
                      "       %(prog)s [--headless] --monitor unix:PATH|stdio [OPTIONS]\n"
                      f"       {RUN_USAGE}",
                epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    _network(p, "user")
    _shares(p)
    p.add_argument("--headless", action="store_true", help="no UI: type keys and wait for screen text")
    p.add_argument("--serial", action="store_true",
                   help="log in on the serial line from this terminal, no full-screen UI (QEMU's -nographic; Ctrl-] quits)")
    p.add_argument("--type", dest="steps", action="append", type=lambda s: ("type", s), default=[],
                   metavar="KEYS", help="keys to type ({Enter} {F2} {Up} {Ctrl+S} ... and \\n)")
    p.add_argument("--expect", dest="steps", action="append", type=lambda s: ("expect", s), metavar="REGEX",
                   help="wait until the screen matches REGEX (multiline; the screen as printed, each row's "
                        "trailing blanks trimmed: (?m)^\\$$ is a bare prompt)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each --expect")
    p.add_argument("--monitor", metavar="unix:PATH|stdio",
                   help="serve the monitor (QEMU's HMP commands, 'help' lists them; prompt \"(qemu) \") on a "
                        "unix socket (unix:PATH[,server,nowait]) or on stdin/stdout (stdio, --headless only); "
                        "with --headless, euralios then runs until the monitor's quit or a power-off. "
                        "In the terminal UI the monitor is always on Ctrl-] c")
    return p


def build_run_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="euralios run", description=RUN_SUMMARY, epilog=NET_FORMS + "\n" + SHARE_FORMS,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(p)
    _network(p, None)
    _shares(p)
    p.add_argument("--isolated", action="store_true",
                   help="run PROGRAM confined, as a program from a file inside the OS (default: in-process, "
                        "as host scripting)")
    p.add_argument("program", help="a Python file with `async def main(proc)`")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the program")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "run":
        run_parser = build_run_parser()
        run_opts = run_parser.parse_args(argv[1:])
        check_share_list(run_parser, run_opts)
        return run_command(run_opts)
    parser = build_parser()
    opts = parser.parse_args(argv)
    check_share_list(parser, opts)
    from euralios import frontend

    return frontend.main(opts)


def run_command(opts: argparse.Namespace) -> int:
    from euralios.frontend import NetError, network

    if opts.isolated and opts.isolation == "none":
        print("euralios run: --isolated needs --isolation host", file=sys.stderr)
        return 2
    path = Path(opts.program)
    try:
        image = path.read_bytes()
    except OSError as e:
        print(f"euralios run: {opts.program}: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        backend, mac = network(opts)
    except NetError as e:
        print(f"euralios run: {e}", file=sys.stderr)
        return 2
    try:
        return trio.run(_run, opts, path, image, backend, mac)
    finally:
        if backend is not None:
            backend.close()


async def _run(opts: argparse.Namespace, path: Path, image: bytes, backend: object = None,
               mac: str | None = None) -> int:
    from euralios.boot import boot
    from euralios.frontend import net_args, nic_model

    out = sys.stdout.buffer

    def sink(data: bytes) -> None:
        out.write(data)
        out.flush()

    async with boot(opts.mem, quota=opts.quota, watchdog=opts.watchdog, trace=opts.trace,
                    nic=backend, mac=mac, card=nic_model(opts),  # type: ignore[arg-type]
                    isolation=opts.isolation, shares=opts.shares) as system:
        if not opts.isolated and system.kernel.confinement is not None:
            system.kernel.confinement.trust(image)  # your own file, run as host scripting: in-process
        if backend is not None:
            # Their start-up lines go to the kernel log (-v shows them): stdout is the program's.
            system.start_network(net_args(opts), log="klog")
        system.start_shares(log="klog")  # each at /host/TAG, before the program looks
        system.add_output_sink(sink)
        klog = system.kernel.klog

        def on_log(line: str) -> None:
            if opts.verbose or " killed: " in line:
                print(line, file=sys.stderr, flush=True)

        klog.listeners.append(on_log)
        system.nursery.start_soon(_pump_stdin, system)
        proc = system.spawn(image, [str(path), *opts.args], name=path.stem)
        proc.tell_console = False  # stdout is the program's own: why it died goes to stderr
        await proc.ended.wait()
        status = proc.status if proc.status is not None else 1
        killed = proc.killed
        if killed is not None and killed.report:
            print(killed.report, file=sys.stderr, flush=True)
    return status if 0 <= status < 256 else 1


async def _pump_stdin(system: object) -> None:
    """Host stdin -> the serial console, without a thread: wait until fd 0 is readable."""

    try:
        fd = sys.stdin.fileno()
    except (OSError, ValueError, AttributeError):
        return
    from euralios.serialterm import stdin_chunks

    async for data in stdin_chunks(fd):
        system.feed_input(data)  # type: ignore[attr-defined]


if __name__ == "__main__":
    raise SystemExit(main())
