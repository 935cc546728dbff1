"""Text console model (spec §11.5 with its quirks fixed, §16.5 rows 61-67)."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.vt import BLANK_ATTR, DEFAULT_ATTR, TextConsole


def row_text(con: TextConsole, row: int) -> str:
    return con.text().split("\n")[row]


def attr(con: TextConsole, row: int, col: int) -> int:
    return con.cell(row, col)[1]


def at(con: TextConsole, row: int, col: int, text: bytes) -> None:
    """Put the cursor at (row, col) (0-based) and write ``text``."""
    con.write(b"\x1b[%d;%dH" % (row + 1, col + 1) + text)


# -- initial state ---------------------------------------------------------------------------------


def test_initial_state() -> None:
    con = TextConsole()
    assert len(con.cells) == 4000
    assert con.cells == bytes((0x20, 0xFF)) * 2000
    assert (con.cursor_row, con.cursor_col) == (1, 0)
    assert con.cursor_visible
    assert con.attr == DEFAULT_ATTR == 0xF0
    assert con.dirty
    lines = con.text().split("\n")
    assert len(lines) == 25 and all(line == " " * 80 for line in lines)


# -- spec §16.5 ----------------------------------------------------------------------------------------------


def test_row_61_hi() -> None:
    con = TextConsole()
    con.write(b"hi")
    assert con.cell(1, 0) == ("h", 0xF0)
    assert con.cell(1, 1) == ("i", 0xF0)
    assert (con.cursor_row, con.cursor_col) == (1, 2)


def test_row_62_red() -> None:
    con = TextConsole()
    con.write(b"\x1b[31mX")
    assert con.cell(1, 0) == ("X", 0xF4)


def test_row_63_clear_screen() -> None:
    con = TextConsole()
    con.write(b"some text\nmore\x1b[34m text")
    before = (con.cursor_row, con.cursor_col)
    con.write(b"\x1b[2J")
    assert con.cells == bytes((0x20, BLANK_ATTR)) * 2000
    assert (con.cursor_row, con.cursor_col) == before


def test_row_64_tabs() -> None:
    con = TextConsole()
    con.write(b"\tX")
    assert con.cell(1, 8) == ("X", 0xF0)
    at(con, 5, 79, b"\t")
    assert (con.cursor_row, con.cursor_col) == (6, 0)


def test_row_65_wrap() -> None:
    con = TextConsole()
    con.write(b"a" * 80 + b"b")
    assert row_text(con, 1) == "a" * 80
    assert con.cell(2, 0) == ("b", 0xF0)
    assert (con.cursor_row, con.cursor_col) == (2, 1)


def test_row_66_escape_other_byte_and_cursor_up() -> None:
    con = TextConsole()
    con.write(b"\x1bXY")
    assert row_text(con, 1).rstrip() == "Y"
    # "\x1b[5A" prints nothing; with numeric parameters (quirk fixed) it moves up 5, clamped
    at(con, 10, 3, b"")
    snapshot = bytes(con.cells)
    con.write(b"\x1b[5A")
    assert con.cells == snapshot
    assert (con.cursor_row, con.cursor_col) == (5, 3)
    con.write(b"\x1b[5A")
    assert (con.cursor_row, con.cursor_col) == (0, 3)


def test_row_67_scroll() -> None:
    con = TextConsole()
    at(con, 0, 0, b"top")
    at(con, 24, 0, b"bottom")
    con.write(b"\n")
    assert (con.cursor_row, con.cursor_col) == (24, 0)
    assert row_text(con, 23).rstrip() == "bottom"
    assert con.cells[24 * 160 :] == bytes((0x20, 0xFF)) * 80
    assert "top" not in con.text()


# -- text, controls, wrapping, scrolling --------------------------------------------------------------------


def test_lf_implies_cr_and_cr_backspace() -> None:
    con = TextConsole()
    con.write(b"abc\ndef")
    assert row_text(con, 1).rstrip() == "abc"
    assert row_text(con, 2).rstrip() == "def"
    con.write(b"\rX")
    assert row_text(con, 2).rstrip() == "Xef"
    con.write(b"\b\bY")  # back to col 0 (clamped), no erase
    assert row_text(con, 2).rstrip() == "Yef"
    assert (con.cursor_row, con.cursor_col) == (2, 1)


def test_tab_stops_and_wrapping_from_the_last_stop() -> None:
    con = TextConsole()
    con.write(b"ab\tc\t\td")
    assert con.cell(1, 8)[0] == "c"
    assert con.cell(1, 24)[0] == "d"
    at(con, 3, 72, b"\t")  # 72 -> 80: new line
    assert (con.cursor_row, con.cursor_col) == (4, 0)
    at(con, 24, 75, b"\t")  # on the last row: scrolls
    assert (con.cursor_row, con.cursor_col) == (24, 0)


def test_wrap_on_last_row_scrolls() -> None:
    con = TextConsole()
    at(con, 0, 0, b"first")
    at(con, 24, 78, b"xyz")
    assert (con.cursor_row, con.cursor_col) == (24, 1)
    assert row_text(con, 23).endswith("xy")
    assert row_text(con, 24).startswith("z ")
    assert "first" not in con.text()


# -- deferred wrap (the VT100's last column flag) ----------------------------------------------------------


def test_writing_column_80_leaves_the_cursor_there_with_the_flag() -> None:
    con = TextConsole()
    con.write(b"a" * 80)
    assert (con.cursor_row, con.cursor_col) == (1, 79)
    assert con.wrap_pending
    assert row_text(con, 1) == "a" * 80
    assert row_text(con, 2) == " " * 80  # nothing has moved to the next row yet


def test_exactly_80_characters_and_newline_is_one_row() -> None:
    con = TextConsole()
    con.write(b"a" * 80 + b"\n" + b"b" * 80 + b"\nc")
    assert row_text(con, 1) == "a" * 80
    assert row_text(con, 2) == "b" * 80  # no blank row between them
    assert row_text(con, 3).rstrip() == "c"
    assert (con.cursor_row, con.cursor_col) == (3, 1) and not con.wrap_pending


def test_the_next_printable_character_wraps() -> None:
    con = TextConsole()
    con.write(b"a" * 80)
    con.write(b"b")  # a separate write: the flag is kept between writes
    assert row_text(con, 1) == "a" * 80
    assert con.cell(2, 0) == ("b", 0xF0)
    assert (con.cursor_row, con.cursor_col) == (2, 1) and not con.wrap_pending
    con.write(b"\x1b[31m")  # SGR keeps the flag: only text, controls and moves matter
    con.write(b"c" * 79)
    assert con.wrap_pending
    con.write(b"\x1b[32md")
    assert con.cell(3, 0) == ("d", 0xF2)


def test_cr_lf_after_80_characters_leaves_no_blank_row() -> None:
    con = TextConsole()
    con.write(b"a" * 80 + b"\r\n" + b"b")
    assert row_text(con, 2).rstrip() == "b"
    assert (con.cursor_row, con.cursor_col) == (2, 1)
    con = TextConsole()
    con.write(b"a" * 80 + b"\rX")  # CR alone: back to column 1 of the same row
    assert row_text(con, 1) == "X" + "a" * 79
    assert (con.cursor_row, con.cursor_col) == (1, 1)


def test_last_row_scrolls_once_only_when_the_next_character_comes() -> None:
    con = TextConsole()
    at(con, 0, 0, b"first")
    at(con, 1, 0, b"second")
    at(con, 24, 0, b"z" * 80)
    assert "first" in con.text()  # a full last row does not scroll by itself
    assert (con.cursor_row, con.cursor_col) == (24, 79) and con.wrap_pending
    con.write(b"!")
    assert "first" not in con.text()
    assert row_text(con, 0).rstrip() == "second"  # scrolled exactly one row
    assert row_text(con, 23) == "z" * 80
    assert row_text(con, 24).rstrip() == "!"
    assert (con.cursor_row, con.cursor_col) == (24, 1)
    at(con, 24, 0, b"y" * 80 + b"\n")  # the same with a newline: one scroll, too
    assert row_text(con, 23) == "y" * 80
    assert row_text(con, 22) == "z" * 80


def test_backspace_after_a_full_line_goes_to_column_79() -> None:
    con = TextConsole()
    con.write(b"a" * 80 + b"\b")
    assert (con.cursor_row, con.cursor_col) == (1, 78) and not con.wrap_pending
    con.write(b"XY")  # overwrites columns 79 and 80, then waits again
    assert row_text(con, 1) == "a" * 78 + "XY"
    assert (con.cursor_row, con.cursor_col) == (1, 79) and con.wrap_pending
    assert row_text(con, 2) == " " * 80


def test_moves_and_erases_clear_the_flag() -> None:
    for seq, where in (
        (b"\x1b[C", (5, 79)), (b"\x1b[0C", (5, 79)), (b"\x1b[D", (5, 78)), (b"\x1b[A", (4, 79)),
        (b"\x1b[B", (6, 79)), (b"\x1b[80G", (5, 79)), (b"\x1b[6;80H", (5, 79)), (b"\x1b[K", (5, 79)),
        (b"\x1b[J", (5, 79)), (b"\x1b[2K", (5, 79)), (b"\x1b7\x1b8", (5, 79)), (b"\t", (6, 0)),
    ):
        con = TextConsole()
        at(con, 5, 0, b"a" * 80)
        assert con.wrap_pending
        con.write(seq)
        assert not con.wrap_pending, seq
        assert (con.cursor_row, con.cursor_col) == where, seq
        con.write(b"X")
        assert con.cell(*where) == ("X", 0xF0), seq  # written in place: no wrap any more


def test_long_text_scrolls_many_lines() -> None:
    con = TextConsole()
    con.write(b"".join(b"line %d\n" % i for i in range(100)))
    lines = con.text().split("\n")
    assert lines[23].rstrip() == "line 99"
    assert lines[0].rstrip() == "line 76"
    assert lines[24].strip() == ""
    assert (con.cursor_row, con.cursor_col) == (24, 0)


def test_utf8_to_cp437_and_replacement() -> None:
    con = TextConsole()
    con.write("café £5 ─█ €".encode() + b" \xff\xc3(")
    assert row_text(con, 1).rstrip() == "café £5 ─█ ? ??("
    assert con.cells[2 * (80 + 3)] == 0x82  # é in code page 437


def test_utf8_split_across_writes() -> None:
    con = TextConsole()
    data = "é─".encode()
    for i in range(len(data)):
        con.write(data[i : i + 1])
    assert row_text(con, 1).startswith("é─ ")
    assert (con.cursor_row, con.cursor_col) == (1, 2)


def test_other_controls_ignored() -> None:
    con = TextConsole()
    con.write(b"a\x00\x07\x0b\x0c\x7fb")
    assert row_text(con, 1).rstrip() == "ab"


# -- colours ----------------------------------------------------------------------------------------------------


def test_sgr_colours_and_reset() -> None:
    con = TextConsole()
    con.write(b"\x1b[32;44mA\x1b[0mB\x1b[33mC\x1b[93mD\x1b[37mE\x1b[97mF\x1b[101mG\x1b[39;49mH\x1b[mI")
    assert [attr(con, 1, c) for c in range(9)] == [0x12, 0xF0, 0xF6, 0xFE, 0xF7, 0xFF, 0xCF, 0xF0, 0xF0]


def test_ansi_to_vga_mapping() -> None:
    con = TextConsole()
    for n in range(8):
        con.write(b"\x1b[%d;%dmx" % (30 + n, 40 + n))
    vga = [0, 4, 2, 6, 1, 5, 3, 7]
    assert [attr(con, 1, c) for c in range(8)] == [v << 4 | v for v in vga]


def test_bold_brightens_foreground() -> None:
    con = TextConsole()
    con.write(b"\x1b[1;31mA\x1b[22mB\x1b[1mC\x1b[0mD\x1b[1mE")
    assert [attr(con, 1, c) for c in range(5)] == [0xFC, 0xF4, 0xFC, 0xF0, 0xF8]


def test_reverse_video() -> None:
    con = TextConsole()
    con.write(b"\x1b[7mA\x1b[31mB\x1b[27mC")
    assert [attr(con, 1, c) for c in range(3)] == [0x0F, 0x4F, 0xF4]


def test_extended_colours() -> None:
    con = TextConsole()
    con.write(b"\x1b[38;5;9mA\x1b[48;5;4mB\x1b[38;2;255;255;85mC\x1b[38;5;232mD")
    assert attr(con, 1, 0) == 0xFC  # 256-colour 9 = bright red
    assert attr(con, 1, 1) == 0x1C  # background 4 = blue
    assert attr(con, 1, 2) == 0x1E  # RGB nearest: yellow
    assert attr(con, 1, 3) == 0x10  # near-black grey


def test_malformed_sgr_is_harmless() -> None:
    con = TextConsole()
    con.write(b"\x1b[38mA\x1b[38;5mB\x1b[31:1mC\x1b[999mD")
    assert row_text(con, 1).rstrip() == "ABCD"


# -- cursor movement, erase --------------------------------------------------------------------------------------


def test_cursor_position_h_f_g_d() -> None:
    con = TextConsole()
    con.write(b"\x1b[10;20H")
    assert (con.cursor_row, con.cursor_col) == (9, 19)
    con.write(b"\x1b[H")
    assert (con.cursor_row, con.cursor_col) == (0, 0)
    con.write(b"\x1b[3;4f")
    assert (con.cursor_row, con.cursor_col) == (2, 3)
    con.write(b"\x1b[99;999H")
    assert (con.cursor_row, con.cursor_col) == (24, 79)
    con.write(b"\x1b[5G")
    assert (con.cursor_row, con.cursor_col) == (24, 4)
    con.write(b"\x1b[G")
    assert (con.cursor_row, con.cursor_col) == (24, 0)
    con.write(b"\x1b[7d")
    assert (con.cursor_row, con.cursor_col) == (6, 0)
    con.write(b"\x1b[;5H")
    assert (con.cursor_row, con.cursor_col) == (0, 4)


def test_relative_moves_clamped() -> None:
    con = TextConsole()
    at(con, 10, 10, b"")
    con.write(b"\x1b[B\x1b[3C")
    assert (con.cursor_row, con.cursor_col) == (11, 13)
    con.write(b"\x1b[2D\x1b[A\x1b[0A")  # 0 counts as 1
    assert (con.cursor_row, con.cursor_col) == (9, 11)
    con.write(b"\x1b[100B\x1b[100C")
    assert (con.cursor_row, con.cursor_col) == (24, 79)
    con.write(b"\x1b[100D\x1b[100A")
    assert (con.cursor_row, con.cursor_col) == (0, 0)
    con.write(b"\x1b[3E")
    assert (con.cursor_row, con.cursor_col) == (3, 0)


def test_save_restore() -> None:
    con = TextConsole()
    at(con, 4, 7, b"\x1b[s")
    con.write(b"\x1b[20;1Hxx\x1b[u")
    assert (con.cursor_row, con.cursor_col) == (4, 7)
    con.write(b"\x1b7\x1b[H\x1b8")
    assert (con.cursor_row, con.cursor_col) == (4, 7)


def filled(con: TextConsole) -> None:
    for r in range(25):
        at(con, r, 0, b"x" * 79 + b"\x1b[80GX")
    con.write(b"\x1b[31m")


def test_erase_display_modes() -> None:
    con = TextConsole()
    filled(con)
    at(con, 10, 5, b"\x1b[J")
    assert con.cell(10, 4) == ("x", 0xF0)
    assert con.cell(10, 5) == (" ", 0xFF)
    assert con.cells[2 * (10 * 80 + 5) :] == bytes((0x20, 0xFF)) * (2000 - 805)
    con = TextConsole()
    filled(con)
    at(con, 10, 5, b"\x1b[1J")
    assert con.cells[: 2 * 805] == bytes((0x20, 0xFF)) * 805
    assert con.cell(10, 5)[0] == "x"  # the cursor cell is kept (seed)
    assert (con.cursor_row, con.cursor_col) == (10, 5)
    con.write(b"\x1b[0J")
    assert con.cells == bytes((0x20, 0xFF)) * 2000


def test_erase_line_modes() -> None:
    con = TextConsole()
    filled(con)
    at(con, 3, 10, b"\x1b[K")
    assert row_text(con, 3) == "x" * 10 + " " * 70
    assert attr(con, 3, 10) == 0xF4  # K fills with the current colour (seed)
    at(con, 4, 10, b"\x1b[1K")
    assert row_text(con, 4) == " " * 10 + "x" * 69 + "X"
    assert attr(con, 4, 0) == 0xFF
    at(con, 5, 10, b"\x1b[2K")
    assert row_text(con, 5) == " " * 80
    assert attr(con, 5, 79) == 0xFF
    assert row_text(con, 6) == "x" * 79 + "X"
    assert (con.cursor_row, con.cursor_col) == (5, 10)


def test_cursor_visibility_as_xterm() -> None:
    con = TextConsole()
    con.write(b"\x1b[?25l")
    assert not con.cursor_visible
    con.write(b"\x1b[?25h")
    assert con.cursor_visible
    con.write(b"\x1b[25l")  # the seed's non-private form is not a cursor command
    assert con.cursor_visible
    con.write(b"\x1b[?1049;25l")
    assert not con.cursor_visible


def test_csi_split_across_writes() -> None:
    con = TextConsole()
    seq = b"\x1b[1;31mA\x1b[10;20HB\x1b[?25l"
    for i in range(len(seq)):
        con.write(seq[i : i + 1])
    assert con.cell(1, 0) == ("A", 0xFC)
    assert con.cell(9, 19) == ("B", 0xFC)
    assert not con.cursor_visible
    con2 = TextConsole()
    con2.write(b"\x1b")
    con2.write(b"[3")
    con2.write(b"2mG")
    assert con2.cell(1, 0) == ("G", 0xF2)


def test_unknown_sequences_ignored_safely() -> None:
    con = TextConsole()
    con.write(b"a\x1b[5@\x1b[2Lb\x1b(Bc\x1b]0;title\x07d\x1b]2;t\x1b\\e\x1b[ qf\x1b[\x18g")
    assert row_text(con, 1).rstrip() == "abcdefg"


def test_controls_inside_csi_and_escape_restart() -> None:
    con = TextConsole()
    con.write(b"\x1b[3\n1mX")  # newline executes inside the sequence
    assert con.cell(2, 0) == ("X", 0xF4)
    con.write(b"\x1b\x1b[32mY")  # ESC ESC [: the second ESC starts the sequence
    assert con.cell(2, 1) == ("Y", 0xF2)


def test_reset() -> None:
    con = TextConsole()
    con.write(b"\x1b[31mhello\x1b[?25l\x1bc")
    assert con.cells == bytes((0x20, 0xFF)) * 2000
    assert (con.cursor_row, con.cursor_col) == (1, 0)
    assert con.cursor_visible and con.attr == 0xF0


def test_dirty_flag() -> None:
    con = TextConsole()
    con.dirty = False
    con.write(b"\x1b[3")  # incomplete sequence: nothing changed yet
    assert not con.dirty
    con.write(b"1m")  # colour change alone changes no cell
    assert not con.dirty
    con.write(b"x")
    assert con.dirty
    con.dirty = False
    con.write(b"\x1b[H")
    assert con.dirty
    con.dirty = False
    con.write(b"\x1b[?25l")
    assert con.dirty


def test_bulk_text_is_fast() -> None:
    con = TextConsole()
    data = (b"The quick brown fox jumps over the lazy dog. " * 4 + b"\n") * 2000  # ~360 KB
    start = time.perf_counter()
    con.write(data)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"{len(data)} bytes took {elapsed:.2f}s"
    assert row_text(con, 21).startswith("The quick brown fox")  # 180-char lines take 3 rows
    assert row_text(con, 23).rstrip().endswith("lazy dog.")


# -- property ---------------------------------------------------------------------------------------------------

_interesting = st.sampled_from(
    [b"\x1b", b"[", b";", b"?", b"25", b"h", b"l", b"m", b"H", b"J", b"K", b"A", b"\n", b"\t", b"\b", b"\r",
     b"999", b"0", b"38;5;", b"]", b"\x07", b"\xc3", b"\xa9", b"\xe2\x94", b"x", b"s", b"u", b"c"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64) | _interesting.map(bytes), max_size=40))
def test_random_input_never_raises_and_cursor_stays_on_screen(chunks: list[bytes]) -> None:
    con = TextConsole()
    for chunk in chunks:
        con.write(chunk)
        assert 0 <= con.cursor_row < 25
        assert 0 <= con.cursor_col < 80
        assert not con.wrap_pending or con.cursor_col == 79  # the flag only ever waits in column 80
        assert len(con.cells) == 4000
    assert len(con.text()) == 25 * 81 - 1
