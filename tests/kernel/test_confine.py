"""Confined workers, proven by escaping: each test runs untrusted-style Python source inside a
worker (run_source below, the entry the zygote imports from this very file) and asserts the
escape fails. Where layers overlap, the same escape runs again with the outer layers left out
(``without``) so that each layer is shown to hold on its own, and once with all of them out to
show the escape is real.

Needs user namespaces, Landlock and seccomp (CI runs as root on a kernel that has them); when the
zygote's probe finds a layer missing, every test here skips with the probe's one line.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
import trio

from merriwig.confine.client import ConfinementRefused, Worker, Zygote, ZygoteError, open_zygote
from merriwig.confine.mechanism import Limits, Mechanism
from merriwig.confine.probe import Probe
from merriwig.confine.worker import Exit

HERE = Path(__file__).parent
QUOTA = 64 << 20
LIMITS = Limits(memory_bytes=QUOTA)
_ = (ctypes, mmap, re, socket, threading)  # what escapes use, imported here so the zygote has them


def run_source(channel: socket.socket) -> None:
    """Worker entry: exec the source the test sends (with ``channel`` in scope), send back
    ``result`` or the exception's type and errno."""
    source = channel.recv(1 << 20).decode()
    scope: dict[str, object] = {"channel": channel}
    try:
        exec(source, scope)
        reply: dict[str, object] = {"result": scope.get("result")}
    except BaseException as e:
        reply = {"error": type(e).__name__, "errno": getattr(e, "errno", None), "text": str(e)}
    channel.send(json.dumps(reply, default=repr).encode())


class Confined:
    """A zygote for one test; ``attempt`` runs source in a fresh worker and returns the reply."""

    def __init__(self, zygote: Zygote):
        self.zygote = zygote

    async def spawn(self, without: tuple[Mechanism, ...] = (), limits: Limits = LIMITS) -> Worker:
        return await self.zygote.spawn("test_confine:run_source", limits, without)

    async def attempt(self, source: str, without: tuple[Mechanism, ...] = (), limits: Limits = LIMITS) -> dict:
        worker = await self.spawn(without, limits)
        with trio.fail_after(60):
            await worker.channel.send(source.encode())
            data = await worker.channel.recv(1 << 20)
            status = await worker.wait()
        worker.channel.close()
        return json.loads(data) if data else {"died": status}


@pytest.fixture
async def confined():
    async with open_zygote(preload=["test_confine"], import_path=[str(HERE), *sys.path]) as zygote:
        if not zygote.probe.ok:
            pytest.skip(zygote.probe.line())
        yield Confined(zygote)


def err(reply: dict, code: int) -> bool:
    return reply.get("errno") == code


S, R, L = Mechanism.SECCOMP, Mechanism.ROOT, Mechanism.LANDLOCK


async def test_probe_and_verdict_name_every_layer(confined):
    assert confined.zygote.probe.ok, confined.zygote.probe.line()
    worker = await confined.spawn()
    assert list(worker.confinement) == list(Mechanism)
    await worker.aclose()
    assert worker.returncode == -signal.SIGKILL


async def test_a_worker_computes_and_answers(confined):
    worker = await confined.spawn()
    await worker.channel.send(b"import hashlib\nresult = [sum(range(10**6)), hashlib.sha256(b'x').hexdigest()[:8]]")
    assert json.loads(await worker.channel.recv(1024)) == {"result": [499999500000, "2d711642"]}
    assert await worker.wait() == Exit.DONE


async def test_trio_runs_inside_a_worker(confined):
    # the kernel's worker runtime will run a trio loop: its wake-up socketpair and epoll must work
    reply = await confined.attempt("import trio\nasync def m():\n    await trio.sleep(0.01)\n    return 7\nresult = trio.run(m)")
    assert reply == {"result": 7}


async def test_open_passwd_each_layer_alone(confined):
    src = "result = open('/etc/passwd').read()[:5]"
    assert err(await confined.attempt(src), errno.EPERM)  # seccomp
    assert err(await confined.attempt(src, (S,)), errno.ENOENT)  # the empty root
    assert err(await confined.attempt(src, (S, R)), errno.EACCES)  # Landlock
    assert (await confined.attempt(src, (S, R, L))) == {"result": "root:"}  # the escape is real


async def test_listdir_root(confined):
    src = "import os\nresult = os.listdir('/')"
    assert err(await confined.attempt(src), errno.EPERM)
    assert err(await confined.attempt(src, (S,)), errno.EACCES)  # Landlock refuses even the empty root
    assert (await confined.attempt(src, (S, L))) == {"result": []}  # the root itself is empty


async def test_stat_and_proc_self_see_nothing(confined):
    # stat/readlink are not open(): seccomp lets them through, the empty root answers
    for src in ("import os\nresult = os.stat('/etc/passwd').st_size", "import os\nresult = os.readlink('/proc/self/exe')"):
        assert err(await confined.attempt(src), errno.ENOENT), src
    assert err(await confined.attempt("result = open('/proc/self/status').read()"), errno.EPERM)
    assert err(await confined.attempt("result = open('/proc/self/status').read()", (S,)), errno.ENOENT)


async def test_no_network(confined):
    src = "import socket\ns = socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', 22))"
    assert err(await confined.attempt(src), errno.EPERM)  # seccomp: no socket()
    assert err(await confined.attempt(src, (S,)), errno.EACCES)  # Landlock: no TCP connect
    assert err(await confined.attempt(src, (S, L)), errno.ENETUNREACH)  # netns: only a down loopback
    udp = "import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))"
    assert err(await confined.attempt(udp, (S, L)), errno.ENETUNREACH)


async def test_exec_a_shell(confined):
    src = "import os\nos.execv('/bin/sh', ['sh', '-c', 'true'])"
    assert err(await confined.attempt(src), errno.EPERM)
    assert err(await confined.attempt(src, (S,)), errno.ENOENT)
    assert err(await confined.attempt(src, (S, R)), errno.EACCES)
    src = "import subprocess\nresult = subprocess.run(['/bin/true']).returncode"
    assert err(await confined.attempt(src), errno.EPERM)


async def test_signals_only_to_itself(confined):
    for target in (os.getpid(), "os.getppid()", 1, 0, -1):  # the kernel, the zygote, init, the group, all
        src = f"import os, signal\nos.kill({target}, signal.SIGTERM)"
        assert err(await confined.attempt(src), errno.EPERM), target
    for target in (os.getpid(), "os.getppid()", 1):  # (kill(0)/kill(-1) then reach only itself)
        src = f"import os, signal\nos.kill({target}, signal.SIGTERM)"
        assert err(await confined.attempt(src, (S,)), errno.EPERM), target  # Landlock's signal scope, uid
    own = "import os, signal\nsignal.signal(signal.SIGUSR1, lambda *a: None)\nos.kill(os.getpid(), signal.SIGUSR1)\nresult = 'ok'"
    assert (await confined.attempt(own)) == {"result": "ok"}


PTRACE = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, {pid}, None, None)  # PTRACE_ATTACH
result = [r, ctypes.get_errno()]
"""

VM_READ = """
import ctypes
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
buf = ctypes.create_string_buffer(64)
local = iovec(ctypes.cast(buf, ctypes.c_void_p), 64)
remote = iovec({addr}, 64)
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long  # a variadic call: a bare int is 32 bits, leaving the register's top half to chance
r = libc.syscall(L(310), L({pid}), ctypes.byref(local), L(1), ctypes.byref(remote), L(1), L(0))
result = [r, ctypes.get_errno()]
"""


async def test_ptrace_and_process_vm_readv_of_the_parent(confined):
    secret = ctypes.create_string_buffer(b"kernel secret", 64)
    addr = ctypes.addressof(secret)
    for without in ((), (S,)):
        for src in (PTRACE.format(pid=os.getpid()), VM_READ.format(pid=os.getpid(), addr=addr)):
            assert (await confined.attempt(src, without)) == {"result": [-1, errno.EPERM]}, (without, src)


CTYPES_SYSCALLS = """
import ctypes
libc = ctypes.CDLL('libc.so.6', use_errno=True)
libc.syscall.restype = ctypes.c_long
def call(*args):
    r = libc.syscall(*args)
    return [r, ctypes.get_errno() if r == -1 else 0]
result = {
    'openat': call(257, -100, b'/etc/passwd', 0),
    'open': call(2, b'/etc/passwd', 0),
    'execve': call(59, b'/bin/sh', None, None),
    'socket': call(41, 2, 1, 0),
    'unshare': call(272, 0x10000000),
    'clone': call(56, 17, None, None, None, None),
    'mount': call(165, b'none', b'/', b'tmpfs', 0, None),
    'bpf': call(321, 0, None, 0),
    'io_uring_setup': call(425, 8, None),
    'memfd_create': call(319, b'x', 0),
    'prctl': call(157, 4, 1, 0, 0, 0),
    'seccomp': call(317, 0, 0, None),
    'kill': call(62, {pid}, 9),
    'setuid': call(105, 0),
    'future': call(470),
}
"""


async def test_ctypes_direct_syscalls_hit_the_filter(confined):
    reply = await confined.attempt(CTYPES_SYSCALLS.replace("{pid}", str(os.getpid())))
    result = reply["result"]
    assert result.pop("future") == [-1, errno.ENOSYS]
    assert result == {name: [-1, errno.EPERM] for name in result}


async def test_foreign_abis_kill_the_worker(confined):
    x32 = "import ctypes\nctypes.CDLL(None).syscall(0x40000000 | 39)"
    assert (await confined.attempt(x32)) == {"died": -signal.SIGSYS}
    # i386 getpid through int 0x80 from executable memory: mov eax, 20; int 0x80; ret
    int80 = (
        "import ctypes, mmap\n"
        "m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "m.write(bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3]))\n"
        "f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))\n"
        "result = f()\n"
    )
    reply = await confined.attempt(int80)
    if reply == {"died": -signal.SIGSEGV}:
        pytest.skip("kernel without IA32 emulation: int 0x80 faults before seccomp sees it")
    assert reply == {"died": -signal.SIGSYS}


async def test_address_space_quota(confined):
    assert (await confined.attempt(f"result = len(bytearray({QUOTA // 2}))")) == {"result": QUOTA // 2}
    reply = await confined.attempt(f"result = len(bytearray({QUOTA * 2}))")
    assert reply["error"] == "MemoryError"


async def test_fork_bomb_and_threads(confined):
    src = "import os\nresult = os.fork()"
    assert err(await confined.attempt(src), errno.EPERM)  # seccomp
    assert err(await confined.attempt(src, (S,)), errno.EAGAIN)  # RLIMIT_NPROC = 0
    reply = await confined.attempt("import threading\nthreading.Thread(target=print).start()")
    assert reply["error"] == "RuntimeError"
    # nor a session of its own (a scheduler autogroup: a CPU share as big as the kernel's)
    assert err(await confined.attempt("import os\nos.setsid()"), errno.EPERM)


async def test_only_the_channel_fd_is_open(confined):
    src = (
        "import os\nresult = {}\n"
        "for fd in range(64):\n"
        "    try:\n        os.fstat(fd)\n        result[fd] = 'open'\n"
        "    except OSError as e:\n        result[fd] = e.errno\n"
        "try:\n    os.write(1, b'x')\nexcept OSError as e:\n    result['write1'] = e.errno\n"
    )
    result = (await confined.attempt(src))["result"]
    assert result.pop("3") == "open"
    assert result == {k: errno.EBADF for k in result}


async def test_environment_and_identity():
    # the kernel's environment never reaches a worker; each worker has a uid of its own (as root)
    os.environ["EURALIOS_TEST_SECRET"] = "hunter2"
    try:
        async with open_zygote(preload=["test_confine"], import_path=[str(HERE), *sys.path]) as zygote:
            if not zygote.probe.ok:
                pytest.skip(zygote.probe.line())
            worker = await zygote.spawn("test_confine:run_source", LIMITS)
            await worker.channel.send(b"import os\nresult = [sorted(os.environ), os.getuid()]")
            env, uid = json.loads(await worker.channel.recv(1 << 16))["result"]
    finally:
        del os.environ["EURALIOS_TEST_SECRET"]
    assert "EURALIOS_TEST_SECRET" not in env
    if os.geteuid() == 0:
        assert uid == 0x7000_0000 + worker.pid


@pytest.mark.parametrize("busy", ["sum(range(10**12))", "re.match(r'(a+)+$', 'a' * 64 + 'b')"])
async def test_sigkill_ends_a_long_c_call(confined, busy):
    worker = await confined.spawn()
    await worker.channel.send(f"import re\nchannel.send(b'started')\n{busy}".encode())
    assert await worker.channel.recv(64) == b"started"
    await trio.sleep(0.2)  # well inside the C call now
    start = time.monotonic()
    worker.kill()
    with trio.fail_after(5):
        assert await worker.wait() == -signal.SIGKILL
    assert time.monotonic() - start < 2
    assert await worker.channel.recv(64) == b""  # the channel closed with it


async def test_cpu_limit_is_a_backstop(confined):
    worker = await confined.spawn(limits=Limits(memory_bytes=QUOTA, cpu_seconds=1))
    await worker.channel.send(b"import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass")
    with trio.fail_after(30):
        assert await worker.wait() == -signal.SIGKILL  # SIGXCPU ignored: the hard limit kills


async def test_refusal_is_one_line_naming_the_mechanism(confined):
    with pytest.raises(ConfinementRefused) as caught:
        await confined.spawn(limits=Limits(memory_bytes=QUOTA, open_files=1 << 40))
    line = str(caught.value)
    assert line.startswith("rlimits: ") and "\n" not in line


async def test_workers_die_with_the_zygote():
    async with open_zygote(preload=["test_confine"], import_path=[str(HERE), *sys.path]) as zygote:
        if not zygote.probe.ok:
            pytest.skip(zygote.probe.line())
        worker = await zygote.spawn("test_confine:run_source", LIMITS)
        await worker.channel.send(b"import time\nchannel.send(b'up')\ntime.sleep(600)")
        assert await worker.channel.recv(16) == b"up"
        os.kill(zygote.pid, signal.SIGKILL)
        with trio.fail_after(10):
            assert await worker.channel.recv(16) == b""
            assert await worker.wait() == -signal.SIGKILL
        with pytest.raises(ZygoteError):
            await zygote.spawn("test_confine:run_source", LIMITS)


def test_probe_line_names_what_is_missing():
    # what the kernel prints when it refuses confined programs on a host lacking layers
    outcomes = {m: (True, "ok") for m in Mechanism}
    assert Probe(outcomes).ok and "all 11 layers" in Probe(outcomes).line()
    outcomes[Mechanism.LANDLOCK] = (False, "ENOSYS Function not implemented")
    del outcomes[Mechanism.SECCOMP]
    line = Probe(outcomes).line()
    assert not Probe(outcomes).ok and "\n" not in line
    assert "landlock (ENOSYS Function not implemented)" in line and "seccomp (not reached)" in line
    assert Probe.from_json(Probe(outcomes).to_json()) == Probe(outcomes)
