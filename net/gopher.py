"""Gopher (RFC 1436, URLs per RFC 4266), sans-IO: menus, item types, URLs, requests, text bodies.

The browser (programs/gopher.py) and the server (programs/gopherd.py) share this module so that
what one writes the other reads back exactly; neither touches the network here, which is what
lets every rule below be tested without booting anything.

Wire format reminders (RFC 1436):

* request: the selector then CRLF; a search (type 7) sends selector TAB query CRLF;
* menu: lines ``TYPE DISPLAY TAB SELECTOR TAB HOST TAB PORT`` ending in CRLF, closed by a line
  holding a single ``.``; real servers send LF only, drop the ``.``, leave fields out or append
  gopher+ fields — the parser accepts all of that and never raises;
* text (type 0): lines, a closing ``.`` line, lines that start with ``.`` doubled ("dot
  stuffing"). Most modern servers send files raw instead (no closing line, no stuffing), so the
  decoder undoes stuffing only in a body that really ends with the closing line — that is the
  only way both kinds of server round-trip byte-exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

DEFAULT_PORT = 70

TEXT = "0"
MENU = "1"
CSO = "2"
ERROR = "3"
SEARCH = "7"
TELNET = "8"
BINARY = "9"
HTML = "h"
INFO = "i"

#: Item type -> a short name (the browser's label) and what it is.
ITEM_TYPES: dict[str, tuple[str, str]] = {
    "0": ("TXT", "text file"),
    "1": ("DIR", "menu"),
    "2": ("CSO", "CSO phone-book server"),
    "3": ("ERR", "error"),
    "4": ("HQX", "BinHex file"),
    "5": ("DOS", "DOS binary archive"),
    "6": ("UUE", "uuencoded file"),
    "7": ("ASK", "search"),
    "8": ("TEL", "telnet session"),
    "9": ("BIN", "binary file"),
    "+": ("MIR", "mirror server"),
    "T": ("3270", "tn3270 session"),
    "g": ("GIF", "GIF image"),
    "I": ("IMG", "image"),
    "s": ("SND", "sound"),
    "d": ("DOC", "document"),
    "h": ("HTM", "HTML page"),
    "i": ("", "information"),
}

#: Types whose body is saved as a file rather than shown (RFC 1436's binary kinds, and the
#: common de-facto image/sound/document ones; 4 and 6 are text encodings of binaries).
BINARY_TYPES = frozenset("9546gIsd")

#: Types the browser knows how to open: shown (0, h), listed (1), asked (7) or saved (binaries).
FOLLOWABLE = frozenset("017h") | BINARY_TYPES


def type_label(item_type: str) -> str:
    """A short label for a menu column ("TXT", "DIR"); unknown types show as "?" + the type
    character, so a user can still tell what a server meant."""
    known = ITEM_TYPES.get(item_type)
    if known is not None:
        return known[0]
    return "?" + printable(item_type[:1] or " ")


def type_name(item_type: str) -> str:
    """A human description ("text file", "menu"...; "unknown type 'Z'")."""
    known = ITEM_TYPES.get(item_type)
    return known[1] if known is not None else f"unknown type {item_type!r}"


def printable(text: str) -> str:
    """Text safe to put on a console: control characters, DEL and undecodable bytes (surrogate
    escapes) become "?", tabs stay (callers expand them), so nothing a server sends can move the
    cursor or change colours."""
    return "".join(
        c if c == "\t" or (c >= " " and c != "\x7f" and not 0xD800 <= ord(c) <= 0xDFFF) else "?" for c in text
    )


# ---------------------------------------------------------------------- menus
@dataclass(frozen=True)
class Item:
    """One menu line. `raw` is the line as received (without its line end)."""

    type: str
    display: str
    selector: str = ""
    host: str = ""
    port: int = DEFAULT_PORT
    raw: str = ""

    @property
    def selectable(self) -> bool:
        """Info and error lines are text in the menu, not links."""
        return self.type not in (INFO, ERROR)

    @property
    def followable(self) -> bool:
        return self.type in FOLLOWABLE

    @property
    def is_binary(self) -> bool:
        return self.type in BINARY_TYPES

    def location(self, query: str | None = None) -> Location:
        return Location(self.host, self.port, self.type, self.selector, query)

    def line(self) -> str:
        """The menu line for this item, without line end (what a server sends)."""
        return f"{self.type}{self.display}\t{self.selector}\t{self.host}\t{self.port}"


def _decode(data: bytes | str) -> str:
    # surrogateescape keeps bytes that are not UTF-8, so a selector goes back to its server
    # exactly as it came (build_request encodes the same way).
    return data if isinstance(data, str) else data.decode("utf-8", "surrogateescape")


def split_lines(text: str) -> list[str]:
    """Lines ended by LF or CRLF (one CR removed); a final line without an end is kept."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def parse_port(text: str) -> int | None:
    """A TCP port number 1..65535, or None."""
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        return None
    port = int(text)
    return port if 0 < port < 65536 else None


def parse_item(line: str, default_host: str = "", default_port: int = DEFAULT_PORT) -> Item:
    """One menu line -> Item. Missing fields are filled in (selector "", the current host and
    port), a bad port becomes the default, extra (gopher+) fields are ignored. An empty line is
    a blank info line, which is how most servers mean it."""
    if not line:
        return Item(INFO, "", raw=line)
    item_type, rest = line[0], line[1:]
    fields = rest.split("\t")
    display = fields[0]
    selector = fields[1] if len(fields) > 1 else ""
    host = fields[2].strip() if len(fields) > 2 else ""
    port = parse_port(fields[3]) if len(fields) > 3 else None
    return Item(item_type, display, selector, host or default_host, port or default_port, line)


def parse_menu(data: bytes | str, default_host: str = "", default_port: int = DEFAULT_PORT) -> list[Item]:
    """A menu response -> items, in order. Stops at the closing "." line if there is one
    (anything after it is not the menu); never raises."""
    items: list[Item] = []
    for line in split_lines(_decode(data)):
        if line == ".":
            break
        items.append(parse_item(line, default_host, default_port))
    return items


def menu_line(item_type: str, display: str, selector: str, host: str, port: int) -> bytes:
    """One menu line with CRLF, for servers. Tabs and line ends inside a field would break the
    line's structure, so they become spaces."""

    def clean(s: str) -> str:
        return s.replace("\t", " ").replace("\r", " ").replace("\n", " ")

    return f"{item_type}{clean(display)}\t{clean(selector)}\t{clean(host)}\t{port}\r\n".encode(
        "utf-8", "surrogateescape")


def info_line(text: str) -> bytes:
    """An "i" line (the selector/host/port fields are placeholders, as is customary)."""
    return menu_line(INFO, text, "", "error.host", 1)


def error_menu(message: str) -> bytes:
    """A whole menu response saying `message` with a type 3 line, as servers answer a bad
    selector."""
    return menu_line(ERROR, message, "", "error.host", 1) + b".\r\n"


def end_menu(lines: list[bytes]) -> bytes:
    """Menu lines -> a response closed by the "." line."""
    return b"".join(lines) + b".\r\n"


# ---------------------------------------------------------------------- text bodies
_TERMINATORS = (b".\r\n", b".\n")


def _terminated(data: bytes) -> bytes | None:
    """The body before a closing "." line, or None when the body does not end with one."""
    for term in _TERMINATORS:
        if data == term:
            return b""
        if data.endswith(b"\n" + term):
            return data[: -len(term)]
    return None


def decode_text(data: bytes) -> bytes:
    """The document a text (type 0) response carries, byte-exact.

    If the response ends with the closing "." line, that line is removed and dot stuffing is
    undone (".." at the start of a line -> "."): the server followed RFC 1436. Otherwise the
    server sent the file raw, and so are the bytes returned. Line ends are left as they came."""
    body = _terminated(data)
    if body is None:
        return data
    return re.sub(rb"(^|\n)\.\.", rb"\1.", body)


def encode_text(data: bytes) -> bytes:
    """What a server sends for a text file so that decode_text gives `data` back exactly.

    The file goes raw (as most servers send it, and as a plain TCP client expects) unless its
    last line is a lone "." — raw, that would read as the closing line — in which case it is
    sent the RFC way: lines starting with "." doubled, then the closing "." line."""
    if _terminated(data) is None:
        return data
    return re.sub(rb"(^|\n)\.", rb"\1..", data) + b".\r\n"


# ---------------------------------------------------------------------- requests
def build_request(selector: str, query: str | None = None) -> bytes:
    """selector CRLF, or selector TAB query CRLF for a search. Line ends inside would end the
    request early, so they are dropped."""
    text = selector if query is None else f"{selector}\t{query}"
    text = text.replace("\r", "").replace("\n", "")
    return text.encode("utf-8", "surrogateescape") + b"\r\n"


def parse_request(data: bytes) -> tuple[str, str | None]:
    """Server side: the request line -> (selector, query or None). The line ends at the first
    LF (a CR before it is removed); gopher+ fields after a second TAB are ignored."""
    line = data.split(b"\n", 1)[0]
    if line.endswith(b"\r"):
        line = line[:-1]
    text = line.decode("utf-8", "surrogateescape")
    selector, tab, rest = text.partition("\t")
    if not tab:
        return selector, None
    query = rest.split("\t", 1)[0]
    return selector, query


# ---------------------------------------------------------------------- locations and URLs
@dataclass(frozen=True)
class Location:
    """Where an item lives: what a URL names and a request needs."""

    host: str
    port: int = DEFAULT_PORT
    type: str = MENU
    selector: str = ""
    query: str | None = None

    def url(self) -> str:
        """gopher://HOST[:PORT]/TYPE SELECTOR[%09QUERY] (RFC 4266); the port is left out when it
        is 70. Characters that would change the URL's meaning are %-escaped."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if self.port == DEFAULT_PORT else f":{self.port}"
        safe = "/:@!$&'()*+,;=~-._"
        path = quote(self.selector, safe=safe, errors="surrogateescape")
        if self.query is not None:
            path += "%09" + quote(self.query, safe=safe, errors="surrogateescape")
        return f"gopher://{host}{port}/{self.type}{path}"

    def request(self) -> bytes:
        return build_request(self.selector, self.query)


_URL = re.compile(r"^gopher://(\[[^\]]*\]|[^/:]*)(?::([^/]*))?(/.*)?$", re.IGNORECASE | re.DOTALL)


def parse_url(text: str) -> Location:
    """gopher://HOST[:PORT]/[TYPE][SELECTOR] -> Location; ValueError with a message a user can
    read. No path or "/" is the server's root menu; "%09" in the selector starts a search query."""
    m = _URL.match(text.strip())
    if m is None:
        raise ValueError(f"not a gopher URL: {text!r}")
    host, port_text, path = m.group(1), m.group(2), m.group(3) or ""
    if host.startswith("["):
        host = host[1:-1]
    if not host:
        raise ValueError(f"no host in {text!r}")
    port = DEFAULT_PORT
    if port_text is not None and port_text != "":
        p = parse_port(port_text)
        if p is None:
            raise ValueError(f"invalid port {port_text}")
        port = p
    path = path[1:]
    if not path:
        return Location(host, port)
    item_type, rest = path[0], path[1:]
    query: str | None = None
    lowered = rest.lower()
    if "%09" in lowered:
        cut = lowered.index("%09")
        rest, query = rest[:cut], unquote(rest[cut + 3:], errors="surrogateescape")
    return Location(host, port, item_type, unquote(rest, errors="surrogateescape"), query)


def parse_target(args: list[str] | str) -> Location:
    """What a user names: a URL, "HOST", "HOST PORT" or "HOST:PORT" -> Location (the root menu
    unless a URL says otherwise). ValueError with a readable message."""
    words = args.split() if isinstance(args, str) else [a for a in args if a.strip()]
    if not words:
        raise ValueError("no host given")
    if len(words) > 2:
        raise ValueError("too many arguments: give HOST [PORT] or a gopher:// URL")
    first = words[0].strip()
    if first.lower().startswith("gopher://"):
        if len(words) > 1:
            raise ValueError("a URL carries its own port")
        return parse_url(first)
    if "://" in first:
        raise ValueError(f"not a gopher URL: {first}")
    host, port_text = first, words[1] if len(words) > 1 else None
    if port_text is None and first.count(":") == 1:
        host, port_text = first.split(":")
    if not host or "/" in host:
        raise ValueError(f"bad host name: {first}")
    port = DEFAULT_PORT
    if port_text is not None:
        p = parse_port(port_text)
        if p is None:
            raise ValueError(f"invalid port {port_text}")
        port = p
    return Location(host, port)


def file_name(selector: str, fallback: str = "download") -> str:
    """A safe file name for saving an item: the last path component of its selector, with
    characters a file system would mind replaced; `fallback` when nothing usable is left."""
    base = selector.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    base = "".join(c if (c.isascii() and c.isalnum()) or c in "._-+" else "_" for c in printable(base)).strip(".")
    return base[:64] or fallback


__all__ = [
    "BINARY_TYPES", "DEFAULT_PORT", "FOLLOWABLE", "ITEM_TYPES", "Item", "Location", "build_request",
    "decode_text", "encode_text", "end_menu", "error_menu", "file_name", "info_line", "menu_line",
    "parse_item", "parse_menu", "parse_port", "parse_request", "parse_target", "parse_url",
    "printable", "split_lines", "type_label", "type_name",
]
