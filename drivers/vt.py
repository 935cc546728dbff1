"""An 80x25 text console model: the VGA writer of the seed's vga_driver (spec §11.5), sans I/O.

``TextConsole.cells`` is laid out exactly like VGA text memory (char byte, attribute byte per
cell, row-major) so the console driver can copy it to video memory as is. ``write()`` renders a
byte stream; the parser keeps its state between calls, so an escape sequence or a UTF-8 character
split across two writes still works.

What is kept from the seed (its look): foreground black on background white (attribute 0xF0),
"blank" = space on white-on-white (0xFF, used by clearing and scrolling), the first line left
blank with the cursor starting at row 1, LF implying CR, backspace moving left without erasing,
8-column tabs that wrap, ``ESC`` + a byte other than
``[`` swallowing both, ``ESC[K`` filling with the current colour while the other erases blank, and
``ESC[1J``/``ESC[1K`` stopping just before the cursor.

What is fixed (quirks in spec §11.5): parameters are parsed numerically, so ``1;31m``, ``5A`` and
``10;20H`` work; ``ESC[?25l`` hides and ``ESC[?25h`` shows the cursor as in xterm (the seed's
inverted non-private ``25l``/``25h`` are ignored); H/f/G take positions. Added: SGR bold (bright
foreground), reverse video, bright colours 90-97/100-107, 256-colour and RGB colours (nearest CGA
colour), cursor movement A-G/d, save/restore (``ESC[s``/``ESC[u``, ``ESC 7``/``ESC 8``), ``ESC c``
reset, and OSC strings (``ESC ] ... BEL``, e.g. window titles) swallowed whole. Any other sequence
is parsed to its end and ignored.

Wrapping is the VT100's deferred wrap (DECAWM's "last column flag"), not the seed's wrap as soon as
column 80 is reached: a character written into column 80 leaves the cursor there with
``wrap_pending`` set, and only the next printable character goes to column 1 of the next row
(scrolling on the last row). CR, LF, BS, tab, every cursor movement or restore and every erase
clear the flag, as in xterm (so BS from the pending state goes to column 79). Why: with the seed's
rule an exactly-80-character line followed by a newline took two rows, and a full-screen program
could not write the last column without the screen moving under it.

Colours follow the CGA hardware rather than the seed's table: ANSI colour n (black, red, green,
yellow, blue, magenta, cyan, white) -> VGA 0, 4, 2, 6 (brown), 1, 5, 3, 7 (light grey); the bright
forms (90-97, or bold) add 8, giving yellow 14 and white 15. The seed mapped plain 33/37 straight
to 14/15; with the hardware mapping bold/bright is what distinguishes them, as on a PC console.

Scrollback (Shift+PgUp on a PC console): every row that scrolls off the top (a linefeed on the
last row) is kept, cells and attributes, in a bounded history of ``scrollback`` rows (oldest
dropped first). :meth:`TextConsole.scroll` moves the *view* back into it and forward again;
:meth:`TextConsole.view` gives the 80x25 cells to show; ``cells`` always stays the live screen
programs write to. Output never moves a scrolled view: rows pushed into the history while
scrolled back raise the offset by as many, so the same lines stay on screen (until they fall off
the end of the history). Whoever handles keys returns the view to the bottom on typing (the
console driver, told by init). What goes into the history follows the Linux console
(drivers/tty/vt/vt.c): ``ESC[2J`` erases the visible screen *without* pushing it into the history,
``ESC[3J`` empties the history as well as erasing the screen (Linux's csi_J 3 falls through to 2),
``ESC c`` resets the terminal but keeps the history (Linux's reset_terminal clears only the screen).
The alternate screen (``ESC[?1049h``) is not implemented -- the Linux console has none either --
so a full-screen program that redraws by cursor positioning adds nothing to the history, and one
that scrolls does, as on Linux.

Text: bytes 0x20-0x7E are ASCII; other input is decoded as UTF-8 and shown in code page 437 where
the character exists there, else as "?". Invalid UTF-8 bytes show as "?". Other control bytes
(and DEL) are ignored.
"""

from __future__ import annotations

import re
from collections import deque

COLS = 80
ROWS = 25
CELLS = COLS * ROWS
SIZE = CELLS * 2

DEFAULT_FG = 0  # black
DEFAULT_BG = 15  # white
DEFAULT_ATTR = (DEFAULT_BG << 4) | DEFAULT_FG  # 0xF0
BLANK_ATTR = 0xFF  # the seed's "blank": white on white
INITIAL_ROW = 1
SCROLLBACK = 1000  # rows of history a console keeps unless told otherwise
MAX_SCROLLBACK = 10000  # the most anyone may ask for (the system console's boot log): 1.6 MB

#: ANSI colour index (30 + n) -> VGA colour number.
ANSI_TO_VGA = (0, 4, 2, 6, 1, 5, 3, 7)

# CGA palette as RGB, used only to find the nearest colour for 256-colour and RGB SGR requests.
_CGA_RGB = (
    (0x00, 0x00, 0x00), (0x00, 0x00, 0xAA), (0x00, 0xAA, 0x00), (0x00, 0xAA, 0xAA),
    (0xAA, 0x00, 0x00), (0xAA, 0x00, 0xAA), (0xAA, 0x55, 0x00), (0xAA, 0xAA, 0xAA),
    (0x55, 0x55, 0x55), (0x55, 0x55, 0xFF), (0x55, 0xFF, 0x55), (0x55, 0xFF, 0xFF),
    (0xFF, 0x55, 0x55), (0xFF, 0x55, 0xFF), (0xFF, 0xFF, 0x55), (0xFF, 0xFF, 0xFF),
)  # fmt: skip
_CUBE = (0, 95, 135, 175, 215, 255)

_BLANK_ROW = bytes((0x20, BLANK_ATTR)) * COLS
_BLANK_SCREEN = _BLANK_ROW * ROWS
_ROW = 2 * COLS  # bytes per row

# Parser states.
_GROUND, _ESC, _ESC_INTER, _CSI, _OSC, _OSC_ESC = range(6)

_MAX_CSI = 64  # longer parameter strings are nonsense; the sequence is consumed and ignored
_MAX_OSC = 4096  # an unterminated OSC gives up after this many bytes instead of eating all output
_MAX_PARAM = 9999

# A run of displayable input: printable ASCII or complete, valid UTF-8 multi-byte characters.
_TEXT_RUN = re.compile(
    rb"(?:[\x20-\x7e]+"
    rb"|[\xc2-\xdf][\x80-\xbf]"
    rb"|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2})+"
)
# A valid but incomplete UTF-8 character at the end of a write: kept for the next write.
_UTF8_PREFIX = re.compile(
    rb"[\xc2-\xdf]|\xe0[\xa0-\xbf]?|[\xe1-\xec\xee\xef][\x80-\xbf]{0,2}|\xed[\x80-\x9f]?"
    rb"|\xf0(?:[\x90-\xbf][\x80-\xbf]?)?|[\xf1-\xf3][\x80-\xbf]{0,2}|\xf4(?:[\x80-\x8f][\x80-\xbf]?)?"
)
# A whole CSI sequence after "ESC [": parameters, intermediates, final byte.
_CSI_BODY = re.compile(rb"([\x30-\x3f]*)([\x20-\x2f]*)([\x40-\x7e])")


def _nearest_cga(r: int, g: int, b: int) -> int:
    return min(
        range(16),
        key=lambda i: (_CGA_RGB[i][0] - r) ** 2 + (_CGA_RGB[i][1] - g) ** 2 + (_CGA_RGB[i][2] - b) ** 2,
    )


def _xterm256_to_vga(n: int) -> int:
    """xterm's 256-colour index -> nearest of the 16 VGA colours."""
    if n < 8:
        return ANSI_TO_VGA[n]
    if n < 16:
        return ANSI_TO_VGA[n - 8] + 8
    if n < 232:
        n -= 16
        return _nearest_cga(_CUBE[n // 36], _CUBE[(n // 6) % 6], _CUBE[n % 6])
    level = 8 + 10 * (n - 232)
    return _nearest_cga(level, level, level)


class TextConsole:
    """One virtual console's screen: cells, cursor, colours and the escape-sequence parser.

    ``dirty`` is set whenever the cells, the cursor or its visibility change, or the view scrolls;
    whoever copies the screen to video memory clears it, so unchanged consoles are not copied.

    ``scrollback`` is how many rows of history to keep (0: none), at most MAX_SCROLLBACK."""

    def __init__(self, scrollback: int = SCROLLBACK) -> None:
        if not 0 <= scrollback <= MAX_SCROLLBACK:
            raise ValueError(f"scrollback of {scrollback} rows: must be 0..{MAX_SCROLLBACK}")
        #: Rows scrolled off the top, oldest first, each COLS (char, attribute) pairs as in cells.
        self.history: deque[bytes] = deque(maxlen=scrollback)
        #: How many rows the view is scrolled back into the history (0: the live screen).
        self.offset = 0
        self._clear()

    def _clear(self) -> None:
        """The screen and terminal state of a fresh console (the history is not touched)."""
        self.cells = bytearray(_BLANK_SCREEN)
        #: Bytes of ``cells`` changed since :meth:`take_damage` last asked: [lo, hi).
        self.damage_lo, self.damage_hi = 0, SIZE
        self.cursor_row = INITIAL_ROW
        self.cursor_col = 0
        self.cursor_visible = True
        #: A character was written into the last column and the cursor is still there: the next
        #: printable character wraps first (the VT100's last column flag).
        self.wrap_pending = False
        self.dirty = True
        self._fg = DEFAULT_FG
        self._bg = DEFAULT_BG
        self._bold = False
        self._reverse = False
        self._attr = DEFAULT_ATTR
        self._saved = (INITIAL_ROW, 0)
        self._state = _GROUND
        self._params = bytearray()
        self._inter = bytearray()
        self._bad = False  # current CSI is malformed or too long: consume it, do nothing
        self._osc_len = 0
        self._pending = b""  # incomplete UTF-8 character from the end of the previous write

    # -- public ---------------------------------------------------------------------------------------

    @property
    def attr(self) -> int:
        """The attribute byte new text is written with."""
        return self._attr

    def cell(self, row: int, col: int) -> tuple[str, int]:
        """``(char, attribute)`` of one cell, the char decoded from code page 437."""
        off = (row * COLS + col) * 2
        return bytes(self.cells[off : off + 1]).decode("cp437"), self.cells[off + 1]

    def text(self) -> str:
        """The screen as 25 lines of exactly 80 characters joined by newlines."""
        chars = bytes(self.cells[0::2]).decode("cp437")
        return "\n".join(chars[r * COLS : (r + 1) * COLS] for r in range(ROWS))

    def reset(self) -> None:
        """Back to the initial state (``ESC c``); the history is kept, as on Linux."""
        self._clear()

    # -- scrollback -----------------------------------------------------------------------------------

    @property
    def scrolled(self) -> bool:
        """The view is scrolled back (it shows history, not only the live screen)."""
        return self.offset > 0

    @property
    def shown_cursor_visible(self) -> bool:
        """Whether the cursor is to be shown: as the program asked, but never while scrolled back
        (it would point into the history)."""
        return self.cursor_visible and self.offset == 0

    def scroll(self, delta: int) -> int:
        """Move the view ``delta`` rows back into the history (negative: forward, towards the
        live screen), clamped to what the history holds; returns the new offset."""
        offset = max(0, min(self.offset + delta, len(self.history)))
        if offset != self.offset:
            self.offset = offset
            self.dirty = True
        return offset

    def scroll_to_bottom(self) -> None:
        """Back to the live screen."""
        self.scroll(-self.offset)

    def take_damage(self) -> tuple[int, int]:
        """The byte range [lo, hi) of ``cells`` written since the last call (lo >= hi: none),
        and forget it: a screen that already shows the rest copies only this."""
        lo, hi = self.damage_lo, self.damage_hi
        self.damage_lo, self.damage_hi = SIZE, 0
        return lo, hi

    def _damage(self, lo: int, hi: int) -> None:
        if lo < self.damage_lo:
            self.damage_lo = lo
        if hi > self.damage_hi:
            self.damage_hi = hi

    def view(self, offset: int | None = None) -> bytes | bytearray:
        """The ROWS x COLS cells (VGA layout) seen ``offset`` rows back (default: the current
        view), clamped to the history. At offset 0 this is ``cells`` itself, not a copy."""
        history = self.history
        back = self.offset if offset is None else max(0, min(offset, len(history)))
        if back == 0:
            return self.cells
        start = len(history) - back
        rows = [history[i] for i in range(start, min(start + ROWS, len(history)))]
        live = ROWS - len(rows)
        return b"".join(rows) + bytes(self.cells[: live * _ROW])

    def view_text(self, offset: int | None = None) -> str:
        """:meth:`view` as 25 lines of 80 characters, as :meth:`text`."""
        chars = bytes(self.view(offset)[0::2]).decode("cp437")
        return "\n".join(chars[r * COLS : (r + 1) * COLS] for r in range(ROWS))

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Render ``data``. Never raises on any input; the cursor always stays on screen."""
        data = bytes(data)
        if self._pending:
            data = self._pending + data
            self._pending = b""
        n = len(data)
        i = 0
        while i < n:
            state = self._state
            if state == _GROUND:
                m = _TEXT_RUN.match(data, i)
                if m is not None:
                    run = m.group()
                    if not run.isascii():
                        run = run.decode("utf-8").encode("cp437", errors="replace")
                    self._put(run)
                    i = m.end()
                    continue
                b = data[i]
                if b >= 0x80:
                    if n - i < 4 and _UTF8_PREFIX.fullmatch(data, i):
                        self._pending = data[i:]
                        return
                    self._put(b"?")
                elif b == 0x1B:
                    self._state = _ESC
                else:
                    self._control(b)
                i += 1
            elif state == _CSI:
                if not self._params and not self._inter and not self._bad:
                    m = _CSI_BODY.match(data, i)
                    if m is not None:  # fast path: the whole sequence is in this write
                        self._state = _GROUND
                        params, inter, final = m.groups()
                        if len(params) + len(inter) <= _MAX_CSI:
                            self._dispatch_csi(params, inter, final[0])
                        i = m.end()
                        continue
                i = self._csi_byte(data[i], i)
            else:
                i = self._escape_byte(state, data[i], i)

    # -- bytes outside text runs ---------------------------------------------------------------------

    def _control(self, b: int) -> None:
        """C0 controls; anything not listed is ignored (as is DEL)."""
        if b == 0x0A:
            self._linefeed()
            self._move(self.cursor_row, 0)
        elif b == 0x0D:
            self._move(self.cursor_row, 0)
        elif b == 0x08:
            if self.cursor_col > 0:
                self._move(self.cursor_row, self.cursor_col - 1)
        elif b == 0x09:
            col = self.cursor_col + 8 - self.cursor_col % 8
            if col >= COLS:
                self._linefeed()
                col = 0
            self._move(self.cursor_row, col)

    def _escape_byte(self, state: int, b: int, i: int) -> int:
        """One byte in the ESC / ESC-intermediate / OSC states; returns the next index."""
        if b in (0x18, 0x1A):  # CAN, SUB: abort any sequence
            self._state = _GROUND
        elif state == _ESC:
            if b == 0x5B:  # [
                self._state = _CSI
                self._params.clear()
                self._inter.clear()
                self._bad = False
            elif b == 0x5D:  # ]
                self._state = _OSC
                self._osc_len = 0
            elif b == 0x1B:
                pass  # ESC ESC: the second one starts the sequence
            elif 0x20 <= b <= 0x2F:
                self._state = _ESC_INTER  # e.g. ESC ( B: consume up to the final byte
            else:
                self._state = _GROUND
                if b == 0x37:  # 7
                    self._saved = (self.cursor_row, self.cursor_col)
                elif b == 0x38:  # 8
                    self._move(*self._saved)
                elif b == 0x63:  # c
                    self.reset()
                # any other byte: ESC and the byte are both ignored (the seed's rule)
        elif state == _ESC_INTER:
            if b == 0x1B:
                self._state = _ESC
            elif not 0x20 <= b <= 0x2F:
                self._state = _GROUND
        elif state == _OSC:
            self._osc_len += 1
            if b == 0x07 or self._osc_len > _MAX_OSC:
                self._state = _GROUND
            elif b == 0x1B:
                self._state = _OSC_ESC
        else:  # _OSC_ESC
            self._state = _GROUND
            if b != 0x5C:  # not the string terminator: this ESC starts a new sequence
                self._state = _ESC
                return i  # reprocess b in the ESC state
        return i + 1

    def _csi_byte(self, b: int, i: int) -> int:
        """One byte of a CSI sequence arriving piecemeal; returns the next index."""
        if 0x40 <= b <= 0x7E:
            self._state = _GROUND
            if not self._bad:
                self._dispatch_csi(bytes(self._params), bytes(self._inter), b)
        elif 0x30 <= b <= 0x3F:
            if self._inter or len(self._params) >= _MAX_CSI:
                self._bad = True
            else:
                self._params.append(b)
        elif 0x20 <= b <= 0x2F:
            if len(self._inter) >= _MAX_CSI:
                self._bad = True
            else:
                self._inter.append(b)
        elif b == 0x1B:
            self._state = _ESC
        elif b in (0x18, 0x1A):
            self._state = _GROUND
        elif b < 0x20:
            self._control(b)  # C0 controls inside a sequence take effect, as in xterm
        elif b >= 0x80:
            self._state = _GROUND  # abort; the byte is shown as text
            return i
        return i + 1

    # -- CSI ------------------------------------------------------------------------------------------------

    def _dispatch_csi(self, params: bytes, inter: bytes, final: int) -> None:
        if inter:
            return
        private = params[:1] in (b"?", b"<", b"=", b">")
        if private:
            prefix, params = params[0], params[1:]
        body = params.replace(b";", b"")
        if body and not body.isdigit():
            return  # colons or stray private markers: not something we implement
        nums = [min(int(p), _MAX_PARAM) if p else None for p in params.split(b";")] if params else []
        if private:
            if prefix == 0x3F and final in (0x68, 0x6C) and 25 in nums:  # ?25h / ?25l
                visible = final == 0x68
                if visible != self.cursor_visible:
                    self.cursor_visible = visible
                    self.dirty = True
            return
        first = nums[0] if nums else None
        count = first or 1  # missing or 0 both mean 1 for movement
        row, col = self.cursor_row, self.cursor_col
        ch = chr(final)
        if ch == "m":
            self._sgr(nums)
        elif ch == "A":
            self._move(row - count, col)
        elif ch == "B":
            self._move(row + count, col)
        elif ch == "C":
            self._move(row, col + count)
        elif ch == "D":
            self._move(row, col - count)
        elif ch == "E":
            self._move(row + count, 0)
        elif ch == "F":
            self._move(row - count, 0)
        elif ch in "G`":
            self._move(row, count - 1)
        elif ch == "d":
            self._move(count - 1, col)
        elif ch in "Hf":
            second = nums[1] if len(nums) > 1 else None
            self._move((first or 1) - 1, (second or 1) - 1)
        elif ch == "J":
            self._erase_display(first or 0)
        elif ch == "K":
            self._erase_line(first or 0)
        elif ch == "s":
            self._saved = (row, col)
        elif ch == "u":
            self._move(*self._saved)
        # anything else (e.g. @, insert/delete lines, scroll regions): ignored

    def _sgr(self, nums: list[int | None]) -> None:
        if not nums:
            nums = [0]
        i = 0
        while i < len(nums):
            p = nums[i] or 0
            if p == 0:
                self._fg, self._bg, self._bold, self._reverse = DEFAULT_FG, DEFAULT_BG, False, False
            elif p == 1:
                self._bold = True
            elif p == 22:
                self._bold = False
            elif p == 7:
                self._reverse = True
            elif p == 27:
                self._reverse = False
            elif 30 <= p <= 37:
                self._fg = ANSI_TO_VGA[p - 30]
            elif p == 39:
                self._fg = DEFAULT_FG
            elif 40 <= p <= 47:
                self._bg = ANSI_TO_VGA[p - 40]
            elif p == 49:
                self._bg = DEFAULT_BG
            elif 90 <= p <= 97:
                self._fg = ANSI_TO_VGA[p - 90] + 8
            elif 100 <= p <= 107:
                self._bg = ANSI_TO_VGA[p - 100] + 8
            elif p in (38, 48):
                kind = nums[i + 1] if i + 1 < len(nums) else None
                if kind == 5 and i + 2 < len(nums):
                    colour = _xterm256_to_vga(min(nums[i + 2] or 0, 255))
                    i += 2
                elif kind == 2 and i + 4 < len(nums):
                    r, g, b = (min(v or 0, 255) for v in nums[i + 2 : i + 5])
                    colour = _nearest_cga(r, g, b)
                    i += 4
                else:
                    break  # malformed extended colour: the rest cannot be interpreted
                if p == 38:
                    self._fg = colour
                else:
                    self._bg = colour
            # other attributes (italic, underline, blink...) have no VGA equivalent here
            i += 1
        fg, bg = self._fg, self._bg
        if self._bold and fg < 8:
            fg += 8
        if self._reverse:
            fg, bg = bg, fg
        self._attr = (bg << 4) | fg

    # -- screen operations -----------------------------------------------------------------------------------

    def _move(self, row: int, col: int) -> None:
        """Move the cursor, clamped to the screen. Any move ends a pending wrap, even one that
        leaves the cursor where it was (``ESC[0C`` in column 80), as in xterm."""
        self.wrap_pending = False
        row = 0 if row < 0 else ROWS - 1 if row >= ROWS else row
        col = 0 if col < 0 else COLS - 1 if col >= COLS else col
        if row != self.cursor_row or col != self.cursor_col:
            self.cursor_row, self.cursor_col = row, col
            self.dirty = True

    def _linefeed(self) -> None:
        """Down one row, scrolling the screen up (blank bottom line) when on the last row."""
        if self.cursor_row < ROWS - 1:
            self.cursor_row += 1
        else:
            cells = self.cells
            history = self.history
            if history.maxlen:
                history.append(bytes(cells[:_ROW]))
                if self.offset and self.offset < len(history):
                    self.offset += 1  # output does not move a scrolled view
            cells[: SIZE - 2 * COLS] = cells[2 * COLS :]
            cells[SIZE - 2 * COLS :] = _BLANK_ROW
            self.damage_lo, self.damage_hi = 0, SIZE
        self.dirty = True

    def _put(self, run: bytes) -> None:
        """Write code page 437 characters at the cursor with the current colour. A pending wrap
        is done first; a row filled to column 80 wraps only if more of ``run`` follows, else the
        cursor stays on column 80 with ``wrap_pending`` set. Whole row segments are written with
        slice assignments, which is what keeps bulk output fast."""
        if not run:
            return
        cells = self.cells
        attr = self._attr
        if self.wrap_pending:
            self.wrap_pending = False
            self._linefeed()
            self.cursor_col = 0
        pos, total = 0, len(run)
        row, col = self.cursor_row, self.cursor_col
        start = (row * COLS + col) * 2
        while True:
            k = min(total - pos, COLS - col)
            off = (row * COLS + col) * 2
            cells[off : off + 2 * k : 2] = run[pos : pos + k]
            cells[off + 1 : off + 2 * k : 2] = bytes((attr,)) * k
            pos += k
            col += k
            self._damage(start, off + 2 * k)
            if col < COLS:
                break
            if pos == total:
                col = COLS - 1
                self.wrap_pending = True
                break
            self.cursor_row = row
            self._linefeed()
            row, col = self.cursor_row, 0
        self.cursor_row, self.cursor_col = row, col
        self.dirty = True

    def _fill(self, start: int, end: int, attr: int) -> None:
        """Spaces with ``attr`` in cells [start, end) (cell indices)."""
        if end > start:
            self.cells[start * 2 : end * 2] = bytes((0x20, attr)) * (end - start)
            self._damage(start * 2, end * 2)
            self.dirty = True

    def _erase_display(self, mode: int) -> None:
        self.wrap_pending = False
        here = self.cursor_row * COLS + self.cursor_col
        if mode == 0:
            self._fill(here, CELLS, BLANK_ATTR)
        elif mode == 1:
            self._fill(0, here, BLANK_ATTR)
        elif mode in (2, 3):
            if mode == 3 and (self.history or self.offset):  # Linux: the history goes too
                self.history.clear()
                self.offset = 0
                self.dirty = True
            self._fill(0, CELLS, BLANK_ATTR)

    def _erase_line(self, mode: int) -> None:
        self.wrap_pending = False
        start = self.cursor_row * COLS
        here = start + self.cursor_col
        if mode == 0:
            self._fill(here, start + COLS, self._attr)
        elif mode == 1:
            self._fill(start, here, BLANK_ATTR)
        elif mode == 2:
            self._fill(start, start + COLS, BLANK_ATTR)
