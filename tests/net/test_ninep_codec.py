"""proto.ninep: every 9P2000.L message byte for byte against the published formats, round trips
over every message type, and the stream decoder fed in random splits and garbage.

The expected bytes are written by hand from diod's protocol.md (field by field, little-endian,
``size[4] type[1] tag[2]`` first, strings ``len[2]`` + bytes, qid ``type[1] version[4] path[8]``)
and the type numbers of Linux's include/net/9p/9p.h. Nothing here is produced by the codec.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proto.ninep import (
    AT_REMOVEDIR,
    MESSAGE_TYPES,
    NEED_DATA,
    NOFID,
    NOTAG,
    BadMessage,
    DecodeError,
    Decoder,
    Dirent,
    DirentType,
    EncodeError,
    Errno,
    Frame,
    GetattrMask,
    MsgType,
    OpenFlag,
    Qid,
    QidType,
    Rattach,
    Rauth,
    Rclunk,
    Rflush,
    Rgetattr,
    Rlcreate,
    Rlerror,
    Rlopen,
    Rmkdir,
    Rread,
    Rreaddir,
    Rremove,
    Rrename,
    Rrenameat,
    Rsetattr,
    Rstatfs,
    Runlinkat,
    Rversion,
    Rwalk,
    Rwrite,
    SetattrMask,
    StreamError,
    StreamErrorKind,
    Tattach,
    Tauth,
    Tclunk,
    Tflush,
    Tgetattr,
    Tlcreate,
    Tlopen,
    Tmkdir,
    Tread,
    Treaddir,
    Tremove,
    Trename,
    Trenameat,
    Tsetattr,
    Tstatfs,
    Tunlinkat,
    Tversion,
    Twalk,
    Twrite,
    decode,
    dirent_size,
    encode,
    layout,
    negotiate,
)
from proto.ninep.fields import Kind

ZERO8 = "0000000000000000"


def h(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts))


VECTORS = [
    # Tversion: size=21 type=100 tag=NOTAG msize=131072 version="9P2000.L"
    (Tversion(131072, "9P2000.L"), NOTAG,
     h("15000000", "64", "ffff", "00000200", "0800", "3950323030302e4c")),
    # Rversion: size=20 type=101 tag=NOTAG msize=8192 version="unknown"
    (Rversion(8192, "unknown"), NOTAG, h("14000000", "65", "ffff", "00200000", "0700", "756e6b6e6f776e")),
    # Tauth: size=20 type=102 tag=1 afid=5 uname="u" aname="" n_uname=1000
    (Tauth(5, "u", "", 1000), 1, h("14000000", "66", "0100", "05000000", "0100", "75", "0000", "e8030000")),
    # Rauth: size=20 type=103 aqid=(AUTH, version 1, path 2)
    (Rauth(Qid(QidType.AUTH, 1, 2)), 1, h("14000000", "67", "0100", "08", "01000000", "0200000000000000")),
    # Tattach: size=27 type=104 fid=1 afid=NOFID uname="root" aname="" n_uname=0
    (Tattach(1, NOFID, "root", "", 0), 1,
     h("1b000000", "68", "0100", "01000000", "ffffffff", "0400", "726f6f74", "0000", "00000000")),
    # Rattach: size=20 type=105 qid=(DIR, 0x11223344, 0x0102030405060708)
    (Rattach(Qid(QidType.DIR, 0x11223344, 0x0102030405060708)), 1,
     h("14000000", "69", "0100", "80", "44332211", "0807060504030201")),
    # Rlerror: size=11 type=7 ecode=ENOENT(2)
    (Rlerror(Errno.ENOENT), 1, h("0b000000", "07", "0100", "02000000")),
    # Tflush: size=9 type=108 oldtag=0x1234 ; Rflush: size=7 type=109
    (Tflush(0x1234), 1, h("09000000", "6c", "0100", "3412")),
    (Rflush(), 1, h("07000000", "6d", "0100")),
    # Twalk: size=24 type=110 fid=1 newfid=2 nwname=2 "a" "bc"
    (Twalk(1, 2, ("a", "bc")), 1,
     h("18000000", "6e", "0100", "01000000", "02000000", "0200", "0100", "61", "0200", "6263")),
    # Rwalk: size=22 type=111 nwqid=1 qid=(FILE, 0, 7) ; an empty Rwalk: size=9
    (Rwalk((Qid(QidType.FILE, 0, 7),)), 1, h("16000000", "6f", "0100", "0100", "00", "00000000", "0700000000000000")),
    (Rwalk(()), 1, h("09000000", "6f", "0100", "0000")),
    # Tgetattr: size=19 type=24 fid=3 request_mask=BASIC(0x7ff)
    (Tgetattr(3, GetattrMask.BASIC), 1, h("13000000", "18", "0100", "03000000", "ff07000000000000")),
    # Rgetattr: size=160 type=25 valid qid mode uid gid nlink rdev size blksize blocks a/m/c/btime gen dv
    (Rgetattr(0x7FF, Qid(QidType.FILE, 1, 2), 0o100644, 1000, 1000, 1, 0, 5, 4096, 8,
              1, 2, 3, 4, 5, 6, 0, 0, 0, 0), 1,
     h("a0000000", "19", "0100",
       "ff07000000000000",                            # valid
       "00", "01000000", "0200000000000000",          # qid
       "a4810000", "e8030000", "e8030000",            # mode 0o100644, uid 1000, gid 1000
       "0100000000000000", ZERO8,                     # nlink 1, rdev 0
       "0500000000000000", "0010000000000000",        # size 5, blksize 4096
       "0800000000000000",                            # blocks 8
       "0100000000000000", "0200000000000000",        # atime 1.2
       "0300000000000000", "0400000000000000",        # mtime 3.4
       "0500000000000000", "0600000000000000",        # ctime 5.6
       ZERO8, ZERO8, ZERO8, ZERO8)),                  # btime, gen, data_version
    # Tsetattr: size=67 type=26 fid=3 valid=MODE|SIZE mode=0o644 uid=0 gid=0 size=16 times 0
    (Tsetattr(3, SetattrMask.MODE | SetattrMask.SIZE, 0o644, 0, 0, 16, 0, 0, 0, 0), 1,
     h("43000000", "1a", "0100", "03000000", "09000000", "a4010000", "00000000", "00000000",
       "1000000000000000", ZERO8, ZERO8, ZERO8, ZERO8)),
    (Rsetattr(), 1, h("07000000", "1b", "0100")),
    # Tlopen: size=15 type=12 fid=3 flags=O_RDWR|O_TRUNC (0o1002)
    (Tlopen(3, OpenFlag.RDWR | OpenFlag.TRUNC), 1, h("0f000000", "0c", "0100", "03000000", "02020000")),
    # Rlopen: size=24 type=13 qid=(FILE, 9, 10) iounit=131048
    (Rlopen(Qid(QidType.FILE, 9, 10), 131048), 1,
     h("18000000", "0d", "0100", "00", "09000000", "0a00000000000000", "e8ff0100")),
    # Tlcreate: size=26 type=14 fid=3 name="f" flags=O_WRONLY|O_CREAT (0o101) mode=0o644 gid=1000
    (Tlcreate(3, "f", OpenFlag.WRONLY | OpenFlag.CREAT, 0o644, 1000), 1,
     h("1a000000", "0e", "0100", "03000000", "0100", "66", "41000000", "a4010000", "e8030000")),
    (Rlcreate(Qid(QidType.FILE, 1, 11), 4096), 1,
     h("18000000", "0f", "0100", "00", "01000000", "0b00000000000000", "00100000")),
    # Tread: size=23 type=116 fid=3 offset=2**32 count=4096
    (Tread(3, 1 << 32, 4096), 1, h("17000000", "74", "0100", "03000000", "0000000001000000", "00100000")),
    # Rread: size=13 type=117 count=2 "hi"
    (Rread(b"hi"), 1, h("0d000000", "75", "0100", "02000000", "6869")),
    # Twrite: size=26 type=118 fid=3 offset=5 count=3 "abc" ; Rwrite: size=11 count=3
    (Twrite(3, 5, b"abc"), 1, h("1a000000", "76", "0100", "03000000", "0500000000000000", "03000000", "616263")),
    (Rwrite(3), 1, h("0b000000", "77", "0100", "03000000")),
    # Treaddir: size=23 type=40 fid=3 offset=2 count=8192
    (Treaddir(3, 2, 8192), 1, h("17000000", "28", "0100", "03000000", "0200000000000000", "00200000")),
    # Rreaddir: size=62 type=41 count=51, then two entries qid[13] offset[8] type[1] name[s]
    (Rreaddir((Dirent(Qid(QidType.DIR, 0, 1), 1, DirentType.DIR, "."),
               Dirent(Qid(QidType.FILE, 2, 5), 2, DirentType.REG, "ab"))), 1,
     h("3e000000", "29", "0100", "33000000",
       "80", "00000000", "0100000000000000", "0100000000000000", "04", "0100", "2e",
       "00", "02000000", "0500000000000000", "0200000000000000", "08", "0200", "6162")),
    # Tmkdir: size=22 type=72 dfid=3 name="d" mode=0o755 gid=0 ; Rmkdir: qid=(DIR, 0, 12)
    (Tmkdir(3, "d", 0o755, 0), 1, h("16000000", "48", "0100", "03000000", "0100", "64", "ed010000", "00000000")),
    (Rmkdir(Qid(QidType.DIR, 0, 12)), 1, h("14000000", "49", "0100", "80", "00000000", "0c00000000000000")),
    # Tunlinkat: size=18 type=76 dirfid=3 name="d" flags=AT_REMOVEDIR(0x200)
    (Tunlinkat(3, "d", AT_REMOVEDIR), 1, h("12000000", "4c", "0100", "03000000", "0100", "64", "00020000")),
    (Runlinkat(), 1, h("07000000", "4d", "0100")),
    # Trenameat: size=21 type=74 olddirfid=3 "a" newdirfid=4 "b"
    (Trenameat(3, "a", 4, "b"), 1, h("15000000", "4a", "0100", "03000000", "0100", "61", "04000000", "0100", "62")),
    (Rrenameat(), 1, h("07000000", "4b", "0100")),
    # Trename: size=18 type=20 fid=3 dfid=4 "b"
    (Trename(3, 4, "b"), 1, h("12000000", "14", "0100", "03000000", "04000000", "0100", "62")),
    (Rrename(), 1, h("07000000", "15", "0100")),
    # Tremove: size=11 type=122 fid=3
    (Tremove(3), 1, h("0b000000", "7a", "0100", "03000000")),
    (Rremove(), 1, h("07000000", "7b", "0100")),
    # Tclunk: size=11 type=120 fid=3 ; Rclunk: size=7 type=121
    (Tclunk(3), 1, h("0b000000", "78", "0100", "03000000")),
    (Rclunk(), 1, h("07000000", "79", "0100")),
    # Tstatfs: size=11 type=8 fid=3
    (Tstatfs(3), 1, h("0b000000", "08", "0100", "03000000")),
    # Rstatfs: size=67 type=9 type=V9FS_MAGIC bsize blocks bfree bavail files ffree fsid namelen
    (Rstatfs(0x01021997, 4096, 100, 50, 40, 1000, 900, 7, 255), 1,
     h("43000000", "09", "0100", "97190201", "00100000", "6400000000000000", "3200000000000000",
       "2800000000000000", "e803000000000000", "8403000000000000", "0700000000000000", "ff000000")),
]


@pytest.mark.parametrize(("msg", "tag", "wire"), VECTORS, ids=[type(v[0]).__name__ for v in VECTORS])
def test_vectors(msg, tag, wire):
    assert encode(msg, tag) == wire
    assert decode(wire) == (tag, msg)


def test_every_message_has_a_vector():
    assert {type(v[0]) for v in VECTORS} == set(MESSAGE_TYPES.values())


def test_type_numbers_are_linux():
    # include/net/9p/9p.h, enum p9_msg_t
    assert (MsgType.RLERROR, MsgType.TSTATFS, MsgType.TLOPEN, MsgType.TLCREATE, MsgType.TGETATTR,
            MsgType.TSETATTR, MsgType.TREADDIR, MsgType.TMKDIR, MsgType.TRENAMEAT, MsgType.TUNLINKAT,
            MsgType.TVERSION, MsgType.TAUTH, MsgType.TATTACH, MsgType.TFLUSH, MsgType.TWALK,
            MsgType.TREAD, MsgType.TWRITE, MsgType.TCLUNK) == (
        7, 8, 12, 14, 24, 26, 40, 72, 74, 76, 100, 102, 104, 108, 110, 116, 118, 120)
    for t, cls in MESSAGE_TYPES.items():
        assert cls.TYPE is t
        assert t.is_request == cls.__name__.startswith("T")


def test_non_utf8_names_round_trip_exactly():
    name = b"caf\xe9".decode("utf-8", "surrogateescape")  # a Latin-1 host file name
    wire = encode(Twalk(1, 2, (name,)), 5)
    assert wire.endswith(b"\x04\x00caf\xe9")
    assert decode(wire)[1] == Twalk(1, 2, (name,))
    assert dirent_size(name) == 13 + 8 + 1 + 2 + 4


# ------------------------------------------------------------------ round trips
_INTS = {Kind.U8: 0xFF, Kind.U16: 0xFFFF, Kind.U32: 0xFFFFFFFF, Kind.U64: 0xFFFFFFFFFFFFFFFF}
qid_st = st.builds(Qid, st.sampled_from(list(QidType)), st.integers(0, 0xFFFFFFFF), st.integers(0, _INTS[Kind.U64]))
name_st = st.text(max_size=20)
dirent_st = st.builds(Dirent, qid_st, st.integers(0, _INTS[Kind.U64]), st.sampled_from(list(DirentType)), name_st)


def _kind(kind: Kind) -> st.SearchStrategy:
    if kind in _INTS:
        return st.integers(0, _INTS[kind])
    return {
        Kind.STR: name_st, Kind.QID: qid_st, Kind.DATA: st.binary(max_size=64),
        Kind.NAMES: st.lists(name_st, max_size=16).map(tuple),
        Kind.QIDS: st.lists(qid_st, max_size=16).map(tuple),
        Kind.DIRENTS: st.lists(dirent_st, max_size=6).map(tuple),
    }[kind]


message_st = st.one_of(*[st.builds(cls, *[_kind(k) for _, k in layout(cls)]) for cls in MESSAGE_TYPES.values()])


@settings(max_examples=400, deadline=None)
@given(message_st, st.integers(0, 0xFFFF))
def test_round_trip(msg, tag):
    wire = encode(msg, tag)
    assert int.from_bytes(wire[:4], "little") == len(wire)
    assert decode(wire) == (tag, msg)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(message_st, st.integers(0, 0xFFFF)), max_size=8), st.data())
def test_decoder_random_splits(msgs, data):
    stream = b"".join(encode(m, t) for m, t in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    dec = Decoder(msize=1 << 20)
    got = []
    prev = 0
    for cut in [*cuts, len(stream)]:
        dec.feed(stream[prev:cut])
        prev = cut
        evs = dec.events()
        assert evs[-1] is NEED_DATA
        got += [(e.tag, e.message) for e in evs[:-1]]
    assert got == [(t, m) for m, t in msgs]
    assert dec.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoder_never_raises_on_garbage(blob):
    dec = Decoder(msize=256)
    dec.feed(blob)
    for ev in dec.events():
        assert isinstance(ev, Frame | BadMessage | StreamError) or ev is NEED_DATA


# ------------------------------------------------------------------ errors
def test_size_larger_than_msize_is_refused_from_the_size_field():
    dec = Decoder(msize=8192)
    dec.feed((8193).to_bytes(4, "little"))  # the body never needs to arrive
    ev = dec.next_event()
    assert ev == StreamError(StreamErrorKind.TOO_LARGE, 8193)
    dec.feed(encode(Tclunk(1), 1))
    assert dec.next_event() == ev and dec.broken == ev and dec.buffered == 0


def test_size_smaller_than_a_header():
    dec = Decoder()
    dec.feed(h("06000000", "78", "01"))
    assert dec.next_event() == StreamError(StreamErrorKind.TOO_SMALL, 6)


def test_unknown_type_truncated_and_trailing_are_bad_messages_and_the_stream_goes_on():
    dec = Decoder()
    dec.feed(h("0b000000", "03", "0900", "00000000"))  # type 3 is no message
    dec.feed(h("09000000", "78", "0a00", "0300"))  # Tclunk with a 2-byte fid: truncated
    dec.feed(h("0d000000", "78", "0b00", "03000000", "ffff"))  # Tclunk plus 2 trailing bytes
    dec.feed(h("0b000000", "78", "0c00", "03000000"))  # a good one after them
    evs = dec.events()
    assert [type(e) for e in evs] == [BadMessage, BadMessage, BadMessage, Frame, type(NEED_DATA)]
    assert [e.tag for e in evs[:4]] == [9, 10, 11, 12]
    assert evs[0].type == 3 and "unknown" in evs[0].reason
    assert "truncated" in evs[1].reason and "trailing" in evs[2].reason
    assert evs[3] == Frame(12, Tclunk(3))


def test_bad_string_count_and_dirent_type():
    with pytest.raises(DecodeError):  # nwname says 2, one name present
        decode(h("10000000", "6e", "0100", "01000000", "02000000", "0200", "0100", "61"))
    with pytest.raises(DecodeError):  # Rreaddir entry with dirent type 3 (none such)
        decode(h("23000000", "29", "0100", "18000000", "00", "00000000", ZERO8, ZERO8, "03", "0000"))
    with pytest.raises(DecodeError):  # size field disagrees with the bytes given
        decode(h("0c000000", "78", "0100", "03000000"))


def test_encode_errors():
    with pytest.raises(EncodeError):
        encode(Tclunk(1 << 32), 1)
    with pytest.raises(EncodeError):
        encode(Tclunk(1), 0x10000)
    with pytest.raises(EncodeError):
        encode(Twalk(1, 2, ("x" * 70000,)), 1)
    with pytest.raises(EncodeError):
        encode(Twalk(1, 2, ("\ud800",)), 1)  # a lone surrogate that escapes no byte


def test_negotiate():
    assert negotiate(Tversion(1 << 20, "9P2000.L"), 512 * 1024) == Rversion(512 * 1024, "9P2000.L")
    assert negotiate(Tversion(131072, "9P2000.L"), 512 * 1024) == Rversion(131072, "9P2000.L")
    assert negotiate(Tversion(131072, "9P2000.u"), 512 * 1024) == Rversion(131072, "unknown")
    assert negotiate(Tversion(131072, "9P2000"), 512 * 1024).version == "unknown"
