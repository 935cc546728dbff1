"""What confinement costs a running system (merriwig/confine/relay.py and runtime.py).

* isolation.syscall_roundtrip: one send_receive from a confined process to an in-process server
  (the server answers at once), against the same program run in-process in the same boot (its
  image registered as trusted for those rounds). Per-call time is measured by the program itself
  over CALLS calls; best of ROUNDS alternating rounds. Target <= 4x.
* isolation.exec_exit: start a trivial program from its image (confined: a worker forked from
  the zygote, every layer applied and verified, the image loaded, main run) and see it reaped,
  against ``python -c pass`` as a host subprocess; best mean over alternating rounds. Target <= 0.25x.
* isolation.process_memory_kib: unique memory (USS) of the worker of an idle confined program
  (blocked in receive), against an idle ``python -c`` interpreter. Target <= 4096 KiB.
* isolation.typing_latency: a key press until the echoed character is in VGA memory (as
  console.keystroke_latency) with the echo program confined, against the same with
  ``--isolation none`` (everything in-process, as before confinement), booted in the same run.
  Target <= 2x.

Run: ``.venv/bin/python -m bench.bench_isolation``
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from bench.bench_confine import idle_interpreter_uss, python_c_pass, uss_kib
from bench.bench_console import keystroke_latency
from bench.common import record
from euralios.boot import boot
from euralios.std import Message, abi
from euralios.system_boot import boot_full
from merriwig.confine.service import image_key

CALLS = 2000
ROUNDS = 5
KEYS = 100

CLIENT = b"""
from euralios.std import Message, abi

async def main(proc):
    msg = Message(abi.OK, 1, 2)
    for _ in range(50):
        await proc.sys.send_receive(1, msg)
    t0 = proc.now()
    for _ in range(%d):
        await proc.sys.send_receive(1, msg)
    return int((proc.now() - t0) * 1e9 / %d)
""" % (CALLS, CALLS)


async def server(proc: Any) -> None:
    """Answer every request at once (an in-process server: the trusted side of the call)."""
    sys = proc.sys
    reply = Message(abi.OK, 0, 0)
    while True:
        msg = await sys.receive(0)
        if msg.reply:
            await sys.send(0, reply)


async def syscall_roundtrip() -> tuple[float, float]:
    """(confined ns per call, in-process ns per call): best of ROUNDS each, alternating."""
    async with boot() as system:
        kernel = system.kernel
        assert kernel.confinement is not None
        r = kernel.new_rendezvous(refs=1)
        r.incref()
        system.spawn(server, stdin=r, name="server")

        async def once(confined: bool) -> int:
            trusted = kernel.confinement.trusted  # type: ignore[union-attr]
            key = image_key(CLIENT)
            (trusted.discard if confined else trusted.add)(key)
            r.incref()
            proc = system.spawn(CLIENT, ["client"], stdout=r, name="client")
            await proc.ended.wait()
            assert (proc.confined is not None) == confined
            assert proc.killed is None, system.klog()
            assert proc.status is not None
            return proc.status

        best = {True: float("inf"), False: float("inf")}
        for _ in range(ROUNDS):
            for confined in (True, False):
                best[confined] = min(best[confined], await once(confined))
        return best[True], best[False]


TRIVIAL = b"async def main(proc):\n    return 0\n"
IDLE = b"""
async def main(proc):
    await proc.sys.receive(0)
    return 0
"""
SPAWNS = 30


async def exec_exit() -> tuple[float, float]:
    """(seconds per trivial confined program, seconds per python -c pass): best of ROUNDS."""
    async with boot() as system:
        async def programs() -> float:
            t0 = trio.current_time()
            for _ in range(SPAWNS):
                proc = system.spawn(TRIVIAL, ["trivial"], name="trivial")
                await proc.ended.wait()
                assert proc.status == 0 and proc.confined is not None, system.klog()
            return (trio.current_time() - t0) / SPAWNS

        await programs()  # warm: the zygote starts, and its first forks copy its page tables
        best, base = float("inf"), float("inf")
        for _ in range(ROUNDS):
            base = min(base, await trio.to_thread.run_sync(python_c_pass))
            best = min(best, await programs())
        return best, base


async def process_memory() -> int:
    async with boot() as system:
        procs = [system.spawn(IDLE, ["idle"], name="idle") for _ in range(3)]
        await trio.testing.wait_all_tasks_blocked()
        for proc in procs:
            while proc.confined is None or proc.threads and next(iter(proc.threads.values())).state != "receive":
                await trio.sleep(0.01)
        await trio.sleep(0.2)
        return min(uss_kib(p.confined.worker.pid) for p in procs if p.confined is not None)


async def typing_latency(isolation: str) -> float:
    async with boot_full(console_program="/bin/echo", isolation=isolation) as system:
        await system.wait_for_screen(r"^> ", 10)
        latency, _ = await keystroke_latency(system, KEYS)
        return latency


async def main() -> None:
    per_program, base = await exec_exit()
    ratio = per_program / base
    record("isolation.exec_exit", per_program * 1e3, "ms", "python_c_pass", base * 1e3, ratio,
           target="<= 0.25x", met=ratio <= 0.25)
    kib = await process_memory()
    base_kib = await trio.to_thread.run_sync(idle_interpreter_uss)
    record("isolation.process_memory_kib", kib, "KiB", "python_c_idle_uss", base_kib, kib / base_kib,
           target="<= 4096 KiB", met=kib <= 4096)
    confined, inproc = await syscall_roundtrip()
    ratio = confined / inproc
    record("isolation.syscall_roundtrip", confined / 1e3, "us", "same_call_in_process", inproc / 1e3, ratio,
           target="<= 4x", met=ratio <= 4)
    latencies = {"host": [], "none": []}
    for _ in range(2):
        for mode in ("none", "host"):
            latencies[mode].append(await typing_latency(mode))
    host, none = min(latencies["host"]), min(latencies["none"])
    ratio = host / none
    record("isolation.typing_latency", host, "us", "echo_in_process", none, ratio, target="<= 2x", met=ratio <= 2)


if __name__ == "__main__":
    trio.run(main)
