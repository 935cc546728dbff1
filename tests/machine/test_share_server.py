"""machine.share.ShareServer: each 9P2000.L request against a real temporary host folder."""

from __future__ import annotations

import os
import stat

import pytest

from machine.share import ShareServer
from proto.ninep import (
    AT_REMOVEDIR,
    IOHDRSZ,
    NOFID,
    NOTAG,
    VERSION,
    Errno,
    GetattrMask,
    OpenFlag,
    QidType,
    Rattach,
    Rclunk,
    Rflush,
    Rgetattr,
    Rlcreate,
    Rlerror,
    Rlopen,
    Rmkdir,
    Rread,
    Rreaddir,
    Rrenameat,
    Rsetattr,
    Rstatfs,
    Runlinkat,
    Rversion,
    Rwalk,
    Rwrite,
    SetattrMask,
    Tattach,
    Tauth,
    Tflush,
    Tgetattr,
    Tlcreate,
    Tlopen,
    Tmkdir,
    Tread,
    Treaddir,
    Trenameat,
    Tsetattr,
    Tstatfs,
    Tunlinkat,
    Tversion,
    Twalk,
    Twrite,
    encode,
)
from tests.support.ninep import Client, err


@pytest.fixture
def share(tmp_path):
    root = tmp_path / "share"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello, world\n")
    (root / "sub").mkdir()
    (root / "sub" / "deep.txt").write_bytes(b"deep")
    return root


@pytest.fixture
def client(share):
    with ShareServer(share, strict=True) as server:
        yield Client(server)


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# ------------------------------------------------------------------ session
def test_version_negotiates_msize_and_resets_fids(share):
    with ShareServer(share, max_msize=512 * 1024, strict=True) as s:
        assert s.handle(NOTAG, Tversion(1 << 20, VERSION)) == Rversion(512 * 1024, VERSION)
        assert s.handle(NOTAG, Tversion(131072, VERSION)) == Rversion(131072, VERSION)
        assert s.iounit == 131072 - IOHDRSZ
        assert isinstance(s.handle(1, Tattach(1, NOFID, "", "", 0)), Rattach)
        assert s.fids == 1
        assert s.handle(NOTAG, Tversion(131072, "9P2000.u")) == Rversion(131072, "unknown")
        assert s.fids == 0
        assert err(s.handle(NOTAG, Tversion(1024, VERSION))) == Errno.EMSGSIZE


def test_attach_rules(share):
    with ShareServer(share, strict=True) as s:
        assert err(s.handle(1, Tattach(1, 7, "", "", 0))) == Errno.EINVAL  # no auth fids
        assert err(s.handle(1, Tattach(1, NOFID, "", "other", 0))) == Errno.ENOENT
        r = s.handle(1, Tattach(1, NOFID, "", "", 0))
        assert isinstance(r, Rattach) and r.qid.type == QidType.DIR
        assert r.qid.path == os.stat(share).st_ino
        assert err(s.handle(1, Tattach(1, NOFID, "", "", 0))) == Errno.EINVAL  # fid in use
        assert err(s.handle(1, Tauth(9, "", "", 0))) == Errno.EOPNOTSUPP
        assert s.handle(1, Tflush(3)) == Rflush()
        assert err(s.handle(1, Rclunk())) == Errno.EINVAL  # a reply is not a request


def test_handle_frame_bad_input_is_answered(share):
    with ShareServer(share, strict=True) as s:
        assert s.handle_frame(b"\x05\x00\x00") is None
        assert s.handle_frame(bytes.fromhex("0b000000" "03" "2a00" "00000000")) == encode(Rlerror(Errno.EINVAL), 42)
        short = bytes.fromhex("09000000" "78" "2b00" "0000")  # Tclunk with half a fid
        assert s.handle_frame(short) == encode(Rlerror(Errno.EINVAL), 43)
        tfsync = bytes.fromhex("0f000000" "32" "2c00" "01000000" "00000000")  # known, not served
        assert s.handle_frame(tfsync) == encode(Rlerror(Errno.EOPNOTSUPP), 44)
        s.handle(NOTAG, Tversion(8192, VERSION))
        big = encode(Twrite(1, 0, b"x" * 9000), 44)
        assert s.handle_frame(big) == encode(Rlerror(Errno.EMSGSIZE), 44)


# ------------------------------------------------------------------ walk
def test_walk_full_partial_clone_in_place(client, share):
    fid, r = client.walk("sub", "deep.txt")
    assert isinstance(r, Rwalk) and [q.type for q in r.wqids] == [QidType.DIR, QidType.FILE]
    assert r.wqids[1].path == os.stat(share / "sub" / "deep.txt").st_ino
    fid2, r = client.walk("sub", "missing", "x")
    assert r == Rwalk(r.wqids) and len(r.wqids) == 1  # stopped after "sub"
    assert err(client.call(Tgetattr(fid2, GetattrMask.BASIC))) == Errno.EBADF  # newfid not made
    _, r = client.walk("missing")
    assert err(r) == Errno.ENOENT
    _, r = client.walk("hello.txt", "x")
    assert len(r.wqids) == 1  # a file is not walked through
    _, r = client.walk("x", fid=fid)
    assert err(r) == Errno.ENOTDIR
    clone, r = client.walk()
    assert r == Rwalk(())
    assert client.call(Twalk(clone, clone, ("sub",))) == Rwalk((r2 := client.walk("sub")[1]).wqids)
    assert r2.wqids[0].type == QidType.DIR
    _, r = client.walk(*["."] * 17)
    assert err(r) == Errno.EINVAL  # more than MAXWELEM
    assert err(client.call(Twalk(client.root, fid, ()))) == Errno.EINVAL  # newfid in use
    assert err(client.call(Twalk(999, 1000, ()))) == Errno.EBADF


# ------------------------------------------------------------------ attributes
def test_getattr_matches_lstat(client, share):
    fid, _ = client.walk("hello.txt")
    r = client.call(Tgetattr(fid, GetattrMask.ALL))
    st = os.lstat(share / "hello.txt")
    assert isinstance(r, Rgetattr)
    assert (r.mode, r.size, r.nlink, r.uid, r.gid) == (st.st_mode, 13, st.st_nlink, st.st_uid, st.st_gid)
    assert r.mtime_sec * 10**9 + r.mtime_nsec == st.st_mtime_ns
    assert r.valid == GetattrMask.BASIC and r.qid.path == st.st_ino


def test_setattr_mode_size_times(client, share):
    fid, _ = client.walk("hello.txt")
    V = SetattrMask
    assert client.call(Tsetattr(fid, V.MODE, 0o600, 0, 0, 0, 0, 0, 0, 0)) == Rsetattr()
    assert stat.S_IMODE(os.stat(share / "hello.txt").st_mode) == 0o600
    assert client.call(Tsetattr(fid, V.SIZE, 0, 0, 0, 5, 0, 0, 0, 0)) == Rsetattr()
    assert (share / "hello.txt").read_bytes() == b"hello"
    r = client.call(Tsetattr(fid, V.ATIME | V.ATIME_SET | V.MTIME | V.MTIME_SET, 0, 0, 0, 0, 1000, 5, 2000, 7))
    assert r == Rsetattr()
    st = os.stat(share / "hello.txt")
    assert (st.st_atime_ns, st.st_mtime_ns) == (1000 * 10**9 + 5, 2000 * 10**9 + 7)
    assert client.call(Tsetattr(fid, V.MTIME, 0, 0, 0, 0, 0, 0, 0, 0)) == Rsetattr()  # "now"
    assert os.stat(share / "hello.txt").st_mtime > 2000
    assert err(client.call(Tsetattr(fid, V.UID, 0, st.st_uid + 1, 0, 0, 0, 0, 0, 0))) == Errno.EPERM
    dfid, _ = client.walk("sub")
    assert err(client.call(Tsetattr(dfid, V.SIZE, 0, 0, 0, 0, 0, 0, 0, 0))) == Errno.EISDIR


def test_statfs(client):
    r = client.call(Tstatfs(client.root))
    assert isinstance(r, Rstatfs) and r.bsize > 0 and r.namelen == 255


# ------------------------------------------------------------------ I/O
def test_lopen_read_write_offsets(client, share):
    fid = client.open("hello.txt", flags=OpenFlag.RDWR)
    assert isinstance(fid, int)
    assert client.call(Tread(fid, 7, 5)) == Rread(b"world")
    assert client.call(Tread(fid, 100, 5)) == Rread(b"")
    assert client.call(Twrite(fid, 20, b"!")) == Rwrite(1)
    assert (share / "hello.txt").read_bytes() == b"hello, world\n" + b"\0" * 7 + b"!"
    ro = client.open("hello.txt")
    assert err(client.call(Twrite(ro, 0, b"x"))) == Errno.EBADF
    wo = client.open("hello.txt", flags=OpenFlag.WRONLY | OpenFlag.TRUNC)
    assert (share / "hello.txt").read_bytes() == b""
    assert err(client.call(Tread(wo, 0, 1))) == Errno.EBADF
    fid2, _ = client.walk("hello.txt")
    assert err(client.call(Tread(fid2, 0, 1))) == Errno.EBADF  # not opened
    assert err(client.call(Tlopen(fid, OpenFlag.RDONLY))) == Errno.EBADF  # opened twice
    assert err(client.call(Tlopen(fid2, OpenFlag.NOACCESS))) == Errno.EINVAL
    assert err(client.call(Tlopen(client.walk("sub")[0], OpenFlag.WRONLY))) == Errno.EISDIR


def test_read_is_clipped_to_msize(share):
    (share / "big").write_bytes(bytes(range(256)) * 64)  # 16 KiB
    with ShareServer(share, strict=True) as s:
        c = Client(s, msize=8192)
        fid = c.open("big")
        r = c.call(Tread(fid, 0, 1 << 20))
        assert isinstance(r, Rread) and len(r.data) == 8192 - 11
        assert c.read_all(fid, chunk=s.iounit) == (share / "big").read_bytes()


def test_append(client, share):
    fid = client.open("hello.txt", flags=OpenFlag.WRONLY | OpenFlag.APPEND)
    assert client.call(Twrite(fid, 0, b"more")) == Rwrite(4)
    assert (share / "hello.txt").read_bytes() == b"hello, world\nmore"


def test_lcreate(client, share):
    dfid, _ = client.walk()
    r = client.call(Tlcreate(dfid, "new.txt", OpenFlag.RDWR, 0o640, 0))
    assert isinstance(r, Rlcreate) and r.iounit == client.server.iounit
    assert r.qid.path == os.stat(share / "new.txt").st_ino
    assert stat.S_IMODE(os.stat(share / "new.txt").st_mode) == 0o640 & ~_umask()
    assert client.call(Twrite(dfid, 0, b"abc")) == Rwrite(3)  # dfid is now the file
    assert client.call(Tread(dfid, 0, 10)) == Rread(b"abc")
    assert (share / "new.txt").read_bytes() == b"abc"
    d2, _ = client.walk()
    assert err(client.call(Tlcreate(d2, "new.txt", OpenFlag.RDWR | OpenFlag.EXCL, 0o644, 0))) == Errno.EEXIST
    assert isinstance(client.call(Tlcreate(d2, "new.txt", OpenFlag.RDWR, 0o644, 0)), Rlcreate)
    d3, _ = client.walk()
    assert err(client.call(Tlcreate(d3, "sub", OpenFlag.RDWR, 0o644, 0))) == Errno.EISDIR
    f, _ = client.walk("hello.txt")
    assert err(client.call(Tlcreate(f, "x", OpenFlag.RDWR, 0o644, 0))) == Errno.ENOTDIR


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


# ------------------------------------------------------------------ directories
def test_readdir_resumes_at_offsets(client, share):
    for i in range(40):
        (share / f"file{i:02}").write_bytes(b"")
    names = client.listdir(count=100)  # a few entries per Treaddir
    assert names == sorted(os.listdir(share))
    fid = client.open()
    r = client.call(Treaddir(fid, 0, 8192))
    assert isinstance(r, Rreaddir)
    assert [d.name for d in r.entries[:2]] == [".", ".."]
    assert [d.offset for d in r.entries] == list(range(1, len(r.entries) + 1))
    byname = {d.name: d for d in r.entries}
    assert byname["sub"].qid.type == QidType.DIR and byname["sub"].type == 4
    assert byname["hello.txt"].qid.path == os.stat(share / "hello.txt").st_ino
    assert client.call(Treaddir(fid, len(r.entries), 8192)) == Rreaddir(())
    assert err(client.call(Treaddir(fid, 0, 10))) == Errno.EINVAL  # not even one entry fits
    unopened, _ = client.walk()
    assert err(client.call(Treaddir(unopened, 0, 8192))) == Errno.EBADF
    f = client.open("hello.txt")
    assert err(client.call(Treaddir(f, 0, 8192))) == Errno.ENOTDIR
    assert err(client.call(Tread(fid, 0, 10))) == Errno.EISDIR


def test_mkdir_unlinkat_renameat(client, share):
    r = client.call(Tmkdir(client.root, "d", 0o755, 0))
    assert isinstance(r, Rmkdir) and r.qid.type == QidType.DIR and (share / "d").is_dir()
    assert err(client.call(Tmkdir(client.root, "d", 0o755, 0))) == Errno.EEXIST
    sub, _ = client.walk("sub")
    assert err(client.call(Tunlinkat(client.root, "sub", AT_REMOVEDIR))) == Errno.ENOTEMPTY
    assert err(client.call(Tunlinkat(client.root, "sub", 0))) == Errno.EISDIR
    assert err(client.call(Tunlinkat(client.root, "hello.txt", AT_REMOVEDIR))) == Errno.ENOTDIR
    assert err(client.call(Tunlinkat(client.root, "hello.txt", 1))) == Errno.EINVAL
    assert err(client.call(Tunlinkat(client.root, "nope", 0))) == Errno.ENOENT
    f, _ = client.walk("hello.txt")
    assert client.call(Trenameat(client.root, "hello.txt", sub, "moved.txt")) == Rrenameat()
    assert (share / "sub" / "moved.txt").read_bytes() == b"hello, world\n"
    assert isinstance(client.call(Tlopen(f, OpenFlag.RDONLY)), Rlopen)  # the fid followed it
    assert client.read_all(f) == b"hello, world\n"
    assert client.call(Tunlinkat(sub, "moved.txt", 0)) == Runlinkat()
    assert client.read_all(f) == b"hello, world\n"  # open files outlive their name, as on Linux
    assert client.call(Tunlinkat(client.root, "d", AT_REMOVEDIR)) == Runlinkat()
    assert sorted(os.listdir(share)) == ["sub"]
    assert err(client.call(Trenameat(client.root, "nope", client.root, "x"))) == Errno.ENOENT
    assert err(client.call(Tmkdir(f, "x", 0o755, 0))) == Errno.ENOTDIR


def test_fid_limit(share):
    with ShareServer(share, max_fids=3, strict=True) as s:
        c = Client(s)
        c.walk()
        c.walk()
        _, r = c.walk()
        assert err(r) == Errno.EMFILE
        assert s.fids == 3


def test_clunk_releases_every_fd(share):
    before = _open_fds()
    with ShareServer(share, strict=True) as s:
        c = Client(s)
        fids = [c.open("hello.txt"), c.open("sub"), c.walk("sub", "deep.txt")[0]]
        dfid, _ = c.walk()
        c.call(Tlcreate(dfid, "n", OpenFlag.RDWR, 0o644, 0))
        assert _open_fds() > before
        for f in [*fids, dfid]:
            assert c.clunk(f) == Rclunk()
        assert err(c.clunk(fids[0])) == Errno.EBADF
        assert s.fids == 1
    assert _open_fds() == before

