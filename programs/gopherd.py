"""gopherd: a Gopher server (RFC 1436) serving a directory of the file system.

    gopherd [--port 70] [--host NAME] [--advertise HOST:PORT] [DIR]

DIR (default /ramdisk/gopher; created with a welcome menu when missing) is the root of the
"gopher hole". A selector is a path relative to DIR ("/docs/a.txt"); ".." is refused, so a client
can never read outside DIR. A directory is answered with a menu: its `gophermap` file if it has
one, else a generated listing (directories as type 1, files as 0, 9 or another type chosen by
extension, and a search item at the top level). A file is answered byte-exact. A request with a
query (selector TAB words) searches file names below that directory.

gophermap lines: "TYPE DISPLAY<TAB>SELECTOR<TAB>HOST<TAB>PORT" (missing host/port are this
server's; a selector not starting with "/" is relative to the gophermap's directory, an empty one
names the display text as a file there); a line without a tab is an information line; a line
holding just "*" inserts the generated listing; a "." line ends the map.

HOST (--host, default "localhost") is the name menus give for this server: set it to a name the
clients can reach. Menus carry the listening port too, unless --advertise HOST:PORT names the
address clients must use instead: behind a port forward (`--net user,hostfwd=tcp:127.0.0.1:7070-:70`)
the server listens on 70 but a client on the host reaches it as 127.0.0.1:7070, and a menu that
said port 70 would send it nowhere (--advertise 127.0.0.1:7070). Each connection is served by
its own thread (so one slow client does not hold up the others), one log line per request on
stdout.
"""

from __future__ import annotations

from euralios.std import SyscallError, abi
from net.gopher import (
    BINARY,
    DEFAULT_PORT,
    ERROR,
    HTML,
    INFO,
    MENU,
    SEARCH,
    TEXT,
    encode_text,
    end_menu,
    error_menu,
    info_line,
    menu_line,
    parse_port,
    parse_request,
    printable,
    split_lines,
)

DEFAULT_DIR = "/ramdisk/gopher"
GOPHERMAP = "gophermap"
MAX_REQUEST = 4096  # a request line longer than this is refused (it is not Gopher)
SNIFF = 512  # bytes read to tell text from binary in files without a known extension
SEARCH_DEPTH = 8
SEARCH_RESULTS = 200

EXTENSIONS: dict[str, str] = {}
for _type, _exts in {
    TEXT: "txt text md rst py c h rs toml json csv log cfg conf ini sh asc nfo gph",
    HTML: "html htm",
    "g": "gif",
    "I": "png jpg jpeg bmp ico webp",
    "s": "wav mp3 ogg flac",
    "d": "pdf ps",
    "4": "hqx",
    "6": "uue",
}.items():
    for _ext in _exts.split():
        EXTENSIONS[_ext] = _type

WELCOME_MAP = """\
Welcome to gopherd on EuraliOS!

This gopher hole is served from {root} inside EuraliOS.
Put files and directories there and they are listed here; a file
named gophermap replaces this page (a line holding * lists the files).

*
"""

ABOUT = """\
About this server
=================

gopherd is a small Gopher (RFC 1436) server written for EuraliOS-py.
Directories are menus, files are documents, and the search item finds
file names. Browse it with:  gopher localhost 70
"""


def guess_type(name: str, head: bytes | None = None) -> str:
    """The item type of a file: by extension, else text if its first bytes are UTF-8 without
    NULs (programs in /bin, READMEs without an extension), else binary."""
    if "." in name:
        t = EXTENSIONS.get(name.rsplit(".", 1)[1].lower())
        if t is not None:
            return t
        return BINARY
    if head is None:
        return BINARY
    if b"\0" in head:
        return BINARY
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 3:  # not just a character cut at the end of the sample
            return BINARY
    return TEXT


def selector_parts(selector: str) -> list[str] | None:
    """A selector -> path components below the root; None if it tries to climb out or holds
    characters no file name here has (control characters, bytes that are not UTF-8)."""
    parts = [p for p in selector.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." or "\0" in p or printable(p) != p for p in parts):
        return None  # printable(): no control characters, no bytes that were not UTF-8
    return parts


class Gopherd:
    def __init__(self, proc, root: str, host: str, port: int, menu_port: int | None = None) -> None:
        self.proc = proc
        self.root = root.rstrip("/") or "/"
        self.host = host  # the host menus name (advertised)
        self.port = port  # the port we listen on
        self.menu_port = menu_port or port  # the port menus name (advertised)

    def path(self, parts: list[str]) -> str:
        return "/".join([self.root.rstrip("/"), *parts]) if parts else self.root

    @staticmethod
    def selector(parts: list[str]) -> str:
        return "/" + "/".join(parts)

    # ------------------------------------------------------------------ start
    async def prepare(self) -> None:
        """Create the root with a welcome page when it does not exist."""
        proc = self.proc
        try:
            await proc.stat_dir(self.root)
            return
        except SyscallError as e:
            if e.code != abi.NOTFOUND:
                raise
        path = ""
        for part in [p for p in self.root.split("/") if p]:
            path += "/" + part
            try:
                await proc.stat_dir(path)  # (a mount point such as /ramdisk cannot be made)
            except SyscallError:
                await proc.mkdir(path)
        await proc.write_file(f"{self.root}/{GOPHERMAP}", WELCOME_MAP.format(root=self.root))
        await proc.write_file(f"{self.root}/about.txt", ABOUT)

    async def run(self) -> int:
        proc = self.proc
        try:
            await self.prepare()
        except SyscallError as e:
            await proc.print(f"gopherd: {self.root}: {abi.ERROR_TEXT.get(e.code, str(e)).lower()}")
            return 1
        try:
            listener = await proc.listen(self.port)
        except SyscallError as e:
            await proc.print(f"gopherd: cannot listen on port {self.port}: {abi.ERROR_TEXT.get(e.code, str(e)).lower()}")
            return 1
        await proc.print(f"[gopherd] serving {self.root} on port {self.port} as {self.host}"
                         + (f":{self.menu_port}" if self.menu_port != self.port else ""))
        while True:
            try:
                stream = await listener.accept()
            except SyscallError as e:
                await proc.print(f"[gopherd] accept failed: {e}; stopping")
                await listener.close()
                return 1
            try:
                await proc.spawn_thread(self.connection, stream)
            except SyscallError:
                await self.connection(stream)  # out of threads: serve it here, then accept again

    # ------------------------------------------------------------------ one connection
    async def connection(self, stream) -> None:
        try:
            request = await self.read_request(stream)
            if request is None:
                await self.log("(request too long)", "refused")
                await stream.write_all(error_menu("Request too long"))
                return
            selector, query = parse_request(request)
            shown = f"{printable(selector)!r}" + (f" search {printable(query)!r}" if query is not None else "")
            try:
                body, what = await self.respond(selector, query)
            except SyscallError as e:  # e.g. a file that cannot be read: say so to the client
                body, what = error_menu(f"Server error: {e}"), f"error: {e}"
            except Exception as e:  # noqa: BLE001 - a bug must not end the server (and every connection)
                body, what = error_menu("Server error"), f"bug: {type(e).__name__}: {e}"
            await stream.write_all(body)
            await self.log(shown, what)
        except SyscallError as e:
            await self.log("(connection)", f"failed: {e}")
        finally:
            await stream.close()

    @staticmethod
    async def read_request(stream) -> bytes | None:
        """Bytes up to the first LF (or the end of the stream); None when too long."""
        data = bytearray()
        while b"\n" not in data:
            chunk = await stream.read(MAX_REQUEST)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_REQUEST:
                return None
        return bytes(data)

    async def log(self, request: str, what: str) -> None:
        try:
            await self.proc.print(f"[gopherd] {request} -> {what}")
        except SyscallError:
            pass

    # ------------------------------------------------------------------ answers
    async def respond(self, selector: str, query: str | None) -> tuple[bytes, str]:
        """(response bytes, log text) for one request."""
        parts = selector_parts(selector)
        if parts is None:
            return error_menu(f"Not allowed: {selector}"), "refused (outside the root)"
        path = self.path(parts)
        try:
            info = await self.proc.stat_dir(path)
        except SyscallError as e:
            if e.code in (abi.NOTFOUND, abi.NOT_DIR):
                return error_menu(f"Not found: {selector}"), "not found"
            raise
        if info.get("type") == "file":
            data = await self.proc.read_file(path)
            kind = guess_type(parts[-1] if parts else "", data[:SNIFF])
            if kind == TEXT:
                return encode_text(data), f"text, {len(data)} bytes"
            return data, f"type {kind}, {len(data)} bytes"
        if query is not None:
            lines = await self.search(parts, query)
            return end_menu(lines), f"menu, {len(lines) - 1} results"
        lines = await self.menu(parts, info)
        return end_menu(lines), f"menu, {len(lines)} lines"

    async def listing(self, parts: list[str], info: dict) -> list[bytes]:
        """Generated menu lines for a directory: subdirectories, then files, each by name."""
        out: list[bytes] = []
        if not parts:
            out.append(menu_line(SEARCH, "Search file names", "/", self.host, self.menu_port))
        for d in sorted(s["name"] for s in info.get("subdirs", [])):
            if not d.startswith("."):
                out.append(menu_line(MENU, d + "/", self.selector([*parts, d]), self.host, self.menu_port))
        for f in sorted(f["name"] for f in info.get("files", [])):
            if f.startswith(".") or f == GOPHERMAP:
                continue
            kind = await self.file_type(parts, f)
            out.append(menu_line(kind, f, self.selector([*parts, f]), self.host, self.menu_port))
        return out

    async def file_type(self, parts: list[str], name: str) -> str:
        head: bytes | None = None
        if "." not in name:
            try:
                async with await self.proc.open(self.path([*parts, name])) as f:
                    head = await f.read(SNIFF)
            except SyscallError:
                head = None
        return guess_type(name, head)

    async def menu(self, parts: list[str], info: dict) -> list[bytes]:
        names = {f["name"] for f in info.get("files", [])}
        if GOPHERMAP not in names:
            return await self.listing(parts, info)
        data = await self.proc.read_file(self.path([*parts, GOPHERMAP]))
        out: list[bytes] = []
        for line in split_lines(data.decode("utf-8", "surrogateescape")):
            if line == ".":
                break
            if line == "*":
                out += await self.listing(parts, info)
            elif "\t" not in line:
                out.append(info_line(line))
            else:
                out.append(self.map_line(parts, line))
        return out

    def map_line(self, parts: list[str], line: str) -> bytes:
        """One gophermap line with a tab -> a complete menu line."""
        fields = line.split("\t")
        kind, display = line[0], fields[0][1:]
        selector = fields[1] if len(fields) > 1 else ""
        host = fields[2] if len(fields) > 2 and fields[2] else self.host
        port = parse_port(fields[3]) if len(fields) > 3 else None
        if kind not in (INFO, ERROR) and not selector.startswith(("/", "URL:")):
            selector = self.selector([*parts, selector or display])
        return menu_line(kind, display, selector, host, port or (self.menu_port if host == self.host else DEFAULT_PORT))

    async def search(self, parts: list[str], query: str) -> list[bytes]:
        """Menu lines for the names below `parts` containing every word of the query."""
        words = query.casefold().split()
        found: list[bytes] = []

        async def walk(at: list[str], depth: int) -> None:
            if depth > SEARCH_DEPTH or len(found) >= SEARCH_RESULTS:
                return
            try:
                info = await self.proc.stat_dir(self.path(at))
            except SyscallError:
                return
            for d in sorted(s["name"] for s in info.get("subdirs", [])):
                if len(found) < SEARCH_RESULTS and all(w in d.casefold() for w in words):
                    found.append(menu_line(MENU, "/".join([*at[len(parts):], d]) + "/", self.selector([*at, d]),
                                           self.host, self.menu_port))
                await walk([*at, d], depth + 1)
            for f in sorted(f["name"] for f in info.get("files", [])):
                if f != GOPHERMAP and len(found) < SEARCH_RESULTS and all(w in f.casefold() for w in words):
                    kind = await self.file_type(at, f)
                    found.append(menu_line(kind, "/".join([*at[len(parts):], f]), self.selector([*at, f]),
                                           self.host, self.menu_port))

        if words:
            await walk(parts, 0)
        head = info_line(f"Search for {query!r}: {len(found)} found" if found else f"Nothing found for {query!r}")
        return [head, *found]


async def main(proc) -> int:
    args = proc.args[1:]
    port, host, root = DEFAULT_PORT, "localhost", DEFAULT_DIR
    menu_port: int | None = None
    usage = "Usage: gopherd [--port 70] [--host NAME] [--advertise HOST:PORT] [DIR]"
    given = False
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-h", "--help"):
            await proc.print(usage)
            return 0
        if a in ("--port", "-p", "--host", "--advertise") and i + 1 < len(args):
            if a == "--advertise":
                ahost, sep, aport = args[i + 1].rpartition(":")
                p = parse_port(aport) if sep else None
                if not ahost or p is None:
                    await proc.print(f"gopherd: --advertise wants HOST:PORT, not {args[i + 1]!r}")
                    return 2
                host, menu_port = ahost, p
            elif a == "--host":
                host = args[i + 1]
            else:
                p = parse_port(args[i + 1])
                if p is None:
                    await proc.print(f"gopherd: invalid port {args[i + 1]}")
                    return 2
                port = p
            i += 2
            continue
        if a.startswith("-") or given:
            await proc.print(usage)
            return 2
        root, given = proc.abspath(a), True
        i += 1
    return await Gopherd(proc, root, host, port, menu_port).run()
