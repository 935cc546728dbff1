"""Random operation sequences through 9P against a real folder: after every step the guest's
view (Treaddir, Tread) and the host's (os.listdir, open) agree, and each operation succeeded or
failed exactly when the same operation on the host would have."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from machine.share import ShareServer
from proto.ninep import (
    AT_REMOVEDIR,
    OpenFlag,
    Rlcreate,
    Rlerror,
    Rmkdir,
    Rread,
    Rrenameat,
    Runlinkat,
    Rwrite,
    Tclunk,
    Tlcreate,
    Tmkdir,
    Tread,
    Trenameat,
    Tunlinkat,
    Twrite,
)
from tests.support.ninep import Client

NAMES = ["a", "b", "c"]
DIRS = ["", "d"]  # the root, and one subdirectory (created on demand like any name)

path_st = st.tuples(st.sampled_from(DIRS), st.sampled_from(NAMES))
op_st = st.one_of(
    st.tuples(st.just("create"), path_st, st.binary(max_size=40)),
    st.tuples(st.just("write"), path_st, st.integers(0, 64), st.binary(min_size=1, max_size=20)),
    st.tuples(st.just("read"), path_st),
    st.tuples(st.just("mkdir"), st.just(("", "d"))),
    st.tuples(st.just("mkdir"), path_st),
    st.tuples(st.just("rename"), path_st, path_st),
    st.tuples(st.just("unlink"), path_st),
    st.tuples(st.just("rmdir"), st.sampled_from([("", "d"), *[("", n) for n in NAMES]])),
)


def _host(root: str, d: str, name: str = "") -> str:
    return os.path.join(root, d, name) if name else os.path.join(root, d)


def _dirfid(c: Client, d: str) -> int | None:
    fid, r = c.walk(*([d] if d else []))
    if isinstance(r, Rlerror) or len(r.wqids) != (1 if d else 0):
        return None
    return fid


def _host_ok(fn) -> bool:
    try:
        fn()
    except OSError:
        return False
    return True


def _step(c: Client, root: str, op: tuple) -> None:
    kind = op[0]
    if kind == "create":
        (d, name), data = op[1], op[2]
        host_ok = os.path.isdir(_host(root, d)) and not os.path.isdir(_host(root, d, name))
        fid = _dirfid(c, d)
        if fid is None:
            assert not host_ok
            return
        r = c.call(Tlcreate(fid, name, OpenFlag.RDWR | OpenFlag.TRUNC, 0o644, 0))
        assert isinstance(r, Rlcreate) == host_ok, (op, r)
        if host_ok:
            assert c.call(Twrite(fid, 0, data)) == Rwrite(len(data))
        c.call(Tclunk(fid))
    elif kind == "write":
        (d, name), offset, data = op[1], op[2], op[3]
        host_ok = os.path.isfile(_host(root, d, name))
        fid = c.open(*([d] if d else []), name, flags=OpenFlag.RDWR)
        assert isinstance(fid, int) == host_ok, (op, fid)
        if host_ok:
            assert c.call(Twrite(fid, offset, data)) == Rwrite(len(data))
            c.call(Tclunk(fid))
    elif kind == "read":
        d, name = op[1]
        fid = c.open(*([d] if d else []), name)
        assert isinstance(fid, int) == os.path.exists(_host(root, d, name)), (op, fid)
        if os.path.isfile(_host(root, d, name)):
            with open(_host(root, d, name), "rb") as f:
                assert c.read_all(fid, chunk=7) == f.read()
        if isinstance(fid, int):
            c.call(Tclunk(fid))
    elif kind == "mkdir":
        d, name = op[1]
        host_dir = _host(root, d)
        host_ok = os.path.isdir(host_dir) and not os.path.lexists(_host(root, d, name))
        fid = _dirfid(c, d)
        if fid is None:
            assert not host_ok
            return
        r = c.call(Tmkdir(fid, name, 0o755, 0))
        assert isinstance(r, Rmkdir) == host_ok, (op, r)
        c.call(Tclunk(fid))
    elif kind == "rename":
        (d1, n1), (d2, n2) = op[1], op[2]
        f1, f2 = _dirfid(c, d1), _dirfid(c, d2)
        if f1 is None or f2 is None:
            for f in (f1, f2):
                if f is not None:
                    c.call(Tclunk(f))
            return
        expect = _would_rename(_host(root, d1, n1), _host(root, d2, n2))
        r = c.call(Trenameat(f1, n1, f2, n2))
        assert isinstance(r, Rrenameat) == expect, (op, r)
        c.call(Tclunk(f1))
        c.call(Tclunk(f2))
    elif kind in ("unlink", "rmdir"):
        d, name = op[1]
        p = _host(root, d, name)
        if kind == "unlink":
            expect = os.path.lexists(p) and not os.path.isdir(p)
        else:
            expect = os.path.isdir(p) and not os.listdir(p)
        fid = _dirfid(c, d)
        if fid is None:
            return
        r = c.call(Tunlinkat(fid, name, AT_REMOVEDIR if kind == "rmdir" else 0))
        assert isinstance(r, Runlinkat) == expect, (op, r)
        c.call(Tclunk(fid))


def _would_rename(src: str, dst: str) -> bool:
    """POSIX rename's rules for the cases this model can reach."""
    if not os.path.lexists(src):
        return False
    if os.path.isdir(src):
        if os.path.realpath(dst).startswith(os.path.realpath(src) + os.sep):
            return False  # into itself
        return not os.path.lexists(dst) or (os.path.isdir(dst) and not os.listdir(dst)) or src == dst
    return not os.path.isdir(dst)


def _agree(c: Client, root: str) -> None:
    for d in DIRS:
        host = _host(root, d)
        if not os.path.isdir(host):
            continue
        assert c.listdir(*([d] if d else []), count=64) == sorted(os.listdir(host))
        for name in os.listdir(host):
            if os.path.isfile(os.path.join(host, name)):
                fid = c.open(*([d] if d else []), name)
                r = c.call(Tread(fid, 0, 4096))
                with open(os.path.join(host, name), "rb") as f:
                    assert r == Rread(f.read())
                c.call(Tclunk(fid))


@settings(max_examples=120, deadline=None)
@given(st.lists(op_st, max_size=25))
def test_random_operations_agree_with_the_host(ops):
    with tempfile.TemporaryDirectory() as root, ShareServer(root, strict=True) as server:
        c = Client(server)
        for op in ops:
            _step(c, root, op)
            _agree(c, root)
        assert server.fids == 1  # every fid the sequence made was clunked
