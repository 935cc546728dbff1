"""net/gopher.py, sans-IO: menus, item types, URLs, requests and byte-exact text bodies."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from net import gopher as G

# ---------------------------------------------------------------------- menus


def test_menu_with_crlf_and_closing_dot() -> None:
    data = (b"iHello\tfake\t(NULL)\t0\r\n"
            b"1Docs\t/docs\tgopher.example\t7070\r\n"
            b"0About\t/about.txt\tgopher.example\t70\r\n"
            b".\r\n"
            b"0After the end\t/x\th\t70\r\n")
    items = G.parse_menu(data)
    assert [(i.type, i.display, i.selector, i.host, i.port) for i in items] == [
        ("i", "Hello", "fake", "(NULL)", 70),  # port 0 is not a port: the default
        ("1", "Docs", "/docs", "gopher.example", 7070),
        ("0", "About", "/about.txt", "gopher.example", 70),
    ]
    assert not items[0].selectable and items[1].selectable and items[2].followable
    assert items[1].raw == "1Docs\t/docs\tgopher.example\t7070"
    assert items[1].location() == G.Location("gopher.example", 7070, "1", "/docs")


def test_menu_with_lf_only_and_no_closing_dot_keeps_the_last_line() -> None:
    items = G.parse_menu(b"0One\t/1\th\t70\n0Two\t/2\th\t70", "h", 70)
    assert [i.display for i in items] == ["One", "Two"]


def test_missing_fields_take_the_current_server() -> None:
    items = G.parse_menu(b"0Only a name\n1Name and selector\t/sel\n9Bad port\t/b\tother\tseventy\r\n",
                         default_host="here", default_port=7070)
    assert [(i.selector, i.host, i.port) for i in items] == [("", "here", 7070), ("/sel", "here", 7070),
                                                             ("/b", "other", 7070)]


def test_unknown_types_gopher_plus_fields_and_blank_lines_are_kept() -> None:
    items = G.parse_menu(b"ZMystery\t/m\th\t70\t+\r\n\r\n3Oops\t\terror.host\t1\r\n")
    assert [i.type for i in items] == ["Z", "i", "3"]
    z = items[0]
    assert z.selectable and not z.followable and z.port == 70
    assert G.type_label("Z") == "?Z" and G.type_name("Z") == "unknown type 'Z'"
    assert items[1].display == "" and not items[1].selectable
    assert not items[2].selectable  # an error line is shown, not followed


def test_item_type_names() -> None:
    assert G.type_label("0") == "TXT" and G.type_label("1") == "DIR" and G.type_label("7") == "ASK"
    assert G.type_label("3") == "ERR" and G.type_label("h") == "HTM" and G.type_label("i") == ""
    for t in "9546gIs":
        assert t in G.BINARY_TYPES and G.Item(t, "x").is_binary
    assert G.type_name("7") == "search" and G.type_name("i") == "information"


def test_non_utf8_selectors_go_back_to_the_server_exactly() -> None:
    (item,) = G.parse_menu(b"0caf\xe9\t/caf\xe9.txt\th\t70\r\n")
    assert item.location().request() == b"/caf\xe9.txt\r\n"
    assert G.printable(item.display) == "caf?"


def test_menu_lines_for_servers_round_trip() -> None:
    data = G.end_menu([G.menu_line("0", "A\ttab", "/a", "h", 70), G.info_line("hi")])
    assert data.endswith(b".\r\n")
    items = G.parse_menu(data)
    assert (items[0].display, items[0].selector) == ("A tab", "/a")
    assert (items[1].type, items[1].display) == ("i", "hi")
    (err,) = G.parse_menu(G.error_menu("Not found: /x"))
    assert (err.type, err.display) == ("3", "Not found: /x")


# ---------------------------------------------------------------------- text bodies


def test_text_with_closing_dot_is_unstuffed() -> None:
    assert G.decode_text(b"one\r\n..two\r\n.\r\n") == b"one\r\n.two\r\n"
    assert G.decode_text(b"..start\n.\n") == b".start\n"
    assert G.decode_text(b".\r\n") == b""


def test_text_without_closing_dot_is_raw() -> None:
    # A raw file (most servers send them so) keeps its doubled dots and its last line.
    assert G.decode_text(b"one\n..two\nlast") == b"one\n..two\nlast"
    assert G.decode_text(b"ends with a dot.\r\n") == b"ends with a dot.\r\n"
    assert G.decode_text(b"") == b""


@pytest.mark.parametrize("doc", [
    b"", b"plain\n", b"no newline", b"..two\n.\n", b".\n", b"a\r\n.\r\n", b"x\n.", b".leading\r\nz\n",
    bytes(range(256)),
])
def test_server_encoding_round_trips(doc: bytes) -> None:
    assert G.decode_text(G.encode_text(doc)) == doc


def test_server_sends_files_raw_unless_that_would_read_as_the_end() -> None:
    assert G.encode_text(b"..two\nplain\n") == b"..two\nplain\n"
    assert G.encode_text(b"x\n.\n") == b"x\n..\n.\r\n"


@given(st.binary(max_size=300))
def test_any_document_round_trips(doc: bytes) -> None:
    assert G.decode_text(G.encode_text(doc)) == doc


# ---------------------------------------------------------------------- requests


def test_requests() -> None:
    assert G.build_request("") == b"\r\n"
    assert G.build_request("/docs") == b"/docs\r\n"
    assert G.build_request("/search", "two words") == b"/search\ttwo words\r\n"
    assert G.build_request("/a\r\nb") == b"/ab\r\n"  # a line end would end the request early
    assert G.parse_request(b"/docs\r\n") == ("/docs", None)
    assert G.parse_request(b"/s\tq w\t+\r\n") == ("/s", "q w")
    assert G.parse_request(b"/lf-only\n") == ("/lf-only", None)
    assert G.parse_request(b"") == ("", None)


# ---------------------------------------------------------------------- URLs and arguments


def test_urls() -> None:
    assert G.parse_url("gopher://example.org") == G.Location("example.org", 70, "1", "")
    assert G.parse_url("gopher://example.org/") == G.Location("example.org", 70, "1", "")
    assert G.parse_url("gopher://example.org:7070/0/about.txt") == G.Location("example.org", 7070, "0",
                                                                              "/about.txt")
    assert G.parse_url("GOPHER://h/1") == G.Location("h", 70, "1", "")
    assert G.parse_url("gopher://h/7/find%09two%20words") == G.Location("h", 70, "7", "/find", "two words")
    assert G.parse_url("gopher://h/0a%20b") == G.Location("h", 70, "0", "a b")
    assert G.parse_url("gopher://[::1]:71/1x") == G.Location("::1", 71, "1", "x")
    for bad in ("http://h/", "gopher://", "gopher://h:0/", "gopher://h:99999/", "gopher://h:x/"):
        with pytest.raises(ValueError):
            G.parse_url(bad)


def test_url_of_a_location() -> None:
    assert G.Location("h").url() == "gopher://h/1"
    assert G.Location("h", 7070, "0", "/a b.txt").url() == "gopher://h:7070/0/a%20b.txt"
    assert G.Location("h", 70, "7", "/s", "x y").url() == "gopher://h/7/s%09x%20y"


@given(st.text(min_size=1, max_size=20).filter(lambda s: "/" not in s and ":" not in s and "[" not in s
                                               and "]" not in s and s.strip() == s),
       st.integers(1, 65535), st.sampled_from("0179hIZ"), st.text(max_size=30).filter(lambda s: "\t" not in s),
       st.none() | st.text(max_size=10))
def test_url_round_trip(host: str, port: int, kind: str, selector: str, query: str | None) -> None:
    """A tab in a selector is where a URL's query starts (RFC 4266), so selectors have none."""
    loc = G.Location(host, port, kind, selector, query)
    assert G.parse_url(loc.url()) == loc


def test_targets() -> None:
    assert G.parse_target(["localhost"]) == G.Location("localhost", 70)
    assert G.parse_target(["localhost", "7070"]) == G.Location("localhost", 7070)
    assert G.parse_target("localhost 7070") == G.Location("localhost", 7070)
    assert G.parse_target("localhost:7070") == G.Location("localhost", 7070)
    assert G.parse_target(["gopher://h:71/0/x"]) == G.Location("h", 71, "0", "/x")
    with pytest.raises(ValueError, match="invalid port 70000"):
        G.parse_target(["h", "70000"])
    for bad in ([], ["a", "b", "c"], ["http://x"], ["gopher://h", "70"], ["a/b"]):
        with pytest.raises(ValueError):
            G.parse_target(bad)


def test_file_names_for_saving() -> None:
    assert G.file_name("/pub/blob.bin") == "blob.bin"
    assert G.file_name("/dir/") == "dir"
    assert G.file_name("") == "download"
    assert G.file_name("/../..") == "download"
    assert G.file_name("/a b?c") == "a_b_c"


# ---------------------------------------------------------------------- robustness


@given(st.lists(st.binary(max_size=80), max_size=20), st.sampled_from([b"\n", b"\r\n", b"\t", b""]))
def test_random_menus_never_raise(lines: list[bytes], sep: bytes) -> None:
    items = G.parse_menu(sep.join(lines), "h", 70)
    for item in items:
        assert 0 < item.port < 65536
        assert isinstance(item.display, str)
        G.printable(item.display).encode()  # always showable
        item.location().request()
        G.type_label(item.type)


@given(st.text(max_size=60))
def test_random_urls_only_raise_value_error(text: str) -> None:
    for candidate in (text, "gopher://" + text):
        try:
            G.parse_url(candidate)
        except ValueError:
            pass
        try:
            G.parse_target(candidate)
        except ValueError:
            pass


@given(st.binary(max_size=200))
def test_random_bodies_and_requests_never_raise(data: bytes) -> None:
    G.decode_text(data)
    G.parse_request(data)
