"""Network faults through the whole OS, against a real Linux peer in a private namespace.

* A bad wire (machine.netdev.impair, seeded): 1 MiB each way, byte-exact, under
  ``loss=10,reorder=5,dup=5,corrupt=2``.
* The peer vanishes mid-transfer. Killed (SIGKILL) while the guest downloads: Linux resets the
  connection (the peer had unread bytes from us), and the guest's read fails with RESET. Its
  address deleted while the guest uploads: nothing answers any more, the guest retransmits until
  its limit and the write fails with TIMEDOUT. Either way the session's resources are given back:
  the stack forgets the connection and the tcp process' thread and handle counts return to what
  they were before it.
* No DHCP server: the stack says so on its console and takes the ``--fallback`` address, on
  which a ping from the namespace and a TCP connection from the guest work.

The stack's retransmission limits default to proto/tcp's (RTO up to 60 s, 8 retries: about
100 s before "timed out"), too long for a test: the timeout test starts the stack with
``--rto-max 1 --retries 4``. The 1 MiB test caps the RTO at 2 s the same way (``--rto-max 2``):
at 10 % loss a backed-off RTO is seldom brought down again (Karn's rule keeps it until a sample
from a segment sent only once). Measured on the 2-core box, three runs each: before SACK,
limited transmit and early retransmit the upload took 22-34 s and the download 10-75 s; now
8-13 s and 1.1-1.8 s.

Root only (namespaces, taps); skipped only when /dev/net/tun or `ip netns` is missing.
"""

from __future__ import annotations

import hashlib
import json
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from euralios.boot import System, boot
from euralios.pytest_plugin import Netns, netns_unavailable
from euralios.std import SyscallError, abi

GUEST, HOST = "10.0.2.15", "10.0.2.2"
GUEST_MAC = "52:54:00:12:34:56"
STATIC = ["--static", f"{GUEST}/24,gw={HOST},dns={HOST}"]
MIB = 1 << 20
IMPAIRMENT = "loss=10,reorder=5,dup=5,corrupt=2,seed={seed}"
SHORT_TCP = ["--rto-max", "1", "--retries", "4"]  # ~3 s of retransmissions before "timed out"
CAPPED_TCP = ["--rto-max", "2"]  # the default 8 retries, but no back-off past 2 s (see the 1 MiB test)

_why = netns_unavailable()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"network fault tests: {_why}")

# The Linux peer, a separate process so that it can be killed like any other program.
#   source N SEED: read one line, send N bytes of random.Random(SEED), close
#   sink: read a length line and that many bytes, answer "<length> <sha256>\n", close
#   stream: read 3 bytes, then send for ever and never read again
PEER = r'''
import hashlib, random, socket, sys
mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen(4)
print("serving", flush=True)
conn, _ = srv.accept()
if mode == "source":
    n, seed = int(sys.argv[4]), int(sys.argv[5])
    f = conn.makefile("rb")
    f.readline()
    conn.sendall(random.Random(seed).randbytes(n))
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)
elif mode == "sink":
    f = conn.makefile("rb")
    want = int(f.readline())
    h, n = hashlib.sha256(), 0
    while n < want and (data := f.read1(min(65536, want - n))):
        h.update(data)
        n += len(data)
    conn.sendall(f"{n} {h.hexdigest()}\n".encode())
    conn.shutdown(socket.SHUT_WR)
    conn.recv(1)
else:
    conn.recv(3)  # b"go\n" only: what follows stays unread in the kernel, so dying resets
    block = bytes(range(256)) * 64
    while True:
        conn.sendall(block)
'''


# ------------------------------------------------------------------------------------ helpers

class Peer:
    """One run of PEER inside the namespace."""

    def __init__(self, ns: Netns, *args: str, port: int = 7000) -> None:
        self.proc = ns.popen([sys.executable, "-c", PEER, args[0], HOST, str(port), *args[1:]],
                             stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("serving"), line + (self.proc.stderr.read() if self.proc.stderr else "")

    async def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        await self.finished()

    async def finished(self) -> None:
        """Wait for it to exit -- in a thread: blocking the event loop would stop the guest too."""
        await trio.to_thread.run_sync(lambda: self.proc.wait(10))


@asynccontextmanager
async def guest(ns: Netns, *, impair: str | None = None, args: list[str] | None = None, ready: str = r"\[tcp\] static",
                card: str = "rtl8139") -> AsyncIterator[System]:
    """A guest with ``card`` on the namespace's tap (impaired if asked), its network up (pci, the
    card's driver, /tcp); `system.wire` is the frame backend (its `stats` count what the
    impairment did)."""
    backend = ns.backend(impair=impair)
    async with boot(nic=backend, mac=GUEST_MAC, card=card) as system:
        system.wire = backend  # type: ignore[attr-defined]
        system.start_network(args or STATIC)
        await system.wait_for_output(ready, 20)
        yield system


async def run_in(system: System, program: Callable[[Any], Awaitable[None]], timeout: float = 60) -> None:
    """Run a test program in the guest; a failed assert inside it is re-raised here."""
    failure: list[BaseException] = []

    async def main(proc: Any) -> int:
        try:
            await program(proc)
        except BaseException as e:  # noqa: BLE001 - carried back to pytest
            failure.append(e)
            return 1
        return 0

    with trio.fail_after(timeout):
        status = await system.run(main)
    if failure:
        raise failure[0]
    assert status == 0, system.output()[-3000:]


def tcp_resources(system: System) -> tuple[int, int]:
    """The tcp process' (threads, handles): a connection's session costs a thread and handles."""
    p = next(p for p in system.kernel.processes.values() if p.name == "tcp")
    return len(p.threads), p.handles.count()


async def warmed_up(system: System, ns: Netns, port: int) -> tuple[int, int]:
    """One whole connection first, so that the stack's worker threads and waiter pool exist;
    then the tcp process' (threads, handles) to compare with after the test's connection."""
    warm = await trio.to_thread.run_sync(lambda: Peer(ns, "source", "1000", "1", port=port))

    async def warm_up(proc: Any) -> None:
        s = await proc.connect(HOST, port)
        await s.write_all(b"x\n")
        assert len(await s.read_all()) == 1000
        await s.close()

    await run_in(system, warm_up)
    await warm.finished()
    await trio.testing.wait_all_tasks_blocked()  # the stack has taken the CLOSE and is idle again
    return tcp_resources(system)


async def stats(proc: Any) -> dict[str, Any]:
    return json.loads(await proc.read_file("/tcp/stats"))


@pytest.fixture
def ns() -> Any:
    with Netns() as n:
        yield n


# ------------------------------------------------------------------------------------ tests

# Any seed works; the time taken varies with it (13-40 s seen). The virtio card runs with its
# offloads: 64 KiB segments leave the stack and are impaired as the frames on the wire.
@pytest.mark.parametrize("seed", [2])
@pytest.mark.parametrize("card", ["rtl8139", "virtio"])
async def test_one_mib_each_way_byte_exact_under_impairment(ns: Netns, seed: int, card: str) -> None:
    data = random.Random(seed).randbytes(MIB)
    got: dict[str, Any] = {}
    async with guest(ns, impair=IMPAIRMENT.format(seed=seed), args=STATIC + CAPPED_TCP, card=card) as system:
        downloaded = trio.Event()
        source = await trio.to_thread.run_sync(lambda: Peer(ns, "source", str(MIB), str(seed), port=7001))
        sink = await trio.to_thread.run_sync(lambda: Peer(ns, "sink", port=7002))

        async def download(proc: Any) -> None:
            t0 = proc.now()
            down = await proc.connect(HOST, 7001)
            await down.write_all(b"send\n")
            got["down"] = await down.read_all()
            await down.close()
            got["down_s"] = proc.now() - t0
            downloaded.set()

        async def program(proc: Any) -> None:
            # Both directions at once (two connections): each is mostly waiting out retransmission
            # timeouts, so together they take about as long as one.
            start = proc.now()
            await proc.spawn_thread(download, proc)
            t0 = proc.now()
            up = await proc.connect(HOST, 7002)
            # (A length first: CLOSE ends the whole session, there is no half-close to say "done".)
            await up.write_all(f"{len(data)}\n".encode() + data)
            got["sink"] = (await up.read_all()).decode()
            await up.close()
            got["up_s"] = proc.now() - t0
            with trio.move_on_after(80 - (proc.now() - start)):  # (still missing then: the asserts fail)
                await downloaded.wait()
            got["stats"] = await stats(proc)

        await run_in(system, program, timeout=150)
        impaired = system.wire.stats  # type: ignore[attr-defined]
        await source.finished()
        await sink.finished()
    assert len(got["down"]) == MIB and hashlib.sha256(got["down"]).digest() == hashlib.sha256(data).digest()
    assert got["sink"] == f"{MIB} {hashlib.sha256(data).hexdigest()}\n"
    tcp = got["stats"]["tcp"]
    assert tcp["retransmits"] > 0 and tcp["out_of_order"] + tcp["dup_segments"] > 0  # the wire really was bad
    assert got["stats"]["server"]["bugs"] == 0
    for way in ("rx", "tx"):
        assert impaired[f"impair_{way}_lost"] > 0 and impaired[f"impair_{way}_corrupted"] > 0, impaired


async def test_peer_killed_mid_download_resets_the_read_and_frees_the_session(ns: Netns) -> None:
    out: dict[str, Any] = {}
    async with guest(ns) as system:
        before = await warmed_up(system, ns, 7003)
        peer = await trio.to_thread.run_sync(lambda: Peer(ns, "stream", port=7004))
        received, enough = [0], trio.Event()

        async def program(proc: Any) -> None:
            s = await proc.connect(HOST, 7004)
            await s.write_all(b"go\nunread by the peer, so its death is a reset\n")
            try:
                while True:
                    chunk = await s.read(65536)
                    if not chunk:
                        out["eof"] = received[0]
                        break
                    received[0] += len(chunk)
                    if received[0] >= 200_000:
                        enough.set()
            except SyscallError as e:
                out["error"] = e.code
                out["when"] = trio.current_time()  # the host clock, as `vanished`
            await s.close()
            await trio.testing.wait_all_tasks_blocked()  # the stack has taken the CLOSE
            out["stats"] = await stats(proc)

        async def killer() -> None:
            await enough.wait()
            out["killed"] = trio.current_time()
            await peer.kill()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(killer)
            await run_in(system, program, timeout=30)
        after = tcp_resources(system)
    assert out.get("error") == abi.RESET, out
    assert received[0] >= 200_000
    assert [c for c in out["stats"]["connections"] if c["remote"] == f"{HOST}:7004"] == []
    assert after == before


async def test_peer_address_gone_mid_upload_times_the_write_out_and_frees_the_session(ns: Netns) -> None:
    out: dict[str, Any] = {}
    async with guest(ns, args=STATIC + SHORT_TCP) as system:
        before = await warmed_up(system, ns, 7005)
        peer = await trio.to_thread.run_sync(lambda: Peer(ns, "sink", port=7006))
        sent, enough = [0], trio.Event()

        async def program(proc: Any) -> None:
            s = await proc.connect(HOST, 7006)
            await s.write_all(b"1000000000\n")
            block = b"u" * 16384
            try:
                while True:
                    await s.write_all(block)
                    sent[0] += len(block)
                    if sent[0] >= 200_000:
                        enough.set()
            except SyscallError as e:
                out["error"] = e.code
                out["when"] = trio.current_time()  # the host clock, as `vanished`
            await s.close()
            await trio.testing.wait_all_tasks_blocked()  # the stack has taken the CLOSE
            out["stats"] = await stats(proc)

        async def vanish() -> None:
            await enough.wait()
            await trio.to_thread.run_sync(lambda: ns.exec(["ip", "addr", "del", f"{HOST}/{ns.prefix}", "dev", ns.tap],
                                                          check=True))
            out["vanished"] = trio.current_time()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(vanish)
            await run_in(system, program, timeout=40)
        after = tcp_resources(system)
        await peer.kill()
    assert out.get("error") == abi.TIMEDOUT, out
    # 4 retries with the RTO capped at 1 s: it gives up within seconds, not minutes.
    assert out["when"] - out["vanished"] < 10
    assert [c for c in out["stats"]["connections"] if c["remote"] == f"{HOST}:7006"] == []
    assert after == before


async def test_no_dhcp_server_says_so_and_the_fallback_address_works(ns: Netns) -> None:
    got: dict[str, Any] = {}
    args = ["--fallback", f"{GUEST}/24,gw={HOST},dns={HOST}", "--dhcp-timeout", "1"]
    async with guest(ns, args=args, ready=r"\[tcp\] no DHCP answer; using static") as system:
        assert f"[tcp] no DHCP answer; using static {GUEST}/24" in system.output()
        r = await trio.to_thread.run_sync(lambda: ns.exec(["ping", "-c", "2", "-i", "0.2", "-W", "2", GUEST]))
        assert r.returncode == 0 and "2 received" in r.stdout, r.stdout + r.stderr
        peer = await trio.to_thread.run_sync(lambda: Peer(ns, "source", "5000", "2", port=7007))

        async def program(proc: Any) -> None:
            s = await proc.connect(HOST, 7007)
            await s.write_all(b"x\n")
            got["data"] = await s.read_all()
            await s.close()
            got["stats"] = await stats(proc)

        await run_in(system, program)
        await peer.finished()
    assert got["data"] == random.Random(2).randbytes(5000)
    cfg = got["stats"]["config"]
    assert (cfg["address"], cfg["source"]) == (GUEST, "fallback")

