"""edit: a small kilo-like text editor.

    edit FILE      open FILE (created on save if it does not exist)

Arrows, Home/End, PgUp/PgDn move; typing inserts; Enter splits a line; Backspace and Delete join.
Ctrl+S saves, Ctrl+Q quits (press it again to quit without saving changes), Ctrl+F finds
(Enter: next match, Esc: back). The status line shows the file, line/column and `[modified]`;
the bottom line the keys, as nano's. Enter keeps the indentation of the line; in a Python file
(a .py name, or text that starts like Python) one level (4 spaces) more after a line ending in
`:`, and Backspace in the indentation takes a whole level back.
The screen is drawn with ANSI sequences, so the editor works on the VGA consoles and on a serial
terminal alike; it never writes the last column of the bottom row (that would scroll the screen).
"""

from __future__ import annotations

from euralios.std import SyscallError
from euralios.std.keys import (
    KEY_DELETE,
    KEY_DOWN,
    KEY_END,
    KEY_HOME,
    KEY_LEFT,
    KEY_PGDN,
    KEY_PGUP,
    KEY_RIGHT,
    KEY_UP,
)

CTRL_F, CTRL_Q, CTRL_S = 6, 17, 19
ESC, ENTER, BACKSPACE, TAB = 27, 10, 8, 9
INDENT = "    "
HINTS = (("^S", "Save"), ("^Q", "Quit"), ("^F", "Find"), ("Tab", "Indent"), ("PgUp/PgDn", "Page"),
         ("Home/End", "Line"))
PYTHON_STARTS = ("def ", "async def ", "import ", "from ", "class ", "#!", '"""')


class Editor:
    def __init__(self, proc, path: str, rows: int = 25, cols: int = 80) -> None:
        self.proc = proc
        self.path = path
        self.lines: list[str] = [""]
        self.cy = self.cx = 0  # cursor in the text
        self.rowoff = self.coloff = 0
        self.text_rows = rows - 3  # then the status line, the message line and the key hints
        self.cols = cols
        self.modified = False
        self.message = ""
        self.quit_confirm = False

    async def load(self) -> None:
        try:
            data = await self.proc.read_file(self.path)
        except SyscallError:
            self.message = f"New file: {self.path}"
            return
        text = data.decode("utf-8", "replace").replace("\r\n", "\n")
        self.lines = text.split("\n")
        if len(self.lines) > 1 and self.lines[-1] == "":
            self.lines.pop()

    async def save(self) -> None:
        text = "\n".join(self.lines) + "\n"
        try:
            await self.proc.write_file(self.path, text)
        except SyscallError as e:
            self.message = f"Can't save {self.path}: {e}"
            return
        self.modified = False
        self.message = f"{len(text.encode())} bytes written to {self.path}"

    # ------------------------------------------------------------------ drawing
    def scroll(self) -> None:
        if self.cy < self.rowoff:
            self.rowoff = self.cy
        if self.cy >= self.rowoff + self.text_rows:
            self.rowoff = self.cy - self.text_rows + 1
        width = self.cols - 1
        if self.cx < self.coloff:
            self.coloff = self.cx
        if self.cx >= self.coloff + width:
            self.coloff = self.cx - width + 1

    async def draw(self) -> None:
        self.scroll()
        width = self.cols - 1
        out = ["\x1b[?25l\x1b[H"]
        for r in range(self.text_rows):
            i = self.rowoff + r
            if i < len(self.lines):
                line = self.lines[i].replace("\t", " ")[self.coloff : self.coloff + width]
            else:
                line = "~"
            out.append(line + "\x1b[K\r\n")
        name = self.path[-30:]
        flag = " [modified]" if self.modified else ""
        left = f" {name}{flag} - {len(self.lines)} lines"
        right = f"Ln {self.cy + 1}, Col {self.cx + 1} "
        status = (left + " " * max(1, width - len(left) - len(right)) + right)[:width]
        out.append("\x1b[7m" + status + "\x1b[0m\x1b[K\r\n")
        out.append(self.message[:width] + "\x1b[K\r\n")
        out.append(hint_line(width) + "\x1b[K")
        out.append(f"\x1b[{self.cy - self.rowoff + 1};{self.cx - self.coloff + 1}H\x1b[?25h")
        await self.proc.write("".join(out))

    # ------------------------------------------------------------------ editing
    def clamp(self) -> None:
        self.cy = max(0, min(self.cy, len(self.lines) - 1))
        self.cx = max(0, min(self.cx, len(self.lines[self.cy])))

    def insert(self, ch: str) -> None:
        line = self.lines[self.cy]
        self.lines[self.cy] = line[: self.cx] + ch + line[self.cx :]
        self.cx += len(ch)
        self.modified = True

    @property
    def python(self) -> bool:
        return self.path.endswith(".py") or any(ln.startswith(PYTHON_STARTS) for ln in self.lines[:5])

    def newline(self) -> None:
        """Split the line; the new one starts at the indentation of this one (a level more after
        a `:` in Python)."""
        line = self.lines[self.cy]
        head, tail = line[: self.cx], line[self.cx :]
        indent = head[: len(head) - len(head.lstrip(" \t"))]
        if self.python and head.rstrip().endswith(":"):
            indent += INDENT
        self.lines[self.cy] = head.rstrip(" \t") if not head.strip() else head
        self.lines.insert(self.cy + 1, indent + tail.lstrip(" \t"))
        self.cy += 1
        self.cx = len(indent)
        self.modified = True

    def backspace(self) -> None:
        line = self.lines[self.cy]
        if self.python and self.cx > 0 and not line[: self.cx].strip(" "):
            back = (self.cx - 1) % len(INDENT) + 1  # to the indentation level before
            self.lines[self.cy] = line[: self.cx - back] + line[self.cx :]
            self.cx -= back
            self.modified = True
            return
        if self.cx > 0:
            line = self.lines[self.cy]
            self.lines[self.cy] = line[: self.cx - 1] + line[self.cx :]
            self.cx -= 1
            self.modified = True
        elif self.cy > 0:
            self.cx = len(self.lines[self.cy - 1])
            self.lines[self.cy - 1] += self.lines.pop(self.cy)
            self.cy -= 1
            self.modified = True

    def delete(self) -> None:
        line = self.lines[self.cy]
        if self.cx < len(line):
            self.lines[self.cy] = line[: self.cx] + line[self.cx + 1 :]
            self.modified = True
        elif self.cy + 1 < len(self.lines):
            self.lines[self.cy] += self.lines.pop(self.cy + 1)
            self.modified = True

    def move(self, key: int) -> None:
        if key == KEY_LEFT:
            if self.cx > 0:
                self.cx -= 1
            elif self.cy > 0:
                self.cy -= 1
                self.cx = len(self.lines[self.cy])
            return
        if key == KEY_RIGHT:
            if self.cx < len(self.lines[self.cy]):
                self.cx += 1
            elif self.cy + 1 < len(self.lines):
                self.cy += 1
                self.cx = 0
            return
        if key == KEY_UP:
            self.cy -= 1
        elif key == KEY_DOWN:
            self.cy += 1
        elif key == KEY_PGUP:
            self.cy -= self.text_rows
        elif key == KEY_PGDN:
            self.cy += self.text_rows
        elif key == KEY_HOME:
            self.cx = 0
        elif key == KEY_END:
            self.cx = len(self.lines[self.cy])
        self.clamp()

    async def find(self) -> None:
        query = ""
        start = (self.cy, self.cx)
        while True:
            self.message = f"Find: {query}  (Enter: next, Esc: cancel)"
            await self.draw()
            key = await self.proc.read_key()
            if key is None or key == ESC:
                self.cy, self.cx = start
                self.message = ""
                return
            if key == ENTER:
                if not self.search(query, (self.cy, self.cx + 1)):
                    self.message = f"Not found: {query}"
                    await self.draw()
                continue
            if key == BACKSPACE:
                query = query[:-1]
            elif 32 <= key <= 0x10FFFF:
                query += chr(key)
            else:
                self.message = ""
                return
            if query and not self.search(query, start):
                self.message = f"Not found: {query}"

    def search(self, query: str, frm: tuple[int, int]) -> bool:
        if not query:
            return False
        y, x = frm
        n = len(self.lines)
        for k in range(n + 1):
            i = (y + k) % n
            col = self.lines[i].find(query, x if k == 0 else 0)
            if col >= 0:
                self.cy, self.cx = i, col
                return True
        return False

    # ------------------------------------------------------------------ main loop
    async def run(self) -> int:
        await self.load()
        while True:
            await self.draw()
            key = await self.proc.read_key()
            if key is None:
                break
            if key == CTRL_Q:
                if self.modified and not self.quit_confirm:
                    self.quit_confirm = True
                    self.message = "File has unsaved changes: Ctrl+Q again to quit, Ctrl+S to save"
                    continue
                break
            self.quit_confirm = False
            if key == CTRL_S:
                await self.save()
            elif key == CTRL_F:
                await self.find()
            elif key == ENTER:
                self.newline()
            elif key == BACKSPACE:
                self.backspace()
            elif key == KEY_DELETE:
                self.delete()
            elif key == TAB:
                self.insert("    ")
            elif key in (KEY_LEFT, KEY_RIGHT, KEY_UP, KEY_DOWN, KEY_PGUP, KEY_PGDN, KEY_HOME, KEY_END):
                self.move(key)
            elif 32 <= key <= 0x10FFFF:
                self.insert(chr(key))
        await self.proc.write("\x1b[2J\x1b[H")
        return 0


def hint_line(width: int) -> str:
    """`^S Save  ^Q Quit ...`, the keys in reverse video, cut to the width."""
    out, used = [], 0
    for key, what in HINTS:
        cell = f"{key} {what}  "
        if used + len(cell) > width:
            break
        out.append(f"\x1b[7m{key}\x1b[0m {what}  ")
        used += len(cell)
    return "".join(out)


async def main(proc):
    if len(proc.args) != 2:
        await proc.print(f"Usage: {proc.args[0] if proc.args else 'edit'} <file>")
        return 2
    return await Editor(proc, proc.abspath(proc.args[1])).run()
