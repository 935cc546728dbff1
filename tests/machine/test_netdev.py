"""Frame backends: spec parsing, the in-memory backend, impairment, pcap capture, tap and raw."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections import Counter
from pathlib import Path

import pytest
import trio
from netns_root import NEED_ROOT

from machine.netdev import BackendError, NoneBackend, make_backend
from machine.netdev.impair import Decider, ImpairBackend, Impairment, parse_impair
from machine.netdev.memory import MemoryBackend
from machine.netdev.pcap import PcapBackend

ROOT = Path(__file__).resolve().parents[2]


def frames(n: int, size: int = 64) -> list[bytes]:
    return [i.to_bytes(4, "big") * (size // 4) for i in range(n)]


# ------------------------------------------------------------------------------------ make_backend

def test_make_backend_none_and_bad_specs() -> None:
    b = make_backend("none")
    assert isinstance(b, NoneBackend)
    b.send(b"x" * 60)
    assert b.stats["tx_dropped"] == 1
    b.close()
    for spec, text in (("bogus", "unknown backend 'bogus'"), ("tap", "needs an interface name"),
                       ("raw:", "needs an interface name"), ("tap:bad/name", "not a valid interface name"),
                       ("tap:" + "x" * 16, "not a valid interface name"), ("none:x", "takes no argument")):
        with pytest.raises(ValueError, match=text) as e:
            make_backend(spec)
        assert "\n" not in str(e.value)


def test_raw_backend_on_missing_interface_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match=r"^--net raw:nosuch0: no such interface"):
        make_backend("raw:nosuch0")


async def test_none_backend_run_waits_quietly() -> None:
    with trio.move_on_after(0.01) as scope:
        await NoneBackend().run(lambda f: pytest.fail("none delivered a frame"))
    assert scope.cancelled_caught


async def test_memory_backend_holds_injected_frames_until_run() -> None:
    got: list[bytes] = []
    b = MemoryBackend()
    b.inject(b"early")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.run, got.append)
        await trio.testing.wait_all_tasks_blocked()
        b.inject(b"late")
        b.send(b"out")
        assert await b.wait_sent(1) == [b"out"]
        nursery.cancel_scope.cancel()
    assert got == [b"early", b"late"]
    assert b.stats["rx_frames"] == 2 and b.stats["tx_frames"] == 1


# --------------------------------------------------------------------------------------- impairment

def test_parse_impair() -> None:
    imp = parse_impair("loss=10,reorder=5,dup=5,corrupt=2,seed=1")
    assert (imp.loss, imp.reorder, imp.dup, imp.corrupt, imp.seed, imp.delay) == (10, 5, 5, 2, 1, 0)
    imp = parse_impair(" delay=20ms, jitter=5 ,loss=1.5%,dir=tx ")
    assert (imp.delay, imp.jitter, imp.loss, imp.directions) == (20, 5, 1.5, "tx")
    assert imp.applies("tx") and not imp.applies("rx")
    for bad, text in (("loss=101", "bad value"), ("loss=x", "bad value"), ("speed=3", "unknown setting"),
                      ("loss", "expected key=value"), ("dir=up", "bad value"), ("delay=-1", "bad value")):
        with pytest.raises(ValueError, match=text):
            parse_impair(bad)


def fates(seed: int, data: list[bytes], **kw: float) -> list[tuple]:
    d = Decider(Impairment(seed=seed, **kw), "tx")  # type: ignore[arg-type]
    out = []
    for f in data:
        x = d.decide(f)
        out.append((x.drop, tuple(x.copies), round(x.delay, 9), x.reorder))
    return out


def test_same_seed_same_decisions_other_seed_others() -> None:
    data = frames(500)
    kw = {"loss": 10, "reorder": 5, "dup": 5, "corrupt": 2, "delay": 10, "jitter": 5}
    assert fates(1, data, **kw) == fates(1, data, **kw)
    assert fates(1, data, **kw) != fates(2, data, **kw)
    # directions draw from their own generators: tx decisions do not depend on rx traffic
    assert Decider(Impairment(seed=1, loss=50), "tx").rng.random() != Decider(Impairment(seed=1, loss=50), "rx").rng.random()


def test_one_setting_does_not_shift_the_others() -> None:
    data = frames(300)
    a = [f[0] for f in fates(7, data, loss=20)]
    b = [f[0] for f in fates(7, data, loss=20, dup=50, corrupt=50)]
    assert a == b  # the same frames are lost whatever else is switched on


async def run_impaired(imp: Impairment, data: list[bytes]) -> tuple[MemoryBackend, ImpairBackend]:
    inner = MemoryBackend()
    b = ImpairBackend(inner, imp)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.run, lambda f: None)
        await trio.testing.wait_all_tasks_blocked()
        for f in data:
            b.send(f)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    return inner, b


async def test_impaired_output_is_reproducible_and_loss_matches_the_rate() -> None:
    data = frames(10_000)
    imp = parse_impair("loss=10,dup=5,corrupt=2,seed=1")
    a, b = await run_impaired(imp, data)
    again, _ = await run_impaired(imp, data)
    assert a.sent == again.sent
    s = b.stats
    assert abs(s["impair_tx_lost"] / 10_000 - 0.10) < 0.015
    assert abs(s["impair_tx_duplicated"] / 9_000 - 0.05) < 0.015
    assert abs(s["impair_tx_corrupted"] / 9_000 - 0.02) < 0.01
    assert len(a.sent) == 10_000 - s["impair_tx_lost"] + s["impair_tx_duplicated"]
    kept = set(data)
    corrupted = [f for f in a.sent if f not in kept]
    assert len(corrupted) == s["impair_tx_corrupted"]
    for f in corrupted:  # exactly one bit flipped (each test frame is one 4-byte word repeated)
        word = Counter(f[k:k + 4] for k in range(0, len(f), 4)).most_common(1)[0][0]
        original = word * (len(f) // 4)
        assert original in kept
        assert sum(bin(x ^ y).count("1") for x, y in zip(original, f, strict=True)) == 1


async def test_delay_and_jitter_use_timers(autojump_clock: trio.testing.MockClock) -> None:
    inner = MemoryBackend()
    b = ImpairBackend(inner, parse_impair("delay=100,jitter=20,seed=3"))
    arrivals: list[float] = []
    inner.on_send = lambda f: arrivals.append(trio.current_time())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.run, lambda f: None)
        t0 = trio.current_time()
        for f in frames(20):
            b.send(f)
        assert inner.sent == []  # nothing leaves before its time
        await inner.wait_sent(20)
        nursery.cancel_scope.cancel()
    assert all(0.080 - 1e-9 <= t - t0 <= 0.120 + 1e-9 for t in arrivals)
    assert len(set(arrivals)) > 1  # jitter spreads them
    assert sorted(inner.sent) == sorted(frames(20))


async def test_reorder_holds_a_frame_until_the_next_one() -> None:
    imp = Impairment(reorder=30, seed=5)
    data = frames(200)
    inner, b = await run_impaired(imp, data)
    decider, expected, held = Decider(imp, "tx"), [], []
    for f in data:  # the rule: a held frame goes out right after the next frame that is not held
        if decider.decide(f).reorder:
            held.append(f)
        else:
            expected += [f, *held]
            held = []
    assert inner.sent == expected
    assert expected != data[: len(expected)]
    assert 30 < b.stats["impair_tx_reordered"] < 90  # about 30% of 200


async def test_reordered_frame_without_successor_leaves_after_hold(autojump_clock: trio.testing.MockClock) -> None:
    inner = MemoryBackend()
    b = ImpairBackend(inner, Impairment(reorder=100, hold=30))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.run, lambda f: None)
        t0 = trio.current_time()
        b.send(b"alone" * 12)
        await inner.wait_sent(1)
        assert trio.current_time() - t0 == pytest.approx(0.030)
        nursery.cancel_scope.cancel()


async def test_receive_direction_and_direction_choice() -> None:
    inner = MemoryBackend()
    b = ImpairBackend(inner, parse_impair("loss=100,dir=rx"))
    got: list[bytes] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.run, got.append)
        await trio.testing.wait_all_tasks_blocked()
        inner.inject(b"in" * 30)
        b.send(b"out" * 20)
        nursery.cancel_scope.cancel()
    assert got == [] and inner.sent == [b"out" * 20]
    assert b.stats["impair_rx_lost"] == 1 and "impair_tx_lost" not in b.stats


# --------------------------------------------------------------------------------------------- pcap

async def test_pcap_records_both_directions_readable_by_scapy(tmp_path: Path) -> None:
    from scapy.layers.l2 import Ether
    from scapy.utils import rdpcap

    path = tmp_path / "cap.pcap"
    inner = MemoryBackend()
    b = PcapBackend(inner, path)
    out1 = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="52:54:00:12:34:56") / (b"guest" * 20))
    in1 = bytes(Ether(dst="52:54:00:12:34:56", src="02:00:00:00:00:02") / (b"peer" * 20))
    out2 = out1[:60]
    async with trio.open_nursery() as nursery:
        nursery.start_soon(b.run, lambda f: None)
        await trio.testing.wait_all_tasks_blocked()
        b.send(out1)
        inner.inject(in1)
        b.send(out2)
        # flushed after every frame: readable while the capture is still open
        assert [bytes(p) for p in rdpcap(str(path))] == [out1, in1, out2]
        nursery.cancel_scope.cancel()
    b.close()
    packets = rdpcap(str(path))
    assert [bytes(p) for p in packets] == [out1, in1, out2]
    assert isinstance(packets[0], Ether) and packets[1].src == "02:00:00:00:00:02"
    assert inner.sent == [out1, out2]
    assert b.stats["pcap_frames"] == 3


def test_make_backend_wraps_impairment_inside_capture(tmp_path: Path) -> None:
    b = make_backend("none", pcap=str(tmp_path / "x.pcap"), impair="loss=100")
    assert isinstance(b, PcapBackend) and isinstance(b.inner, ImpairBackend)
    b.close()
    with pytest.raises(BackendError, match="--pcap"):
        make_backend("none", pcap=str(tmp_path / "no" / "such" / "dir.pcap"))


def test_pump_reaches_the_backend_through_capture_and_impairment(tmp_path: Path) -> None:
    class Counting(NoneBackend):
        pumps = 0

        def pump(self) -> None:
            self.pumps += 1

    inner = Counting()
    b = PcapBackend(ImpairBackend(inner, parse_impair("loss=5,seed=1")), tmp_path / "p.pcap")
    b.pump()
    b.pump()
    assert inner.pumps == 2
    NoneBackend().pump()  # a backend with no host queue: nothing to do, no error
    b.close()


# ----------------------------------------------------------------------------------- tap and raw


CHILD = textwrap.dedent(
    """
    import json, socket, sys
    import trio, trio.testing
    from machine.netdev import make_backend

    MARK = b"EURALIOS-NETDEV-TEST"
    GUEST = bytes.fromhex("525400123456")
    PEER = bytes.fromhex("020000000002")

    def frame(dst, src, text):
        return dst + src + b"\\x88\\xb5" + MARK + text.encode() + bytes(20)

    async def check(spec, host_if):
        backend = make_backend(spec)
        host = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        host.bind((host_if, 3))
        host = trio.socket.from_stdlib_socket(host)
        got = []
        heard = {}  # frame -> an Event set when the guest side receives it
        result = {}

        def deliver(f):
            if MARK in f:
                got.append(f)
                if f in heard:
                    heard[f].set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(backend.run, deliver)
            await trio.testing.wait_all_tasks_blocked()  # the backend is reading
            out = frame(b"\\xff" * 6, GUEST, spec + " guest->host")
            backend.send(out)
            with trio.fail_after(5):
                while True:
                    data = await host.recv(65536)
                    if data == out:
                        result["guest_to_host"] = True
                        break
            back = frame(GUEST, PEER, spec + " host->guest")
            heard[back] = trio.Event()
            await host.send(back)
            with trio.fail_after(5):
                await heard[back].wait()
            result["host_to_guest"] = True
            result["own_frame_heard"] = out in got
            nursery.cancel_scope.cancel()
        backend.close()
        host.close()
        result["stats"] = backend.stats
        return result

    async def main():
        print(json.dumps({spec: await check(spec, host_if) for spec, host_if in
                          (("tap:eurtap0", "eurtap0"), ("raw:eurveth0", "eurveth1"))}))

    trio.run(main)
    """
)


@NEED_ROOT
def test_tap_and_raw_backends_in_a_private_netns() -> None:
    ns = f"eurtest-{uuid.uuid4().hex[:8]}"
    ip = shutil.which("ip") or "ip"
    subprocess.run([ip, "netns", "add", ns], check=True)
    try:
        for cmd in (["link", "add", "eurveth0", "type", "veth", "peer", "name", "eurveth1"],
                    ["link", "set", "eurveth0", "up"], ["link", "set", "eurveth1", "up"]):
            subprocess.run([ip, "-n", ns, *cmd], check=True)
        r = subprocess.run([ip, "netns", "exec", ns, sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True,
                           timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert r.returncode == 0, r.stderr.decode()
        result = json.loads(r.stdout)
    finally:
        subprocess.run([ip, "netns", "del", ns], check=False)
    tap, raw = result["tap:eurtap0"], result["raw:eurveth0"]
    assert tap["guest_to_host"] and tap["host_to_guest"]
    assert raw["guest_to_host"] and raw["host_to_guest"]
    assert not raw["own_frame_heard"]  # the raw socket skips its own outgoing copies
    assert tap["stats"]["tx_frames"] == 1 and raw["stats"]["tx_frames"] == 1


@pytest.mark.skipif(not (os.geteuid() == 0 and shutil.which("setpriv")), reason="needs root and setpriv to drop capabilities")
@pytest.mark.parametrize(("spec", "capability"), [("tap:eurtap9", "CAP_NET_ADMIN"), ("raw:lo", "CAP_NET_RAW")])
def test_without_privileges_the_error_says_what_to_do(spec: str, capability: str) -> None:
    child = ("from machine.netdev import make_backend, BackendError\n"
             f"try:\n    make_backend({spec!r})\nexcept BackendError as e:\n    print(e)\n")
    r = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-c", child],
                       cwd=ROOT, capture_output=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode().strip() == f"--net {spec}: permission denied (needs root or {capability}); use --net user"
