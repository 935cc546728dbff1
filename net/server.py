"""tcp: the TCP/IP stack as one program, serving /tcp (spec §11.9, DESIGN §5).

Started with its mount as stdin (handle 0). It opens /dev/nic itself, asks the card's MAC
(GET_MAC_ADDRESS), runs net/stack.py's NetStack, configures it (DHCP by default) and prints one
line on its stdout, the system console:

    [tcp] DHCP: 10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3
    [tcp] no DHCP answer; using static 10.0.2.15/24            (with --fallback)
    [tcp] no DHCP answer yet; still trying                      (without)
    [tcp] static: 10.0.2.15/24 gw 10.0.2.2 dns 10.0.2.3         (with --static)

Arguments (or the environment variables NET_STATIC, NET_FALLBACK):
    --static ADDR/PREFIX[,gw=IP][,dns=IP[+IP]][,mtu=N]   no DHCP
    --fallback ADDR/PREFIX[,...]                          use this when DHCP is silent
    --dhcp-timeout SECONDS                                before the fallback (default 10)
    --hostname NAME                                       sent in DHCP requests
    --rcvbuf BYTES                                        TCP receive window (default 61320, see RCVBUF)
    --sndbuf BYTES                                        TCP send buffer (default 131072, see SNDBUF)
    --rto-max SECONDS                                     cap on the backed-off retransmission timeout (default 60)
    --retries N                                           retransmissions before "timed out" (default 8)

The /tcp namespace (one mount; every path is opened with proc.open / OPEN as a file)
-------------------------------------------------------------------------------------
  /tcp/HOST:PORT      a TCP connection (HOST/PORT, the seed's spelling, works too). HOST is an
                      address or a DNS name. The open answers once the handshake is done:
                      errors REFUSED 18, TIMEDOUT 19, UNREACHABLE 20, NOTFOUND 7 (DNS). Then:
                        WRITE(n, chunk) -> OK(n) once every byte is in the send buffer (the reply
                                           waits while the buffer is full; needs O_WRITE, else
                                           ERROR_DENIED)
                        READ(_, max)    -> DATA(n, chunk), 1 <= n <= max, as soon as a byte is
                                           there; ERROR(NO_DATA) at the end of the stream;
                                           ERROR(RESET/TIMEDOUT...) when the connection failed
                        QUERY           -> JSON {local, remote, state, srtt, rto, ...}
                        CLOSE           -> FIN after the queued data (the stack finishes the close)
  /tcp/listen/PORT    a listening port (backlog 16; EXISTS if taken):
                        ACCEPT(65)      -> COMM_HANDLE(Handle(connection session), 0) once a
                                           handshake completes; CLOSE stops listening
  /tcp/udp/HOST:PORT  a connected UDP socket: WRITE sends one datagram (at most MTU-28 bytes),
                      READ(_, max) answers the next datagram (cut to max); ERROR(REFUSED) after
                      an ICMP port unreachable
  /tcp/dns/NAME       a file: JSON {"name", "canonical", "addresses"}; the lookup happens at open
  /tcp/ping/HOST      an ICMP echo session: ECHO(66, seq, timeout_ms) sends one echo request
                      (56 bytes of payload) and answers JSON {"seq", "from", "ttl", "bytes",
                      "time_ms"}, or ERROR(TIMEDOUT) / ERROR(UNREACHABLE)
  /tcp/mux            many sockets on one session (select/poll style; euralios.std.net.Mux).
                      Requests on a socket carry its id in the tag: op | id << 16. None waits
                      but POLL:
                        Long(MUX_CONNECT=80, n, "HOST:PORT") -> OK(id): the handshake goes on;
                                           the socket polls WRITABLE once connected, ERROR if not
                        Short(MUX_LISTEN=81, port, backlog)   -> OK(id)
                        Short(ACCEPT | id<<16)  -> OK(new id), or EMPTY when none is ready
                        Long(WRITE | id<<16, n, chunk) -> OK(taken): what fits in the send buffer
                        Short(READ | id<<16, 0, max)   -> DATA(n, chunk), EMPTY when nothing yet,
                                           ERROR(NO_DATA) at the end of the stream, ERROR(RESET...)
                        Short(MUX_WATCH=83 | id<<16, events) -> OK: which events POLL reports
                                           (default READABLE|WRITABLE|ERROR; ACCEPTABLE)
                        Short(CLOSE | id<<16, abort, 0) -> OK: FIN after the queued data (abort: RST)
                        Short(MUX_POLL=82, timeout_ms, 0) -> DATA(n, chunk) of (u32 id, u32 events)
                                           records, level-triggered: READABLE 1, WRITABLE 2,
                                           ACCEPTABLE 4, ERROR 8; waits up to timeout_ms for one
                                           (negative: no limit); EMPTY at the timeout
                      Closing the session closes its sockets. A /tcp/HOST:PORT session takes a
                      thread of the server (a process has 64): this is how one program keeps
                      hundreds of connections.
  /tcp/stats          a file: JSON counters, configuration, connections, ARP cache, server state
  /tcp/arp            a file: JSON list of ARP entries {address, mac, state, expires}
  /tcp (QUERY)        the directory: stats, arp, dns/, listen/, mux, ping/, udp/

A path that is not one of these, or a bad port, is answered Short(ERROR_INVALID_VALUE=132)
(spec §16.4 row 56). Any open flags are accepted (row 57's read-only open is served, not left
unanswered; a connection opened without O_WRITE refuses WRITE). DNS failures are
Short(ERROR, NOTFOUND, reason) with reason 1 no such name, 2 no address, 3 server failure,
4 refused, 5 bad reply, 6 no answer, 7 server unreachable, 8 no DNS server, 9 invalid name.

How it runs (threads of one process; they take turns at syscalls, so the stack needs no lock)
---------------------------------------------------------------------------------------------
* NIC reader: a blocking READ_FRAMES on /dev/nic, every queued frame per reply, fed to the
  stack; frames go out in WRITE_FRAMES batches. Both reuse one chunk each, which the driver
  hands back with its reply.
* Timer: sleeps until the stack's next deadline, at most 50 ms at a time while that deadline is
  within a second (a new, earlier deadline may appear meanwhile and a sleep cannot be cut
  short). When nothing is pending it parks in a receive; a far deadline (a DHCP renewal,
  TIME-WAIT) is left to an alarm thread sleeping until it. So an idle stack is idle.
* Mount workers receive on handle 0: opens that wait (handshake, DNS) first make sure another
  worker is free, so one slow connect never holds up the others.
* One thread per session (vfs.server's framework), answering one request at a time: a
  connection is not full-duplex within one session (a READ that waits holds up a WRITE on the
  same session).
* Whoever changes the stack "kicks" it: frames out to the NIC (one flusher at a time, in order),
  then every waiting thread whose condition now holds is woken through its private rendezvous.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from euralios.std import STDIN, Memory, Message, SyscallError, abi
from net.dns import is_address
from net.stack import IfConfig, Lookup, NetStack, PingSocket, StackError, UdpSocket, parse_config
from proto.tcp import (
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    SYN_RECEIVED,
    SYN_SENT,
    TcpConnection,
    TcpError,
    TcpErrorKind,
    TcpListener,
)
from vfs import protocol as P
from vfs.protocol import FsError
from vfs.server import DirNode, FileNode, FileSession, Node, Server, Session

# /dev/nic protocol (drivers/rtl8139.py)
NIC_BLOCKING = 1
GET_MAC_ADDRESS = 260
NIC_WRITE_FRAMES = 261
NIC_READ_FRAMES = 262
MAC_ADDRESS = 300
NIC_BATCH = 64 * 1024  # bytes of frames per WRITE_FRAMES chunk (16 pages)

ACCEPT = abi.ACCEPT
ECHO = 66
# /tcp/mux (MuxSession): requests on a socket carry its id in the tag's upper bits.
MUX_CONNECT = 80
MUX_LISTEN = 81
MUX_POLL = 82
MUX_WATCH = 83
ID_SHIFT = 16
ID_MASK = (1 << ID_SHIFT) - 1
MUX_MAX = 4096  # sockets per mux session
EV_READABLE, EV_WRITABLE, EV_ACCEPTABLE, EV_ERROR = 1, 2, 4, 8
EV_ALL = 15
_EVENT = struct.Struct("<II")  # a POLL record: socket id, events
WAKE = Message(abi.READ, 0, 0)

TIMER_CAP = 0.05  # longest sleep while a deadline is near
NEAR = 1.0  # deadlines further than this are left to an alarm thread
MAX_ALARMS = 3
MAX_MOUNT_WORKERS = 6
CONNECT_TIMEOUT = 30.0
CONFIG_WAIT = 15.0  # how long an open waits for DHCP to finish
READ_MAX = 64 * 1024
PING_PAYLOAD = bytes(range(0x10, 0x10 + 56))
# The receive window we advertise. Every byte in flight to us sits in the card's receive ring
# until the driver drains it, and a card cannot push back: a window larger than the ring holds
# loses segments whenever the driver falls behind, and each loss costs the peer a fast
# retransmit or a timeout. drivers/rtl8139 gives the card a 64 KiB ring, which holds 43 full
# frames (1514 bytes + header + CRC, dword-aligned: 1524 bytes each), so 42 full segments
# always fit (measured: no overflow, 31-34 MB/s Linux->guest; with the old 8 KiB ring only
# four fitted and the window was 5840). Lower it with --rcvbuf for a driver started with a
# smaller --ring.
RCVBUF = 42 * 1460
# Bytes a connection buffers for sending (unacknowledged + not yet sent). Twice the largest
# window a peer can offer (no window scaling): a program's 64 KiB write is taken whole while the
# previous one is still in flight, instead of waiting for ACKs half-way (measured 27 -> 34 MB/s
# guest->Linux). It is a bytearray that grows only as far as it is used.
SNDBUF = 128 * 1024

TCP_ERRORS = {
    TcpErrorKind.REFUSED: abi.REFUSED,
    TcpErrorKind.RESET: abi.RESET,
    TcpErrorKind.TIMED_OUT: abi.TIMEDOUT,
    TcpErrorKind.UNREACHABLE: abi.UNREACHABLE,
}
DNS_REASONS = {"nxdomain": 1, "no-address": 2, "servfail": 3, "refused": 4, "bad-reply": 5, "timeout": 6,
               "unreachable": 7, "no-server": 8, "invalid": 9}
STACK_ERRORS = {"unreachable": abi.UNREACHABLE, "not-configured": abi.UNREACHABLE, "in-use": abi.EXISTS,
                "invalid": abi.PARAM}


class NetError(FsError):
    """A request failed with `code`; `reason` rides in the ERROR reply's third word."""

    def __init__(self, code: int, reason: int = 0, detail: str = "") -> None:
        super().__init__(code, detail)
        self.reason = reason

    @property
    def reply(self) -> Message:
        return Message(abi.ERROR, self.code, self.reason)


class BadPath(FsError):
    """Not a path we serve: answered ERROR_INVALID_VALUE (spec §16.4 row 56)."""

    def __init__(self, detail: str) -> None:
        super().__init__(abi.PARAM, detail)

    @property
    def reply(self) -> Message:
        return Message(abi.ERROR_INVALID_VALUE, 0, 0)


def tcp_error(kind: TcpErrorKind | None) -> int:
    """The file-protocol error code for why a connection failed (a reset when we cannot tell)."""
    return TCP_ERRORS.get(kind, abi.RESET) if kind is not None else abi.RESET


def stack_error(e: StackError) -> NetError:
    return NetError(STACK_ERRORS.get(e.kind, abi.PARAM), detail=e.detail)


def split_hostport(text: str) -> tuple[str, int]:
    """`host:port` or `host/port` -> (host, port); BadPath otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, sep, port = text.rpartition("/")
    host, port = host.strip(), port.strip()
    if not sep or not host or "/" in host:
        raise BadPath(f"expected HOST:PORT, got {text!r}")
    return host, parse_port(port)


def parse_port(text: str) -> int:
    text = text.strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise BadPath(f"bad port {text!r}")
    return int(text)


# ---------------------------------------------------------------------------------- frame batches

def pack_frames(frames: list[bytes], limit: int) -> list[tuple[bytes, int]]:
    """Frames as /dev/nic batches (each frame a u16 little-endian length and its bytes), each at
    most ``limit`` bytes: [(batch, frames in it)]."""
    out: list[tuple[bytes, int]] = []
    parts: list[bytes] = []
    used = 0
    for frame in frames:
        if used + 2 + len(frame) > limit and parts:
            out.append((b"".join(parts), len(parts) // 2))
            parts, used = [], 0
        parts.append(len(frame).to_bytes(2, "little"))
        parts.append(frame)
        used += 2 + len(frame)
    if parts:
        out.append((b"".join(parts), len(parts) // 2))
    return out


class BatchChunks:
    """Spare chunks for /dev/nic batches, by size: one page (a few frames: ACKs) or NIC_BATCH
    bytes. Chunks come back from the driver with its replies; at most two of each are kept."""

    SIZES = (abi.PAGE, NIC_BATCH)

    def __init__(self, sys: Any) -> None:
        self.sys = sys
        self.spare: dict[int, list[Memory]] = {size: [] for size in self.SIZES}

    async def get(self, nbytes: int) -> Memory | None:
        """A chunk of at least ``nbytes`` (at most NIC_BATCH); None when memory is short."""
        size = abi.PAGE if nbytes <= abi.PAGE else NIC_BATCH
        spare = self.spare[size]
        if spare:
            return spare.pop()
        try:
            return Memory((await self.sys.malloc(size // abi.PAGE))[0])
        except SyscallError:
            return None

    async def room(self, mem: Memory) -> int:
        """Bytes from ``mem.vaddr`` to the end of its chunk (0: not a chunk we hold)."""
        try:
            base, size, _ = await self.sys.chunk_info(mem.vaddr)
        except SyscallError:
            return 0
        return base + size - mem.vaddr

    async def put(self, mem: Memory, room: int | None = None) -> None:
        """A chunk back from the driver: kept if it is one of our sizes, else freed."""
        if room is None:
            room = await self.room(mem)
        spare = self.spare.get(room)
        if spare is not None and len(spare) < 2:
            spare.append(mem)
            return
        try:
            await self.sys.free(mem.vaddr)
        except SyscallError:
            pass


def split_frames(data: bytes) -> list[bytes]:
    """The frames of a READ_FRAMES batch (a truncated last one is dropped)."""
    frames = []
    pos, n = 0, len(data)
    while pos + 2 <= n:
        length = data[pos] | data[pos + 1] << 8
        pos += 2
        if pos + length > n:
            break
        frames.append(data[pos:pos + length])
        pos += length
    return frames


# ---------------------------------------------------------------------------------- options

class Options:
    def __init__(self) -> None:
        self.static: IfConfig | None = None
        self.fallback: IfConfig | None = None
        self.dhcp_timeout = 10.0
        self.hostname = "euralios"
        self.rcvbuf = RCVBUF
        self.sndbuf = SNDBUF
        self.rto_max = 60.0  # net/tcp.py's defaults: about 100 s of retransmissions before TIMEDOUT
        self.retries = 8


def parse_args(args: list[str], env: dict[str, str]) -> Options:
    """The command line (after the program name); ValueError with a one-line message."""
    opts = Options()
    if env.get("NET_STATIC"):
        opts.static = parse_config(env["NET_STATIC"], "static")
    if env.get("NET_FALLBACK"):
        opts.fallback = parse_config(env["NET_FALLBACK"], "fallback")
    it = iter(args)
    for arg in it:
        key, eq, value = arg.partition("=")
        if key not in ("--static", "--fallback", "--dhcp-timeout", "--hostname", "--rcvbuf", "--sndbuf",
                       "--rto-max", "--retries"):
            raise ValueError(f"unknown option {arg!r} (use --static, --fallback, --dhcp-timeout, --hostname, "
                             "--rcvbuf, --sndbuf, --rto-max, --retries)")
        if not eq:
            value = next(it, "")
            if not value:
                raise ValueError(f"{key} needs a value")
        if key == "--static":
            opts.static = parse_config(value, "static")
        elif key == "--fallback":
            opts.fallback = parse_config(value, "fallback")
        elif key == "--dhcp-timeout":
            try:
                opts.dhcp_timeout = float(value)
            except ValueError:
                raise ValueError(f"--dhcp-timeout {value!r}: not a number of seconds") from None
            if opts.dhcp_timeout <= 0:
                raise ValueError("--dhcp-timeout must be positive")
        elif key == "--rcvbuf":
            if not value.isdigit() or not 1460 <= int(value) <= 65535:
                raise ValueError(f"--rcvbuf {value!r}: a number of bytes from 1460 to 65535")
            opts.rcvbuf = int(value)
        elif key == "--sndbuf":
            if not value.isdigit() or not 1460 <= int(value) <= 1 << 20:
                raise ValueError(f"--sndbuf {value!r}: a number of bytes from 1460 to 1048576")
            opts.sndbuf = int(value)
        elif key == "--rto-max":
            try:
                opts.rto_max = float(value)
            except ValueError:
                raise ValueError(f"--rto-max {value!r}: not a number of seconds") from None
            if not 0.2 <= opts.rto_max <= 120.0:
                raise ValueError("--rto-max must be from 0.2 (the minimum RTO) to 120 seconds")
        elif key == "--retries":
            if not value.isdigit() or not 1 <= int(value) <= 30:
                raise ValueError(f"--retries {value!r}: a count from 1 to 30")
            opts.retries = int(value)
        else:
            opts.hostname = value
    return opts


# ---------------------------------------------------------------------------------- nodes

class NetNode(Node):
    """What a session is open on: runs `on_close` when the session ends (CLOSE or the client
    dropping its handle), so sockets never outlive their sessions."""

    def __init__(self, name: str, on_close: Callable[[], Any]) -> None:
        self.name = name
        self._on_close = on_close
        self._closed = False

    async def closed(self) -> None:
        if not self._closed:
            self._closed = True
            await self._on_close()

    def info(self) -> bytes:
        return b"{}"


class Snapshot(FileNode):
    """A read-only file whose bytes were fixed at open (stats, arp, a DNS answer)."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data

    def size(self) -> int:
        return len(self.data)

    async def read(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]


class Root(DirNode):
    """The mount's directory listing (QUERY on /tcp)."""

    name = "tcp"

    def __init__(self, server: NetServer) -> None:
        self.server = server

    def lookup(self, name: str) -> Node | None:
        return None

    def entries(self) -> list[tuple[str, Node]]:
        srv = self.server
        return [("stats", Snapshot("stats", srv.stats_json())), ("arp", Snapshot("arp", srv.arp_json())),
                ("dns", DirNode()), ("listen", DirNode()), ("mux", Snapshot("mux", b"")), ("ping", DirNode()),
                ("udp", DirNode())]


class Waiter:
    """A private rendezvous a thread parks on until its condition holds (or its deadline)."""

    __slots__ = ("send", "recv", "cond", "deadline", "parked")

    def __init__(self, send: int, recv: int) -> None:
        self.send = send
        self.recv = recv
        self.cond: Callable[[], object] = lambda: True
        self.deadline: float | None = None
        self.parked = False


# ---------------------------------------------------------------------------------- sessions

class ConnSession(Session):
    """A TCP connection (see the module docstring for its requests)."""

    def __init__(self, server: NetServer, conn: TcpConnection, writable: bool) -> None:
        super().__init__(server, NetNode("connection", self.release), writable)
        self.srv = server
        self.conn = conn
        self.ended = False

    async def release(self) -> None:
        self.ended = True
        srv = self.srv
        srv.stack.tcp_release(self.conn, srv.proc.now())
        await srv.kick()

    async def handle(self, req: P.Request) -> Message:
        srv, conn = self.srv, self.conn
        if isinstance(req, P.Read):
            n = min(req.max or READ_MAX, READ_MAX)
            await srv.wait_until(lambda: conn.available or conn.at_eof or conn.error or conn.state == CLOSED)
            if conn.available:
                data = conn.receive(n)
                await srv.kick()  # reading may owe the peer a window update
                return await srv.blob_reply(abi.DATA, data)
            if conn.error:
                raise NetError(tcp_error(conn.error), detail=str(conn.error))
            raise FsError(abi.NO_DATA)
        if isinstance(req, P.Write):
            if not self.writable:
                return P.denied()
            data = await srv.take(req.mem, req.length)
            sent = 0
            while sent < len(data):
                try:
                    n = conn.send(data[sent:] if sent else data)
                except TcpError as e:
                    raise NetError(tcp_error(conn.error or e.kind), detail=str(e)) from None
                sent += n
                if n:
                    await srv.kick()
                if sent < len(data):
                    await srv.wait_until(lambda: conn.send_space or conn.error or conn.state == CLOSED)
            return P.ok(sent)
        if isinstance(req, P.Query):
            info = {"type": "tcp", "local": f"{conn.local[0]}:{conn.local[1]}",
                    "remote": f"{conn.remote[0]}:{conn.remote[1]}", "state": conn.state, "error": conn.error,
                    "srtt": conn.srtt, "rto": conn.rto, "mss": conn.send_mss, "available": conn.available,
                    "send_queued": conn.send_queued, "retransmits": conn.counters.retransmits}
            return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
        return P.unknown()


class ListenSession(Session):
    def __init__(self, server: NetServer, listener: TcpListener) -> None:
        super().__init__(server, NetNode("listener", self.release), True)
        self.srv = server
        self.listener = listener
        self.ready: TcpConnection | None = None
        self.ended = False

    async def release(self) -> None:
        self.ended = True
        srv = self.srv
        srv.stack.tcp_unlisten(self.listener, srv.proc.now())
        if self.ready is not None:
            srv.stack.tcp_release(self.ready, srv.proc.now(), abort=True)
            self.ready = None
        await srv.kick()

    def _has_connection(self) -> bool:
        if self.ready is None and not self.ended:
            self.ready = self.srv.stack.tcp_accept(self.listener)
        return self.ready is not None or self.ended

    async def handle(self, req: P.Request) -> Message:
        srv = self.srv
        if isinstance(req, P.Unknown) and req.msg.tag == ACCEPT:
            await srv.wait_until(self._has_connection)
            conn, self.ready = self.ready, None
            if conn is None:
                raise FsError(abi.CLOSED)
            try:
                return await srv.start_session(ConnSession(srv, conn, True))
            except FsError:
                srv.stack.tcp_release(conn, srv.proc.now(), abort=True)
                await srv.kick()
                raise
        if isinstance(req, P.Query):
            info = {"type": "listener", "port": self.listener.local[1], "pending": self.listener.pending}
            return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
        if isinstance(req, (P.Read, P.Write)):
            raise FsError(abi.PARAM, "a listener has no data: send ACCEPT")
        return P.unknown()


class UdpSession(Session):
    def __init__(self, server: NetServer, sock: UdpSocket, writable: bool) -> None:
        super().__init__(server, NetNode("udp", self.release), writable)
        self.srv = server
        self.sock = sock

    async def release(self) -> None:
        self.srv.stack.udp_close(self.sock)

    async def handle(self, req: P.Request) -> Message:
        srv, sock = self.srv, self.sock
        if isinstance(req, P.Write):
            if not self.writable:
                return P.denied()
            data = await srv.take(req.mem, req.length)
            if sock.error:
                raise NetError(abi.REFUSED if sock.error == "refused" else abi.UNREACHABLE, detail=sock.error)
            try:
                srv.stack.udp_send(sock, data, srv.proc.now())
            except StackError as e:
                raise stack_error(e) from None
            await srv.kick()
            return P.ok(len(data))
        if isinstance(req, P.Read):
            await srv.wait_until(lambda: sock.queue or sock.error)
            if sock.queue:
                _, _, data = sock.queue.popleft()
                return await srv.blob_reply(abi.DATA, data[:req.max or len(data)])
            kind, sock.error = sock.error, None
            raise NetError(abi.REFUSED if kind == "refused" else abi.UNREACHABLE, detail=kind or "")
        if isinstance(req, P.Query):
            info = {"type": "udp", "port": sock.port, "remote": f"{sock.remote[0]}:{sock.remote[1]}"
                    if sock.remote else None, "queued": len(sock.queue)}
            return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
        return P.unknown()


class MuxSession(Session):
    """Many sockets on one session, served by one thread: /tcp/mux (see the module docstring).

    Every request on a socket is non-blocking and names it in the tag's upper bits
    (``op | id << ID_SHIFT``); POLL is the one request that waits, for an event on any socket
    the client watches. This is select/poll for programs with many connections: a /tcp/HOST:PORT
    session needs a thread of ours each, and a process has 64."""

    def __init__(self, server: NetServer) -> None:
        super().__init__(server, NetNode("mux", self.release), True)
        self.srv = server
        self.conns: dict[int, TcpConnection] = {}
        self.listeners: dict[int, TcpListener] = {}
        self.watch: dict[int, int] = {}
        self.next_id = 1
        # Readiness is kept up to date from the stack's change notices (NetStack.observe):
        # `active` holds the watched events of every socket that has some, `stale` the sockets
        # changed since, so a POLL (and every re-check while it waits) costs what changed.
        self.sid_of: dict[TcpConnection, int] = {}
        self.active: dict[int, int] = {}
        self.stale: set[int] = set()

    def _add_conn(self, sid: int, conn: TcpConnection) -> None:
        self.conns[sid] = conn
        self.sid_of[conn] = sid
        self.watch[sid] = EV_READABLE | EV_WRITABLE | EV_ERROR
        self.stale.add(sid)
        self.srv.stack.observe(conn, self._changed)

    def _changed(self, conn: TcpConnection) -> None:
        sid = self.sid_of.get(conn)
        if sid is not None:
            self.stale.add(sid)

    async def release(self) -> None:
        srv, now = self.srv, self.srv.proc.now()
        for conn in self.conns.values():
            srv.stack.observe(conn, None)
            srv.stack.tcp_release(conn, now)
        for listener in self.listeners.values():
            srv.stack.tcp_unlisten(listener, now)
        self.conns.clear()
        self.listeners.clear()
        self.watch.clear()
        self.sid_of.clear()
        self.active.clear()
        self.stale.clear()
        await srv.kick()

    def _new_id(self) -> int:
        if len(self.watch) >= MUX_MAX:
            raise NetError(abi.MEMALLOC, detail=f"{MUX_MAX} sockets on one mux session")
        while self.next_id in self.watch:
            self.next_id = self.next_id % MUX_MAX + 1
        sid = self.next_id
        self.next_id = sid % MUX_MAX + 1
        return sid

    def events(self, sid: int) -> int:
        """The socket's current events (level-triggered), before the watch mask."""
        conn = self.conns.get(sid)
        if conn is not None:
            ev = 0
            state = conn.state
            if conn.available or conn.at_eof or conn.error or state == CLOSED:
                ev |= EV_READABLE
            if (state == ESTABLISHED or state == CLOSE_WAIT) and conn.send_space:
                ev |= EV_WRITABLE
            if conn.error or (state == CLOSED and not conn.at_eof):
                ev |= EV_ERROR
            return ev
        listener = self.listeners.get(sid)
        if listener is not None and listener.ready:
            return EV_ACCEPTABLE
        return 0

    def ready(self) -> list[tuple[int, int]]:
        active, watch = self.active, self.watch
        for sid in self.stale:
            ev = self.events(sid) & watch.get(sid, 0)
            if ev:
                active[sid] = ev
            else:
                active.pop(sid, None)
        self.stale.clear()
        out = list(active.items())
        for sid, listener in self.listeners.items():
            if watch[sid] & EV_ACCEPTABLE and listener.ready:
                out.append((sid, EV_ACCEPTABLE))
        return out

    async def handle(self, req: P.Request) -> Message:
        srv = self.srv
        msg = req.msg
        tag = msg.tag if isinstance(msg.tag, int) else 0
        op, sid = tag & ID_MASK, tag >> ID_SHIFT
        if sid == 0:
            if isinstance(req, P.Query):
                info = {"type": "mux", "sockets": len(self.watch), "connections": len(self.conns),
                        "listeners": len(self.listeners)}
                return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
            if op == MUX_POLL and not msg.is_long:
                return await self.poll(msg.d2 if isinstance(msg.d2, int) else 0)
            if op == MUX_CONNECT and isinstance(msg.d3, Memory) and isinstance(msg.d2, int):
                if not 0 <= msg.d2 <= P.MAX_PATH:
                    raise FsError(abi.PARAM, "connect: bad length")
                host, port = split_hostport(P.decode_text(await srv.take(msg.d3, msg.d2)).strip())
                sid = self._new_id()
                address = await srv.resolve(host)
                await srv.wait_configured()
                try:
                    conn = srv.stack.tcp_connect(address, port, srv.proc.now())
                except StackError as e:
                    raise stack_error(e) from None
                self._add_conn(sid, conn)
                await srv.kick()
                return Message(abi.OK, sid, 0)
            if op == MUX_LISTEN and not msg.is_long:
                port = msg.d2 if isinstance(msg.d2, int) else 0
                backlog = msg.d3 if isinstance(msg.d3, int) and 0 < msg.d3 <= 1024 else 16
                if not 0 < port < 65536:
                    raise BadPath(f"bad port {port}")
                sid = self._new_id()
                try:
                    self.listeners[sid] = srv.stack.tcp_listen(port, backlog)
                except StackError as e:
                    raise stack_error(e) from None
                self.watch[sid] = EV_ACCEPTABLE
                return Message(abi.OK, sid, 0)
            return P.unknown()
        if sid not in self.watch:
            raise FsError(abi.INVALID_HANDLE, f"no socket {sid} on this mux session")
        if op == MUX_WATCH and not msg.is_long:
            self.watch[sid] = msg.d2 & EV_ALL if isinstance(msg.d2, int) else 0
            self.stale.add(sid)
            return P.ok()
        if op == abi.CLOSE_TAG:
            return await self.close(sid, abort=msg.d2 == 1)
        listener = self.listeners.get(sid)
        if listener is not None:
            if op != ACCEPT:
                raise FsError(abi.PARAM, "a listener has no data: send ACCEPT")
            conn = srv.stack.tcp_accept(listener)
            if conn is None:
                return Message(abi.EMPTY, 0, 0)
            new = self._new_id()
            self._add_conn(new, conn)
            return Message(abi.OK, new, 0)
        conn = self.conns[sid]
        if op == abi.READ and not msg.is_long:
            n = msg.d3 if isinstance(msg.d3, int) and msg.d3 > 0 else READ_MAX
            if conn.available:
                data = conn.receive(min(n, READ_MAX))
                await srv.kick()  # reading may owe the peer a window update
                return await srv.blob_reply(abi.DATA, data)
            if conn.error:
                raise NetError(tcp_error(conn.error), detail=str(conn.error))
            if conn.at_eof or conn.state == CLOSED:
                raise FsError(abi.NO_DATA)
            return Message(abi.EMPTY, 0, 0)
        if op == abi.WRITE and isinstance(msg.d3, Memory) and isinstance(msg.d2, int):
            data = await srv.take(msg.d3, msg.d2)
            try:
                n = conn.send(data) if data else 0
            except TcpError as e:
                raise NetError(tcp_error(conn.error or e.kind), detail=str(e)) from None
            if n:
                await srv.kick()
            return P.ok(n)
        return P.unknown()

    async def close(self, sid: int, abort: bool) -> Message:
        srv = self.srv
        del self.watch[sid]
        self.active.pop(sid, None)
        self.stale.discard(sid)
        conn = self.conns.pop(sid, None)
        if conn is not None:
            del self.sid_of[conn]
            srv.stack.observe(conn, None)
            srv.stack.tcp_release(conn, srv.proc.now(), abort=abort)
        listener = self.listeners.pop(sid, None)
        if listener is not None:
            srv.stack.tcp_unlisten(listener, srv.proc.now())
        await srv.kick()
        return P.ok()

    async def poll(self, timeout_ms: int) -> Message:
        """Every watched socket with an event, as (u32 id, u32 events) records; waits up to
        timeout_ms for one (0: not at all, negative: as long as it takes). EMPTY at the timeout."""
        srv = self.srv
        ready = self.ready()
        if not ready and timeout_ms != 0:
            found: list[list[tuple[int, int]]] = []

            def any_ready() -> bool:
                r = self.ready()
                if r:
                    found.append(r)
                return bool(r)

            await srv.wait_until(any_ready, None if timeout_ms < 0 else timeout_ms / 1000)
            ready = found[-1] if found else self.ready()
        if not ready:
            return Message(abi.EMPTY, 0, 0)
        data = b"".join(_EVENT.pack(sid, ev) for sid, ev in ready)
        return await srv.blob_reply(abi.DATA, data)


class PingSession(Session):
    def __init__(self, server: NetServer, sock: PingSocket, host: str, address: str) -> None:
        super().__init__(server, NetNode("ping", self.release), True)
        self.srv = server
        self.sock = sock
        self.host = host
        self.address = address

    async def release(self) -> None:
        self.srv.stack.ping_close(self.sock)

    async def handle(self, req: P.Request) -> Message:
        srv, sock = self.srv, self.sock
        if isinstance(req, P.Unknown) and req.msg.tag == ECHO and not req.msg.is_long:
            seq = req.msg.d2 if isinstance(req.msg.d2, int) else 0
            timeout_ms = req.msg.d3 if isinstance(req.msg.d3, int) and req.msg.d3 > 0 else 1000
            seq &= 0xFFFF
            sock.replies.clear()
            sock.errors.clear()
            try:
                srv.stack.ping_send(sock, self.address, seq, PING_PAYLOAD, srv.proc.now())
            except StackError as e:
                raise stack_error(e) from None
            sent = sock.sent[seq]
            await srv.kick()

            def answered() -> bool:
                while sock.replies and sock.replies[0].seq != seq:
                    sock.replies.popleft()  # a late reply to an earlier probe
                return bool(sock.replies) or any(s == seq for s, _ in sock.errors)

            if not await srv.wait_until(answered, timeout_ms / 1000):
                raise NetError(abi.TIMEDOUT)
            if not sock.replies:
                raise NetError(abi.UNREACHABLE)
            r = sock.replies.popleft()
            info = {"seq": seq, "from": r.source, "ttl": r.ttl, "bytes": r.size,
                    "time_ms": round((r.time - sent) * 1000, 3)}
            return await srv.blob_reply(abi.DATA, json.dumps(info).encode())
        if isinstance(req, P.Query):
            info = {"type": "ping", "host": self.host, "address": self.address, "bytes": 8 + len(PING_PAYLOAD)}
            return await srv.blob_reply(abi.JSON, json.dumps(info).encode())
        return P.unknown()


class MountSession(Session):
    """The shared mount handle: opens, and QUERY for the listing. Several workers serve it."""

    mount = True

    def __init__(self, server: NetServer) -> None:
        super().__init__(server, server.root, False)
        self.srv = server

    async def handle(self, req: P.Request) -> Message:
        srv = self.srv
        if isinstance(req, P.Open):
            srv.mount_busy += 1
            try:
                return await srv.open(req)
            finally:
                srv.mount_busy -= 1
        if isinstance(req, P.Query):
            return await srv.blob_reply(abi.JSON, srv.root.info())
        if isinstance(req, (P.Read, P.Write)):
            raise FsError(abi.PARAM, "file request to the /tcp directory")
        return P.unknown()


# ---------------------------------------------------------------------------------- the server

class NetServer(Server):
    """The stack's I/O layer: NIC, timer, mount workers, sessions (see the module docstring)."""

    def __init__(self, proc: Any, stack: NetStack, nic: int) -> None:
        self.root = Root(self)
        super().__init__(proc, self.root, writable=False, max_read=READ_MAX)
        self.stack = stack
        self.nic = nic
        self.mount = MountSession(self)
        self.mount_workers = 0
        self.mount_busy = 0
        self.flushing = False
        self.parked: list[Waiter] = []
        self.pool: list[Waiter] = []
        self.timer_send = self.timer_recv = -1
        self.timer_parked = False
        self.alarms: list[float] = []
        self.chunks = BatchChunks(self.sys)
        self.info = dict.fromkeys(("timer_wakeups", "timer_parks", "alarms_started", "wakeups", "nic_errors",
                                   "frames_in", "frames_out", "nic_batches_in", "nic_batches_out"), 0)

    # -------------------------------------------------------------- running
    async def run(self) -> None:
        self.timer_send, self.timer_recv = await self.sys.new_rendezvous()
        await self.report_events()
        await self.proc.spawn_thread(self.nic_reader)
        await self.proc.spawn_thread(self.timer)
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

    async def say(self, text: str) -> None:
        try:
            await self.proc.print(text)
        except SyscallError:
            pass

    async def report_events(self) -> None:
        events = self.stack.events
        while events:
            kind, cfg = events.pop(0)
            if kind == "configured" and isinstance(cfg, IfConfig):
                label = "DHCP" if cfg.source == "dhcp" else cfg.source
                await self.say(f"[tcp] {label}: {cfg.describe()}")
            elif kind == "fallback" and isinstance(cfg, IfConfig):
                await self.say(f"[tcp] no DHCP answer; using static {cfg.describe()}")
            elif kind == "dhcp-waiting":
                await self.say("[tcp] no DHCP answer yet; still trying")
            elif kind == "unconfigured":
                await self.say("[tcp] DHCP lease lost; no address")

    # -------------------------------------------------------------- the NIC
    async def nic_reader(self) -> None:
        """READ_FRAMES in a loop: each reply carries every frame the driver had queued (as many
        as fit) in a chunk of ours, which is kept for the next request (no allocation per
        batch). A one-page chunk while frames come a few at a time (ACKs), a 64 KiB one while
        they come in bulk: moving a chunk costs a TLB shootdown per page."""
        sys = self.sys
        big = False
        while True:
            mem = await self.chunks.get(NIC_BATCH if big else abi.PAGE)
            try:
                reply = await sys.rcall(self.nic, NIC_READ_FRAMES, NIC_BLOCKING, mem if mem is not None else 0)
            except SyscallError as e:
                self.info["nic_errors"] += 1
                if isinstance(e.message, Message):
                    await self.release(e.message)  # our chunk came back with the error
                if e.code in (abi.CLOSED, abi.INVALID_HANDLE):
                    await self.say(f"[tcp] /dev/nic went away: {e}")
                    return
                await self.proc.sleep(0.1)
                continue
            mem = reply.d3
            if reply.tag != abi.DATA or not isinstance(mem, Memory):
                if isinstance(mem, Memory):
                    await self.chunks.put(mem)
                else:
                    await self.release(reply)
                await self.proc.sleep(0.01)  # EMPTY: the driver had no thread to wait with
                continue
            n = reply.d2 if isinstance(reply.d2, int) else 0
            room = await self.chunks.room(mem)
            data = sys.gate.load(mem.vaddr, n) if 0 < n <= room else b""
            await self.chunks.put(mem, room)
            big = n > abi.PAGE // 2
            frames = split_frames(data)
            self.info["nic_batches_in"] += 1
            self.info["frames_in"] += len(frames)
            now = self.proc.now()
            for frame in frames:
                try:
                    self.stack.frame_received(frame, now)
                except Exception as e:  # noqa: BLE001 - a stack bug must not end networking
                    await self.bug("input", e)
            await self.kick()

    async def flush(self) -> None:
        """Send every frame the stack has, in order; one flusher at a time (others' frames are
        picked up by its next round). Frames travel to the driver in batches (WRITE_FRAMES) in
        a chunk that the driver hands back with its answer, to carry a later batch."""
        if self.flushing:
            return
        self.flushing = True
        sys = self.sys
        try:
            while True:
                try:
                    frames = self.stack.frames_to_send(self.proc.now())
                except Exception as e:  # noqa: BLE001 - a stack bug must not end networking
                    await self.bug("output", e)
                    return
                if not frames:
                    return
                for batch, count in pack_frames(frames, NIC_BATCH):
                    mem = await self.chunks.get(len(batch))
                    if mem is None:
                        self.info["nic_errors"] += count  # no memory for it: lost, as on a wire
                        continue
                    sys.gate.store(mem.vaddr, batch)
                    try:
                        reply = await sys.rcall(self.nic, NIC_WRITE_FRAMES, len(batch), mem)
                        self.info["frames_out"] += count
                        self.info["nic_batches_out"] += 1
                        if isinstance(reply.d3, Memory):
                            await self.chunks.put(reply.d3)
                    except SyscallError as e:
                        self.info["nic_errors"] += count  # lost, as on a wire; TCP will resend
                        if isinstance(e.message, Message):
                            await self.release(e.message)  # the chunk came back to us
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
        await self.wake_waiters()
        if self.stack.events:
            await self.report_events()
        await self.timer_check()

    # -------------------------------------------------------------- waiting
    async def wait_until(self, cond: Callable[[], object], timeout: float | None = None) -> bool:
        """Block this thread until cond() is true (True) or `timeout` seconds pass (False)."""
        if cond():
            return True
        deadline = None if timeout is None else self.proc.now() + timeout
        w = self.pool.pop() if self.pool else Waiter(*await self.sys.new_rendezvous())
        try:
            while True:
                if cond():
                    return True
                if deadline is not None and self.proc.now() >= deadline:
                    return False
                w.cond, w.deadline, w.parked = cond, deadline, True
                self.parked.append(w)
                if deadline is not None:
                    await self.timer_check()
                await self.sys.receive(w.recv)
        finally:
            if w.parked:
                w.parked = False
                self.parked.remove(w)
            self.pool.append(w)

    async def wake_waiters(self) -> None:
        if not self.parked:
            return
        now = self.proc.now()
        for w in list(self.parked):
            if w.parked and (w.cond() or (w.deadline is not None and now >= w.deadline)):
                w.parked = False
                self.parked.remove(w)
                self.info["wakeups"] += 1
                try:
                    await self.sys.send(w.send, WAKE)
                except SyscallError:
                    pass  # only when the process is going down

    def deadline(self) -> float | None:
        best = self.stack.next_deadline()
        for w in self.parked:
            if w.deadline is not None and (best is None or w.deadline < best):
                best = w.deadline
        return best

    # -------------------------------------------------------------- timers
    async def timer(self) -> None:
        sys = self.sys
        while True:
            self.info["timer_wakeups"] += 1
            await self.poll()
            await self.flush()
            await self.wake_waiters()
            await self.report_events()
            d = self.deadline()
            now = self.proc.now()
            if d is not None and d - now <= NEAR:
                await self.proc.sleep(min(max(d - now, 0.001), TIMER_CAP))
                continue
            if d is not None and not await self.arm_alarm(d):
                await self.proc.sleep(TIMER_CAP)  # no alarm thread to spare: keep an eye on it
                continue
            self.timer_parked = True
            self.info["timer_parks"] += 1
            await sys.receive(self.timer_recv)

    async def timer_check(self) -> None:
        """Wake the parked timer if a deadline now needs it (near, or not covered by an alarm)."""
        if not self.timer_parked:
            return
        d = self.deadline()
        if d is None or (d - self.proc.now() > NEAR and self.alarm_covers(d)):
            return
        await self.wake_timer()

    async def wake_timer(self) -> None:
        if self.timer_parked:
            self.timer_parked = False
            await self.sys.send(self.timer_send, WAKE)

    def alarm_covers(self, d: float) -> bool:
        return any(t <= d + 0.01 for t in self.alarms)

    async def arm_alarm(self, d: float) -> bool:
        if self.alarm_covers(d):
            return True
        if len(self.alarms) >= MAX_ALARMS:
            return False
        self.alarms.append(d)
        try:
            await self.proc.spawn_thread(self.alarm, d)
        except SyscallError:
            self.alarms.remove(d)
            return False
        self.info["alarms_started"] += 1
        return True

    async def alarm(self, target: float) -> None:
        try:
            await self.proc.sleep(max(0.0, target - self.proc.now()))
        finally:
            self.alarms.remove(target)
        await self.wake_timer()

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
            sock = self.stack.ping_open()
            try:
                return await self.start_session(PingSession(self, sock, rest.strip(), address))
            except FsError:
                self.stack.ping_close(sock)
                raise
        if first == "udp":
            host, port = split_hostport(rest)
            address = await self.resolve(host)
            try:
                sock = self.stack.udp_open(0, (address, port))
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
        if not await self.wait_until(lambda: self.stack.configured, CONFIG_WAIT):
            raise NetError(abi.UNREACHABLE, DNS_REASONS["no-server"], "the network is not configured")

    async def lookup(self, name: str) -> Lookup:
        """A finished DNS lookup for `name`; NetError(NOTFOUND, reason) when it failed."""
        if not is_address(name):
            await self.wait_configured()
        lk = self.stack.resolve(name, self.proc.now())
        if not lk.done:
            await self.spare_worker()
            await self.kick()
            await self.wait_until(lambda: lk.done)
        if lk.error:
            raise NetError(abi.NOTFOUND, DNS_REASONS.get(lk.error, 0), f"{name}: {lk.error}")
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
        done = await self.wait_until(lambda: conn.state not in (SYN_SENT, SYN_RECEIVED), CONNECT_TIMEOUT)
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
        data["server"] = {**self.info, "sessions": self.sessions, "mount_workers": self.mount_workers,
                          "waiting": len(self.parked), "timer_parked": self.timer_parked,
                          "alarms": len(self.alarms), "bugs": self.bugs}
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
    reply = await sys.rcall(nic, GET_MAC_ADDRESS, 0, 0, expect=MAC_ADDRESS)
    mac = int(reply.d2).to_bytes(6, "little") if isinstance(reply.d2, int) else bytes(6)
    tcp_options = {"rcv_buf": opts.rcvbuf, "snd_buf": opts.sndbuf, "rto_max": opts.rto_max,
                   "max_retries": opts.retries}
    stack = NetStack(mac, config=opts.static, dhcp=opts.static is None, fallback=opts.fallback,
                     dhcp_timeout=opts.dhcp_timeout, hostname=opts.hostname, tcp_options=tcp_options)
    await NetServer(proc, stack, nic).run()
    return 0
