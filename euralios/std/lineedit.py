"""A line editor for console programs: cursor movement, history and Tab completion.

Keys as readline's: Left/Right, Home/End (Ctrl+A/E), Up/Down through the history, Ctrl+W
erases the word before the cursor, Ctrl+U all before it, Ctrl+K all after it, Tab completes.

Keys arrive as the keyboard driver's codes (characters, or packed escape sequences for arrows
and the like, see euralios/std/keys.py). Output is ANSI text to the console, so it works the same on
the VGA consoles and on the serial console.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from euralios.std.keys import KEY_DELETE, KEY_DOWN, KEY_END, KEY_HOME, KEY_LEFT, KEY_RIGHT, KEY_UP

CTRL_A, CTRL_C, CTRL_D, CTRL_E, CTRL_K, CTRL_L, CTRL_U, CTRL_W = 1, 3, 4, 5, 11, 12, 21, 23
BACKSPACE = 8


class Interrupted(Exception):
    """Ctrl+C while editing: the line is abandoned."""


class LineEditor:
    def __init__(self, history_size: int = 200) -> None:
        self.history: list[str] = []  # oldest first; the shell's `history` numbers them
        self.history_size = history_size
        self.dropped = 0  # lines fallen off the front (so `history` numbers stay as bash's)

    async def read(
        self,
        read_key: Callable[[], Awaitable[int | None]],
        write: Callable[[str], Awaitable[None]],
        complete: Callable[[str], Awaitable[list[str]]] | None = None,
        secret: bool = False,
    ) -> str | None:
        """Read one line (without its newline); None at end of input. Ctrl+C raises Interrupted."""
        buf: list[str] = []
        pos = 0
        hist = len(self.history)
        saved = ""
        last_key: int | None = None  # a Tab right after a Tab lists the candidates

        async def redraw(old_len: int, old_pos: int) -> None:
            """Back to the line start, rewrite, blank the leftover tail, put the cursor back."""
            if secret:
                return
            text = "".join(buf)
            out = "\x08" * old_pos + text + " " * max(0, old_len - len(text))
            await write(out + "\x08" * (max(len(text), old_len) - pos))

        while True:
            key, prev = await read_key(), last_key
            last_key = key
            if key is None or (key == CTRL_D and not buf):
                return None
            old_len, old_pos = len(buf), pos
            if key == 10 or key == 13:
                await write("\n")
                line = "".join(buf)
                if line.strip() and not secret and (not self.history or self.history[-1] != line):
                    self.history.append(line)
                    over = len(self.history) - self.history_size
                    if over > 0:
                        del self.history[:over]
                        self.dropped += over
                return line
            if key == CTRL_C:
                await write("^C\n")
                raise Interrupted()
            if key == BACKSPACE:
                if pos > 0:
                    del buf[pos - 1]
                    pos -= 1
                    await redraw(old_len, old_pos)
                continue
            if key == KEY_DELETE:
                if pos < len(buf):
                    del buf[pos]
                    await redraw(old_len, old_pos)
                continue
            if key == KEY_LEFT:
                if pos > 0:
                    pos -= 1
                    if not secret:
                        await write("\x08")
                continue
            if key == KEY_RIGHT:
                if pos < len(buf):
                    if not secret:
                        await write(buf[pos])
                    pos += 1
                continue
            if key in (KEY_HOME, CTRL_A):
                pos = 0
                await redraw(old_len, old_pos)
                continue
            if key in (KEY_END, CTRL_E):
                pos = len(buf)
                await redraw(old_len, old_pos)
                continue
            if key == CTRL_U:  # erase to the left of the cursor (bash, readline)
                del buf[:pos]
                pos = 0
                await redraw(old_len, old_pos)
                continue
            if key == CTRL_W:  # erase the word before the cursor (and the blanks after it)
                start = pos
                while start > 0 and buf[start - 1] == " ":
                    start -= 1
                while start > 0 and buf[start - 1] != " ":
                    start -= 1
                del buf[start:pos]
                pos = start
                await redraw(old_len, old_pos)
                continue
            if key == CTRL_K:
                del buf[pos:]
                await redraw(old_len, old_pos)
                continue
            if key in (KEY_UP, KEY_DOWN) and not secret:
                if key == KEY_UP and hist > 0:
                    if hist == len(self.history):
                        saved = "".join(buf)
                    hist -= 1
                    buf = list(self.history[hist])
                elif key == KEY_DOWN and hist < len(self.history):
                    hist += 1
                    buf = list(self.history[hist] if hist < len(self.history) else saved)
                else:
                    continue
                pos = len(buf)
                await redraw(old_len, old_pos)
                continue
            if key == 9 and complete is not None and not secret:
                head = "".join(buf[:pos])
                options = await complete(head)
                if len(options) == 1:
                    buf[:pos] = list(options[0])
                    pos = len(options[0])
                    await redraw(old_len, old_pos)
                elif len(options) > 1:
                    common = _common_prefix(options)
                    if len(common) > len(head):
                        buf[:pos] = list(common)
                        pos = len(common)
                        await redraw(old_len, old_pos)
                    elif prev == 9:
                        # The second Tab (as bash): the candidates below the line, then the
                        # prompt and the line again, the cursor where it was.
                        await write("\n" + _columns([_shown(o) for o in options]) + "\n")
                        await write(self.prompt + "".join(buf) + "\x08" * (len(buf) - pos))
                continue
            if key < 32 or key > 0x10FFFF:
                continue  # other control and special keys do nothing here
            buf.insert(pos, chr(key))
            pos += 1
            if secret:
                continue
            if pos == len(buf):
                await write(chr(key))
            else:
                await redraw(old_len, old_pos)

    prompt = ""


def _shown(option: str) -> str:
    """A candidate as listed: its last word's last path component (`ramdisk/`, `cat`)."""
    last = option.rstrip(" ").rsplit(" ", 1)[-1]
    is_dir = last.endswith("/")
    return last.rstrip("/").rsplit("/", 1)[-1] + ("/" if is_dir else "")


def _columns(names: list[str], width: int = 80) -> str:
    """Names in columns across the screen, as ls and bash list them."""
    col = max(len(n) for n in names) + 2
    per_row = max(1, width // col)
    rows = [names[i:i + per_row] for i in range(0, len(names), per_row)]
    return "\n".join("".join(n.ljust(col) for n in row).rstrip() for row in rows)


def _common_prefix(items: list[str]) -> str:
    if not items:
        return ""
    lo, hi = min(items), max(items)
    n = 0
    while n < len(lo) and lo[n] == hi[n]:
        n += 1
    return lo[:n]
