"""drivers.vt scrollback: rows scrolled off the top are kept, bounded, and viewed back."""

from __future__ import annotations

import pytest

from drivers.vt import BLANK_ATTR, COLS, MAX_SCROLLBACK, ROWS, SCROLLBACK, TextConsole


def numbered(n: int, start: int = 0) -> bytes:
    return b"".join(b"line %04d\n" % i for i in range(start, start + n))


def rows_of(text: str) -> list[str]:
    return [line.rstrip() for line in text.split("\n")]


def test_rows_scrolled_off_the_top_are_kept_with_their_attributes() -> None:
    con = TextConsole()
    con.write(b"\x1b[31mred\x1b[0m plain\n" + numbered(30))
    # Row 0 starts blank and the text starts on row 1: 1 + 31 rows written, cursor on a 33rd.
    assert len(con.history) == 1 + 31 + 1 - ROWS
    assert bytes(con.history[0][0::2]).decode("cp437").rstrip() == ""
    first = con.history[1]
    assert len(first) == 2 * COLS
    assert first[0:6:2] == b"red" and set(first[1:6:2]) == {0xF4}
    assert first[8:18:2] == b"plain" and set(first[9:18:2]) == {0xF0}
    assert first[-1] == BLANK_ATTR  # the untouched rest of the row, as it was on screen
    assert bytes(con.history[-1][0::2]).decode().rstrip() == "line 0005"


def test_the_history_is_bounded_oldest_first_out() -> None:
    con = TextConsole(scrollback=50)
    con.write(numbered(500))
    assert len(con.history) == 50
    assert bytes(con.history[-1][0::2]).decode().rstrip() == "line 0475"
    assert bytes(con.history[0][0::2]).decode().rstrip() == "line 0426"
    assert TextConsole().history.maxlen == SCROLLBACK == 1000
    assert TextConsole(MAX_SCROLLBACK).history.maxlen == 10000


def test_no_history_and_bad_sizes() -> None:
    con = TextConsole(scrollback=0)
    con.write(numbered(100))
    assert not con.history and con.scroll(10) == 0
    for bad in (-1, MAX_SCROLLBACK + 1):
        with pytest.raises(ValueError, match="scrollback"):
            TextConsole(scrollback=bad)


def test_view_shows_history_then_the_top_of_the_live_screen() -> None:
    con = TextConsole()
    con.write(numbered(100))  # lines 0..99; screen rows 0-23 = lines 76..99, row 24 the cursor
    live = rows_of(con.text())
    assert live[0] == "line 0076" and live[23] == "line 0099" and live[24] == ""
    assert con.view() is con.cells  # not scrolled: the live cells, no copy
    assert con.scroll(12) == 12 and con.scrolled and con.dirty
    back = rows_of(con.view_text())
    assert back[0] == "line 0064" and back[11] == "line 0075"  # 12 rows of history...
    assert back[12] == "line 0076" and back[24] == "line 0088"  # ...then the live screen's top
    assert len(con.view()) == ROWS * COLS * 2
    assert rows_of(con.view_text(40))[0] == "line 0036"  # any offset, without scrolling
    assert rows_of(con.view_text(40))[24] == "line 0060"  # all history
    assert con.offset == 12
    assert con.text() == "\n".join(f"{line:<80}" for line in live)  # the live screen is untouched


def test_scrolling_is_clamped_to_the_history() -> None:
    con = TextConsole()
    con.write(numbered(30))
    top = len(con.history)
    assert con.scroll(1000) == top
    assert rows_of(con.view_text())[0] == ""  # the very first row: blank (text starts on row 1)
    assert rows_of(con.view_text())[1] == "line 0000"
    assert con.scroll(-5) == top - 5
    assert con.scroll(-1000) == 0 and not con.scrolled
    assert con.view_text(-3) == con.text() and con.view_text(10**6) == con.view_text(top)


def test_return_to_bottom() -> None:
    con = TextConsole()
    con.write(numbered(60))
    con.scroll(24)
    con.dirty = False
    con.scroll_to_bottom()
    assert con.offset == 0 and con.dirty and con.view() is con.cells
    con.dirty = False
    con.scroll_to_bottom()
    assert not con.dirty  # nothing moved: nothing to copy


def test_output_does_not_move_a_scrolled_view() -> None:
    con = TextConsole()
    con.write(numbered(100))
    con.scroll(30)
    before = con.view_text()
    con.write(numbered(10, start=100))  # ten more rows scroll off the live screen
    assert con.offset == 40 and con.view_text() == before
    con.scroll(-3)
    con.write(b"no newline, no scroll")
    assert con.offset == 37
    con.scroll_to_bottom()
    assert rows_of(con.view_text())[23] == "line 0109"


def test_a_view_at_the_very_top_of_a_full_history_moves_as_old_rows_drop() -> None:
    con = TextConsole(scrollback=30)
    con.write(numbered(100))
    assert con.scroll(1000) == 30
    first = rows_of(con.view_text())[0]
    con.write(numbered(1, start=100))
    assert con.offset == 30  # cannot go further back: the oldest row is gone
    assert rows_of(con.view_text())[0] != first


def test_the_cursor_is_hidden_while_scrolled_back() -> None:
    con = TextConsole()
    con.write(numbered(40))
    assert con.shown_cursor_visible
    con.scroll(1)
    assert con.cursor_visible and not con.shown_cursor_visible
    con.scroll(-1)
    assert con.shown_cursor_visible
    con.write(b"\x1b[?25l")
    assert not con.shown_cursor_visible


def test_clear_screen_does_not_push_into_the_history_as_on_linux() -> None:
    con = TextConsole()
    con.write(numbered(40))
    kept = list(con.history)
    con.write(b"\x1b[H\x1b[2J")
    assert list(con.history) == kept
    assert rows_of(con.text()) == [""] * ROWS


def test_erase_with_scrollback_empties_the_history_and_the_screen() -> None:
    con = TextConsole()
    con.write(numbered(40))
    con.scroll(5)
    con.write(b"\x1b[3J")
    assert not con.history and con.offset == 0
    assert rows_of(con.text()) == [""] * ROWS


def test_reset_keeps_the_history() -> None:
    con = TextConsole()
    con.write(numbered(40))
    kept = list(con.history)
    con.write(b"\x1bc")
    assert list(con.history) == kept and con.cursor_row == 1
    con.write(numbered(30))
    assert list(con.history)[: len(kept)] == kept


def test_a_long_wrapped_write_keeps_every_row() -> None:
    con = TextConsole()
    con.write(b"x" * (COLS * 60))  # 60 full rows, one write, wrapping
    assert len(con.history) == 1 + 60 - ROWS
    assert all(row[0::2] == b"x" * COLS for row in list(con.history)[1:])
