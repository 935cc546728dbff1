"""The keyboard driver: PS/2 bytes from the emulated controller -> key codes (spec §11.4, rows
59-60), on its own and end to end through init to the echo program on F2."""

from __future__ import annotations

import re
from typing import Any

import trio

from euralios.boot import boot, program_source
from euralios.std import abi
from euralios.std.keys import KEY_DOWN, KEY_F1, KEY_F12, KEY_HOME, KEY_PGUP, KEY_UP, meta
from euralios.system_boot import boot_full
from machine.ui.headless import parse_keys, press


async def collect_codes(keys: str | bytes, count: int, env: dict[str, str] | None = None) -> list[int]:
    """Run the keyboard driver with a collector as its stdout; type `keys` (a key script, or raw
    scan code bytes for the controller to deliver); the first `count` codes it sends."""
    codes: list[int] = []
    done = trio.Event()

    async def collector(proc: Any) -> int:
        while len(codes) < count:
            msg = await proc.sys.receive(0)
            assert msg.tag == abi.CHAR and msg.d3 == 0 and not msg.reply
            codes.append(msg.d2)
        done.set()
        return 0

    async with boot() as system:
        k = system.kernel
        r = k.new_rendezvous(refs=1)
        r.incref()
        k.spawn(program_source("drivers/keyboard.py"), name="keyboard", stdout=r, io=True, env=env or {})
        system.spawn(collector, stdin=r)
        if isinstance(keys, bytes):
            system.machine.keyboard.send_bytes(keys)
        else:
            press(system.machine.keyboard, parse_keys(keys))
        with trio.fail_after(5):
            await done.wait()
    return codes


async def test_control_keys_and_specials_as_the_seed_sends_them() -> None:
    codes = await collect_codes("{Ctrl+S}{Enter}{Backspace}{F1}{Up}A{Tab}{Esc}{Del}", 9)
    assert codes == [19, 10, 8, KEY_F1, KEY_UP, 65, 9, 27, 127]


async def test_navigation_function_and_alt_keys() -> None:
    codes = await collect_codes("{Home}{PgUp}{Down}{F12}{Alt+x}{Ctrl+Alt+c}", 6)
    assert codes == [KEY_HOME, KEY_PGUP, KEY_DOWN, KEY_F12, meta(ord("x")), meta(3)]


async def test_uk_layout_from_keymap() -> None:
    # On a UK keyboard Shift+3 is the pound sign and Shift+' is @ (the same physical keys).
    codes = await collect_codes("{Shift+3}{Shift+'}", 2, env={"KEYMAP": "uk"})
    assert codes == [ord("£"), ord("@")]


# Num Lock off, keypad 5, the ISO 102nd key, E0 E0 Up (make and break), then a.
_CRATE_CASES = b"\x45\xc5\x4c\xcc\x56\xd6\xe0\xe0\x48\xe0\xe0\xc8\x1e\x9e"


async def test_keypad_5_iso_key_and_repeated_e0_through_the_driver() -> None:
    codes = await collect_codes(_CRATE_CASES, 3)
    assert codes == [ord("5"), KEY_UP, ord("a")]  # US: 0x56 gives nothing; E0 E0 loses no key
    codes = await collect_codes(_CRATE_CASES, 4, env={"KEYMAP": "uk"})
    assert codes == [ord("5"), ord("\\"), KEY_UP, ord("a")]


async def test_unknown_keymap_falls_back_to_us() -> None:
    codes = await collect_codes("{Shift+3}", 1, env={"KEYMAP": "dvorak"})
    assert codes == [ord("#")]


async def test_a_burst_of_keys_arrives_complete_and_in_order() -> None:
    text = "the quick brown fox jumps over the lazy dog " * 5
    codes = await collect_codes(text, len(text))
    assert "".join(map(chr, codes)) == text


async def test_typed_text_reaches_the_echo_program_exactly() -> None:
    """Shifted characters, digits, punctuation and Backspace, through the PS/2 controller,
    the keyboard driver, init and the echo program's read_line, back onto the screen."""
    typed = 'Hello, World! ~`!@#$%^&*()_+-=[]{}|\\;:\'",.<>/? 0123456789'
    async with boot_full(console_program="/bin/echo") as system:
        await system.wait_for_screen(r"^> ", 10)
        await system.type(typed.replace("{", "{{") + "XY{Backspace}{Backspace}\n")
        await system.wait_for_screen(r"^> .*\n(.*)\n> ", 5)
        lines = system.screen_lines()
        echoed = lines.index("> " + typed)
        assert lines[echoed + 1] == typed
        assert lines[echoed + 2] == ">"


async def test_special_keys_do_not_reach_read_line_as_text() -> None:
    async with boot_full(console_program="/bin/echo") as system:
        await system.wait_for_screen(r"^> ", 10)
        await system.type("a{Up}{F7}{Ctrl+B}b\n")
        await system.wait_for_screen(r"^ab *\n> ", 5)
        assert re.search(r"^> ab *$", system.screen_text(), re.MULTILINE)
