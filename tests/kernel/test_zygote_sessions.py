"""One zygote process per host process, shared by sessions: kernels booted in separate trio runs
attach to the same zygote, sessions spawn independently, a closing session takes only its own
workers with it, and preload patterns and failures behave.

Spawning needs the layers test_confine.py proves; where the probe finds one missing, the tests
that spawn skip with the probe's line.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
from pathlib import Path

import pytest
import trio

from merriwig.confine import client, wire
from merriwig.confine.client import Worker, Zygote, ZygoteError, open_zygote
from merriwig.confine.mechanism import Limits
from merriwig.confine.worker import READY, Exit

HERE = Path(__file__).parent
PATH = [str(HERE), *sys.path]
PRELOAD = ["test_zygote_sessions"]
LIMITS = Limits(memory_bytes=64 << 20)


def echo(channel: socket.socket) -> None:
    """Worker entry: say who it is, then echo each message until the channel closes."""
    channel.send(json.dumps({"pid": os.getpid()}).encode())
    while data := channel.recv(4096):
        channel.send(data)


def loaded(channel: socket.socket) -> None:
    """Worker entry: which modules under the name it is sent were in the zygote before the fork."""
    prefix = channel.recv(4096).decode()
    channel.send(json.dumps(sorted(m for m in sys.modules if m == prefix or m.startswith(prefix + "."))).encode())


def skip_unless_confinable(zygote: Zygote) -> None:
    if not zygote.probe.ok:
        pytest.skip(zygote.probe.line())


async def echoing(zygote: Zygote) -> Worker:
    worker = await zygote.spawn("test_zygote_sessions:echo", LIMITS)
    assert json.loads(await worker.channel.recv(64)) == {"pid": worker.pid}
    return worker


async def answers(worker: Worker, text: bytes = b"ping") -> bool:
    await worker.channel.send(text)
    return await worker.channel.recv(64) == text


def exited(pidfd: int, within: float = 0) -> bool:
    """A pidfd polls readable once its process has exited (``within``: a bound, not a sleep)."""
    return bool(select.select([pidfd], [], [], within)[0])


def test_sequential_trio_runs_share_one_zygote():
    async def boot() -> int:
        async with open_zygote(preload=PRELOAD, import_path=PATH) as zygote:
            skip_unless_confinable(zygote)
            worker = await echoing(zygote)
            assert await answers(worker)
            worker.channel.close()  # the echo loop ends
            assert await worker.wait() == Exit.DONE
            return zygote.pid

    first = trio.run(boot)
    second = trio.run(boot)
    assert first == second
    os.kill(first, 0)  # still there between runs


async def test_concurrent_sessions_spawn_independently():
    async with open_zygote(preload=PRELOAD, import_path=PATH) as a, open_zygote(preload=PRELOAD, import_path=PATH) as b:
        skip_unless_confinable(a)
        assert a.pid == b.pid
        spawned: dict[str, list[Worker]] = {"a": [], "b": []}

        async def spawn_some(name: str, zygote: Zygote) -> None:
            for _ in range(4):
                spawned[name].append(await echoing(zygote))
            with pytest.raises(ZygoteError, match="ModuleNotFoundError"):  # an error goes to its asker only
                await zygote.spawn("no_such_module_here:f", LIMITS)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(spawn_some, "a", a)
            nursery.start_soon(spawn_some, "b", b)
        assert len({w.pid for w in spawned["a"] + spawned["b"]}) == 8
        for name, workers in spawned.items():
            for worker in workers:
                assert await answers(worker, name.encode())
        # each exit is reported to the session that spawned it (the other does not know the pid)
        for worker in spawned["a"][:2] + spawned["b"][:2]:
            worker.kill()
            assert await worker.wait() == -signal.SIGKILL
        for worker in spawned["a"][2:] + spawned["b"][2:]:
            assert await answers(worker)


async def test_closing_a_session_kills_only_its_workers():
    async with open_zygote(preload=PRELOAD, import_path=PATH) as b:
        skip_unless_confinable(b)
        survivor = await echoing(b)
        async with open_zygote(preload=PRELOAD, import_path=PATH) as a:
            doomed = [await echoing(a) for _ in range(3)]
            pidfds = [os.pidfd_open(w.pid) for w in doomed]
        try:
            for worker, pidfd in zip(doomed, pidfds, strict=True):
                assert await worker.wait() == -signal.SIGKILL  # reported by the zygote as it reaped them
                assert exited(pidfd)
                assert await worker.channel.recv(64) == b""
        finally:
            for pidfd in pidfds:
                os.close(pidfd)
        assert await answers(survivor)
        assert survivor.returncode is None
        async with open_zygote(preload=PRELOAD, import_path=PATH) as c:  # the zygote serves on
            assert c.pid == b.pid
            assert await answers(await echoing(c))


def raw_session() -> socket.socket:
    """A session socket straight from the master, as a kernel whose trio run dies would leave it."""
    sock, _ = client._attach((tuple(PRELOAD), tuple(PATH)), None)
    sock.settimeout(30)  # a bound on a broken test, not a wait: every recv below has its answer coming
    return sock


def spawn_request(sock: socket.socket) -> socket.socket:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.settimeout(30)
    wire.send(sock, {"entry": "test_zygote_sessions:echo", "limits": vars(LIMITS)}, [theirs.fileno()])
    theirs.close()
    return ours


def read_to_eof(channel: socket.socket) -> list[bytes]:
    messages = []
    while data := channel.recv(4096):
        messages.append(data)
    return messages


async def test_a_session_closed_outright_or_mid_spawn_loses_its_workers():
    async with open_zygote(preload=PRELOAD, import_path=PATH) as zygote:
        skip_unless_confinable(zygote)
        survivor = await echoing(zygote)

        # closed outright with a worker running: no hang-up, no reading of the exit report
        sock = raw_session()
        hello, _ = wire.recv(sock)
        assert hello["pid"] == zygote.pid and hello["probe"] == zygote.probe.to_json()
        channel = spawn_request(sock)
        reply, fds = wire.recv(sock)
        (pidfd,) = fds
        try:
            assert channel.recv(4096).startswith(READY)
            assert json.loads(channel.recv(4096)) == {"pid": reply["pid"]}
            assert not exited(pidfd)
            sock.close()
            assert read_to_eof(channel) == []  # its death (its fds close just before it is a zombie)
            assert exited(pidfd, within=30)
        finally:
            os.close(pidfd)
            channel.close()

        # closed with the spawn request unanswered: the zygote forks, cannot reply, kills the worker
        sock = raw_session()
        wire.recv(sock)
        channel = spawn_request(sock)
        sock.close()
        try:
            assert len(read_to_eof(channel)) <= 2
        finally:
            channel.close()

        assert await answers(survivor)
        assert await answers(await echoing(zygote))  # and the zygote is still serving


async def test_malformed_requests_get_errors_and_the_zygote_serves_on():
    async with open_zygote(preload=PRELOAD, import_path=PATH) as zygote:
        sock = raw_session()
        wire.recv(sock)
        sock.send(b"not json")
        assert wire.recv(sock)[0]["error"].startswith("bad request: ")
        wire.send(sock, {"entry": "test_zygote_sessions:echo", "limits": vars(LIMITS)})  # no channel fd
        assert wire.recv(sock)[0] == {"error": "ValueError: a spawn request carries one channel fd, not 0"}
        master = client._zygotes[(tuple(PRELOAD), tuple(PATH))].master
        wire.send(master, {"attach": True})  # no socket: ignored
        with open(os.devnull) as f:
            wire.send(master, {"attach": True}, [f.fileno()])  # not a socket: ignored
        sock.close()
        async with open_zygote(preload=PRELOAD, import_path=PATH) as again:
            assert again.pid == zygote.pid


async def test_a_killed_zygote_is_replaced_at_the_next_open():
    async with open_zygote(preload=PRELOAD, import_path=PATH) as zygote:
        skip_unless_confinable(zygote)
        old = zygote.pid
        worker = await echoing(zygote)
        os.kill(old, signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
    async with open_zygote(preload=PRELOAD, import_path=PATH) as zygote:
        assert zygote.pid != old
        assert await answers(await echoing(zygote))


def make_package(root: Path, bad: str | None = None) -> None:
    """pkg with a module, a subpackage and a module in that; ``bad`` names a module that raises."""
    for name in ("pkg/__init__.py", "pkg/alpha.py", "pkg/sub/__init__.py", "pkg/sub/beta.py"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("")
    if bad:
        (root / "pkg" / f"{bad}.py").write_text("raise RuntimeError('broken on purpose')\n")


async def test_star_preloads_every_submodule(tmp_path):
    make_package(tmp_path)
    async with open_zygote(preload=["pkg.*", "test_zygote_sessions"], import_path=[str(tmp_path), *PATH]) as zygote:
        skip_unless_confinable(zygote)
        worker = await zygote.spawn("test_zygote_sessions:loaded", LIMITS)
        await worker.channel.send(b"pkg")
        assert json.loads(await worker.channel.recv(4096)) == ["pkg", "pkg.alpha", "pkg.sub", "pkg.sub.beta"]
        assert await worker.wait() == Exit.DONE


async def test_a_bad_preload_is_a_zygote_error_naming_it(tmp_path):
    with pytest.raises(ZygoteError, match=r"preload no_such_module_xyz: ModuleNotFoundError"):
        async with open_zygote(preload=["no_such_module_xyz"], import_path=PATH):
            pass
    make_package(tmp_path, bad="gamma")
    with pytest.raises(ZygoteError, match=r"preload pkg\.gamma: RuntimeError: broken on purpose"):
        async with open_zygote(preload=["pkg.*"], import_path=[str(tmp_path), *PATH]):
            pass
    with pytest.raises(ZygoteError, match=r"preload json\.decoder\.\*: .* not a package"):
        async with open_zygote(preload=["json.decoder.*"], import_path=PATH):
            pass
