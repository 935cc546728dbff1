"""Key codes: what travels in a CHAR message, shared by every program that reads keys.

The keyboard driver (drivers/keymap.py decodes scan codes), the serial console, the console
driver, the line editor, edit and gopher all speak this one encoding, so it lives once, here:

* Characters are their Unicode code point. Ctrl+letter gives the control code 1..26; Enter is
  10, Backspace 8, Tab 9, Esc 27, Delete 127.
* Special keys are VT escape sequences packed into one integer, most significant byte first, with
  byte 0x9B standing for the "[" after ESC (spec §12.3): Up = ESC 9B 'A' = 0x1B9B41.
  Every packed code is > 0x10FFFF, which is how readers tell keys from characters.
* Alt + a character is ESC, 0x00, its UTF-8 bytes (the NUL standing for "meta" as 0x9B stands for
  "["): Alt+x = 0x1B0078. :func:`code_to_bytes` turns it back into b"\\x1bx".
"""

from __future__ import annotations

# -- packed key codes (spec §12.3) -------------------------------------------------------------------


def _pack(seq: bytes) -> int:
    return int.from_bytes(seq, "big")


KEY_UP = _pack(b"\x1b\x9bA")
KEY_DOWN = _pack(b"\x1b\x9bB")
KEY_RIGHT = _pack(b"\x1b\x9bC")
KEY_LEFT = _pack(b"\x1b\x9bD")
KEY_HOME = _pack(b"\x1b\x9bH")
KEY_END = _pack(b"\x1b\x9bF")
KEY_INSERT = _pack(b"\x1b\x9b2~")
KEY_PGUP = _pack(b"\x1b\x9b5~")
KEY_PGDN = _pack(b"\x1b\x9b6~")
# Shift+PgUp/PgDn as xterm sends them (modifier parameter 2 = Shift): the console's scrollback
# keys, which init hands to the console driver instead of to the program.
KEY_SHIFT_PGUP = _pack(b"\x1b\x9b5;2~")
KEY_SHIFT_PGDN = _pack(b"\x1b\x9b6;2~")
KEY_DELETE = 127
KEY_F1 = _pack(b"\x1b\x9b11~")
KEY_F2 = _pack(b"\x1b\x9b12~")
KEY_F3 = _pack(b"\x1b\x9b13~")
KEY_F4 = _pack(b"\x1b\x9b14~")
KEY_F5 = _pack(b"\x1b\x9b15~")
KEY_F6 = _pack(b"\x1b\x9b17~")  # 16 is skipped, as in xterm
KEY_F7 = _pack(b"\x1b\x9b18~")
KEY_F8 = _pack(b"\x1b\x9b19~")
KEY_F9 = _pack(b"\x1b\x9b20~")
KEY_F10 = _pack(b"\x1b\x9b21~")
KEY_F11 = _pack(b"\x1b\x9b23~")
KEY_F12 = _pack(b"\x1b\x9b24~")
KEY_ENTER = 10
KEY_BACKSPACE = 8
KEY_TAB = 9
KEY_ESCAPE = 27

F_KEYS = (KEY_F1, KEY_F2, KEY_F3, KEY_F4, KEY_F5, KEY_F6, KEY_F7, KEY_F8, KEY_F9, KEY_F10, KEY_F11, KEY_F12)

MAX_UNICODE = 0x10FFFF
_ESC = 0x1B
_CSI_MARK = 0x9B  # stands for "[" after ESC in packed codes
_META_MARK = 0x00  # stands for "Alt" after ESC in packed codes


def is_special(code: int) -> bool:
    """True for packed key codes (never a Unicode scalar), False for characters."""
    return code > MAX_UNICODE


def meta(code: int) -> int:
    """The Alt+character code for character ``code`` (ESC 0x00 + its UTF-8)."""
    return _pack(bytes((_ESC, _META_MARK)) + chr(code).encode("utf-8"))


def code_to_bytes(code: int) -> bytes:
    """The bytes a terminal would send for ``code``: UTF-8 for characters, the escape sequence
    (with a real "[") for special keys, ESC + character for Alt+character.

    ValueError for negative numbers, surrogates, and integers wider than 64 bits or not starting
    with ESC (nothing the decoder produces)."""
    if code < 0:
        raise ValueError(f"key code {code!r} is negative")
    if code <= MAX_UNICODE:
        if 0xD800 <= code <= 0xDFFF:
            raise ValueError(f"key code {code:#x} is a surrogate, not a character")
        return chr(code).encode("utf-8")
    if code >= 1 << 64:
        raise ValueError(f"key code {code:#x} does not fit in 64 bits")
    seq = code.to_bytes((code.bit_length() + 7) // 8, "big")
    if seq[0] != _ESC or len(seq) < 3:
        raise ValueError(f"key code {code:#x} is not a packed escape sequence")
    if seq[1] == _CSI_MARK:
        return b"\x1b[" + seq[2:]
    if seq[1] == _META_MARK:
        return b"\x1b" + seq[2:]
    return seq


# SS3 sequences (ESC O x) some terminals send for F1-F4 and arrows in application mode.
_SS3 = {
    ord("P"): KEY_F1, ord("Q"): KEY_F2, ord("R"): KEY_F3, ord("S"): KEY_F4,
    ord("A"): KEY_UP, ord("B"): KEY_DOWN, ord("C"): KEY_RIGHT, ord("D"): KEY_LEFT,
    ord("H"): KEY_HOME, ord("F"): KEY_END,
}  # fmt: skip


def _one_char(data: bytes) -> int | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return ord(text) if len(text) == 1 else None


def bytes_to_code(data: bytes) -> int:
    """Inverse of :func:`code_to_bytes`: what one key's terminal bytes mean as a key code.

    Accepts a single UTF-8 character, ``ESC [ params final`` (CSI, also already packed with 0x9B),
    ``ESC O x`` (SS3 forms of F1-F4/arrows/Home/End) and ESC + one character (Alt). A lone ESC is
    27. ValueError for anything else, including sequences too long for 64 bits."""
    data = bytes(data)
    if not data:
        raise ValueError("no bytes")
    ch = _one_char(data)
    if ch is not None:
        return ch
    if data[0] != _ESC:
        raise ValueError(f"not one key: {data!r}")
    if len(data) >= 3 and data[1] in (ord("["), _CSI_MARK):
        body = data[2:]
        i = 0
        while i < len(body) - 1 and 0x30 <= body[i] <= 0x3F:
            i += 1
        while i < len(body) - 1 and 0x20 <= body[i] <= 0x2F:
            i += 1
        if i != len(body) - 1 or not 0x40 <= body[i] <= 0x7E:
            raise ValueError(f"malformed CSI sequence {data!r}")
        if len(data) > 8:
            raise ValueError(f"sequence {data!r} too long to pack in 64 bits")
        return _pack(bytes((_ESC, _CSI_MARK)) + body)
    if len(data) == 3 and data[1] == ord("O") and data[2] in _SS3:
        return _SS3[data[2]]
    rest = _one_char(data[1:])
    if rest is not None:
        if len(data) + 1 > 8:
            raise ValueError(f"sequence {data!r} too long to pack in 64 bits")
        return meta(rest)
    raise ValueError(f"not one key: {data!r}")
