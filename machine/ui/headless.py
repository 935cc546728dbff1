"""Headless front-end pieces: key scripts -> PS/2 key presses, and the screen as text.

Key scripts are what `euralios --headless --type KEYS`, `System.type()` and tests use:

* literal text is typed as on a US keyboard (capitals and symbols with Shift); a real newline,
  tab, backspace or escape character presses Enter, Tab, Backspace or Escape;
* ``{Name}`` presses a named key: Enter, Tab, Esc, Backspace, Space, F1..F12, Up, Down, Left,
  Right, PgUp, PgDn, Home, End, Del, Ins (and the long forms Escape, PageUp, PageDown, Delete,
  Insert, Return);
* ``{Ctrl+X}``, ``{Alt+X}``, ``{Shift+Tab}``, ``{Shift+PgUp}`` (a console's scrollback; also
  ``{S+PgUp}``), ``{Ctrl+Alt+Del}``: modifiers joined by ``+`` before
  a key name or one character (letters are taken lower case: ``{Ctrl+S}`` is Ctrl and the S key,
  not Ctrl+Shift+S; say ``{Ctrl+Shift+S}`` for that);
* ``{{`` types a literal ``{``;
* with ``escapes=True`` (the command line, where a shell passes ``\\n`` as two characters) the
  backslash escapes ``\\n`` ``\\r`` (Enter), ``\\t`` (Tab), ``\\b`` (Backspace), ``\\e`` (Escape) and
  ``\\\\`` (a backslash) are understood too.

Everything is parsed and checked before any key is pressed, so a typo sends nothing.

This module knows only the machine (the PS/2 controller and VGA text memory), never the OS.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import trio

from machine.ps2 import resolve
from machine.vga import COLS, ROWS, VgaText


@dataclass(frozen=True, slots=True)
class KeyPress:
    """One key press: a machine.ps2 key name and the modifiers held around it."""

    name: str
    shift: bool = False
    ctrl: bool = False
    alt: bool = False


NAMED_KEYS: dict[str, str] = {
    "enter": "Enter", "return": "Enter", "tab": "Tab", "esc": "Escape", "escape": "Escape",
    "backspace": "Backspace", "bs": "Backspace", "space": " ",
    "up": "Up", "down": "Down", "left": "Left", "right": "Right",
    "pgup": "PageUp", "pageup": "PageUp", "pgdn": "PageDown", "pagedown": "PageDown",
    "home": "Home", "end": "End", "del": "Delete", "delete": "Delete", "ins": "Insert", "insert": "Insert",
    "menu": "Menu", "capslock": "CapsLock", "numlock": "NumLock", "scrolllock": "ScrollLock",
    "kpenter": "KPEnter",
    **{f"f{i}": f"F{i}" for i in range(1, 13)},
}  # fmt: skip

MODIFIERS = ("shift", "ctrl", "alt")
_MOD_ALIASES = {"control": "ctrl", "ctl": "ctrl", "c": "ctrl", "meta": "alt", "m": "alt", "a": "alt", "s": "shift"}
_TEXT_KEYS = {"\n": "Enter", "\r": "Enter", "\t": "Tab", "\b": "Backspace", "\x1b": "Escape"}
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "e": "\x1b", "\\": "\\"}


class KeySpecError(ValueError):
    """A key script that cannot be typed (unknown key name, untypeable character)."""


def _char_key(ch: str) -> KeyPress:
    name = _TEXT_KEYS.get(ch, ch)
    try:
        resolve(name)
    except ValueError:
        raise KeySpecError(f"cannot type {ch!r} on a US keyboard") from None
    return KeyPress(name)


def _token(body: str) -> KeyPress:
    """The inside of ``{...}``: [Mod+]...Key."""
    if body == "+":
        mods, key = [], "+"
    elif body.endswith("++"):  # {Ctrl++}: Ctrl and the + key
        mods, key = body[:-2].split("+"), "+"
    else:
        *mods, key = body.split("+")
    flags = {"shift": False, "ctrl": False, "alt": False}
    for m in mods:
        m = _MOD_ALIASES.get(m.strip().lower(), m.strip().lower())
        if m not in flags:
            raise KeySpecError(f"unknown modifier {m!r} in {{{body}}}")
        flags[m] = True
    name = NAMED_KEYS.get(key.strip().lower())
    if name is None:
        if len(key) != 1:
            raise KeySpecError(f"unknown key {{{body}}}")
        ch = key.lower() if mods and key.isalpha() else key
        press = _char_key(ch)
        return KeyPress(press.name, **flags)
    return KeyPress(name, **flags)


def parse_keys(spec: str, *, escapes: bool = False) -> list[KeyPress]:
    """A key script -> the key presses it stands for (see the module docstring)."""
    out: list[KeyPress] = []
    i, n = 0, len(spec)
    while i < n:
        ch = spec[i]
        if ch == "{":
            if spec.startswith("{{", i):
                out.append(_char_key("{"))
                i += 2
                continue
            end = spec.find("}", i + 2)  # the body is at least one character: {}} is the } key
            if end < 0:
                raise KeySpecError(f"unclosed {{ at position {i} in key script {spec!r}")
            out.append(_token(spec[i + 1 : end]))
            i = end + 1
            continue
        if ch == "\\" and escapes and i + 1 < n and spec[i + 1] in _ESCAPES:
            out.append(_char_key(_ESCAPES[spec[i + 1]]))
            i += 2
            continue
        out.append(_char_key(ch))
        i += 1
    return out


class Keyboard(Protocol):
    """The part of machine.ps2.PS2Controller typing needs."""

    def key(self, name: str, *, shift: bool = False, ctrl: bool = False, alt: bool = False) -> None: ...


def press(keyboard: Keyboard, keys: list[KeyPress]) -> None:
    for k in keys:
        keyboard.key(k.name, shift=k.shift, ctrl=k.ctrl, alt=k.alt)


def type_keys(keyboard: Keyboard, spec: str, *, escapes: bool = False) -> list[KeyPress]:
    """Parse `spec` and press its keys; returns what was pressed."""
    keys = parse_keys(spec, escapes=escapes)
    press(keyboard, keys)
    return keys


class HeadlessScreen:
    """VGA text memory as text for scripts and tests, and an event-driven wait on it.

    Waiting registers a VgaText change listener that sets a trio event: the waiter wakes only
    when text memory or the cursor changed, never on a timer."""

    def __init__(self, vga: VgaText) -> None:
        self.vga = vga

    def text(self) -> str:
        """25 lines of exactly 80 characters."""
        return self.vga.text()

    def lines(self) -> list[str]:
        """The 25 lines with trailing blanks removed."""
        return [line.rstrip() for line in self.vga.text().split("\n")]

    def render(self) -> str:
        """The screen for printing: 25 lines, trailing blanks removed."""
        return "\n".join(self.lines())

    @property
    def cursor(self) -> tuple[int, int]:
        return self.vga.cursor

    def matches(self, rx: re.Pattern[str], *, printed: bool = False) -> re.Match[str] | None:
        """`rx` searched in the screen: the 80-column rows, or with `printed` first the screen as
        render() prints it (trailing blanks trimmed, so ``^\\$$`` is a bare ``$ `` prompt row) and
        then the 80-column rows (so a pattern written against the padding, ``^\\$ ``, still does)."""
        if printed:
            m = rx.search(self.render())
            if m:
                return m
        return rx.search(self.vga.text())

    async def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 10.0, *,
                       printed: bool = False) -> re.Match[str]:
        """Wait until the screen text matches `pattern` (re.MULTILINE: ^ and $ are per line);
        `printed`: see matches().

        trio.TooSlowError after `timeout` seconds."""
        rx = re.compile(pattern, re.MULTILINE) if isinstance(pattern, str) else pattern
        changed = trio.Event()

        def on_change() -> None:
            changed.set()

        remove = self.vga.on_change(on_change)
        try:
            with trio.fail_after(timeout):
                while True:
                    m = self.matches(rx, printed=printed)
                    if m:
                        return m
                    await changed.wait()
                    changed = trio.Event()
        finally:
            remove()

    async def settle(self, quiet: float = 0.2, limit: float = 5.0) -> bool:
        """Wait until nothing changed on screen for `quiet` seconds (at most `limit` seconds);
        True if the screen went quiet. For printing a final screen after typing."""
        changed = trio.Event()

        def on_change() -> None:
            changed.set()

        remove = self.vga.on_change(on_change)
        try:
            with trio.move_on_after(limit):
                while True:
                    with trio.move_on_after(quiet):
                        await changed.wait()
                        changed = trio.Event()
                        continue
                    return True
            return False
        finally:
            remove()


__all__ = ["COLS", "ROWS", "HeadlessScreen", "KeyPress", "KeySpecError", "parse_keys", "press", "type_keys"]
