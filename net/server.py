"""tcp: the TCP/IP stack as one program, serving /tcp (spec §11.9, DESIGN §5).

Started with its mount as stdin (handle 0). It opens /dev/nic itself, asks the card's MAC
(GET_MAC_ADDRESS), runs net/stack.py's NetStack, configures it (DHCP by default; the command
line is net/options.py's) and prints one line on its stdout, the system console:

    [tcp] DHCP: 10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3
    [tcp] no DHCP answer; using static 10.0.2.15/24            (with --fallback)
    [tcp] no DHCP answer yet; still trying                      (without)
    [tcp] static: 10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3         (with --static)

What /tcp serves is net/namespace.py's (paths) and net/sessions/' (the requests of each); how
failures are answered, net/errors.py's. This module wires them to the stack.

How it runs (threads of one process; they take turns at syscalls, so the stack needs no lock)
---------------------------------------------------------------------------------------------
* NIC reader: a blocking READ_FRAMES on /dev/nic, every queued frame per reply, fed to the
  stack; frames go out in WRITE_FRAMES batches (net/nic.py). The reader's own kick sends its
  batches as WRITE_READ_FRAMES_HDR when the card offloads: they bring back the frames queued
  meanwhile, fed next without a READ_FRAMES.
* Timer (net/timers.py): sleeps until the stack's next deadline; an idle stack is idle.
* Mount workers receive on handle 0: opens that wait (handshake, DNS) first make sure another
  worker is free, so one slow connect never holds up the others.
* One thread per session (vfs.server's framework), answering one request at a time.
* Whoever changes the stack "kicks" it: frames out to the NIC (one flusher at a time, in order),
  then every waiting thread whose condition now holds is woken through its private rendezvous
  (euralios.std.sync.Condition).
"""

from __future__ import annotations

import json
from typing import Any

from euralios.std import STDIN, Message, SyscallError, abi
from euralios.std.net import READ_MAX
from euralios.std.sync import Condition
from net.config import ConfigSource, IfConfig, StackEvent
from net.dns import DnsErrorKind, is_address
from net.errors import DNS_REASONS, BadPath, NetError, dns_error, stack_error, tcp_error
from net.lookups import Lookup
from net.namespace import Root, Snapshot, parse_port, split_hostport
from net.nic import NicClient, mac_address, nic_features
from net.offloads import offloads_from_features
from net.options import parse_args
from net.sessions.mount import MountSession
from net.sessions.mux import MuxSession
from net.sessions.ping import PingSession
from net.sessions.tcp import ConnSession, ListenSession
from net.sessions.udp import UdpSession
from net.sockets import StackError
from net.stack import NetStack
from net.timers import Timer
from proto.tcp import CLOSED, SYN_RECEIVED, SYN_SENT, TcpErrorKind
from proto.virtio import feature_names
from proto.wire.vnet import VnetHdr
from vfs import protocol as P
from vfs.protocol import FsError
from vfs.server import FileSession, Server

MAX_MOUNT_WORKERS = 6
CONNECT_TIMEOUT = 30.0
CONFIG_WAIT = 15.0  # how long an open waits for DHCP to finish
READER_ROUNDS = 4  # frame batches the NIC reader takes in (exchanges) before it wakes waiters


class NetServer(Server):
    """The stack's I/O layer: NIC, timer, mount workers, sessions (see the module docstring)."""

    def __init__(self, proc: Any, stack: NetStack, nic: int, features: int = 0) -> None:
        self.root = Root(self)
        super().__init__(proc, self.root, writable=False, max_read=READ_MAX)
        self.stack = stack
        self.mount = MountSession(self)
        self.mount_workers = 0
        self.mount_busy = 0
        self.flushing = False
        self.mid_round = False  # the NIC reader is in rounds of exchanges (READs wait for their end)
        self.info = dict.fromkeys(("timer_wakeups", "timer_parks", "alarms_started", "wakeups", "nic_errors",
                                   "frames_in", "frames_out", "nic_batches_in", "nic_batches_out"), 0)
        self.nic = NicClient(proc, nic, self.info, features)
        self.timer = Timer(proc, self.info, self.deadline, self.tick)
        self.waiters = Condition(proc.sys, proc.now, self.timer.check)

    # -------------------------------------------------------------- running
    async def run(self) -> None:
        await self.timer.open()
        await self.report_events()
        await self.proc.spawn_thread(self.nic_reader)
        await self.proc.spawn_thread(self.timer.run)
        await self.mount_worker()

    async def mount_worker(self) -> None:
        self.mount_workers += 1
        try:
            await self.dispatch(STDIN, self.mount)
        finally:
            self.mount_workers -= 1

    async def spare_worker(self) -> None:
        """Before an open waits (handshake, DNS): make sure another worker takes new opens."""
        if self.mount_workers - self.mount_busy <= 0 and self.mount_workers < MAX_MOUNT_WORKERS:
            try:
                await self.proc.spawn_thread(self.mount_worker)
            except SyscallError:
                pass  # out of threads: opens queue behind this one

    async def report_events(self) -> None:
        events = self.stack.events
        while events:
            kind, cfg = events.pop(0)
            if kind == StackEvent.CONFIGURED and isinstance(cfg, IfConfig):
                label = "DHCP" if cfg.source == ConfigSource.DHCP else cfg.source
                await self.proc.say(f"[tcp] {label}: {cfg.describe()}")
            elif kind == StackEvent.FALLBACK and isinstance(cfg, IfConfig):
                await self.proc.say(f"[tcp] no DHCP answer; using static {cfg.describe()}")
            elif kind == StackEvent.DHCP_WAITING:
                await self.proc.say("[tcp] no DHCP answer yet; still trying")
            elif kind == StackEvent.UNCONFIGURED:
                await self.proc.say("[tcp] DHCP lease lost; no address")

    # -------------------------------------------------------------- the NIC
    async def nic_reader(self) -> None:
        """Every batch of frames from the card into the stack, then a kick. Frames that came
        back with the kick's own batches out (WRITE_READ_FRAMES_HDR) go in next, without a
        READ_FRAMES round trip; waiting threads are woken after up to READER_ROUNDS such
        batches, so a program's READ takes several frames' data at once."""
        frames: list[tuple[VnetHdr, bytes]] = []
        while True:
            if not frames:
                try:
                    frames = await self.nic.receive()
                except SyscallError as e:
                    await self.proc.say(f"[tcp] /dev/nic went away: {e}")
                    return
            # Only exchanges (header batches: a card that offloads) make rounds of more than one
            # batch; with plain batches a READ waiting for the round's end would only answer later.
            self.mid_round = self.nic.headers
            try:
                for _ in range(READER_ROUNDS):
                    now = self.proc.now()
                    for hdr, frame in frames:
                        try:
                            self.stack.frame_received(frame, now, hdr)
                        except Exception as e:  # noqa: BLE001 - a stack bug must not end networking
                            await self.bug("input", e)
                    await self.poll()
                    frames = await self.flush(reader=True)
                    if not frames:
                        break
            finally:
                self.mid_round = False
            await self.changed()

    async def flush(self, reader: bool = False) -> list[tuple[VnetHdr, bytes]]:
        """Send every frame the stack has, in order; one flusher at a time (others' frames are
        picked up by its next round). For the NIC reader (``reader``), the frames in that came
        back with its batches out (net/nic.py's exchange), in order; else none."""
        got: list[tuple[VnetHdr, bytes]] = []
        if self.flushing:
            return got
        self.flushing = True
        try:
            while True:
                try:
                    frames = self.stack.frames_out(self.proc.now())
                except Exception as e:  # noqa: BLE001 - a stack bug must not end networking
                    await self.bug("output", e)
                    return got
                if not frames:
                    return got
                got.extend(await self.nic.send(frames, exchange=reader))
        finally:
            self.flushing = False

    async def bug(self, where: str, e: Exception) -> None:
        """A stack bug: counted and logged (first few), and serving goes on."""
        self.bugs += 1
        if self.bugs <= 10:
            try:
                await self.sys.debug_write(f"[tcp] bug in {where}: {type(e).__name__}: {e}")
            except SyscallError:
                pass

    async def poll(self) -> None:
        try:
            self.stack.poll(self.proc.now())
        except Exception as e:  # noqa: BLE001 - a stack bug must not end networking
            await self.bug("timers", e)

    async def kick(self) -> None:
        """After any change to the stack: due timers, frames out, waiters woken, news printed."""
        await self.poll()
        await self.flush()
        await self.changed()

    async def changed(self) -> None:
        """Waiters whose condition now holds woken, news printed, the timer told."""
        self.info["wakeups"] += await self.waiters.notify()
        if self.stack.events:
            await self.report_events()
        await self.timer.check()

    async def tick(self) -> None:
        """The timer's round: due timers, frames out, waiters woken, news printed."""
        await self.poll()
        await self.flush()
        self.info["wakeups"] += await self.waiters.notify()
        await self.report_events()

    def deadline(self) -> float | None:
        """The earliest of the stack's deadlines and those of the waiting threads."""
        best = self.stack.next_deadline()
        waiting = self.waiters.earliest_deadline()
        if waiting is not None and (best is None or waiting < best):
            best = waiting
        return best

    # -------------------------------------------------------------- opening
    async def open(self, req: P.Open) -> Message:
        path = P.decode_text(await self.take(req.mem, req.length)).strip().strip("/").strip()
        writable = req.wants_write
        first, _, rest = path.partition("/")
        if first == "mux" and not rest:
            return await self.start_session(MuxSession(self))
        if first == "stats" and not rest:
            return await self.start_session(FileSession(self, Snapshot("stats", self.stats_json()), False, False))
        if first == "arp" and not rest:
            return await self.start_session(FileSession(self, Snapshot("arp", self.arp_json()), False, False))
        if first == "listen":
            port = parse_port(rest)
            try:
                listener = self.stack.tcp_listen(port)
            except StackError as e:
                raise stack_error(e) from None
            try:
                return await self.start_session(ListenSession(self, listener))
            except FsError:
                self.stack.tcp_unlisten(listener, self.proc.now())
                raise
        if first == "dns":
            if not rest:
                raise BadPath("expected dns/NAME")
            lookup = await self.lookup(rest.strip())
            answer = json.dumps(lookup.as_dict()).encode()
            return await self.start_session(FileSession(self, Snapshot(rest, answer), False, False))
        if first == "ping":
            if not rest:
                raise BadPath("expected ping/HOST")
            address = await self.resolve(rest.strip())
            ping = self.stack.ping_open()
            try:
                return await self.start_session(PingSession(self, ping, rest.strip(), address))
            except FsError:
                self.stack.ping_close(ping)
                raise
        if first == "udp":
            bind = rest.strip()
            if bind.isdigit():  # udp/PORT: bound, unconnected (a server's; 0: an ephemeral port)
                local, remote = (parse_port(bind) if int(bind) else 0), None
            else:
                host, port = split_hostport(rest)
                local, remote = 0, (await self.resolve(host), port)
            try:
                sock = self.stack.udp_open(local, remote)
            except StackError as e:
                raise stack_error(e) from None
            try:
                return await self.start_session(UdpSession(self, sock, writable))
            except FsError:
                self.stack.udp_close(sock)
                raise
        if not path:
            raise BadPath("empty path")
        host, port = split_hostport(path)
        return await self.connect(host, port, writable)

    async def wait_configured(self) -> None:
        if self.stack.configured:
            return
        await self.spare_worker()
        if not await self.waiters.wait_until(lambda: self.stack.configured, CONFIG_WAIT):
            raise NetError(abi.UNREACHABLE, DNS_REASONS[DnsErrorKind.NO_SERVER], "the network is not configured")

    async def lookup(self, name: str) -> Lookup:
        """A finished DNS lookup for `name`; NetError(NOTFOUND, reason) when it failed."""
        if not is_address(name):
            await self.wait_configured()
        lk = self.stack.resolve(name, self.proc.now())
        if not lk.done:
            await self.spare_worker()
            await self.kick()
            await self.waiters.wait_until(lambda: lk.done)
        if lk.error:
            raise dns_error(name, lk.error)
        return lk

    async def resolve(self, host: str) -> str:
        if is_address(host):
            return host
        return (await self.lookup(host)).addresses[0]

    async def connect(self, host: str, port: int, writable: bool) -> Message:
        address = await self.resolve(host)
        await self.wait_configured()
        stack = self.stack
        try:
            conn = stack.tcp_connect(address, port, self.proc.now())
        except StackError as e:
            raise stack_error(e) from None
        await self.spare_worker()
        await self.kick()
        done = await self.waiters.wait_until(lambda: conn.state not in (SYN_SENT, SYN_RECEIVED), CONNECT_TIMEOUT)
        if not done or conn.state == CLOSED:
            error = conn.error if done else TcpErrorKind.TIMED_OUT
            stack.tcp_release(conn, self.proc.now(), abort=True)
            await self.kick()
            raise NetError(tcp_error(error), detail=f"{host}:{port}: {error}")
        try:
            return await self.start_session(ConnSession(self, conn, writable))
        except FsError:
            stack.tcp_release(conn, self.proc.now(), abort=True)
            await self.kick()
            raise

    # -------------------------------------------------------------- introspection
    def stats_json(self) -> bytes:
        data = self.stack.stats()
        data["nic_features"] = feature_names(self.nic.features)
        data["server"] = {**self.info, "sessions": self.sessions, "mount_workers": self.mount_workers,
                          "waiting": len(self.waiters), "timer_parked": self.timer.parked,
                          "alarms": len(self.timer.alarms), "bugs": self.bugs}
        return json.dumps(data, indent=1).encode()

    def arp_json(self) -> bytes:
        return json.dumps(self.stack.arp_table(self.proc.now())).encode()


async def main(proc: Any) -> int:
    sys = proc.sys
    try:
        opts = parse_args(proc.args[1:], proc.env)
    except ValueError as e:
        await proc.print(f"[tcp] {e}")
        return 2
    try:
        nic, matched = await sys.open("/dev/nic")
    except SyscallError as e:
        await proc.print(f"[tcp] cannot open /dev/nic: {e}")
        return 1
    if matched != len("/dev/nic"):
        await proc.print("[tcp] no network card at /dev/nic")
        return 1
    mac = await mac_address(sys, nic)
    # What the card does for us: its driver's negotiated features (0 for the RTL8139).
    features = await nic_features(sys, nic)
    stack = NetStack(mac, config=opts.static, dhcp=opts.static is None, fallback=opts.fallback,
                     dhcp_timeout=opts.dhcp_timeout, hostname=opts.hostname, tcp_options=opts.tcp_options(),
                     seed=opts.seed, offloads=offloads_from_features(features))
    await NetServer(proc, stack, nic, features).run()
    return 0
