"""The share never lets the guest out of its folder: the attack corpus.

Every test builds a share next to an `outside` directory holding a secret, attacks, and checks
two things: the 9P answers (errors, or objects that are inside), and the host (the secret
untouched, nothing created outside). Races the tests cannot win on purpose are staged by doing
the host's half between two requests, which is the window a real racer would aim for.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import tempfile

import pytest

from machine.share import ShareServer
from proto.ninep import (
    AT_REMOVEDIR,
    Errno,
    GetattrMask,
    OpenFlag,
    QidType,
    Rgetattr,
    Rlcreate,
    Rlerror,
    Rlopen,
    Rwalk,
    SetattrMask,
    Tgetattr,
    Tlcreate,
    Tlopen,
    Tmkdir,
    Tread,
    Treaddir,
    Trenameat,
    Tsetattr,
    Tunlinkat,
    Twrite,
    attach,
)
from tests.support.ninep import Client, err

SECRET = b"the host's secret\n"


@pytest.fixture
def world(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(SECRET)
    share = tmp_path / "share"
    share.mkdir()
    (share / "a").mkdir()
    (share / "a" / "b").mkdir()
    (share / "file").write_bytes(b"inside")
    (share / "to_etc").symlink_to("/etc")
    (share / "to_passwd").symlink_to("/etc/passwd")
    (share / "up").symlink_to("../outside")
    (share / "a" / "upup").symlink_to("../../outside/secret")
    (share / "dangling").symlink_to(str(outside / "created_by_guest"))
    return share, outside


@pytest.fixture
def client(world):
    with ShareServer(world[0], strict=True) as server:
        yield Client(server)


def _inodes(root) -> set[int]:
    out = {os.lstat(root).st_ino}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            out.add(os.lstat(os.path.join(dirpath, n)).st_ino)
    return out


def _host_unchanged(outside) -> None:
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_bytes() == SECRET


def test_dotdot_in_every_position_stays_inside(client, world):
    share, outside = world
    inside = _inodes(share)
    parts = ["..", ".", "a", "b", "up", "outside"]
    for n in range(1, 5):
        for names in itertools.product(parts, repeat=n):
            fid, r = client.walk(*names)
            if isinstance(r, Rlerror):
                continue
            assert isinstance(r, Rwalk)
            assert all(q.path in inside for q in r.wqids), names
            if len(r.wqids) == len(names):
                g = client.call(Tgetattr(fid, GetattrMask.BASIC))
                assert isinstance(g, Rgetattr) and g.qid.path in inside, names
                client.clunk(fid)
    root_ino = os.stat(share).st_ino
    fid, r = client.walk("..", "..", "..")
    assert [q.path for q in r.wqids] == [root_ino] * 3  # '..' from the root is the root
    _, r = client.walk("a", "..", "..", "outside")
    assert len(r.wqids) == 3  # stopped: there is no "outside" in the share
    _host_unchanged(outside)


def test_walks_that_stop_part_way_hold_no_host_descriptors(client, world):
    """A walk that stops at a later name makes no fid (9P): the directories it passed must not
    stay open on the host, or a guest walking ``a/nothing`` in a loop runs the host out of file
    descriptors (it did: 1500 left open by the test above, until select() failed elsewhere)."""
    fds = len(os.listdir("/proc/self/fd"))
    for _ in range(200):
        _, r = client.walk("a", "b", "nothing")
        assert isinstance(r, Rwalk) and len(r.wqids) == 2
    assert len(os.listdir("/proc/self/fd")) <= fds


BAD_NAMES = ["a/b", "/etc", "../..", "a/../..", "..\0", "a\0b", "", "/", "a/", "\0"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_with_slashes_nul_or_empty_are_refused_everywhere(client, world, name):
    share, outside = world
    before = sorted(os.listdir(share))
    _, r = client.walk(name)
    assert err(r) == Errno.ENOENT
    _, r = client.walk("a", name)
    assert r == Rwalk(r.wqids) and len(r.wqids) == 1
    d, _ = client.walk()
    assert err(client.call(Tlcreate(d, name, OpenFlag.RDWR, 0o644, 0))) == Errno.ENOENT
    assert err(client.call(Tmkdir(client.root, name, 0o755, 0))) == Errno.ENOENT
    assert err(client.call(Tunlinkat(client.root, name, 0))) == Errno.ENOENT
    assert err(client.call(Trenameat(client.root, "file", client.root, name))) == Errno.ENOENT
    assert err(client.call(Trenameat(client.root, name, client.root, "x"))) == Errno.ENOENT
    assert sorted(os.listdir(share)) == before
    _host_unchanged(outside)


def test_dot_names_get_the_errnos_linux_gives(client):
    d, _ = client.walk()
    assert err(client.call(Tlcreate(d, "..", OpenFlag.RDWR, 0o644, 0))) == Errno.EEXIST
    assert err(client.call(Tmkdir(client.root, ".", 0o755, 0))) == Errno.EEXIST
    assert err(client.call(Tunlinkat(client.root, ".", AT_REMOVEDIR))) == Errno.EINVAL
    assert err(client.call(Tunlinkat(client.root, "..", AT_REMOVEDIR))) == Errno.ENOTEMPTY
    assert err(client.call(Trenameat(client.root, "..", client.root, "x"))) == Errno.EISDIR
    assert err(client.call(Trenameat(client.root, "file", client.root, "."))) == Errno.EISDIR


@pytest.mark.parametrize("link", ["to_etc", "to_passwd", "up", "dangling"])
def test_symlinks_are_objects_never_doors(client, world, link):
    share, outside = world
    fid, r = client.walk(link)
    assert r.wqids[0].type == QidType.SYMLINK
    assert r.wqids[0].path == os.lstat(share / link).st_ino
    g = client.call(Tgetattr(fid, GetattrMask.BASIC))
    assert g.mode == os.lstat(share / link).st_mode  # the link's own attributes (lstat)
    for flags in (OpenFlag.RDONLY, OpenFlag.RDWR, OpenFlag.DIRECTORY):
        assert err(client.call(Tlopen(fid, flags))) == Errno.ELOOP
    _, r = client.walk(link, "passwd")
    assert len(r.wqids) == 1  # never walked through
    _, r = client.walk(link, "secret")
    assert len(r.wqids) == 1
    assert err(client.call(Tsetattr(fid, SetattrMask.MODE, 0o777, 0, 0, 0, 0, 0, 0, 0))) == Errno.EOPNOTSUPP
    assert err(client.call(Tsetattr(fid, SetattrMask.SIZE, 0, 0, 0, 0, 0, 0, 0, 0))) == Errno.EOPNOTSUPP
    _, r = client.walk("a", "upup")
    assert r.wqids[-1].type == QidType.SYMLINK
    _host_unchanged(outside)
    assert os.stat("/etc/passwd").st_size > 0


def test_creating_through_a_symlink_creates_nothing_outside(client, world):
    share, outside = world
    for link in ("dangling", "to_passwd"):
        d, _ = client.walk()
        r = client.call(Tlcreate(d, link, OpenFlag.RDWR | OpenFlag.TRUNC, 0o644, 0))
        assert err(r) in (Errno.ELOOP, Errno.EEXIST)
    d, _ = client.walk()
    r = client.call(Tlcreate(d, "dangling", OpenFlag.RDWR | OpenFlag.EXCL, 0o644, 0))
    assert err(r) == Errno.EEXIST
    assert err(client.call(Tmkdir(client.root, "dangling", 0o755, 0))) == Errno.EEXIST
    upfid, _ = client.walk("up")
    assert err(client.call(Tmkdir(upfid, "x", 0o755, 0))) == Errno.ENOTDIR
    assert err(client.call(Tunlinkat(upfid, "secret", 0))) == Errno.ENOTDIR
    assert err(client.call(Trenameat(upfid, "secret", client.root, "stolen"))) == Errno.ENOTDIR
    # unlinking or renaming a link acts on the link, not its target
    assert client.call(Tunlinkat(client.root, "up", 0)).TYPE == 77
    assert client.call(Trenameat(client.root, "to_passwd", client.root, "renamed")).TYPE == 75
    assert os.path.islink(share / "renamed") and not os.path.exists(share / "up")
    _host_unchanged(outside)


def test_symlink_swapped_in_between_walk_and_open(client, world):
    share, outside = world
    fid, r = client.walk("file")
    assert r.wqids[0].type == QidType.FILE
    os.rename(share / "file", share / "file.old")  # the host (or a racer) swaps the name
    os.symlink(outside / "secret", share / "file")
    assert err(client.call(Tlopen(fid, OpenFlag.RDONLY))) == Errno.ELOOP  # O_NOFOLLOW
    os.unlink(share / "file")
    shutil.copy(outside / "secret", share / "file")  # a different file by the same name
    assert err(client.call(Tlopen(fid, OpenFlag.RDONLY))) == Errno.ESTALE  # not the walked inode
    os.unlink(share / "file")
    os.mkfifo(share / "file")  # a FIFO would block an open(2) forever without O_NONBLOCK
    assert err(client.call(Tlopen(fid, OpenFlag.RDONLY))) == Errno.ESTALE
    fifo, r = client.walk("file")
    assert err(client.call(Tlopen(fifo, OpenFlag.RDONLY))) == Errno.EOPNOTSUPP
    _host_unchanged(outside)


def test_directory_moved_outside_while_held(client, world):
    share, outside = world
    a, _ = client.walk("a")
    b, _ = client.walk("a", "b")
    opened = client.open("a")
    os.rename(share / "a", outside / "a")  # the host moves it out of the share
    os.symlink(outside, share / "a")  # and leaves a symlink behind in its place
    _, r = client.walk("b", fid=a)
    assert err(r) == Errno.ENOENT
    _, r = client.walk("..", fid=b)
    assert err(r) == Errno.ENOENT
    assert err(client.call(Tlopen(a, OpenFlag.RDONLY))) == Errno.ENOENT
    assert err(client.call(Treaddir(opened, 0, 8192))) == Errno.ENOENT
    assert err(client.call(Tmkdir(a, "planted", 0o755, 0))) == Errno.ENOENT
    assert err(client.call(Tlcreate(a, "planted", OpenFlag.RDWR, 0o644, 0))) == Errno.ENOENT
    assert err(client.call(Tunlinkat(a, "upup", 0))) == Errno.ENOENT
    assert err(client.call(Tsetattr(a, SetattrMask.MODE, 0o777, 0, 0, 0, 0, 0, 0, 0))) == Errno.ENOENT
    assert sorted(os.listdir(outside / "a")) == ["b", "upup"]
    _, r = client.walk("a", "secret")
    assert len(r.wqids) == 1 and r.wqids[0].type == QidType.SYMLINK


def test_open_file_moved_outside_stays_only_that_file(client, world):
    """A file already open when the host moves it keeps its descriptor (as on any Linux
    filesystem: the guest reads what it had opened); nothing around it becomes reachable."""
    share, outside = world
    (share / "a" / "f").write_bytes(b"mine")
    dfid = client.open("a")
    opened = client.open("a", "f")
    walked, _ = client.walk("a", "f")
    os.rename(share / "a", outside / "a")
    assert client.call(Tread(opened, 0, 10)).data == b"mine"
    assert err(client.call(Tlopen(walked, OpenFlag.RDONLY))) == Errno.ENOENT  # parent is outside
    _, r = client.walk("..", fid=dfid)
    assert err(r) == Errno.ENOENT
    _, r = client.walk("upup", fid=dfid)
    assert err(r) == Errno.ENOENT


def test_readonly_refuses_every_change(world):
    share, outside = world
    before = {p: os.lstat(os.path.join(share, p)).st_mtime_ns for p in os.listdir(share)}
    with ShareServer(share, readonly=True, strict=True) as s:
        c = Client(s)
        assert c.read_all(c.open("file")) == b"inside"
        assert c.listdir() == sorted(os.listdir(share))
        for flags in (OpenFlag.WRONLY, OpenFlag.RDWR, OpenFlag.RDONLY | OpenFlag.TRUNC,
                      OpenFlag.RDONLY | OpenFlag.APPEND):
            fid, _ = c.walk("file")
            assert err(c.call(Tlopen(fid, flags))) == Errno.EROFS
        d, _ = c.walk()
        assert err(c.call(Tlcreate(d, "new", OpenFlag.RDWR, 0o644, 0))) == Errno.EROFS
        assert err(c.call(Tlcreate(d, "new", OpenFlag.RDONLY, 0o644, 0))) == Errno.EROFS
        assert err(c.call(Tmkdir(c.root, "new", 0o755, 0))) == Errno.EROFS
        assert err(c.call(Tunlinkat(c.root, "file", 0))) == Errno.EROFS
        assert err(c.call(Tunlinkat(c.root, "a", AT_REMOVEDIR))) == Errno.EROFS
        assert err(c.call(Trenameat(c.root, "file", c.root, "f2"))) == Errno.EROFS
        fid, _ = c.walk("file")
        for valid in (SetattrMask.MODE, SetattrMask.SIZE, SetattrMask.MTIME, SetattrMask.ATIME):
            assert err(c.call(Tsetattr(fid, valid, 0o777, 0, 0, 0, 0, 0, 0, 0))) == Errno.EROFS
        ro = c.open("file")
        assert err(c.call(Twrite(ro, 0, b"x"))) == Errno.EROFS
    assert {p: os.lstat(os.path.join(share, p)).st_mtime_ns for p in os.listdir(share)} == before
    assert (share / "file").read_bytes() == b"inside"


def test_share_vanishing_mid_use_gives_errors(world):
    share, outside = world
    with ShareServer(share, strict=True) as s:
        c = Client(s)
        f = c.open("file", flags=OpenFlag.RDWR)
        d = c.open("a")
        held, _ = c.walk("a", "b")
        shutil.rmtree(share)
        for msg in (Tread(f, 0, 10), Twrite(f, 0, b"x"), Treaddir(d, 0, 8192), Tgetattr(held, 0x7FF)):
            c.call(msg)  # an open file lives on as on Linux; what matters: an answer, no crash
        _, r = c.walk("a")
        assert err(r) == Errno.ENOENT
        _, r = c.walk("x", fid=held)
        assert err(r) == Errno.ENOENT
        assert err(c.call(Tmkdir(c.root, "x", 0o755, 0))) == Errno.ENOENT
        dfid, _ = c.walk()
        assert err(c.call(Tlcreate(dfid, "x", OpenFlag.RDWR, 0o644, 0))) == Errno.ENOENT
        assert err(c.call(_attach(c))) == Errno.ENOENT  # attach again: the folder is gone
        assert not share.exists()


def test_share_replaced_mid_use(world):
    share, outside = world
    with ShareServer(share, strict=True) as s:
        c = Client(s)
        old_a, _ = c.walk("a")
        os.rename(share, share.parent / "moved_away")
        share.mkdir()
        (share / "fresh").write_bytes(b"new tree")
        r = c.call(_attach(c))
        assert r.qid.path == os.stat(share).st_ino  # a new attach sees the new folder
        _, r = c.walk("b", fid=old_a)
        assert err(r) == Errno.ENOENT  # the old tree is not under the share any more
        assert err(c.call(Tmkdir(old_a, "x", 0o755, 0))) == Errno.ENOENT
        c2 = Client(s)
        assert c2.listdir() == ["fresh"]
    assert sorted(os.listdir(share.parent / "moved_away" / "a")) == ["b", "upup"]


def _attach(c: Client):
    return attach(c.fresh())


def test_lcreate_result_is_checked(client, world):
    share, _ = world
    d, _ = client.walk("a")
    r = client.call(Tlcreate(d, "n", OpenFlag.RDWR, 0o600, 0))
    assert isinstance(r, Rlcreate) and r.qid.path == os.stat(share / "a" / "n").st_ino
    assert isinstance(client.call(Tlopen(client.walk("a", "n")[0], OpenFlag.RDONLY)), Rlopen)



def _unreadable_checks(share) -> None:
    with ShareServer(share, strict=True) as s:
        c = Client(s)
        fid, _ = c.walk("private")
        assert err(c.call(Tlopen(fid, OpenFlag.RDONLY))) == Errno.EACCES
        closed, r = c.walk("closed")
        _, r = c.walk("inner", fid=closed)
        assert err(r) == Errno.EACCES  # a directory the host user cannot search
        assert err(c.call(Tlopen(closed, OpenFlag.RDONLY))) == Errno.EACCES
        assert err(c.call(Tunlinkat(c.root, "private", 0))) in (Errno.EACCES, Errno.EPERM)


def test_files_the_host_user_cannot_read_stay_unreadable():
    """The share gives the guest the host user's rights, no more: a file that user cannot read
    answers EACCES. As root (who reads everything) the checks run in a forked child that has
    become `nobody` (in a /tmp folder of its own: pytest's tmp_path is not reachable by nobody)."""
    top = tempfile.mkdtemp(prefix="ninep-perm-")
    try:
        _check_unreadable(pathlib.Path(top))
    finally:
        shutil.rmtree(top)


def _check_unreadable(top: pathlib.Path) -> None:
    share = top / "share"
    share.mkdir()
    (share / "private").write_bytes(SECRET)
    os.chmod(share / "private", 0o600)
    (share / "closed").mkdir()
    (share / "closed" / "inner").write_bytes(b"x")
    os.chmod(share / "closed", 0o700)
    if os.geteuid() != 0:
        _unreadable_checks(share)
        return
    for p in (top, share):
        os.chmod(p, 0o755)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            _unreadable_checks(share)
            code = 0
        except BaseException:
            import traceback
            traceback.print_exc()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
