"""`sendkey KEYS`: QEMU's key names -> the PS/2 keyboard's physical keys (sans-IO parsing).

KEYS is QEMU's: key names (QKeyCode: a, 1, ret, spc, esc, tab, backspace, f1, up, pgup, kp_5,
ctrl, alt, shift, shift_r, meta_l, ...) or hex set-1 scan codes (0x1e; 0x80 and up are the
E0-prefixed keys, as QEMU's key numbers), joined by '-'. As QEMU does, every key is pressed in
order and then all are released in reverse, so ``ctrl-alt-delete`` holds Ctrl and Alt around
Delete. An unknown name sends nothing and is ``invalid parameter: NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass

from machine.ps2 import SCANCODES

_NAMED = {
    "shift": "LeftShift", "shift_r": "RightShift", "alt": "LeftAlt", "alt_r": "RightAlt",
    "altgr": "RightAlt", "altgr_r": "RightAlt", "ctrl": "LeftCtrl", "ctrl_r": "RightCtrl",
    "menu": "Menu", "esc": "Escape", "minus": "-", "equal": "=", "backspace": "Backspace",
    "tab": "Tab", "bracket_left": "[", "bracket_right": "]", "ret": "Enter", "semicolon": ";",
    "apostrophe": "'", "grave_accent": "`", "backslash": "\\", "comma": ",", "dot": ".",
    "slash": "/", "asterisk": "KP*", "spc": " ", "caps_lock": "CapsLock", "num_lock": "NumLock",
    "scroll_lock": "ScrollLock", "kp_divide": "KP/", "kp_multiply": "KP*", "kp_subtract": "KP-",
    "kp_add": "KP+", "kp_enter": "KPEnter", "kp_decimal": "KP.", "less": "NonUSBackslash",
    "home": "Home", "pgup": "PageUp", "pgdn": "PageDown", "end": "End", "left": "Left",
    "up": "Up", "down": "Down", "right": "Right", "insert": "Insert", "delete": "Delete",
    "meta_l": "LeftMeta", "meta_r": "RightMeta",
    **{c: c for c in "abcdefghijklmnopqrstuvwxyz0123456789"},
    **{f"f{i}": f"F{i}" for i in range(1, 13)},
    **{f"kp_{i}": f"KP{i}" for i in range(10)},
}  # fmt: skip


class SendkeyError(ValueError):
    """A key QEMU would not know; the text is the monitor's line."""


@dataclass(frozen=True)
class Key:
    """One key: its set-1 make code (0xE0xx for an extended key)."""

    code: int

    def make(self) -> bytes:
        return bytes((0xE0, self.code & 0xFF)) if self.code & 0xE000 else bytes((self.code,))

    def brk(self) -> bytes:
        return bytes((0xE0, (self.code & 0xFF) | 0x80)) if self.code & 0xE000 else bytes((self.code | 0x80,))


def parse_keys(text: str) -> list[Key]:
    """`ctrl-alt-delete` -> [Key, Key, Key]; SendkeyError for a name QEMU does not have."""
    keys: list[Key] = []
    for word in text.split("-"):
        name = word.strip()
        if name.lower().startswith("0x"):
            try:
                n = int(name, 16)
            except ValueError:
                raise SendkeyError(f"invalid parameter: {name}") from None
            if not 0 < n < 0x100 or n & 0x7F == 0:
                raise SendkeyError(f"invalid parameter: {name}")
            keys.append(Key(0xE000 | (n & 0x7F) if n & 0x80 else n))
            continue
        physical = _NAMED.get(name.lower())
        if physical is None or not name:
            raise SendkeyError(f"invalid parameter: {name}")
        keys.append(Key(SCANCODES[physical]))
    return keys


def scan_bytes(keys: list[Key]) -> bytes:
    """Every make in order, then every break in reverse: what the keyboard sends."""
    return b"".join(k.make() for k in keys) + b"".join(k.brk() for k in reversed(keys))
