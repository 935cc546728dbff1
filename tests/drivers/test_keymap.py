"""Scan code set 1 decoder (spec §11.4, §12.3, §16.5 rows 59-60) and key-code <-> bytes."""

from __future__ import annotations

import string

import pytest

from drivers.keymap import KeyboardDecoder
from euralios.std.keys import (
    F_KEYS,
    KEY_DELETE,
    KEY_DOWN,
    KEY_END,
    KEY_F1,
    KEY_F2,
    KEY_F5,
    KEY_F6,
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
    KEY_UP,
    bytes_to_code,
    code_to_bytes,
    is_special,
    meta,
)
from machine.irq import IrqController
from machine.ps2 import PS2Controller


def decode(data: bytes, layout: str = "us") -> list[int]:
    return KeyboardDecoder(layout).feed_bytes(data)


def ps2_bytes(*keys: tuple[str, dict[str, bool]] | str) -> bytes:
    """Scan codes the emulated keyboard sends for ``keys`` (name or (name, modifiers))."""
    kbd = PS2Controller(IrqController())
    for k in keys:
        if isinstance(k, str):
            kbd.key(k)
        else:
            kbd.key(k[0], **k[1])
    out = bytearray()
    while kbd.queued:
        out.append(kbd.port_read(0x60, 1))
    return bytes(out)


# -- spec vectors ------------------------------------------------------------------------------------


def test_spec_row_59_ctrl_s() -> None:
    assert decode(b"\x1d\x1f") == [19]


def test_spec_row_60() -> None:
    d = KeyboardDecoder()
    assert d.feed(0x1C) == 10  # Enter
    assert d.feed(0x0E) == 8  # Backspace
    assert d.feed(0x3B) == 0x1B9B31317E  # F1
    assert d.feed(0xE0) is None
    assert d.feed(0x48) == 0x1B9B41  # Up
    assert d.feed(0x2A) is None
    assert d.feed(0x1E) == 65  # Shift+A


def test_special_key_codes_match_spec_table() -> None:
    assert [hex(k) for k in F_KEYS] == [
        "0x1b9b31317e", "0x1b9b31327e", "0x1b9b31337e", "0x1b9b31347e", "0x1b9b31357e", "0x1b9b31377e",
        "0x1b9b31387e", "0x1b9b31397e", "0x1b9b32307e", "0x1b9b32317e", "0x1b9b32337e", "0x1b9b32347e",
    ]  # fmt: skip
    assert KEY_PGUP == 0x1B9B357E
    assert KEY_PGDN == 0x1B9B367E
    assert KEY_HOME == 0x1B9B48
    assert KEY_END == 0x1B9B46
    assert (KEY_UP, KEY_DOWN, KEY_RIGHT, KEY_LEFT) == (0x1B9B41, 0x1B9B42, 0x1B9B43, 0x1B9B44)
    assert KEY_DELETE == 127
    assert KEY_INSERT == 0x1B9B327E
    assert all(is_special(k) for k in (*F_KEYS, KEY_PGUP, KEY_PGDN, KEY_HOME, KEY_END, KEY_UP, KEY_INSERT))


# -- keys ------------------------------------------------------------------------------------------------


def test_function_keys() -> None:
    assert decode(bytes([0x3B, 0x3C, 0x3F, 0x40, 0x44, 0x57, 0x58])) == [
        KEY_F1, KEY_F2, KEY_F5, KEY_F6, KEY_F10, KEY_F11, KEY_F12,
    ]  # fmt: skip


def test_e0_navigation_keys() -> None:
    seq = b"".join(b"\xe0" + bytes([c]) for c in (0x47, 0x48, 0x49, 0x4B, 0x4D, 0x4F, 0x50, 0x51, 0x52, 0x53))
    assert decode(seq) == [
        KEY_HOME,
        KEY_UP,
        KEY_PGUP,
        KEY_LEFT,
        KEY_RIGHT,
        KEY_END,
        KEY_DOWN,
        KEY_PGDN,
        KEY_INSERT,
        127,
    ]


def test_e0_keypad_enter_and_divide() -> None:
    assert decode(b"\xe0\x1c\xe0\x35") == [10, ord("/")]


def test_controls() -> None:
    assert decode(b"\x01\x0f\x39") == [27, 9, 32]


def test_releases_produce_nothing() -> None:
    d = KeyboardDecoder()
    for b in (0x9E, 0x9C, 0xBB, 0x81):
        assert d.feed(b) is None
    assert d.feed(0xE0) is None
    assert d.feed(0xC8) is None  # Up released


def test_modifier_keys_produce_nothing() -> None:
    assert decode(b"\x2a\x36\x1d\x38\xe0\x1d\xe0\x38\x3a\x45\x46") == []


def test_shift_left_and_right_and_release() -> None:
    assert decode(b"\x2a\x1e\xaa\x1e") == [ord("A"), ord("a")]
    assert decode(b"\x36\x02\xb6\x02") == [ord("!"), ord("1")]


def test_caps_lock_affects_letters_only() -> None:
    d = KeyboardDecoder()
    d.feed_bytes(b"\x3a\xba")  # Caps Lock press+release toggles on
    assert d.caps_lock
    assert d.feed_bytes(b"\x1e\x02\x27") == [ord("A"), ord("1"), ord(";")]
    assert d.feed_bytes(b"\x2a\x1e\x02\xaa") == [ord("a"), ord("!")]  # shift inverts caps for letters
    d.feed_bytes(b"\x3a\xba")
    assert d.feed(0x1E) == ord("a")


def test_num_lock_keypad() -> None:
    d = KeyboardDecoder()
    assert d.num_lock  # initially on, as the seed's driver sets it
    kp = bytes([0x52, 0x4F, 0x50, 0x51, 0x4B, 0x4C, 0x4D, 0x47, 0x48, 0x49, 0x53])
    assert d.feed_bytes(kp) == [ord(c) for c in "0123456789."]
    assert d.feed_bytes(b"\x37\x4a\x4e") == [ord("*"), ord("-"), ord("+")]
    d.feed_bytes(b"\x45\xc5")  # Num Lock off
    assert d.feed_bytes(kp) == [
        KEY_INSERT,
        KEY_END,
        KEY_DOWN,
        KEY_PGDN,
        KEY_LEFT,
        ord("5"),  # keypad 5 has no navigation meaning: "5", as pc-keyboard's Numpad5
        KEY_RIGHT,
        KEY_HOME,
        KEY_UP,
        KEY_PGUP,
        127,
    ]  # fmt: skip
    assert d.feed_bytes(b"\x37\x4a\x4e") == [ord("*"), ord("-"), ord("+")]


@pytest.mark.parametrize("letter", string.ascii_lowercase)
def test_ctrl_letters(letter: str) -> None:
    data = ps2_bytes((letter, {"ctrl": True}))
    assert decode(data) == [ord(letter) - ord("a") + 1]


def test_ctrl_specific_codes_and_right_ctrl() -> None:
    assert decode(ps2_bytes(("q", {"ctrl": True}), ("o", {"ctrl": True}))) == [17, 15]
    assert decode(b"\xe0\x1d\x1e\xe0\x9d\x1e") == [1, ord("a")]
    # Ctrl with a non-letter types the key as usual (pc-keyboard MapLettersToUnicode)
    assert decode(ps2_bytes(("1", {"ctrl": True}))) == [ord("1")]
    # Ctrl+Shift+letter is still the control code
    assert decode(ps2_bytes(("c", {"ctrl": True, "shift": True}))) == [3]


def test_alt_sends_escape_prefixed() -> None:
    codes = decode(ps2_bytes(("x", {"alt": True}), ("X", {"alt": True})))
    assert codes == [meta(ord("x")), meta(ord("X"))]
    assert all(is_special(c) for c in codes)
    assert code_to_bytes(codes[0]) == b"\x1bx"
    assert code_to_bytes(codes[1]) == b"\x1bX"
    # right Alt is also Alt on the US layout; special keys ignore Alt
    assert decode(b"\xe0\x38\x1e\xe0\x48\xe0\xb8\x1e") == [meta(ord("a")), KEY_UP, ord("a")]
    assert code_to_bytes(decode(ps2_bytes(("Enter", {"alt": True})))[0]) == b"\x1b\n"


def test_unknown_and_protocol_bytes_ignored() -> None:
    d = KeyboardDecoder()
    for b in (0xFA, 0xFE, 0xEE, 0x00, 0xFF, 0x54, 0x7F):
        assert d.feed(b) is None
    assert d.feed_bytes(b"\xe0\x5b\xe0\xdb\xe0\x5d") == []  # Windows, menu keys
    assert d.feed_bytes(b"\xe0\x2a\xe0\x37\xe0\xb7\xe0\xaa") == []  # Print Screen with fake shifts
    assert not d.shift
    assert d.feed_bytes(b"\xe1\x1d\x45\xe1\x9d\xc5") == []  # Pause
    assert not d.ctrl
    assert d.feed(0x1E) == ord("a")


# -- where pc-keyboard 0.6.0 (the seed's crate) decides ----------------------------------------------------


def test_iso_102nd_key_is_no_character_on_the_us_layout() -> None:
    # Scan code 0x56 is KeyCode::Oem102 in the crate's set 1, and its Us104Key has no character
    # for it (a raw key, which the seed's driver does not send).
    d = KeyboardDecoder("us")
    assert d.feed_bytes(b"\x56\xd6\x2a\x56\xd6\xaa") == []
    assert d.feed_bytes(b"\x38\x56\xd6\xb8\x1d\x56\xd6\x9d") == []  # with Alt or Ctrl neither
    assert d.feed_bytes(b"\x2b\x2a\x2b\xaa\x1e") == [ord("\\"), ord("|"), ord("a")]  # the 104-key one
    assert decode(b"\x56\x2a\x56\xaa", "uk") == [ord("\\"), ord("|")]  # UK boards have it labelled


def test_keypad_5_is_5_with_num_lock_off() -> None:
    d = KeyboardDecoder()
    d.feed_bytes(b"\x45\xc5")  # Num Lock off
    assert not d.num_lock
    assert d.feed_bytes(b"\x4c\xcc\x4b\xcb") == [ord("5"), KEY_LEFT]
    assert d.feed_bytes(b"\x2a\x4c\xcc\xaa") == [ord("5")]  # Shift changes nothing on it
    assert d.feed_bytes(b"\x38\x4c\xcc\xb8") == [meta(ord("5"))]  # Alt+5 as any character
    d.feed_bytes(b"\x45\xc5")
    assert d.feed(0x4C) == ord("5")


def test_repeated_e0_prefix_is_a_prefix_again() -> None:
    d = KeyboardDecoder()
    assert d.feed(0xE0) is None
    assert d.feed(0xE0) is None
    assert d.feed(0x48) == KEY_UP  # extended: Up, not keypad 8, and not swallowed
    assert d.feed(0x48) == ord("8")  # the prefix is spent: keypad 8 (Num Lock on)
    assert d.feed_bytes(b"\xe0\xe0\xe0\x4b\xe0\xe0\xcb\x1e") == [KEY_LEFT, ord("a")]
    assert d.feed_bytes(b"\xe0\xe0\x1d\x1f\xe0\xe0\x9d\x1f") == [19, ord("s")]  # right Ctrl held, released
    assert not d.ctrl


def test_unknown_layout() -> None:
    with pytest.raises(ValueError, match="layout"):
        KeyboardDecoder("de")


# -- UK layout ----------------------------------------------------------------------------------------------


def test_uk_layout_differences() -> None:
    uk = KeyboardDecoder("uk")
    assert uk.feed_bytes(b"\x2a\x04\x03\x28\xaa") == [ord("£"), ord('"'), ord("@")]
    assert uk.feed_bytes(b"\x2b\x2a\x2b\xaa") == [ord("#"), ord("~")]
    assert uk.feed_bytes(b"\x56\x2a\x56\xaa") == [ord("\\"), ord("|")]
    assert uk.feed_bytes(b"\x29\x2a\x29\xaa") == [ord("`"), ord("¬")]
    assert uk.feed_bytes(b"\x28\x03\x04") == [ord("'"), ord("2"), ord("3")]
    # AltGr (right Alt)
    assert uk.feed_bytes(b"\xe0\x38\x05\x29\x1e\xe0\xb8") == [ord("€"), ord("|"), ord("a")]
    assert uk.feed_bytes(b"\x38\x1e\xb8") == [meta(ord("a"))]  # left Alt is still Alt
    us = KeyboardDecoder("us")
    assert us.feed_bytes(b"\x2a\x04\x03\x28\xaa") == [ord("#"), ord("@"), ord('"')]
    assert us.feed_bytes(b"\x2b\x2a\x2b\xaa") == [ord("\\"), ord("|")]


def test_uk_letters_digits_same_as_us() -> None:
    data = ps2_bytes(*"hello world 1234567890")
    assert decode(data, "uk") == [ord(c) for c in "hello world 1234567890"]


# -- round trip with the emulated keyboard --------------------------------------------------------------------


@pytest.mark.parametrize("ch", [chr(c) for c in range(0x20, 0x7F)])
def test_round_trip_printable_ascii(ch: str) -> None:
    assert decode(ps2_bytes(ch)) == [ord(ch)]


def test_round_trip_named_keys() -> None:
    names = ["Enter", "Backspace", "Tab", "Escape", "Up", "Down", "Left", "Right", "Home", "End",
             "PageUp", "PageDown", "Insert", "Delete", "KPEnter", "KP/", "KP*", "KP-", "KP+", "KP7", "KP.",
             *(f"F{i}" for i in range(1, 13))]  # fmt: skip
    expected = [10, 8, 9, 27, KEY_UP, KEY_DOWN, KEY_LEFT, KEY_RIGHT, KEY_HOME, KEY_END, KEY_PGUP, KEY_PGDN,
                KEY_INSERT, 127, 10, ord("/"), ord("*"), ord("-"), ord("+"), ord("7"), ord("."), *F_KEYS]  # fmt: skip
    assert decode(ps2_bytes(*names)) == expected


def test_shift_pgup_and_pgdn_have_their_own_codes() -> None:
    """The scrollback keys: xterm's ESC [ 5 ; 2 ~ and ESC [ 6 ; 2 ~ (Shift = modifier 2)."""
    assert code_to_bytes(KEY_SHIFT_PGUP) == b"\x1b[5;2~" and code_to_bytes(KEY_SHIFT_PGDN) == b"\x1b[6;2~"
    assert bytes_to_code(b"\x1b[5;2~") == KEY_SHIFT_PGUP and bytes_to_code(b"\x1b[6;2~") == KEY_SHIFT_PGDN
    assert is_special(KEY_SHIFT_PGUP) and len({KEY_PGUP, KEY_PGDN, KEY_SHIFT_PGUP, KEY_SHIFT_PGDN}) == 4
    shifted = {"shift": True}
    got = decode(ps2_bytes(("PageUp", shifted), ("PageDown", shifted), "PageUp", "PageDown"))
    assert got == [KEY_SHIFT_PGUP, KEY_SHIFT_PGDN, KEY_PGUP, KEY_PGDN]
    assert decode(b"\x36" + ps2_bytes("PageUp") + b"\xb6") == [KEY_SHIFT_PGUP]  # right Shift too
    # Alt does not change them; other special keys still ignore Shift.
    alt_shift = {"shift": True, "alt": True}
    assert decode(ps2_bytes(("PageUp", alt_shift), ("Up", shifted))) == [KEY_SHIFT_PGUP, KEY_UP]
    d = KeyboardDecoder()
    d.feed_bytes(b"\x45\xc5")  # Num Lock off: keypad 9 and 3 are PgUp and PgDn
    assert d.feed_bytes(b"\x2a\x49\xc9\x51\xd1\xaa\x49\xc9") == [KEY_SHIFT_PGUP, KEY_SHIFT_PGDN, KEY_PGUP]
    d.feed_bytes(b"\x45\xc5")  # Num Lock on: Shift+keypad 9 types 9, as before
    assert d.feed_bytes(b"\x2a\x49\xc9\xaa") == [ord("9")]


# -- code <-> bytes ------------------------------------------------------------------------------------------


def test_code_to_bytes() -> None:
    assert code_to_bytes(ord("a")) == b"a"
    assert code_to_bytes(ord("£")) == "£".encode()
    assert code_to_bytes(10) == b"\n"
    assert code_to_bytes(KEY_UP) == b"\x1b[A"
    assert code_to_bytes(KEY_F1) == b"\x1b[11~"
    assert code_to_bytes(KEY_PGDN) == b"\x1b[6~"
    assert code_to_bytes(KEY_INSERT) == b"\x1b[2~"
    for bad in (-1, 0xD800, 1 << 64, 0x123456789):
        with pytest.raises(ValueError):
            code_to_bytes(bad)


def test_bytes_to_code() -> None:
    assert bytes_to_code(b"a") == ord("a")
    assert bytes_to_code("€".encode()) == ord("€")
    assert bytes_to_code(b"\x1b") == 27
    assert bytes_to_code(b"\x7f") == 127
    assert bytes_to_code(b"\x1b[A") == KEY_UP
    assert bytes_to_code(b"\x1b\x9bA") == KEY_UP  # already in packed form
    assert bytes_to_code(b"\x1bOP") == KEY_F1
    assert bytes_to_code(b"\x1bOA") == KEY_UP
    assert bytes_to_code(b"\x1b[24~") == KEY_F12
    assert bytes_to_code(b"\x1bq") == meta(ord("q"))
    assert bytes_to_code(b"\x1b[") == meta(ord("["))
    for bad in (b"", b"ab", b"\xff", b"\x1b[12", b"\x1b[1;2;3;4;5A", b"\x1bab"):
        with pytest.raises(ValueError):
            bytes_to_code(bad)


def test_every_decoded_code_round_trips_through_bytes() -> None:
    codes: set[int] = set()
    for layout in ("us", "uk"):
        for mods in ({}, {"shift": True}, {"ctrl": True}, {"alt": True}, {"alt": True, "shift": True}):
            for name in [chr(c) for c in range(0x20, 0x7F)] + [
                "Enter",
                "Up",
                "F6",
                "KP.",
                "Delete",
                "Insert",
            ]:
                codes.update(decode(ps2_bytes((name, mods)), layout))
    codes.update(decode(b"\xe0\x38\x05\xe0\xb8", "uk"))  # €
    codes.update(decode(b"\x38\x2a\x04\xaa\xb8", "uk"))  # Alt+£
    assert len(codes) > 200
    for code in codes:
        assert bytes_to_code(code_to_bytes(code)) == code, hex(code)
