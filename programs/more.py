"""more FILE...: a pager, for output longer than the screen (issue 15 item 3). Without a FILE
it pages its input (`ps | more`).

Shows a screenful (24 rows of 80 columns; long lines are folded) and a status row:
  Space, PgDn, f  the next screen          b, PgUp        the screen before
  Enter, Down, j  one more line            k, Up          one line back
  g, Home / G, End  the top / the end      /TEXT Enter    the next line holding TEXT
  n  the next match again                  q, Esc, Ctrl+C  quit
It leaves the screen as the shell expects it: cleared, normal colours, cursor shown.
"""

from __future__ import annotations

from euralios.std import SyscallError
from euralios.std.keys import KEY_DOWN, KEY_END, KEY_ESCAPE, KEY_HOME, KEY_PGDN, KEY_PGUP, KEY_UP

ROWS, COLS = 24, 80
CTRL_C = 3
NEXT_SCREEN = {ord(" "), ord("f"), KEY_PGDN}
PREV_SCREEN = {ord("b"), KEY_PGUP}
NEXT_LINE = {10, 13, ord("j"), KEY_DOWN}
PREV_LINE = {ord("k"), KEY_UP}
QUIT = {ord("q"), KEY_ESCAPE, CTRL_C}


def fold(text: str) -> list[str]:
    """Rows of at most COLS characters (tabs as spaces to the next multiple of 8)."""
    rows: list[str] = []
    for line in text.expandtabs(8).split("\n"):
        line = "".join(c if c.isprintable() else "?" for c in line)
        rows.extend(line[i:i + COLS] for i in range(0, max(len(line), 1), COLS))
    if rows and rows[-1] == "" and text.endswith("\n"):
        rows.pop()
    return rows


class Pager:
    def __init__(self, proc, name: str, rows: list[str]) -> None:
        self.proc = proc
        self.name = name
        self.rows = rows
        self.top = 0
        self.pattern = ""
        self.note = ""

    @property
    def last_top(self) -> int:
        return max(0, len(self.rows) - ROWS)

    async def draw(self) -> None:
        shown = self.rows[self.top:self.top + ROWS]
        out = ["\x1b[H\x1b[2J", "\n".join(shown)]
        end = min(len(self.rows), self.top + ROWS)
        where = "(END)" if end >= len(self.rows) else f"{100 * end // max(1, len(self.rows))}%"
        status = self.note or f"{self.name} {where}  space next, b back, /text search, q quit"
        out.append(f"\x1b[{ROWS + 1};1H\x1b[7m{status[:COLS - 1]}\x1b[0m")
        await self.proc.write("".join(out))

    def search(self, start: int) -> None:
        for i in range(start, len(self.rows)):
            if self.pattern in self.rows[i]:
                self.top = min(i, self.last_top)
                self.note = ""
                return
        self.note = f"pattern not found: {self.pattern}"

    async def read_pattern(self) -> str:
        await self.proc.write(f"\x1b[{ROWS + 1};1H\x1b[2K/")
        buf: list[str] = []
        while True:
            code = await self.proc.read_key()
            if code is None or code in (10, 13):
                return "".join(buf)
            if code in (8, 127):
                if buf:
                    buf.pop()
                    await self.proc.write("\x08 \x08")
                continue
            if code in (KEY_ESCAPE, CTRL_C):
                return ""
            if 32 <= code <= 0x10FFFF:
                buf.append(chr(code))
                await self.proc.write(chr(code))

    async def run(self) -> None:
        await self.proc.write("\x1b[?25l")
        while True:
            await self.draw()
            self.note = ""
            code = await self.proc.read_key()
            if code is None or code in QUIT:
                return
            if code in NEXT_SCREEN:
                self.top = min(self.top + ROWS, self.last_top)
            elif code in PREV_SCREEN:
                self.top = max(0, self.top - ROWS)
            elif code in NEXT_LINE:
                self.top = min(self.top + 1, self.last_top)
            elif code in PREV_LINE:
                self.top = max(0, self.top - 1)
            elif code in (ord("g"), KEY_HOME):
                self.top = 0
            elif code in (ord("G"), KEY_END):
                self.top = self.last_top
            elif code == ord("/"):
                self.pattern = await self.read_pattern()
                if self.pattern:
                    self.search(self.top + 1)
            elif code == ord("n") and self.pattern:
                self.search(self.top + 1)


async def main(proc) -> int:
    paths = proc.args[1:]
    rows: list[str] = []
    if not paths:  # `ls | more`: page what comes in; the keys typed follow the text
        text = []
        while line := await proc.read_line(echo=False):
            text.append(line)
        rows = fold("".join(text))
    for path in paths:
        try:
            text = (await proc.read_file(path)).decode("utf-8", "replace")
        except SyscallError as e:
            await proc.print(f"more: {path}: {e}")
            return 1
        if len(paths) > 1:
            rows.append(f":::::::::::::: {path} ::::::::::::::")
        rows.extend(fold(text))
    if len(rows) <= ROWS:
        await proc.write("\n".join(rows) + ("\n" if rows else ""))  # fits: no paging, as more does
        return 0
    try:
        await Pager(proc, " ".join(paths) or "(stdin)", rows).run()
    finally:
        await proc.write("\x1b[H\x1b[2J\x1b[0m\x1b[?25h")
    return 0
