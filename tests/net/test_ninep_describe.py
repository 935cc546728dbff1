"""proto.ninep.describe: the line and the fields a trace shows for a 9P message, on reference
messages (the formats a learner reads in Perfetto), and undecodable frames described, not raised."""

from __future__ import annotations

import json

from proto.ninep import (
    NOFID,
    NOTAG,
    VERSION,
    Errno,
    Qid,
    QidType,
    Rgetattr,
    Rlerror,
    Rlopen,
    Rread,
    Rversion,
    Rwalk,
    Tclunk,
    Tlopen,
    Tread,
    Tversion,
    Twalk,
    Twrite,
    attach,
    describe,
    describe_frame,
    encode,
)


def test_titles_of_reference_messages() -> None:
    q = Qid(QidType.FILE, 7, 0x2A)
    cases = [
        (Tversion(131072, VERSION), "Tversion msize=131072 version='9P2000.L'"),
        (Rversion(131072, VERSION), "Rversion msize=131072 version='9P2000.L'"),
        (attach(0, "root", "", 0), "Tattach fid=0 afid=NOFID uname='root' aname='' n_uname=0"),
        (Twalk(1, 2, ("a", "b")), "Twalk fid=1 newfid=2 wnames=['a', 'b']"),
        (Rwalk((q, Qid(QidType.DIR, 0, 1))), "Rwalk qids=2"),
        (Tlopen(2, 0), "Tlopen fid=2 flags=0x0"),
        (Rlopen(q, 131048), "Rlopen qid=file:7:0x2a iounit=131048"),
        (Tread(2, 4096, 65536), "Tread fid=2 offset=4096 count=65536"),
        (Rread(b"x" * 100), "Rread count=100"),
        (Twrite(2, 0, b"hello"), "Twrite fid=2 offset=0 count=5"),
        (Rlerror(Errno.ENOENT), "Rlerror ecode=ENOENT"),
        (Tclunk(2), "Tclunk fid=2"),
    ]
    for msg, title in cases:
        assert describe(msg, 5)[0] == title


def test_args_carry_tag_type_and_every_field_as_json() -> None:
    title, args = describe(Twalk(1, 2, ("a", "b")), 3)
    assert args == {"tag": 3, "type": "Twalk", "type_number": 110, "fid": 1, "newfid": 2, "wnames": ["a", "b"]}
    _, args = describe(Tversion(8192, VERSION), NOTAG)
    assert args["tag"] == "NOTAG"
    _, args = describe(attach(0, "root", "", 0), 0)
    assert args["afid"] == "NOFID" and NOFID == 0xFFFFFFFF
    # Data is a count and a short preview, never the whole payload.
    _, args = describe(Rread(bytes(512 * 1024)), 9)
    assert args["count"] == 512 * 1024 and len(args["data"]) <= 4 * 32 + 6
    # A long reply's title has the few fields that matter; args have all of them.
    title, args = describe(Rgetattr(0x7FF, Qid(), 0o100644, 0, 0, 1, 0, 20, 4096, 8, *([0] * 10)), 4)
    assert title == "Rgetattr qid=file:0:0x0 mode=0o100644 size=20"
    assert args["blksize"] == 4096 and args["nlink"] == 1
    json.dumps(args)


def test_frames_decode_or_say_they_do_not() -> None:
    assert describe_frame(encode(Tclunk(4), 11)) == describe(Tclunk(4), 11)
    title, args = describe_frame(b"\x09\x00\x00\x00\x78\x01\x00\x00\x00")  # a Tclunk two bytes short
    assert title.startswith("Tclunk (undecodable") and args["tag"] == 1 and args["bytes"] == 9
    title, _ = describe_frame(b"\x03\x00")
    assert "undecodable" in title
