"""The file protocol's sans-IO half (vfs/protocol.py): parsing requests, names and paths, replies.

No system is booted: these pin the message shapes the server accepts and answers, so a change
to them shows here before it shows as a confused client.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from euralios.std import abi
from euralios.std.message import Error, Handle, Memory, Message
from vfs import protocol as P

MEM = Memory(0x280_4000_0000)


# ---------------------------------------------------------------- constants
def test_constants_are_std_abi() -> None:
    """The server's numbers are the client's (one source: euralios.std.abi)."""
    assert (P.OPEN_TAG, P.READ, P.WRITE, P.DATA, P.QUERY, P.OK, P.CLOSE_TAG) == (16, 1, 2, 2, 7, 8, 32)
    assert (P.DELETE, P.RENAME, P.MKDIR, P.ERROR, P.ERROR_DENIED, P.ERROR_UNKNOWN_MESSAGE) == (
        33, 34, 64, 129, 134, 133)
    assert (P.O_WRITE, P.O_CREATE, P.O_TRUNCATE, P.O_APPEND) == (1, 2, 4, 8)
    assert P.OPEN_FLAGS == 15
    assert (P.NOTFOUND, P.EXISTS, P.NOT_DIR, P.NO_DATA, P.PARAM) == (7, 13, 15, 16, 5)


# ---------------------------------------------------------------- parse
@pytest.mark.parametrize("flags", range(16))
def test_open_carries_flags(flags: int) -> None:
    req = P.parse(Message(abi.OPEN_TAG | flags, 5, MEM))
    assert isinstance(req, P.Open)
    assert (req.flags, req.length, req.mem) == (flags, 5, MEM)
    assert req.wants_write == bool(flags & (abi.O_WRITE | abi.O_APPEND))


def test_requests_by_tag() -> None:
    assert isinstance(P.parse(Message(abi.READ, 10, 20)), P.Read)
    r = P.parse(Message(abi.READ, 10, 20))
    assert (r.offset, r.max) == (10, 20)
    w = P.parse(Message(abi.WRITE, 3, MEM))
    assert isinstance(w, P.Write) and (w.length, w.mem) == (3, MEM)
    assert isinstance(P.parse(Message(abi.QUERY)), P.Query)
    assert isinstance(P.parse(Message(abi.CLOSE_TAG)), P.Close)
    assert isinstance(P.parse(Message(abi.MKDIR, 1, MEM)), P.Mkdir)
    assert isinstance(P.parse(Message(abi.DELETE, 1, MEM)), P.Delete)
    assert isinstance(P.parse(Message(abi.RENAME, 3, MEM)), P.Rename)
    for tag in (0, 3, 6, 8, 9, 15, 35, 63, 65, 129, 1 << 63):
        assert isinstance(P.parse(Message(tag, 1, 2)), P.Unknown)


@pytest.mark.parametrize("msg", [
    Message(abi.OPEN_TAG, 5, 7),                    # a value where the path chunk belongs
    Message(abi.OPEN_TAG, MEM, MEM),                 # a chunk where the length belongs
    Message(abi.OPEN_TAG | 1, 4097, MEM),           # path longer than MAX_PATH
    Message(abi.OPEN_TAG, 3, Handle(4)),
    Message(abi.OPEN_TAG, 3, Error(11)),            # the chunk never arrived (NOMEMSLOTS)
    Message(abi.WRITE, 3, 4),
    Message(abi.WRITE, Handle(2), MEM),
    Message(abi.READ, MEM, 4),
    Message(abi.READ, 0, Handle(1)),
    Message(abi.MKDIR, 256, MEM),                   # a name longer than MAX_NAME
    Message(abi.DELETE, 1, 1),
    Message(abi.RENAME, 4097, MEM),
])
def test_malformed_known_requests_are_param(msg: Message) -> None:
    with pytest.raises(P.ProtocolError) as e:
        P.parse(msg)
    assert e.value.code == abi.PARAM
    assert e.value.reply == Message(abi.ERROR, abi.PARAM, 0)


word = st.one_of(
    st.integers(0, 2**64 - 1),
    st.builds(Memory, st.integers(0, 2**64 - 1)),
    st.builds(Handle, st.integers(0, 1000)),
    st.builds(Error, st.integers(0, 127)),
)


@given(st.integers(0, 2**64 - 1), word, word)
@settings(max_examples=300)
def test_parse_total(tag: int, d2: object, d3: object) -> None:
    """Any message parses to a request or a ProtocolError: nothing else escapes the parser."""
    msg = Message(tag, d2, d3)  # type: ignore[arg-type]
    try:
        req = P.parse(msg)
    except P.ProtocolError as e:
        assert e.reply.tag in (abi.ERROR, abi.ERROR_DENIED)
        return
    assert req.msg is msg



# ---------------------------------------------------------------- names and paths
@pytest.mark.parametrize("name", ["a", "notes.txt", "ünï", "x" * 255, "with space"])
def test_good_names(name: str) -> None:
    assert P.check_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "/a", "a\0b", "x" * 256, "é" * 128])
def test_bad_names(name: str) -> None:
    with pytest.raises(P.ProtocolError) as e:
        P.check_name(name)
    assert e.value.code == abi.PARAM


def test_split_path() -> None:
    assert P.split_path("") == []
    assert P.split_path("/") == []
    assert P.split_path("/a/b") == ["a", "b"]
    assert P.split_path("a//./b/") == ["a", "b"]
    with pytest.raises(P.ProtocolError):
        P.split_path("a/../b")  # a session must not reach above its directory


def test_split_rename_and_utf8() -> None:
    assert P.split_rename("old\0new") == ("old", "new")
    for bad in ("old", "old\0", "\0new", "a\0b/c", "a\0b\0c"):
        with pytest.raises(P.ProtocolError):
            P.split_rename(bad)
    assert P.decode_text("ü".encode()) == "ü"
    with pytest.raises(P.ProtocolError) as e:
        P.decode_text(b"\xff\xfe")
    assert e.value.code == abi.UTF8


# ---------------------------------------------------------------- replies
def test_reply_shapes() -> None:
    assert P.ok(3) == Message(abi.OK, 3, 0)
    assert P.error(7) == Message(abi.ERROR, 7, 0)
    assert P.denied() == Message(abi.ERROR_DENIED, 0, 0)
    assert P.unknown() == Message(abi.ERROR_UNKNOWN_MESSAGE, 0, 0)
    assert P.comm_handle(4) == Message(abi.COMM_HANDLE, Handle(4), 0)
    assert P.data(5, 0x1000) == Message(abi.DATA, 5, Memory(0x1000))
    assert P.json_reply(5, 0x1000) == Message(abi.JSON, 5, Memory(0x1000))
    assert P.error_reply(abi.DENIED) == P.denied()
    assert P.error_reply(abi.ERROR_UNKNOWN_MESSAGE) == P.unknown()
    assert P.FsError(abi.EXISTS).reply == Message(abi.ERROR, abi.EXISTS, 0)


def test_dir_info_sorted_not_reversed() -> None:
    info = json.loads(P.dir_info("d", ["b", "a", "c"], [("z", 1), ("y", 20)]))
    assert info == {
        "name": "d", "type": "dir",
        "subdirs": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "files": [{"name": "y", "size": 20}, {"name": "z", "size": 1}],
    }
    assert json.loads(P.file_info("f", 9)) == {"name": "f", "type": "file", "size": 9}
