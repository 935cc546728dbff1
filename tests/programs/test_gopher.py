"""The gopher browser and gopherd, typed at on a booted system, talking through a loopback /tcp.

The real TCP/IP stack (net/) is not needed for this: a small file server in this test, mounted at
/tcp, speaks the /tcp protocol of euralios/std/net.py and joins each connection a program opens
("/tcp/HOST:PORT") to the listener of that port ("/tcp/listen/PORT" + ACCEPT) in memory. So the
browser (run from the shell, as a person would) and gopherd (from /bin, through the loader's
import rule) meet exactly as they would over the network. Hosts the loopback does not know answer
NOTFOUND (as DNS would), "slow.example" answers TIMEDOUT, a port nobody listens on REFUSED.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from euralios.boot import program_source
from euralios.pytest_plugin import trimmed_screen as screen
from euralios.pytest_plugin import wait_screen as wait
from euralios.std import STDIN, Handle, Memory, Message, SyscallError, abi
from euralios.std.fs import take_bytes
from euralios.system_boot import FullSystem, boot_full

LOOPBACK = ("localhost", "127.0.0.1")
POLL = 0.001  # seconds between looks at an empty pipe


# ---------------------------------------------------------------------- a loopback /tcp
@dataclass
class Pipe:
    """One direction of a connection."""

    data: bytearray = field(default_factory=bytearray)
    closed: bool = False  # the writer sent CLOSE (FIN) or went away


@dataclass
class End:
    """One end of a connection: what it reads and what it writes."""

    inbound: Pipe
    outbound: Pipe


def loopback_tcp() -> Callable[..., Awaitable[int]]:
    """A /tcp server program (a coroutine function to spawn): every OPEN of "HOST:PORT" with a
    loopback host is joined to the listener on PORT. Each session has its own thread, which
    waits (polling) until there is something to answer, as the real stack's sessions block."""
    listeners: dict[int, list[End]] = {}

    async def main(proc) -> int:
        sys = proc.sys

        async def reply(handle: int, msg: Message) -> None:
            try:
                await sys.send(handle, msg)
            except SyscallError:
                pass

        async def data_reply(payload: bytes) -> Message:
            vaddr, _ = await sys.malloc(max(1, -(-len(payload) // abi.PAGE)))
            sys.gate.store(vaddr, payload)
            return Message(abi.DATA, len(payload), Memory(vaddr))

        async def session(handle: int, end: End) -> None:
            """A connection session: WRITE -> OK, READ -> DATA / NO_DATA at the end, CLOSE."""
            try:
                while True:
                    try:
                        msg = await sys.receive(handle)
                    except SyscallError:
                        return  # the client dropped its handle
                    if msg.tag == abi.WRITE and isinstance(msg.d3, Memory):
                        payload = await take_bytes(sys, msg)
                        end.outbound.data += payload
                        answer = Message(abi.OK, len(payload), 0)
                    elif msg.tag == abi.READ:
                        want = msg.d3 if isinstance(msg.d3, int) and msg.d3 > 0 else 65536
                        while not end.inbound.data and not end.inbound.closed:
                            await proc.sleep(POLL)
                        if end.inbound.data:
                            chunk = bytes(end.inbound.data[:want])
                            del end.inbound.data[:want]
                            answer = await data_reply(chunk)
                        else:
                            answer = Message(abi.ERROR, abi.NO_DATA, 0)
                    elif msg.tag == abi.CLOSE_TAG:
                        if msg.reply:
                            await reply(handle, Message(abi.OK, 0, 0))
                        return
                    else:
                        answer = Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
                    if msg.reply:
                        await reply(handle, answer)
            finally:
                end.outbound.closed = True
                await sys.close(handle)

        async def start(end: End) -> Message:
            mine, theirs = await sys.new_rendezvous()
            await proc.spawn_thread(session, mine, end)
            return Message(abi.COMM_HANDLE, Handle(theirs), 0)

        async def listener(handle: int, port: int) -> None:
            """A listening session: ACCEPT waits for the next connection to PORT."""
            try:
                while True:
                    try:
                        msg = await sys.receive(handle)
                    except SyscallError:
                        return
                    if msg.tag == abi.ACCEPT:
                        while not listeners[port]:
                            await proc.sleep(POLL)
                        answer = await start(listeners[port].pop(0))
                    elif msg.tag == abi.CLOSE_TAG:
                        return
                    else:
                        answer = Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
                    if msg.reply:
                        await reply(handle, answer)
            finally:
                listeners.pop(port, None)
                await sys.close(handle)

        while True:  # the mount: OPEN requests
            msg = await sys.receive(STDIN)
            if not (abi.OPEN_TAG <= msg.tag < abi.OPEN_TAG + 16 and isinstance(msg.d3, Memory)):
                if msg.reply:
                    await reply(STDIN, Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0))
                continue
            path = (await take_bytes(sys, msg)).decode().strip("/")
            if path.startswith("listen/"):
                port = int(path.split("/", 1)[1])
                if port in listeners:
                    answer = Message(abi.ERROR, abi.EXISTS, 0)
                else:
                    listeners[port] = []
                    mine, theirs = await sys.new_rendezvous()
                    await proc.spawn_thread(listener, mine, port)
                    answer = Message(abi.COMM_HANDLE, Handle(theirs), 0)
            else:
                host, _, port_text = path.rpartition(":")
                port = int(port_text)
                if host == "slow.example":
                    answer = Message(abi.ERROR, abi.TIMEDOUT, 0)
                elif host not in LOOPBACK:
                    answer = Message(abi.ERROR, abi.NOTFOUND, 0)
                elif port not in listeners:
                    answer = Message(abi.ERROR, abi.REFUSED, 0)
                else:
                    to_server, to_client = Pipe(), Pipe()
                    listeners[port].append(End(inbound=to_server, outbound=to_client))
                    answer = await start(End(inbound=to_client, outbound=to_server))
            await reply(STDIN, answer)

    return main


# ---------------------------------------------------------------------- screen helpers
def row_attr(system: FullSystem, row: int, col: int = 3) -> int:
    return system.cell(row, col)[1]


ABOUT = b"First line\r\n..two dots stay two\n.one dot\n\tTabbed  \n.\n"  # ends with a lone "." line
NOTES = b"Notes from the files directory\n"
BLOB = bytes(range(256)) * 4 + b"\r\n.\r\n"
GOPHERMAP = (
    "Welcome to the test hole\n"
    "1Files\t/files\n"
    "0About this server\tabout.txt\n"
    "7Search names\t/\n"
    "9Blob\t/blob.bin\n"
    "ZMystery\t/mystery\n"
)


async def setup_hole(proc) -> int:
    """The gopher hole gopherd will serve."""
    await proc.mkdir("/ramdisk/gopher")
    await proc.mkdir("/ramdisk/gopher/files")
    await proc.write_file("/ramdisk/gopher/gophermap", GOPHERMAP)
    await proc.write_file("/ramdisk/gopher/about.txt", ABOUT)
    await proc.write_file("/ramdisk/gopher/blob.bin", BLOB)
    await proc.write_file("/ramdisk/gopher/files/notes.txt", NOTES)
    return 0


async def check_saved(proc) -> int:
    return 0 if await proc.read_file("/ramdisk/blob.bin") == BLOB else 1


@pytest.fixture
async def hole() -> AsyncIterator[FullSystem]:
    """A booted system with the loopback /tcp, gopherd serving the test hole on port 70, and
    root logged in on F2."""
    async with boot_full() as system:
        tcp = system.kernel.new_rendezvous(refs=2)
        system.kernel.spawn(loopback_tcp(), name="loopback-tcp", args=["tcp"], stdin=tcp, vfs=system.vfs)
        system.vfs.mount("/tcp", tcp)
        await wait(system, r"login:$")
        await system.type("root\n")
        await wait(system, r"# ?$")
        assert await system.run(setup_hole) == 0
        system.spawn(program_source("programs/gopherd.py"), ["gopherd", "--port", "70"], name="gopherd")
        await system.wait_for_output(r"\[gopherd\] serving /ramdisk/gopher on port 70 as localhost")
        yield system


# ---------------------------------------------------------------------- the session
async def test_browse_follow_back_go_search_save_unknown_and_quit(hole: FullSystem) -> None:
    s = hole
    await s.type("clear\ngopher localhost 70\n")
    text = await wait(s, r"gopher://localhost/1 +item 1/5")
    lines = text.split("\n")
    assert lines[:6] == [
        "       Welcome to the test hole",
        "> DIR  Files",
        "  TXT  About this server",
        "  ASK  Search names",
        "  BIN  Blob",
        "  ?Z   Mystery",
    ]
    assert row_attr(s, 1) != row_attr(s, 2)  # the selection is in reverse video
    assert row_attr(s, 1) == row_attr(s, 23)  # ... as the status line is
    assert row_attr(s, 1, 79) == row_attr(s, 23, 79) == row_attr(s, 23)  # all 80 columns of them
    assert "[gopherd] '' -> menu, 6 lines" in s.output()

    # Down, Enter: the text item, every byte shown (CRLF and LF lines, dots, a tab, spaces).
    await s.type("{Down}")
    await wait(s, r"item 2/5")
    await s.type("{Enter}")
    text = await wait(s, r"gopher://localhost/0/about\.txt +lines 1-5/5")
    assert s.screen_text().split("\n")[:6] == [line.ljust(80) for line in [
        "First line", "..two dots stay two", ".one dot", "        Tabbed  ", ".", ""]]
    # Back to the menu, the selection where it was.
    await s.type("{Backspace}")
    await wait(s, r"^> TXT  About this server$")
    await s.type("{Left}")  # nothing before the first page: said, not crashed
    await wait(s, r"^No previous page$")

    # The submenu (a generated listing), then g + a URL straight to a document.
    await s.type("{Up}{Enter}")
    await wait(s, r"^> TXT  notes\.txt$")
    await s.type("g")
    await wait(s, r"^Go to \(host \[port\] or gopher:// URL\):")
    await s.type("gopher://localhost:70/0/files/notes.txt\n")
    await wait(s, r"\A(?s:Notes from the files directory\n.*)gopher://localhost/0/files/notes\.txt")
    await s.type("{Backspace}{Backspace}")
    await wait(s, r"^> DIR  Files$")

    # A search: a prompt, then a menu of results.
    await s.type("{Down}{Down}{Enter}")
    await wait(s, r"^Search names - words to search for:")
    await s.type("notes\n")
    text = await wait(s, r"gopher://localhost/7/%09notes +item 1/1")
    assert "       Search for 'notes': 1 found" in text and "> TXT  files/notes.txt" in text
    await s.type("{Left}")

    # A binary: saved in /ramdisk, byte for byte.
    await s.type("{Down}{Enter}")
    await wait(s, r"^Saved 1029 bytes to /ramdisk/blob\.bin$")
    assert await s.run(check_saved) == 0

    # An unknown type is listed but not followed.
    await s.type("{Down}{Enter}")
    await wait(s, r"^gopher: cannot open items of unknown type 'Z'$")
    assert re.search(r"^> \?Z   Mystery$", screen(s), re.MULTILINE)

    # Help, then quit.
    await s.type("?")
    await wait(s, r"^EuraliOS gopher - keys$")
    await s.type(" ")
    await wait(s, r"^> \?Z   Mystery$")
    await s.type("q")
    await wait(s, r"\A\[gopher\] Bye!\n#$")


async def test_connection_errors_are_one_line(hole: FullSystem) -> None:
    s = hole
    # At start: the message, and back to the shell.
    await s.type("clear\ngopher nowhere.invalid\n")
    await wait(s, r"^gopher: nowhere\.invalid: not found\n\[gopher: exit status 1\]\n#$")
    await s.type("clear\ngopher localhost 7070\n")
    await wait(s, r"^gopher: localhost:7070: connection refused\n")
    await s.type("clear\ngopher gopher://slow.example/\n")
    await wait(s, r"^gopher: slow\.example:70: timed out\n")
    await s.type("clear\ngopher localhost 99999\n")
    await wait(s, r"^gopher: invalid port 99999\n")
    # Inside the browser: a message on the bottom line; the page stays.
    await s.type("clear\ngopher\n")
    await wait(s, r"^Go to \(host \[port\] or gopher:// URL\):")
    await s.type("nowhere.invalid\n")
    await wait(s, r"^gopher: nowhere\.invalid: not found$")
    assert "Welcome to the EuraliOS gopher browser." in screen(s)
    await s.type("glocalhost 7070\n")
    await wait(s, r"^gopher: localhost:7070: connection refused$")
    await s.type("glocalhost\n")
    await wait(s, r"gopher://localhost/1 +item 1/5")
    await s.type("{Down}{Down}{Down}{Down}{Down}")  # the selection stops at the last link
    await wait(s, r"item 5/5")
    await s.type("q")
    await wait(s, r"\A\[gopher\] Bye!\n#$")
    # No /tcp at all is not blamed on DNS.
    await s.type("clear\numount /tcp\ngopher localhost\n")
    await wait(s, r"^gopher: no network \(/tcp is not mounted\)$")


LONG = ("x" * 80 + "y" * 80 + "z" * 42 + "\n" + "".join(f"line {i:02}\n" for i in range(1, 51))).encode()


async def write_long(proc) -> int:
    await proc.write_file("/ramdisk/fresh/long.txt", LONG)
    return 0


async def test_gopherd_welcome_hole_and_a_long_text(hole: FullSystem) -> None:
    s = hole
    s.spawn(program_source("programs/gopherd.py"), ["gopherd", "--port", "71", "/ramdisk/fresh"], name="gopherd")
    await s.wait_for_output(r"\[gopherd\] serving /ramdisk/fresh on port 71")
    assert await s.run(write_long) == 0
    await s.type("clear\ngopher localhost:71\n")
    text = await wait(s, r"gopher://localhost:71/1 +item 1/3")
    assert "       Welcome to gopherd on EuraliOS!" in text
    assert re.search(r"^> ASK  Search file names\n  TXT  about\.txt\n  TXT  long\.txt$", text, re.MULTILINE)
    await s.type("{End}{Enter}")
    text = await wait(s, r"gopher://localhost:71/0/long\.txt +lines 1-23/53")
    assert text.split("\n")[:4] == ["x" * 80, "y" * 80, "z" * 42, "line 01"]  # wrapped at 80
    await s.type("{PgDn}")
    text = await wait(s, r"lines 24-46/53")
    assert text.startswith("line 21\n")
    await s.type("{End}")
    text = await wait(s, r"lines 31-53/53")
    assert text.split("\n")[22] == "line 50"
    await s.type("{Home}{Down}")
    await wait(s, r"lines 2-24/53")
    await s.type("q")
    await wait(s, r"\A\[gopher\] Bye!\n#$")


async def test_gopherd_refuses_to_leave_its_directory(hole: FullSystem) -> None:
    s = hole
    await s.type("clear\ngopher gopher://localhost/1/../bin\n")
    text = await wait(s, r"gopher://localhost/1/\.\./bin +no links")
    assert "ERR  Not allowed: /../bin" in text
    assert re.search(r"^Server says: Not allowed: /\.\./bin$", text, re.MULTILINE)
    assert "[gopherd] '/../bin' -> refused (outside the root)" in s.output()
    await s.type("q")
    await wait(s, r"\[gopher\] Bye!")


async def test_gopherd_on_the_wire(hole: FullSystem) -> None:
    """Raw requests: files come back byte-exact (RFC-encoded only when a raw file would read as
    ended early), and requests no file name could match get an error menu, not a dead server."""
    from net.gopher import decode_text, parse_menu

    replies: dict[bytes, bytes] = {}

    async def client(proc) -> int:
        for request in (b"/about.txt\r\n", b"/files/notes.txt\n", b"/blob.bin\r\n", b"/caf\xe9\r\n",
                        b"/x\x1b[2J\r\n", b"/" + b"a" * 5000 + b"\r\n", b"/files\r\n"):
            stream = await proc.connect("localhost", 70)
            await stream.write_all(request)
            replies[request] = await stream.read_all()
            await stream.close()
        return 0

    assert await hole.run(client) == 0
    assert replies[b"/about.txt\r\n"] == b"First line\r\n...two dots stay two\n..one dot\n\tTabbed  \n..\n.\r\n"
    assert decode_text(replies[b"/about.txt\r\n"]) == ABOUT
    assert replies[b"/files/notes.txt\n"] == NOTES  # raw, as most servers send files
    assert replies[b"/blob.bin\r\n"] == BLOB
    for bad in (b"/caf\xe9\r\n", b"/x\x1b[2J\r\n"):
        (item,) = parse_menu(replies[bad])
        assert item.type == "3" and item.display.startswith("Not allowed")
    (item,) = parse_menu(replies[b"/" + b"a" * 5000 + b"\r\n"])
    assert (item.type, item.display) == ("3", "Request too long")
    assert [i.display for i in parse_menu(replies[b"/files\r\n"])] == ["notes.txt"]
