"""gopher: a full-screen Gopher browser.

    gopher                          start page; asks for a host or URL
    gopher HOST [PORT]              open HOST's root menu (port 70 by default)
    gopher gopher://HOST[:PORT]/[TYPE][SELECTOR]

Menus list their items with a type label (TXT, DIR, ASK, BIN...); the selected one is shown in
reverse video. Up/Down select, Enter (or Right) follows, PageUp/PageDown scroll, Backspace (or
Left) goes back, g opens a host or URL, ? or x shows help, q quits. Text is shown as it came
(every byte; tabs expanded, long lines wrapped); binaries (types 9, 5, 4, 6, g, I, s, d) are saved
in /ramdisk; searches (type 7) ask for words first. Unknown item types are listed, not followed.

Why full-screen rather than the seed's scrolling printout with link numbers: arrows and a
highlighted selection are what a person expects of a browser, and a redraw never loses the menu
off the top of the screen. The screen is drawn with ANSI sequences on an 80x25 console, all 80
columns of it: the console wraps as a VT100 does, only when a character follows one written into
column 80, so a full row (even the bottom one) is drawn without the screen moving. Each row is
erased before it is written, since an erase after a full row would take its last cell.
Connections go through the TCP/IP stack at /tcp (proc.connect), one per request, as Gopher
intends.
"""

from __future__ import annotations

from euralios.std import SyscallError, abi
from euralios.std.keys import KEY_DOWN, KEY_END, KEY_HOME, KEY_LEFT, KEY_PGDN, KEY_PGUP, KEY_RIGHT, KEY_UP
from net.gopher import (
    BINARY_TYPES,
    ERROR,
    HTML,
    INFO,
    MENU,
    SEARCH,
    TEXT,
    Item,
    Location,
    decode_text,
    file_name,
    parse_menu,
    parse_target,
    printable,
    split_lines,
    type_label,
    type_name,
)

ROWS, COLS = 25, 80
VIEW = ROWS - 2  # content rows; then the status line and the message line
WIDTH = COLS  # all 80 columns: the console's wrap is deferred (drivers.vt)
MAX_BODY = 8 * 1024 * 1024  # a response larger than this is cut (and said so)
SAVE_DIR = "/ramdisk"
ENTER, BACKSPACE, ESC, CTRL_U, DEL = 10, 8, 27, 21, 127
REVERSE, RED, GREY, RESET = "\x1b[7m", "\x1b[31m", "\x1b[90m", "\x1b[0m"

HELP = """\
EuraliOS gopher - keys

  Up / Down          select the previous / next link
  Enter / Right      follow the selected link
  PageUp / PageDown  scroll a page (Home / End: top / bottom)
  Backspace / Left   go back to the previous page
  g                  go to a host or URL, e.g.  localhost 70  or
                     gopher://localhost:70/0/about.txt
  ? / x              this help
  q                  quit

Item types: TXT text, DIR menu, ASK search (asks for words first), HTM shown
as text, BIN GIF IMG SND DOC HQX DOS UUE saved to /ramdisk, ERR an error from
the server. Lines without a label are information. Types shown as ?X are not
understood and are not followed.

Press any key to go back."""

HOME = [
    "iWelcome to the EuraliOS gopher browser.",
    "i",
    "iPress g to open a host (e.g.  localhost 70) or a gopher:// URL,",
    "i? for help, q to quit. A Gopher server to try inside EuraliOS: gopherd.",
    "i",
    "1Floodgap, the biggest gopher hole\t\tgopher.floodgap.com\t70",
]


class Page:
    """What is on screen, kept whole in the history so going back needs no network.

    (A plain class: the loader runs programs as modules outside sys.modules, where dataclasses
    cannot look their module up.)"""

    def __init__(self, location: Location | None, items: list[Item] | None = None,
                 lines: list[str] | None = None) -> None:
        self.location = location  # None: the start page
        self.items = items or []  # a menu
        self.lines = lines  # a text document, wrapped for the screen
        self.top = 0
        self.selected = -1

    @property
    def is_text(self) -> bool:
        return self.lines is not None

    @property
    def length(self) -> int:
        return len(self.lines) if self.lines is not None else len(self.items)

    @property
    def url(self) -> str:
        return self.location.url() if self.location is not None else "(start page)"


def wrap(data: bytes) -> list[str]:
    """A document as screen lines: each line shown whole (tabs at 8 columns, unprintable
    characters as "?"), lines longer than the screen continued on the next row."""
    out: list[str] = []
    for line in split_lines(data.decode("utf-8", "surrogateescape")):
        text = printable(line).expandtabs(8)
        if not text:
            out.append("")
        while text:
            out.append(text[:WIDTH])
            text = text[WIDTH:]
    return out


def error_message(e: SyscallError, loc: Location) -> str:
    """One line a user understands for a failed connection."""
    where = f"{loc.host}:{loc.port}"
    if e.code == abi.NOTFOUND:
        return f"gopher: {loc.host}: not found"
    if e.code == abi.REFUSED:
        return f"gopher: {where}: connection refused"
    if e.code == abi.TIMEDOUT:
        return f"gopher: {where}: timed out"
    if e.code == abi.UNREACHABLE:
        return f"gopher: {where}: host unreachable"
    if e.code == abi.RESET:
        return f"gopher: {where}: connection reset"
    return f"gopher: {where}: {abi.ERROR_TEXT.get(e.code, f'error {e.code}').lower()}"


class Browser:
    def __init__(self, proc) -> None:
        self.proc = proc
        self.page: Page | None = None
        self.history: list[Page] = []
        self.message = ""

    # ------------------------------------------------------------------ network
    async def fetch(self, loc: Location) -> bytes | None:
        """The whole response to one request, or None (and a message saying why)."""
        proc = self.proc
        if not loc.host or any(c in loc.host for c in "/\\ \t") or printable(loc.host) != loc.host:
            # It becomes part of a path (/tcp/HOST:PORT): nothing a menu says may change that.
            self.message = f"gopher: bad host name {printable(loc.host)!r}"
            return None
        self.message = f"Connecting to {loc.host}:{loc.port}..."
        await self.draw()
        try:
            stream = await proc.connect(loc.host, loc.port)
        except SyscallError as e:
            self.message = await self.connect_error(e, loc)
            return None
        data = bytearray()
        try:
            await stream.write_all(loc.request())
            while chunk := await stream.read(65536):
                data += chunk
                if len(data) > MAX_BODY:
                    del data[MAX_BODY:]
                    break
        except SyscallError as e:
            self.message = error_message(e, loc)
            return None
        finally:
            await stream.close()
        self.message = f"Only the first {MAX_BODY} bytes were read" if len(data) >= MAX_BODY else ""
        return bytes(data)

    async def connect_error(self, e: SyscallError, loc: Location) -> str:
        if e.code == abi.NOTFOUND:
            # Not found may also mean there is no /tcp at all: say that instead of blaming DNS.
            try:
                mounts = await self.proc.mounts()
            except SyscallError:
                mounts = []
            if "/tcp" not in mounts:
                return "gopher: no network (/tcp is not mounted)"
        return error_message(e, loc)

    # ------------------------------------------------------------------ following items
    async def open(self, loc: Location, title: str = "") -> bool:
        """Open a location by its type; True if a new page is shown. `title`: the menu text of
        the item, for the search prompt."""
        kind = loc.type
        if kind == SEARCH and loc.query is None:
            query = await self.prompt(f"{printable(title) or 'Search'} - words to search for: ")
            if not query:
                self.message = "Search cancelled"
                return False
            loc = Location(loc.host, loc.port, loc.type, loc.selector, query)
        if kind == HTML and loc.selector.startswith("URL:"):
            self.message = f"External link, not followed: {printable(loc.selector[4:])}"
            return False
        if kind not in (MENU, SEARCH, TEXT, HTML) and kind not in BINARY_TYPES:
            self.message = f"gopher: cannot open items of {type_name(kind)}"
            return False
        data = await self.fetch(loc)
        if data is None:
            return False
        if kind in BINARY_TYPES:
            await self.save(loc, data)
            return False
        if kind in (TEXT, HTML):
            page = Page(loc, lines=wrap(decode_text(data)))
        else:
            page = Page(loc, items=parse_menu(data, loc.host, loc.port))
            page.selected = self.first_link(page, 0, 1)
            errors = [i for i in page.items if i.type == ERROR]
            if errors:
                self.message = f"Server says: {printable(errors[0].display)}"
            elif not page.items:
                self.message = "Empty menu"
        self.show(page)
        return True

    def show(self, page: Page) -> None:
        if self.page is not None:
            self.history.append(self.page)
        self.page = page

    async def save(self, loc: Location, data: bytes) -> None:
        """Save a binary in /ramdisk under its selector's name, never over an existing file."""
        base = file_name(loc.selector)
        path = f"{SAVE_DIR}/{base}"
        n = 0
        while await self.exists(path):
            n += 1
            path = f"{SAVE_DIR}/{base}.{n}"
        try:
            await self.proc.write_file(path, data)
        except SyscallError as e:
            self.message = f"gopher: cannot save {path}: {abi.ERROR_TEXT.get(e.code, str(e.code)).lower()}"
            return
        self.message = f"Saved {len(data)} bytes to {path}"

    async def exists(self, path: str) -> bool:
        try:
            await self.proc.stat_dir(path)
            return True
        except SyscallError:
            return False

    async def follow(self) -> None:
        page = self.page
        if page is None or page.is_text or not 0 <= page.selected < len(page.items):
            self.message = "Nothing selected"
            return
        item = page.items[page.selected]
        if not item.followable:
            self.message = f"gopher: cannot open items of {type_name(item.type)}"
            return
        if not item.host:
            self.message = "gopher: this item names no host"
            return
        await self.open(item.location(), item.display)

    def back(self) -> None:
        if not self.history:
            self.message = "No previous page"
            return
        self.page = self.history.pop()
        self.message = ""

    async def go(self) -> None:
        text = await self.prompt("Go to (host [port] or gopher:// URL): ")
        if not text:
            self.message = ""
            return
        try:
            loc = parse_target(text)
        except ValueError as e:
            self.message = f"gopher: {e}"
            return
        await self.open(loc)

    # ------------------------------------------------------------------ moving in a page
    @staticmethod
    def first_link(page: Page, start: int, step: int) -> int:
        """Index of the first selectable item from `start` going `step`, or -1."""
        i = start
        while 0 <= i < len(page.items):
            if page.items[i].selectable:
                return i
            i += step
        return -1

    def move(self, key: int) -> None:
        page = self.page
        if page is None:
            return
        last_top = max(0, page.length - VIEW)
        if page.is_text:
            delta = {KEY_UP: -1, KEY_DOWN: 1, KEY_PGUP: -VIEW, KEY_PGDN: VIEW, 32: VIEW,
                     KEY_HOME: -page.length, KEY_END: page.length}[key]
            page.top = max(0, min(last_top, page.top + delta))
            return
        if key in (KEY_UP, KEY_DOWN):
            step = -1 if key == KEY_UP else 1
            nxt = self.first_link(page, page.selected + step, step) if page.selected >= 0 else -1
            if nxt >= 0:
                page.selected = nxt
            else:  # no further link that way: scroll, so trailing information lines can be read
                page.top = max(0, min(last_top, page.top + step))
        elif key in (KEY_PGUP, KEY_PGDN, 32):
            step = -1 if key == KEY_PGUP else 1
            page.top = max(0, min(last_top, page.top + step * VIEW))
            if not page.top <= page.selected < page.top + VIEW:
                i = self.first_link(page, page.top, 1)
                page.selected = i if 0 <= i < page.top + VIEW else page.selected
        elif key == KEY_HOME:
            page.top = 0
            page.selected = self.first_link(page, 0, 1)
        elif key == KEY_END:
            page.top = last_top
            page.selected = self.first_link(page, page.length - 1, -1)
        if page.selected >= 0:  # keep the selection on screen
            if page.selected < page.top:
                page.top = page.selected
            elif page.selected >= page.top + VIEW:
                page.top = page.selected - VIEW + 1

    # ------------------------------------------------------------------ drawing
    def item_row(self, item: Item, selected: bool) -> str:
        text = printable(item.display).expandtabs(8)
        if item.type == INFO:
            return " " * 7 + text[: WIDTH - 7]
        marker = "> " if selected else "  "
        row = f"{marker}{type_label(item.type):<4} {text}"[:WIDTH]
        if selected:
            return REVERSE + row.ljust(WIDTH) + RESET
        if item.type == ERROR:
            return RED + row + RESET
        if not item.followable:
            return GREY + row + RESET
        return row

    def status(self) -> str:
        page = self.page
        if page is None:
            return ""
        if page.is_text:
            n = page.length
            pos = f"lines {min(n, page.top + 1)}-{min(n, page.top + VIEW)}/{n}"
        else:
            links = [i for i, it in enumerate(page.items) if it.selectable]
            pos = f"item {links.index(page.selected) + 1}/{len(links)}" if page.selected in links else "no links"
        url = printable(page.url)
        room = WIDTH - len(pos) - 3
        if len(url) > room:
            url = url[: max(0, room - 3)] + "..."
        return f" {url}".ljust(WIDTH - len(pos) - 1) + pos + " "

    async def draw(self) -> None:
        page = self.page
        out = ["\x1b[?25l"]
        for r in range(VIEW):
            row = ""
            if page is not None:
                i = page.top + r
                if page.lines is not None:
                    row = page.lines[i] if i < len(page.lines) else ""
                elif i < len(page.items):
                    row = self.item_row(page.items[i], i == page.selected)
            out.append(f"\x1b[{r + 1};1H\x1b[K{row}")
        out.append(f"\x1b[{ROWS - 1};1H{REVERSE}{self.status()[:WIDTH].ljust(WIDTH)}{RESET}")
        out.append(f"\x1b[{ROWS};1H\x1b[K{printable(self.message)[:WIDTH]}")
        await self.proc.write("".join(out))

    async def prompt(self, label: str) -> str | None:
        """Read a line on the bottom row (Enter: done, Esc: cancel -> None)."""
        buf = ""
        try:
            while True:
                shown = label + buf
                if len(shown) > WIDTH - 1:
                    shown = "<" + shown[-(WIDTH - 2):]
                await self.proc.write(f"\x1b[{ROWS};1H{shown}\x1b[K\x1b[?25h")
                key = await self.proc.read_key()
                if key is None or key == ESC:
                    return None
                if key in (ENTER, 13):
                    return buf.strip()
                if key in (BACKSPACE, DEL):
                    buf = buf[:-1]
                elif key == CTRL_U:
                    buf = ""
                elif 32 <= key <= 0x10FFFF:
                    buf += chr(key)
        finally:
            await self.proc.write("\x1b[?25l")

    async def help(self) -> None:
        lines = HELP.split("\n")
        out = ["\x1b[?25l\x1b[2J"]
        for r, line in enumerate(lines[: ROWS - 1]):
            out.append(f"\x1b[{r + 1};1H{line[:WIDTH]}")
        await self.proc.write("".join(out))
        await self.proc.read_key()

    # ------------------------------------------------------------------ main loop
    async def run(self, start: Location | None) -> int:
        proc = self.proc
        await proc.write("\x1b[0m\x1b[2J")
        if start is None:
            self.page = Page(None, items=parse_menu("\n".join(HOME)))
            self.page.selected = self.first_link(self.page, 0, 1)
            self.message = "g: go to a host or URL   ?: help   q: quit"
            await self.draw()
            await self.go()
        elif not await self.open(start):
            await self.finish()
            await proc.print(self.message)
            return 1
        while True:
            await self.draw()
            key = await proc.read_key()
            if key is None or key == ord("q"):
                break
            self.message = ""
            if key in (KEY_UP, KEY_DOWN, KEY_PGUP, KEY_PGDN, KEY_HOME, KEY_END, 32):
                self.move(key)
            elif key in (ENTER, KEY_RIGHT):
                if self.page is not None and self.page.is_text:
                    if key == ENTER:
                        self.move(KEY_PGDN)
                else:
                    await self.follow()
            elif key in (BACKSPACE, KEY_LEFT, DEL):
                self.back()
            elif key == ord("g"):
                await self.go()
            elif key in (ord("?"), ord("x")):
                await self.help()
            else:
                self.message = "Unknown key: ? for help, q to quit"
        await self.finish()
        await proc.print("[gopher] Bye!")
        return 0

    async def finish(self) -> None:
        """Leave the console as a shell expects it: cleared, default colours, cursor shown."""
        await self.proc.write("\x1b[0m\x1b[2J\x1b[H\x1b[?25h")


async def main(proc) -> int:
    args = proc.args[1:]
    start: Location | None = None
    if args:
        if args[0] in ("-h", "--help"):
            await proc.print("Usage: gopher [HOST [PORT] | gopher://HOST[:PORT]/[TYPE][SELECTOR]]")
            return 0
        try:
            start = parse_target(args)
        except ValueError as e:
            await proc.print(f"gopher: {e}")
            return 2
    return await Browser(proc).run(start)
