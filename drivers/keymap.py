"""Scan code set 1 -> key codes: the keyboard driver's decoder, sans I/O (spec §11.4, §12.3).

Behaves like the pc-keyboard 0.6 crate the seed uses (``ScancodeSet1`` + ``Us104Key``/``Uk105Key``,
``HandleControl::MapLettersToUnicode``), with its ``DecodedKey`` turned into the single ``u64``
key code that travels in CHAR messages:

* Characters are their Unicode code point. Shift and Caps Lock (letters only: shift XOR caps) are
  honoured; Num Lock starts ON and selects digits vs. navigation on the keypad.
* Ctrl+letter gives the control code 1..26 (Ctrl+other keys types the key normally, as the crate
  does). Enter and keypad Enter -> 10, Backspace 8, Tab 9, Esc 27, Delete (and keypad . without
  Num Lock) 127.
* Special keys are VT escape sequences packed into one integer, most significant byte first, with
  byte 0x9B standing for the "[" after ESC (spec §12.3): Up = ESC 9B 'A' = 0x1B9B41.
  Every packed code is > 0x10FFFF, which is how readers tell keys from characters.
* Shift+PgUp and Shift+PgDn (the grey keys, or the keypad's 9/3 without Num Lock) are the xterm
  sequences ESC [ 5 ; 2 ~ and ESC [ 6 ; 2 ~ (KEY_SHIFT_PGUP/PGDN): the console's scrollback keys.
  Other special keys ignore Shift, as the crate does.
* Alt (left Alt; right Alt too on the US layout) + a character is sent the way xterm's
  metaSendsEscape does it: ESC then the character. To keep the "never a Unicode scalar" rule it is
  packed as ESC, 0x00, UTF-8 bytes (the NUL standing for "meta" as 0x9B stands for "["):
  Alt+x = 0x1B0078. :func:`code_to_bytes` turns it back into b"\\x1bx".
* On the UK layout right Alt is AltGr (AltGr+4 = €, AltGr+` = |, as the crate); keys without an
  AltGr symbol type their plain character.
* Keypad 5 types "5" with Num Lock off too (the crate's Numpad5 has no navigation meaning).
* Releases, modifier and lock keys, and keys with no meaning to a terminal (Windows/menu keys,
  Print Screen, Pause, Scroll Lock, and on the US layout the ISO 102nd key, scan code 0x56,
  which pc-keyboard 0.6.0's Us104Key leaves a raw key) give None. The UK layout types \\ and |
  on that key, as a UK board is labelled (and as later crates' Uk105Key do).
* A 0xE0 prefix followed by another 0xE0 is simply a prefix again, and the byte after it is
  decoded as an extended key, so a byte lost between two extended codes loses no further key.
  (pc-keyboard 0.6.0 rejects the second E0 and reads the next byte as a plain key: E0 E0 48 is
  keypad 8 there, Up here.)
"""

from __future__ import annotations

from euralios.std.keys import (
    KEY_BACKSPACE,
    KEY_DELETE,
    KEY_DOWN,
    KEY_END,
    KEY_ENTER,
    KEY_ESCAPE,
    KEY_F1,
    KEY_F2,
    KEY_F3,
    KEY_F4,
    KEY_F5,
    KEY_F6,
    KEY_F7,
    KEY_F8,
    KEY_F9,
    KEY_F10,
    KEY_F11,
    KEY_F12,
    KEY_HOME,
    KEY_INSERT,
    KEY_LEFT,
    KEY_PGDN,
    KEY_PGUP,
    KEY_RIGHT,
    KEY_SHIFT_PGDN,
    KEY_SHIFT_PGUP,
    KEY_TAB,
    KEY_UP,
    MAX_UNICODE,
    meta,
)

# -- scan code set 1 tables ------------------------------------------------------------------------

# Character keys: make code -> (unshifted, shifted) on the US 104-key layout.
_US_CHARS: dict[int, tuple[str, str]] = {
    0x02: ("1", "!"), 0x03: ("2", "@"), 0x04: ("3", "#"), 0x05: ("4", "$"), 0x06: ("5", "%"),
    0x07: ("6", "^"), 0x08: ("7", "&"), 0x09: ("8", "*"), 0x0A: ("9", "("), 0x0B: ("0", ")"),
    0x0C: ("-", "_"), 0x0D: ("=", "+"), 0x1A: ("[", "{"), 0x1B: ("]", "}"), 0x2B: ("\\", "|"),
    0x27: (";", ":"), 0x28: ("'", '"'), 0x29: ("`", "~"), 0x33: (",", "<"), 0x34: (".", ">"),
    0x35: ("/", "?"), 0x39: (" ", " "),
}  # fmt: skip
# No 0x56 (the ISO 102nd key, left of Z, absent on a 104-key board): pc-keyboard 0.6.0 decodes it
# as KeyCode::Oem102, which Us104Key has no character for (a raw key, which the seed does not send).

_UK_CHARS: dict[int, tuple[str, str]] = {
    **_US_CHARS,
    0x03: ("2", '"'),
    0x04: ("3", "£"),
    0x28: ("'", "@"),
    0x29: ("`", "¬"),
    0x2B: ("#", "~"),
    0x56: ("\\", "|"),  # the ISO key a UK board has left of Z
}

# AltGr symbols on the UK layout (pc-keyboard's Uk105Key).
_UK_ALTGR: dict[int, str] = {0x05: "€", 0x29: "|"}

_LETTERS: dict[int, str] = {
    **{0x10 + i: c for i, c in enumerate("qwertyuiop")},
    **{0x1E + i: c for i, c in enumerate("asdfghjkl")},
    **{0x2C + i: c for i, c in enumerate("zxcvbnm")},
}

# Keys whose output does not depend on modifiers.
_FIXED: dict[int, int] = {
    0x01: KEY_ESCAPE, 0x0E: KEY_BACKSPACE, 0x0F: KEY_TAB, 0x1C: KEY_ENTER,
    0x37: ord("*"), 0x4A: ord("-"), 0x4E: ord("+"),
    0x3B: KEY_F1, 0x3C: KEY_F2, 0x3D: KEY_F3, 0x3E: KEY_F4, 0x3F: KEY_F5,
    0x40: KEY_F6, 0x41: KEY_F7, 0x42: KEY_F8, 0x43: KEY_F9, 0x44: KEY_F10,
    0x57: KEY_F11, 0x58: KEY_F12,
}  # fmt: skip

# Keypad: make code -> (with Num Lock, without). Keypad 5 is "5" either way: the crate has no
# "centre" key for it to be without Num Lock.
_KEYPAD: dict[int, tuple[int, int]] = {
    0x47: (ord("7"), KEY_HOME), 0x48: (ord("8"), KEY_UP), 0x49: (ord("9"), KEY_PGUP),
    0x4B: (ord("4"), KEY_LEFT), 0x4C: (ord("5"), ord("5")), 0x4D: (ord("6"), KEY_RIGHT),
    0x4F: (ord("1"), KEY_END), 0x50: (ord("2"), KEY_DOWN), 0x51: (ord("3"), KEY_PGDN),
    0x52: (ord("0"), KEY_INSERT), 0x53: (ord("."), KEY_DELETE),
}  # fmt: skip

# E0-prefixed keys that produce codes.
_EXTENDED: dict[int, int] = {
    0x1C: KEY_ENTER, 0x35: ord("/"),
    0x47: KEY_HOME, 0x48: KEY_UP, 0x49: KEY_PGUP, 0x4B: KEY_LEFT, 0x4D: KEY_RIGHT,
    0x4F: KEY_END, 0x50: KEY_DOWN, 0x51: KEY_PGDN, 0x52: KEY_INSERT, 0x53: KEY_DELETE,
}  # fmt: skip

# Shift + these special keys has its own code (the scrollback keys).
_SHIFTED: dict[int, int] = {KEY_PGUP: KEY_SHIFT_PGUP, KEY_PGDN: KEY_SHIFT_PGDN}

_LSHIFT, _RSHIFT, _CTRL, _ALT = 0x2A, 0x36, 0x1D, 0x38
_CAPS, _NUM, _SCROLL = 0x3A, 0x45, 0x46

LAYOUTS = ("us", "uk")


class KeyboardDecoder:
    """Feed scan code set 1 bytes one at a time; get a key code for each key press that means one.

    State (modifiers, locks, a pending 0xE0 prefix) persists across calls, so bytes may arrive
    one per interrupt, as they do."""

    def __init__(self, layout: str = "us") -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"unknown keyboard layout {layout!r} (known: {', '.join(LAYOUTS)})")
        self.layout = layout
        self._chars = _UK_CHARS if layout == "uk" else _US_CHARS
        self._altgr = _UK_ALTGR if layout == "uk" else {}
        self.lshift = self.rshift = False
        self.lctrl = self.rctrl = False
        self.lalt = self.ralt = False
        self.caps_lock = False
        self.num_lock = True  # as the seed's driver initialises pc-keyboard
        self.scroll_lock = False
        self._e0 = False
        self._skip = 0  # bytes still to swallow of a Pause (E1) sequence

    @property
    def shift(self) -> bool:
        return self.lshift or self.rshift

    @property
    def ctrl(self) -> bool:
        return self.lctrl or self.rctrl

    @property
    def alt(self) -> bool:
        """Alt as a meta key: left Alt, and right Alt unless it is AltGr (UK)."""
        return self.lalt or (self.ralt and self.layout != "uk")

    def feed(self, byte: int) -> int | None:
        """Process one byte from port 0x60; return a key code or None."""
        byte &= 0xFF
        if self._skip:
            self._skip -= 1
            return None
        if byte == 0xE0:
            self._e0 = True
            return None
        if byte == 0xE1:  # Pause: E1 1D 45 E1 9D C5, no key code
            self._skip = 2
            self._e0 = False
            return None
        if byte in (0x00, 0xFF, 0xFA, 0xFE, 0xEE) and not self._e0:
            # Controller/keyboard responses and errors (overrun, ACK, resend, echo), not key events.
            return None
        extended, self._e0 = self._e0, False
        released = bool(byte & 0x80)
        code = byte & 0x7F
        if extended:
            return self._extended(code, released)
        return self._normal(code, released)

    def feed_bytes(self, data: bytes) -> list[int]:
        """Feed several bytes; return the codes they produce, in order."""
        out = []
        for b in data:
            code = self.feed(b)
            if code is not None:
                out.append(code)
        return out

    # -- internals ----------------------------------------------------------------------------------

    def _extended(self, code: int, released: bool) -> int | None:
        if code == _CTRL:
            self.rctrl = not released
            return None
        if code == _ALT:
            self.ralt = not released
            return None
        if released or code in (_LSHIFT, _RSHIFT):  # E0 2A / E0 36: fake shifts around PrtSc etc.
            return None
        result = _EXTENDED.get(code)
        if result is None:
            return None
        if self.shift:
            result = _SHIFTED.get(result, result)
        return self._with_meta(result)

    def _normal(self, code: int, released: bool) -> int | None:
        if code == _LSHIFT:
            self.lshift = not released
            return None
        if code == _RSHIFT:
            self.rshift = not released
            return None
        if code == _CTRL:
            self.lctrl = not released
            return None
        if code == _ALT:
            self.lalt = not released
            return None
        if released:
            return None
        if code == _CAPS:
            self.caps_lock = not self.caps_lock
            return None
        if code == _NUM:
            self.num_lock = not self.num_lock
            return None
        if code == _SCROLL:
            self.scroll_lock = not self.scroll_lock
            return None
        letter = _LETTERS.get(code)
        if letter is not None:
            if self.ctrl:
                return self._with_meta(ord(letter) - ord("a") + 1)
            upper = self.shift != self.caps_lock
            return self._with_meta(ord(letter.upper() if upper else letter))
        if self.ralt and code in self._altgr:
            return ord(self._altgr[code])
        pair = self._chars.get(code)
        if pair is not None:
            return self._with_meta(ord(pair[1] if self.shift else pair[0]))
        fixed = _FIXED.get(code)
        if fixed is not None:
            return self._with_meta(fixed)
        keypad = _KEYPAD.get(code)
        if keypad is not None:
            if self.num_lock:
                return self._with_meta(keypad[0])
            return self._with_meta(_SHIFTED.get(keypad[1], keypad[1]) if self.shift else keypad[1])
        return None

    def _with_meta(self, code: int) -> int:
        """Alt + character -> ESC-prefixed; Alt is ignored on special keys."""
        if self.alt and code <= MAX_UNICODE:
            return meta(code)
        return code
